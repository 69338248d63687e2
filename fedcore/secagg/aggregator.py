"""The aggregator side of SecAgg+ (see ``fedcore.secagg.protocol`` for the theory of operation)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from fedcore.crypto import kx, shamir
from fedcore.crypto.prg import Expander
from fedcore.crypto.secret import Secret
from fedcore.errors import ProtocolError
from fedcore.secagg.client import MASK_INFO, DownMessage, UpMessage, tags
from fedcore.secagg.messages import (
    Abort,
    Advertise,
    ForwardedShares,
    MaskedInput,
    Outcome,
    PeerKeys,
    SealedShares,
    Survivors,
    UnmaskShares,
)
from fedcore.secagg.protocol import RoundSetup, Stage
from fedcore.session import Garbled, Recv, Send


class AggregatorSession:
    """The aggregator's state in one round, a ``fedcore.session`` session.

    Each stage is one tolerant wait (``expect``): the clients still in the round under one
    deadline, ``timeout``. Feed each client message with ``receive(sender, msg)`` (``take``
    is the same but raises on a message that breaks the rules); when the wait ends (everyone
    answered, or the deadline passed) call ``close()`` and send the ``Send`` actions it returns.

    Args:
        setup: the round's public setup.
        words: the aggregator's own input in the ring, added in the clear at the end.
        timeout: seconds each stage waits for the clients (None: the driver's default).
    """

    _NEXT = {
        Stage.ADVERTISE_KEYS: Stage.SHARE_KEYS,
        Stage.SHARE_KEYS: Stage.MASKED_INPUT,
        Stage.MASKED_INPUT: Stage.UNMASKING,
        Stage.UNMASKING: Stage.DONE,
    }

    def __init__(self, setup: RoundSetup, words: np.ndarray, *, timeout: float | None = None):
        if words.dtype != setup.encoding.dtype or words.shape != (setup.dim,):
            raise ValueError(f"input must be {setup.encoding.dtype} of shape ({setup.dim},)")
        self.setup = setup
        self.timeout = timeout
        self.stage = Stage.ADVERTISE_KEYS
        self._up, self._down = tags(setup)
        self.included: tuple[str, ...] = ()
        self.total: np.ndarray | None = None
        self.lost = 0
        self.failure: str | None = None
        self.mask_bytes = 0
        self.agreements = 0
        self._own = words
        self._alive: list[str] = list(setup.clients)  # still in the round, client order
        self._received: dict[str, Any] = {}
        self._keys: dict[str, tuple[bytes, bytes]] = {}
        self._sealed: dict[str, dict[str, bytes]] = {}
        self._u2: set[str] = set()
        self._u3: tuple[str, ...] = ()
        self._acc = np.zeros(setup.dim, dtype=setup.encoding.dtype)

    def awaiting(self) -> tuple[str, ...]:
        """Clients we still wait for in this stage."""
        if self.stage in (Stage.DONE, Stage.FAILED):
            return ()
        return tuple(c for c in self._alive if c not in self._received)

    # ------------------------------------------------------------------ the session

    def start(self) -> list[Send]:
        """Nothing to send first: the clients speak first."""
        return []

    def expect(self) -> Recv | None:
        """This stage's wait: every client still awaited, one deadline; None when the round is over."""
        if self.stage in (Stage.DONE, Stage.FAILED):
            return None
        return Recv(self.awaiting(), self._up, self.timeout, tolerant=True)

    def receive(self, sender: str, msg: UpMessage | Garbled) -> list[Send]:
        """Take one client message; one that is garbled or breaks the rules is ignored, so its
        sender counts as dropped unless it sends something valid in time."""
        if not isinstance(msg, Garbled):
            with contextlib.suppress(ProtocolError):
                self.take(sender, msg)
        return []

    def close(self) -> list[Send]:
        """End the current stage: the messages to send (may fail the round)."""
        return [Send(dst, self._down, msg) for dst, msg in self._close_stage().items()]

    # ------------------------------------------------------------------ receive

    def take(self, sender: str, msg: UpMessage) -> None:
        """Take one client message of the current stage.

        Raises:
            ProtocolError: (the peer broke the rules) unknown or excluded sender, a replay,
                a message of another stage or round, or a malformed stage message. The
                message is ignored; the sender counts as dropped if it sends nothing valid.
        """
        setup = self.setup
        if sender not in self._alive:
            raise ProtocolError(f"{sender} is not in round {setup.round_id!r} (unknown or left out)")
        if sender in self._received:
            raise ProtocolError(f"{sender} sent {type(msg).__name__} twice in stage {self.stage.name}")
        if getattr(msg, "STAGE", None) is not self.stage or getattr(msg, "round", None) != setup.round_id:
            raise ProtocolError(
                f"{sender} sent {type(msg).__name__} for round {getattr(msg, 'round', None)!r} "
                f"in stage {self.stage.name} of round {setup.round_id!r}"
            )
        checks: dict[type, Callable[[str, Any], None]] = {
            Advertise: self._check_advertise,
            SealedShares: self._check_sealed,
            MaskedInput: self._check_masked,
            UnmaskShares: self._check_unmask,
        }
        checks[type(msg)](sender, msg)
        if isinstance(msg, MaskedInput):
            np.add(self._acc, msg.vector, out=self._acc)  # stream: keep only the running sum
            msg = None  # type: ignore[assignment]
        self._received[sender] = msg

    def _check_advertise(self, sender: str, msg: Advertise) -> None:
        if msg.setup_digest != self.setup.digest():
            raise ProtocolError(f"{sender} runs round {self.setup.round_id!r} with different parameters")

    def _check_sealed(self, sender: str, msg: SealedShares) -> None:
        expected = {v for v in self.setup.neighbours[sender] if v in self._keys}
        if set(msg.sealed) != expected:
            raise ProtocolError(
                f"{sender} sealed shares for {len(msg.sealed)} parties, expected its "
                f"{len(expected)} neighbours that advertised keys"
            )

    def _check_masked(self, sender: str, msg: MaskedInput) -> None:
        if msg.vector.dtype != self._acc.dtype or msg.vector.shape != self._acc.shape:
            raise ProtocolError(
                f"{sender} sent a masked input of {msg.vector.dtype} {msg.vector.shape}, "
                f"expected {self._acc.dtype} ({self.setup.dim},)"
            )

    def _check_unmask(self, sender: str, msg: UnmaskShares) -> None:
        holders = set(self.setup.holders(sender))
        if not set(msg.seed_shares) <= holders & set(self._u3):
            raise ProtocolError(f"{sender} sent seed shares of parties it does not hold or that dropped")
        if not set(msg.key_shares) <= holders & (self._u2 - set(self._u3)):
            raise ProtocolError(f"{sender} sent key shares of parties it does not hold or that survived")

    # ------------------------------------------------------------------ close a stage

    def _close_stage(self) -> dict[str, DownMessage]:
        handler = {
            Stage.ADVERTISE_KEYS: self._close_advertise,
            Stage.SHARE_KEYS: self._close_share,
            Stage.MASKED_INPUT: self._close_masked,
            Stage.UNMASKING: self._close_unmask,
        }
        if self.stage not in handler:
            raise ProtocolError(f"round {self.setup.round_id!r} is over ({self.stage.name})")
        stage = self.stage
        out = handler[stage]()
        if self.stage is stage:
            self.stage = self._NEXT[stage]
        self._received = {}
        return out

    def _survivors(self, reason: str) -> tuple[list[str], dict[str, DownMessage]]:
        """Keep the clients that answered; tell the others they were left out."""
        kept = [c for c in self._alive if c in self._received]
        self.lost = len(self.setup.clients) - len(kept)
        out: dict[str, DownMessage] = {
            c: Abort(self.setup.round_id, self.lost, f"left out of the round: {reason}")
            for c in self._alive
            if c not in self._received
        }
        self._alive = kept
        return kept, out

    def _fail(self, reason: str, out: dict[str, DownMessage]) -> dict[str, DownMessage]:
        self.stage = Stage.FAILED
        self.failure = f"{reason}; {self.lost} of {len(self.setup.clients)} clients lost"
        for c in self._alive:
            out[c] = Abort(self.setup.round_id, self.lost, self.failure)
        return out

    def _prune(self, kept: list[str], out: dict[str, DownMessage], pool: set[str]) -> list[str]:
        """Leave out clients with fewer than t - 1 neighbours in ``pool`` (sparse graphs only)."""
        t = self.setup.threshold
        while True:
            short = [c for c in kept if sum(v in pool for v in self.setup.neighbours[c]) + 1 < t]
            if not short:
                return kept
            self.lost += len(short)
            for c in short:
                out[c] = Abort(self.setup.round_id, self.lost, "left out: too few neighbours in the round")
                pool.discard(c)
            kept = [c for c in kept if c not in short]
            self._alive = kept

    def _close_advertise(self) -> dict[str, DownMessage]:
        kept, out = self._survivors("no key advertisement in time")
        if len(kept) >= self.setup.threshold:
            kept = self._prune(kept, out, set(kept))
        if len(kept) < self.setup.threshold:
            return self._fail(f"only {len(kept)} clients advertised keys, need {self.setup.threshold}", out)
        self._keys = {c: (self._received[c].enc_pk, self._received[c].mask_pk) for c in kept}
        for c in kept:
            peers = {v: self._keys[v] for v in self.setup.neighbours[c] if v in self._keys}
            out[c] = PeerKeys(self.setup.round_id, peers)
        return out

    def _close_share(self) -> dict[str, DownMessage]:
        kept, out = self._survivors("no key shares in time")
        if len(kept) >= self.setup.threshold:
            kept = self._prune(kept, out, set(kept))
        if len(kept) < self.setup.threshold:
            return self._fail(f"only {len(kept)} clients shared keys, need {self.setup.threshold}", out)
        self._u2 = set(kept)
        self._sealed = {c: self._received[c].sealed for c in kept}
        for v in kept:
            incoming = {u: self._sealed[u][v] for u in self.setup.neighbours[v] if u in self._u2}
            out[v] = ForwardedShares(self.setup.round_id, incoming)
        return out

    def _close_masked(self) -> dict[str, DownMessage]:
        kept, out = self._survivors("no masked input in time")
        if len(kept) < self.setup.threshold:
            return self._fail(f"only {len(kept)} masked inputs arrived, need {self.setup.threshold}", out)
        self._u3 = tuple(kept)
        alive = set(kept)
        for c in kept:  # each client learns only which of its share holders survived: O(k) each
            holders = alive.intersection(self.setup.neighbours[c])
            holders.add(c)
            out[c] = Survivors(self.setup.round_id, tuple(sorted(holders, key=self.setup.index)))
        return out

    def _close_unmask(self) -> dict[str, DownMessage]:
        responders = {c: self._received[c] for c in self._alive if c in self._received}
        self.lost = len(self.setup.clients) - len(responders)
        survivors = set(self._u3)
        dropped = [
            v
            for v in self.setup.clients
            if v in self._u2 and v not in survivors and survivors & set(self.setup.neighbours[v])
        ]
        seed_shares = {u: self._gather_shares(u, responders, "seed_shares") for u in self._u3}
        key_shares = {v: self._gather_shares(v, responders, "key_shares") for v in dropped}
        short = [u for u, s in (*seed_shares.items(), *key_shares.items()) if len(s) < self.setup.threshold]
        if short:
            return self._fail(f"too few unmasking shares to recover {len(short)} clients' secrets", {})
        try:
            self._remove_masks(seed_shares, key_shares)
        except ValueError as exc:
            return self._fail(f"unmasking failed: {exc}", {})
        np.add(self._acc, self._own, out=self._acc)
        self.total = self._acc
        self.included = (self.setup.aggregator, *self._u3)
        reveal = self.total if self.setup.reveal == "all" else None
        return {c: Outcome(self.setup.round_id, self.included, reveal) for c in self._u3}

    def _gather_shares(
        self, owner: str, responders: dict[str, UnmaskShares], kind: str
    ) -> list[shamir.Share]:
        return [
            shamir.Share.from_bytes(self.setup.x_coordinate(holder), getattr(msg, kind)[owner])
            for holder, msg in responders.items()
            if owner in getattr(msg, kind)
        ]

    def _remove_masks(
        self, seed_shares: dict[str, list[shamir.Share]], key_shares: dict[str, list[shamir.Share]]
    ) -> None:
        setup = self.setup
        t = setup.threshold
        masks: list[tuple[Secret, int]] = []
        for v, shares in key_shares.items():  # dangling pairwise masks of dropped clients
            private = shamir.combine(shares, t, "recovered mask key")
            pair = kx.KeyPair(private)
            if pair.public != self._keys[v][1]:
                raise ValueError("recovered mask key does not match the advertised public key")
            live = [u for u in setup.neighbours[v] if u in self._u3]
            seeds = kx.agree_many(pair, [self._keys[u][1] for u in live], info=MASK_INFO, salt=setup.salt())
            self.agreements += len(seeds)
            # u applied sign(u, v) * PRG(s_uv): apply the opposite
            masks += [(seed, -setup.sign(u, v)) for seed, u in zip(seeds, live, strict=True)]
        for shares in seed_shares.values():
            masks.append((shamir.combine(shares, t, "recovered self-mask seed"), -1))
        expander = Expander(setup.dim, setup.encoding.ring_bits)
        expander.apply(self._acc, masks)
        self.mask_bytes = expander.bytes_expanded
