"""``python -m labkit report``: run the notebooks (never modified) with a student's settings and write one HTML page
that opens offline beside the checkpoint; a failing cell stops it in one line, leaving no half-written report."""

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

from labkit import lab
from labkit.checkpoint import load_checkpoint, model_from_checkpoint
from labkit.errors import LabError
from labkit.handin import safe_text
from labkit.handin.pdf import print_pdf
from labkit.handin.safe_write import check_writable, shown, write_whole
from labkit.models import count_parameters
from labkit.notebook.explorer import without_widgets
from labkit.settings import RunConfig, checkpoint_name
from labkit.sources import parse_source

TEMPLATES = Path(__file__).resolve().parent / "templates"
STAMP = '<meta name="labkit-run" content="{}">'  # marks the run a report shows
KERNEL = "labkit-python"  # the kernel the report runs: this Python, whatever kernelspecs the machine has
# The log's "⌚ Total training time": Linux fonts often lack U+231A, so a picture is drawn, its label the character.
WATCH = (
    '<svg class="lab-glyph" role="img" aria-label="⌚" viewBox="0 0 16 16"><title>⌚</title>'
    '<rect x="5" y="0.5" width="6" height="15" rx="1.5" fill="#666"/>'
    '<circle cx="8" cy="8" r="5.2" fill="#fff" stroke="#333" stroke-width="1.4"/>'
    '<path d="M8 4.8V8l2.2 1.4" fill="none" stroke="#333" stroke-width="1.3" stroke-linecap="round"/></svg>'
)


def inject(source: str, settings: dict) -> str:
    """The settings cell with these values in place of its defaults, comments kept: what the report shows once."""
    lines = ["# Settings, as given to `python -m labkit report`:"]
    for line in source.splitlines()[1:]:
        if (found := re.match(r"^(\w+) = .*?(  # .*)?$", line)) and found[1] in settings:
            line = f"{found[1]} = {settings[found[1]]!r}{found[2] or ''}"
        lines.append(line)
    if missing := set(settings) - {m[1] for m in (re.match(r"^(\w+) = ", line) for line in lines) if m}:
        raise LabError(f"the settings cell lacks {', '.join(sorted(missing))}; restore the notebooks from git")
    return "\n".join(lines)


def execute(nb: nbformat.NotebookNode, name: str, cwd: Path, out: TextIO, timeout: int = 1800) -> None:
    """Run ``nb`` in a kernel of this Python (never a stale ``python3`` kernelspec); what stops it is one LabError."""
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
        except Exception as err:  # not KeyboardInterrupt, a BaseException
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


