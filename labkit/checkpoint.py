"""One checkpoint file that rebuilds the model: a dict (KEYS, in docs/grading.md) of weights, config, data, metrics,
only plain data and tensors: ``torch.load(weights_only=True)`` reads it (or a bare ``state_dict``) running no code."""

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
from torch import nn

from labkit import __version__
from labkit.data import DataConfig, LabData
from labkit.errors import LabError, has_type
from labkit.handin import safe_text
from labkit.handin.safe_write import shown, write_whole
from labkit.models import ModelConfig, build_model, config_from_dict, config_to_dict
from labkit.presets import get_preset
from labkit.settings import student_of
from labkit.sources import file_kind
from labkit.train import History, TrainConfig

FORMAT = "labkit-checkpoint"
VERSION = 3  # 3: the ViT config's locality start is one field, init
# Every field, with the type it must have: a file is checked against these before anything reads it.
KINDS = dict(format=str, version=int, model_state=dict, model_config=dict, preset=str, student_id=str, classes=list)
KINDS |= dict(train_config=dict | None, seed=int | None, normalization=dict | None, data=dict | None)
KINDS |= dict(metrics=dict | None, run_fingerprint=str | None, versions=dict | None, created=str | None)
KEYS = tuple(KINDS)
MAX_FILE_BYTES = 1 << 30  # 1 GiB: the reference model's checkpoint is about 22 MB


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
    state = {k: v.detach().cpu() for k, v in model_state.items()}
    checkpoint = dict.fromkeys(KEYS) | dict(format=FORMAT, version=VERSION, model_state=state, preset=preset)
    checkpoint |= dict(model_config=config_to_dict(model_config), student_id=student_id, classes=list(classes))
    if training is None:
        return checkpoint
    data, hist, train, seed = training.data, training.history, training.train, training.seed
    sizes = {"train": len(data.train), "val": len(data.val) if data.val else 0, "test": len(data.test)}
    about = {"description": data.description, "config": asdict(data.config), "fingerprint": data.fingerprint}
    about |= {"test_fingerprint": data.test_fingerprint, "sizes": sizes}
    metrics = {"test_accuracy": hist.final_accuracy, "test_loss": hist.eval_loss[-1], "history": hist.to_dict()}
    versions = {"labkit": __version__, "torch": str(torch.__version__), "python": platform.python_version()}
    checkpoint |= dict(train_config=asdict(train), seed=seed, normalization={"mean": data.mean, "std": data.std})
    checkpoint |= dict(run_fingerprint=run_fingerprint(model_config, train, seed, data.fingerprint), versions=versions)
    return checkpoint | dict(data=about, metrics=metrics, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def save_checkpoint(checkpoint: dict, path: str | Path, out: TextIO | None = None) -> Path:
    """Write ``checkpoint`` whole: a file of the same run at ``path`` is replaced, any other kept aside first."""
    out, path = out or sys.stdout, Path(path)

    def same_run(existing: Path) -> bool:
        try:
            saved = load_checkpoint(existing)["run_fingerprint"]
        except LabError:  # not a checkpoint: the user's own file
            return False
        return saved is not None and saved == checkpoint["run_fingerprint"]

    kept = write_whole(path, lambda f: torch.save(checkpoint, f), replaceable=same_run, out=out)
    if kept is not None:
        print(f"! {shown(path)} held a different run; kept it as {shown(kept)}", file=out)
    print(f"✓ Model saved as {shown(path)}", file=out)
    return path


def _check_archive(path: Path) -> None:
    """Refuse a file that would make torch allocate more than it holds: torch.save never compresses a zip entry."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise LabError(f"{path} is {path.stat().st_size / 2**30:.1f} GiB, over the 1 GiB a lab checkpoint may be")
    try:
        with zipfile.ZipFile(path) as archive:
            packed = next((i.filename for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED), None)
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # torch's legacy format (never larger than the file), or damage that torch.load reports
    if packed is not None:
        raise LabError(
            f"{path} holds a compressed entry ({safe_text.printable(packed, 60)}), which torch.save never writes; "
            "save the model again with torch.save"
        )


def _check_state(state: dict, path: Path) -> None:
    """Named dense CPU tensors that carry no more memory than their shapes need (no view into a hidden storage)."""
    for name, tensor in state.items():
        shown = safe_text.printable(name, 60)
        if not isinstance(name, str):
            raise LabError(f"{path}: a tensor is named by {_a(name)} ({shown}); save it again")
        if tensor.layout != torch.strided or tensor.device.type != "cpu":
            raise LabError(
                f"{path}: tensor {shown} is a {str(tensor.layout).removeprefix('torch.')} {tensor.device.type} "
                "tensor, not a dense CPU one; save it again"
            )
        if tensor.untyped_storage().nbytes() > tensor.numel() * tensor.element_size() + 64:
            raise LabError(
                f"{path}: tensor {shown} of shape {tuple(tensor.shape)} carries "
                f"{tensor.untyped_storage().nbytes():,} bytes, more than its shape needs; save it again"
            )


def load_checkpoint(path: str | Path) -> dict:
    """A labkit checkpoint, or a bare ``state_dict`` as one; never unpickles code or allocates past the file's size."""
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
        if found := re.search(r"(?:GLOBAL|Unsupported class) ([\w.]+)", str(err), re.IGNORECASE):
            raise LabError(
                f"{path} refused: it carries pickled code or objects ({found.group(1)}), which were not run; only "
                "tensors and plain data are loaded (weights_only=True): save the state dict or a labkit checkpoint"
            ) from None
        raise LabError(
            f"{path} is not a readable checkpoint (not a torch.save file); save it with torch.save"
        ) from None
    except Exception as err:  # weights_only=True runs no code, so whatever else fails means an unreadable file
        reason = next(iter(str(err).splitlines()), "") or err.__class__.__name__
        why = "an empty file" if path.stat().st_size == 0 else f"corrupt or truncated: {reason}"
        raise LabError(f"{path} is not a readable checkpoint ({why}); save it again with torch.save") from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        _check_state(_checked(obj, path)["model_state"], path)
        return obj
    if isinstance(obj, dict) and "cls_token" in obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        _check_state(obj, path)  # what the lab's own code saves: the reference preset's model, with its head's classes
        config, head = get_preset("reference").model, obj.get("mlp_head.1.weight")
        if head is not None and head.ndim == 2:
            config = replace(config, num_classes=head.shape[0])
        return make_checkpoint(obj, config, "reference", student_of(path), [str(c) for c in range(config.num_classes)])
    raise LabError(
        f"{path} is neither a labkit checkpoint nor a state dict of the lab's ViT; "
        "save it with `python -m labkit train` or torch.save(model.state_dict(), path)"
    )


def _checked(checkpoint: dict, path: Path) -> dict:
    """The checkpoint, if every field has its documented type; else a LabError naming the first that has not."""
    if checkpoint.get("version") != VERSION:
        raise LabError(f"{path} was saved by another labkit version ({checkpoint.get('version')!r}); retrain it")

    def damaged(what: str) -> LabError:
        return LabError(f"{path} is a damaged labkit checkpoint: {safe_text.printable(what, 120)}; save it again")

    if missing := [key for key in KEYS if key not in checkpoint]:
        raise damaged(f"it lacks {', '.join(missing)}")
    for key, kind in KINDS.items():
        if not isinstance(checkpoint[key], kind) or isinstance(checkpoint[key], bool):
            raise damaged(f"{key} is {_a(checkpoint[key])}")
    if not all(isinstance(v, torch.Tensor) for v in checkpoint["model_state"].values()):
        raise damaged("model_state is not a dict of tensors")
    if not all(isinstance(c, str) for c in checkpoint["classes"]):
        raise damaged("classes holds names that are not text")
    norm = checkpoint["normalization"]
    if norm is not None and not (all(has_type(norm.get(k), float) for k in ("mean", "std")) and norm["std"] > 0):
        raise damaged("normalization is not a finite mean and a positive std")
    config_from_dict(checkpoint["model_config"])
    data = checkpoint["data"]
    if data is not None:
        if not isinstance(data.get("config"), dict) or not isinstance(data.get("test_fingerprint"), str | None):
            raise damaged("data lacks its config or its test fingerprint")
        try:
            DataConfig(**data["config"])
        except TypeError as err:
            raise damaged(f"its data config does not fit ({err})") from None
    return checkpoint


def _a(value: object) -> str:
    name = type(value).__name__
    return "None" if value is None else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def model_from_checkpoint(checkpoint: dict) -> nn.Module:
    """The model rebuilt with its weights; a mismatch is one line naming the first differing parameter, not the list."""
    model = build_model(config_from_dict(checkpoint["model_config"]))
    expected, state = model.state_dict(), checkpoint["model_state"]
    wrong = sorted(k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape)
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    shapes = {k: f": {tuple(state[k].shape)} in the file, {tuple(expected[k].shape)} in the model" for k in wrong}
    found = {"shapes differ": wrong, "missing": missing, "unexpected": unexpected}
    # each kind of mismatch counted and named by its first parameter (with both shapes where they differ), if any
    problems = [f"{len(keys)} {what}, e.g. {keys[0]}{shapes.get(keys[0], '')}" for what, keys in found.items() if keys]
    if problems:
        raise LabError(
            f"checkpoint weights do not fit its {checkpoint['preset']!r} model ({'; '.join(problems)}); "
            "it was saved from another architecture"
        )
    model.load_state_dict(state)
    return model.eval()
