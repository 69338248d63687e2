"""Both vertical models between three real daemons on 127.0.0.1: train, save parts, predict."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from fedcore.party.config import load_config

from .sb_central import central_predictions

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
PARTIES = ("alice", "bob", "carol")


def _party_kit():  # the e2e helpers of tests/party (free ports, provisioning, daemon processes)
    spec = importlib.util.spec_from_file_location("party_e2e_kit", REPO / "tests" / "party" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory):
    kit_module = _party_kit()
    root = tmp_path_factory.mktemp("vfed")
    kit_module.write_federation(root / "federation.toml", kit_module.free_ports(6))
    result = kit_module.cli(
        "provision",
        str(root / "federation.toml"),
        "--out",
        str(root / "kit"),
        "--protocols",
        str(REPO / "protocols"),
    )
    assert result.returncode == 0, result.stderr
    fed = kit_module.Federation(root / "kit")
    for party in PARTIES:
        scripts = root / f"protocols_{party}"
        scripts.mkdir()
        for name in ("secureboost.py", "hetero_lr.py"):
            shutil.copy(REPO / "protocols" / name, scripts)
        kit_module._tune(fed.config(party), scripts, list(PARTIES), control_port=None)
    try:
        for party in PARTIES:
            fed.start(party)
        yield fed
    finally:
        fed.kill_all()


def job_folder(federation, party: str, job_id: str) -> Path:
    """A daemon's own output folder of one job: the only place its model part may be."""
    return load_config(federation.config(party)).state_dir / "jobs" / job_id / "output"


def _job(federation, script: str, *params: str) -> tuple[str, dict]:
    args = [arg for p in params for arg in ("--param", p)]
    proc = federation.job(REPO / "protocols" / script, "alice", *args, "--seed", "3", timeout=240)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    done = json.loads(proc.stdout)
    return done["job_id"], done["parties"]


def test_secureboost_trains_saves_parts_and_predicts_like_the_central_model(federation) -> None:
    job_id, trained = _job(federation, "secureboost.py", "trees=3", "model=sb")
    assert trained["alice"]["auc"] > 0.95 and "auc" not in trained["bob"]
    _, predicted = _job(federation, "secureboost.py", "mode=predict", f"model={job_id}/sb")
    out = predicted["alice"]
    assert predicted["bob"] == {"rows": len(out["ids"])} and predicted["carol"] == {"rows": len(out["ids"])}
    rows = np.array([int(i.split("-")[1]) for i in out["ids"]])
    want = central_predictions(lambda p: job_folder(federation, p, job_id), "sb", list(PARTIES), rows)
    np.testing.assert_allclose(out["predictions"], want, atol=1e-12)
    assert abs(out["auc"] - trained["alice"]["auc"]) < 0.05
    for party in PARTIES:  # each party saved only its own part, in its own folder
        assert sorted(p.name for p in job_folder(federation, party, job_id).iterdir()) == [f"sb.{party}.json"]


def test_hetero_lr_trains_and_predicts_between_daemons(federation) -> None:
    job_id, _ = _job(federation, "hetero_lr.py", "epochs=1", "model=lr")
    _, predicted = _job(federation, "hetero_lr.py", "mode=predict", f"model={job_id}/lr")
    assert predicted["alice"]["auc"] > 0.95 and "predictions" not in predicted["bob"]
