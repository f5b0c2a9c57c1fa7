"""`python -m labkit report`: a self-contained HTML report, checked offline and in a real browser."""

import base64
import html as entities
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from html.parser import HTMLParser

import nbformat
import numpy as np
import pytest
from PIL import Image

from labkit.errors import LabError
from labkit.handin.report import execute, fold_log, make_report, write_report
from labkit.lab import NOTEBOOKS
from labkit.settings import RunConfig

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
POPPLER = shutil.which("pdftoppm") and shutil.which("pdftotext")
CHROMEDRIVER = shutil.which("chromedriver")
HOSTILE_CLASSES = ["dark", '"><img src=x onerror=alert(1)>', "light<svg onload=alert(2)>"]
DATA = "shapes<svg onload=alert(3)>.npz"


def tracked_notebooks() -> dict:
    return {p.name: p.read_bytes() for p in NOTEBOOKS.glob("*.ipynb")}


@pytest.fixture(scope="module")
def snapshot() -> dict:
    """The tracked notebooks' bytes before any report runs."""
    return tracked_notebooks()


@pytest.fixture(scope="module")
def report(tmp_path_factory, snapshot):
    """The report of a quick run on a small 3-class data set of 16x16 images, given by a relative path. A hostile
    student named the file and two classes so that, shown raw in the HTML, they would run script in the grader's
    browser."""
    work = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = np.clip(rng.normal(60 + 60 * y[:, None, None], 30, (90, 16, 16)), 0, 255).astype(np.uint8)
    np.savez(work / DATA, x=x, y=y, classes=np.array(HOSTILE_CLASSES))
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        old_mask = os.umask(0o022)  # a grader in the same group or another user may read what is handed in
        try:
            config = RunConfig(student_id="s42", data=DATA, epochs=2, outputs="handin")
            path = make_report(config, out=out, pdf=CHROMIUM is not None)
        finally:
            os.umask(old_mask)
    assert tracked_notebooks() == snapshot, "the tracked notebooks must not change"
    return work / path, out.getvalue()


def test_report_and_checkpoint_are_written_with_progress(report):
    path, log = report
    assert path.name == "s42_lab8_report.html" and (path.parent / "s42_vit.pth").is_file()
    assert "01_data.ipynb: cell 1/" in log and "04_qa.ipynb: cell" in log
    assert "✓ Report written to handin/s42_lab8_report.html (checkpoint: handin/s42_vit.pth)\n" in log
    assert "Kernel" not in log and "WARNING" not in log


def test_the_report_and_checkpoint_are_readable_by_others_as_the_umask_allows(report):
    for file in (report[0], report[0].parent / "s42_vit.pth"):
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file


def test_the_report_shows_the_settings_once_with_the_values_it_ran_with_and_no_setup(report):
    html = report[0].read_text()
    assert html.count("Settings, as given to") == 1, "one settings cell, with the injected values"
    settings = html.split("Settings, as given to")[1].split("</div>")[0]
    assert "s42" in settings and "shapes" in settings
    assert "RunConfig.from_cell" not in html, "each notebook's setup cell is not the hand-in"


def test_the_training_log_names_the_handed_in_file(report):
    html = report[0].read_text()
    assert "Model saved as s42_vit.pth" in html


def test_report_holds_the_labs_results(report):
    html = report[0].read_text()
    for text in ("Total params", "Epoch 2/2", "Question 6", "Question 10", "Final test accuracy", "dark", "light"):
        assert text in html, text


class Elements(HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self):
        super().__init__()
        self.tags, self.scripts, self.in_script = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.in_script = tag == "script"

    def handle_data(self, data):
        if self.in_script:
            self.scripts.append(data)
            self.in_script = False


@pytest.mark.hostile
def test_student_chosen_names_run_no_script_in_the_report(report):
    """Class names and the data path are shown as text: no element they name, no handler, no script of theirs."""
    html = report[0].read_text()
    page = Elements()
    page.feed(html)
    handlers = [(tag, name) for tag, attrs in page.tags for name in attrs if name.lower().startswith("on")]
    assert handlers == [], handlers
    assert not [tag for tag, _ in page.tags if tag in ("svg", "img") and "alert" in str(_)]
    assert not any("alert" in script for script in page.scripts)
    assert "light&lt;svg onload=alert(2)&gt;" in html, "the class name is shown, as text"


def test_report_loads_nothing_from_the_network_and_embeds_every_figure(report):
    html = report[0].read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)
    assert not re.search(r"""url\(\s*["']?(?:https?:)?//""", html)
    images = re.findall(r"<img[^>]*\bsrc=\"([^\"]+)\"", html)
    assert len(images) >= 9  # every figure of the four notebooks
    for src in images:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()


