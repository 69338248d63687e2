"""``fedcore provision renew`` and ``rotate-ca``: certificates from the kit's CA, CA bundles in a rotation."""

from __future__ import annotations

import contextlib
import io
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedcore.cli import main
from fedcore.crypto import pki
from fedcore.crypto.secret import Secret
from fedcore.errors import AuthError, ConfigError
from fedcore.party.config import load_config
from fedcore.party.tlscheck import verify_tls

FEDERATION = """federation = "rot"
[[party]]
id = "alice"
host = "127.0.0.1"
peer_port = 17501
control_port = 17601
[[party]]
id = "bob"
host = "bob.example.org"
listen_host = "0.0.0.0"
peer_port = 17502
control_port = 17602
"""


KIT_FILES = ["ca.pem", "operator.token", "party.key", "party.pem", "party.toml"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The fedcore command, in this process (these commands start no daemon)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture
def kit(tmp_path: Path) -> Path:
    (tmp_path / "federation.toml").write_text(FEDERATION)
    proc = cli("provision", str(tmp_path / "federation.toml"), "--out", str(tmp_path / "kit"))
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "kit"


def _read(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------------------------- renew


def test_renew_issues_a_new_key_and_certificate_from_the_kit_ca(kit: Path) -> None:
    before, alice = _read(kit / "bob"), _read(kit / "alice")
    proc = cli("provision", "renew", str(kit), "--party", "bob", "--valid-days", "30")
    assert proc.returncode == 0, proc.stderr
    assert "bob: new certificate and key" in proc.stdout
    after = _read(kit / "bob")
    ca = (kit / "ca" / "ca.pem").read_bytes()
    assert pki.verify_party_cert(after["party.pem"], ca) == "bob"
    assert after["party.pem"] != before["party.pem"] and after["party.key"] != before["party.key"]
    assert _mode(kit / "bob" / "party.key") == 0o600
    assert after["party.toml"] == before["party.toml"] and after["ca.pem"] == before["ca.pem"]
    assert pki.party_hosts(after["party.pem"]) == ["bob.example.org"]  # the old certificate's hosts
    assert 29 <= pki.cert_info(after["party.pem"])["days_left"] <= 30
    assert pki.verify_party_cert(before["party.pem"], ca) == "bob"  # the old one still parses and chains
    assert sorted(after) == KIT_FILES  # no temp files left
    assert verify_tls(load_config(kit / "bob" / "party.toml"))["party_id"] == "bob"  # key matches cert
    assert _read(kit / "alice") == alice  # nobody else changes


def test_renew_without_a_certificate_takes_the_hosts_from_the_kit(kit: Path) -> None:
    (kit / "bob" / "party.pem").unlink()
    (kit / "bob" / "party.key").unlink()  # the provisioner deleted its copy of the key
    assert cli("provision", "renew", str(kit), "--party", "bob").returncode == 0
    assert pki.party_hosts((kit / "bob" / "party.pem").read_bytes()) == ["bob.example.org"]
    assert _mode(kit / "bob" / "party.key") == 0o600


def test_renew_refuses_without_the_ca_key(kit: Path) -> None:
    (kit / "ca" / "ca.key").unlink()
    before = _read(kit / "alice")
    proc = cli("provision", "renew", str(kit), "--party", "alice")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1
    assert lines[0].startswith("fedcore: error: the CA key ") and "ca.key is absent" in lines[0]
    assert _read(kit / "alice") == before


def test_renew_names_an_unknown_party(kit: Path) -> None:
    proc = cli("provision", "renew", str(kit), "--party", "mallory")
    assert proc.returncode == 2 and "no party 'mallory' in kit" in proc.stderr
    proc = cli("provision", "renew", str(kit), "--party", "../ca")
    assert proc.returncode == 2 and "bad party id '../ca'" in proc.stderr


# ------------------------------------------------------------------------------ CLI contract


def test_the_original_form_and_its_errors_are_unchanged(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "federation.toml").write_text(FEDERATION)
    proc = cli("provision", str(tmp_path / "federation.toml"))
    assert proc.returncode == 2 and "the following arguments are required: --out" in proc.stderr
    proc = cli("provision", str(tmp_path / "federation.toml"), "--out", str(tmp_path / "k"), "--party", "x")
    assert proc.returncode == 2 and "--party not allowed" in proc.stderr
    assert not (tmp_path / "k").exists()
    monkeypatch.chdir(tmp_path)  # a federation file named like an action still works with --out
    (tmp_path / "renew").write_text(FEDERATION)
    proc = cli("provision", "renew", "--out", "kit2")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "kit2").iterdir()) == ["alice", "bob", "ca"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["renew", "KIT"], "required: --party"),
        (["renew", "--party", "bob"], "required: KIT_DIR"),
        (["renew", "KIT", "--party", "bob", "--out", "x"], "--out not allowed"),
        (["rotate-ca", "KIT", "--party", "bob"], "--party not allowed"),
        (["rotate-ca", "KIT", "--finish", "--valid-days", "3"], "--valid-days (with --finish) not allowed"),
        (["renew", "KIT", "--party", "bob", "--valid-days", "0"], "expected a number of days"),
    ],
)
def test_kit_actions_refuse_wrong_options(kit: Path, args: list[str], message: str) -> None:
    proc = cli("provision", *[str(kit) if a == "KIT" else a for a in args])
    assert proc.returncode == 2 and message in proc.stderr


