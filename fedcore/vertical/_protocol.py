"""Vertical (hetero) logistic regression with Paillier, as sans-I/O state machines.

Theory of operation
-------------------
Parties: the guest G holds labels y and features X_g (with a bias column); hosts H_1..H_k
hold features X_h for the same aligned rows (aligned by PSI). The model is
z = X_g w_g + sum_h X_h w_h, p = sigmoid(z). Following the Taylor-approximated hetero-LR of
Hardy et al., "Private federated learning on vertically partitioned data via entity
resolution and additively homomorphic encryption" (arXiv:1711.10677, sec. 4) as FATE runs it,
the residual sigmoid(z) - y is replaced by d = 0.25 z + 0.5 - y, which is linear in the
parties' partial scores and so computable under additive encryption. There is no arbiter:
the guest holds a Paillier key pair (pk_g, sk_g) and every host holds its own (pk_h, sk_h).

Per mini-batch b (the schedule is derived from the shared job seed, so every party knows
which aligned rows are in b; only the values stay private):

1. Each host: u_h = X_h[b] w_h; sends HostScore [[u_h]]_h to G.
2. G: a = 0.25 X_g[b] w_g + 0.5 - y[b]; sends Residual [[a]]_g to H_1. Each H_i adds
   0.25 u_i as a plain vector and passes [[.]]_g on; the last host now holds
   [[d]]_g and sends it (FinalResidual) to the other hosts. Every host re-randomizes what it
   passes on, so an earlier host cannot divide out a later host's 0.25 u_h (a single host
   passes nothing on, so it does not: [[d]]_g never leaves it).
3. Each host: HostGradient [[X_h[b]^T d + r_h]]_g (r_h a fresh uniform mask, the
   ciphertexts re-randomized) to G. G decrypts and returns Unmasked X_h^T d + r_h; the host
   removes r_h and steps: w_h -= lr * ((X_h^T d) / |b| + l2 w_h).
4. G, for each host: MaskedTerm [[X_g[b]^T u_h + r'_h]]_h (from HostScore, masked,
   re-randomized) to the host, which decrypts and returns TermReply. G removes r'_h and
   steps with X_g^T d = X_g^T a + 0.25 sum_h X_g^T u_h.

What each party learns (semi-honest; masks are uniform in +-2^30, statistically hiding
values up to ~2^10 to about 2^-20):

* Host h: its own gradients (X_h^T d / |b| per batch) and weights w_h. Nothing about y or
  other parties' features: every value it sees is under sk_g, or masked by G.
* Guest: its own gradients and weights and, per batch and host, X_g^T u_h (with one host
  this equals what its own gradient already reveals). It never sees [[d]], u_h, X_h or w_h.
  At prediction time (``score``) hosts send their partial scores u_h for the scored rows in
  the clear -- the usual price of vertical inference.
* Batch membership and sizes are public (the schedule comes from the job seed); every
  party knows the number of aligned rows and each host's feature count.

Gradients themselves can leak label information over many steps (a known limitation of
every hetero-LR of this family); differential privacy on gradients is out of scope here.
A silent party stalls the others (Timeout); there is no dropout rule: all must finish.
The sessions follow ``fedcore.session`` and do no I/O: ``start()`` and ``receive()`` return
``Send`` actions (the tag of each message is chosen here, ``TAGS``) and ``expect()`` names the
``Recv`` they wait for next. Each session's transition table (stage -> the message it
waits for, from whom, and its handler) is its ``_table``. Randomness (masks) and the compute
runtime are passed in.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

from fedcore.errors import ProtocolError
from fedcore.session import Recv, Send
from fedcore.vertical._messages import (
    FinalResidual,
    HostGradient,
    HostScore,
    MaskedTerm,
    Residual,
    TermReply,
    Unmasked,
)

MASK_BOUND = 2.0**30

Message: TypeAlias = HostScore | Residual | FinalResidual | HostGradient | MaskedTerm | TermReply | Unmasked

# The wire tag of every message; a session picks the tag of what it sends, and waits on, here.
TAGS: dict[type[Message], str] = {
    HostScore: "vlr/score",
    Residual: "vlr/residual",
    FinalResidual: "vlr/final",
    HostGradient: "vlr/gradient",
    MaskedTerm: "vlr/term",
    TermReply: "vlr/term_reply",
    Unmasked: "vlr/unmasked",
}


def _send(dst: str, message: Message) -> Send:
    return Send(dst, TAGS[type(message)], message)


class Stage(enum.Enum):
    """Where a session is within the current batch."""

    AWAIT_SCORES = "await_scores"
    AWAIT_GRADIENTS = "await_gradients"
    AWAIT_TERMS = "await_terms"
    AWAIT_RESIDUAL = "await_residual"
    AWAIT_FINAL = "await_final"
    AWAIT_TERM = "await_term"
    AWAIT_UNMASKED = "await_unmasked"
    DONE = "done"


@dataclass(frozen=True)
class Training:
    """The public training plan every party shares."""

    batches: tuple[np.ndarray, ...]
    lr: float
    l2: float = 0.0


Handler: TypeAlias = Callable[[str, Any], list[Send]]
Table: TypeAlias = dict[Stage, tuple[str, type[Message], Handler]]


class _Session:
    """What guest and host share: the plan, keys, masks and the session contract's frame."""

    stage: Stage
    batch: int

    def __init__(
        self, me: str, features: np.ndarray, plan: Training, keys: tuple[Any, Any], rng: Any, runtime: Any
    ):
        self.me = me
        self.x = np.asarray(features, dtype=np.float64)
        self.plan = plan
        self.public_key, self._secret_key = keys
        self._mask_rng = rng
        self.runtime = runtime
        self.weights = np.zeros(self.x.shape[1])
        self.batch = 0

    # ------------------------------------------------------------------ the session contract

    def _table(self) -> Table:
        """Per stage: the sender and kind of the one message awaited, and its handler."""
        raise NotImplementedError

    def _begin_batch(self) -> list[Send]:
        raise NotImplementedError

    def start(self) -> list[Send]:
        """Begin the first batch (nothing to do on an empty plan)."""
        if not self.plan.batches:
            self.stage = Stage.DONE
            return []
        return self._begin_batch()

    def expect(self) -> Recv | None:
        """The one message this session waits for next; None when training is over."""
        if self.stage is Stage.DONE:
            return None
        src, kind, _ = self._table()[self.stage]
        return Recv((src,), TAGS[kind])

    def receive(self, sender: str, message: Any) -> list[Send]:
        """Take the expected message; returns what to send next.

        Raises:
            ProtocolError: the wrong sender, kind, batch or size, or a ciphertext that does
                not decrypt.
        """
        where = f"vertical LR at {self.me}, batch {self.batch}"
        if self.stage is Stage.DONE:
            raise ProtocolError(f"{where}: {sender} sent a {type(message).__name__} after training ended")
        src, kind, handler = self._table()[self.stage]
        if sender != src or not isinstance(message, kind):
            raise ProtocolError(
                f"{where}: expected {kind.__name__} from {src}, got {type(message).__name__} from {sender}"
            )
        if message.batch != self.batch:
            raise ProtocolError(f"{where}: {sender} sent {kind.__name__} for batch {message.batch}")
        return handler(sender, message)

    def close(self) -> list[Send]:
        return []  # no tolerant waits: every party must finish

    # ------------------------------------------------------------------ shared steps

    def _rerandomize(self, vector: Any) -> Any:
        """Fresh randomness for ``vector``: add an encryption of zeros under its key.

        Every key object for one modulus shares this process's DJN base (fedcore.he), so
        the encryption tables are built once per modulus, however many vectors arrive.
        """
        return vector + vector.public_key.encrypt(np.zeros(len(vector)), packed=False, runtime=self.runtime)

    def _encrypt_own(self, values: np.ndarray) -> Any:
        """Encrypt under our own key: with its factors where the key offers that (fedcore.he).

        The ciphertexts are distributed exactly as the public key's (fedcore.he's
        contract), so nothing a peer sees changes; the phe baseline has no such path.
        """
        owner = getattr(self._secret_key, "encrypt", None)
        key = self._secret_key if owner is not None else self.public_key
        return key.encrypt(values, packed=False, runtime=self.runtime)

    def _rows(self) -> np.ndarray:
        return self.plan.batches[self.batch]

    def _mask(self, size: int) -> np.ndarray:
        mask: np.ndarray = self._mask_rng.uniform(-MASK_BOUND, MASK_BOUND, size=size)
        return mask

    def _step(self, gradient_sum: np.ndarray) -> None:
        rows = len(self._rows())
        self.weights = self.weights - self.plan.lr * (gradient_sum / rows + self.plan.l2 * self.weights)

    def _expect_len(self, sender: str, what: str, got: int, want: int) -> None:
        if got != want:
            raise ProtocolError(
                f"vertical LR at {self.me}, batch {self.batch}: {what} from {sender} has {got} values, "
                f"expected {want}"
            )


