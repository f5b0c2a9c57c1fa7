"""``python -m labkit report``: run the four notebooks with a student's settings and write one self-contained HTML.

The tracked notebooks are never modified: they are copied to a scratch folder, the settings are injected after each
notebook's ``parameters`` cell (as papermill does), and they are executed there. The report embeds every figure and
loads nothing from the network, so it opens offline; the checkpoint is copied beside it. A failing cell stops the
run with the notebook, the cell and its error, and leaves no half-written report.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TextIO

import bleach
import nbformat
from bleach.css_sanitizer import CSSSanitizer
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from labkit.checkpoint import load_checkpoint
from labkit.errors import LabError
from labkit.handin import safe_text
from labkit.handin.pdf import print_pdf
from labkit.handin.safe_write import check_writable, shown, write_whole
from labkit.lab import (
    BADGE_TAG,
    BASELINE,
    BOOTSTRAP_TAG,
    NOTEBOOKS,
    PARAMETERS_TAG,
    SETUP_TAG,
    TRAINING_LOG_TAG,
    lab_notebooks,
    lab_root,
    passes,
)
from labkit.notebook.explorer import without_widgets
from labkit.settings import RunConfig, checkpoint_name
from labkit.sources import parse_source

TEMPLATES = Path(__file__).resolve().parent / "templates"
KERNEL = "labkit-python"  # the kernel the report runs: this Python, whatever kernelspecs the machine has
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


def execute(nb: nbformat.NotebookNode, name: str, cwd: Path, out: TextIO, timeout: int = 1800) -> None:
    """Run ``nb`` in a kernel of this Python (as nbval's --current-env does: a stale ``python3`` kernelspec is never
    used). Whatever stops it is one LabError naming the notebook and the cell."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    at = [0]

    def progress(cell, cell_index, **_):
        at[0] = code.index(cell_index) + 1
        print(f"\r{name}: cell {at[0]}/{len(code)}", end="", file=out, flush=True)

    with tempfile.TemporaryDirectory(prefix="labkit-kernel-") as home, open(Path(home) / "kernel.log", "w+") as log:
        (Path(home) / "kernels" / KERNEL).mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (Path(home) / "kernels" / KERNEL / "kernel.json").write_text(json.dumps({"argv": argv, "language": "python"}))
        given = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [home, given]))  # read as nbclient starts one
        client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, resources={"metadata": {"path": str(cwd)}})
        client.on_cell_execute = progress
        try:
            client.execute(stderr=log)  # the kernel's own log: shown only if it fails to start or dies
        except KeyboardInterrupt:
            raise
        except Exception as err:
            # nbclient meets Ctrl-C or a kill by shutting its kernel down (its signal handler leaves this future)
            if hasattr(client, "_async_cleanup_kernel_future") or getattr(err, "ename", None) == "KeyboardInterrupt":
                raise KeyboardInterrupt from None
            print(file=out)
            log.seek(0)
            said = [line for line in log.read().splitlines() if line.strip() and "WARNING" not in line]
            raise _failure(err, f"{name} cell {at[0]}", said[-1:]) from None
        finally:
            os.environ.pop("JUPYTER_PATH") if given is None else os.environ.update(JUPYTER_PATH=given)
    print(file=out)


def _failure(err: Exception, where: str, kernel_said: list[str]) -> LabError:
    """One line for whatever stopped a notebook: its error, a time-out, a dead kernel, or a kernel that never ran."""
    said = f": {kernel_said[0]}" if kernel_said else ""
    if isinstance(err, CellExecutionError):
        return LabError(f"{where} failed with {err.ename}: {err.evalue}; fix it, then run the report again")
    if isinstance(err, CellTimeoutError):
        return LabError(f"{where} ran too long (timed out); fewer epochs or a smaller preset should fit")
    if isinstance(err, DeadKernelError):
        return LabError(f"the kernel died in {where}{said} (out of memory?); free memory or train a smaller model")
    return LabError(f"cannot run a Python kernel for {where} ({err.__class__.__name__}{said}); pip install ipykernel")


# What the report's Markdown and HTML outputs may contain once cleaned: the elements the lab's own cells make
# (headings, tables, code, images embedded as data), never a script, a handler or a style sheet. nbconvert's own
# clean_html keeps too few (no headings, no table headers), which would show the report's Markdown as escaped tags.
REPORT_TAGS = {
    *bleach.ALLOWED_TAGS,
    *("p", "div", "span", "pre", "code", "br", "hr", "img", "sup", "sub", "del", "details", "summary"),
    *("h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td"),
}


