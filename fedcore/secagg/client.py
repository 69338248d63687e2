"""The client side of SecAgg+ (see ``fedcore.secagg.protocol`` for the theory of operation)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from fedcore.crypto import aead, kx, shamir
from fedcore.crypto.aead import Binding
from fedcore.crypto.prg import Expander
from fedcore.crypto.secret import ACCESS, Secret
from fedcore.errors import PartyDropped, ProtocolError
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
from fedcore.session import Recv, Send

RandomBytes = Callable[[int], bytes]
ENC_INFO = b"fedcore-secagg-v1 share encryption"
MASK_INFO = b"fedcore-secagg-v1 pairwise mask"
SHARE_STAGE = "share_keys"
CLIENT_WAIT_FACTOR = 3  # a client waits this many stage timeouts for the aggregator's next message

DownMessage = PeerKeys | ForwardedShares | Survivors | Outcome | Abort
UpMessage = Advertise | SealedShares | MaskedInput | UnmaskShares


def tags(setup: RoundSetup) -> tuple[str, str]:
    """The round's two tags: client -> aggregator ("up") and aggregator -> client ("down")."""
    return f"secagg/{setup.round_id}/up", f"secagg/{setup.round_id}/down"


class _UrandomPool:
    """``os.urandom`` read 4 KiB at a time: a round draws about 80 small values (keys, seed, Shamir
    coefficients), and each OS call releases the GIL, which costs a thread switch where every party
    is a thread of one process. Bytes handed out are zeroed in the pool; ``wipe`` drops the rest."""

    def __init__(self) -> None:
        self._pool = bytearray()
        self._pos = 0

    def __call__(self, n: int) -> bytes:
        if self._pos + n > len(self._pool):
            self.wipe()
            self._pool = bytearray(os.urandom(max(4096, n)))
        out = bytes(self._pool[self._pos : self._pos + n])
        self._pool[self._pos : self._pos + n] = bytes(n)
        self._pos += n
        return out

    def wipe(self) -> None:
        self._pool[:] = bytes(len(self._pool))
        self._pos = len(self._pool)