class GuestSession(_Session):
    """The guest: labels, its features (bias column included by the caller), the key sk_g.

    Args:
        me: guest name. hosts: host names in chain order. features: X_g. labels: y in {0, 1}.
        plan: the shared training plan. keys: (pk_g, sk_g). mask_rng: a generator seeded
        from os.urandom. runtime: local compute runtime.
    """

    def __init__(
        self,
        me: str,
        hosts: Sequence[str],
        features: np.ndarray,
        labels: np.ndarray,
        plan: Training,
        keys: tuple[Any, Any],
        mask_rng: Any,
        runtime: Any = None,
    ):
        super().__init__(me, features, plan, keys, mask_rng, runtime)
        self.hosts = tuple(hosts)
        self.y = np.asarray(labels, dtype=np.float64)
        self.stage = Stage.AWAIT_SCORES
        self._host = 0
        self._a = np.zeros(0)
        self._term_masks: dict[str, np.ndarray] = {}
        self._terms: dict[str, np.ndarray] = {}

    def _table(self) -> Table:
        host = self.hosts[self._host]  # each stage takes one message from every host in turn
        return {
            Stage.AWAIT_SCORES: (host, HostScore, self._on_score),
            Stage.AWAIT_GRADIENTS: (host, HostGradient, self._on_gradient),
            Stage.AWAIT_TERMS: (host, TermReply, self._on_term),
        }

    def _begin_batch(self) -> list[Send]:
        """Begin batch ``self.batch``: the encrypted partial residual to the first host."""
        rows = self._rows()
        self._a = 0.25 * (self.x[rows] @ self.weights) + 0.5 - self.y[rows]
        self._term_masks, self._terms, self._host = {}, {}, 0
        self.stage = Stage.AWAIT_SCORES
        enc = self._encrypt_own(self._a)
        return [_send(self.hosts[0], Residual(self.batch, enc))]

    def receive(self, sender: str, message: Any) -> list[Send]:
        """Take the expected message (see ``_Session.receive``); after the last host's, move on."""
        sends = super().receive(sender, message)
        self._host += 1
        if self._host == len(self.hosts):
            self._host = 0
            sends += self._next_stage()
        return sends

    def _on_score(self, sender: str, message: HostScore) -> list[Send]:
        rows = self._rows()
        self._expect_len(sender, "HostScore", len(message.enc), len(rows))
        mask = self._mask(self.x.shape[1])
        self._term_masks[sender] = mask
        term = message.enc.dot(self.x[rows], runtime=self.runtime) + mask
        return [_send(sender, MaskedTerm(self.batch, self._rerandomize(term)))]

    def _on_gradient(self, sender: str, message: HostGradient) -> list[Send]:
        try:
            values = self._secret_key.decrypt(message.enc, runtime=self.runtime)
        except ValueError as exc:
            raise ProtocolError(f"vertical LR: HostGradient from {sender} does not decrypt: {exc}") from None
        return [_send(sender, Unmasked(self.batch, np.asarray(values, dtype=np.float64)))]

    def _on_term(self, sender: str, message: TermReply) -> list[Send]:
        self._expect_len(sender, "TermReply", len(message.values), self.x.shape[1])
        self._terms[sender] = message.values - self._term_masks.pop(sender)
        return []

    def _next_stage(self) -> list[Send]:
        if self.stage is Stage.AWAIT_SCORES:
            self.stage = Stage.AWAIT_GRADIENTS
            return []
        if self.stage is Stage.AWAIT_GRADIENTS:
            self.stage = Stage.AWAIT_TERMS
            return []
        rows = self._rows()
        self._step(self.x[rows].T @ self._a + 0.25 * sum(self._terms.values()))
        self.batch += 1
        if self.batch == len(self.plan.batches):
            self.stage = Stage.DONE
            return []
        return self._begin_batch()


