"""Keeping a kit alive: renew one party's certificate, rotate the federation CA.

Theory of operation
-------------------
Both steps run where ``DIR/ca/ca.key`` is kept:

- ``renew``: a new key and certificate for one party from the kit's CA, with the hosts of its
  old certificate; its ``party.toml`` is kept. Peers change nothing: they trust the CA.
- ``rotate_ca``: a new CA. The old CA moves to ``DIR/ca/previous.pem`` (and ``previous.key``),
  every party folder gets a ``ca.pem`` bundle of the new and the old CA, and a certificate
  from the new CA. Operators first roll out the bundles (everyone then accepts both CAs),
  then the new certificates, in any order. ``finish_rotation`` drops the old CA from every
  ``ca.pem`` and deletes ``previous.*``, once every party in the kit holds a new-CA certificate.

Files are replaced by writing a sibling and renaming it, so an interrupted step leaves each
file either old or new; keys are 0600 from creation on (``pki.write_private``).
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from fedcore.crypto import pki
from fedcore.crypto.secret import Secret
from fedcore.errors import AuthError, ConfigError
from fedcore.party.config import TomlReader, check_name
from fedcore.party.provision import CA_VALID_DAYS, PARTY_VALID_DAYS
from fedcore.transport.base import PARTY_NAME

PREVIOUS_CA = "previous.pem"
PREVIOUS_KEY = "previous.key"
_ANY_ADDRESS = {"0.0.0.0", "::", ""}  # noqa: S104 - bind-all addresses are never dialled


@dataclass(frozen=True)
class KitParty:
    """One party folder of a kit, as its ``party.toml`` names its files."""

    party_id: str
    federation: str
    config: Path
    ca: Path
    cert: Path
    key: Path


def kit_party(kit: Path, party_id: str) -> KitParty:
    """Read ``kit/<party_id>/party.toml`` (only [party] and [tls]: other paths may not exist here).

    Raises:
        ConfigError: no such party folder, or its party.toml is malformed.
    """
    if not PARTY_NAME.match(party_id):
        raise ConfigError(
            f"bad party id {party_id!r}: expected 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter"
        )
    path = (Path(kit) / party_id / "party.toml").resolve()
    if not path.is_file():
        raise ConfigError(f"no party {party_id!r} in kit {Path(kit).resolve()}: {path} does not exist")
    r = TomlReader.load(path, "party config")
    found = check_name(r, "party.id", r.get("party", "id", str, 'a party name like "alice"'))
    if found != party_id:
        raise r.fail("party.id", f"the folder {party_id}/ holds the config of {found!r}")
    federation = check_name(r, "party.federation", r.get("party", "federation", str, "a federation name"))
    tls = {
        k: path.parent / r.get("tls", k, str, f"a path to the {k} PEM file", f"{d}")
        for k, d in (("ca", "ca.pem"), ("cert", "party.pem"), ("key", "party.key"))
    }
    return KitParty(party_id, federation, path, tls["ca"], tls["cert"], tls["key"])


def kit_parties(kit: Path) -> list[KitParty]:
    """Every party folder of a kit (a folder beside ``ca/`` holding a ``party.toml``).

    Raises:
        ConfigError: no party folder at all.
    """
    kit = Path(kit).resolve()
    names = (
        sorted(p.name for p in kit.iterdir() if p.name != "ca" and (p / "party.toml").is_file())
        if kit.is_dir()
        else []
    )
    if not names:
        raise ConfigError(f"{kit} holds no party folders (DIR/<id>/party.toml): is it a provisioned kit?")
    return [kit_party(kit, name) for name in names]


def kit_ca(kit: Path) -> tuple[bytes, Secret]:
    """The kit's current CA certificate, and its private key as a ``Secret``.

    Raises:
        ConfigError: ``ca/ca.pem`` or ``ca/ca.key`` is missing (one line, naming the file).
    """
    folder = Path(kit).resolve() / "ca"
    cert, key = folder / "ca.pem", folder / "ca.key"
    if not cert.is_file():
        raise ConfigError(f"{cert} does not exist: KIT_DIR must be a kit written by fedcore provision")
    if not key.is_file():
        raise ConfigError(
            f"the CA key {key} is absent: issuing certificates needs it; run this where the kit's "
            "ca/ca.key is kept (the offline provisioning machine)"
        )
    return cert.read_bytes(), Secret(key.read_bytes(), "CA private key")


def kit_trust(kit: Path) -> bytes:
    """The CA bundle parties trust now: the kit's CA, plus the previous CA during a rotation."""
    folder = Path(kit).resolve() / "ca"
    previous = folder / PREVIOUS_CA
    bundle = (folder / "ca.pem").read_bytes()
    return bundle + previous.read_bytes() if previous.is_file() else bundle


def _replace(path: Path, data: bytes | Secret) -> None:
    """Replace ``path`` atomically; a ``Secret`` is written 0600 (``pki.write_private``)."""
    temp = path.with_name(path.name + ".new")
    if isinstance(data, Secret):
        pki.write_private(temp, data)
    else:
        temp.write_bytes(data)
    os.replace(temp, path)