# -------------------------------------------------------------------------------- rotate-ca


def test_rotate_ca_bundles_both_cas_then_finish_drops_the_old_one(kit: Path) -> None:
    old_ca = (kit / "ca" / "ca.pem").read_bytes()
    old = {p: _read(kit / p) for p in ("alice", "bob")}
    proc = cli("provision", "rotate-ca", str(kit))
    assert proc.returncode == 0, proc.stderr
    new_ca = (kit / "ca" / "ca.pem").read_bytes()
    assert new_ca != old_ca and (kit / "ca" / "previous.pem").read_bytes() == old_ca
    assert _mode(kit / "ca" / "ca.key") == 0o600 and _mode(kit / "ca" / "previous.key") == 0o600
    for party in ("alice", "bob"):
        files = _read(kit / party)
        assert files["ca.pem"] == new_ca + old_ca and files["party.toml"] == old[party]["party.toml"]
        assert pki.verify_party_cert(files["party.pem"], new_ca) == party  # issued by the new CA
        assert pki.verify_party_cert(old[party]["party.pem"], files["ca.pem"]) == party  # old still accepted
        assert files["party.key"] != old[party]["party.key"] and _mode(kit / party / "party.key") == 0o600
        assert verify_tls(load_config(kit / party / "party.toml"))["trusted_cas"] == [
            pki.cert_info(new_ca)["subject"],
            pki.cert_info(old_ca)["subject"],
        ]
    assert pki.party_hosts(_read(kit / "bob")["party.pem"]) == ["bob.example.org"]

    proc = cli("provision", "rotate-ca", str(kit))
    assert proc.returncode == 2 and "already in progress" in proc.stderr
    assert (kit / "ca" / "ca.pem").read_bytes() == new_ca

    assert cli("provision", "renew", str(kit), "--party", "alice").returncode == 0  # during the rotation
    assert (kit / "alice" / "ca.pem").read_bytes() == new_ca + old_ca

    proc = cli("provision", "rotate-ca", str(kit), "--finish")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (kit / "ca").iterdir()) == ["ca.key", "ca.pem"]
    for party in ("alice", "bob"):
        assert (kit / party / "ca.pem").read_bytes() == new_ca
        verify_tls(load_config(kit / party / "party.toml"))
        with pytest.raises(AuthError, match="not issued by the federation CA"):
            pki.verify_party_cert(old[party]["party.pem"], new_ca)
    proc = cli("provision", "rotate-ca", str(kit), "--finish")
    assert proc.returncode == 2 and "no CA rotation in progress" in proc.stderr


def test_finish_refuses_while_a_party_in_the_kit_holds_an_old_ca_certificate(kit: Path) -> None:
    old_bob = _read(kit / "bob")
    assert cli("provision", "rotate-ca", str(kit)).returncode == 0
    (kit / "bob" / "party.pem").write_bytes(old_bob["party.pem"])
    proc = cli("provision", "rotate-ca", str(kit), "--finish")
    assert proc.returncode == 2 and "renew it first" in proc.stderr and "--party bob" in proc.stderr
    assert (kit / "ca" / "previous.pem").exists()
    assert len(pki.load_ca_bundle(_read(kit / "alice")["ca.pem"])) == 2


