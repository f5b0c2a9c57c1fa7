"""The hand-in as a PDF: the report printed by a headless Chromium, the pages a browser's Print → Save as PDF gives."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TextIO

from labkit.errors import LabError
from labkit.handin.safe_write import shown, write_whole

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
HOW_TO_PRINT = "open {html} in a browser and print it to a PDF (Ctrl+P or Cmd+P, then Save as PDF)"


def find_chromium() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def print_pdf(html: Path, pdf: Path, out: TextIO, replaceable: bool = True) -> Path | None:
    """``html`` printed to ``pdf`` (one there kept aside unless ``replaceable``); None, saying how, without Chromium."""
    if (browser := find_chromium()) is None:
        print(f"No Chromium or Chrome found to print the PDF: {HOW_TO_PRINT.format(html=shown(html))}.", file=out)
        return None
    with tempfile.TemporaryDirectory(prefix="labkit-pdf-") as scratch:
        printed, profile = Path(scratch) / "report.pdf", Path(scratch) / "profile"
        flags = ["--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
        flags += ["--disable-component-update", "--disable-sync", "--no-pdf-header-footer"]
        flags += [f"--user-data-dir={profile}", f"--print-to-pdf={printed}"]
        if os.geteuid() == 0:  # Chromium refuses to run its sandbox as root (containers, CI)
            flags.append("--no-sandbox")
        try:
            result = subprocess.run([browser, *flags, html.resolve().as_uri()], capture_output=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise LabError(f"{browser} took over 5 minutes to print; {HOW_TO_PRINT.format(html=shown(html))}") from None
        if result.returncode != 0 or not printed.is_file() or printed.stat().st_size == 0:
            why = next(iter(result.stderr.decode(errors="replace").strip().splitlines()[-1:]), "no PDF written")
            raise LabError(f"{browser} could not print the report ({why}); {HOW_TO_PRINT.format(html=shown(html))}")
        data = printed.read_bytes()
    kept = write_whole(pdf, lambda f: f.write(data), replaceable=lambda _: replaceable, out=out)
    if kept:
        print(f"! {shown(pdf)} held another PDF; kept it as {shown(kept)}", file=out)
    return pdf
