"""A party's output folders: where a script's files go, and paths that must stay inside them.

A party keeps one folder per job, all siblings under the party's outputs root::

    <outputs root>/<job_id>/      the daemon: <state dir>/outputs; the simulator: <out>/<party>

A script never writes where a job parameter points unless the path, resolved with symlinks
followed, lies inside this party's folder: the initiator of a job chooses the parameters of
every party, so a path parameter taken as given would let it choose where another
organization writes (``checkpoint=/etc/cron.d/x``).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from fedcore.errors import PolicyRefused

FOLDER_MODE = 0o700  # a party's outputs are its own: other local users cannot list or read them


def make_folder(path: Path) -> Path:
    """Create ``path`` (and its parents) private to this user; return it."""
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    return path


def resolve_inside(root: Path, value: object, *, party: str) -> Path:
    """``value`` as a path inside ``root``, or PolicyRefused when it would leave it.

    Refused: a non-string, an empty string, a NUL byte, an absolute path (POSIX or Windows
    form), any ``..`` part, and any path whose resolution through existing symlinks ends
    outside ``root``. ``root`` itself need not exist yet.

    Raises:
        PolicyRefused: the value is not a relative path that stays inside ``root``.
    """
    if not isinstance(value, str):
        raise PolicyRefused(
            f"{party} refuses the path {value!r}: expected a relative path (a string) in its output folder"
        )
    reason = _shape_problem(value)
    if reason is None:
        base = root.resolve()
        target = (base / value).resolve()
        if target == base or not target.is_relative_to(base):
            reason = (
                "it leaves the folder through a symlink" if target != base else "it names the folder itself"
            )
    if reason is not None:
        raise PolicyRefused(
            f"{party} refuses the path {value!r}: {reason}; a path parameter is a relative path inside "
            f"the party's own output folder (files of this job go under {root.name}/)"
        )
    return target


def _shape_problem(value: str) -> str | None:
    if not value.strip():
        return "it is empty"
    if "\x00" in value:
        return "it holds a NUL byte"
    if os.path.isabs(value) or PureWindowsPath(value).drive or value.startswith(("/", "\\")):
        return "it is absolute"
    if value.startswith("~"):
        return "it starts with '~' (no home folder is expanded)"
    parts = PurePosixPath(value.replace("\\", "/")).parts
    if ".." in parts:
        return "it climbs out with '..'"
    return None
