"""A run end to end: output problems found before training, a saved run reused, and a trained model never thrown
away (a full disk, Ctrl-C)."""

import io
import os
import subprocess

import pytest
import torch

import labkit.handin.safe_write as safe_write_module
import labkit.run as run_module
from labkit.checkpoint import load_checkpoint
from labkit.cli import main
from labkit.errors import LabError
from labkit.run import train_run, variations
from labkit.settings import RunConfig


@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("trained although the output was unusable")

    monkeypatch.setattr(run_module, "fit", fail)


def test_reuse_loads_the_same_run_instead_of_training(quick, tmp_path):
    settings = RunConfig(preset="fast", epochs=1, student_id="alice", outputs=tmp_path)
    run = train_run(quick, settings, out=io.StringIO(), progress=False)
    out = io.StringIO()
    again = train_run(quick, settings, reuse=True, out=out, progress=False)
    assert not again.trained and out.getvalue().startswith(f"✓ Loaded {run.path}")
    assert again.test_accuracy == run.test_accuracy


@pytest.mark.hostile
@pytest.mark.parametrize(
    "case, message",
    [
        ("out is a file", "is a file; give a folder"),
        ("long id", "cannot name a file; use up to 100"),
        ("newline in id", "cannot name a file"),
        ("unwritable", "cannot write"),
    ],
)
def test_output_problems_stop_before_training(quick, tmp_path, no_training, monkeypatch, case, message):
    out_dir, student = tmp_path / "out", "s1"
    if case == "out is a file":
        out_dir.write_text("not a folder")
    if case == "long id":
        student = "s" * 300
    if case == "newline in id":
        student = "s1\nrm -rf"
    if case == "unwritable":  # as root, chmod cannot make a folder read-only, so the OS's refusal is simulated

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(safe_write_module.tempfile, "mkstemp", refuse)
    with pytest.raises(LabError, match=message):
        train_run(quick, RunConfig(epochs=1, student_id=student, outputs=out_dir), out=io.StringIO(), progress=False)


@pytest.mark.hostile
def test_a_full_disk_at_the_target_saves_the_model_in_the_rescue_folder(quick, tmp_path, monkeypatch):
    full = tmp_path / "full"
    full.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(full)]).returncode:
        pytest.skip("needs root to mount a 200 KB tmpfs as the full disk")
    try:
        rescue = tmp_path / "rescued"
        rescue.mkdir()
        monkeypatch.setattr(run_module, "rescue_folder", lambda: rescue)
        monkeypatch.chdir(tmp_path)  # paths inside the working folder are shown relative to it
        log = io.StringIO()
        run = train_run(quick, RunConfig(student_id="s1", epochs=1, outputs=full), out=log, progress=False)
        assert run.path.parent == rescue and load_checkpoint(run.path)["metrics"]["test_accuracy"] == run.test_accuracy
        assert "! could not save full/s1_vit.pth (" in log.getvalue()
        assert f"saving the trained model as {run.path} instead" in log.getvalue()
        assert list(full.iterdir()) == [], "no temp file is left on the full disk"
    finally:
        subprocess.run(["umount", str(full)])


@pytest.mark.hostile
def test_ctrl_c_while_training_or_saving_is_one_line_saying_what_was_kept(quick, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "fit", interrupted)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--no-progress", "--out", "out"]) == 2
    assert capsys.readouterr().err == "error: training interrupted (Ctrl-C): nothing was saved\n"
    monkeypatch.undo()
    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(LabError, match=r"interrupted \(Ctrl-C\) while saving: .* was not written"):
        train_run(quick, RunConfig(epochs=1, outputs=tmp_path / "out"), out=io.StringIO(), progress=False)
    assert not list((tmp_path / "out").glob("*")), "no temp file is left"


def test_q7s_runs_differ_in_one_setting_and_a_shorter_constant_rate_run_is_left_to_the_curves():
    assert {what: (v.epochs, v.augment) for what, v in variations(RunConfig()).items()} == {
        "epochs": (20, None),
        "augment": (None, "none"),
    }
    assert list(variations(RunConfig(preset="reference"))) == ["augment"]  # its epoch 10 is on its own curve
    assert list(variations(RunConfig(epochs=1))) == ["augment"]  # no shorter run than 1 epoch
