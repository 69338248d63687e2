"""The peer port against a hostile peer holding a real CA-signed certificate (issue 12).

Real daemon processes on 127.0.0.1 (alice, bob, carol; dave provisioned then revoked). bob is
attacked: by carol, a member, and by mallory, whose certificate the federation's CA signed but
who is no member. Each attack is refused or bounded with a typed error, bob's RSS (VmRSS of
its process) and thread count stay within a stated bound, and a job alice runs with bob during
or after the attack succeeds. The daemons run with small limits so that the bounds show with
small hostile sizes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from fedcore import wire
from fedcore.errors import AuthError, PolicyRefused, ProtocolError
from fedcore.party import messages as m
from fedcore.party.config import load_config
from fedcore.transport._grpc_client import PeerLink
from fedcore.wire import party_pb2 as pb

from .conftest import REPO, Federation, _policy_dir, _tune, cli, free_ports, set_keys, write_federation
from .hostile import Hostile, kit_tls, outsider_tls, status_kib

pytestmark = pytest.mark.slow
PARTIES = ("alice", "bob", "carol", "dave")
MIB = 1 << 20
LIMITS = {
    "max_value_bytes": 8 * MIB,
    "mailbox_bytes": 16 * MIB,
    "pending_bytes": 256 << 10,
    "peer_streams": 8,
    "stream_idle_s": 2.0,
    "pending_proposals": 6,
    "pending_proposals_per_peer": 3,
    "proposal_ttl_s": 3.0,
}
PLAIN_SUM = REPO / "protocols" / "plain_sum.py"


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hostile")
    write_federation(root / "federation.toml", free_ports(2 * len(PARTIES)), PARTIES)
    kit = root / "kit"
    made = cli(
        "provision", str(root / "federation.toml"), "--out", str(kit), "--protocols", str(REPO / "protocols")
    )
    assert made.returncode == 0, made.stderr
    revoked = cli("provision", "revoke", "dave", "--kit", str(kit))  # dave leaves the federation
    assert revoked.returncode == 0, revoked.stderr
    federation = Federation(kit)
    for party in PARTIES[:3]:
        _tune(federation.config(party), _policy_dir(root, party), list(PARTIES[:3]), control_port=None)
        set_keys(federation.config(party), LIMITS)
    try:
        for party in PARTIES[:3]:
            federation.start(party)
        yield federation
    finally:
        federation.kill_all()


def bob_address(fed: Federation) -> str:
    return str(load_config(fed.config("bob")).listen)


def legit_job(fed: Federation) -> None:
    """alice and bob run a job through the CLI; it must succeed with both results."""
    proc = fed.job(PLAIN_SUM, "alice", "--param", "dim=3", parties="alice,bob")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(json.loads(proc.stdout)["parties"]) == {"alice", "bob"}


def env(
    job: str, tag: str = "t", total: int = 0, src: str = "carol", dst: str = "bob", seq: int = 0
) -> pb.Envelope:
    return pb.Envelope(job=job, src=src, dst=dst, tag=tag, seq=seq, total_bytes=total, kind=pb.Envelope.DATA)


def rss_mib(fed: Federation, party: str = "bob") -> float:
    return status_kib(fed.procs[party].pid, "VmRSS") / 1024


def test_peer_strings_in_logs_are_escaped_and_refusals_rate_limited(fed: Federation) -> None:
    carol = Hostile(kit_tls(fed.kit, "carol"), bob_address(fed), "bob")
    before = fed.log("bob").count("\n")
    forged = "t\n2099-01-01 00:00:00,000 WARNING fedcore.transport FORGED line"
    for seq in range(60):  # each is refused: addressed to alice, sent to bob
        with pytest.raises(ProtocolError, match="sent a message for 'alice' to bob"):
            carol.message(env("j-logs", forged, dst="alice", seq=seq))
    carol.close()
    new = fed.log("bob").splitlines()[before:]
    assert not any("FORGED" in line and not line.startswith("20") for line in new)
    assert not any(line.startswith("2099") for line in new)
    refusals = [line for line in new if "refused a message" in line and "from carol" in line]
    assert refusals and "\\n2099-01-01" in refusals[0]  # escaped, on carol's refusal line
    assert len(refusals) <= 10  # 60 refusals, at most RateLimit.burst lines a minute
    legit_job(fed)


def test_non_member_and_revoked_certificates_are_refused_on_first_call(fed: Federation) -> None:
    address = bob_address(fed)
    for who, why in (("mallory", "not a member"), ("dave", "revoked")):
        tls = outsider_tls(fed.kit, who) if who == "mallory" else kit_tls(fed.kit, who)
        peer = Hostile(tls, address, "bob")
        with pytest.raises(AuthError, match=why):
            peer.ping()
        with pytest.raises(AuthError, match=why):  # cannot buffer anything for a job id that does not exist
            peer.message(env("j-nope", src=who, total=4), b"data")
        with pytest.raises(AuthError, match=why):
            peer.control("job.propose", wire.encode({"job_id": "j-nope"}))
        peer.close()
        lines = [line for line in fed.log("bob").splitlines() if f"from {who}:" in line and "refused" in line]
        assert len(lines) == 1, lines  # three calls on one connection: logged once
    check = cli("party", "check", str(fed.config("bob")), "--json")
    assert check.returncode == 0, check.stderr
    revoked = json.loads(check.stdout)["revoked"]
    assert revoked["ids"] == ["dave"] and len(revoked["serials"]) == 1
    legit_job(fed)


def test_stalled_streams_of_one_member_leave_the_others_served(fed: Federation) -> None:
    """40 streams that never send a frame: 8 are held (peer_streams), the rest refused at once,
    the held ones cancelled after stream_idle_s; alice's pings and jobs go on meanwhile."""
    carol = Hostile(kit_tls(fed.kit, "carol"), bob_address(fed), "bob")
    bob_pid = fed.procs["bob"].pid
    threads_before = status_kib(bob_pid, "Threads")
    release, stop = threading.Event(), threading.Event()
    outcomes: dict[str, int] = {}

    def attack() -> None:  # keep 40 stalled streams open for as long as the test runs
        calls = [carol.stalled_send(release) for _ in range(40)]
        while not stop.is_set():
            for i, call in enumerate(calls):
                if call.done():
                    code = call.exception().code().name if call.exception() else "OK"
                    outcomes[code] = outcomes.get(code, 0) + 1
                    calls[i] = carol.stalled_send(release)
            time.sleep(0.05)
        release.set()

    attacker = threading.Thread(target=attack)
    attacker.start()
    try:
        time.sleep(0.5)
        alice = PeerLink("alice", "bob", bob_address(fed), kit_tls(fed.kit, "alice"))
        latencies = []
        for _ in range(5):
            start = time.monotonic()
            assert alice.ping(5.0) == "bob"
            latencies.append(time.monotonic() - start)
        alice.close()
        assert max(latencies) < 1.0, latencies
        legit_job(fed)  # during the attack
        threads_during = status_kib(bob_pid, "Threads")
        time.sleep(2.5)  # past stream_idle_s: the first held streams were cancelled
    finally:
        stop.set()
        attacker.join(10)
        carol.close()
    assert outcomes.get("RESOURCE_EXHAUSTED", 0) >= 32  # over carol's 8 slots: refused at once
    assert outcomes.get("CANCELLED", 0) >= 1  # held ones: cancelled by the idle deadline
    assert threads_during - threads_before < 30  # a bounded pool, not a thread per stream
    legit_job(fed)  # and after


