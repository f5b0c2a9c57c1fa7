"""Checking submitted checkpoints: each loaded safely, rebuilt and re-scored on the lab's split, one row each. Nothing
in a file can stop the batch or forge the table: a bad file is one ERROR row, its text printable, never a formula."""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from labkit.errors import LabError
from labkit.handin import safe_text
from labkit.handin.evaluation import evaluate_checkpoint, fraction
from labkit.handin.safe_write import check_writable, write_whole
from labkit.lab import BASELINE
from labkit.settings import student_of
from labkit.sources import file_kind, visible

SUFFIXES = (".pth", ".pt")  # what torch.save files are called, in any case


@dataclass
class Grade:
    file: str  # the file's path relative to the folder given, as printable text
    student_id: str = ""  # the id the file stores (its name's, where it stores none or cannot be read)
    preset: str = ""
    params: int | None = None
    test_images: int | None = None
    stored_accuracy: float | None = None
    accuracy: float | None = None
    result: str = "ERROR"  # PASS, FAIL or ERROR
    note: str = ""


Progress = Callable[[int, int, Grade], None]  # told each row as it is graded: its number, the total, the row


@dataclass(frozen=True)
class Submission:
    label: str  # how its row names it
    path: Path
    problem: str = ""  # why it cannot be read at all (a folder that cannot be listed)


def submissions(paths: list[str | Path]) -> list[Submission]:
    """The files named and the checkpoints in the folders named; a missing or unlistable one gets its ERROR row."""
    found = []
    for given in map(Path, paths):
        if not given.is_dir():
            found.append(Submission(str(given), given))
            continue

        def unlisted(err: OSError, given: Path = given) -> None:
            where = Path(err.filename or given)
            label = str(where.relative_to(given)) if where != given else str(given)
            found.append(Submission(label, where, f"folder cannot be listed ({err.strerror})"))

        for here, dirs, names in os.walk(given, onerror=unlisted):
            dirs[:] = sorted(d for d in dirs if visible(d))
            for name in sorted(n for n in names if visible(n) and Path(n).suffix.lower() in SUFFIXES):
                path = Path(here) / name
                found.append(Submission(str(path.relative_to(given if len(paths) == 1 else given.parent)), path))
    return found


def grade_one(submission: Submission, source: str | None, baseline: float) -> tuple[Grade, str | None]:
    """One file's row and the run fingerprint it stores; whatever is wrong with the file becomes its ERROR row."""
    path, name = submission.path, safe_text.printable(submission.label)
    named = safe_text.printable(student_of(path), 60)
    if submission.problem:
        return Grade(name, note=submission.problem), None
    try:
        result = evaluate_checkpoint(path, source, lab_split=True)
        checkpoint, notes = result.checkpoint, list(result.warnings)
        stored_id = safe_text.printable(checkpoint["student_id"], 60)
        if stored_id != named:
            notes.append(f"the file stores student id '{stored_id}', but its name gives '{named}'")
        preset, note = safe_text.printable(checkpoint["preset"], 20), safe_text.printable("; ".join(notes), 400)
        stored, verdict = fraction(result.stored_accuracy), "PASS" if result.accuracy > baseline else "FAIL"
        return Grade(
            name, stored_id, preset, int(result.params), result.test_size, stored, float(result.accuracy), verdict, note
        ), checkpoint["run_fingerprint"]
    except LabError as err:
        return Grade(name, student_id=named, note=safe_text.printable(str(err).removeprefix(f"{path} "), 400)), None
    except Exception as err:  # noqa: BLE001 - a grader's batch must go on; the row says what happened
        first = safe_text.printable(next(iter(str(err).splitlines()), ""), 200)
        return Grade(name, student_id=named, note=f"cannot be graded ({err.__class__.__name__}: {first})"), None


def grade(
    paths: list[str | Path], source: str | None = None, baseline: float = BASELINE, progress: Progress | None = None
) -> list[Grade]:
    """Every submission's row, noting the bytes, run fingerprint or student id it shares with an earlier row."""
    files = submissions(paths)
    grades, first = [], {}
    for i, submission in enumerate(files, 1):
        row, fingerprint = grade_one(submission, source, baseline)
        read = row.params is not None  # an ERROR row's bytes and id are not compared
        same = {"bytes": _digest(submission.path) if read else None, "run fingerprint": fingerprint}
        for what, key in (same | {"student id": row.student_id if read else None}).items():
            if key is not None and (what, key) in first:
                row.note = "; ".join(filter(None, [row.note, f"same {what} as {first[(what, key)]}"]))
            first.setdefault((what, key), row.file)
        grades.append(row)
        if progress:
            progress(i, len(files), row)
    return grades


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def progress_line(i: int, total: int, g: Grade) -> str:
    """One line as a row is graded, so a long batch is never silent."""
    score = "" if g.accuracy is None else f" {g.accuracy:.2%}"
    return f"[{i}/{total}] {g.file}: {g.result}{score}"


def table(grades: list[Grade], baseline: float) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.2f}%"

    head = ["file", "student (stored)", "preset (params)", "test images", "stored", "re-measured", f"> {baseline:.0%}"]
    rows = [[*head, "note"]]
    for g in grades:
        model = f"{g.preset} ({g.params:,})" if g.params is not None else "-"
        images = "-" if g.test_images is None else str(g.test_images)
        scores = [pct(g.stored_accuracy), pct(g.accuracy)]
        rows.append([g.file, g.student_id or "-", model, images, *scores, g.result, g.note])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows)


def check_csv_target(path: str | Path) -> Path:
    """Fail before any grading if the CSV cannot be written there: not a regular file, or a folder that takes none."""
    path = Path(path).expanduser()
    if os.path.lexists(path) and not path.is_file():
        raise LabError(f"--csv {path} is {file_kind(path)}; give a file name such as grades.csv")
    return check_writable(path)


def write_csv(grades: list[Grade], path: str | Path) -> Path | None:
    """The rows as CSV, written whole; a file already there is kept under a timestamped name, which is returned."""
    text = io.StringIO()
    writer = csv.DictWriter(text, [f.name for f in Grade.__dataclass_fields__.values()])
    writer.writeheader()
    for g in grades:
        writer.writerow({k: safe_text.spreadsheet_cell(v) if isinstance(v, str) else v for k, v in asdict(g).items()})
    try:
        return write_whole(Path(path), lambda f: f.write(text.getvalue().encode()), replaceable=lambda _: False)
    except OSError as err:
        raise LabError(f"cannot write {path} ({err.strerror or err}); the table above has every row") from None
