"""``Context``: the one object a protocol script needs."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fedcore import wire
from fedcore.data import load_table
from fedcore.errors import ConfigError, DecodeError, PartyDropped, PolicyRefused, Timeout
from fedcore.outputs import make_folder, resolve_inside
from fedcore.runtime import Runtime
from fedcore.transport import Transport

DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report from a party: a step name and/or a done/total count."""

    party: str
    step: str | None
    done: float | None
    total: float | None
    message: str | None


@dataclass(frozen=True)
class Garbled:
    """Stands in, in a tolerant ``collect``, for a message whose bytes did not decode."""

    reason: str


@dataclass
class Traffic:
    """Encoded bytes a context sent and received (every ``send``, ``broadcast`` copy and ``recv``)."""

    sent: int = 0
    received: int = 0

    def snapshot(self) -> Traffic:
        return Traffic(self.sent, self.received)

    def __sub__(self, other: Traffic) -> Traffic:
        return Traffic(self.sent - other.sent, self.received - other.received)


def _size(payload: Any) -> int:
    if isinstance(payload, (bytes, bytearray)):
        return len(payload)
    if isinstance(payload, memoryview):
        return payload.nbytes
    return sum(_size(part) for part in payload)


ProgressSink = Callable[[ProgressEvent], None]
MetricsSink = Callable[[int, dict[str, float]], None]


def party_rng(seed: int, party: str) -> np.random.Generator:
    """The numpy Generator of ``party`` in a job seeded with ``seed``: same inputs, same stream."""
    digest = hashlib.sha256(party.encode()).digest()
    entropy = [seed & 0xFFFFFFFFFFFFFFFF, int.from_bytes(digest[:16], "big")]
    return np.random.default_rng(np.random.SeedSequence(entropy))