class ClientSession:
    """One client's state in one round, a ``fedcore.session`` session: ``start()``, then
    ``receive(aggregator, msg)`` for each message the aggregator sends (``expect``: one at a
    time, strictly, for ``CLIENT_WAIT_FACTOR`` stage timeouts); each returns our reply as a
    ``Send`` to the aggregator, or nothing once the round is over.

    Args:
        setup: the round's public setup.
        me: this client's name.
        words: this client's input, already encoded in the ring (``fixedpoint.encode``); the
            session masks this array in place and then drops it.
        random_bytes: the randomness source (keys, self-mask seed, Shamir coefficients); by default
            the OS generator.
        timeout: the aggregator's stage timeout in seconds (None: the driver's default wait).
    """

    # stage we are in -> the one message type the aggregator may send us next
    _EXPECTED: dict[Stage, type] = {
        Stage.ADVERTISE_KEYS: PeerKeys,
        Stage.SHARE_KEYS: ForwardedShares,
        Stage.MASKED_INPUT: Survivors,
        Stage.UNMASKING: Outcome,
    }

    def __init__(
        self,
        setup: RoundSetup,
        me: str,
        words: np.ndarray,
        random_bytes: RandomBytes | None = None,
        *,
        timeout: float | None = None,
    ):
        if me not in setup.clients:
            raise ValueError(f"{me!r} is not a client of round {setup.round_id!r}")
        if words.dtype != setup.encoding.dtype or words.shape != (setup.dim,):
            raise ValueError(f"input must be {setup.encoding.dtype} of shape ({setup.dim},)")
        self.setup = setup
        self.me = me
        self.timeout = timeout
        self._up, self._down = tags(setup)
        self.stage: Stage | None = None
        self.outcome: Outcome | None = None
        self._words = words
        self._random: RandomBytes = _UrandomPool() if random_bytes is None else random_bytes
        self._enc = kx.KeyPair.generate(self._random)
        self._mask = kx.KeyPair.generate(self._random)
        self._peers: dict[str, tuple[bytes, bytes]] = {}
        self._own_shares: tuple[shamir.Share, shamir.Share] | None = None
        self._forwarded: dict[str, bytes] = {}
        self._self_seed: Secret | None = None
        self._enc_keys: dict[str, Secret] = {}  # per neighbour, from stage 2 to stage 4
        self.mask_bytes = 0
        self.agreements = 0  # X25519 exchanges done (the benchmark's key-agreement bound counts them)

    def start(self) -> list[Send]:
        """Stage 1: advertise our two public keys."""
        if self.stage is not None:
            raise ProtocolError(f"{self.me}: round {self.setup.round_id!r} already started")
        self.stage = Stage.ADVERTISE_KEYS
        advertise = Advertise(self.setup.round_id, self._enc.public, self._mask.public, self.setup.digest())
        return [Send(self.setup.aggregator, self._up, advertise)]

    def expect(self) -> Recv | None:
        """The aggregator's next message; None before the start and once the round is over."""
        if self.stage in (None, Stage.DONE, Stage.FAILED):
            return None
        wait = None if self.timeout is None else CLIENT_WAIT_FACTOR * self.timeout
        return Recv((self.setup.aggregator,), self._down, wait)

    def receive(self, src: str, msg: DownMessage) -> list[Send]:
        """Handle the aggregator's next message; returns our reply (nothing when the round ends).

        Raises:
            PartyDropped: the aggregator aborted the round or left us out.
            ProtocolError: the message is not from the aggregator, or is out of turn or malformed.
        """
        if src != self.setup.aggregator:
            raise ProtocolError(f"{self.me}: {src} sent a message of round {self.setup.round_id!r}")
        reply = self._step(msg)
        return [] if reply is None else [Send(self.setup.aggregator, self._up, reply)]

    def close(self) -> list[Send]:
        """Never called: a client's waits are strict."""
        return []

    def _step(self, msg: DownMessage) -> UpMessage | None:
        """The transition table: the stage we are in and the message decide the next stage.

        Raises:
            PartyDropped: the aggregator aborted the round or left us out.
            ProtocolError: the aggregator sent a message out of turn or malformed.
        """
        if getattr(msg, "round", None) != self.setup.round_id:
            raise ProtocolError(f"{self.me}: message for another round, expected {self.setup.round_id!r}")
        if isinstance(msg, Abort):
            self.stage = Stage.FAILED
            raise PartyDropped(
                f"secure sum round {self.setup.round_id!r} failed at {self.me}: {msg.reason}",
                party=self.setup.aggregator,
                lost=msg.lost,
            )
        expected = self._EXPECTED.get(self.stage) if self.stage is not None else None
        if expected is None or not isinstance(msg, expected):
            where = self.stage.name if self.stage else "not started"
            want = expected.__name__ if expected else "nothing"
            raise ProtocolError(
                f"{self.me}: aggregator sent {type(msg).__name__} in stage {where}, expected {want}"
            )
        handler: dict[type, Callable[[Any], UpMessage | None]] = {
            PeerKeys: self._share_keys,
            ForwardedShares: self._masked_input,
            Survivors: self._unmask,
            Outcome: self._finish,
        }
        return handler[type(msg)](msg)

    # ---------------------------------------------------------------- stage 2: share keys

    def _share_keys(self, msg: PeerKeys) -> SealedShares:
        setup = self.setup
        allowed = set(setup.neighbours[self.me])
        if not set(msg.keys) <= allowed:
            raise ProtocolError(f"{self.me}: aggregator relayed keys of parties that are not our neighbours")
        if len(msg.keys) + 1 < setup.threshold:
            raise ProtocolError(
                f"{self.me}: only {len(msg.keys)} neighbours left, threshold {setup.threshold}"
            )
        publics = [pk for pair in msg.keys.values() for pk in pair] + [self._enc.public, self._mask.public]
        if len(set(publics)) != len(publics):
            raise ProtocolError(f"{self.me}: aggregator relayed repeated public keys")
        self._peers = dict(msg.keys)
        self._self_seed = Secret.generate(32, "self-mask seed", self._random)
        holders = [h for h in setup.holders(self.me) if h == self.me or h in self._peers]
        xs = [setup.x_coordinate(h) for h in holders]
        key_shares = shamir.split(self._mask.private, setup.threshold, xs, self._random)
        seed_shares = shamir.split(self._self_seed, setup.threshold, xs, self._random)
        others = [h for h in holders if h != self.me]
        keys = kx.agree_many(self._enc, [self._peers[h][0] for h in others], info=ENC_INFO, salt=setup.salt())
        self.agreements += len(keys)
        self._enc_keys = dict(zip(others, keys, strict=True))
        sealed = {}
        for holder, ks, ss in zip(holders, key_shares, seed_shares, strict=True):
            if holder == self.me:
                self._own_shares = (ks, ss)
                continue
            plain = ks.to_bytes(ACCESS) + ss.to_bytes(ACCESS)
            sealed[holder] = aead.encrypt(self._enc_keys[holder], plain, self._binding(self.me, holder))
        if isinstance(self._random, _UrandomPool):
            self._random.wipe()  # every secret this round needs is drawn
        self.stage = Stage.SHARE_KEYS
        return SealedShares(setup.round_id, sealed)

    def _binding(self, sender: str, recipient: str) -> Binding:
        return Binding(self.setup.job, self.setup.round_id, sender, recipient, SHARE_STAGE)

    # ---------------------------------------------------------------- stage 3: masked input

    def _masked_input(self, msg: ForwardedShares) -> MaskedInput:
        if not set(msg.sealed) <= set(self._peers):
            raise ProtocolError(f"{self.me}: forwarded shares from parties that never advertised to us")
        if len(msg.sealed) + 1 < self.setup.threshold:
            raise ProtocolError(
                f"{self.me}: only {len(msg.sealed)} neighbours shared keys, threshold {self.setup.threshold}"
            )
        self._forwarded = dict(msg.sealed)
        expander = Expander(self.setup.dim, self.setup.encoding.ring_bits)
        masked = self._words  # masked in place: the clear input is gone once this returns
        salt = self.setup.salt()
        assert self._self_seed is not None  # set in stage 2, which must come first
        peers = list(self._forwarded)
        seeds = kx.agree_many(self._mask, [self._peers[p][1] for p in peers], info=MASK_INFO, salt=salt)
        self.agreements += len(seeds)
        masks = [(self._self_seed, 1)]
        masks += [(seed, self.setup.sign(self.me, p)) for seed, p in zip(seeds, peers, strict=True)]
        expander.apply(masked, masks)
        self.mask_bytes = expander.bytes_expanded
        self._words = np.empty(0, dtype=masked.dtype)
        self.stage = Stage.MASKED_INPUT
        return MaskedInput(self.setup.round_id, masked)

    # ---------------------------------------------------------------- stage 4: unmasking

    def _unmask(self, msg: Survivors) -> UnmaskShares:
        setup = self.setup
        survivors = set(msg.survivors)
        if self.me not in survivors or not survivors <= set(setup.clients):
            raise ProtocolError(f"{self.me}: survivor list does not hold us or names non-clients")
        holders = survivors & {self.me, *setup.neighbours[self.me]}
        if len(holders) < setup.threshold:
            raise ProtocolError(
                f"{self.me}: only {len(holders)} of its share holders survived, threshold {setup.threshold}"
            )
        shared_with_us = set(self._forwarded) | {self.me}
        if not (survivors & set(setup.neighbours[self.me])) <= shared_with_us:
            raise ProtocolError(f"{self.me}: survivors include neighbours that never shared keys with us")
        seed_shares: dict[str, bytes] = {}
        key_shares: dict[str, bytes] = {}
        for owner in sorted(shared_with_us, key=setup.index):
            pair = self._open(owner)
            if pair is None:
                continue
            key_share, seed_share = pair
            if owner in survivors:  # double-masking rule: exactly one kind per owner
                seed_shares[owner] = seed_share
            else:
                key_shares[owner] = key_share
        self.stage = Stage.UNMASKING
        return UnmaskShares(setup.round_id, seed_shares, key_shares)

    def _open(self, owner: str) -> tuple[bytes, bytes] | None:
        if owner == self.me:
            assert self._own_shares is not None
            return self._own_shares[0].to_bytes(ACCESS), self._own_shares[1].to_bytes(ACCESS)
        try:
            plain = aead.decrypt(self._enc_keys[owner], self._forwarded[owner], self._binding(owner, self.me))
        except aead.DecryptionFailed:
            return None  # a forged or corrupted share: reveal nothing for it
        if len(plain) != 2 * shamir.SHARE_BYTES:
            return None
        return plain[: shamir.SHARE_BYTES], plain[shamir.SHARE_BYTES :]

    def _finish(self, msg: Outcome) -> None:
        if self.me not in msg.included or self.setup.aggregator not in msg.included:
            raise ProtocolError(f"{self.me}: outcome's included list leaves us or the aggregator out")
        self.outcome = msg
        self.stage = Stage.DONE
        return None
