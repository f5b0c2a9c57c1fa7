"""One run's settings and its checkpoints' names; light to import, so the command line checks them before torch."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

from labkit.errors import LabError
from labkit.lab import AUGMENTATIONS, BUILTIN, MODEL_KINDS, PRESET_NAMES, outputs_dir

MAX_ID_BYTES = 100  # of a student id in UTF-8: the file name, its temp and kept variants stay under 255 bytes
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit


def checkpoint_name(student_id: str, kind: str = "vit") -> str:
    """The lab's file name for a run's model: ``<student_id>_vit.pth`` (``_cnn.pth`` for the CNN baseline)."""
    if kind not in MODEL_KINDS:
        raise LabError(f"unknown model kind {kind!r}; checkpoints are named for one of {', '.join(MODEL_KINDS)}")
    if not isinstance(student_id, str):
        raise LabError(f"student id {student_id!r} is a {type(student_id).__name__}; give it as text, e.g. 's1234567'")
    # A letter or digit first: a leading '-' reads as an option to a grader's shell, a leading '.' hides the file.
    if not re.fullmatch(r"[^\W_][\w-]*", student_id) or len(student_id.encode()) > MAX_ID_BYTES:
        shown = student_id[:40].encode("unicode_escape").decode() + ("..." if len(student_id) > 40 else "")
        rule = f"use up to {MAX_ID_BYTES} letters, digits, - or _, starting with a letter or digit"
        raise LabError(f"student id '{shown}' cannot name a file; {rule}")
    return f"{student_id}_{kind}.pth"


def student_of(path: str | Path) -> str:
    """The student id a checkpoint's file name gives: ``s1_vit.pth`` -> ``s1``."""
    stem = Path(path).stem
    return next((stem.removesuffix(f"_{kind}") for kind in MODEL_KINDS if stem.endswith(f"_{kind}")), stem)


@dataclass(frozen=True)
class RunConfig:
    """One run: who, which data, preset and recipe, seed, where to save; in a notebook, the settings cell's CAPITALS."""

    student_id: str = "student_id"  # names the checkpoint: <student_id>_vit.pth
    data: str = BUILTIN  # a folder of class folders, a .zip of one, an .npz, an idx set, or the built-in digits
    preset: str = "fast"  # the model and its recipe (presets.py)
    epochs: int | None = None  # None: the preset's own
    augment: str | None = None  # None: the preset's own; else one of lab.AUGMENTATIONS
    seed: int = 0  # the training seed; the split has its own, so changing this never moves an image
    outputs: str | None = None  # the folder for checkpoints; None: lab.outputs_dir()

    def __post_init__(self) -> None:
        checkpoint_name(self.student_id)
        for name in ("data", "outputs"):  # paths: text or a Path; a folder to write in "~/..." means the home's
            value = getattr(self, name)
            if not isinstance(value, str | os.PathLike) and not (name == "outputs" and value is None):
                raise LabError(f"{name}={value!r} ({name.upper()} in a notebook) is not a path; give it as text")
            if value is not None:
                object.__setattr__(self, name, str(Path(value).expanduser()) if name == "outputs" else str(value))
        if self.preset not in PRESET_NAMES:
            raise LabError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESET_NAMES)}")
        if self.augment is not None and self.augment not in AUGMENTATIONS:
            raise LabError(f"unknown augmentation {self.augment!r}; choose one of {', '.join(AUGMENTATIONS)} or None")
        whole = isinstance(self.epochs, int) and not isinstance(self.epochs, bool)
        if self.epochs is not None and (not whole or self.epochs < 1):
            raise LabError(f"epochs={self.epochs!r}: give a whole number of at least 1, or None for the preset's")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed <= MAX_SEED:
            raise LabError(f"seed={self.seed!r}: give a whole number from 0 to {MAX_SEED}")

    @classmethod
    def from_cell(cls, namespace: dict) -> RunConfig:
        """The settings cell's variables (``STUDENT_ID``, ``DATA``, ...), checked."""
        missing = [f.name.upper() for f in fields(cls) if f.name.upper() not in namespace]
        if missing:
            raise LabError(f"the settings cell lacks {', '.join(missing)}; run it, or restore it from git")
        return cls(**{f.name: namespace[f.name.upper()] for f in fields(cls)})

    def cell_values(self) -> dict[str, object]:
        """The settings cell's variables for these settings: what the report writes into each notebook."""
        return {f.name.upper(): getattr(self, f.name) for f in fields(self)}

    @property
    def out_dir(self) -> Path:
        return Path(self.outputs) if self.outputs is not None else outputs_dir()
