"""The federated training round as two sessions: the coordinator's and a party's (no I/O).

Theory of operation. One party is the coordinator (by default the first of ``ctx.parties``);
it trains on its own data too when it is picked. Round ``t``:

1. The coordinator picks the round's parties among the active ones (``fedcore.fl.sampling``:
   everyone, a fixed-size sample, or a Poisson sample for DP runs). It sends ``RoundStart(t,
   x_t, members, strategy.client_config(t), picked)`` under tag ``fl/global`` to every other
   member and ``Wait(t)`` to every active party not picked, which then waits for the next
   round (messages: ``fedcore.fl.messages``).
2. Every picked party trains locally from ``x_t`` (``fit``) and forms its delta ``Δ_i = x_i -
   x_t`` and sample count ``n_i``. With DP it clips ``Δ_i`` to L2 norm ``C`` and uses weight 1.
3. Plain: each party sends ``ClientUpdate(t, Δ_i, n_i)`` under ``fl/update/t``; the coordinator
   collects them until one deadline, leaving out parties that dropped, were late or sent
   something malformed, and the strategy aggregates (with central DP: the noised sum over a
   public count, ``fedcore.fl.dp``). Secure: the members (the coordinator always among them,
   with a zero vector when it was not picked) give ``[w_i Δ_i, w_i]`` to
   ``fedcore.secagg.secure_sum`` and the coordinator learns only ``Σ w_i Δ_i`` and ``Σ w_i``,
   whose ratio is the weighted mean the strategy's ``apply`` takes (``w_i = min(n_i,
   weight_cap) / weight_cap``; each coordinate is clamped to the fixed-point range first).
   Secure with DP: each party's clipped delta becomes an integer vector with its share of
   Skellam noise (``fedcore.fl.discrete``), and the ring sums those.
4. Picked parties that did not answer are recorded as ``dropped`` for that round and are not
   asked again; the strategy's failure policy (``min_parties``, capped by the sample size of a
   Poisson round) decides whether the round may go on (``PartyDropped`` otherwise); with
   secure aggregation a round also fails when more parties drop than the secure sum's Shamir
   threshold tolerates. The coordinator evaluates, checkpoints, reports progress (round,
   accuracy, loss, parties) and goes on.

After the last round the coordinator sends ``Stop()`` to the active parties.
A silent or dropped party can only remove its own update; a party sending malformed
updates is dropped with the reason recorded (robust strategies bound what well-formed but
hostile updates can do; weighted ones do not).

Both roles are ``fedcore.session`` sessions, and this module is their whole transition table:
they return ``Send`` actions (``RoundStart``/``Wait``/``Stop`` under ``GLOBAL_TAG``, updates
under ``update_tag(t)``) and work items the driver (``fedcore.fl.rounds.train``) carries out:
``LocalFit`` (answered with ``fitted``), ``SecureSum`` (answered with ``summed``), ``Report``
(progress), ``Metrics`` and ``SaveCheckpoint``. Collecting a round's plain updates is one
tolerant wait; randomness and the clock are passed in. The strategy and ``evaluate`` are pure
functions of the parameters, called here.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedcore.errors import DecodeError, PartyDropped, ProtocolError
from fedcore.fl import _secure
from fedcore.fl import dp as dpm
from fedcore.fl.arrays import Params, check_like
from fedcore.fl.checkpoint import Checkpoint
from fedcore.fl.config import TrainConfig
from fedcore.fl.messages import ClientUpdate, RoundStart, Stop, Wait
from fedcore.fl.strategies import Update
from fedcore.session import Garbled, Recv, Send

Evaluate = Callable[[Params], dict[str, float]]
GLOBAL_TAG = "fl/global"


def update_tag(rnd: int) -> str:
    """The tag of round ``rnd``'s plain updates (party -> coordinator)."""
    return f"fl/update/{rnd}"


# ---------------------------------------------------------------------------- work items


@dataclass(frozen=True)
class LocalFit:
    """Train from ``message``'s parameters; the driver answers ``fitted(delta, weight, samples)``."""

    message: RoundStart


