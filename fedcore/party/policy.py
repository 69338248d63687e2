"""Job policy: which scripts may run here and who may start them, checked by content hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fedcore.errors import PolicyRefused
from fedcore.party.config import PolicyConfig


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class AllowedScript:
    """A script this party's policy allows: its local path and content hash."""

    path: Path
    sha256: str


class Policy:
    """Decides whether this party runs a proposed job.

    Args:
        party: this party's id, named in every refusal.
        config: the ``[policy]`` section.
    """

    def __init__(self, party: str, config: PolicyConfig):
        self.party = party
        self.config = config

    def find_script(self, name: str) -> Path | None:
        """This party's allowed copy of the script file ``name`` (first match in policy order)."""
        if not name or "/" in name or "\\" in name or not name.endswith(".py") or name.startswith("."):
            return None
        for entry in self.config.scripts:
            if entry.is_dir():
                candidate = entry / name
                if candidate.is_file():
                    return candidate
            elif entry.name == name and entry.is_file():
                return entry
        return None

    def check(self, name: str, sha256: str, initiator: str) -> AllowedScript:
        """Accept a job running script ``name`` with hash ``sha256`` started by ``initiator``.

        Returns:
            The local copy of the script to run.

        Raises:
            PolicyRefused: naming this party and the reason (initiator not allowed, script not
                allowed, or hash differs).
        """
        if initiator not in self.config.initiators:
            raise PolicyRefused(
                f"{self.party} refuses the job: initiator not allowed ({initiator} is not in "
                f"{self.party}'s [policy] initiators)"
            )
        path = self.find_script(name)
        if path is None:
            raise PolicyRefused(
                f"{self.party} refuses the job: script not allowed ({name!r} is not among "
                f"{self.party}'s [policy] scripts)"
            )
        local = sha256_file(path)
        if local != sha256:
            raise PolicyRefused(
                f"{self.party} refuses the job: hash differs ({name} at {self.party} has "
                f"sha256 {local[:16]}..., the job's has {sha256[:16]}...)"
            )
        return AllowedScript(path, local)
