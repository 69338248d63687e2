"""The wire transcript of a small seeded round is pinned: a format change must be made on purpose."""

import json
from pathlib import Path

from .conftest import transcript

GOLDEN = Path(__file__).parent / "vectors" / "golden_transcript.json"


def test_transcript_matches_the_golden_file():
    expected = json.loads(GOLDEN.read_text())
    got = json.loads(json.dumps(transcript()))
    assert got == expected, "secagg wire format changed; if on purpose, run vectors/golden_make.py"