PROBE = """<script>
window.__errors = [];
window.alert = window.confirm = window.prompt = m => window.__errors.push("script ran: " + m);
window.addEventListener("error", e => {
  window.__errors.push(String(e.message || (e.target && (e.target.src || e.target.href))));
}, true);
const __consoleError = console.error;
console.error = (...a) => { window.__errors.push(a.join(" ")); __consoleError(...a); };
window.addEventListener("load", () => {
  const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const outputs = [...document.querySelectorAll(".jp-OutputArea-output pre")];
  const wrapped = outputs.filter(p => getComputedStyle(p).whiteSpace !== "pre").length;
  const probe = {images: document.images.length, broken, wrapped, errors: window.__errors};
  document.body.setAttribute("data-probe", JSON.stringify(probe));
});
</script>"""


def chromium(*args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
def test_report_renders_in_a_real_browser(report, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(report[0].read_text().replace("<head>", "<head>" + PROBE, 1))
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    dom = chromium(profile, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()).stdout
    probe = json.loads(re.search(r"data-probe=\"([^\"]+)\"", dom).group(1).replace("&quot;", '"'))
    assert probe["images"] >= 9 and probe["broken"] == 0 and probe["errors"] == [], probe
    assert probe["wrapped"] == 0, "outputs must scroll, not wrap: torchinfo's rules broke across lines"
    shot = tmp_path / "report.png"
    chromium(profile, "--window-size=1200,2400", f"--screenshot={shot}", report[0].as_uri())
    colours = Image.open(shot).convert("L").getcolors(256)
    assert colours is not None and len(colours) > 20, "the screenshot is blank"


def test_a_failing_notebook_names_the_cell_and_leaves_no_report(tmp_path, snapshot):
    with pytest.raises(LabError, match=r"01_data.ipynb cell \d+ failed with LabError: data source .* not found"):
        make_report(
            RunConfig(student_id="s43", data=str(tmp_path / "missing"), outputs=tmp_path / "handin"), out=io.StringIO()
        )
    assert not (tmp_path / "handin").exists() or not any((tmp_path / "handin").iterdir())
    assert tracked_notebooks() == snapshot, "a failed report must not touch the tracked notebooks"


def test_the_report_opens_with_a_summary_numbers_what_it_shows_and_keeps_the_full_log(report):
    html = entities.unescape(report[0].read_text())  # bleach 6.0 writes "·" as "&#183;"
    opening = html[: html.index("Lab 8 · Step 1")]  # the summary comes before the first notebook
    for text in (
        "Summary",
        "s42",
        "Final test accuracy",
        "baseline",
        "parameters",
        "epochs in",
        "s42_vit.pth",
        "seed 0",
    ):
        assert text in opening, text
    prompts = [int(n) for n in re.findall(r"In\xa0\[(\d+)\]", html)]
    assert prompts == list(range(1, len(prompts) + 1)), "code cells are numbered as shown, from 1"
    assert html.count("The full training log") == 1


def test_a_long_training_log_keeps_the_first_two_every_25th_and_the_last_epoch():
    log = (
        "".join(
            f"\nEpoch {e}/75\nTrain Step 0/20 - Loss: 1.0\n✓ Evaluation - Avg Loss: 0.5, Accuracy: 90.00%\n"
            for e in range(1, 76)
        )
        + "⌚ Total training time: 55.00 seconds\n"
    )
    folded = fold_log(log)
    kept = [int(n) for n in re.findall(r"^Epoch (\d+)/75$", folded, re.M)]
    assert kept == [1, 2, 25, 50, 75]
    assert "… epochs 3–24 folded" in folded and folded.endswith("⌚ Total training time: 55.00 seconds\n")


def test_the_reports_markdown_renders_as_elements_not_as_escaped_tags(report):
    """The sanitiser keeps what the lab's cells make (headings, tables, images) and nothing that runs."""
    html = report[0].read_text()
    assert "&lt;h1" not in html and "&lt;table" not in html and "&lt;strong" not in html
    assert "<h2" in html and "<table" in html and "<th" in html


A4_MM = (210, 297)
MARGIN_MM = 10  # the print stylesheet's left and right page margins


@pytest.mark.skipif(
    CHROMIUM is None or not POPPLER, reason="needs Debian's chromium and poppler-utils (.ci/run installs both)"
)
def test_the_printed_report_has_numbered_pages_and_nothing_past_the_right_margin(report, tmp_path):
    pdf = report[0].with_suffix(".pdf")
    assert pdf.is_file() and "✓ Printed to" in report[1]
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    pages = text.split("\f")[:-1]
    assert len(pages) >= 3
    for n, page in enumerate(pages, 1):
        assert "Lab 8 report: s42" in page and f"page {n} of {len(pages)}" in page, (n, page[:300])
    assert "Lab 8 · Step 3: training" in "".join(pages)
    dpi = 50
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(pdf), str(tmp_path / "page")], check=True)
    shots = sorted(tmp_path.glob("page-*.png"))
    assert len(shots) == len(pages)
    for shot in shots:
        page = np.asarray(Image.open(shot).convert("L"))
        right = round((A4_MM[0] - MARGIN_MM + 1) / 25.4 * dpi)
        top, bottom = round(15 / 25.4 * dpi), page.shape[0] - round(15 / 25.4 * dpi)
        assert page[top:bottom, right:].min() > 240, f"{shot.name}: something runs past the right margin"
        assert page[top:bottom, :right].min() < 100, f"{shot.name}: the page is blank"


