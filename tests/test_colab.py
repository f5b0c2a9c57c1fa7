"""The notebooks' Colab bootstrap cell, run as Colab would run it, without Colab and without downloads.

Each case makes a scratch virtual environment that sees this test run's packages but not its labkit (conftest's
``scratch_environment``: the same whether the tests run in a system Python or a virtual environment), puts a
stand-in ``google.colab`` module in ``sys.modules``, runs the bootstrap cell in the folder Colab would (its working
directory, where uploads land), then imports labkit in a new process of that environment and runs the settings
cell. pip is kept offline by its environment variables (no index, no dependencies, no build isolation), never by
the cell.
"""

import os
import shutil
import subprocess
import textwrap
import zipfile
from pathlib import Path

import nbformat
import pytest
from regenerate_notebooks import ROOT, bootstrap_source

from labkit.lab import BOOTSTRAP_TAG, PARAMETERS_TAG, lab_notebooks

# Hides the labkit that `pip install -e .` put in the system site-packages, so only what the cell installs counts.
HIDE_EDITABLE = textwrap.dedent("""
    import sys
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
    sys.path[:] = [p for p in sys.path if p not in ("", {root!r})]
""")

COLAB = textwrap.dedent("""
    import sys
    import types
    sys.modules["google"] = types.ModuleType("google")
    sys.modules["google.colab"] = types.ModuleType("google.colab")
    sys.path.insert(0, "")  # a notebook's own folder is importable, as in Jupyter
""")

AFTERWARDS = textwrap.dedent("""
    import sys
    sys.path.insert(0, "")
    import labkit
    print("labkit from", labkit.__file__)
    {settings}
    from labkit.presets import get_preset
    print("preset", get_preset(PRESET).name)
""")


def cell(tag: str) -> str:
    nb = nbformat.read(lab_notebooks()[0], as_version=4)
    return next(c.source for c in nb.cells if tag in c.metadata.get("tags", []))


@pytest.fixture(scope="module")
def python(tmp_path_factory, scratch_env) -> Path:
    """The scratch environment's interpreter."""
    return scratch_env(tmp_path_factory.mktemp("venv"))


def run(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    offline = {
        "PIP_NO_INDEX": "1",
        "PIP_NO_DEPS": "1",
        "PIP_NO_BUILD_ISOLATION": "0",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")} | offline
    return subprocess.run([str(python), "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def bootstrap_then_import(python: Path, source: str, cwd: Path) -> str:
    """Run the bootstrap cell as Colab would, then import labkit and run the settings cell in a new process."""
    hide = HIDE_EDITABLE.format(root=str(ROOT))
    ran = run(python, hide + COLAB + source, cwd)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    after = run(python, hide + AFTERWARDS.format(settings=cell(PARAMETERS_TAG)), cwd)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "preset fast" in after.stdout
    return after.stdout


def uninstall(python: Path) -> None:
    """Remove what an earlier case installed into the scratch environment."""
    site = next(python.parent.parent.glob("lib/python*/site-packages"))
    for path in site.glob("labkit*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def test_the_notebooks_bootstrap_cell_is_the_generated_one():
    assert cell(BOOTSTRAP_TAG).startswith("# @title Colab setup")


def test_with_the_repository_address_set_it_installs_from_git(python, tmp_path):
    """The instructor's path: [tool.labkit] repository set; here a git+file:// address of this checkout."""
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout of the lab")
    uninstall(python)
    out = bootstrap_then_import(python, bootstrap_source(f"file://localhost{ROOT}"), tmp_path)
    assert "site-packages" in out and str(ROOT) not in out


def test_with_the_repository_uploaded_as_a_zip_it_installs_from_it(python, tmp_path):
    """GitHub's Download ZIP: everything under one folder named after the repository and branch."""
    uninstall(python)
    with zipfile.ZipFile(tmp_path / "vit-lab-main.zip", "w") as z:
        for path in [ROOT / "pyproject.toml", ROOT / "README.md", *(ROOT / "labkit").rglob("*")]:
            if path.is_file() and "__pycache__" not in path.parts:
                z.write(path, Path("vit-lab-main") / path.relative_to(ROOT))
    out = bootstrap_then_import(python, bootstrap_source(""), tmp_path)
    assert "site-packages" in out


def test_with_the_labkit_folder_uploaded_it_uses_it(python, tmp_path):
    uninstall(python)
    shutil.copytree(ROOT / "labkit", tmp_path / "labkit", ignore=shutil.ignore_patterns("__pycache__"))
    out = bootstrap_then_import(python, bootstrap_source(""), tmp_path)
    assert f"labkit from {tmp_path / 'labkit'}" in out or "labkit from labkit" in out


def test_when_labkit_imports_already_it_does_nothing(python, tmp_path):
    """This checkout's own labkit on the path this time: the cell must not call pip (whose install from the address
    given here would fail)."""
    uninstall(python)
    checkout = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"
    ran = run(python, checkout + COLAB + bootstrap_source("file:///nowhere"), tmp_path)
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "", "")
    after = run(python, checkout + AFTERWARDS.format(settings=cell(PARAMETERS_TAG)), tmp_path)
    assert after.returncode == 0 and "preset fast" in after.stdout, after.stderr


def test_with_nothing_to_install_from_it_says_what_to_upload(python, tmp_path):
    uninstall(python)
    ran = run(python, HIDE_EDITABLE.format(root=str(ROOT)) + COLAB + bootstrap_source(""), tmp_path)
    assert ran.returncode != 0 and "upload the lab's repository as a .zip" in ran.stderr


def test_outside_colab_the_cell_does_nothing(python, tmp_path):
    ran = run(python, HIDE_EDITABLE.format(root=str(ROOT)) + bootstrap_source(""), tmp_path)
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "", "")


def colab_versions() -> dict[str, str]:
    lines = (ROOT / "tools" / "colab_packages.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


def test_installing_labkit_in_colab_moves_no_package_colab_ships():
    """What the first cell installs in Colab (labkit's requirements less torch) must accept every version Colab runs
    of the same packages: pip would otherwise replace one under a running kernel ("restart your runtime"). Checked
    offline, against the requirement specifiers themselves."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from regenerate_notebooks import pyproject

    colab = {canonicalize_name(name): version for name, version in colab_versions().items()}
    moved = []
    for line in pyproject()["project"]["dependencies"]:
        requirement = Requirement(line)
        shipped = colab.get(canonicalize_name(requirement.name))
        if shipped is not None and not requirement.specifier.contains(shipped, prereleases=True):
            moved.append(f"{requirement.name}: labkit asks {requirement.specifier}, Colab ships {shipped}")
    assert not moved, "; ".join(moved)
