"""The daemon's Prometheus metrics (``GET /metrics``): jobs by state, traffic per peer, refusals, rounds."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

ROUND_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


class _JobsByState(Collector):
    """``fedcore_jobs{state}`` read from the job store at scrape time (it survives restarts)."""

    def __init__(self, counts: Callable[[], dict[str, int]]):
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "fedcore_jobs", "Jobs in this party's job store, by state", labels=["state"]
        )
        for state, count in sorted(self._counts().items()):
            family.add_metric([state], count)
        yield family


class DaemonMetrics:
    """One daemon's registry (never the process-wide default: tests run several daemons).

    Args:
        job_counts: jobs by state, from the job store.
    """

    def __init__(self, job_counts: Callable[[], dict[str, int]]):
        self.registry = CollectorRegistry()
        self.registry.register(_JobsByState(job_counts))
        self.messages = Counter(
            "fedcore_peer_messages",
            "Job messages exchanged with each peer",
            ["peer", "direction"],
            registry=self.registry,
        )
        self.bytes = Counter(
            "fedcore_peer_bytes",
            "Payload bytes exchanged with each peer",
            ["peer", "direction"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "fedcore_job_refusals",
            "Job proposals this party refused, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.rounds = Histogram(
            "fedcore_round_seconds",
            "Duration of a training round a script reported",
            ["script"],
            buckets=ROUND_BUCKETS_S,
            registry=self.registry,
        )

    def count_message(self, peer: str, direction: str, size: int) -> None:
        self.messages.labels(peer, direction).inc()
        self.bytes.labels(peer, direction).inc(size)

    def refused(self, error: BaseException) -> None:
        self.refusals.labels(_reason(error)).inc()

    def round_done(self, script: str, seconds: float) -> None:
        self.rounds.labels(script).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _reason(error: BaseException) -> str:
    """A small, fixed label set: never peer-chosen text as a label value."""
    text = str(error)
    for reason in ("hash differs", "script not allowed", "initiator not allowed", "shutting down"):
        if reason in text:
            return reason.replace(" ", "_")
    return type(error).__name__
