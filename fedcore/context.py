"""``Context``: the one object a protocol script needs."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedcore import wire
from fedcore.errors import ConfigError, DecodeError, PartyDropped, Timeout
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


ProgressSink = Callable[[ProgressEvent], None]


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

    @property
    def others(self) -> tuple[str, ...]:
        """Every party but this one, in job order."""
        return tuple(p for p in self.parties if p != self.party)

    # ------------------------------------------------------------------ messaging

    def send(self, dst: str, tag: str, value: Any) -> None:
        """Send ``value`` to ``dst`` under ``tag``; does not wait for the receiver."""
        self.transport.send(dst, tag, wire.encode_parts(value))  # arrays go out without a join

    def recv(self, src: str, tag: str, timeout: float | None = None) -> Any:
        """Wait for the next value from ``src`` under ``tag``.

        Raises:
            Timeout: nothing came within ``timeout`` seconds (default: the job's).
            PartyDropped: ``src`` stopped before sending it.
            DecodeError: ``src`` sent bytes that are not a valid encoding.
        """
        payload = self.transport.recv(src, tag, self._timeout(timeout))
        # a writable payload is this receiver's own buffer: arrays may view it instead of copying
        owned = isinstance(payload, bytearray) or (isinstance(payload, memoryview) and not payload.readonly)
        try:
            return wire.decode(payload, copy=not owned)
        except DecodeError as exc:
            raise DecodeError(f"{tag!r} from {src} to {self.party}: {exc}") from None

    def broadcast(self, tag: str, value: Any, *, to: Iterable[str] | None = None) -> None:
        """Send one value to every other party (or to ``to``), encoding it once."""
        targets = [dst for dst in (self.others if to is None else to) if dst != self.party]
        # one destination streams the parts; several share one joined copy
        payload = wire.encode_parts(value) if len(targets) == 1 else wire.encode(value)
        for dst in targets:
            self.transport.send(dst, tag, payload)

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
        sources = [p for p in (self.others if parties is None else parties) if p != self.party]
        deadline = time.monotonic() + self._timeout(timeout)
        values: dict[str, Any] = {}
        for src in sources:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                values[src] = self.recv(src, tag, timeout=remaining)
            except (PartyDropped, Timeout, DecodeError):
                if not allow_missing:
                    raise
        return values

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
            from fedcore.dataio import load_table

            return load_table(Path(source))
        return source

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
