"""A Gradescope autograder built from ``labkit grade``: a zip of setup.sh, run_autograder, labkit and the course's data.
``run`` grades ``<root>/submission`` as ``grade`` does and writes Gradescope's ``<root>/results/results.json``."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from labkit.data import DataConfig, load_data
from labkit.errors import LabError
from labkit.handin import safe_text
from labkit.handin.evaluation import evaluate_checkpoint, fraction
from labkit.handin.grading import Submission, submissions
from labkit.handin.safe_write import check_writable, write_whole
from labkit.lab import BASELINE, lab_root
from labkit.settings import checkpoint_name, student_of
from labkit.sources import load_source

TEMPLATES = Path(__file__).resolve().parent / "templates" / "autograder"
SHIPPED = ("pyproject.toml", "README.md", "labkit")  # what `pip install` needs to build labkit from the zip
VISIBLE = {"visibility": "visible"}  # students see every test and its one-line reason


def build(out: str | Path, source: str = "builtin", baseline: float = BASELINE, points: int = 10) -> Path:
    """Write ``out/autograder.zip``, with the course's whole data set: the lab's split of it is the course's test."""
    root = lab_root()
    if root is None:
        raise LabError("the autograder is built from a clone of the lab (it ships labkit's source); run it there")
    if points < 3:
        raise LabError(
            f"--points {points}: give at least 3 (one for the file, one for loading it, the rest for accuracy)"
        )
    data, images = load_data(DataConfig(source=source)), load_source(source)  # in the source's order: the same split
    arrays = io.BytesIO()
    np.savez_compressed(arrays, x=images.x[:, 0].numpy(), y=images.y.numpy(), classes=np.array(images.classes))
    course = {"baseline": baseline, "points": points, "test_fingerprint": data.test_fingerprint}
    target = check_writable(Path(out).expanduser() / "autograder.zip")

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
            for name in ("setup.sh", "run_autograder"):
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o755 << 16  # executable, as Gradescope runs them
                z.writestr(info, (TEMPLATES / name).read_text())
            z.writestr("course.npz", arrays.getvalue())
            z.writestr("course.json", json.dumps(course | {"data": data.description}))
            for name in SHIPPED:
                for path in [root / name] if (root / name).is_file() else sorted((root / name).rglob("*")):
                    if path.is_file() and "__pycache__" not in path.parts:
                        z.write(path, f"lab/{path.relative_to(root)}")

    write_whole(target, write, replaceable=lambda _: True)
    return target


def run(root: str | Path) -> int:
    """Grade the submission and write results.json; whatever a file holds, the results say why in a line."""
    root = Path(root)
    course = json.loads((root / "source" / "course.json").read_text())
    found = submissions([root / "submission"])
    named = [s for s in found if _named(s)]
    tests = [_test(*rubric(course)[0], bool(named), _found(found, named))]
    if named:
        tests += _graded(named[0], course, root / "source" / "course.npz")
    else:
        tests += [_test(name, score, False, "no checkpoint to grade") for name, score in rubric(course)[1:]]
    results = {"score": sum(t["score"] for t in tests), "tests": tests}
    (root / "results").mkdir(parents=True, exist_ok=True)
    (root / "results" / "results.json").write_text(json.dumps(results, indent=2))
    return 0


def rubric(course: dict) -> list[tuple[str, int]]:
    """The tests, one per rubric line, with their points: the accuracy carries all but the first two."""
    return [
        ("a checkpoint named <student_id>_vit.pth", 1),
        ("it loads without running code and rebuilds a lab model within the size limits", 1),
        (f"its re-measured test accuracy beats the {course['baseline']:.0%} baseline", course["points"] - 2),
        ("its stored accuracy is the re-measured one", 0),
        ("it was scored on the course's test split", 0),
    ]


def _named(s: Submission) -> bool:
    try:
        return s.path.name == checkpoint_name(student_of(s.path))
    except LabError:
        return False


def _found(found: list[Submission], named: list[Submission]) -> str:
    if not found:
        return "no .pth file was submitted: upload <student_id>_vit.pth, the file the lab's training saves"
    shown = ", ".join(safe_text.printable(s.label, 80) for s in found[:5])
    return f"found {shown}" + ("" if named else ": none is named <student_id>_vit.pth; upload the file training saved")


def _graded(submission: Submission, course: dict, data: Path) -> list[dict]:
    lines = rubric(course)[1:]
    try:
        result = evaluate_checkpoint(submission.path, str(data), lab_split=True)
    except LabError as err:
        why = safe_text.printable(str(err).removeprefix(f"{submission.path} "), 300)
        return [_test(*line, False, why if k == 0 else "not graded: it did not load") for k, line in enumerate(lines)]
    stored = fraction(result.stored_accuracy)
    accuracy = f"{result.accuracy:.2%} on {result.test_size} test images"
    same = stored is not None and abs(stored - result.accuracy) < 1e-9
    ours = result.checkpoint["data"] and result.checkpoint["data"]["test_fingerprint"]  # none in a bare state dict
    split = ours == course["test_fingerprint"]
    if ours:
        why = "its stored test split is not the course's (other data or split settings)"
    else:
        why = "it stores no test split to compare (a bare state dict)"
    return [
        _test(*lines[0], True, f"{result.params:,} parameters"),
        _test(*lines[1], result.accuracy > course["baseline"], accuracy),
        _test(*lines[2], same, f"stored {stored:.2%}" if stored is not None else "it stores no accuracy"),
        _test(*lines[3], split, "the same test images" if split else f"{why}: scored on the course's"),
    ]


def _test(name: str, max_score: int, passed: bool, output: str) -> dict:
    score, status = (max_score, "passed") if passed else (0, "failed")
    return {"name": name, "score": score, "max_score": max_score, "status": status, "output": output} | VISIBLE
