"""A party's output folder: ctx.output_dir and ctx.output_path keep a script's files at home."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fedcore import Context
from fedcore.errors import ConfigError, PolicyRefused
from fedcore.runtime import make_runtime
from fedcore.transport import LocalNetwork


def context(tmp_path: Path, job_id: str = "job-1", **kw) -> Context:
    network = LocalNetwork(["alice", "bob"])
    output = kw.pop("output_dir", tmp_path / "outputs" / job_id)
    return Context(
        "alice", network.transport("alice"), make_runtime("inline"), job_id=job_id, output_dir=output, **kw
    )


def test_the_folder_is_made_private_on_first_use_only(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    assert not (tmp_path / "outputs").exists()  # a job that writes nothing leaves nothing
    folder = ctx.output_dir
    assert folder == tmp_path / "outputs" / "job-1" and folder.is_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_relative_paths_resolve_inside_and_get_their_parent_folders(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    path = ctx.output_path("ckpt/round.npz")
    assert path == ctx.output_dir / "ckpt" / "round.npz" and path.parent.is_dir()
    assert ctx.output_path("./a/./b.png") == ctx.output_dir / "a" / "b.png"
    inside_link = ctx.output_dir / "latest"
    inside_link.symlink_to(ctx.output_dir / "ckpt")  # a symlink that stays inside is fine
    assert ctx.output_path("latest/x") == ctx.output_dir / "ckpt" / "x"


@pytest.mark.parametrize(
    "value, reason",
    [
        ("/etc/cron.d/x", "absolute"),
        ("\\\\server\\share", "absolute"),
        ("C:\\Windows\\x", "absolute"),
        ("../other-job/x", "'..'"),
        ("ckpt/../../x", "'..'"),
        ("ckpt\\..\\..\\x", "'..'"),
        ("~/x", "'~'"),
        ("", "empty"),
        (".", "the folder itself"),
        ("a\x00b", "NUL"),
    ],
)
def test_paths_that_leave_the_folder_are_refused(tmp_path: Path, value: str, reason: str) -> None:
    ctx = context(tmp_path)
    with pytest.raises(PolicyRefused, match="alice refuses") as info:
        ctx.output_path(value)
    assert reason in str(info.value)


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (ctx.output_dir / "escape").symlink_to(outside)
    with pytest.raises(PolicyRefused, match="symlink"):
        ctx.output_path("escape/cron")
    assert list(outside.iterdir()) == []


def test_a_non_string_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyRefused, match="expected a relative path"):
        context(tmp_path).output_path(42)  # type: ignore[arg-type]


def test_without_an_output_folder_the_error_says_so(tmp_path: Path) -> None:
    ctx = context(tmp_path, output_dir=None)
    with pytest.raises(ConfigError, match="no output folder"):
        ctx.output_path("x")


def test_an_earlier_job_is_read_from_its_own_folder(tmp_path: Path) -> None:
    # daemon layout: <root>/<job id>/output
    root = tmp_path / "jobs"
    earlier = root / "job-0" / "output" / "ckpt"
    earlier.mkdir(parents=True)
    ctx = context(tmp_path, output_dir=root / "job-1" / "output", output_root=root)
    assert ctx.output_path("job-0/ckpt", scope="party") == earlier
    for value in ("job-0", "../x/y", "/abs/x", "job-0/../../x"):
        with pytest.raises(PolicyRefused):
            ctx.output_path(value, scope="party")


def test_output_root_must_hold_the_output_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not inside"):
        context(tmp_path, output_dir=tmp_path / "a", output_root=tmp_path / "b")


def test_metrics_go_to_the_sink_without_non_finite_values(tmp_path: Path) -> None:
    seen = []
    ctx = context(tmp_path, metrics_sink=lambda rnd, values: seen.append((rnd, values)))
    ctx.metrics(3, accuracy=0.9, loss=float("nan"), other=None)
    assert seen == [(3, {"accuracy": 0.9})]
    context(tmp_path).metrics(1, accuracy=0.5)  # no sink: nothing to do, no error


def test_the_folder_is_not_readable_by_other_users(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    mode = ctx.output_path("deep/er/file").parent.stat().st_mode
    assert not mode & (stat.S_IRWXG | stat.S_IRWXO), oct(mode)
    assert os.access(ctx.output_dir, os.W_OK)
