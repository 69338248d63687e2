"""Revoking a party: its certificate is refused by the others while it is still valid.

``revoke(kit, party)`` writes the party's id and its certificate's serial number into the
``[revocation]`` section of every other party's ``party.toml`` in the kit (the section is
rewritten in place; the rest of each file is kept as it is). Operators install the updated
``party.toml`` at each party and restart its daemon; from then on a call made with the revoked
certificate, or any certificate carrying the revoked id, is refused with ``AuthError``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from cryptography import x509

from fedcore.errors import ConfigError
from fedcore.party.rotation import kit_parties
from fedcore.transport.base import PARTY_NAME

_SECTION = re.compile(r"^\s*\[revocation\]\s*(#.*)?$")
_ANY_SECTION = re.compile(r"^\s*\[")


def revoke(kit: Path, party_id: str) -> tuple[int | None, list[str]]:
    """Revoke ``party_id`` in every other party's ``party.toml`` of ``kit``.

    Returns:
        The revoked certificate's serial (None when the kit holds no certificate for it, as for
        a certificate issued outside the kit: then only the id is revoked), and the parties
        whose config now lists it.

    Raises:
        ConfigError: a malformed id, a kit without party folders, or no other party in it.
    """
    if not PARTY_NAME.match(party_id):
        raise ConfigError(f"bad party id {party_id!r}: expected 1-64 letters, digits, '_', '.' or '-'")
    parties = kit_parties(Path(kit))
    target = next((p for p in parties if p.party_id == party_id), None)
    serial = x509.load_pem_x509_certificate(target.cert.read_bytes()).serial_number if target else None
    others = [p for p in parties if p.party_id != party_id]
    if not others:
        raise ConfigError(f"kit {Path(kit).resolve()} has no party other than {party_id} to tell")
    for party in others:
        _add(party.config, party_id, serial)
    return serial, [p.party_id for p in others]


def _add(config: Path, party_id: str, serial: int | None) -> None:
    text = config.read_text(encoding="utf-8")
    current = tomllib.loads(text).get("revocation", {})
    ids = [str(i) for i in current.get("ids", [])]
    serials = [str(s) for s in current.get("serials", [])]
    if party_id not in ids:
        ids.append(party_id)
    if serial is not None and f"{serial:#x}" not in serials:
        serials.append(f"{serial:#x}")
    section = (
        "[revocation]\n# certificates refused although the CA signed them (fedcore provision revoke)\n"
        f"ids = [{', '.join(_quote(i) for i in ids)}]\n"
        f"serials = [{', '.join(_quote(s) for s in serials)}]\n"
    )
    replaced = _without_section(text).rstrip("\n") + "\n\n" + section
    tmp = config.with_name(config.name + ".tmp")
    tmp.write_text(replaced, encoding="utf-8")
    os.replace(tmp, config)  # an interrupted revoke leaves the old file or the new one


def _without_section(text: str) -> str:
    """``text`` without its ``[revocation]`` section (header to the next section or the end)."""
    out, inside = [], False
    for line in text.splitlines():
        if _SECTION.match(line):
            inside = True
            continue
        if inside and _ANY_SECTION.match(line):
            inside = False
        if not inside:
            out.append(line)
    return "\n".join(out) + "\n"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
