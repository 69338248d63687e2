"""Provisioning: a federation file -> one startup kit per party plus the CA (``fedcore provision``).

Theory of operation
-------------------
``provision`` writes the kit (layout in PARTY_FORMATS.md); keys are 0600 from creation on
(``pki.write_private``). Renewing a party's certificate and rotating the CA later are in
``fedcore.party.rotation``.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from fedcore.crypto import pki
from fedcore.crypto.secret import Secret
from fedcore.errors import ConfigError
from fedcore.party.config import TomlReader, check_name

CA_VALID_DAYS = 3650
PARTY_VALID_DAYS = 825


@dataclass(frozen=True)
class PartySpec:
    """One ``[[party]]`` of a federation file."""

    party_id: str
    host: str
    peer_port: int
    control_port: int
    listen_host: str


@dataclass(frozen=True)
class FederationSpec:
    """A whole federation file."""

    path: Path
    federation: str
    parties: tuple[PartySpec, ...]


def load_federation(path: str | Path) -> FederationSpec:
    """Read and validate a ``federation.toml``.

    Raises:
        ConfigError: naming the file, key and expected form.
    """
    r = TomlReader.load(path, "federation file")
    path, doc = r.path, r.doc
    federation = doc.get("federation")
    if not isinstance(federation, str):
        raise r.fail("federation", f'expected a federation name like "demo", got {federation!r}')
    check_name(r, "federation", federation)
    raw_parties = doc.get("party")
    if not isinstance(raw_parties, list) or not raw_parties:
        raise r.fail("party", "expected one or more [[party]] tables")
    parties = tuple(_party(r, i, entry) for i, entry in enumerate(raw_parties))
    _check_unique(r, parties)
    return FederationSpec(path, federation, parties)


def _party(r: TomlReader, i: int, entry: object) -> PartySpec:
    key = f"party[{i}]"
    if not isinstance(entry, dict):
        raise r.fail(key, "expected a [[party]] table")
    r.check_keys(key, entry, ("id", "host", "peer_port", "control_port", "listen_host"))
    party_id = check_name(r, f"{key}.id", r.get(key, "id", str, 'a party name like "alice"', table=entry))
    host = r.get(key, "host", str, 'the address peers dial, like "127.0.0.1"', table=entry)
    ports = []
    for name in ("peer_port", "control_port"):
        port = r.get(key, name, int, "a port number 1-65535", table=entry)
        if not 1 <= port <= 65535:
            raise r.fail(f"{key}.{name}", f"expected a port number 1-65535, got {port}")
        ports.append(port)
    listen_host = r.get(key, "listen_host", str, "a bind address like 0.0.0.0", host, table=entry)
    return PartySpec(party_id, host, ports[0], ports[1], listen_host)


def _check_unique(r: TomlReader, parties: tuple[PartySpec, ...]) -> None:
    seen: set[str] = set()
    for i, party in enumerate(parties):
        if party.party_id in seen:
            raise r.fail(f"party[{i}].id", f"party id {party.party_id!r} is given twice")
        seen.add(party.party_id)


def provision(
    spec: FederationSpec,
    out: Path,
    *,
    protocols: Path,
    force: bool = False,
    control: str = "unix",
    state_dir: str | None = None,
) -> list[Path]:
    """Write the kit: ``out/ca/`` and one folder per party (layout in PARTY_FORMATS.md).

    Args:
        spec: the federation.
        out: the kit folder.
        protocols: the folder of allowed protocol scripts, written as an absolute path into
            every party's ``[policy] scripts``.
        force: replace an existing kit.
        control: ``"unix"`` (the operator API on ``control.sock``, mode 0600) or ``"tcp"``
            (``127.0.0.1:<control_port>``, with the token of ``operator.token``: containers).
        state_dir: each party's state folder (``{party}`` is replaced by its id), written as
            ``[state] dir``; the unix socket goes there too, for a kit mounted read-only.

    Returns:
        The written party.toml paths.

    Raises:
        ConfigError: the kit exists and ``force`` is not set, or ``protocols`` is not a folder.
    """
    out = Path(out).resolve()
    protocols = Path(protocols).resolve()
    if not protocols.is_dir():
        raise ConfigError(f"--protocols {protocols} is not a folder of protocol scripts")
    _prepare(out, spec, force)
    ca_cert, ca_key = pki.make_ca(spec.federation, valid_days=CA_VALID_DAYS)
    (out / "ca").mkdir(mode=0o700)
    (out / "ca" / "ca.pem").write_bytes(ca_cert)
    pki.write_private(out / "ca" / "ca.key", ca_key)
    written = []
    for party in spec.parties:
        folder = out / party.party_id
        folder.mkdir(mode=0o700)
        hosts = sorted({party.host, party.listen_host} - {"0.0.0.0", "::", ""})  # noqa: S104 - not a bind
        cert, key = pki.make_party_cert(
            ca_cert, ca_key, party.party_id, spec.federation, hosts, valid_days=PARTY_VALID_DAYS
        )
        (folder / "ca.pem").write_bytes(ca_cert)
        (folder / "party.pem").write_bytes(cert)
        pki.write_private(folder / "party.key", key)
        # the operator API's credential when it listens on TCP (containers); 0600 like the key
        token = Secret((secrets.token_urlsafe(32) + "\n").encode(), "operator token")
        pki.write_private(folder / "operator.token", token)
        config = folder / "party.toml"
        config.write_text(
            party_toml(spec, party, protocols, control=control, state_dir=state_dir), encoding="utf-8"
        )
        written.append(config)
    return written


def _prepare(out: Path, spec: FederationSpec, force: bool) -> None:
    targets = [out / "ca", *(out / p.party_id for p in spec.parties)]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise ConfigError(
            f"{out} already holds a kit ({', '.join(t.name for t in existing)}); "
            "pass --force to replace it (its keys and certificates are lost)"
        )
    for target in existing:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def party_toml(
    spec: FederationSpec,
    party: PartySpec,
    protocols: Path,
    *,
    control: str = "unix",
    state_dir: str | None = None,
) -> str:
    """The text of one party's ``party.toml``."""
    state = state_dir.replace("{party}", party.party_id) if state_dir else "state"
    sock = f"{state}/control.sock" if state_dir else "control.sock"
    peers = "\n".join(
        f"{p.party_id} = {_quote(f'{p.host}:{p.peer_port}')}" for p in spec.parties if p is not party
    )
    return _TEMPLATE.format(
        id=party.party_id,
        federation=spec.federation,
        id_q=_quote(party.party_id),
        federation_q=_quote(spec.federation),
        listen=_quote(f"{party.listen_host}:{party.peer_port}"),
        control_port=party.control_port,
        control=_quote(f"unix:{sock}" if control == "unix" else f"127.0.0.1:{party.control_port}"),
        state=_quote(state),
        peers=peers,
        scripts=_quote(str(protocols)),
        initiators=", ".join(_quote(p.party_id) for p in spec.parties),
    )


