"""The typed control plane: every job message between daemons, and a party's outcome.

Theory of operation
-------------------
A job's daemons talk over the peer port's ``Control`` call: a ``MessageKind`` (the call's
kind string) and a body that is a ``fedcore.wire`` map. Each message below is a frozen
dataclass, validated when it is built, so a malformed body from a peer is a
``ProtocolError`` at the boundary, never a ``KeyError`` deep inside the runner. The sender's
identity is never a field: it is the TLS certificate's party id.

    initiator                                   party
      PROPOSE  ------------------------------>  policy check, script hash, params
               <------------------------------  ACCEPT | REFUSE (party, reason)
      START    ------------------------------>  runs its side
      WAIT     ------------------------------>  long poll
               <------------------------------  PROGRESS events, the party's OUTCOME when done
      CANCEL   ------------------------------>  records ``cancelled``, stops its side
      ABORT    ------------------------------>  records ``failed`` (the initiator gave up)

A party's outcome is one value, ``Outcome = Ok | RemoteError`` (``fedcore.results``, below both
the daemon and the simulator, which carry it; re-exported here): ok with its result, or an
error naming the party, the step it was at and the error's kind.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from fedcore import errors, wire
from fedcore.errors import ConfigError, FedcoreError, ProtocolError
from fedcore.results import (
    Ok,
    Outcome,
    RemoteError,
    expect_map,
    expect_opt_str,
    expect_party,
    expect_str,
    outcome_from_wire,
    outcome_json,
    outcome_to_wire,
)
from fedcore.transport.base import PARTY_NAME

__all__ = ["Ok", "Outcome", "RemoteError", "outcome_from_wire", "outcome_json", "outcome_to_wire"]


class MessageKind(enum.Enum):
    """The kind of a control message (the peer ``Control`` call's kind string)."""

    PROPOSE = "job.propose"
    ACCEPT = "job.accept"
    REFUSE = "job.refuse"
    START = "job.start"
    WAIT = "job.wait"
    PROGRESS = "job.progress"
    OUTCOME = "job.outcome"
    CANCEL = "job.cancel"
    ABORT = "job.abort"
    STATUS = "job.status"  # the reply to WAIT: state, new events, outcome once done


# ---------------------------------------------------------------------------- peer messages


@dataclass(frozen=True)
class Propose:
    """Initiator -> party: run your side of this job if your policy allows it."""

    job_id: str
    script: str
    sha256: str
    params: Mapping[str, Any]
    seed: int
    parties: tuple[str, ...]
    timeout_s: float
    kind: MessageKind = field(default=MessageKind.PROPOSE, init=False)

    def __post_init__(self) -> None:
        _job_id(self.job_id)
        expect_str("script", self.script)
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ProtocolError(f"job.propose: sha256 must be 64 hex digits, got {self.sha256[:80]!r}")
        if not isinstance(self.params, Mapping) or not all(isinstance(k, str) for k in self.params):
            raise ProtocolError("job.propose: params must be a map with string keys")
        _int("seed", self.seed)
        if not isinstance(self.parties, tuple) or not self.parties:
            raise ProtocolError("job.propose: parties must be a non-empty list of party names")
        for p in self.parties:
            expect_party("parties", p)
        if len(set(self.parties)) != len(self.parties):
            raise ProtocolError(f"job.propose: parties {list(self.parties)} name a party twice")
        _positive("timeout_s", self.timeout_s)


@dataclass(frozen=True)
class Accept:
    """Party -> initiator: the job is prepared here and may be started."""

    job_id: str
    kind: MessageKind = field(default=MessageKind.ACCEPT, init=False)

    def __post_init__(self) -> None:
        _job_id(self.job_id)


@dataclass(frozen=True)
class Refuse:
    """Party -> initiator: ``party`` will not run the job, because ``reason``."""

    job_id: str
    party: str
    error: str  # the error type name: PolicyRefused, ConfigError...
    reason: str
    kind: MessageKind = field(default=MessageKind.REFUSE, init=False)

    def __post_init__(self) -> None:
        _job_id(self.job_id)
        expect_party("party", self.party)
        expect_str("error", self.error)
        expect_str("reason", self.reason)


@dataclass(frozen=True)
class Start:
    """Initiator -> party: start your side of a prepared job."""

    job_id: str
    kind: MessageKind = field(default=MessageKind.START, init=False)

    def __post_init__(self) -> None:
        _job_id(self.job_id)


@dataclass(frozen=True)
class Wait:
    """Initiator -> party: long poll for events after the first ``seen``, up to ``wait_s``."""

    job_id: str
    seen: int = 0
    wait_s: float = 2.0
    kind: MessageKind = field(default=MessageKind.WAIT, init=False)

    def __post_init__(self) -> None:
        _job_id(self.job_id)
        _int("seen", self.seen)
        if self.seen < 0:
            raise ProtocolError(f"job.wait: seen must be >= 0, got {self.seen}")
        _number("wait_s", self.wait_s)
        if not 0 <= self.wait_s <= 60:
            raise ProtocolError(f"job.wait: wait_s must be 0-60 seconds, got {self.wait_s!r}")


@dataclass(frozen=True)
class Progress:
    """One progress report of ``party``; ``metrics`` holds per-round values a script reported."""

    party: str
    step: str | None = None
    done: float | None = None
    total: float | None = None
    message: str | None = None
    at: float = 0.0
    kind: MessageKind = field(default=MessageKind.PROGRESS, init=False)

    def __post_init__(self) -> None:
        expect_party("party", self.party)
        expect_opt_str("step", self.step)
        expect_opt_str("message", self.message)
        for name in ("done", "total"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise ProtocolError(f"job.progress: {name} must be a number, got {value!r}")
        _number("at", self.at)

    def to_json(self) -> dict[str, Any]:
        return {
            "party": self.party,
            "step": self.step,
            "done": self.done,
            "total": self.total,
            "message": self.message,
            "at": self.at,
        }


@dataclass(frozen=True)
class Status:
    """Party -> initiator, the reply to ``Wait``: its state, new events, and its outcome once done."""

    job_id: str
    state: str
    events: tuple[Progress, ...]
    total: int
    step: str | None
    outcome: Outcome | None
    kind: MessageKind = field(default=MessageKind.STATUS, init=False)

    def __post_init__(self) -> None:
        _job_id(self.job_id)
        expect_str("state", self.state)
        _int("total", self.total)
        expect_opt_str("step", self.step)


@dataclass(frozen=True)
class Cancel:
    """Initiator -> party: the operator cancelled the job; record ``cancelled`` and stop."""

    job_id: str
    reason: str = "cancelled"
    kind: MessageKind = field(default=MessageKind.CANCEL, init=False)

    def __post_init__(self) -> None:
        _job_id(self.job_id)
        expect_str("reason", self.reason)


@dataclass(frozen=True)
class Abort:
    """Initiator -> party: the job cannot finish (a deadline passed); record ``failed`` and stop."""

    job_id: str
    step: str | None
    reason: str
    kind: MessageKind = field(default=MessageKind.ABORT, init=False)

    def __post_init__(self) -> None:
        _job_id(self.job_id)
        expect_opt_str("step", self.step)
        expect_str("reason", self.reason)


Message: TypeAlias = Propose | Accept | Refuse | Start | Wait | Progress | Status | Cancel | Abort


# ---------------------------------------------------------------------------- wire form


def to_wire(message: Message) -> dict[str, Any]:
    """The wire map of a message (its kind travels as the Control call's kind)."""
    if isinstance(message, Propose):
        return {
            "job_id": message.job_id,
            "script": message.script,
            "sha256": message.sha256,
            "params": dict(message.params),
            "seed": message.seed,
            "parties": list(message.parties),
            "timeout_s": message.timeout_s,
        }
    if isinstance(message, Status):
        return {
            "job_id": message.job_id,
            "state": message.state,
            "total": message.total,
            "step": message.step,
            "events": [e.to_json() for e in message.events],
            "outcome": None if message.outcome is None else outcome_to_wire(message.outcome),
        }
    if isinstance(message, Progress):
        return message.to_json()
    return {k: v for k, v in vars(message).items() if k != "kind"}


def from_wire(kind: MessageKind, value: Any) -> Message:
    """Validate a decoded body as a message of ``kind``.

    Raises:
        ProtocolError: the body is not a valid message of that kind.
    """
    body = expect_map(kind.value, value)

    def get(key: str) -> Any:  # unchecked here: each dataclass validates its own fields
        return body.get(key)

    try:
        if kind is MessageKind.PROPOSE:
            parties = get("parties")
            if not isinstance(parties, (list, tuple)):
                raise ProtocolError("job.propose: parties must be a list of party names")
            return Propose(get("job_id"), get("script"), get("sha256") or "", get("params"), get("seed"),
                           tuple(parties), get("timeout_s"))  # fmt: skip
        if kind is MessageKind.STATUS:
            events = get("events")
            if not isinstance(events, list):
                raise ProtocolError("job.status: events must be a list")
            outcome = get("outcome")
            return Status(get("job_id"), get("state"), tuple(_progress(e) for e in events), get("total"),
                          get("step"), None if outcome is None else outcome_from_wire(outcome))  # fmt: skip
        if kind is MessageKind.PROGRESS:
            return _progress(body)
        cls = _SIMPLE[kind]
        fields = {k: v for k, v in body.items() if k in cls.__dataclass_fields__ and k != "kind"}
        message: Message = cls(**fields)
        return message
    except TypeError as exc:  # a missing field
        raise ProtocolError(f"{kind.value}: {exc}") from None


def _progress(value: Any) -> Progress:
    body = expect_map("job.progress", value)
    fields = ("party", "step", "done", "total", "message", "at")
    present = {k: body[k] for k in fields if body.get(k) is not None}
    return Progress(**{"party": body.get("party"), **present})


_SIMPLE: dict[MessageKind, Any] = {
    MessageKind.ACCEPT: Accept,
    MessageKind.REFUSE: Refuse,
    MessageKind.START: Start,
    MessageKind.WAIT: Wait,
    MessageKind.CANCEL: Cancel,
    MessageKind.ABORT: Abort,
}


def kind_of(text: str) -> MessageKind:
    """The MessageKind named by a Control call's kind string."""
    try:
        return MessageKind(text)
    except ValueError:
        raise ProtocolError(f"unknown control message kind {text[:80]!r}") from None


def refusal_error(refuse: Refuse) -> FedcoreError:
    """Rebuild a party's refusal as the fedcore error type it names."""
    cls = getattr(errors, refuse.error, None)
    if isinstance(cls, type) and issubclass(cls, FedcoreError) and cls is not errors.ConfigError:
        return cls(refuse.reason)
    return FedcoreError(refuse.reason) if cls is None else errors.ConfigError(refuse.reason)


# ---------------------------------------------------------------------------- checks


def _job_id(value: Any) -> None:
    if not isinstance(value, str) or not PARTY_NAME.match(value):
        raise ProtocolError(f"job_id: expected an id like 'j-3f9a0c2e1b', got {str(value)[:80]!r}")


def _int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(f"{name}: expected an integer, got {value!r}")


def _number(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ProtocolError(f"{name}: expected a finite number, got {value!r}")


def _positive(name: str, value: Any) -> None:
    _number(name, value)
    if value <= 0:
        raise ProtocolError(f"{name}: expected a positive number, got {value!r}")


def encode(message: Message) -> bytes:
    """A message as a ``fedcore.wire`` map with its kind: a Control request or reply body."""
    return wire.encode({"kind": message.kind.value, **to_wire(message)})


def decode(body: bytes, *expected: MessageKind) -> Message:
    """Decode and validate a Control body as one of the ``expected`` kinds.

    Raises:
        ProtocolError: not a message, or not of an expected kind.
        DecodeError: not a valid wire encoding.
    """
    value = expect_map("control message", wire.decode(body))
    kind = kind_of(str(value.get("kind", "")))
    if expected and kind not in expected:
        names = ", ".join(k.value for k in expected)
        raise ProtocolError(f"expected a {names} message, got {kind.value}")
    return from_wire(kind, {k: v for k, v in value.items() if k != "kind"})


# ---------------------------------------------------------------------------- operator request


@dataclass(frozen=True)
class RunRequest:
    """Operator -> its daemon (``POST /api/v1/jobs``): propose a job to ``parties`` and run it."""

    script: str
    sha256: str
    parties: tuple[str, ...]
    params: Mapping[str, Any]
    seed: int = 0
    timeout_s: float = 120.0

    @classmethod
    def from_json(cls, body: Any) -> RunRequest:
        """Validate a request body.

        Raises:
            ConfigError: naming the field and the expected form.
        """
        if not isinstance(body, dict):
            raise ConfigError("a run request is a JSON object")
        parties = body.get("parties")
        checks = [
            ("script", isinstance(body.get("script"), str), "a script file name"),
            ("sha256", isinstance(body.get("sha256"), str), "the script's SHA-256"),
            ("parties", isinstance(parties, list) and bool(parties)
             and all(isinstance(p, str) for p in parties), "a non-empty list of party ids"),
            ("params", isinstance(body.get("params", {}), dict), "an object of script parameters"),
            ("seed", isinstance(body.get("seed", 0), int) and not isinstance(body.get("seed", 0), bool),
             "an integer"),
            ("timeout_s", isinstance(body.get("timeout_s", 120.0), (int, float))
             and not isinstance(body.get("timeout_s", 120.0), bool) and body.get("timeout_s", 120.0) > 0,
             "a positive number of seconds"),
        ]  # fmt: skip
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"run request: {name} must be {expected}, got {body.get(name)!r}")
        return cls(
            body["script"],
            body["sha256"],
            tuple(parties or ()),
            dict(body.get("params", {})),
            body.get("seed", 0),
            float(body.get("timeout_s", 120.0)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "script": self.script,
            "sha256": self.sha256,
            "parties": list(self.parties),
            "params": dict(self.params),
            "seed": self.seed,
            "timeout_s": self.timeout_s,
        }