# Laid out for print at the PDF's text width, every element still visible: those that clip or scroll their content
# sideways (a scrolled table prints cut off, and inside the margin, where no pixel check sees it), and those that
# reach past the page's right edge.
CUT_OFF = """
const width = document.documentElement.clientWidth;
return [...document.querySelectorAll("body *")].filter(e => {
  const style = getComputedStyle(e);
  if (style.display === "none") return false;
  const clips = ["auto", "scroll", "hidden"].includes(style.overflowX) && e.scrollWidth > e.clientWidth + 1;
  return clips || e.getBoundingClientRect().right > width + 1;
}).map(e => `${e.tagName}.${e.className}: ${e.textContent.trim().slice(0, 60)}`);
"""


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (.ci/run installs both)",
)
def test_printed_nothing_is_cut_off_or_scrolls(report):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        text_width = round((A4_MM[0] - 2 * MARGIN_MM) / 25.4 * 96)  # CSS pixels
        browser.set_window_size(text_width + 16, 1000)  # a scroll bar's width more
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        browser.get(report[0].as_uri())
        assert browser.execute_script("return document.documentElement.clientWidth") <= text_width + 2
        assert browser.execute_script(CUT_OFF) == []
    finally:
        browser.quit()


def tiny(*cells: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])


@pytest.mark.hostile
@pytest.mark.parametrize(
    "cells, timeout, message",
    [
        (("x = 1", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), 60, "the kernel died in t.ipynb cell 2"),
        (("import time; time.sleep(30)",), 2, "t.ipynb cell 1 ran too long (timed out)"),
        (("1 / 0",), 60, "t.ipynb cell 1 failed with ZeroDivisionError: division by zero"),
    ],
    ids=["killed kernel", "slow cell", "error"],
)
def test_whatever_stops_a_notebook_is_one_line_naming_the_cell(tmp_path, cells, timeout, message):
    with pytest.raises(LabError, match=re.escape(message)) as info:
        execute(tiny(*cells), "t.ipynb", tmp_path, io.StringIO(), timeout=timeout)
    assert "\n" not in str(info.value)


@pytest.mark.hostile
def test_a_stale_python3_kernelspec_is_never_used(tmp_path, monkeypatch):
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": ["/nonexistent/python", "-f", "{connection_file}"]}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    nb = tiny("import sys; print(sys.executable)")
    execute(nb, "t.ipynb", tmp_path, io.StringIO())
    assert nb.cells[0].outputs[0]["text"].strip() == sys.executable


STOPPED = """
import io, signal, sys, nbformat
from labkit.handin.report import execute
signal.signal(signal.SIGTERM, signal.default_int_handler)  # as labkit.cli.main does
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time; time.sleep(60)")])
try:
    execute(nb, "t.ipynb", sys.argv[1], io.StringIO())
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.hostile
def test_a_kill_during_a_notebook_interrupts_it_and_leaves_no_kernel(tmp_path):
    run = subprocess.Popen([sys.executable, "-c", STOPPED, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    time.sleep(8)  # the kernel started and the cell running
    run.send_signal(signal.SIGTERM)
    assert run.communicate(timeout=60)[0].strip() == "interrupted"
    kernels = subprocess.run(["pgrep", "-f", "ipykernel_launcher.*labkit-kernel"], capture_output=True, text=True)
    assert kernels.stdout == ""


@pytest.mark.hostile
def test_a_report_of_another_run_already_there_is_kept_aside(report, tmp_path):
    """Only a report of the same run is replaced; the student's own file or another run's report is kept."""
    html, out = report
    mine = tmp_path / "s42_lab8_report.html"
    mine.write_text("MY HAND-EDITED REPORT")
    text = html.read_text()
    fingerprint = re.search(r'<meta name="labkit-run" content="(\w+)">', text)[1]
    assert write_report(mine, text, fingerprint, io.StringIO()) is not None
    kept = [p for p in tmp_path.iterdir() if p != mine]
    assert [p.read_text() for p in kept] == ["MY HAND-EDITED REPORT"]
    assert write_report(mine, text, fingerprint, io.StringIO()) is None, "the same run's report is replaced"
