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

from fedcore.party.client import ApiClient
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
        [sys.executable, "-m", "fedcore.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def write_federation(path: Path, ports: list[int], parties: tuple[str, ...] = PARTIES) -> None:
    lines = ['federation = "testfed"']
    for i, party in enumerate(parties):
        lines += [
            "[[party]]",
            f'id = "{party}"',
            'host = "127.0.0.1"',
            f"peer_port = {ports[i]}",
            f"control_port = {ports[len(parties) + i]}",
        ]
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
            stdout=log,
            stderr=log,
            cwd=REPO,
        )
        self.wait_ready(party)

    def api(self, party: str) -> ApiClient:
        """An operator client of ``party``'s daemon (with its token when it serves TCP)."""
        return ApiClient(load_config(self.config(party)), timeout_s=30.0)

    def token(self, party: str) -> str:
        return (self.kit / party / "operator.token").read_text().strip()

    def wait_ready(self, party: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.procs[party].poll() is not None:
                raise RuntimeError(f"{party} daemon exited: {self.log(party)}")
            try:
                with self.api(party) as api:
                    if api.get("/api/v1/ping")["party"] == party:
                        return
            except Exception:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)  # polling a readiness probe, not waiting for an event we could get

    def kill(self, party: str) -> None:
        proc = self.procs.pop(party)
        proc.kill()
        proc.wait(timeout=10)

    def kill_all(self) -> None:
        """Kill every daemon still running (a fixture's teardown)."""
        for party in list(self.procs):
            if self.procs[party].poll() is None:
                self.kill(party)
            else:
                self.procs.pop(party)

    def stop(self, party: str, sig: int = signal.SIGTERM) -> int:
        proc = self.procs.pop(party)
        proc.send_signal(sig)
        return proc.wait(timeout=30)

    def log(self, party: str) -> str:
        return (self.kit / f"{party}.log").read_text(errors="replace")

    def job(
        self,
        script: str | Path,
        initiator: str,
        *extra: str,
        parties: str = "alice,bob,carol",
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        return cli(
            "job",
            "run",
            str(script),
            "--config",
            str(self.config(initiator)),
            "--parties",
            parties,
            "--json",
            *extra,
            timeout=timeout,
        )


def _policy_dir(root: Path, party: str) -> Path:
    folder = root / f"protocols_{party}"
    folder.mkdir()
    for script in ("plain_sum.py", "fedavg_digits.py"):
        shutil.copy(REPO / "protocols" / script, folder)
    for script in ("wait_step.py", "fail_step.py"):
        shutil.copy(SCRIPTS / script, folder)
    label = "carol's own" if party == "carol" else "shared"
    variant = f"def main(ctx):\n    return {{'variant': {label!r}}}\n"
    (folder / "variant.py").write_text(variant)
    return folder


def set_keys(config: Path, values: dict[str, object]) -> None:
    """Set ``key = value`` lines already in a party.toml (e.g. its [limits] or [peers])."""
    lines = []
    for line in config.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if "=" in line and key in values:
            value = values[key]
            line = f"{key} = " + (f'"{value}"' if isinstance(value, str) else str(value))
        lines.append(line)
    config.write_text("\n".join(lines) + "\n")


def _tune(config: Path, scripts: Path, initiators: list[str], control_port: int | None) -> None:
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
        elif line.startswith("control = ") and control_port is not None:
            line = f'control = "127.0.0.1:{control_port}"'
        lines.append(line)
    config.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fed")
    ports = free_ports(6)
    write_federation(root / "federation.toml", ports)
    kit = root / "kit"
    protocols = str(REPO / "protocols")
    result = cli("provision", str(root / "federation.toml"), "--out", str(kit), "--protocols", protocols)
    assert result.returncode == 0, result.stderr
    fed = Federation(kit)
    for party in PARTIES:
        # alice lets only alice and bob start jobs with her; bob and carol allow everyone
        initiators = ["alice", "bob"] if party == "alice" else list(PARTIES)
        # bob's operator API is the unix socket provision writes, alice's and carol's loopback TCP + token
        tcp = None if party == "bob" else ports[3 + PARTIES.index(party)]
        _tune(fed.config(party), _policy_dir(root, party), initiators, tcp)
    try:
        for party in PARTIES:
            fed.start(party)
        yield fed
    finally:
        fed.kill_all()