def _attribute(tag: str, name: str, value: str) -> bool:
    if name in ("class", "id", "title", "alt", "width", "height"):
        return True
    if name == "style":
        return tag in ("th", "td")  # Markdown tables' column alignment; the CSS sanitizer keeps only text-align
    if tag == "img" and name == "src":
        return value.startswith("data:image/")
    return tag == "a" and name == "href" and value.startswith(("http://", "https://", "#", "mailto:"))


def clean_html(element: str | bytes) -> str:
    """HTML with only REPORT_TAGS and harmless attributes left: the report's replacement for nbconvert's
    ``clean_html`` filter, which its templates apply to Markdown cells and outputs when sanitising."""
    text = element.decode() if isinstance(element, bytes) else str(element)
    return bleach.clean(
        text,
        tags=REPORT_TAGS,
        attributes=_attribute,
        protocols=["http", "https", "mailto", "data"],
        css_sanitizer=CSSSanitizer(allowed_css_properties=["text-align"]),
    )


def fold_log(text: str, first: int = 2, every: int = 25) -> str:
    """The lab's training log with most epochs folded away: the first ``first``, every ``every``-th and the last are
    kept whole, each run of the others becomes one "… epochs a–b …" line; what follows the last epoch is kept."""
    blocks = re.split(r"(?m)^(?=Epoch \d+/\d+$)", text)
    head, epochs = blocks[0], blocks[1:]
    if len(epochs) <= first + 2:
        return text
    kept, skipped = [head], []
    for n, block in enumerate(epochs, 1):
        if n <= first or n % every == 0 or n == len(epochs):
            if skipped:
                kept.append(f"… epochs {skipped[0]}–{skipped[-1]} folded …\n\n")
                skipped = []
            kept.append(block)
        else:
            skipped.append(n)
    return "".join(kept)


def summary(checkpoint: dict, name: str) -> str:
    """The report's opening lines, for a grader to scan: student, data, model, final accuracy against the baseline,
    training time and the checkpoint handed in, read from that checkpoint."""
    metrics, data, history = checkpoint["metrics"], checkpoint["data"], checkpoint["metrics"]["history"]
    accuracy, params = metrics["test_accuracy"], sum(t.numel() for t in checkpoint["model_state"].values())
    sizes = data["sizes"]
    rows = {
        "Student": safe_text.markdown(checkpoint["student_id"]),
        "Data": f"{safe_text.markdown(data['description'])}: {sizes['train']} train / {sizes['test']} test images, "
        f"{len(checkpoint['classes'])} classes",
        "Model": f"the {safe_text.markdown(checkpoint['preset'])} preset, a ViT of {params:,} parameters",
        "Final test accuracy": f"**{accuracy:.2%}**, {'above' if passes(accuracy) else 'below'} the "
        f"{BASELINE:.0%} baseline (the last epoch's, on the test split)",
        "Training": f"{len(history['eval_accuracy'])} epochs in {history['seconds']:.0f} s (seed {checkpoint['seed']}, "
        f"torch {safe_text.markdown(checkpoint['versions']['torch'])})",
        "Checkpoint": f"{safe_text.markdown(name)}, beside this report",
    }
    table = "\n".join(f"| {k} | {v} |" for k, v in rows.items())
    return f"## Summary\n\n| | |\n|---|---|\n{table}"


def css_string(text: str) -> str:
    """``text`` as a CSS string, every character but letters, digits and a few marks written as a hex escape: the
    print stylesheet heads each page with the student's id, which the student chose."""
    return '"' + "".join(c if c.isalnum() or c in " .,:_-" else f"\\{ord(c):x} " for c in text) + '"'


