"""Regenerate golden_transcript.json: run only when the secagg wire format changes on purpose.

Source: fedcore's own SecAgg+ sessions driven in memory by ``tests/secagg/conftest.py::transcript``
(seeded keys, self-mask seeds and Shamir coefficients; AEAD ciphertexts pinned by size only).
Run: python tests/secagg/vectors/golden_make.py
"""

import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("secagg_conftest", HERE.parent / "conftest.py")
assert spec and spec.loader
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
(HERE / "golden_transcript.json").write_text(json.dumps(module.transcript(), indent=0) + "\n")
