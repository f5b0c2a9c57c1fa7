"""The hand-in as a PDF, printed by a headless Chromium; without one, a line saying how to print it by hand. (The
printed pages themselves are checked in test_report.py, on the report it makes.)"""

import io

import pytest

from labkit.errors import LabError
from labkit.handin import pdf


def test_without_chromium_the_report_says_how_to_print_it(tmp_path, monkeypatch):
    monkeypatch.setattr(pdf, "find_chromium", lambda: None)
    html = tmp_path / "s1_lab8_report.html"
    html.write_text("<p>report</p>")
    out = io.StringIO()
    assert pdf.print_pdf(html, tmp_path / "s1_lab8_report.pdf", out) is None
    assert not (tmp_path / "s1_lab8_report.pdf").exists()
    line = out.getvalue()
    assert line.count("\n") == 1 and "s1_lab8_report.html" in line and "Save as PDF" in line


def test_a_browser_that_fails_to_print_is_one_line_and_leaves_no_pdf(tmp_path, monkeypatch):
    monkeypatch.setattr(pdf, "find_chromium", lambda: "false")  # runs, prints nothing and fails, as a broken one
    html = tmp_path / "s1_lab8_report.html"
    html.write_text("<p>report</p>")
    with pytest.raises(LabError, match=r"^false could not print the report \(no PDF written\); open .* Save as PDF\)$"):
        pdf.print_pdf(html, tmp_path / "s1_lab8_report.pdf", io.StringIO())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s1_lab8_report.html"]
