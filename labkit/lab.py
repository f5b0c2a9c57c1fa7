"""The lab's fixed facts, each defined once; importing nothing heavy, so ``--help`` answers before torch loads."""

from __future__ import annotations

from pathlib import Path

BASELINE = 0.60  # the lab's pass mark: test accuracy must beat 60%
LAB_EPOCHS = 20  # the lab's reference budget
SIGNIFICANCE = 0.05  # a paired difference with a smaller McNemar p is called beyond chance
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"  # the four lab notebooks, in a clone of the lab
NOTEBOOK_GLOB = "[0-9]*.ipynb"  # 01_data ... 04_qa, in the order a student runs them
BADGE_TAG, BOOTSTRAP_TAG, PARAMETERS_TAG = "colab-badge", "bootstrap", "parameters"
TRAINING_LOG_TAG = "training-log"  # the cell that prints the lab's log: folded in the hand-in report
SETUP_TAG = "setup"  # a notebook's imports and first step: the report shows neither, nor the settings more than once
BUILTIN = "builtin"  # the SOURCE of the data that ships with labkit
PRESET_NAMES = ("fast", "reference", "cnn", "hybrid")  # presets.PRESETS, in this order (checked there)
VIT_PRESET_NAMES = ("fast", "reference", "hybrid")  # the ViT presets: the notebooks' questions need one
MODEL_KINDS = ("vit", "cnn")  # models.MODEL_KINDS (checked there): a checkpoint is named <student_id>_<kind>.pth
# "shift+flip" adds mirror images to small shifts: for clothes or textures, never digits (a mirrored 2 is no 2).
AUGMENTATIONS = ("none", "shift", "shift+flip")
AUGMENTED_IMAGES = {"none": "the training images as they are", "shift": "the training images shifted by up to 2 pixels"}
AUGMENTED_IMAGES["shift+flip"] = AUGMENTED_IMAGES["shift"] + " and mirrored half the time"


def passes(accuracy: float, baseline: float = BASELINE) -> bool:
    return accuracy > baseline


def lab_root() -> Path | None:
    """The top of the lab's folder when labkit runs from a clone of it; None for an installed labkit (Colab)."""
    root = NOTEBOOKS.parent
    return root if (root / "pyproject.toml").is_file() else None


def outputs_dir() -> Path:
    """Where checkpoints go by default: ``outputs/`` at the top of a clone, else in the working folder (Colab)."""
    return (lab_root() or Path()) / "outputs"


def search_paths(path: Path) -> list[Path]:
    """Where a relative data path is looked for: the working folder, then a clone's top (notebooks run below it)."""
    root = lab_root()
    if path.is_absolute() or root is None or Path.cwd().resolve() == root.resolve():
        return [path]
    return [path, root / path]


def lab_notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob(NOTEBOOK_GLOB))
