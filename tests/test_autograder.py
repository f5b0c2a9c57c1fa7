"""The Gradescope autograder: built offline from a clone, run under a local root as Gradescope runs it, one test per
rubric line with a reason a student understands, whatever the submission holds."""

import io
import json
import os
import subprocess
import sys
import zipfile

import pytest
import torch

from labkit.cli import main
from labkit.models import build_model, config_to_dict
from labkit.presets import get_preset
from labkit.run import train_run
from labkit.settings import RunConfig

SPEC_FIELDS = {"name", "score", "max_score", "status", "output", "visibility"}
# run_autograder as Gradescope runs it, then the peak resident memory of the whole run, in KiB.
RUN = """import resource, runpy, sys
try:
    runpy.run_path(sys.argv[1], run_name="__main__")
finally:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
IMPORTS = "import resource, torch; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


@pytest.fixture(scope="module")
def autograder(tmp_path_factory):
    out = tmp_path_factory.mktemp("zip")
    assert main(["autograder", "--out", str(out), "--points", "10"]) == 0
    return out / "autograder.zip"


@pytest.fixture(scope="module")
def trained(builtin, tmp_path_factory) -> bytes:
    """A real checkpoint: `train --epochs 3` on the built-in data, as the course's data."""
    out = tmp_path_factory.mktemp("run")
    run = train_run(builtin, RunConfig(student_id="s1", epochs=3, outputs=out), out=io.StringIO(), progress=False)
    assert run.history.final_accuracy > 0.6
    return run.path.read_bytes()


def grade(autograder, tmp_path, files: dict[str, bytes]) -> tuple[dict, int]:
    """Unpack the zip as Gradescope does, put ``files`` in the submission and run run_autograder; its results and
    peak memory in KiB."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(autograder) as z:
        z.extractall(root / "source")
    (root / "submission").mkdir()
    for name, data in files.items():
        (root / "submission" / name).write_bytes(data)
    env = os.environ | {"AUTOGRADER_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", RUN, str(root / "source" / "run_autograder")]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    for test in results["tests"]:
        assert set(test) == SPEC_FIELDS and "\n" not in test["output"] and test["output"]
    assert results["score"] == sum(t["score"] for t in results["tests"])
    return results, int(run.stdout.split()[-1])


def test_the_zip_holds_what_gradescope_runs_and_labkit_to_install(autograder):
    names = zipfile.ZipFile(autograder).namelist()
    assert {"setup.sh", "run_autograder", "course.npz", "course.json", "lab/pyproject.toml"} <= set(names)
    assert "lab/labkit/handin/autograder.py" in names and not any("__pycache__" in n for n in names)
    setup = zipfile.ZipFile(autograder).read("setup.sh").decode()
    assert subprocess.run(["bash", "-n"], input=setup, text=True).returncode == 0
    assert "download.pytorch.org/whl/cpu" in setup


def test_a_trained_checkpoint_passes_every_test(autograder, trained, tmp_path):
    results, _ = grade(autograder, tmp_path, {"s1_vit.pth": trained})
    assert [t["status"] for t in results["tests"]] == ["passed"] * 5 and results["score"] == 10


def test_an_untrained_model_loads_but_fails_the_baseline(autograder, tmp_path):
    untrained = io.BytesIO()
    torch.save(build_model(get_preset("reference").model, seed=0).state_dict(), untrained)
    results, _ = grade(autograder, tmp_path, {"s2_vit.pth": untrained.getvalue()})
    assert [t["status"] for t in results["tests"][:3]] == ["passed", "passed", "failed"] and results["score"] == 2
    assert "on 540 test images" in results["tests"][2]["output"]


@pytest.mark.hostile
def test_pickled_code_and_a_huge_config_fail_with_their_reason_and_run_nothing(autograder, runs_code, tmp_path):
    crafted = io.BytesIO()
    torch.save({"model_state": runs_code(tmp_path / "pwned")}, crafted)
    results, _ = grade(autograder, tmp_path / "a", {"s3_vit.pth": crafted.getvalue()})
    assert "pickled code" in results["tests"][1]["output"] and results["score"] == 1
    assert not (tmp_path / "pwned").exists()
    huge = io.BytesIO()
    config = config_to_dict(get_preset("reference").model) | {"dim": 8192, "mlp_dim": 65536}
    torch.save({"format": "labkit-checkpoint", "version": 3, "model_state": {}, "model_config": config}, huge)
    results, _ = grade(autograder, tmp_path / "b", {"s4_vit.pth": huge.getvalue()})
    assert results["tests"][1]["status"] == "failed" and results["score"] == 1


def test_an_empty_submission_says_what_to_upload(autograder, tmp_path):
    results, _ = grade(autograder, tmp_path, {})
    assert results["score"] == 0 and "upload <student_id>_vit.pth" in results["tests"][0]["output"]
    assert all(t["status"] == "failed" for t in results["tests"])


def test_grading_one_submission_adds_little_memory_to_importing_torch(autograder, trained, tmp_path):
    """Gradescope's default is 768 MB: grading must add little to what importing torch takes (the
    note gives the whole peak, measured with the CPU build that setup.sh installs)."""
    _, peak = grade(autograder, tmp_path, {"s1_vit.pth": trained})
    imports = subprocess.run([sys.executable, "-c", IMPORTS], capture_output=True, text=True)
    assert peak - int(imports.stdout) < 200 * 1024
