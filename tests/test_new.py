"""``fedcore new``: every template writes a script that ``fedcore simulate`` runs unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedcore.commands.new import TEMPLATES, create
from fedcore.errors import ConfigError

ROOT = Path(__file__).parents[1]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "fedcore", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_torch_template_runs_and_reports_accuracy(tmp_path) -> None:
    made = cli("new", "demo", "--template", "torch", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    script = tmp_path / "demo" / "torch_model.py"
    assert len(script.read_text().splitlines()) <= 40
    assert {p.name for p in (tmp_path / "demo").iterdir()} == {
        "torch_model.py",
        "federation.toml",
        "README.md",
    }
    run = cli(
        "simulate", "demo/torch_model.py", "--parties", "5", "--param", "rounds=3", "--json", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["parties"]["p0"]["accuracy"] > 0.8 and run.stdout.count("\n") == 1


@pytest.mark.parametrize("template", [t for t in TEMPLATES if t != "torch"])
def test_other_templates_run_unchanged(tmp_path, template) -> None:
    from fedcore import simulate
    from fedcore.runtime import make_runtime

    written = create(tmp_path / "proj", template)
    script = next(p for p in written if p.suffix == ".py")
    readme = (tmp_path / "proj" / "README.md").read_text()
    assert f"fedcore simulate {tmp_path / 'proj'}/{script.name} --parties 5" in readme
    with make_runtime("inline") as runtime:
        out = simulate(script, parties=5, runtime=runtime, timeout_s=120)
    assert not out.errors()
    coordinator = out.parties["p0"]
    if template == "numpy":
        assert coordinator["accuracy"] > 0.85
    elif template == "secure-sum":
        assert sum(coordinator["total"]) > 4900 and len(coordinator["included"]) == 5
    else:
        assert coordinator["accuracy"] > 0.8


def test_new_refuses_a_used_folder_and_an_unknown_template(tmp_path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("mine")
    with pytest.raises(ConfigError, match="not an empty folder"):
        create(tmp_path / "used", "torch")
    with pytest.raises(ConfigError, match="unknown template"):
        create(tmp_path / "fresh", "keras")
    assert (tmp_path / "used" / "x").read_text() == "mine"