@dataclass(frozen=True)
class SecureSum:
    """Give this member's ``delta`` (None: zeros) and ``weight`` to round ``message.round``'s
    secure sum; the driver answers ``summed(included, total)``."""

    message: RoundStart
    delta: Params | None
    weight: int


@dataclass(frozen=True)
class Report:
    """Report progress: ``ctx.progress(message, step=step, done=done, total=total)``."""

    step: str
    done: int
    total: int
    message: str | None = None


@dataclass(frozen=True)
class Metrics:
    """Report round ``round``'s metrics (``ctx.metrics``)."""

    round: int
    values: dict[str, float]


@dataclass(frozen=True)
class SaveCheckpoint:
    """Save ``checkpoint`` into the job's checkpoint folder."""

    checkpoint: Checkpoint


Action = Send | LocalFit | SecureSum | Report | Metrics | SaveCheckpoint


class Phase(enum.Enum):
    """Where the coordinator is within a round."""

    FIT = "fit"  # its own local training is under way
    SUM = "sum"  # the secure sum is under way
    COLLECT = "collect"  # waiting for the picked parties' plain updates
    DONE = "done"  # Stop is sent; ``result`` holds the job's outcome


# ---------------------------------------------------------------------------- coordinator


class CoordinatorSession:
    """The coordinator's side of a whole training job, round after round.

    Args:
        config: the job's configuration.
        params: the initial global model.
        evaluate: the coordinator's evaluation of a model, or None.
        me: the coordinator's name.
        parties: the job's parties, in job order.
        seed: the job seed (sampling draws from it).
        rng: this party's generator (central DP noise).
        clock: seconds, for each round's ``seconds`` entry.
        resume: a checkpoint to continue from (already checked to fit ``params``).
    """

    def __init__(
        self,
        config: TrainConfig,
        params: Params,
        evaluate: Evaluate | None,
        *,
        me: str,
        parties: Sequence[str],
        seed: int,
        rng: np.random.Generator,
        clock: Callable[[], float],
        resume: Checkpoint | None = None,
    ):
        self.config, self.evaluate, self.me, self.seed = config, evaluate, me, seed
        self.strategy = config.strategy
        self.params = [np.asarray(p) for p in params]
        self.state = self.strategy.init_state(self.params)
        self.history: list[dict[str, Any]] = []
        self.ledger = _secure.make_ledger(config, self.params)
        self.active = list(parties)
        self.samples = 0
        self.start_round = 0
        self.result: dict[str, Any] = {}
        self._rng, self._clock = rng, clock
        self.phase = Phase.FIT
        if resume is not None:
            self._resume(resume)
        # the round under way
        self._rnd = 0
        self._began = 0.0
        self._population: list[str] = []
        self._picked: list[str] = []
        self._message: RoundStart | None = None
        self._own: Update | None = None
        self._received: list[Update] = []
        self._rejected: dict[str, str] = {}

    def _resume(self, ckpt: Checkpoint) -> None:
        self.params, self.start_round = ckpt.params, ckpt.round
        self.state = ckpt.state or self.state
        self.history = list(ckpt.meta.get("history", []))
        if self.ledger is not None:
            self.ledger.rounds = [(float(r[0]), float(r[1])) for r in ckpt.meta.get("privacy", [])]

    # ------------------------------------------------------------------ the session

    def start(self) -> list[Action]:
        """Round ``start_round + 1`` (or, with no rounds left, ``Stop``)."""
        if self.start_round >= self.config.rounds:
            return self._finish_job()
        return self._begin(self.start_round + 1)

    def expect(self) -> Recv | None:
        """The plain updates of the round's picked parties, one tolerant wait; None otherwise."""
        if self.phase is not Phase.COLLECT:
            return None
        sources = tuple(p for p in self._picked if p != self.me)
        return Recv(sources, update_tag(self._rnd), self.config.round_timeout, tolerant=True)

    def receive(self, src: str, message: Any) -> list[Action]:
        """One party's update: kept if it fits the model, else recorded in ``rejected``."""
        if isinstance(message, Garbled):
            self._rejected[src] = message.reason
            return []
        try:
            self._received.append(_check_update(src, message, self._rnd, self.params))
        except (DecodeError, ProtocolError) as exc:
            self._rejected[src] = str(exc)
        return []

    def close(self) -> list[Action]:
        """The wait is over: aggregate what came in and go on."""
        updates = ([self._own] if self._own is not None else []) + self._received
        included = [u.party for u in updates]
        self.check_quorum(self._rnd, included, self._picked)
        if self.config.dp is not None:
            mean = self._noised_mean(updates, self._denominator() or len(updates))
            agg = self.strategy.apply(self._rnd, self.params, mean, self.state)  # type: ignore[attr-defined]
            self.params, self.state = agg.params, agg.state
        elif updates:
            agg = self.strategy.aggregate(self._rnd, self.params, updates, self.state)
            self.params, self.state = agg.params, agg.state
        return self._end_round(included, self._rejected)

    def fitted(self, delta: Params, weight: int, samples: int) -> list[Action]:
        """Our own local training is done: on to the round's aggregation."""
        if self.phase is not Phase.FIT:
            raise RuntimeError(f"round {self._rnd}: a local fit finished in phase {self.phase.name}")
        self.samples = samples
        self._own = Update(self.me, delta, weight)
        return self._aggregate()

    def summed(self, included: Sequence[str], total: Any) -> list[Action]:
        """The round's secure sum is done (``included``: whose inputs ``total`` holds): check the
        quorum, apply the strategy, go on."""
        if self.phase is not Phase.SUM:
            raise RuntimeError(f"round {self._rnd}: a secure sum finished in phase {self.phase.name}")
        kept = [p for p in included if p in set(self._picked)]
        self.check_quorum(self._rnd, kept, self._picked)
        count = self._denominator() or len(kept)
        mean = _secure.mean_delta(self.config, self.params, self._rnd, total, count)
        agg = self.strategy.apply(self._rnd, self.params, mean, self.state)  # type: ignore[attr-defined]
        self.params, self.state = agg.params, agg.state
        return self._end_round(kept, {})

    # ------------------------------------------------------------------ one round

    def _begin(self, rnd: int) -> list[Action]:
        """Pick, tell everyone, and start our own training if we were picked."""
        self._rnd, self._began = rnd, self._clock()
        self._population = list(self.active)
        self._picked = self.config.sampling.pick(rnd, self.seed, self._population)
        members = self._picked
        if self.config.secure:
            members = _secure.members(self._picked, self.me, self._population)
        waiting = [p for p in self._population if p not in set(members) and p != self.me]
        message = RoundStart(
            rnd, tuple(self.params), tuple(members), self.strategy.client_config(rnd), len(self._picked)
        )
        self._message, self._own, self._received, self._rejected = message, None, [], {}
        wait = Wait(rnd)  # one object for all: sent as one broadcast
        actions: list[Action] = [Report(f"round {rnd}", rnd - 1, self.config.rounds)]
        actions += [Send(p, GLOBAL_TAG, wait) for p in waiting]
        actions += [Send(p, GLOBAL_TAG, message) for p in members if p != self.me]
        if self.me in self._picked:
            self.phase = Phase.FIT
            return [*actions, LocalFit(message)]
        return actions + self._aggregate()

    def _aggregate(self) -> list[Action]:
        """After our own training (if any): the secure sum, or the wait for plain updates."""
        if not self.config.secure:
            self.phase = Phase.COLLECT
            return []
        if not self._picked and self.config.dp is not None:
            return self._end_round([], {})  # nobody drawn: nothing to sum (the round is still charged)
        if self._message is None:
            raise RuntimeError("a round's aggregation began before the round")
        own = self._own
        self.phase = Phase.SUM
        return [SecureSum(self._message, own.delta if own else None, own.samples if own else 0)]

    def _end_round(self, included: list[str], rejected: dict[str, str]) -> list[Action]:
        """Record the round, report it, and start the next one (or stop)."""
        rnd, picked = self._rnd, self._picked
        lost = [p for p in picked if p not in set(included)]
        self.active = [p for p in self._population if p not in set(lost)]
        entry: dict[str, Any] = {"round": rnd, **self._metrics(), "parties": len(included), "dropped": lost}
        if rejected:
            entry["rejected"] = rejected
        if self.ledger is not None:
            entry["epsilon"] = self._charge(len(included), len(picked))
        entry["seconds"] = round(self._clock() - self._began, 4)
        numbers = {k: v for k, v in entry.items() if k != "round" and isinstance(v, (int, float))}
        actions: list[Action] = [Metrics(rnd, numbers)]  # the daemon stores them; its page charts them
        if self.config.checkpoint:
            actions.append(SaveCheckpoint(self._checkpoint(rnd, entry)))
        self.history.append(entry)
        actions.append(Report(f"round {rnd}", rnd, self.config.rounds, progress_message(entry)))
        if rnd < self.config.rounds:
            return actions + self._begin(rnd + 1)
        return actions + self._finish_job()

    def _finish_job(self) -> list[Action]:
        """Stop the active parties; ``result`` holds the history and final metrics."""
        self.phase = Phase.DONE
        stop = Stop()
        lost = {p: h["round"] for h in self.history for p in h.get("dropped", [])}
        result: dict[str, Any] = {"history": self.history, "samples": self.samples, "lost": lost}
        final = self.history[-1] if self.history else self._metrics()
        result.update({k: final[k] for k in ("accuracy", "loss") if k in final})
        if self.ledger is not None:
            result["epsilon"], result["delta"] = self.ledger.epsilon(), self.ledger.delta
            result["accountant"] = self.ledger.accountant
        if not self.config.sampling.everyone:
            result["sampling"] = "poisson" if self.config.sampling.poisson else "fixed"
            result["fraction"] = self.config.sampling.fraction
        self.result = result
        return [Send(p, GLOBAL_TAG, stop) for p in self.active if p != self.me]

    # ------------------------------------------------------------------ the rules

    def _denominator(self) -> float | None:
        """Poisson rounds divide by the expected count ``q n`` (public, whoever was drawn)."""
        if self.config.sampling.poisson:
            return self.config.sampling.fraction * len(self._population)
        return None

    def _charge(self, included: int, picked: int) -> float:
        if self.ledger is None or self.config.dp is None:
            raise RuntimeError("privacy charged without a DP config")
        if self.config.secure:
            return float(self.ledger.record(_secure.round_mu(self.ledger, included, picked)))
        sigma = dpm.effective_multiplier(self.config.dp, included, picked) if picked else 0.0
        if self.config.dp.placement == "server" or not picked:
            sigma = self.config.dp.noise_multiplier  # every round is charged, empty ones too
        return float(self.ledger.record(sigma, self.config.sampling.rate))

    def check_quorum(self, rnd: int, included: Sequence[str], picked: Sequence[str]) -> None:
        """The failure policy over the round's picked parties (a small Poisson round needs all)."""
        if len(picked) >= self.strategy.min_parties:
            self.strategy.check_quorum(rnd, included, picked)
        elif set(included) != set(picked):
            lost = [p for p in picked if p not in set(included)]
            raise PartyDropped(
                f"round {rnd}: {len(included)} of {len(picked)} sampled parties sent updates; the "
                f"{self.strategy.name} policy needs min_parties={self.strategy.min_parties}; lost: "
                f"{', '.join(lost[:10])}",
                step=f"round {rnd}",
                lost=len(lost),
            )

    def _noised_mean(self, updates: Sequence[Update], denominator: float) -> Params:
        """Central DP: (sum of clipped deltas + N(0, (sigma C)^2)) / a public count, clipping again
        here. With placement ``party`` the parties already added their noise shares."""
        if self.config.dp is None:
            raise RuntimeError("central DP noise was asked for without a DP config")
        if self.config.dp.placement == "party":
            deltas = [u.delta for u in updates]  # noised by the parties: a second clip would cut it
        else:
            deltas = [dpm.clip(u.delta, self.config.dp.clip_norm)[0] for u in updates]
        total = [np.zeros(np.shape(p)) for p in self.params]
        for delta in deltas:
            total = [t + d for t, d in zip(total, delta, strict=True)]
        if self.config.dp.placement == "server":
            noise = dpm.gaussian_noise(total, dpm.server_noise_std(self.config.dp), self._rng)
            total = [t + n for t, n in zip(total, noise, strict=True)]
        return [t / max(denominator, 1e-12) for t in total]

    def _metrics(self) -> dict[str, float | None]:
        if self.evaluate is None:
            return {}
        metrics = self.evaluate(self.params)
        return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}

    def _checkpoint(self, rnd: int, entry: dict[str, Any]) -> Checkpoint:
        meta: dict[str, Any] = {"strategy": self.strategy.name, "history": [*self.history, entry]}
        if self.ledger is not None:
            meta["privacy"] = [list(r) for r in self.ledger.rounds]
        return Checkpoint(rnd, self.params, self.state, meta)


