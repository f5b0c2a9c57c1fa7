"""Checking submitted checkpoints: each file loaded safely, rebuilt, re-scored, one row each.

Nothing in a file can stop the batch or forge the table: each file's row is built inside its own guard (a bad file
is one ERROR row with the reason), every string a file carries is shown as printable text and never as a
spreadsheet formula, and the student a file's name gives is checked against the one it stores.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from labkit.handin import safe_text
from labkit.errors import LabError
from labkit.handin.evaluation import evaluate_checkpoint
from labkit.lab import BASELINE
from labkit.settings import student_of

COLUMNS = ["file", "student_id", "preset", "params", "stored_accuracy", "accuracy", "result", "note"]


@dataclass
class Grade:
    file: str  # the file's name, as printable text
    student_id: str = ""  # the id the file stores (its name's, where it stores none or cannot be read)
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
        found += sorted(p for p in path.rglob("*.pth") if not p.is_dir()) if path.is_dir() else [path]
    return found


def fraction(value: object) -> float | None:
    """A stored accuracy as a number in [0, 1], or None if the file stores anything else there."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1
    return float(value) if ok else None


def grade_one(path: Path, source: str | None, baseline: float) -> Grade:
    """One file's row. Whatever is wrong with a file becomes its ERROR row, so one bad submission never stops the
    batch: a LabError names the problem; anything else means a file shaped in a way labkit did not foresee."""
    name, named = safe_text.printable(path.name), safe_text.printable(student_of(path), 60)
    try:
        result = evaluate_checkpoint(path, source, stored_data="builtin only")
        checkpoint, notes = result.checkpoint, list(result.warnings)
        stored_id = safe_text.printable(checkpoint["student_id"], 60)
        if stored_id != named:
            notes.append(f"the file stores student id '{stored_id}', but its name gives '{named}'")
        return Grade(
            name,
            stored_id,
            safe_text.printable(checkpoint["preset"], 20),
            int(result.params),
            fraction(result.stored_accuracy),
            float(result.accuracy),
            "PASS" if result.accuracy > baseline else "FAIL",
            safe_text.printable("; ".join(notes), 400),
        )
    except LabError as err:
        return Grade(name, student_id=named, note=safe_text.printable(str(err).removeprefix(f"{path} "), 400))
    except Exception as err:  # noqa: BLE001 - a grader's batch must go on; the row says what happened
        first = safe_text.printable(next(iter(str(err).splitlines()), ""), 200)
        return Grade(name, student_id=named, note=f"cannot be graded ({err.__class__.__name__}: {first})")


def grade(paths: list[str | Path], source: str | None = None, baseline: float = BASELINE) -> list[Grade]:
    return [grade_one(path, source, baseline) for path in submissions(paths)]


def progress_line(i: int, total: int, g: Grade) -> str:
    """One line as a row is graded, so a long batch is never silent."""
    score = "" if g.accuracy is None else f" {g.accuracy:.2%}"
    return f"[{i}/{total}] {g.file}: {g.result}{score}"


def table(grades: list[Grade], baseline: float) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.2f}%"

    rows = [["file", "student (stored)", "preset (params)", "stored", "re-measured", f"> {baseline:.0%}", "note"]]
    for g in grades:
        model = f"{g.preset} ({g.params:,})" if g.params is not None else "-"
        rows.append([g.file, g.student_id or "-", model, pct(g.stored_accuracy), pct(g.accuracy), g.result, g.note])
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
        for g in grades:
            writer.writerow(
                {k: safe_text.spreadsheet_cell(v) if isinstance(v, str) else v for k, v in asdict(g).items()}
            )
