"""Text a student controls, made safe where it is shown: Markdown (rendered as HTML a grader opens), a terminal, a
spreadsheet cell."""

import pytest

from labkit.handin.safe_text import markdown, printable, spreadsheet_cell


@pytest.mark.hostile
def test_markdown_shows_html_and_markdown_punctuation_as_text():
    shown = markdown("<img src=x onerror=alert(1)> *bold* [link](http://x) a|b `code` ~~no~~ _i_ \\")
    assert "<" not in shown and "&lt;img src=x onerror=alert(1)&gt;" in shown
    for escaped in (r"\*bold\*", r"\[link\]", r"a\|b", r"\`code\`", r"\~\~no\~\~", r"\_i\_", "\\\\"):
        assert escaped in shown, escaped
    assert markdown("line\nbreak\x1b[31m") == r"line break \[31m"


@pytest.mark.hostile
def test_a_dollar_in_markdown_is_shown_not_read_as_maths():
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    for name in (r"$\foo$", "a$^$b", "$5 and $6"):
        assert markdown2html_mistune(f"Weakest: {markdown(name)}.") == f"<p>Weakest: {name}.</p>\n"


@pytest.mark.hostile
def test_printable_is_one_line_without_control_characters_and_cut_at_its_limit():
    assert printable("s1\r\n\x1b[32mPASS\x07\x9b") == "s1   [32mPASS  "
    assert printable("x" * 300) == "x" * 199 + "…" and len(printable("x" * 50, limit=20)) == 20
    assert printable(12345) == "12345"
    assert printable("s1\u202egnp.exe\u200b\ufeff") == "s1 gnp.exe  ", "bidi and zero-width characters show as spaces"


@pytest.mark.hostile
@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", '=HYPERLINK("http://x","s3")'])
def test_a_spreadsheet_never_reads_a_cell_as_a_formula(text):
    cell = spreadsheet_cell(text)
    assert cell.startswith("'") and cell[1:] == printable(text, limit=1000)


def test_ordinary_text_is_left_as_it_is():
    assert markdown("s1234567") == printable("s1234567") == spreadsheet_cell("s1234567") == "s1234567"