# ---------------------------------------------------------------------------- party


class PartySession:
    """A non-coordinating party: answer rounds until the coordinator says stop.

    Args:
        config: the job's configuration.
        coordinator: the coordinating party.
    """

    def __init__(self, config: TrainConfig, coordinator: str):
        self.config, self.coordinator = config, coordinator
        self.rounds = self.samples = 0
        self.stopped = False
        self._message: RoundStart | None = None

    @property
    def result(self) -> dict[str, Any]:
        return {"samples": self.samples, "rounds": self.rounds}

    def start(self) -> list[Action]:
        return []

    def expect(self) -> Recv | None:
        """The coordinator's next word, strictly (None once it said stop)."""
        if self.stopped:
            return None
        return Recv((self.coordinator,), GLOBAL_TAG, self.config.round_timeout)

    def receive(self, src: str, message: Any) -> list[Action]:
        """``RoundStart``: train; ``Wait``: not picked, wait for the next round; ``Stop``: done."""
        if isinstance(message, Stop):
            self.stopped = True
            return []
        if isinstance(message, Wait):
            return []  # not picked this round; the next message comes with the next round
        if not isinstance(message, RoundStart):
            raise ProtocolError(f"{self.coordinator} sent {type(message).__name__} under {GLOBAL_TAG}")
        self._message = message
        rnd = message.round
        return [Report(f"round {rnd}", rnd - 1, self.config.rounds), LocalFit(message)]

    def close(self) -> list[Action]:
        return []  # never called: our waits are strict

    def fitted(self, delta: Params, weight: int, samples: int) -> list[Action]:
        """Our update, to the coordinator or into the round's secure sum."""
        message = self._message
        if message is None:
            raise RuntimeError("a local fit finished before any round started")
        self.samples = samples
        self.rounds += 1
        if self.config.secure:
            return [SecureSum(message, delta, weight)]
        update = ClientUpdate(message.round, tuple(d.astype(np.float32) for d in delta), weight)
        return [Send(self.coordinator, update_tag(message.round), update)]

    def summed(self, included: Sequence[str], total: Any) -> list[Action]:
        return []  # the party's part of the round is done


# ---------------------------------------------------------------------------- helpers


def progress_message(entry: dict[str, Any]) -> str:
    """The coordinator's line for one finished round: metrics, parties, epsilon."""
    parts = [f"{key} {entry[key]:.4g}" for key in ("accuracy", "loss") if entry.get(key) is not None]
    parts.append(f"parties {entry['parties']}")
    if "epsilon" in entry:
        parts.append(f"eps {entry['epsilon']:.3g}")
    return ", ".join(parts)


def _check_update(party: str, value: Any, rnd: int, params: Params) -> Update:
    if not isinstance(value, ClientUpdate) or value.round != rnd:
        raise ProtocolError(f"{party} sent {type(value).__name__} instead of its round {rnd} update")
    return Update(party, check_like(value.delta, params, who=party), value.samples)
