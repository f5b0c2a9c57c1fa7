"""One checkpoint file that rebuilds the model: weights, config, data identity, metrics.

A checkpoint is one plain dict (only str, numbers, lists, dicts and tensors inside, so ``torch.load`` reads it with
``weights_only=True`` and never runs code from the file), made in one place, ``make_checkpoint``::

    format           "labkit-checkpoint"
    version          2
    model_state      {parameter name: tensor}, on the CPU
    model_config     {"kind": "vit" | "cnn", **the config's fields}: rebuilds the model (models.config_from_dict)
    preset           the preset's name ("reference" for a bare state dict of the lab's reference model)
    student_id       names the file: settings.checkpoint_name
    classes          class names, in label order
    train_config     the recipe (train.TrainConfig's fields), or None where unknown (a bare state dict)
    seed             the training seed, or None
    normalization    {"mean", "std"} of the training pixels in [0, 1] units, or None
    data             {"description", "config" (data.DataConfig's fields), "fingerprint", "test_fingerprint",
                      "sizes": {"train", "val", "test"}}, or None
    metrics          {"test_accuracy", "test_loss", "history" (train.History's fields)}, or None
    run_fingerprint  hash of model config + recipe + seed + data: the same run, or None
    versions         {"labkit", "torch", "torchvision", "python"} of the saving machine, or None
    created          local time of saving, ISO 8601, or None

A bare ``state_dict`` of the lab's reference model (what the lab's own code saves) is read into the same dict, with
None wherever the file says nothing. Saved by ``safe_write``:
whole or not at all, and a file from another run at the name is kept under a timestamped name, never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import platform
import re
import sys
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import torch
import torchvision
from torch import nn

from labkit import __version__
from labkit.data import LabData
from labkit.errors import LabError
from labkit.handin import safe_text
from labkit.handin.safe_write import shown, write_whole
from labkit.models import ModelConfig, build_model, config_from_dict, config_to_dict
from labkit.presets import get_preset
from labkit.settings import student_of
from labkit.sources import file_kind
from labkit.train import History, TrainConfig

FORMAT = "labkit-checkpoint"
VERSION = 3  # 3: the ViT config's locality start is one field, init
KEYS = (
    "format",
    "version",
    "model_state",
    "model_config",
    "preset",
    "student_id",
    "classes",
    "train_config",
    "seed",
    "normalization",
    "data",
    "metrics",
    "run_fingerprint",
    "versions",
    "created",
)


def run_fingerprint(model: ModelConfig, train: TrainConfig, seed: int, data_fingerprint: str) -> str:
    """Same settings on the same data -> same fingerprint: such a checkpoint may be reused or replaced."""
    spec = {"model": config_to_dict(model), "train": asdict(train), "seed": seed, "data": data_fingerprint}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Training:
    """What a training run adds to a checkpoint beyond the model: its recipe, seed, data and history."""

    train: TrainConfig
    seed: int
    data: LabData
    history: History


def make_checkpoint(
    model_state: dict[str, torch.Tensor],
    model_config: ModelConfig,
    preset: str,
    student_id: str,
    classes: list[str],
    training: Training | None = None,
) -> dict[str, Any]:
    """The checkpoint dict (see the module doc); without ``training``, everything only a run knows is None."""
    checkpoint = dict.fromkeys(KEYS) | {
        "format": FORMAT,
        "version": VERSION,
        "model_state": {k: v.detach().cpu() for k, v in model_state.items()},
        "model_config": config_to_dict(model_config),
        "preset": preset,
        "student_id": student_id,
        "classes": list(classes),
    }
    if training is None:
        return checkpoint
    data, history = training.data, training.history
    return checkpoint | {
        "train_config": asdict(training.train),
        "seed": training.seed,
        "normalization": {"mean": data.mean, "std": data.std},
        "data": {
            "description": data.description,
            "config": asdict(data.config),
            "fingerprint": data.fingerprint,
            "test_fingerprint": data.test_fingerprint,
            "sizes": {"train": len(data.train), "val": len(data.val) if data.val else 0, "test": len(data.test)},
        },
        "metrics": {
            "test_accuracy": history.final_accuracy,
            "test_loss": history.eval_loss[-1],
            "history": history.to_dict(),
        },
        "run_fingerprint": run_fingerprint(model_config, training.train, training.seed, data.fingerprint),
        "versions": {
            "labkit": __version__,
            "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__),
            "python": platform.python_version(),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def save_checkpoint(checkpoint: dict, path: str | Path, out: TextIO | None = None) -> Path:
    """Write ``checkpoint`` to ``path`` whole (``safe_write.write_whole``): a file of the same run there is
    replaced; any other file (another run's, or the user's own) is first kept under a timestamped name."""
    out = out or sys.stdout
    path = Path(path)

    def same_run(existing: Path) -> bool:
        saved = _fingerprint_of(existing)
        return saved is not None and saved == checkpoint["run_fingerprint"]

    kept = write_whole(path, lambda f: torch.save(checkpoint, f), replaceable=same_run, out=out)
    if kept is not None:
        print(f"! {shown(path)} held a different run; kept it as {shown(kept)}", file=out)
    print(f"✓ Model saved as {shown(path)}", file=out)
    return path


def _fingerprint_of(path: Path) -> str | None:
    try:
        return load_checkpoint(path)["run_fingerprint"]
    except LabError:
        return None


MAX_FILE_BYTES = 1 << 30  # 1 GiB: the reference model's checkpoint is about 22 MB


def _check_archive(path: Path) -> None:
    """Refuse, before torch reads it, a file that would make it allocate more than the file holds: torch.save writes
    an uncompressed zip, so a compressed entry (a small file unpacking to gigabytes) was crafted or repacked."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise LabError(f"{path} is {path.stat().st_size / 2**30:.1f} GiB, over the 1 GiB a lab checkpoint may be")
    if not zipfile.is_zipfile(path):
        return  # torch's legacy format: read as it is, never larger than the file
    try:
        with zipfile.ZipFile(path) as archive:
            packed = next((i.filename for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED), None)
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # torch.load reports the damage
    if packed is not None:
        raise LabError(
            f"{path} holds a compressed entry ({safe_text.printable(packed, 60)}), which torch.save never writes; "
            "save the model again with torch.save"
        )


