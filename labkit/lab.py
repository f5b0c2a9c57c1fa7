"""The lab's fixed facts, each defined once: the pass mark, where the notebooks live and the tags their special
cells carry."""

from __future__ import annotations

from pathlib import Path

BASELINE = 0.60  # the lab's pass mark: test accuracy must beat 60%
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"  # the four lab notebooks, in a clone of the lab
NOTEBOOK_GLOB = "[0-9]*.ipynb"  # 01_data ... 04_qa, in the order a student runs them
BADGE_TAG, BOOTSTRAP_TAG, PARAMETERS_TAG = "colab-badge", "bootstrap", "parameters"


def lab_notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob(NOTEBOOK_GLOB))
