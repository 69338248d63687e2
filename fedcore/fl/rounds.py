"""The federated training round loop over ``ctx``.

Theory of operation. One party is the coordinator (by default the first of ``ctx.parties``);
it also trains on its own data. Round ``t``:

1. The coordinator sends ``RoundStart(t, x_t, active parties, strategy.client_config(t))``
   under tag ``fl/global`` to every other active party (messages: ``fedcore.fl.messages``).
2. Every active party (the coordinator too) trains locally from ``x_t`` (``fit``) and forms
   its delta ``Δ_i = x_i - x_t`` and sample count ``n_i``. With DP it clips ``Δ_i`` to L2 norm
   ``C`` and uses weight 1 (and, with ``placement="party"``, adds its share of the noise).
3. Plain: each party sends ``ClientUpdate(t, Δ_i, n_i)`` under ``fl/update/t``; the coordinator
   collects them until one deadline, leaving out parties that dropped, were late or sent
   something malformed, and the strategy aggregates. Secure: each party
   gives ``[w_i Δ_i, w_i]`` to ``fedcore.secagg.secure_sum`` and the coordinator learns only
   ``Σ w_i Δ_i`` and ``Σ w_i``, whose ratio is the weighted mean the strategy's ``apply`` takes
   (``w_i = min(n_i, weight_cap) / weight_cap``; each coordinate is clamped to the fixed-point
   range first).
4. Parties that did not answer are recorded as ``dropped`` for that round and are not asked
   again; the strategy's failure policy (``min_parties``) decides whether the round may go
   on (``PartyDropped`` otherwise); with secure aggregation a round also fails when more
   parties drop than the secure sum's Shamir threshold tolerates. The coordinator
   evaluates, checkpoints and goes on.

After the last round the coordinator sends ``Stop()`` to the active parties.
A silent or dropped party can only remove its own update; a party sending malformed
updates is dropped with the reason recorded (robust strategies bound what well-formed but
hostile updates can do; weighted ones do not).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedcore.context import Context
from fedcore.errors import ConfigError, DecodeError, PartyDropped, ProtocolError, Timeout
from fedcore.fl import dp as dpm
from fedcore.fl.arrays import Params, check_like, flatten, subtract, unflatten
from fedcore.fl.checkpoint import Checkpoint, job_path, load_checkpoint, save_checkpoint
from fedcore.fl.messages import ClientUpdate, RoundStart, Stop
from fedcore.fl.strategies import Strategy, Update

Fit = Callable[[Params, dict[str, Any]], tuple[Params, int]]
Evaluate = Callable[[Params], dict[str, float]]
GLOBAL_TAG = "fl/global"
SECURE_BITS = 64  # ring width of secure aggregation: about 50 fractional bits at our ranges


@dataclass(frozen=True)
class TrainConfig:
    """How a federated training job runs.

    Args:
        rounds: number of rounds (counted from 1; a resumed job continues to this number).
        strategy: the aggregation strategy and its failure policy.
        secure: aggregate through ``fedcore.secagg`` (weighted strategies only).
        dp: client-level DP settings, or None.
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
        if config.dp.placement == "party":
            std = dpm.party_noise_std(config.dp, len(message.parties))
            delta = [d + n for d, n in zip(delta, dpm.gaussian_noise(delta, std, ctx.rng), strict=True)]
    return delta, weight, samples


def _secure_bound(config: TrainConfig, expected: int) -> float:
    if config.dp is not None and config.dp.placement == "party":
        return config.dp.clip_norm + 10 * dpm.party_noise_std(config.dp, expected)
    return config.secure_clip


def secure_contribute(
    ctx: Context,
    rnd: int,
    delta: Params,
    weight: int,
    parties: Sequence[str],
    coordinator: str,
    config: TrainConfig,
) -> Any:
    """Give ``[w Δ, w]`` to the secure sum of round ``rnd``; the coordinator gets the result."""
    try:
        from fedcore.secagg import secure_sum
    except ImportError as exc:
        raise ConfigError(f"secure=true needs fedcore.secagg, which cannot be imported here: {exc}") from None
    bound = max(1.0, _secure_bound(config, len(parties)))  # w <= 1 must fit too
    w = min(weight, config.weight_cap) / config.weight_cap
    vector = np.append(w * np.clip(flatten(delta), -bound, bound), w)
    return secure_sum(
        ctx,
        vector,
        aggregator=coordinator,
        parties=tuple(parties),
        value_range=bound,
        bits=SECURE_BITS,
        timeout=config.round_timeout,
        round_id=f"fl/{rnd}",
    )