_TEMPLATE = """# {id} of federation {federation}; written by fedcore provision.
# Paths are relative to this file's folder.

[party]
id = {id_q}
federation = {federation_q}
listen = {listen}
# the operator API: a unix socket (mode 0600) by default; on TCP (containers), every request
# needs the token of [api] token_file:  control = "127.0.0.1:{control_port}"
control = {control}

[api]
token_file = "operator.token"

[state]
# the job store and each job's folder (writable by the daemon)
dir = {state}

[tls]
ca = "ca.pem"
cert = "party.pem"
key = "party.key"

[peers]
{peers}

[runtime]
backend = "processes"
# workers = 2

[policy]
scripts = [{scripts}]
initiators = [{initiators}]

[limits]
# what a peer can make this daemon hold (deploy/README.md, "Limits on the peer port")
max_value_bytes = 2147483648
mailbox_bytes = 4294967296
pending_bytes = 67108864
peer_streams = 16
stream_idle_s = 30.0
keepalive_s = 30.0
connection_age_s = 3600.0
pending_proposals = 64
pending_proposals_per_peer = 16
proposal_ttl_s = 60.0
heartbeat_s = 1.0
peer_timeout_s = 5.0
job_timeout_s = 3600

[data]
# digits = "data/digits.npz"
"""