# The lab's own elements (no script, handler or style sheet): nbconvert's clean_html would show headings as tags.
REPORT_TAGS = {*bleach.ALLOWED_TAGS, "p", "div", "span", "pre", "code", "br", "hr", "img", "sup", "sub", "del"}
REPORT_TAGS |= {"details", "summary", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td"}


def _attribute(tag: str, name: str, value: str) -> bool:
    if name in ("class", "id", "title", "alt", "width", "height"):
        return True
    if name == "style":
        return tag in ("th", "td")  # Markdown tables' column alignment; the CSS sanitizer keeps only text-align
    if tag == "img" and name == "src":
        return value.startswith("data:image/")
    return tag == "a" and name == "href" and value.startswith(("http://", "https://", "#", "mailto:"))


def clean_html(element: str | bytes) -> str:
    """Only REPORT_TAGS and harmless attributes left: the report's ``clean_html`` filter, in place of nbconvert's."""
    text = element.decode() if isinstance(element, bytes) else str(element)
    css = CSSSanitizer(allowed_css_properties=["text-align"])
    return bleach.clean(
        text, tags=REPORT_TAGS, attributes=_attribute, protocols=["http", "https", "mailto", "data"], css_sanitizer=css
    )


def fold_log(text: str, first: int = 2, every: int = 25) -> str:
    """The training log with epochs folded, a line a run, but the first ``first``, every ``every``-th and the last."""
    head, *epochs = re.split(r"(?m)^(?=Epoch \d+/\d+$)", text)
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
    """The report's opening table, read from the checkpoint handed in, for a grader to scan."""
    metrics, data, history = checkpoint["metrics"], checkpoint["data"], checkpoint["metrics"]["history"]
    accuracy, params = metrics["test_accuracy"], count_parameters(model_from_checkpoint(checkpoint))
    sizes = data["sizes"]
    rows = {
        "Student": safe_text.markdown(checkpoint["student_id"]),
        "Data": f"{safe_text.markdown(data['description'])}: {int(sizes['train'])} train / {int(sizes['test'])} test "
        f"images, {len(checkpoint['classes'])} classes",
        "Model": f"the {safe_text.markdown(checkpoint['preset'])} preset, a ViT of {params:,} parameters",
        "Final test accuracy": f"**{accuracy:.2%}**, {'above' if lab.passes(accuracy) else 'below'} the "
        f"{lab.BASELINE:.0%} baseline (the last epoch's, on the test split)",
        "Training": f"{len(history['eval_accuracy'])} epochs in {history['seconds']:.0f} s (seed {checkpoint['seed']}, "
        f"torch {safe_text.markdown(checkpoint['versions']['torch'])})",
        "Checkpoint": f"{safe_text.markdown(name)}, beside this report",
    }
    table = "\n".join(f"| {k} | {v} |" for k, v in rows.items())
    return f"## Summary\n\n| | |\n|---|---|\n{table}"


def to_html(notebooks: list[nbformat.NotebookNode], title: str, opening: str | None = None) -> str:
    """One HTML page of the notebooks as run, ``opening`` (Markdown) first, and printed pages headed by ``title``."""
    from nbconvert import HTMLExporter

    merged = nbformat.v4.new_notebook(metadata=notebooks[0].metadata)
    merged.metadata["title"] = title
    if opening:
        merged.cells.append(nbformat.v4.new_markdown_cell(opening))
    for k, nb in enumerate(notebooks):
        without_widgets(nb)
        # Colab's cells and each notebook's setup are not the hand-in; the settings are shown once.
        hidden = {lab.BADGE_TAG, lab.BOOTSTRAP_TAG, lab.SETUP_TAG} | ({lab.PARAMETERS_TAG} if k else set())
        merged.cells += [c for c in nb.cells if not hidden & set(c.metadata.get("tags", []))]
    for n, cell in enumerate((c for c in merged.cells if c.cell_type == "code"), 1):
        cell.execution_count = n
        for output in cell.get("outputs", []):
            if output.get("output_type") == "execute_result":
                output["execution_count"] = n
        if lab.TRAINING_LOG_TAG in cell.metadata.get("tags", []):
            # The kernel sends a long log in several stdout chunks: folded as one.
            log = "".join(o["text"] for o in cell.outputs if o.get("name") == "stdout")
            others = [o for o in cell.outputs if o.get("name") != "stdout"]
            folded = nbformat.v4.new_output("stream", name="stdout", text=fold_log(log))
            folded["labkit_full_log"] = log
            cell.outputs = [folded, *others] if log else others
    # sanitize_html: whatever HTML still reached a Markdown cell or an output is cleaned of scripts and handlers.
    template = dict(template_name="lab", template_file="offline.html.j2", extra_template_paths=[str(TEMPLATES)])
    exporter = HTMLExporter(sanitize_html=True, embed_images=True, **template)
    exporter.register_filter("clean_html", clean_html)
    # The title as a CSS string, all but letters, digits and a few marks hex-escaped: each printed page shows the id.
    label = '"' + "".join(c if c.isalnum() or c in " .,:_-" else f"\\{ord(c):x} " for c in title) + '"'
    html, _ = exporter.from_notebook_node(merged, resources={"lab_page_label": label})
    return html.replace("⌚", WATCH)


def same_run(report: Path, fingerprint: str) -> bool:
    return report.is_file() and STAMP.format(fingerprint).encode() in report.read_bytes()[:4096]


def write_report(report: Path, html: str, fingerprint: str, out: TextIO) -> Path | None:
    """Write the report, marked with its run: one of the same run is replaced, any other file kept aside (returned)."""
    same = same_run(report, fingerprint)
    html = html.replace("<head>", f"<head>\n{STAMP.format(fingerprint)}", 1)
    kept = write_whole(report, lambda f: f.write(html.encode("utf-8")), replaceable=lambda _: same, out=out)
    if kept:
        print(f"! {shown(report)} held another report; kept it as {shown(kept)}", file=out)
    return kept


def make_report(settings: RunConfig, out: TextIO | None = None, pdf: bool = False) -> Path:
    """Run the notebooks in ``settings.out_dir``, leaving the checkpoint, ``<id>_lab8_report.html`` (and ``.pdf``)."""
    out, out_dir = out or sys.stdout, settings.out_dir.resolve()
    ckpt = check_writable(out_dir / checkpoint_name(settings.student_id))
    report = check_writable(out_dir / f"{settings.student_id}_lab8_report.html")
    printed = check_writable(report.with_suffix(".pdf")) if pdf else None
    # The data is named from the top of the lab's folder where it lies inside it (where notebooks look too).
    data, root = parse_source(settings.data).absolute(), lab.lab_root()
    if data.kind == "path" and root and data.path.is_relative_to(root.resolve()):
        data = replace(data, path=data.path.relative_to(root.resolve()))
    given = replace(settings, data=str(data), outputs=".")
    if not (paths := lab.lab_notebooks()):
        raise LabError(f"no notebooks in {lab.NOTEBOOKS}; run the report from a clone of the lab")
    executed = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        cell = next((c for c in nb.cells if lab.PARAMETERS_TAG in c.metadata.get("tags", [])), None)
        if cell is None:
            raise LabError(f"{path.name} has no cell tagged '{lab.PARAMETERS_TAG}'; restore it from git")
        cell.source = inject(cell.source, given.cell_values())
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
