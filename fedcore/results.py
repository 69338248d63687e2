"""A party's outcome of a job (``Ok | RemoteError``) and job results as JSON values, for the
simulator, the daemon (which sends outcomes back over its control plane) and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np

from fedcore.errors import ProtocolError
from fedcore.transport.base import PARTY_NAME


def jsonable(value: Any) -> Any:
    """Turn results into JSON values: arrays to lists, bytes to hex, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


@dataclass(frozen=True)
class Ok:
    """A party's script returned ``result``."""

    result: Any
    ok: bool = field(default=True, init=False)


@dataclass(frozen=True)
class RemoteError:
    """A party's side failed: at ``step`` (None before its first step), with an error of ``kind``.

    ``kind`` is the exception's type name (``PartyDropped``, ``Timeout``, ``ValueError``...).
    """

    party: str
    step: str | None
    kind: str
    message: str
    ok: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        expect_party("RemoteError.party", self.party)
        expect_opt_str("RemoteError.step", self.step)
        expect_str("RemoteError.kind", self.kind)
        expect_str("RemoteError.message", self.message)

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    @classmethod
    def from_exception(
        cls, party: str, step: str | None, exc: BaseException, detail: str = ""
    ) -> RemoteError:
        """The outcome of ``party`` failing with ``exc`` at ``step``; ``detail`` is appended."""
        return cls(party, step, type(exc).__name__, f"{exc}{detail}")


Outcome: TypeAlias = Ok | RemoteError


def outcome_json(outcome: Outcome) -> Any:
    """JSON of one outcome: the result itself when ok, else ``{"error", "party", "step", "kind"}``."""
    if isinstance(outcome, Ok):
        return jsonable(outcome.result)
    return {"error": str(outcome), "party": outcome.party, "step": outcome.step, "kind": outcome.kind}


def outcome_to_wire(outcome: Outcome) -> dict[str, Any]:
    """A wire-encodable map for one outcome (the result goes through the codec as it is)."""
    if isinstance(outcome, Ok):
        return {"ok": True, "result": outcome.result}
    return {
        "ok": False,
        "party": outcome.party,
        "step": outcome.step,
        "kind": outcome.kind,
        "message": outcome.message,
    }


def outcome_from_wire(value: Any, what: str = "outcome") -> Outcome:
    """Validate a decoded outcome map.

    Raises:
        ProtocolError: not an outcome map.
    """
    body = expect_map(what, value)
    if body.get("ok") is True:
        return Ok(body.get("result"))
    if body.get("ok") is False:
        return RemoteError(
            expect_field(body, "party", what),
            body.get("step"),
            expect_field(body, "kind", what),
            expect_field(body, "message", what),
        )
    raise ProtocolError(f"{what}: expected ok true or false, got {body.get('ok')!r}")


# ---------------------------------------------------------------------------- checks of peer-sent values


def expect_map(what: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ProtocolError(f"{what}: expected a map with string keys, got {type(value).__name__}")
    return value


def expect_field(body: dict[str, Any], key: str, what: str) -> Any:
    if key not in body:
        raise ProtocolError(f"{what}: {key} is missing")
    return body[key]


def expect_str(name: str, value: Any) -> None:
    if not isinstance(value, str) or len(value) > 20_000:
        raise ProtocolError(
            f"{name}: expected a string (at most 20000 characters), got {type(value).__name__}"
        )


def expect_opt_str(name: str, value: Any) -> None:
    if value is not None:
        expect_str(name, value)


def expect_party(name: str, value: Any) -> None:
    if not isinstance(value, str) or not PARTY_NAME.match(value):
        raise ProtocolError(f"{name}: expected a party name, got {str(value)[:80]!r}")
