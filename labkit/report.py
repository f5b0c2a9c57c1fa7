"""``python -m labkit report``: run the four notebooks with a student's settings and write one self-contained HTML.

The tracked notebooks are never modified: they are copied to a scratch folder, the settings are injected after each
notebook's ``parameters`` cell (as papermill does), and they are executed there. The report embeds every figure and
loads nothing from the network, so it opens offline; the checkpoint is copied beside it. A failing cell stops the
run with the notebook, the cell and its error, and leaves no half-written report.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TextIO

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from labkit.checkpoint import checkpoint_name, load_checkpoint, save_checkpoint
from labkit.errors import LabError
from labkit.lab import BADGE_TAG, BOOTSTRAP_TAG, BUILTIN, NOTEBOOKS, PARAMETERS_TAG, lab_notebooks
from labkit.sources import parse_source

TEMPLATES = Path(__file__).resolve().parent / "templates"


def settings_source(settings: dict) -> str:
    lines = [f"{name} = {value!r}" for name, value in settings.items()]
    return "# Injected by python -m labkit report\n" + "\n".join(lines)


def prepare(path: Path, settings: dict) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    where = next((i for i, c in enumerate(nb.cells) if PARAMETERS_TAG in c.metadata.get("tags", [])), None)
    if where is None:
        raise LabError(f"{path.name} has no cell tagged '{PARAMETERS_TAG}'; restore it from git")
    cell = nbformat.v4.new_code_cell(settings_source(settings))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(where + 1, cell)
    return nb


def execute(nb: nbformat.NotebookNode, name: str, cwd: Path, out: TextIO) -> None:
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]

    def progress(cell, cell_index, **_):
        print(f"\r{name}: cell {code.index(cell_index) + 1}/{len(code)}", end="", file=out, flush=True)

    client = NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(cwd)}},
                            on_cell_execute=progress)  # fmt: skip
    try:
        client.execute()
    except CellExecutionError as err:
        failed = next((i for i in code if any(o.get("output_type") == "error" for o in nb.cells[i].get("outputs", []))),
                      None)  # fmt: skip
        where = f"cell {code.index(failed) + 1}" if failed is not None else "a cell"
        detail = f"{err.ename}: {err.evalue}" if getattr(err, "ename", None) else str(err).strip().splitlines()[-1]
        print(file=out)
        raise LabError(f"{name} failed at {where}: {detail}; fix it, then run the report again") from None
    print(file=out)


def to_html(notebooks: list[nbformat.NotebookNode], title: str) -> str:
    from nbconvert import HTMLExporter

    merged = nbformat.v4.new_notebook(metadata=notebooks[0].metadata)
    merged.metadata["title"] = title
    for nb in notebooks:
        merged.cells += [c for c in nb.cells if not {BADGE_TAG, BOOTSTRAP_TAG} & set(c.metadata.get("tags", []))]
    exporter = HTMLExporter(template_name="lab", template_file="offline.html.j2", embed_images=True,
                            extra_template_paths=[str(TEMPLATES)])  # fmt: skip
    html, _ = exporter.from_notebook_node(merged)
    return html


def make_report(data: str = BUILTIN, student_id: str = "student_id", preset: str = "fast", epochs: int | None = None,
                out_dir: str | Path = ".", out: TextIO | None = None, augment: str | None = None) -> Path:  # fmt: skip
    """Run the lab's notebooks with these settings; write ``<student_id>_lab8_report.html`` and the checkpoint."""
    out = out or sys.stdout
    out_dir = Path(out_dir)
    ckpt = checkpoint_name(student_id)
    settings = {
        "STUDENT_ID": student_id,
        "DATA": str(parse_source(data).absolute()),
        "PRESET": preset,
        "EPOCHS": epochs,
    }
    paths = lab_notebooks()
    if not paths:
        raise LabError(f"no notebooks in {NOTEBOOKS}; run the report from a clone of the lab")
    with tempfile.TemporaryDirectory(prefix="labkit-report-") as scratch:
        executed = []
        for path in paths:
            nb = prepare(path, settings)
            execute(nb, path.name, Path(scratch), out)
            executed.append(nb)
        html = to_html(executed, f"Lab 8 report: {student_id}")
        out_dir.mkdir(parents=True, exist_ok=True)
        report = out_dir / f"{student_id}_lab8_report.html"
        fd, tmp = tempfile.mkstemp(prefix=f".{report.name}.", dir=out_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(html)
        os.replace(tmp, report)
        saved = save_checkpoint(load_checkpoint(Path(scratch) / "outputs" / ckpt), out_dir / ckpt, out=out)
    print(f"✓ Report written to {report} (checkpoint: {saved})", file=out)
    return report