def to_html(notebooks: list[nbformat.NotebookNode], title: str, opening: str | None = None) -> str:
    """One HTML page of the notebooks as run: the Colab cells left out, ``opening`` (Markdown) first, code cells
    numbered as shown, the training log folded with the full log one click away, widgets as their pictures, and a
    print stylesheet whose pages carry ``title`` and a page number."""
    from nbconvert import HTMLExporter

    merged = nbformat.v4.new_notebook(metadata=notebooks[0].metadata)
    merged.metadata["title"] = title
    if opening:
        merged.cells.append(nbformat.v4.new_markdown_cell(opening))
    for k, nb in enumerate(notebooks):
        without_widgets(nb)
        # Colab's cells and each notebook's setup are not the hand-in; the settings are shown once.
        hidden = {BADGE_TAG, BOOTSTRAP_TAG, SETUP_TAG} | ({PARAMETERS_TAG} if k else set())
        merged.cells += [c for c in nb.cells if not hidden & set(c.metadata.get("tags", []))]
    code = [c for c in merged.cells if c.cell_type == "code"]
    for n, cell in enumerate(code, 1):
        cell.execution_count = n
        for output in cell.get("outputs", []):
            if output.get("output_type") == "execute_result":
                output["execution_count"] = n
        if TRAINING_LOG_TAG in cell.metadata.get("tags", []):
            # The kernel sends a long log in several stdout chunks: folded as one.
            log = "".join(o["text"] for o in cell.outputs if o.get("name") == "stdout")
            others = [o for o in cell.outputs if o.get("name") != "stdout"]
            folded = nbformat.v4.new_output("stream", name="stdout", text=fold_log(log))
            folded["labkit_full_log"] = log
            cell.outputs = [folded, *others] if log else others
    # sanitize_html: whatever HTML still reached a Markdown cell or an output is cleaned of scripts and handlers.
    exporter = HTMLExporter(
        sanitize_html=True,
        template_name="lab",
        template_file="offline.html.j2",
        embed_images=True,
        extra_template_paths=[str(TEMPLATES)],
    )
    exporter.register_filter("clean_html", clean_html)
    html, _ = exporter.from_notebook_node(merged, resources={"lab_page_label": css_string(title)})
    return html.replace("⌚", WATCH)


def from_lab_root(path: Path) -> Path:
    """``path`` relative to the top of the lab's folder where it lies inside it, else as it is (absolute)."""
    root = lab_root()
    try:
        return path.relative_to(root.resolve()) if root else path
    except ValueError:
        return path


def same_run(report: Path, fingerprint: str) -> bool:
    """Whether the file at ``report`` is labkit's report of this run."""
    return report.is_file() and _stamp(fingerprint).encode() in report.read_bytes()[:4096]


def _stamp(fingerprint: str) -> str:
    return f'<meta name="labkit-run" content="{fingerprint}">'


def write_report(report: Path, html: str, fingerprint: str, out: TextIO) -> Path | None:
    """Write the report, marked with the run it shows: a file there of the same run is replaced, any other (the
    student's own, another run's report) kept under a timestamped name, which is returned."""
    same = same_run(report, fingerprint)
    html = html.replace("<head>", f"<head>\n{_stamp(fingerprint)}", 1)
    kept = write_whole(report, lambda f: f.write(html.encode("utf-8")), replaceable=lambda _: same, out=out)
    if kept:
        print(f"! {shown(report)} held another report; kept it as {shown(kept)}", file=out)
    return kept


def make_report(settings: RunConfig, out: TextIO | None = None, pdf: bool = False) -> Path:
    """Run the lab's notebooks with these settings; write ``<student_id>_lab8_report.html`` and the checkpoint into
    ``settings.out_dir``, and with ``pdf`` the report printed beside it (``<student_id>_lab8_report.pdf``).

    The notebooks save the checkpoint straight there (their ``OUTPUTS``), so the report's training log names the
    file that is handed in. Paths are made absolute first: the notebooks run in a scratch folder."""
    out = out or sys.stdout
    out_dir = settings.out_dir.resolve()
    ckpt = check_writable(out_dir / checkpoint_name(settings.student_id))
    report = check_writable(out_dir / f"{settings.student_id}_lab8_report.html")
    printed = check_writable(report.with_suffix(".pdf")) if pdf else None
    # The notebooks run in the hand-in folder, so their checkpoint goes there as "." and the log names just the file;
    # the data is named from the top of the lab's folder where it lies inside it (where notebooks look too).
    data = parse_source(settings.data).absolute()
    shown_data = replace(data, path=from_lab_root(data.path)) if data.kind == "path" else data
    given = replace(settings, data=str(shown_data), outputs=".")
    paths = lab_notebooks()
    if not paths:
        raise LabError(f"no notebooks in {NOTEBOOKS}; run the report from a clone of the lab")
    executed = []
    for path in paths:
        nb = prepare(path, given.cell_values())
        execute(nb, path.name, out_dir, out)
        executed.append(nb)
    checkpoint = load_checkpoint(ckpt)
    html = to_html(executed, f"Lab 8 report: {settings.student_id}", summary(checkpoint, ckpt.name))
    same = same_run(report, checkpoint["run_fingerprint"])  # then a PDF beside it is of this run too
    write_report(report, html, checkpoint["run_fingerprint"], out)
    print(f"✓ Report written to {shown(report)} (checkpoint: {shown(ckpt)})", file=out)
    if printed and print_pdf(report, printed, out, replaceable=same):
        print(f"✓ Printed to {shown(printed)}", file=out)
    return report
