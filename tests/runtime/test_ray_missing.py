"""Without Ray installed, choosing the ray backend says how to install it."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
sys.modules["ray"] = None  # what an interpreter without Ray sees: import ray fails
from fedcore.errors import ConfigError
from fedcore.runtime import make_runtime
try:
    make_runtime("ray")
except ConfigError as exc:
    print(exc)
else:
    raise SystemExit("make_runtime('ray') did not raise ConfigError")
"""


def test_missing_ray_is_config_error_with_install_hint():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pip install 'fedcore[ray]'" in done.stdout
