"""Fixtures and helpers shared by the test modules."""

import io
import re
import sys
import venv
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from labkit.checkpoint import KEYS, VERSION, load_checkpoint
from labkit.data import DataConfig, LabData, Split, load_data
from labkit.models import config_to_dict
from labkit.presets import get_preset
from labkit.run import train_run
from labkit.settings import RunConfig

STEP = re.compile(r"^Train Step (\d+)/(\d+) - Loss: \d+\.\d{4}$")
EVAL = re.compile(r"^✓ Evaluation - Avg Loss: \d+\.\d{4}, Accuracy: \d{1,3}\.\d{2}%$")
TOTAL = re.compile(r"^⌚ Total training time: \d+\.\d{2} seconds$")


@pytest.fixture(scope="session")
def builtin() -> LabData:
    """The built-in set, loaded once for the whole session (it is only read)."""
    return load_data(DataConfig())


@pytest.fixture(scope="session")
def quick(builtin) -> LabData:
    """The built-in set with a quarter of its training part: enough for a real checkpoint in about a second."""
    return replace(builtin, train=Split(builtin.train.x[::4], builtin.train.y[::4]))


def fake_checkpoint(fingerprint: str) -> dict:
    """A small checkpoint of the documented shape, told apart by its run fingerprint."""
    return {key: None for key in KEYS} | {
        "format": "labkit-checkpoint",
        "version": VERSION,
        "model_state": {"w": torch.zeros(2)},
        "model_config": config_to_dict(get_preset("fast").model),
        "preset": "fast",
        "student_id": "s1",
        "classes": ["a", "b"],
        "run_fingerprint": fingerprint,
    }


@pytest.fixture(scope="session")
def fake() -> Callable[[str], dict]:
    """``fake_checkpoint``, for the tests that need a checkpoint's shape but no trained model."""
    return fake_checkpoint


@pytest.fixture(scope="module")
def good(quick, tmp_path_factory) -> dict:
    """A real checkpoint of a short run on the built-in set, as a dict to craft from."""
    folder = tmp_path_factory.mktemp("good")
    run = train_run(quick, RunConfig(student_id="s1", epochs=1, outputs=folder), out=io.StringIO(), progress=False)
    return load_checkpoint(run.path)


class RunsCode:
    """Unpickling this calls Path.touch(marker): a stand-in for any code a file could run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="session")
def runs_code() -> type[RunsCode]:
    return RunsCode


def check_lab_log(text: str, epochs: int, steps: int, log_every: int) -> None:
    """The log of a fit, line for line, in the format of the lab's reference run."""
    lines = [line for line in text.splitlines() if line]
    expected_steps = list(range(0, steps, log_every))
    per_epoch = 1 + len(expected_steps) + 1
    assert len(lines) == epochs * per_epoch + 1, text
    for e in range(epochs):
        block = lines[e * per_epoch : (e + 1) * per_epoch]
        assert block[0] == f"Epoch {e + 1}/{epochs}"
        found = [STEP.match(line) for line in block[1:-1]]
        assert all(found), block
        assert [(int(m[1]), int(m[2])) for m in found] == [(i, steps) for i in expected_steps]
        assert EVAL.match(block[-1]), block[-1]
    assert TOTAL.match(lines[-1]), lines[-1]


@pytest.fixture(scope="session")
def lab_log():
    """``check_lab_log``, for the test modules that read a training log."""
    return check_lab_log


def scratch_environment(folder: Path) -> Path:
    """A new virtual environment in ``folder`` that sees this test run's installed packages but not labkit, whatever
    this interpreter is (a system Python, a venv, a venv with system site packages): this run's site-packages folders
    are listed in a .pth file, which adds them to the path without running their own .pth files, so the editable
    labkit that ``pip install -e .`` left there is not found. Returns the environment's Python."""
    venv.EnvBuilder(with_pip=False).create(folder)
    site = next(folder.glob("lib/python*/site-packages"))
    ours = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    (site / "test-run-packages.pth").write_text("\n".join(ours) + "\n")
    return folder / "bin" / "python"


@pytest.fixture(scope="session")
def scratch_env():
    """``scratch_environment``, for the tests that install labkit as a user would."""
    return scratch_environment