def _hosts(kit: Path, party: KitParty) -> list[str]:
    """The hosts the party is dialled at: from its current certificate, else from the kit's configs."""
    if party.cert.is_file():
        try:
            return pki.party_hosts(party.cert.read_bytes())
        except AuthError:
            pass
    hosts: list[str] = []
    for path in sorted(Path(kit).resolve().glob("*/party.toml")):
        own = path.parent.name == party.party_id
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8")).get("party" if own else "peers")
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue  # another party's broken config says nothing about this one
        if not isinstance(table, dict):
            continue
        address = table.get("listen" if own else party.party_id, "")
        host = address.rpartition(":")[0].strip("[]") if isinstance(address, str) else ""
        if host not in _ANY_ADDRESS and host not in hosts:
            hosts.append(host)
    return hosts


def _issue(kit: Path, party: KitParty, ca: tuple[bytes, Secret], valid_days: int) -> dt.datetime:
    """Write a new key and certificate for ``party`` from ``ca``, and the kit's trust bundle."""
    cert, key = pki.make_party_cert(
        *ca, party.party_id, party.federation, _hosts(kit, party), valid_days=valid_days
    )
    try:
        pki.verify_party_cert(cert, ca[0])
    except AuthError:
        raise ConfigError(
            f"{Path(kit).resolve() / 'ca'}: ca.key does not belong to ca.pem (a certificate it signs "
            "does not chain to ca.pem)"
        ) from None
    party.cert.parent.mkdir(mode=0o700, exist_ok=True)
    _replace(party.key, key)
    _replace(party.cert, cert)
    _replace(party.ca, kit_trust(kit))
    return dt.datetime.fromisoformat(pki.cert_info(cert)["not_after"])


def renew(kit: Path, party_id: str, *, valid_days: int = PARTY_VALID_DAYS) -> dt.datetime:
    """Reissue one party's certificate and key from the kit's CA, keeping its party.toml.

    The new certificate names the same hosts as the old one; the party's ``ca.pem`` is set to
    the kit's trust bundle. Returns the new certificate's expiry.

    Raises:
        ConfigError: the CA key is absent, or the party folder or its party.toml is missing.
    """
    return _issue(kit, kit_party(kit, party_id), kit_ca(kit), valid_days)


def _kit_federation(parties: list[KitParty]) -> str:
    federations = {p.federation for p in parties}
    if len(federations) != 1:
        raise ConfigError(f"the kit's parties name different federations: {', '.join(sorted(federations))}")
    return federations.pop()


def rotate_ca(kit: Path, *, valid_days: int = PARTY_VALID_DAYS) -> list[str]:
    """Start a CA rotation: new CA, bundle ``ca.pem`` (new + old) and new-CA certificates everywhere.

    Returns:
        The party ids whose folders were rewritten.

    Raises:
        ConfigError: a rotation is already in progress, or the CA key is absent.
    """
    folder = Path(kit).resolve() / "ca"
    if (folder / PREVIOUS_CA).exists():
        raise ConfigError(
            f"a CA rotation is already in progress in {folder} ({PREVIOUS_CA} exists): "
            "finish it first with fedcore provision rotate-ca KIT_DIR --finish"
        )
    old_cert, old_key = kit_ca(kit)
    parties = kit_parties(kit)
    label = "rotated-" + dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    new_cert, new_key = pki.make_ca(_kit_federation(parties), valid_days=CA_VALID_DAYS, label=label)
    _replace(folder / PREVIOUS_CA, old_cert)
    _replace(folder / PREVIOUS_KEY, old_key)
    _replace(folder / "ca.key", new_key)
    _replace(folder / "ca.pem", new_cert)
    for party in parties:
        _issue(kit, party, (new_cert, new_key), valid_days)
    return [p.party_id for p in parties]


def finish_rotation(kit: Path) -> list[str]:
    """End a CA rotation: every party's ``ca.pem`` holds only the new CA; ``previous.*`` are deleted.

    Returns:
        The party ids whose ``ca.pem`` was rewritten.

    Raises:
        ConfigError: no rotation in progress, or a party of the kit still holds an old-CA certificate.
    """
    folder = Path(kit).resolve() / "ca"
    if not (folder / PREVIOUS_CA).exists():
        raise ConfigError(f"no CA rotation in progress in {folder} (no {PREVIOUS_CA}): nothing to finish")
    new_cert = (folder / "ca.pem").read_bytes()
    parties = kit_parties(kit)
    for party in parties:
        try:
            pki.verify_party_cert(party.cert.read_bytes(), new_cert)
        except (OSError, AuthError):
            raise ConfigError(
                f"{party.cert} is not a certificate of the new CA: renew it first "
                f"(fedcore provision renew KIT_DIR --party {party.party_id})"
            ) from None
    for party in parties:
        _replace(party.ca, new_cert)
    for name in (PREVIOUS_KEY, PREVIOUS_CA):
        (folder / name).unlink(missing_ok=True)
    return [p.party_id for p in parties]
