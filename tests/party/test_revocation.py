"""Revoking a party (``fedcore provision revoke``), ``[revocation]`` in party.toml, and the
pending-proposal book with its single timer thread."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from fedcore.errors import ConfigError, PolicyRefused
from fedcore.party.config import load_config
from fedcore.party.proposals import Deadlines, ProposalBook

from .conftest import REPO, cli, free_ports, write_federation


@pytest.fixture
def kit(tmp_path: Path) -> Path:
    write_federation(tmp_path / "federation.toml", free_ports(6))
    out = tmp_path / "kit"
    made = cli(
        "provision",
        str(tmp_path / "federation.toml"),
        "--out",
        str(out),
        "--protocols",
        str(REPO / "protocols"),
    )
    assert made.returncode == 0, made.stderr
    return out


def test_revoke_writes_the_id_and_serial_into_every_other_party(kit: Path) -> None:
    proc = cli("provision", "revoke", "carol", "--kit", str(kit))
    assert proc.returncode == 0, proc.stderr
    assert "revoked carol (certificate serial 0x" in proc.stdout
    again = cli("provision", "revoke", str(kit), "--party", "carol")  # the renew-like form; idempotent
    assert again.returncode == 0, again.stderr
    for party in ("alice", "bob"):
        config = load_config(kit / party / "party.toml")  # the rest of the file still loads
        assert config.revocation.ids == ("carol",) and len(config.revocation.serials) == 1
        assert config.peers  # untouched
    assert load_config(kit / "carol" / "party.toml").revocation.ids == ()
    check = cli("party", "check", str(kit / "alice" / "party.toml"))
    assert check.returncode == 0, check.stderr
    assert "revoked (refused on the peer port): ids carol; certificate serials 0x" in check.stdout
    report = json.loads(cli("party", "check", str(kit / "alice" / "party.toml"), "--json").stdout)
    assert report["revoked"]["ids"] == ["carol"]


def test_revoking_an_id_outside_the_kit_and_bad_entries(kit: Path) -> None:
    proc = cli("provision", "revoke", "mallory", "--kit", str(kit))
    assert proc.returncode == 0 and "party id mallory" in proc.stdout, proc.stderr
    config = kit / "bob" / "party.toml"
    assert load_config(config).revocation.ids == ("mallory",)
    config.write_text(config.read_text().replace("serials = []", 'serials = ["zz"]'))
    with pytest.raises(ConfigError, match=r"revocation\.serials\[0\].*hex serial"):
        load_config(config)
    bad = cli("provision", "revoke", "no/such", "--kit", str(kit))
    assert bad.returncode == 2 and "bad party id" in bad.stderr


def test_proposal_book_caps_per_initiator_and_in_total() -> None:
    book = ProposalBook("bob", total=3, per_initiator=2)
    book.admit("carol", "j-1")
    book.admit("carol", "j-2")
    with pytest.raises(PolicyRefused, match="pending_proposals_per_peer"):
        book.admit("carol", "j-3")
    book.admit("alice", "j-4")
    with pytest.raises(PolicyRefused, match=r"\[limits\] pending_proposals\)"):
        book.admit("dave", "j-5")
    book.settle("j-1")
    book.admit("carol", "j-3")
    assert book.count("carol") == 2 and book.count() == 3


def test_deadlines_run_in_due_order_on_one_thread() -> None:
    deadlines = Deadlines("test-deadlines")
    ran: list[tuple[int, str]] = []
    done = threading.Event()
    before = threading.active_count()
    for i, delay in enumerate((0.2, 0.05, 0.1) * 10):
        deadlines.after(delay, lambda i=i: ran.append((i, threading.current_thread().name)))
    deadlines.after(0.3, done.set)
    assert threading.active_count() <= before + 1  # one thread for all 31 timers
    assert done.wait(5)
    assert len(ran) == 30 and {name for _, name in ran} == {"test-deadlines"}
    order = [i % 3 for i, _ in ran]
    assert order == sorted(order, key=lambda k: (0.2, 0.05, 0.1)[k])
    time.sleep(0.01)
    assert deadlines.pending() == 0
