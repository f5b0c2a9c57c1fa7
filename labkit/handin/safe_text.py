"""Text a student controls, made safe where it is shown: in the report's Markdown, on a terminal, in a CSV cell."""

from __future__ import annotations

import html
import re
import unicodedata

# Markdown's punctuation that makes emphasis, a link, a table cell, code, strike-through or maths; < > & are HTML.
_MARKDOWN = re.compile(r"([\\`*_\[\]|~$])")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula (OWASP)


def markdown(text: object) -> str:
    """``text`` as literal Markdown: printable, HTML characters escaped, Markdown's punctuation backslash-escaped."""
    return html.escape(_MARKDOWN.sub(r"\\\1", printable(text)), quote=False)


def printable(text: object, limit: int = 200) -> str:
    """``text`` on one line, control and format characters (ANSI, bidi, zero-width) as spaces, cut at ``limit``."""
    text = str(text)[: limit + 1]
    shown = "".join(" " if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def spreadsheet_cell(text: object) -> str:
    """``text`` for a CSV cell that a spreadsheet never runs as a formula: a leading ``'`` where it would start one."""
    shown = printable(text, limit=1000)
    return "'" + shown if shown.startswith(_FORMULA) else shown