class HostSession(_Session):
    """A host: its features and its own key sk_h; never sees labels or the guest's features.

    Args:
        me: host name. guest: guest name. hosts: host names in chain order. features: X_h.
        plan: the shared training plan. keys: (pk_h, sk_h). mask_rng: seeded from os.urandom.
        runtime: local compute runtime.
    """

    def __init__(
        self,
        me: str,
        guest: str,
        hosts: Sequence[str],
        features: np.ndarray,
        plan: Training,
        keys: tuple[Any, Any],
        mask_rng: Any,
        runtime: Any = None,
    ):
        super().__init__(me, features, plan, keys, mask_rng, runtime)
        self.guest, self.hosts = guest, tuple(hosts)
        self.index = self.hosts.index(me)
        self.stage = Stage.AWAIT_RESIDUAL
        self._u = np.zeros(0)
        self._gradient_mask = np.zeros(0)

    def _table(self) -> Table:
        previous = self.guest if self.index == 0 else self.hosts[self.index - 1]
        return {
            Stage.AWAIT_RESIDUAL: (previous, Residual, self._on_residual),
            Stage.AWAIT_FINAL: (self.hosts[-1], FinalResidual, self._on_final),
            Stage.AWAIT_TERM: (self.guest, MaskedTerm, self._on_term),
            Stage.AWAIT_UNMASKED: (self.guest, Unmasked, self._on_unmasked),
        }

    def _begin_batch(self) -> list[Send]:
        """Begin batch ``self.batch``: our encrypted partial scores to the guest."""
        self._u = self.x[self._rows()] @ self.weights
        self.stage = Stage.AWAIT_RESIDUAL
        enc = self._encrypt_own(self._u)
        return [_send(self.guest, HostScore(self.batch, enc))]

    def _on_residual(self, sender: str, message: Residual) -> list[Send]:
        self._expect_len(sender, "Residual", len(message.enc), len(self._rows()))
        summed = message.enc + 0.25 * self._u
        if len(self.hosts) == 1:
            # Nobody else sees [[d]]: our gradient below is masked and re-randomized anyway.
            return self._gradient(summed)
        # Re-randomize what we pass on: adding a plain vector is deterministic, so a host that
        # saw [[s]] could otherwise read our 0.25 u off [[s + 0.25 u]] by division.
        enc = self._rerandomize(summed)
        if self.index + 1 < len(self.hosts):
            self.stage = Stage.AWAIT_FINAL
            return [_send(self.hosts[self.index + 1], Residual(self.batch, enc))]
        finals = [_send(h, FinalResidual(self.batch, enc)) for h in self.hosts if h != self.me]
        return finals + self._gradient(enc)

    def _on_final(self, sender: str, message: FinalResidual) -> list[Send]:
        self._expect_len(sender, "FinalResidual", len(message.enc), len(self._rows()))
        return self._gradient(message.enc)

    def _gradient(self, residual: Any) -> list[Send]:
        self._gradient_mask = self._mask(self.x.shape[1])
        masked = residual.dot(self.x[self._rows()], runtime=self.runtime) + self._gradient_mask
        self.stage = Stage.AWAIT_TERM
        return [_send(self.guest, HostGradient(self.batch, self._rerandomize(masked)))]

    def _on_term(self, sender: str, message: MaskedTerm) -> list[Send]:
        try:
            values = self._secret_key.decrypt(message.enc, runtime=self.runtime)
        except ValueError as exc:
            raise ProtocolError(f"vertical LR: MaskedTerm from {sender} does not decrypt: {exc}") from None
        self.stage = Stage.AWAIT_UNMASKED
        return [_send(self.guest, TermReply(self.batch, np.asarray(values, dtype=np.float64)))]

    def _on_unmasked(self, sender: str, message: Unmasked) -> list[Send]:
        self._expect_len(sender, "Unmasked", len(message.values), self.x.shape[1])
        self._step(message.values - self._gradient_mask)
        self.batch += 1
        if self.batch == len(self.plan.batches):
            self.stage = Stage.DONE
            return []
        return self._begin_batch()
