"""A three-party federation of real daemon processes on 127.0.0.1, shared by the e2e tests."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fedcore.party import control
from fedcore.party.config import load_config

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
PARTIES = ("alice", "bob", "carol")
READY_TIMEOUT_S = 30.0


def free_ports(count: int) -> list[int]:
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedcore.cli", *args], capture_output=True, text=True, timeout=timeout,
        cwd=REPO,
    )


def write_federation(path: Path, ports: list[int]) -> None:
    lines = ['federation = "testfed"']
    for i, party in enumerate(PARTIES):
        lines += ["[[party]]", f'id = "{party}"', 'host = "127.0.0.1"',
                  f"peer_port = {ports[i]}", f"control_port = {ports[3 + i]}"]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Federation:
    """Provisioned kit plus the running daemon processes."""

    kit: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @staticmethod
    def cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return cli(*args, timeout=timeout)

    def config(self, party: str) -> Path:
        return self.kit / party / "party.toml"

    def start(self, party: str) -> None:
        log = open(self.kit / f"{party}.log", "ab")  # noqa: SIM115 - the process owns it
        self.procs[party] = subprocess.Popen(
            [sys.executable, "-m", "fedcore.cli", "party", "serve", str(self.config(party))],
            stdout=log, stderr=log, cwd=REPO,
        )
        self.wait_ready(party)

    def wait_ready(self, party: str) -> None:
        endpoint = load_config(self.config(party)).control
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.procs[party].poll() is not None:
                raise RuntimeError(f"{party} daemon exited: {self.log(party)}")
            try:
                if control.call(endpoint, {"op": "ping"}, idle_timeout_s=5)["party"] == party:
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)  # polling a readiness probe, not waiting for an event we could get

    def kill(self, party: str) -> None:
        proc = self.procs.pop(party)
        proc.kill()
        proc.wait(timeout=10)

    def stop(self, party: str) -> int:
        proc = self.procs.pop(party)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=30)

    def log(self, party: str) -> str:
        return (self.kit / f"{party}.log").read_text(errors="replace")

    def job(self, script: str | Path, initiator: str, *extra: str, parties: str = "alice,bob,carol",
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return cli("job", "run", str(script), "--config", str(self.config(initiator)), "--parties", parties,
                   "--json", *extra, timeout=timeout)


def _policy_dir(root: Path, party: str) -> Path:
    folder = root / f"protocols_{party}"
    folder.mkdir()
    shutil.copy(REPO / "protocols" / "plain_sum.py", folder)
    for script in ("wait_step.py", "fail_step.py"):
        shutil.copy(SCRIPTS / script, folder)
    label = "carol's own" if party == "carol" else "shared"
    variant = f"def main(ctx):\n    return {{'variant': {label!r}}}\n"
    (folder / "variant.py").write_text(variant)
    return folder


def _tune(config: Path, scripts: Path, initiators: list[str], unix_control: bool) -> None:
    """Per-party policy folder and initiators, and short heartbeats so failures show in seconds."""
    text = config.read_text()
    lines = []
    for line in text.splitlines():
        if line.startswith("scripts = "):
            line = f'scripts = ["{scripts}"]'
        elif line.startswith("initiators = "):
            line = "initiators = [" + ", ".join(f'"{p}"' for p in initiators) + "]"
        elif line.startswith("heartbeat_s"):
            line = "heartbeat_s = 0.5"
        elif line.startswith("peer_timeout_s"):
            line = "peer_timeout_s = 2.0"
        elif line.startswith("backend = "):
            line = 'backend = "threads"'
        elif line.startswith("control = ") and unix_control:
            line = 'control = "unix:control.sock"'
        lines.append(line)
    config.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fed")
    write_federation(root / "federation.toml", free_ports(6))
    kit = root / "kit"
    protocols = str(REPO / "protocols")
    result = cli("provision", str(root / "federation.toml"), "--out", str(kit), "--protocols", protocols)
    assert result.returncode == 0, result.stderr
    fed = Federation(kit)
    for party in PARTIES:
        # alice lets only alice and bob start jobs with her; bob and carol allow everyone
        initiators = ["alice", "bob"] if party == "alice" else list(PARTIES)
        # bob's operator endpoint is a unix socket, alice's and carol's loopback TCP
        _tune(fed.config(party), _policy_dir(root, party), initiators, unix_control=party == "bob")
    try:
        for party in PARTIES:
            fed.start(party)
        yield fed
    finally:
        for party in list(fed.procs):
            proc = fed.procs.pop(party)
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
