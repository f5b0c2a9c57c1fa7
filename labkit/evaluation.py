"""Scoring a saved checkpoint on a test split, with the checks a grader needs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from labkit.checkpoint import load_checkpoint, model_from_checkpoint
from labkit.data import DataConfig, LabData, load_data
from labkit.errors import LabError
from labkit.metrics import EVAL_BATCH, evaluate
from labkit.models import count_parameters


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
        return metrics["test_accuracy"] if metrics else None


def checkpoint_data(checkpoint: dict, source: str | None = None, **overrides) -> LabData:
    """The test data a checkpoint is scored on: its stored data settings, with ``source`` (and any
    ``classes`` / ``per_class`` given) replacing the stored ones; images normalised as in training."""
    stored = checkpoint["data"]["config"] if checkpoint["data"] else None
    if stored is None and source is None:
        raise LabError("this checkpoint stores no data settings (a bare state dict); pass --data SOURCE")
    try:
        config = DataConfig(**stored) if stored else DataConfig()
    except TypeError as err:
        raise LabError(f"the checkpoint's data settings do not fit this labkit ({err}); pass --data SOURCE") from None
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


def evaluate_checkpoint(path: str | Path, source: str | None = None, **overrides) -> Evaluation:
    checkpoint = load_checkpoint(path)
    model = model_from_checkpoint(checkpoint)
    data = checkpoint_data(checkpoint, source, **overrides)
    num_classes = checkpoint["model_config"]["num_classes"]
    if num_classes != len(data.classes):
        raise LabError(
            f"{path} was made for {num_classes} classes but the data has {len(data.classes)}; "
            "evaluate it on the data it was trained for"
        )
    with torch.inference_mode():
        loss, accuracy = evaluate(model, data.batches("test", EVAL_BATCH))
    result = Evaluation(checkpoint, count_parameters(model), accuracy, loss, len(data.test))
    stored_fp = checkpoint["data"]["test_fingerprint"] if checkpoint["data"] else None
    if stored_fp and stored_fp != data.test_fingerprint:
        result.warnings.append(
            "the test split differs from the one this checkpoint was scored on "
            "(other data or split settings): accuracies are not comparable"
        )
    elif result.stored_accuracy is not None and abs(result.stored_accuracy - accuracy) > 1e-9:
        result.warnings.append(
            f"stored accuracy {result.stored_accuracy * 100:.2f}% differs from the re-measured {accuracy * 100:.2f}%"
        )
    return result