def test_rotate_ca_refuses_without_the_ca_key(kit: Path) -> None:
    (kit / "ca" / "ca.key").unlink()
    proc = cli("provision", "rotate-ca", str(kit))
    assert proc.returncode == 2 and "ca.key is absent" in proc.stderr
    assert not (kit / "ca" / "previous.pem").exists()


def test_party_check_refuses_a_party_certificate_inside_ca_pem(kit: Path) -> None:
    folder = kit / "alice"
    ca, bob = (kit / "ca" / "ca.pem").read_bytes(), (kit / "bob" / "party.pem").read_bytes()
    (folder / "ca.pem").write_bytes(ca + bob)
    with pytest.raises(ConfigError, match="not a CA certificate") as caught:
        verify_tls(load_config(folder / "party.toml"))
    assert caught.value.key == "tls.ca"


# ------------------------------------------------------- mixed CAs over the real transport


@contextlib.contextmanager
def _nodes(tls: dict[str, tuple[bytes, bytes, Secret]]) -> Iterator[dict]:
    """PeerNodes on 127.0.0.1 with the given (ca, cert, key) each, started and wired to each other."""
    from fedcore.transport.grpc import PeerNode, TlsMaterial

    nodes = {n: PeerNode(n, "127.0.0.1:0", {}, TlsMaterial(*m), peer_timeout_s=5.0) for n, m in tls.items()}
    try:
        book = {n: f"127.0.0.1:{node.start()}" for n, node in nodes.items()}
        for node in nodes.values():
            node.set_peers(book)
        yield nodes
    finally:
        for node in nodes.values():
            node.stop(0)


def _material(folder: Path, ca: bytes | None = None) -> tuple[bytes, bytes, Secret]:
    files = _read(folder)
    return ca or files["ca.pem"], files["party.pem"], Secret(files["party.key"], "party key")


def test_old_and_new_ca_certificates_talk_when_both_trust_the_bundle(kit: Path, tmp_path: Path) -> None:
    shutil.copytree(kit / "alice", tmp_path / "alice-old")  # alice has not installed her new certificate yet
    assert cli("provision", "rotate-ca", str(kit)).returncode == 0
    bundle = (kit / "alice" / "ca.pem").read_bytes()
    with _nodes({"alice": _material(tmp_path / "alice-old", bundle), "bob": _material(kit / "bob")}) as nodes:
        ta = nodes["alice"].open_job("j", ("alice", "bob"))
        tb = nodes["bob"].open_job("j", ("alice", "bob"))
        ta.send("bob", "x", b"from the old CA")
        assert tb.recv("alice", "x", 10.0) == b"from the old CA"
        tb.send("alice", "y", b"from the new CA")
        assert ta.recv("bob", "y", 10.0) == b"from the new CA"
        for me, peer in (("alice", "bob"), ("bob", "alice")):
            report = nodes[me].check_peer(peer, 5.0)
            assert report.tls_verified and report.identity == peer and report.error is None


def test_a_party_trusting_only_the_old_ca_refuses_a_new_ca_certificate(kit: Path, tmp_path: Path) -> None:
    shutil.copytree(kit / "alice", tmp_path / "alice-old")  # alice never installed the bundle
    assert cli("provision", "rotate-ca", str(kit)).returncode == 0
    with _nodes({"alice": _material(tmp_path / "alice-old"), "bob": _material(kit / "bob")}) as nodes:
        report = nodes["alice"].check_peer("bob", 5.0)
        assert report.reachable and not report.tls_verified
        assert "does not chain to our federation CA" in (report.error or "")


def test_party_check_shows_a_rotation_in_progress(kit: Path) -> None:
    config = str(kit / "alice" / "party.toml")
    assert "trusts" not in cli("party", "check", config).stdout
    assert cli("provision", "rotate-ca", str(kit)).returncode == 0
    during = cli("party", "check", config)
    assert during.returncode == 0 and "trusts 2 CAs (rotation in progress)" in during.stdout
    assert cli("provision", "rotate-ca", str(kit), "--finish").returncode == 0
    assert "trusts" not in cli("party", "check", config).stdout
