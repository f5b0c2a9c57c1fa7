"""labkit installed as a regular package (``pip install .``, Colab's ``pip install git+...``), not from the checkout:
the wheel carries what the commands need, the report's template included."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from regenerate_notebooks import ROOT

RENDER = textwrap.dedent("""
    import labkit, nbformat
    from labkit.handin.report import to_html
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A report"), nbformat.v4.new_code_cell("1 + 1")]
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    html = to_html([nb], "Lab 8 report: s1")
    print(labkit.__file__)
    print("<title>Lab 8 report: s1</title>" in html, "A report" in html, len(html) > 10000)
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory, scratch_env):
    """A scratch environment with labkit installed from a wheel built from this checkout (offline)."""
    work = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", work]
    built = subprocess.run([*build, str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = work.glob("labkit-*.whl")
    python = scratch_env(work / "venv")
    site = next((work / "venv").glob("lib/python*/site-packages"))
    # The scratch environment's own pip (borrowed through its .pth): it installs there, and leaves alone the labkit
    # that this test run's environment has (pip run from this interpreter would uninstall that one first).
    install = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return python, site


def test_the_wheel_holds_the_report_template_and_renders_it(installed, tmp_path):
    """nbconvert's own templates are data files of the environment nbconvert was installed into (this test run's,
    which the scratch environment borrows); labkit's must come from the wheel."""
    python, site = installed
    env = os.environ | {"JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter")}
    ran = subprocess.run(
        [str(python), "-c", RENDER], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert ran.returncode == 0, ran.stderr
    where, checks = ran.stdout.splitlines()
    assert where.startswith(str(site)), "labkit must come from the wheel, not the checkout"
    assert checks == "True True True"


def test_the_installed_command_line_answers(installed, tmp_path):
    python, _ = installed
    ran = subprocess.run(
        [str(python), "-m", "labkit", "summary", "--preset", "fast"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0 and "Total params: 142,246" in ran.stdout, ran.stderr
