"""Rewrite registered.json: the encoding of one value of every registered wire type.

Run only when a wire format changes on purpose:
``PYTHONPATH=. python3 tests/wire/vectors/make_registered.py``.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from fedcore import wire
from tests.wire.samples import REFUSED, samples


def main() -> None:
    out = {
        name: wire.encode(build()).hex() for name, build in sorted(samples().items()) if name not in REFUSED
    }
    path = Path(__file__).with_name("registered.json")
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(out)} encodings to {path}")


if __name__ == "__main__":
    main()
