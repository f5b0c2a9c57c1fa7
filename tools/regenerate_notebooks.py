"""A maintainer's tool: regenerate the lab's notebooks. Refresh their Colab header from pyproject and their settings
cell from RunConfig, execute them in place, strip noise metadata.

    python tools/regenerate_notebooks.py                     # every notebook in notebooks/
    python tools/regenerate_notebooks.py 03_training.ipynb

The stored outputs that ``pytest --nbval`` compares come only from this command, never from hand edits.
The repository's public address lives in one place, ``[tool.labkit] repository`` in pyproject.toml; the
badge and the Colab install line are derived from it here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbstripout import strip_output

from labkit.lab import BADGE_TAG, BOOTSTRAP_TAG, NOTEBOOKS, PARAMETERS_TAG, lab_notebooks
from labkit.notebook.explorer import without_widgets
from labkit.presets import PRESETS
from labkit.settings import RunConfig

ROOT = NOTEBOOKS.parent
# What Colab and JupyterLab add that is not content: dropped so diffs show only real changes.
NOISE_KEYS = [
    "metadata.colab",
    "metadata.accelerator",
    "metadata.widgets",
    "cell.metadata.colab",
    "cell.metadata.id",
    "cell.metadata.outputId",
    "cell.metadata.execution",
]


def pyproject(path: Path = ROOT / "pyproject.toml") -> dict:
    import tomllib

    with open(path, "rb") as f:
        return tomllib.load(f)


def repository() -> str:
    """The repository's public git address, set once by the instructor ("" until the lab is published)."""
    return pyproject().get("tool", {}).get("labkit", {}).get("repository", "").rstrip("/")


def colab_needs() -> list[str]:
    """labkit's requirements less torch, which Colab ships (gigabytes: never reinstalled)."""
    return [d for d in pyproject()["project"]["dependencies"] if not d.startswith("torch>")]


def badge_source(repo: str, name: str) -> str:
    if not repo:
        # The instructor's step (setting the address) is in the README: the notebook a student hands in says none.
        return "*Colab: see the README.*"
    path = repo.removeprefix("https://github.com/")
    return (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{path}/blob/main/notebooks/{name})"
    )


BOOTSTRAP = """\
# @title Colab setup: makes labkit importable in Colab; does nothing elsewhere (click to show the code)
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    import subprocess
    import zipfile
    from importlib.util import find_spec
    from pathlib import Path

    REPOSITORY = "{repository}"
    # What labkit needs beyond the torch that Colab ships:
    NEEDS = "{needs}"

    def pip(*args):
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])

    def lab_zips():  # the repository uploaded as a .zip (GitHub: Code, Download ZIP)
        return [z for z in Path.cwd().glob("*.zip") if "labkit/__init__.py" in str(zipfile.ZipFile(z).namelist())]

    if all(find_spec(name) for name in ("labkit", "einops", "torchinfo")):
        pass  # installed already
    elif REPOSITORY:
        pip(f"labkit @ git+{{REPOSITORY}}")
    elif lab_zips():
        with zipfile.ZipFile(lab_zips()[0]) as z:
            top = Path(next(n for n in z.namelist() if n.endswith("labkit/__init__.py"))).parent.parent
            z.extractall()
        pip(str(Path.cwd() / top))
    elif (Path.cwd() / "labkit" / "__init__.py").is_file():  # the labkit folder uploaded next to the notebook
        pip(*NEEDS.split())
    else:
        raise SystemExit(
            "labkit is not installed here. In the Files pane, upload the lab's repository as a .zip "
            "(GitHub: Code, Download ZIP) or its labkit folder, then run this cell again."
        )
"""


# What each setting is, beside its default (RunConfig's): the settings cell every notebook starts from.
SETTING_NOTES = {
    "STUDENT_ID": "names the checkpoint: <STUDENT_ID>_vit.pth",
    "DATA": '"builtin", a folder data/<name>/<class>/<images>, a .zip of class folders, or an .npz',
    "PRESET": 'a ViT: "fast", "reference" (the lab\'s reference model and recipe) or "hybrid" (a conv stem)',
    "EPOCHS": "None: the preset's own ({epochs})",
    "AUGMENT": 'None: the preset\'s; "none", "shift", or "shift+flip" (mirror images too)',
    "SEED": "training seed; the split has its own, so changing this never moves an image",
    "OUTPUTS": "None: outputs/ at the top of the lab's folder (in Colab: in the working folder)",
}


def settings_source() -> str:
    """The settings cell: RunConfig's defaults, each with what it means."""
    epochs = ", ".join(f"{name}: {p.train.epochs}" for name, p in PRESETS.items() if name != "cnn")
    values = {name: json.dumps(v) if isinstance(v, str) else repr(v) for name, v in RunConfig().cell_values().items()}
    lines = [f"{name} = {value}  # {SETTING_NOTES[name].format(epochs=epochs)}" for name, value in values.items()]
    return "\n".join(["# Settings", *lines])


def bootstrap_source(repo: str) -> str:
    """The Colab-only install cell, laid out as ruff formats it (the notebooks are linted). In order: nothing if
    labkit imports; the repository address if set; an uploaded repository zip; an uploaded labkit folder; else it
    says what to upload."""
    return BOOTSTRAP.format(repository=repo, needs=" ".join(colab_needs())).rstrip("\n")


def refresh_header(nb: nbformat.NotebookNode, name: str, repo: str) -> None:
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if PARAMETERS_TAG in tags:
            cell.source = settings_source()
        if BADGE_TAG in tags:
            cell.source = badge_source(repo, name)
        if BOOTSTRAP_TAG in tags:
            cell.source = bootstrap_source(repo)
            # Folded to its title line, so a notebook opens on the lab: JupyterLab hides the source, Colab shows
            # a form (the "# @title" line).
            cell.metadata["jupyter"] = {"source_hidden": True}
            cell.metadata["cellView"] = "form"


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """nbstripout with outputs and counts kept (nbval needs both), noise metadata removed, and widget views dropped
    (a stored notebook has no kernel to draw them: the attention explorer's picture shows instead)."""
    without_widgets(nb)
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
