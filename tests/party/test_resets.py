"""Liveness under connection resets (issue 12): a proxy between alice and bob resets every
connection about once a second. Messages still get through, so bob is never declared lost and
its result always reaches the initiator; a daemon that is really gone still is (the e2e tests)."""

from __future__ import annotations

import json

import pytest

from fedcore.party.config import load_config

from .conftest import (
    REPO,
    SCRIPTS,
    Federation,
    _policy_dir,
    _tune,
    cli,
    free_ports,
    set_keys,
    write_federation,
)
from .hostile import CuttingProxy

pytestmark = pytest.mark.slow
PAIR = ("alice", "bob")


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("resets")
    write_federation(root / "federation.toml", free_ports(4), PAIR)
    kit = root / "kit"
    made = cli(
        "provision", str(root / "federation.toml"), "--out", str(kit), "--protocols", str(REPO / "protocols")
    )
    assert made.returncode == 0, made.stderr
    federation = Federation(kit)
    proxies = []
    for me, other in (("alice", "bob"), ("bob", "alice")):
        folder = _policy_dir(root, me)
        (folder / "chatty.py").write_bytes((SCRIPTS / "chatty.py").read_bytes())
        _tune(federation.config(me), folder, list(PAIR), control_port=None)
        listen = load_config(federation.config(other)).listen
        proxy = CuttingProxy((listen.host, listen.port), cut_s=0.9)
        proxies.append(proxy)
        set_keys(federation.config(me), {other: f"127.0.0.1:{proxy.port}"})  # every call goes through it
    try:
        for party in PAIR:
            federation.start(party)
        federation.proxies = proxies  # type: ignore[attr-defined]
        yield federation
    finally:
        for proxy in proxies:
            proxy.close()
        federation.kill_all()


@pytest.mark.parametrize("quiet", ["false", "true"])
def test_a_peer_whose_connections_reset_is_not_lost(fed: Federation, quiet: str) -> None:
    cuts = sum(p.cuts for p in fed.proxies)  # type: ignore[attr-defined]
    proc = fed.job(
        SCRIPTS / "chatty.py",
        "alice",
        "--param",
        "rounds=6",
        "--param",
        "pause_s=0.8",
        "--param",
        f"quiet={quiet}",
        parties="alice,bob",
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    parties = json.loads(proc.stdout)["parties"]
    assert parties["alice"]["got"] == parties["bob"]["got"] == list(range(6))  # each exactly once
    assert sum(p.cuts for p in fed.proxies) - cuts >= 3  # type: ignore[attr-defined]  # resets happened
