"""``python -m labkit report``: run the four notebooks with a student's settings and write one self-contained HTML.

The tracked notebooks are never modified: they are copied to a scratch folder, the settings are injected after each
notebook's ``parameters`` cell (as papermill does), and they are executed there. The report embeds every figure and
loads nothing from the network, so it opens offline; the checkpoint is copied beside it. A failing cell stops the
run with the notebook, the cell and its error, and leaves no half-written report.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TextIO

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from labkit.errors import LabError
from labkit.lab import BADGE_TAG, BOOTSTRAP_TAG, NOTEBOOKS, PARAMETERS_TAG, lab_notebooks
from labkit.safe_write import check_writable, shown, write_whole
from labkit.settings import RunConfig, checkpoint_name
from labkit.sources import parse_source

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The lab's log ends with "⌚ Total training time"; common Linux fonts lack U+231A WATCH, so browsers there draw a box.
# The page shows it as a small inline picture instead; the character stays, for copying and screen readers.
WATCH = (
    '<svg class="lab-glyph" role="img" aria-label="⌚" viewBox="0 0 16 16"><title>⌚</title>'
    '<rect x="5" y="0.5" width="6" height="15" rx="1.5" fill="#666"/>'
    '<circle cx="8" cy="8" r="5.2" fill="#fff" stroke="#333" stroke-width="1.4"/>'
    '<path d="M8 4.8V8l2.2 1.4" fill="none" stroke="#333" stroke-width="1.3" stroke-linecap="round"/></svg>'
)


def inject(source: str, settings: dict) -> str:
    """The settings cell with these values in place of its defaults, comments kept: the report shows one settings
    cell, with the values it ran with."""
    lines = ["# Settings, as given to `python -m labkit report`:"]
    for line in source.splitlines()[1:]:
        found = re.match(r"^(\w+) = .*?(  # .*)?$", line)
        if found and found[1] in settings:
            line = f"{found[1]} = {settings[found[1]]!r}{found[2] or ''}"
        lines.append(line)
    missing = set(settings) - {m[1] for m in (re.match(r"^(\w+) = ", line) for line in lines) if m}
    if missing:
        raise LabError(f"the settings cell lacks {', '.join(sorted(missing))}; restore the notebooks from git")
    return "\n".join(lines)


def prepare(path: Path, settings: dict) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    cell = next((c for c in nb.cells if PARAMETERS_TAG in c.metadata.get("tags", [])), None)
    if cell is None:
        raise LabError(f"{path.name} has no cell tagged '{PARAMETERS_TAG}'; restore it from git")
    cell.source = inject(cell.source, settings)
    return nb


def execute(nb: nbformat.NotebookNode, name: str, cwd: Path, out: TextIO) -> None:
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]

    def progress(cell, cell_index, **_):
        print(f"\r{name}: cell {code.index(cell_index) + 1}/{len(code)}", end="", file=out, flush=True)

    client = NotebookClient(
        nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}, on_cell_execute=progress
    )
    try:
        client.execute(stderr=subprocess.DEVNULL)  # the kernel's own log (a TCP warning): the student sees progress
    except CellExecutionError as err:
        failed = next(
            (i for i in code if any(o.get("output_type") == "error" for o in nb.cells[i].get("outputs", []))), None
        )
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
    # sanitize_html: whatever HTML still reached a Markdown cell or an output is cleaned of scripts and handlers.
    exporter = HTMLExporter(
        sanitize_html=True,
        template_name="lab",
        template_file="offline.html.j2",
        embed_images=True,
        extra_template_paths=[str(TEMPLATES)],
    )
    html, _ = exporter.from_notebook_node(merged)
    return html.replace("⌚", WATCH)


def make_report(settings: RunConfig, out: TextIO | None = None) -> Path:
    """Run the lab's notebooks with these settings; write ``<student_id>_lab8_report.html`` and the checkpoint into
    ``settings.out_dir``.

    The notebooks save the checkpoint straight there (their ``OUTPUTS``), so the report's training log names the
    file that is handed in. Paths are made absolute first: the notebooks run in a scratch folder."""
    out = out or sys.stdout
    out_dir = settings.out_dir.resolve()
    ckpt = check_writable(out_dir / checkpoint_name(settings.student_id))
    report = check_writable(out_dir / f"{settings.student_id}_lab8_report.html")
    absolute = replace(settings, data=str(parse_source(settings.data).absolute()), outputs=str(out_dir))
    paths = lab_notebooks()
    if not paths:
        raise LabError(f"no notebooks in {NOTEBOOKS}; run the report from a clone of the lab")
    with tempfile.TemporaryDirectory(prefix="labkit-report-") as scratch:
        executed = []
        for path in paths:
            nb = prepare(path, absolute.cell_values())
            execute(nb, path.name, Path(scratch), out)
            executed.append(nb)
    html = to_html(executed, f"Lab 8 report: {settings.student_id}")
    write_whole(report, lambda f: f.write(html.encode("utf-8")), replaceable=lambda _: True, out=out)
    print(f"✓ Report written to {shown(report)} (checkpoint: {shown(ckpt)})", file=out)
    return report