def test_oversized_frames_lies_and_long_tags_are_refused_before_buffering(fed: Federation) -> None:
    carol = Hostile(kit_tls(fed.kit, "carol"), bob_address(fed), "bob")
    rss_before = rss_mib(fed)
    peak_before = status_kib(fed.procs["bob"].pid, "VmHWM") / 1024
    big = pb.Frame(header=env("j-big", total=10), chunk=bytes(48 * MIB)).SerializeToString()
    with pytest.raises(ProtocolError, match="RESOURCE_EXHAUSTED"):  # the gRPC frame limit
        carol.frames(big, timeout_s=30)
    del big
    peak = status_kib(fed.procs["bob"].pid, "VmHWM") / 1024
    assert peak <= max(peak_before, rss_before + 16), (
        f"bob's peak RSS rose to {peak:.0f} MiB"
    )  # 48 MiB unbuffered
    with pytest.raises(ProtocolError, match="more bytes than the 10 it declared"):
        carol.frames(
            pb.Frame(header=env("j-lie", total=10)).SerializeToString(),
            pb.Frame(chunk=bytes(512 << 10)).SerializeToString(),
        )
    with pytest.raises(ProtocolError, match="max_value_bytes limit"):
        carol.message(env("j-huge", total=64 * MIB))
    rss_before = rss_mib(fed)
    tag = "x" * MIB
    for seq in range(150):  # 150 MiB of tags if they were kept
        with pytest.raises(ProtocolError, match=r"tag of 1048576 bytes.*limit is 256"):
            carol.message(env("j-tags", tag, seq=seq))
    carol.close()
    growth = rss_mib(fed) - rss_before
    # the bound this test states; what stays is the allocator's free lists, not the tags
    assert growth < 40, f"bob's RSS grew by {growth:.0f} MiB"
    legit_job(fed)


