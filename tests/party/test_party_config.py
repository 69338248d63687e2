"""party.toml validation: every mistake names the file, the key and the expected form."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcore.errors import ConfigError
from fedcore.party.config import load_config
from fedcore.party.provision import load_federation, provision

FEDERATION = """federation = "unit"
[[party]]
id = "alice"
host = "127.0.0.1"
peer_port = 17101
control_port = 17201
[[party]]
id = "bob"
host = "127.0.0.1"
peer_port = 17102
control_port = 17202
"""


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cfg")
    (root / "federation.toml").write_text(FEDERATION)
    (root / "protocols").mkdir()
    provision(
        load_federation(root / "federation.toml"), root / "kit", protocols=root / "protocols", control="tcp"
    )
    return root / "kit"


def _edit(kit: Path, tmp_path: Path, old: str, new: str) -> Path:
    """A copy of alice's folder whose party.toml has ``old`` replaced by ``new``."""
    folder = tmp_path / "alice"
    folder.mkdir()
    for name in ("ca.pem", "party.pem", "party.key", "operator.token"):
        (folder / name).write_bytes((kit / "alice" / name).read_bytes())
    (folder / "operator.token").chmod(0o600)
    text = (kit / "alice" / "party.toml").read_text()
    assert old in text
    (folder / "party.toml").write_text(text.replace(old, new))
    return folder / "party.toml"


def test_provisioned_config_loads(kit: Path) -> None:
    config = load_config(kit / "alice" / "party.toml")
    assert config.party_id == "alice" and config.federation == "unit"
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 17101)
    assert config.control.port == 17201 and dict(config.peers) == {"bob": "127.0.0.1:17102"}
    assert config.policy.initiators == ("alice", "bob")
    assert config.limits.peer_timeout_s == 5.0 and config.runtime.backend == "processes"


@pytest.mark.parametrize(
    ("old", "new", "key", "expected"),
    [
        ('id = "alice"\n', "", "party.id", "missing key; expected a party name"),
        ('listen = "127.0.0.1:17101"', "listen = 17101", "party.listen", 'expected "host:port", got int'),
        ('listen = "127.0.0.1:17101"', 'listen = "nowhere"', "party.listen", 'expected "host:port"'),
        ('key = "party.key"', 'key = "missing.key"', "tls.key", "'missing.key' does not exist"),
        ('backend = "processes"', 'backend = "gpu"', "runtime.backend", "expected one of inline"),
        ("heartbeat_s = 1.0", 'heartbeat_s = "fast"', "limits.heartbeat_s", "a positive number of seconds"),
        ("job_timeout_s = 3600", "job_timeout_s = -1", "limits.job_timeout_s", "expected a positive"),
        ('control = "127.0.0.1:17201"', 'control = "10.0.0.5:17201"', "party.control", "must be on loopback"),
        ("initiators = [", "initiators = 3\n#", "policy.initiators", "expected a list of party names"),
        ('bob = "127.0.0.1:17102"', 'alice = "127.0.0.1:17102"', "peers.alice", "not its own peer"),
        ("[data]", '[data]\ndigits = "data/none.npz"', "data.digits", "does not exist"),
        ("[limits]", "[limits]\ntimeout = 3", "limits.timeout", "unknown key"),
        ("[tls]", "[tlss]", "tlss", "unknown section"),
    ],
)
def test_errors_name_file_key_and_form(
    kit: Path, tmp_path: Path, old: str, new: str, key: str, expected: str
) -> None:
    path = _edit(kit, tmp_path, old, new)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path) and info.value.key == key
    assert str(path) in str(info.value) and expected in str(info.value)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "party.toml"
    bad.write_text("[party\nid=")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(bad)
    assert info.value.file == str(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_unix_control_socket(kit: Path, tmp_path: Path) -> None:
    path = _edit(kit, tmp_path, 'control = "127.0.0.1:17201"', 'control = "unix:run/alice.sock"')
    assert load_config(path).control.unix_path == tmp_path / "alice" / "run" / "alice.sock"


def test_tcp_control_needs_a_private_token_file(kit: Path, tmp_path: Path) -> None:
    path = _edit(kit, tmp_path, 'token_file = "operator.token"', "")
    with pytest.raises(ConfigError, match="needs an operator credential") as info:
        load_config(path)
    assert info.value.key == "api.token_file"
    path.write_text(path.read_text().replace("[api]\n", '[api]\ntoken_file = "operator.token"\n'))
    for mode in (0o644, 0o660):
        (path.parent / "operator.token").chmod(mode)
        with pytest.raises(ConfigError, match="readable or writable by other users"):
            load_config(path)
    (path.parent / "operator.token").chmod(0o440)  # the daemon's group may read it (k8s fsGroup)
    load_config(path)
    (path.parent / "operator.token").chmod(0o600)
    config = load_config(path)
    assert config.api_token_file == path.parent / "operator.token"
    assert config.state_dir == path.parent / "state"  # [state] dir, beside party.toml


def test_provision_defaults_to_the_unix_socket(tmp_path: Path) -> None:
    (tmp_path / "federation.toml").write_text(FEDERATION)
    (tmp_path / "protocols").mkdir()
    provision(
        load_federation(tmp_path / "federation.toml"), tmp_path / "kit", protocols=tmp_path / "protocols"
    )
    config = load_config(tmp_path / "kit" / "alice" / "party.toml")
    assert config.control.unix_path == tmp_path / "kit" / "alice" / "control.sock"
    assert (tmp_path / "kit" / "alice" / "operator.token").stat().st_mode & 0o777 == 0o600


def test_check_rejects_foreign_certificate_and_mismatched_key(kit: Path, tmp_path: Path) -> None:
    from fedcore.party.tlscheck import verify_tls

    path = _edit(kit, tmp_path, 'cert = "party.pem"', 'cert = "bob.pem"')
    (path.parent / "bob.pem").write_bytes((kit / "bob" / "party.pem").read_bytes())
    with pytest.raises(ConfigError, match="carries party id 'bob'") as info:
        verify_tls(load_config(path))
    assert info.value.key == "tls.cert"
    (path.parent / "party.toml").write_text(path.read_text().replace('"bob.pem"', '"party.pem"'))
    (path.parent / "party.key").write_bytes((kit / "bob" / "party.key").read_bytes())
    with pytest.raises(ConfigError, match="does not match the certificate") as info:
        verify_tls(load_config(path))
    assert info.value.key == "tls.key"
