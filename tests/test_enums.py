"""String states are enums that still take (and equal) the public strings, and refuse others."""

import numpy as np
import pytest

from fedcore.crypto import fixedpoint
from fedcore.errors import ConfigError
from fedcore.fl.dp import DPConfig, Placement
from fedcore.secagg.protocol import Graph, Reveal, make_setup
from fedcore.transport.base import Mailbox, PeerBoard, PeerStatus


def _setup(**kwargs):
    enc = fixedpoint.plan("float", 4, value_range=10.0, bits=32)
    args = dict(job="j", round_id="r", seed=1, aggregator="agg", parties=("agg", "a", "b", "c"), dim=3)
    return make_setup(encoding=enc, **args, **kwargs)


def test_secagg_graph_and_reveal_take_strings_or_members() -> None:
    by_string = _setup(graph="complete", reveal="all")
    by_member = _setup(graph=Graph.COMPLETE, reveal=Reveal.ALL)
    assert by_string.reveal is Reveal.ALL and by_string.reveal == "all"
    assert by_string.digest() == by_member.digest() and by_string.neighbours == by_member.neighbours
    with pytest.raises(ConfigError, match=r"graph is one of auto, complete, sparse .* got .ring."):
        _setup(graph="ring")
    with pytest.raises(ConfigError, match=r"reveal one of aggregator, all; got .*.everyone."):
        _setup(reveal="everyone")


def test_overflow_policy_takes_strings_or_members() -> None:
    enc = fixedpoint.plan("float", 2, value_range=1.0, bits=32)
    x = np.array([5.0, -0.5])
    assert np.array_equal(
        fixedpoint.encode(x, enc, "clip"), fixedpoint.encode(x, enc, fixedpoint.Overflow.CLIP)
    )
    with pytest.raises(ValueError, match="exceeds the declared range"):
        fixedpoint.encode(x, enc, fixedpoint.Overflow.REFUSE)
    with pytest.raises(ValueError, match="overflow is one of refuse, clip, got 'wrap'"):
        fixedpoint.encode(x, enc, "wrap")


def test_dp_placement_is_stored_as_a_member() -> None:
    config = DPConfig(1.0, placement="party")
    assert config.placement is Placement.PARTY and config.placement == "party"
    assert DPConfig(1.0).placement is Placement.SERVER
    with pytest.raises(ConfigError, match="placement must be one of server, party, got 'client'"):
        DPConfig(1.0, placement="client")


def test_peer_status_is_a_member_and_dropped_is_final() -> None:
    board = PeerBoard()
    box = Mailbox("me", board=board)
    assert box.peer("bob").status is PeerStatus.ALIVE
    box.set_peer("bob", "dropped", "s1", "killed")
    box.set_peer("bob", PeerStatus.FINISHED)
    state = box.peer("bob")
    assert state.status is PeerStatus.DROPPED and state.status == "dropped" and state.reason == "killed"
    with pytest.raises(ValueError, match="'gone' is not a valid PeerStatus"):
        board.set("carol", "gone")
