"""Scoring a saved checkpoint on a test split, with the checks a grader needs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from labkit.handin import safe_text
from labkit.checkpoint import load_checkpoint, model_from_checkpoint
from labkit.data import DataConfig, LabData, load_data
from labkit.errors import LabError
from labkit.lab import BUILTIN
from labkit.handin.guard import check_size, eval_batch
from labkit.metrics import evaluate
from labkit.models import config_from_dict, count_parameters


@dataclass
class Evaluation:
    checkpoint: dict
    params: int  # of the rebuilt model
    accuracy: float  # re-measured on the test split
    loss: float
    test_size: int
    warnings: list[str] = field(default_factory=list)

    @property
    def stored_accuracy(self) -> float | None:
        metrics = self.checkpoint["metrics"]
        return metrics.get("test_accuracy") if metrics else None


def checkpoint_data(checkpoint: dict, source: str | None = None, stored_data: str = "any", **overrides) -> LabData:
    """The test data a checkpoint is scored on: its stored data settings, with ``source`` (and any ``classes`` /
    ``per_class`` given) replacing the stored ones; images normalised as in training.

    ``stored_data="builtin only"`` (a grader's run) reads the data a file names only when that is the built-in set:
    a submission must not make the grader's machine read, or list, a folder of its choosing."""
    stored = checkpoint["data"]["config"] if checkpoint["data"] else None
    if stored is None and source is None:
        raise LabError("this checkpoint stores no data settings (a bare state dict); pass --data SOURCE")
    try:
        config = DataConfig(**stored) if stored else DataConfig()
    except TypeError as err:
        raise LabError(f"the checkpoint's data settings do not fit this labkit ({err}); pass --data SOURCE") from None
    if source is None and stored_data == "builtin only" and config.source != BUILTIN:
        raise LabError(
            f"it was trained on other data ({safe_text.printable(config.source, 80)}), which is not read from a "
            "submission: pass --data with the course's data to grade it"
        )
    changes = {k: v for k, v in overrides.items() if v is not None}
    if source is not None:
        changes["source"] = str(source)
    changes["image_size"] = checkpoint["model_config"]["image_size"]
    config = replace(config, **changes)
    if config.classes is not None:
        config = replace(config, classes=tuple(config.classes))
    data = load_data(config)
    norm = checkpoint["normalization"]
    return replace(data, mean=norm["mean"], std=norm["std"]) if norm else data


def evaluate_checkpoint(
    path: str | Path, source: str | None = None, stored_data: str = "any", **overrides
) -> Evaluation:
    """Rebuild the checkpoint at ``path`` and re-measure its test accuracy, with warnings where the result is not
    comparable with what it stores (another test split, other class names, a stored accuracy that differs)."""
    checkpoint = load_checkpoint(path)
    config = config_from_dict(checkpoint["model_config"])
    check_size(config)
    model = model_from_checkpoint(checkpoint)
    data = checkpoint_data(checkpoint, source, stored_data, **overrides)
    num_classes = checkpoint["model_config"]["num_classes"]
    if num_classes != len(data.classes):
        raise LabError(
            f"{path} was made for {num_classes} classes but the data has {len(data.classes)}; "
            "evaluate it on the data it was trained for"
        )
    with torch.inference_mode():
        loss, accuracy = evaluate(model, data.batches("test", eval_batch(config)))
    result = Evaluation(checkpoint, count_parameters(model), accuracy, loss, len(data.test))
    stored_fp = checkpoint["data"]["test_fingerprint"] if checkpoint["data"] else None
    stored = result.stored_accuracy
    if [str(c) for c in checkpoint["classes"]] != data.classes:
        result.warnings.append(
            f"its classes ({safe_text.printable(', '.join(map(str, checkpoint['classes'])), 80)}) are not the data's "
            f"({safe_text.printable(', '.join(data.classes), 80)}): each index is scored as the data's class"
        )
    if stored_fp and stored_fp != data.test_fingerprint:
        result.warnings.append(
            "the test split differs from the one this checkpoint was scored on "
            "(other data or split settings): accuracies are not comparable"
        )
    elif stored is not None and not (isinstance(stored, int | float) and math.isfinite(stored)):
        result.warnings.append(f"its stored accuracy is not a number ({safe_text.printable(stored, 40)})")
    elif stored is not None and abs(stored - accuracy) > 1e-9:
        result.warnings.append(
            f"stored accuracy {stored * 100:.2f}% differs from the re-measured {accuracy * 100:.2f}%"
        )
    return result
