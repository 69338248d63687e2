"""``fedcore provision`` and ``fedcore party check``: kit layout, key modes, --force, exit codes."""

from __future__ import annotations

import contextlib
import io
import stat
import subprocess
from pathlib import Path

import pytest

from fedcore.cli import main
from fedcore.crypto import pki
from fedcore.errors import ConfigError
from fedcore.party.provision import load_federation

REPO = Path(__file__).resolve().parents[2]
FEDERATION = """federation = "prov"
[[party]]
id = "alice"
host = "127.0.0.1"
peer_port = 17301
control_port = 17401
[[party]]
id = "bob"
host = "bob.example.org"
listen_host = "0.0.0.0"
peer_port = 17302
control_port = 17402
"""


KIT_FILES = ["ca.pem", "operator.token", "party.key", "party.pem", "party.toml"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The fedcore command, in this process (these commands start no daemon)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prov")
    (root / "federation.toml").write_text(FEDERATION)
    proc = cli("provision", str(root / "federation.toml"), "--out", str(root / "kit"))
    assert proc.returncode == 0, proc.stderr
    return root / "kit"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_layout_modes_and_ca_key_only_in_ca(kit: Path) -> None:
    assert sorted(p.name for p in kit.iterdir()) == ["alice", "bob", "ca"]
    assert sorted(p.name for p in (kit / "ca").iterdir()) == ["ca.key", "ca.pem"]
    ca_key = (kit / "ca" / "ca.key").read_bytes()
    for party in ("alice", "bob"):
        folder = kit / party
        assert sorted(p.name for p in folder.iterdir()) == KIT_FILES
        assert _mode(folder / "party.key") == 0o600
        assert (folder / "ca.pem").read_bytes() == (kit / "ca" / "ca.pem").read_bytes()
        assert all(ca_key not in f.read_bytes() for f in folder.iterdir())
        cert = (folder / "party.pem").read_bytes()
        assert pki.verify_party_cert(cert, (kit / "ca" / "ca.pem").read_bytes()) == party
    assert _mode(kit / "ca" / "ca.key") == 0o600


def test_listen_address_differs_from_dialled_host(kit: Path) -> None:
    text = (kit / "bob" / "party.toml").read_text()
    assert 'listen = "0.0.0.0:17302"' in text and 'control = "127.0.0.1:17402"' in text
    assert 'bob = "bob.example.org:17302"' in (kit / "alice" / "party.toml").read_text()
    assert "bob.example.org" in pki.cert_info((kit / "bob" / "party.pem").read_bytes())["sans"]
    assert f'scripts = ["{REPO / "protocols"}"]' in text  # default: the repository's protocols/


def test_refuses_existing_kit_without_force(kit: Path) -> None:
    before = (kit / "alice" / "party.key").read_bytes()
    federation = str(kit.parent / "federation.toml")
    proc = cli("provision", federation, "--out", str(kit))
    assert proc.returncode == 2 and "already holds a kit" in proc.stderr and "--force" in proc.stderr
    assert (kit / "alice" / "party.key").read_bytes() == before


def test_force_replaces_kit(tmp_path: Path) -> None:
    (tmp_path / "federation.toml").write_text(FEDERATION)
    out = tmp_path / "kit"
    assert cli("provision", str(tmp_path / "federation.toml"), "--out", str(out)).returncode == 0
    before = (out / "ca" / "ca.pem").read_bytes()
    proc = cli("provision", str(tmp_path / "federation.toml"), "--out", str(out), "--force")
    assert proc.returncode == 0, proc.stderr
    assert (out / "ca" / "ca.pem").read_bytes() != before


def test_party_check_ok_and_config_error_exit_2(kit: Path, tmp_path: Path) -> None:
    proc = cli("party", "check", str(kit / "alice" / "party.toml"))
    assert proc.returncode == 0 and "config and TLS files OK" in proc.stdout
    bad = kit / "alice" / "bad.toml"
    bad.write_text((kit / "alice" / "party.toml").read_text().replace('cert = "party.pem"', 'cert = "x.pem"'))
    try:
        proc = cli("party", "check", str(bad))
    finally:
        bad.unlink()
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1
    assert lines[0].startswith(f"fedcore: error: file {bad}, key 'tls.cert': 'x.pem' does not exist")


def test_party_check_rejects_certificate_of_another_ca(kit: Path, tmp_path: Path) -> None:
    from fedcore.party.config import load_config
    from fedcore.party.tlscheck import verify_tls

    other_ca, _ = pki.make_ca("prov", valid_days=10)
    folder = tmp_path / "alice"
    folder.mkdir()
    for name in ("party.toml", "party.pem", "party.key"):
        (folder / name).write_bytes((kit / "alice" / name).read_bytes())
    (folder / "ca.pem").write_bytes(other_ca)
    with pytest.raises(ConfigError, match="not issued by the federation CA") as info:
        verify_tls(load_config(folder / "party.toml"))
    assert info.value.key == "tls.cert"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("peer_port = 17301", 'peer_port = "x"', "party[0].peer_port"),
        ('id = "bob"', 'id = "alice"', "party[1].id"),
        ('federation = "prov"', "federation = 1", "federation"),
    ],
)
def test_federation_file_errors(tmp_path: Path, old: str, new: str, key: str) -> None:
    path = tmp_path / "federation.toml"
    path.write_text(FEDERATION.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_federation(path)
    assert info.value.key == key and info.value.file == str(path)
