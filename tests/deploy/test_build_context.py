"""The image build context keeps secrets and clutter out (.dockerignore, .containerignore).

Docker and Podman read the ignore file at the context root (the repository root for
``deploy/Containerfile``); BuildKit prefers ``<Dockerfile>.dockerignore`` beside the Dockerfile.
All four copies must be the same file. The matcher below follows the dockerignore rules
(Go ``filepath.Match`` plus ``**``; a folder that matches excludes everything in it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IGNORE_FILES = (
    ".dockerignore",
    ".containerignore",
    "deploy/Containerfile.dockerignore",
    "deploy/Dockerfile.dockerignore",
)


def patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def ignored(path: str) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns():
        negate = pattern.startswith("!")
        regex = _regex(pattern.lstrip("!").strip("/"))
        if any(regex.match(p) for p in prefixes):
            excluded = not negate
    return excluded


def test_every_ignore_file_is_the_same() -> None:
    texts = {name: (REPO / name).read_text() for name in IGNORE_FILES}
    assert len(set(texts.values())) == 1, list(texts)


@pytest.mark.parametrize(
    "path",
    [
        "kit/ca/ca.key",
        "kit/ca/ca.pem",
        "kit/alice/party.key",
        "kit/alice/party.pem",
        "kit/alice/party.toml",
        "parties/kit/bob/party.key",
        "deploy/kits/x/ca/ca.key",
        "elsewhere/ca/previous.key",
        "my-federation/alice/party.key",
        "my-federation/alice/party.toml",
        "backup/carol.key.pem",
        ".venv/bin/python",
        "tools/venv/lib/site.py",
        "fedcore/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/v/cache",
        ".hypothesis/examples/x",
        ".ruff_cache/x",
        ".git/config",
        "build/lib/x.py",
        "dist/fedcore-0.1.0.whl",
        "checkpoints/round-3.npz",
        "alice.log",
    ],
)
def test_secrets_and_clutter_stay_out(path: str) -> None:
    assert ignored(path), path


def test_what_the_image_copies_stays_in() -> None:
    copied = []
    for line in (REPO / "deploy" / "Containerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            copied += [w for w in words[1:-1] if not w.startswith("--")]
    assert {"pyproject.toml", "README.md", "fedcore", "protocols", "deploy/healthcheck.py"} <= set(copied)
    for source in copied:
        files = (
            [source]
            if (REPO / source).is_file()
            else [
                str(p.relative_to(REPO))
                for p in (REPO / source).rglob("*.py")
                if "__pycache__" not in p.parts
            ]
        )
        assert files, source
        assert not [f for f in files if ignored(f)], source