def test_empty_messages_count_and_the_pending_buffer_is_bounded(fed: Federation) -> None:
    """Empty payloads for a job that does not exist: refused once carol's share of the pending
    buffer (256 KiB / 3 peers) is used, each counted at 256 bytes plus its tag."""
    carol = Hostile(kit_tls(fed.kit, "carol"), bob_address(fed), "bob")
    accepted = 0
    with pytest.raises(ProtocolError, match="no room for messages of job j-flood"):
        for seq in range(2000):
            carol.message(env("j-flood", f"tag-{seq}"))
            accepted += 1
    carol.close()
    share = (256 << 10) // 3
    assert share // (256 + 12) <= accepted <= share // 256, accepted
    legit_job(fed)  # alice's share is her own


def test_pending_proposals_are_capped_without_a_thread_each(fed: Federation) -> None:
    carol = Hostile(kit_tls(fed.kit, "carol"), bob_address(fed), "bob")
    bob_pid = fed.procs["bob"].pid
    threads_before = status_kib(bob_pid, "Threads")
    sha = hashlib.sha256((fed.kit.parent / "protocols_bob" / "plain_sum.py").read_bytes()).hexdigest()

    def propose(i: int) -> None:
        proposal = m.Propose(
            job_id=f"j-flood-{i}-{time.monotonic_ns()}",
            script="plain_sum.py",
            sha256=sha,
            params={},
            seed=1,
            parties=("carol", "bob"),
            timeout_s=60.0,
        )
        raw = carol.control(m.MessageKind.PROPOSE.value, m.encode(proposal))
        reply = m.decode(raw, m.MessageKind.ACCEPT, m.MessageKind.REFUSE)
        if isinstance(reply, m.Refuse):
            raise m.refusal_error(reply)

    refused = []
    for i in range(30):
        try:
            propose(i)
        except PolicyRefused as exc:
            refused.append(str(exc))
    assert len(refused) == 27 and "pending_proposals_per_peer" in refused[0]
    assert status_kib(bob_pid, "Threads") - threads_before < 5  # no timer thread per proposal
    legit_job(fed)  # while carol's 3 proposals are pending
    deadline = time.monotonic() + 15
    while True:  # after proposal_ttl_s they expire and carol may propose again
        try:
            propose(99)
            break
        except PolicyRefused:
            assert time.monotonic() < deadline, "carol's proposals never expired"
            time.sleep(0.5)
    carol.close()
