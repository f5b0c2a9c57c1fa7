"""A maintainer's tool: regenerate the lab's notebooks. Refresh their Colab header from pyproject, execute them in
place, strip noise metadata.

    python tools/regenerate_notebooks.py                     # every notebook in notebooks/
    python tools/regenerate_notebooks.py 03_training.ipynb

The stored outputs that ``pytest --nbval`` compares come only from this command, never from hand edits.
The repository's public address lives in one place, ``[tool.labkit] repository`` in pyproject.toml; the
badge and the Colab install line are derived from it here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbstripout import strip_output

from labkit.lab import BADGE_TAG, BOOTSTRAP_TAG, NOTEBOOKS, lab_notebooks

ROOT = NOTEBOOKS.parent
# What Colab and JupyterLab add that is not content: dropped so diffs show only real changes.
NOISE_KEYS = ["metadata.colab", "metadata.accelerator", "metadata.widgets", "cell.metadata.colab",
              "cell.metadata.id", "cell.metadata.outputId", "cell.metadata.execution"]  # fmt: skip


def repository(pyproject: Path = ROOT / "pyproject.toml") -> str:
    import tomllib

    with open(pyproject, "rb") as f:
        return tomllib.load(f).get("tool", {}).get("labkit", {}).get("repository", "").rstrip("/")


def badge_source(repo: str, name: str) -> str:
    if not repo:
        return (
            "**Open in Colab:** not available yet — this copy of the lab has no public repository address. "
            "Set `repository` under `[tool.labkit]` in `pyproject.toml`, then run "
            "`python tools/regenerate_notebooks.py`."
        )
    path = repo.removeprefix("https://github.com/")
    return (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{path}/blob/main/notebooks/{name})"
    )


def bootstrap_source(repo: str) -> str:
    """The Colab-only install cell, laid out as ruff formats it (the notebooks are linted)."""
    if repo:
        install = (
            "    import subprocess\n\n"
            f'    PACKAGE = "labkit @ git+{repo}.git"\n'
            '    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", PACKAGE])'
        )
    else:
        install = (
            "    raise SystemExit(\n"
            '        "No public repository address is set for this lab, so labkit cannot be installed here: "\n'
            '        "set [tool.labkit] repository in pyproject.toml and run tools/regenerate_notebooks.py, "\n'
            '        "or upload the labkit folder next to this notebook."\n'
            "    )"
        )
    return (
        "# Colab only: install labkit there. Locally (and under nbval) this does nothing.\n"
        "import sys\n\n"
        'IN_COLAB = "google.colab" in sys.modules\n'
        "if IN_COLAB:\n" + install
    )


def refresh_header(nb: nbformat.NotebookNode, name: str, repo: str) -> None:
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if BADGE_TAG in tags:
            cell.source = badge_source(repo, name)
        if BOOTSTRAP_TAG in tags:
            cell.source = bootstrap_source(repo)


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """nbstripout with outputs and counts kept (nbval needs both), noise metadata removed."""
    nb = strip_output(nb, keep_output=True, keep_count=True, keep_id=True, extra_keys=NOISE_KEYS)
    nb.metadata.pop("language_info", None)  # carries the Python patch version: noise between machines
    return nb


def regenerate(path: Path, repo: str, timeout: int = 1200) -> None:
    nb = nbformat.read(path, as_version=4)
    refresh_header(nb, path.name, repo)
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    nbformat.write(clean(nb), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/regenerate_notebooks.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebook file names in notebooks/ (default: all)")
    args = parser.parse_args(argv)
    paths = [NOTEBOOKS / n for n in args.names] or lab_notebooks()
    repo = repository()
    for path in paths:
        print(f"executing {path.relative_to(ROOT)} ...", flush=True)
        regenerate(path, repo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
