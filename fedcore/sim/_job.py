"""One simulated job's name, party names and result, shared by every engine."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedcore.errors import ConfigError
from fedcore.results import Ok, Outcome, RemoteError, outcome_json
from fedcore.transport import check_party_names

DEFAULT_OUTPUT_ROOT = Path("fedcore-output")  # relative to the working directory
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class SimResult:
    """Each party's outcome (``Ok`` with what ``main`` returned, or a ``RemoteError``), the wall
    time, the job id and the folder that holds every party's output folder
    (``<output_dir>/<party>/<job_id>``)."""

    outcomes: dict[str, Outcome]
    seconds: float
    job_id: str = "local"
    output_dir: Path | None = None

    @property
    def parties(self) -> dict[str, Any]:
        """party -> its result, or ``{"error": "Kind: message", "party", "step", "kind"}``."""
        return {
            name: outcome.result if isinstance(outcome, Ok) else outcome_json(outcome)
            for name, outcome in self.outcomes.items()
        }

    def errors(self) -> dict[str, str]:
        """party -> ``Kind: message`` for every party that failed."""
        return {name: str(o) for name, o in self.outcomes.items() if isinstance(o, RemoteError)}


def party_names(count: int | None, names: list[str] | None) -> tuple[str, ...]:
    """Default names ``p0..p{N-1}``, or the given names checked against ``count``."""
    if names:
        if count is not None and count != len(names):
            raise ConfigError(f"--parties {count} but {len(names)} party names were given")
        return check_party_names(names)
    if count is None or count < 1:
        raise ConfigError(f"a simulation needs at least one party, got {count!r}")
    return tuple(f"p{i}" for i in range(count))


def new_job_id(job_id: str | None = None) -> str:
    """``job_id`` checked as a folder name, or a fresh ``sim-YYYYmmdd-HHMMSS-xxxx``."""
    if job_id is None:
        return f"sim-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    if not _JOB_ID.match(job_id):
        raise ConfigError(
            f"job id {job_id!r}: expected 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return job_id