def _check_tensors(checkpoint: dict, path: Path) -> None:
    """Refuse tensors that carry more memory than their shape needs (a view into a larger hidden storage)."""
    for name, tensor in checkpoint["model_state"].items():
        needed = tensor.numel() * tensor.element_size()
        if tensor.untyped_storage().nbytes() > needed + 64:
            raise LabError(
                f"{path}: tensor {safe_text.printable(name, 60)} of shape {tuple(tensor.shape)} carries "
                f"{tensor.untyped_storage().nbytes():,} bytes, more than its shape needs; save it again"
            )


def load_checkpoint(path: str | Path) -> dict:
    """Read a labkit checkpoint, or a bare ``state_dict`` of the lab's reference model (taken as the
    ``reference`` preset, the student id from the file name). Never unpickles code, and refuses files that would
    make it allocate more than they hold."""
    path = Path(path)
    if not path.is_file():
        kind = file_kind(path)
        where = kind if kind == "not found" else f"is {kind}"
        raise LabError(f"checkpoint {path} {where}; give the path of a .pth file saved by labkit")
    _check_archive(path)
    try:
        with warnings.catch_warnings():  # torch 2.1 warns about its own use of TypedStorage while loading
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # Newer torch names the refused global "GLOBAL posix.system", torch 2.1 "Unsupported class posix.system".
        found = re.search(r"(?:GLOBAL|Unsupported class) ([\w.]+)", str(err), re.IGNORECASE)
        if found:
            raise LabError(
                f"{path} refused: it carries pickled code or objects ({found.group(1)}), which were not run; only "
                "tensors and plain data are loaded (weights_only=True): save the state dict or a labkit checkpoint"
            ) from None
        raise LabError(
            f"{path} is not a readable checkpoint (not a torch.save file); save it with torch.save"
        ) from None
    except Exception as err:  # weights_only=True runs no code, so whatever else fails means an unreadable file
        reason = next(iter(str(err).splitlines()), "") or err.__class__.__name__
        empty = path.stat().st_size == 0
        raise LabError(
            f"{path} is not a readable checkpoint ({'an empty file' if empty else f'corrupt or truncated: {reason}'}); "
            "save it again with torch.save"
        ) from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        checkpoint = _checked(obj, path)
    elif isinstance(obj, dict) and "cls_token" in obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        checkpoint = _from_bare_state_dict(obj, path)
    else:
        raise LabError(
            f"{path} is neither a labkit checkpoint nor a state dict of the lab's ViT; "
            "save it with `python -m labkit train` or torch.save(model.state_dict(), path)"
        )
    _check_tensors(checkpoint, path)
    return checkpoint


def _checked(checkpoint: dict, path: Path) -> dict:
    """The checkpoint, if it has the documented shape; else a LabError naming what is wrong."""
    if checkpoint.get("version") != VERSION:
        raise LabError(f"{path} was saved by another labkit version ({checkpoint.get('version')!r}); retrain it")
    missing = [key for key in KEYS if key not in checkpoint]
    if missing:
        raise LabError(f"{path} is a damaged labkit checkpoint: it lacks {', '.join(missing)}; save it again")
    state = checkpoint["model_state"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LabError(f"{path} is a damaged labkit checkpoint: model_state is not a dict of tensors; save it again")
    for key in ("model_config", "data", "metrics", "normalization", "train_config"):
        if not (checkpoint[key] is None and key != "model_config") and not isinstance(checkpoint[key], dict):
            raise LabError(f"{path} is a damaged labkit checkpoint: {key} is not a dict; save it again")
    return checkpoint


def _from_bare_state_dict(state: dict, path: Path) -> dict:
    """The lab's reference code saves only ``model.state_dict()``: read as the reference preset's model, with as
    many classes as its head has."""
    config = get_preset("reference").model
    head = state.get("mlp_head.1.weight")
    if isinstance(head, torch.Tensor) and head.ndim == 2:
        config = replace(config, num_classes=head.shape[0])
    classes = [str(c) for c in range(config.num_classes)]
    return make_checkpoint(state, config, "reference", student_of(path), classes)


def model_from_checkpoint(checkpoint: dict) -> nn.Module:
    """Rebuild the model from the stored config and load the weights; a mismatch is a one-line LabError that
    names the first differing parameter, not the whole list."""
    model = build_model(config_from_dict(checkpoint["model_config"]))
    expected, state = model.state_dict(), checkpoint["model_state"]
    wrong = [k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape]
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    problems = []
    if wrong:
        k = sorted(wrong)[0]
        problems.append(
            f"{len(wrong)} shapes differ, e.g. {k}: {tuple(state[k].shape)} in the file, "
            f"{tuple(expected[k].shape)} in the model"
        )
    if missing:
        problems.append(f"{len(missing)} missing, e.g. {missing[0]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
    if problems:
        raise LabError(
            f"checkpoint weights do not fit its {checkpoint['preset']!r} model ({'; '.join(problems)}); "
            "it was saved from another architecture"
        )
    model.load_state_dict(state)
    return model.eval()
