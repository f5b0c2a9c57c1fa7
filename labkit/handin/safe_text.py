"""Text a student controls (class-folder names, data paths, strings stored in a checkpoint), made safe where it is
shown: in Markdown, which the report renders as HTML a grader opens; on a terminal; in a CSV a spreadsheet opens.
"""

from __future__ import annotations

import html
import re
import unicodedata

# Markdown's punctuation that could make emphasis, a link or an image, a table cell, code or strike-through mid-line
# (where labkit puts student text); < > & are escaped as HTML.
_MARKDOWN = re.compile(r"([\\`*_\[\]|~])")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula (OWASP)


def markdown(text: object) -> str:
    """``text`` as literal Markdown: HTML characters escaped (no element or attribute can appear), Markdown's
    punctuation backslash-escaped (no emphasis, link or table cell), control characters shown as spaces."""
    return html.escape(_MARKDOWN.sub(r"\\\1", printable(text)), quote=False)


def printable(text: object, limit: int = 200) -> str:
    """``text`` on one line for a terminal or a log: control characters (newlines, ANSI escapes) and format characters
    (bidi overrides, zero-width spaces) become spaces; past ``limit`` characters it is cut with an ellipsis."""
    text = str(text)[: limit + 1]
    shown = "".join(" " if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def spreadsheet_cell(text: object) -> str:
    """``text`` for a CSV cell that a spreadsheet never runs as a formula: a leading ``'`` where it would start one."""
    shown = printable(text, limit=1000)
    return "'" + shown if shown.startswith(_FORMULA) else shown
