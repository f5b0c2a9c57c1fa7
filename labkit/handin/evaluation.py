"""Scoring a saved checkpoint on a test split, with warnings where its score is not comparable with the stored one."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from labkit.checkpoint import load_checkpoint, model_from_checkpoint
from labkit.data import DataConfig, LabData, load_data
from labkit.errors import LabError, has_type
from labkit.handin import safe_text
from labkit.handin.guard import check_size, eval_batch
from labkit.lab import BUILTIN
from labkit.metrics import evaluate
from labkit.models import config_from_dict, count_parameters

SPLIT_FIELDS = ("classes", "per_class", "test_fraction", "val_fraction", "split_seed")  # which images are the test


def fraction(value: object) -> float | None:
    """A stored accuracy as a number in [0, 1], or None if the file stores anything else there."""
    return float(value) if has_type(value, float) and 0 <= value <= 1 else None


@dataclass
class Evaluation:
    checkpoint: dict
    params: int  # of the rebuilt model
    accuracy: float  # re-measured on the test split
    loss: float
    test_size: int
    test_fingerprint: str
    warnings: list[str] = field(default_factory=list)

    @property
    def stored_accuracy(self) -> float | None:
        return (self.checkpoint["metrics"] or {}).get("test_accuracy")


def checkpoint_data(checkpoint: dict, source: str | None = None, lab_split: bool = False, **overrides) -> LabData:
    """The data a checkpoint is scored on, normalised as in training: ``source`` (a stored one only if built-in: a file
    must not choose what a grader's machine reads), split as the lab (``lab_split``) or as stored with ``overrides``."""
    stored = checkpoint["data"]["config"] if checkpoint["data"] else None
    if source is None and (stored or {}).get("source") != BUILTIN:
        if stored is None:
            raise LabError("this checkpoint stores no data settings (a bare state dict); pass --data SOURCE")
        where = safe_text.printable(stored["source"], 80)
        raise LabError(f"it was trained on {where}, which is not read from a checkpoint: pass --data with that data")
    changes = {"source": source or BUILTIN, "image_size": config_from_dict(checkpoint["model_config"]).image_size}
    if lab_split or stored is None:
        config = DataConfig(**changes)
    else:
        config = replace(DataConfig(**stored), **changes, **{k: v for k, v in overrides.items() if v is not None})
    data, norm = load_data(config), checkpoint["normalization"]
    return replace(data, mean=norm["mean"], std=norm["std"]) if norm else data


def evaluate_checkpoint(
    path: str | Path, source: str | None = None, lab_split: bool = False, **overrides
) -> Evaluation:
    """Rebuild the checkpoint at ``path`` and re-measure its test accuracy (see ``checkpoint_data``)."""
    checkpoint = load_checkpoint(path)
    config = config_from_dict(checkpoint["model_config"])
    check_size(config)
    model = model_from_checkpoint(checkpoint)
    data = checkpoint_data(checkpoint, source, lab_split, **overrides)
    if config.num_classes != len(data.classes):
        raise LabError(
            f"{path} was made for {config.num_classes} classes but the data has {len(data.classes)}; "
            "evaluate it on the data it was trained for"
        )
    with torch.inference_mode():
        loss, accuracy = evaluate(model, data.batches("test", eval_batch(config)))
    result = Evaluation(checkpoint, count_parameters(model), accuracy, loss, len(data.test), data.test_fingerprint)
    stored, found, score = checkpoint["data"], result.warnings, result.stored_accuracy
    if checkpoint["classes"] != data.classes:
        found.append(
            f"its classes ({safe_text.printable(', '.join(checkpoint['classes']), 80)}) are not the data's "
            f"({safe_text.printable(', '.join(data.classes), 80)}): each index is scored as the data's class"
        )
    kept = DataConfig(**stored["config"]) if stored else DataConfig()
    other = [f"{k}={getattr(kept, k)!r}" for k in SPLIT_FIELDS if getattr(kept, k) != getattr(DataConfig(), k)]
    if lab_split and other:
        other = safe_text.printable(", ".join(other), 120)
        found.append(f"it stores other split settings ({other}): scored on the lab's split")
    bad = sum(int((~torch.isfinite(t)).sum()) for t in checkpoint["model_state"].values() if t.is_floating_point())
    if bad:
        found.append(f"{bad:,} of its weights are NaN or infinite")
    if stored and stored["test_fingerprint"] and stored["test_fingerprint"] != data.test_fingerprint:
        found.append("its test split differs from the one it was scored on (other data or split): not comparable")
    elif score is not None and fraction(score) is None:
        found.append(f"its stored accuracy is not a number ({safe_text.printable(score, 40)})")
    elif score is not None and abs(score - accuracy) > 1e-9:
        found.append(f"stored accuracy {score * 100:.2f}% differs from the re-measured {accuracy * 100:.2f}%")
    return result