class Context:
    """One party's view of one job.

    Args:
        party: this party's name.
        transport: carries encoded messages to and from the other parties.
        runtime: this party's local task runtime.
        params: the job's parameters (also passed to ``main`` as keyword arguments).
        seed: the job seed; ``rng`` is derived from it and the party name.
        job_id: the job's id, for logs and errors.
        data: named local data sources: a path (.npz or .csv) or a ready value.
        progress_sink: receives ``ProgressEvent``s.
        timeout_s: the default deadline of ``recv`` and ``gather``.
        output_dir: this party's own folder for this job's files (made on first use).
        output_root: the folder that holds every job folder of this party, so that ``output_dir``
            is ``<output_root>/<job_id>[/sub]`` (default: ``output_dir``'s parent); an earlier
            job's files are read from ``<output_root>/<that job>[/sub]``.
        metrics_sink: receives ``ctx.metrics(round, ...)`` reports (the daemon's job store).
    """

    def __init__(
        self,
        party: str,
        transport: Transport,
        runtime: Runtime,
        *,
        params: Mapping[str, Any] | None = None,
        seed: int = 0,
        job_id: str = "local",
        data: Mapping[str, Any] | None = None,
        progress_sink: ProgressSink | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        output_dir: str | Path | None = None,
        output_root: str | Path | None = None,
        metrics_sink: MetricsSink | None = None,
    ):
        self.party = party
        self.parties: tuple[str, ...] = tuple(transport.parties)
        self.transport = transport
        self.runtime = runtime
        self.params: dict[str, Any] = dict(params or {})
        self.seed = seed
        self.job_id = job_id
        self.rng = party_rng(seed, party)
        self.timeout_s = timeout_s
        self.step: str | None = None
        self._data = dict(data or {})
        self._progress_sink = progress_sink
        self._output_dir = None if output_dir is None else Path(output_dir).absolute()
        self._output_root, self._output_sub = _output_root(self._output_dir, output_root, job_id)
        self._metrics_sink = metrics_sink
        self.traffic = Traffic()

    @property
    def others(self) -> tuple[str, ...]:
        """Every party but this one, in job order."""
        return tuple(p for p in self.parties if p != self.party)

    # ------------------------------------------------------------------ messaging

    def send(self, dst: str, tag: str, value: Any) -> None:
        """Send ``value`` to ``dst`` under ``tag``; does not wait for the receiver."""
        payload = wire.encode_parts(value)  # arrays go out without a join
        self.transport.send(dst, tag, payload)
        self.traffic.sent += _size(payload)

    def recv(self, src: str, tag: str, timeout: float | None = None) -> Any:
        """Wait for the next value from ``src`` under ``tag``.

        Raises:
            Timeout: nothing came within ``timeout`` seconds (default: the job's).
            PartyDropped: ``src`` stopped before sending it.
            DecodeError: ``src`` sent bytes that are not a valid encoding.
        """
        payload = self.transport.recv(src, tag, self._timeout(timeout))
        self.traffic.received += _size(payload)
        # a writable payload is this receiver's own buffer: arrays may view it instead of copying
        owned = isinstance(payload, bytearray) or (isinstance(payload, memoryview) and not payload.readonly)
        try:
            return wire.decode(payload, copy=not owned)
        except DecodeError as exc:
            raise DecodeError(f"{tag!r} from {src} to {self.party}: {exc}") from None

    def broadcast(
        self, tag: str, value: Any, *, to: Iterable[str] | None = None, lossy: bool = False
    ) -> None:
        """Send one value to every other party (or to ``to``), encoding it once.

        With ``lossy`` a destination that has dropped out is skipped instead of raising
        ``PartyDropped`` (the others still get the value).
        """
        targets = [dst for dst in (self.others if to is None else to) if dst != self.party]
        # one destination streams the parts; several share one joined copy
        payload = wire.encode_parts(value) if len(targets) == 1 else wire.encode(value)
        for dst in targets:
            try:
                self.transport.send(dst, tag, payload)
            except PartyDropped:
                if not lossy:
                    raise
                continue
            self.traffic.sent += _size(payload)

    def gather(
        self,
        tag: str,
        timeout: float | None = None,
        *,
        parties: Iterable[str] | None = None,
        allow_missing: bool = False,
    ) -> dict[str, Any]:
        """Receive one value under ``tag`` from every other party (or from ``parties``).

        All waits share one deadline. With ``allow_missing`` the parties that dropped out, did
        not answer in time, or sent bytes that do not decode are left out of the result
        instead of raising (a round that tolerates dropouts treats garbage as a dropout).
        """
        sources = self.others if parties is None else parties
        return {
            src: value
            for src, value in self.collect(tag, sources, timeout, tolerant=allow_missing)
            if not isinstance(value, Garbled)
        }

    def collect(
        self, tag: str, sources: Iterable[str], timeout: float | None = None, *, tolerant: bool = False
    ) -> Iterator[tuple[str, Any]]:
        """Yield ``(source, value)`` under ``tag`` from each of ``sources`` (this party left out),
        in order, all waits sharing one deadline.

        With ``tolerant`` a source that dropped out or did not answer in time is skipped, and
        one whose bytes do not decode yields a ``Garbled`` value saying why; otherwise those
        raise ``PartyDropped``, ``Timeout`` or ``DecodeError``.
        """
        deadline = time.monotonic() + self._timeout(timeout)
        for src in [p for p in sources if p != self.party]:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                yield src, self.recv(src, tag, timeout=remaining)
            except (PartyDropped, Timeout):
                if not tolerant:
                    raise
            except DecodeError as exc:
                if not tolerant:
                    raise
                yield src, Garbled(str(exc))

    def _timeout(self, timeout: float | None) -> float:
        value = self.timeout_s if timeout is None else float(timeout)
        if math.isnan(value) or value < 0:
            raise ValueError(f"timeout must be a non-negative number of seconds, got {timeout!r}")
        return value

    # ------------------------------------------------------------------ local

    def data(self, name: str) -> Any:
        """This party's local data source ``name``, from its config (a path) or the simulation."""
        if name not in self._data:
            known = ", ".join(sorted(self._data)) or "none"
            raise ConfigError(
                f"{self.party} has no data source {name!r} (configured: {known}); add it under "
                "[data] in the party's config"
            )
        source = self._data[name]
        if isinstance(source, (str, Path)):
            return load_table(Path(source))
        return source

    @property
    def output_dir(self) -> Path:
        """This party's folder for this job's files, created (private to its user) on first use.

        Raises:
            ConfigError: this context was built without one.
        """
        if self._output_dir is None:
            raise ConfigError(
                f"{self.party} has no output folder in job {self.job_id}: pass output_dir= to Context "
                "(the daemon and the simulator always do)"
            )
        return make_folder(self._output_dir)

    def output_path(self, value: str, *, scope: Literal["job", "party"] = "job") -> Path:
        """A path parameter resolved inside this party's output folder; its parent folders are made.

        Args:
            value: a relative path, e.g. the ``checkpoint=`` parameter.
            scope: ``job`` resolves inside ``output_dir``; ``party`` inside the folder that holds
                every job folder of this party, for reading an earlier job's files
                (``resume=<job id>/ckpt``).

        Raises:
            PolicyRefused: the value is absolute, has a ``..`` part, or leads outside the folder
                (through a symlink too): an initiator never chooses where another party writes.
            ConfigError: this context has no output folder.
        """
        if scope not in ("job", "party"):
            raise ValueError(f"scope must be 'job' or 'party', got {scope!r}")
        if scope == "party":  # reading an earlier job's files: nothing is created
            return self._earlier_job_path(value)
        path = resolve_inside(self.output_dir, value, party=self.party)
        make_folder(path.parent)
        return path

    def _earlier_job_path(self, value: str) -> Path:
        """``<job id>/<path>`` inside the output folder of that job of this party."""
        root = self.output_dir.parent if self._output_root is None else self._output_root
        resolve_inside(root, value, party=self.party)  # the shape and symlinks, checked whole
        job, _, rest = value.replace("\\", "/").partition("/")
        if not rest.strip("/"):
            raise PolicyRefused(
                f"{self.party} refuses the path {value!r}: expected <job id>/<path>, a path in the "
                "output folder of an earlier job of this party"
            )
        return resolve_inside(root / job / self._output_sub, rest, party=self.party)

    def metrics(self, round: int, **values: float | None) -> None:
        """Report one round's metrics (``ctx.metrics(3, accuracy=0.91, loss=0.3)``): the daemon
        stores them with the job, and its status page draws them per round. None and
        non-finite values are left out (a diverged loss is no point on a chart)."""
        if self._metrics_sink is None:
            return
        finite = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
        self._metrics_sink(int(round), finite)

    def progress(
        self,
        message: str | None = None,
        *,
        step: str | None = None,
        done: float | None = None,
        total: float | None = None,
    ) -> None:
        """Report progress; ``step`` also names where this party is, for abort messages."""
        if step is not None:
            self.step = step
        if self._progress_sink is not None:
            self._progress_sink(ProgressEvent(self.party, self.step, done, total, message))

    def __repr__(self) -> str:
        return f"<Context party={self.party!r} job={self.job_id!r} parties={len(self.parties)}>"


def _output_root(output_dir: Path | None, root: str | Path | None, job_id: str) -> tuple[Path | None, Path]:
    """The folder of every job folder of this party and ``output_dir``'s place inside its job's."""
    if output_dir is None or root is None:
        return None, Path()  # job folders are output_dir's siblings
    absolute = Path(root).absolute()
    if not output_dir.is_relative_to(absolute / job_id):
        raise ConfigError(f"output_dir {output_dir} is not inside {absolute / job_id} (output_root/job_id)")
    return absolute, output_dir.relative_to(absolute / job_id)