def run_party(ctx: Context, fit: Fit, config: TrainConfig, coordinator: str) -> dict:
    """A non-coordinating party: answer rounds until the coordinator says stop."""
    rounds = samples = 0
    while True:
        message = ctx.recv(coordinator, GLOBAL_TAG, timeout=config.round_timeout)
        if isinstance(message, Stop):
            break
        if not isinstance(message, RoundStart):
            raise ProtocolError(f"{coordinator} sent {type(message).__name__} under {GLOBAL_TAG}")
        rnd = message.round
        ctx.progress(step=f"round {rnd}", done=rnd - 1, total=config.rounds)
        delta, weight, samples = local_update(ctx, fit, message, config)
        if config.secure:
            secure_contribute(ctx, rnd, delta, weight, message.parties, coordinator, config)
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
        self.ledger = dpm.PrivacyLedger(config.dp.delta) if config.dp else None
        self.active = list(ctx.parties)
        self.samples = 0
        self.start = 0
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
            self.ledger.rounds = [tuple(r) for r in ckpt.meta.get("privacy", [])]

    def run(self) -> dict:
        """Run rounds ``start+1 .. rounds``; return the history and final metrics."""
        for rnd in range(self.start + 1, self.config.rounds + 1):
            self.ctx.progress(step=f"round {rnd}", done=rnd - 1, total=self.config.rounds)
            self.history.append(self.round(rnd))
            self.ctx.progress(step=f"round {rnd}", done=rnd, total=self.config.rounds)
        self.ctx.broadcast(GLOBAL_TAG, Stop(), to=[p for p in self.active if p != self.ctx.party])
        lost = {p: h["round"] for h in self.history for p in h.get("dropped", [])}
        result: dict[str, Any] = {"history": self.history, "samples": self.samples, "lost": lost}
        final = self.history[-1] if self.history else self._metrics()
        result.update({k: final[k] for k in ("accuracy", "loss") if k in final})
        if self.ledger is not None:
            result["epsilon"], result["delta"] = self.ledger.epsilon(), self.ledger.delta
        return result

    def round(self, rnd: int) -> dict[str, Any]:
        """One round: broadcast, train, collect, aggregate, evaluate, checkpoint."""
        began = time.perf_counter()
        expected = list(self.active)
        message = RoundStart(rnd, tuple(self.params), tuple(expected), self.strategy.client_config(rnd))
        self.ctx.broadcast(GLOBAL_TAG, message, to=[p for p in expected if p != self.ctx.party])
        delta, weight, self.samples = local_update(self.ctx, self.fit, message, self.config)
        if self.config.secure:
            included, rejected = self._secure_round(rnd, delta, weight, expected)
        else:
            included, rejected = self._plain_round(rnd, delta, weight, expected)
        self.active = [p for p in expected if p in set(included)]
        entry = {
            "round": rnd,
            **self._metrics(),
            "parties": len(included),
            "dropped": [p for p in expected if p not in set(included)],
        }
        if rejected:
            entry["rejected"] = rejected
        if self.ledger is not None:
            sigma = dpm.effective_multiplier(self.config.dp, len(included), len(expected))
            entry["epsilon"] = self.ledger.record(sigma)
        entry["seconds"] = round(time.perf_counter() - began, 4)
        numbers = {k: v for k, v in entry.items() if k != "round" and isinstance(v, (int, float))}
        self.ctx.metrics(rnd, **numbers)  # the daemon stores them; its status page charts them
        self._save(rnd, entry)
        return entry

    def _plain_round(
        self, rnd: int, delta: Params, weight: int, expected: list[str]
    ) -> tuple[list[str], dict]:
        received, rejected = self._collect(rnd, [p for p in expected if p != self.ctx.party])
        updates = [Update(self.ctx.party, delta, weight), *received]
        included = [u.party for u in updates]
        self.strategy.check_quorum(rnd, included, expected)
        if self.config.dp is not None:
            mean = self._noised_mean(updates)
            agg = self.strategy.apply(rnd, self.params, mean, self.state)  # type: ignore[attr-defined]
        else:
            agg = self.strategy.aggregate(rnd, self.params, updates, self.state)
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

    def _noised_mean(self, updates: Sequence[Update]) -> Params:
        """Central DP: (sum of clipped deltas + N(0, (sigma C)^2)) / k, clipping again here."""
        if self.config.dp is None:
            raise RuntimeError("central DP noise was asked for without a DP config")
        clipped = [dpm.clip(u.delta, self.config.dp.clip_norm)[0] for u in updates]
        total = [sum(parts) for parts in zip(*clipped, strict=True)]
        noise = dpm.gaussian_noise(total, dpm.server_noise_std(self.config.dp), self.ctx.rng)
        return [(t + n) / len(updates) for t, n in zip(total, noise, strict=True)]

    def _secure_round(
        self, rnd: int, delta: Params, weight: int, expected: list[str]
    ) -> tuple[list[str], dict]:
        res = secure_contribute(self.ctx, rnd, delta, weight, expected, self.ctx.party, self.config)
        included = list(res.included)
        self.strategy.check_quorum(rnd, included, expected)
        total = np.asarray(res.total, dtype=np.float64)
        if not total[-1] > 0:
            raise ProtocolError(f"round {rnd}: the secure sum carries no weight")
        mean = unflatten(total[:-1] / total[-1], [np.zeros(np.shape(p)) for p in self.params])
        agg = self.strategy.apply(rnd, self.params, mean, self.state)  # type: ignore[attr-defined]
        self.params, self.state = agg.params, agg.state
        return included, {}

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


def _check_update(party: str, value: Any, rnd: int, params: Params) -> Update:
    if not isinstance(value, ClientUpdate) or value.round != rnd:
        raise ProtocolError(f"{party} sent {type(value).__name__} instead of its round {rnd} update")
    return Update(party, check_like(value.delta, params, who=party), value.samples)
