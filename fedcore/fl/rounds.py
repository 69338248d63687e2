"""The federated training round loop over ``ctx``.

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
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedcore.context import Context
from fedcore.errors import ConfigError, DecodeError, PartyDropped, ProtocolError, Timeout
from fedcore.fl import _secure
from fedcore.fl import dp as dpm
from fedcore.fl.arrays import Params, check_like, subtract
from fedcore.fl.checkpoint import Checkpoint, job_path, load_checkpoint, save_checkpoint
from fedcore.fl.messages import ClientUpdate, RoundStart, Stop, Wait
from fedcore.fl.sampling import Sampling
from fedcore.fl.strategies import Strategy, Update

Fit = Callable[[Params, dict[str, Any]], tuple[Params, int]]
Evaluate = Callable[[Params], dict[str, float]]
GLOBAL_TAG = "fl/global"


@dataclass(frozen=True)
class TrainConfig:
    """How a federated training job runs.

    Args:
        rounds: number of rounds (counted from 1; a resumed job continues to this number).
        strategy: the aggregation strategy and its failure policy.
        secure: aggregate through ``fedcore.secagg`` (weighted strategies only).
        dp: client-level DP settings, or None. With ``secure`` the noise is distributed
            Skellam noise added by the parties (placement ``party``).
        sampling: which parties train each round; with DP and ``fraction < 1`` it is always
            Poisson sampling at rate ``fraction``.
        coordinator: the coordinating party (default: the first party).
        round_timeout: seconds to wait for updates or the next round (default: ctx's).
        weight_cap: secure mode: a public bound on sample counts, the same at every party; a party
            sends weight ``min(n, weight_cap) / weight_cap`` (so at most 1).
        secure_clip: secure mode: every delta coordinate is clamped to [-secure_clip, secure_clip].
        checkpoint: directory to save a checkpoint into after each round, inside the party's output
            folder (``ctx.output_path``).
        resume: a checkpoint file or directory to continue from, inside the party's output
            folders (``ctx.output_path(..., scope="party")``: ``<earlier job id>/ckpt``).
    """

    rounds: int
    strategy: Strategy
    secure: bool = False
    dp: dpm.DPConfig | None = None
    sampling: Sampling = dataclasses.field(default_factory=Sampling)
    coordinator: str | None = None
    round_timeout: float | None = None
    weight_cap: int = 1_000_000
    secure_clip: float = 4.0
    checkpoint: str | None = None
    resume: str | None = None

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise ConfigError(f"rounds must be >= 0, got {self.rounds}")
        if (self.secure or self.dp) and not self.strategy.weighted:
            raise ConfigError(
                f"strategy {self.strategy.name} aggregates per coordinate; secure aggregation and DP "
                "need a weighted-average strategy (fedavg, fedprox, fedadam, fedyogi, fedadagrad)"
            )
        if self.weight_cap < 1 or not self.secure_clip > 0:
            raise ConfigError("weight_cap must be >= 1 and secure_clip > 0")
        if self.dp is not None and self.secure and self.dp.placement != "party":
            # the coordinator sees only the secure sum: the noise has to come from the parties
            object.__setattr__(self, "dp", dataclasses.replace(self.dp, placement="party"))
        if self.dp is not None and not self.sampling.everyone and not self.sampling.poisson:
            object.__setattr__(self, "sampling", dataclasses.replace(self.sampling, poisson=True))


def train(ctx: Context, params: Params, fit: Fit, evaluate: Evaluate | None, config: TrainConfig) -> dict:
    """Run the job as this party: the coordinator's loop or a party's loop."""
    coordinator = config.coordinator or ctx.parties[0]
    if coordinator not in ctx.parties:
        raise ConfigError(f"coordinator {coordinator!r} is not a party of this job")
    if ctx.party == coordinator:
        return Coordinator(ctx, params, fit, evaluate, config).run()
    return run_party(ctx, fit, config, coordinator)


# ---------------------------------------------------------------------------- both roles


def local_update(ctx: Context, fit: Fit, message: RoundStart, config: TrainConfig) -> tuple[Params, int, int]:
    """Train from the round's parameters; return (delta to send, weight, samples trained on)."""
    params = list(message.params)
    new, samples = fit(params, dict(message.config))
    delta = subtract(new, params)
    weight = samples
    if config.dp is not None:
        delta, _ = dpm.clip(delta, config.dp.clip_norm)
        weight = 1
        if config.dp.placement == "party" and not config.secure:
            std = dpm.party_noise_std(config.dp, message.picked or len(message.parties))
            delta = [d + n for d, n in zip(delta, dpm.gaussian_noise(delta, std, ctx.rng), strict=True)]
    return delta, weight, samples


def run_party(ctx: Context, fit: Fit, config: TrainConfig, coordinator: str) -> dict:
    """A non-coordinating party: answer rounds until the coordinator says stop."""
    rounds = samples = 0
    while True:
        message = ctx.recv(coordinator, GLOBAL_TAG, timeout=config.round_timeout)
        if isinstance(message, Stop):
            break
        if isinstance(message, Wait):
            continue  # not picked this round; the next message comes with the next round
        if not isinstance(message, RoundStart):
            raise ProtocolError(f"{coordinator} sent {type(message).__name__} under {GLOBAL_TAG}")
        rnd = message.round
        ctx.progress(step=f"round {rnd}", done=rnd - 1, total=config.rounds)
        delta, weight, samples = local_update(ctx, fit, message, config)
        if config.secure:
            _secure.contribute(ctx, message, delta, weight, coordinator, config)
        else:
            update = ClientUpdate(rnd, tuple(d.astype(np.float32) for d in delta), weight)
            ctx.send(coordinator, f"fl/update/{rnd}", update)
        rounds += 1
    return {"samples": samples, "rounds": rounds}


# ---------------------------------------------------------------------------- coordinator


class Coordinator:
    """The coordinator's side of the loop; one instance per job."""

    def __init__(
        self, ctx: Context, params: Params, fit: Fit, evaluate: Evaluate | None, config: TrainConfig
    ):
        self.ctx, self.fit, self.evaluate, self.config = ctx, fit, evaluate, config
        self.strategy = config.strategy
        self.params = [np.asarray(p) for p in params]
        self.state = self.strategy.init_state(self.params)
        self.history: list[dict[str, Any]] = []
        self.ledger = _secure.make_ledger(config, self.params)
        self.active = list(ctx.parties)
        self.samples = 0
        self.start = 0
        self.began = time.monotonic()
        if config.resume:
            self._resume(config.resume)

    def _resume(self, path: str) -> None:
        ckpt = load_checkpoint(job_path(self.ctx, path, scope="party"))
        if len(ckpt.params) != len(self.params) or any(
            np.shape(a) != np.shape(b) for a, b in zip(ckpt.params, self.params, strict=True)
        ):
            raise ConfigError(f"resume: checkpoint {path} does not fit this model")
        self.params, self.start = ckpt.params, ckpt.round
        self.state = ckpt.state or self.state
        self.history = list(ckpt.meta.get("history", []))
        if self.ledger is not None:
            self.ledger.rounds = [(float(r[0]), float(r[1])) for r in ckpt.meta.get("privacy", [])]

    def run(self) -> dict:
        """Run rounds ``start+1 .. rounds``; return the history and final metrics."""
        for rnd in range(self.start + 1, self.config.rounds + 1):
            self.ctx.progress(step=f"round {rnd}", done=rnd - 1, total=self.config.rounds)
            entry = self.round(rnd)
            self.history.append(entry)
            self.ctx.progress(
                progress_message(entry), step=f"round {rnd}", done=rnd, total=self.config.rounds
            )
        self.ctx.broadcast(GLOBAL_TAG, Stop(), to=[p for p in self.active if p != self.ctx.party])
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
        return result

    def round(self, rnd: int) -> dict[str, Any]:
        """One round: pick, broadcast, train, collect, aggregate, evaluate, checkpoint."""
        began = time.perf_counter()
        me = self.ctx.party
        population = list(self.active)
        picked = self.config.sampling.pick(rnd, self.ctx.seed, population)
        members = _secure.members(picked, me, population) if self.config.secure else picked
        waiting = [p for p in population if p not in set(members) and p != me]
        self.ctx.broadcast(GLOBAL_TAG, Wait(rnd), to=waiting)
        message = RoundStart(
            rnd, tuple(self.params), tuple(members), self.strategy.client_config(rnd), len(picked)
        )
        self.ctx.broadcast(GLOBAL_TAG, message, to=[p for p in members if p != me])
        own = None
        if me in picked:
            delta, weight, self.samples = local_update(self.ctx, self.fit, message, self.config)
            own = Update(me, delta, weight)
        denominator = self._denominator(len(population))
        if self.config.secure:
            included, rejected = _secure.coordinate(self, message, own, picked, denominator)
        else:
            included, rejected = self._plain_round(rnd, own, picked, denominator)
        lost = [p for p in picked if p not in set(included)]
        self.active = [p for p in population if p not in set(lost)]
        entry = {"round": rnd, **self._metrics(), "parties": len(included), "dropped": lost}
        if rejected:
            entry["rejected"] = rejected
        if self.ledger is not None:
            entry["epsilon"] = self._charge(len(included), len(picked))
        entry["seconds"] = round(time.perf_counter() - began, 4)
        numbers = {k: v for k, v in entry.items() if k != "round" and isinstance(v, (int, float))}
        self.ctx.metrics(rnd, **numbers)  # the daemon stores them; its status page charts them
        self._save(rnd, entry)
        return entry

    def _denominator(self, population: int) -> float | None:
        """Poisson rounds divide by the expected count ``q n`` (public, whoever was drawn)."""
        if self.config.sampling.poisson:
            return self.config.sampling.fraction * population
        return None

    def _charge(self, included: int, picked: int) -> float:
        if self.ledger is None or self.config.dp is None:
            raise RuntimeError("privacy charged without a DP config")
        if self.config.secure:
            return self.ledger.record(_secure.round_mu(self.ledger, included, picked))
        sigma = dpm.effective_multiplier(self.config.dp, included, picked) if picked else 0.0
        if self.config.dp.placement == "server" or not picked:
            sigma = self.config.dp.noise_multiplier  # every round is charged, empty ones too
        return self.ledger.record(sigma, self.config.sampling.rate)

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

    def _plain_round(
        self, rnd: int, own: Update | None, picked: list[str], denominator: float | None
    ) -> tuple[list[str], dict]:
        received, rejected = self._collect(rnd, [p for p in picked if p != self.ctx.party])
        updates = ([own] if own is not None else []) + received
        included = [u.party for u in updates]
        self.check_quorum(rnd, included, picked)
        if self.config.dp is not None:
            mean = self._noised_mean(updates, denominator or len(updates))
            agg = self.strategy.apply(rnd, self.params, mean, self.state)  # type: ignore[attr-defined]
        elif updates:
            agg = self.strategy.aggregate(rnd, self.params, updates, self.state)
        else:
            return included, rejected
        self.params, self.state = agg.params, agg.state
        return included, rejected

    def _collect(self, rnd: int, sources: list[str]) -> tuple[list[Update], dict[str, str]]:
        """Round ``rnd``'s updates from ``sources`` within one deadline, like ``ctx.gather(...,
        allow_missing=True)``, but a party whose message does not decode or fit the model is
        left out (with the reason) instead of failing the job."""
        timeout = self.ctx.timeout_s if self.config.round_timeout is None else self.config.round_timeout
        deadline = time.monotonic() + timeout
        updates: list[Update] = []
        rejected: dict[str, str] = {}
        for src in sources:
            try:
                value = self.ctx.recv(src, f"fl/update/{rnd}", timeout=max(0.0, deadline - time.monotonic()))
                updates.append(_check_update(src, value, rnd, self.params))
            except (PartyDropped, Timeout):
                continue
            except (DecodeError, ProtocolError) as exc:
                rejected[src] = str(exc)
        return updates, rejected

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
            noise = dpm.gaussian_noise(total, dpm.server_noise_std(self.config.dp), self.ctx.rng)
            total = [t + n for t, n in zip(total, noise, strict=True)]
        return [t / max(denominator, 1e-12) for t in total]

    def _metrics(self) -> dict[str, float]:
        if self.evaluate is None:
            return {}
        metrics = self.evaluate(self.params)
        return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}

    def _save(self, rnd: int, entry: dict[str, Any]) -> None:
        if not self.config.checkpoint:
            return
        meta = {"strategy": self.strategy.name, "history": [*self.history, entry]}
        if self.ledger is not None:
            meta["privacy"] = [list(r) for r in self.ledger.rounds]
        folder = job_path(self.ctx, self.config.checkpoint)
        save_checkpoint(folder, Checkpoint(rnd, self.params, self.state, meta))


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
