"""Checking submitted checkpoints: each file loaded safely, rebuilt, re-scored, one row each.

One bad file never stops the others: it gets its own row with the reason.
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from labkit.errors import LabError
from labkit.evaluation import evaluate_checkpoint
from labkit.lab import BASELINE

COLUMNS = ["file", "student_id", "preset", "params", "stored_accuracy", "accuracy", "result", "note"]


@dataclass
class Grade:
    file: str
    student_id: str = ""
    preset: str = ""
    params: int | None = None
    stored_accuracy: float | None = None
    accuracy: float | None = None
    result: str = "ERROR"  # PASS, FAIL or ERROR
    note: str = ""


def submissions(paths: list[str | Path]) -> list[Path]:
    """The .pth files named, and those inside the folders named (sorted); a missing path is kept, to be reported."""
    found = []
    for path in map(Path, paths):
        found += sorted(path.rglob("*.pth")) if path.is_dir() else [path]
    return found


def grade_one(path: Path, source: str | None, baseline: float) -> Grade:
    """One file's row. Whatever is wrong with a file becomes its ERROR row, so one bad submission never stops
    the batch: a LabError names the problem; anything else means a file shaped in a way labkit did not foresee."""
    student = path.stem.removesuffix("_vit")
    try:
        result = evaluate_checkpoint(path, source)
    except LabError as err:
        return Grade(str(path), student_id=student, note=str(err).removeprefix(f"{path} "))
    except Exception as err:  # noqa: BLE001 - a grader's batch must go on; the row says what happened
        first = next(iter(str(err).splitlines()), "")
        return Grade(str(path), student_id=student, note=f"cannot be graded ({err.__class__.__name__}: {first})")
    checkpoint = result.checkpoint
    passed = result.accuracy > baseline
    return Grade(str(path), checkpoint["student_id"], checkpoint["preset"], result.params,
                 result.stored_accuracy, result.accuracy, "PASS" if passed else "FAIL",
                 "; ".join(result.warnings))  # fmt: skip


def grade(paths: list[str | Path], source: str | None = None, baseline: float = BASELINE) -> list[Grade]:
    return [grade_one(path, source, baseline) for path in submissions(paths)]


def table(grades: list[Grade], baseline: float) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.2f}%"

    rows = [["file", "student", "preset (params)", "stored", "re-measured", f"> {baseline:.0%}", "note"]]
    for g in grades:
        model = f"{g.preset} ({g.params:,})" if g.params is not None else "-"
        rows.append([Path(g.file).name, g.student_id or "-", model, pct(g.stored_accuracy), pct(g.accuracy),
                     g.result, g.note])  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows)


def check_csv_target(path: str | Path) -> None:
    """Fail before any grading if the CSV cannot be written there: a folder, a missing or read-only folder."""
    path = Path(path)
    if path.is_dir():
        raise LabError(f"--csv {path} is a folder; give a file name such as grades.csv")
    folder = path.parent
    if not folder.is_dir():
        raise LabError(f"--csv {path}: folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise LabError(f"--csv {path} cannot be written (no permission); choose another path")


def write_csv(grades: list[Grade], path: str | Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(asdict(g) for g in grades)
