"""One checkpoint file that rebuilds the model: weights, config, data identity, metrics.

Saved atomically (temp file + rename), so a crash never leaves a broken file; loaded with
``torch.load(weights_only=True)``, so loading never runs code from the file. A file from another
run is never overwritten: it is kept under a timestamped name.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import re
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

import torch
import torchvision
from torch import nn

from labkit import __version__
from labkit.data import LabData
from labkit.errors import LabError
from labkit.presets import ModelConfig, build_model, config_from_dict, config_to_dict, get_preset
from labkit.train import History, TrainConfig

FORMAT = "labkit-checkpoint"
VERSION = 1


def checkpoint_name(student_id: str) -> str:
    """The lab's file name: ``<student_id>_vit.pth``."""
    if not student_id or any(c in student_id for c in '/\\:*?"<>|') or student_id.startswith("."):
        raise LabError(f"student id {student_id!r} cannot be part of a file name; use letters, digits, - or _")
    return f"{student_id}_vit.pth"


def run_fingerprint(model: ModelConfig, train: TrainConfig, seed: int, data_fingerprint: str) -> str:
    """Same settings on the same data -> same fingerprint: such a checkpoint may be reused or replaced."""
    spec = {"model": config_to_dict(model), "train": asdict(train), "seed": seed, "data": data_fingerprint}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def make_checkpoint(
    model: nn.Module, *, preset: str, train: TrainConfig, seed: int, data: LabData, history: History, student_id: str
) -> dict:
    config = model.config
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": config_to_dict(config),
        "train_config": asdict(train),
        "preset": preset,
        "student_id": student_id,
        "seed": seed,
        "classes": list(data.classes),
        "normalization": {"mean": data.mean, "std": data.std},
        "data": {
            "description": data.description,
            "config": asdict(data.config),
            "split_seed": data.config.split_seed,
            "fingerprint": data.fingerprint,
            "test_fingerprint": data.test_fingerprint,
            "sizes": {"train": len(data.train), "val": len(data.val) if data.val else 0, "test": len(data.test)},
        },
        "run_fingerprint": run_fingerprint(config, train, seed, data.fingerprint),
        "versions": {
            "labkit": __version__,
            "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__),
            "python": platform.python_version(),
        },
        "metrics": {
            "test_accuracy": history.final_accuracy,
            "test_loss": history.eval_loss[-1],
            "history": history.to_dict(),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def save_checkpoint(checkpoint: dict, path: str | Path, out: TextIO | None = None) -> Path:
    """Write ``checkpoint`` to ``path`` atomically, keeping any different run's file found there."""
    out = out or sys.stdout
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and _fingerprint_of(path) != checkpoint["run_fingerprint"]:
        kept = _free_name(path)
        path.rename(kept)
        print(f"! {path} held a different run; kept it as {kept}", file=out)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    print(f"✓ Model saved as {path}", file=out)
    return path


def _fingerprint_of(path: Path) -> str | None:
    try:
        return load_checkpoint(path)["run_fingerprint"]
    except LabError:
        return None


def _free_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    candidate, n = path.with_name(f"{path.stem}.{stamp}{path.suffix}"), 1
    while candidate.exists():
        candidate, n = path.with_name(f"{path.stem}.{stamp}-{n}{path.suffix}"), n + 1
    return candidate


def load_checkpoint(path: str | Path) -> dict:
    """Read a labkit checkpoint, or a bare ``state_dict`` of the lab's reference model (taken as the
    ``seed`` preset, the student id from the file name). Never unpickles code."""
    path = Path(path)
    if not path.is_file():
        raise LabError(f"checkpoint {path} not found; give the path of a .pth file saved by labkit")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if found:
            raise LabError(
                f"{path} refused: it carries pickled code or objects ({found.group(1)}); only tensors and plain "
                "data are loaded (weights_only=True), so save the state dict or a labkit checkpoint"
            ) from None
        raise LabError(
            f"{path} is not a readable checkpoint (not a torch.save file); save it with torch.save"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise LabError(
            f"{path} is not a readable checkpoint (corrupt or truncated: {str(err).splitlines()[0]}); "
            "save it again with torch.save"
        ) from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return obj
    if isinstance(obj, dict) and "cls_token" in obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return _from_bare_state_dict(obj, path)
    raise LabError(
        f"{path} is neither a labkit checkpoint nor a state dict of the lab's ViT; "
        "save it with `python -m labkit train` or torch.save(model.state_dict(), path)"
    )


def _from_bare_state_dict(state: dict, path: Path) -> dict:
    seed = get_preset("seed")
    head = state.get("mlp_head.1.weight")
    num_classes = head.shape[0] if isinstance(head, torch.Tensor) and head.ndim == 2 else seed.model.num_classes
    config = config_to_dict(seed.model) | {"num_classes": num_classes}
    student = path.stem.removesuffix("_vit")
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_state": state,
        "model_config": config,
        "preset": "seed",
        "student_id": student,
        "classes": [str(c) for c in range(num_classes)],
        "normalization": None,
        "data": None,
        "metrics": None,
        "run_fingerprint": None,
    }


def model_from_checkpoint(checkpoint: dict) -> nn.Module:
    """Rebuild the model from the stored config and load the weights; a shape mismatch is a LabError."""
    model = build_model(config_from_dict(checkpoint["model_config"]))
    try:
        model.load_state_dict(checkpoint["model_state"])
    except RuntimeError as err:
        first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise LabError(
            f"checkpoint weights do not fit its {checkpoint['preset']!r} model ({first}); "
            "it was saved from another architecture"
        ) from None
    return model.eval()
