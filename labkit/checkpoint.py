"""One checkpoint file that rebuilds the model: weights, config, data identity, metrics.

A checkpoint is one plain dict (only str, numbers, lists, dicts and tensors inside, so ``torch.load`` reads it with
``weights_only=True`` and never runs code from the file), made in one place, ``make_checkpoint``::

    format           "labkit-checkpoint"
    version          2
    model_state      {parameter name: tensor}, on the CPU
    model_config     {"kind": "vit" | "cnn", **the config's fields}: rebuilds the model (models.config_from_dict)
    preset           the preset's name ("seed" for a bare state dict of the lab's reference model)
    student_id       names the file: <student_id>_vit.pth
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
None wherever the file says nothing. Saved atomically (temp file + rename), so a crash never leaves a broken file.
A file from another run is never overwritten: it is kept under a timestamped name.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import itertools
import json
import os
import pickle
import platform
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import torch
import torchvision
from torch import nn

from labkit import __version__
from labkit.data import LabData
from labkit.errors import LabError
from labkit.models import ModelConfig, build_model, config_from_dict, config_to_dict
from labkit.train import History, TrainConfig
from labkit.vit import ViTConfig

FORMAT = "labkit-checkpoint"
VERSION = 2  # 2: one checkpoint shape for every producer; SPT's parameters renamed (see _upgrade)


MAX_ID = 100  # characters of a student id: the file name, its temp and kept variants stay under 255 bytes


def checkpoint_name(student_id: str) -> str:
    """The lab's file name: ``<student_id>_vit.pth``."""
    bad = not student_id or student_id.startswith(".") or any(c in student_id for c in '/\\:*?"<>|')
    if bad or not student_id.isprintable() or len(student_id) > MAX_ID:
        raise LabError(
            f"student id {student_id[:40]!r}{'...' if len(student_id) > 40 else ''} cannot be part of a file name; "
            f"use up to {MAX_ID} letters, digits, - or _"
        )
    return f"{student_id}_vit.pth"


def check_writable(path: str | Path) -> Path:
    """Check, before anything is trained, that a checkpoint can be written at ``path``: its folder exists or can
    be made, is a folder, takes new files, and the file name is not too long. A LabError names what is wrong."""
    path = Path(path)
    if path.parent.exists() and not path.parent.is_dir():
        raise LabError(f"output folder {path.parent} is a file; give a folder with --out")
    if path.is_dir():
        raise LabError(f"{path} is a folder; the checkpoint needs its name free")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise LabError(f"cannot write {path} ({err.strerror or err}); choose another --out folder") from None
    return path


def readable_as_new_file(path: str | Path) -> None:
    """Give a file made by mkstemp (mode 0600) the mode a new file gets under the user's umask, so that a grader
    who is another user can read what the student hands in, where the umask allows it."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def rescue_folder() -> Path:
    """Where a trained model goes when its own folder fails at the last moment: a per-user folder that outlives
    the run (the system's temp folder if even that cannot be made)."""
    folder = Path.home() / ".cache" / "labkit" / "rescued"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    except OSError:
        return Path(tempfile.gettempdir())


def run_fingerprint(model: ModelConfig, train: TrainConfig, seed: int, data_fingerprint: str) -> str:
    """Same settings on the same data -> same fingerprint: such a checkpoint may be reused or replaced."""
    spec = {"model": config_to_dict(model), "train": asdict(train), "seed": seed, "data": data_fingerprint}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def make_checkpoint(
    model_state: dict[str, torch.Tensor],
    model_config: ModelConfig,
    *,
    preset: str,
    student_id: str,
    classes: list[str],
    train: TrainConfig | None = None,
    seed: int | None = None,
    data: LabData | None = None,
    history: History | None = None,
) -> dict[str, Any]:
    """The checkpoint dict (see the module doc); what the caller does not know is None."""
    trained = train is not None and seed is not None and data is not None and history is not None
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_state": {k: v.detach().cpu() for k, v in model_state.items()},
        "model_config": config_to_dict(model_config),
        "preset": preset,
        "student_id": student_id,
        "classes": list(classes),
        "train_config": asdict(train) if train is not None else None,
        "seed": seed,
        "normalization": {"mean": data.mean, "std": data.std} if data is not None else None,
        "data": {
            "description": data.description,
            "config": asdict(data.config),
            "fingerprint": data.fingerprint,
            "test_fingerprint": data.test_fingerprint,
            "sizes": {"train": len(data.train), "val": len(data.val) if data.val else 0, "test": len(data.test)},
        }
        if data is not None
        else None,
        "metrics": {
            "test_accuracy": history.final_accuracy,
            "test_loss": history.eval_loss[-1],
            "history": history.to_dict(),
        }
        if history is not None
        else None,
        "run_fingerprint": run_fingerprint(model_config, train, seed, data.fingerprint) if trained else None,
        "versions": {
            "labkit": __version__,
            "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__),
            "python": platform.python_version(),
        }
        if trained
        else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z") if trained else None,
    }


LOCK_WAIT = 60.0  # seconds to wait for another process saving to the same path
LOCK_STALE = 30.0  # a lock this old belongs to a process that died (the locked step takes well under a second)
TEMP_STALE = 3600.0  # a temp file this old, or whose process is gone, is the remains of a killed save


def save_checkpoint(checkpoint: dict, path: str | Path, out: TextIO | None = None) -> Path:
    """Write ``checkpoint`` to ``path``, safe against crashes and against other processes saving there too.

    The file is written in full to a temp file first; then, holding a lock on the name, a file of the same run
    at ``path`` is replaced, and any other file there (another run's, or the user's own) is first kept under a
    timestamped name, so ``path`` is never missing and nothing is lost."""
    out = out or sys.stdout
    path = check_writable(path)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
        readable_as_new_file(tmp)
        with _locked(path):
            if os.path.lexists(path):
                saved = _fingerprint_of(path)
                if saved is None or saved != checkpoint["run_fingerprint"]:
                    kept = _keep_aside(path)
                    print(f"! {shown(path)} held a different run; kept it as {shown(kept)}", file=out)
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    print(f"✓ Model saved as {shown(path)}", file=out)
    return path


def shown(path: Path) -> str:
    """A path as a user reads it: relative to the working folder when it lies inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@contextlib.contextmanager
def _locked(path: Path):
    """Hold ``.<name>.lock`` beside ``path`` (created with O_EXCL, so one process at a time) while inside."""
    lock = path.with_name(f".{path.name}.lock")
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime > LOCK_STALE:
                    lock.unlink(missing_ok=True)  # left by a process that was killed while saving
                    continue
            except FileNotFoundError:
                continue
            if time.monotonic() > deadline:
                raise LabError(
                    f"another save to {path} has held {lock} for a minute; delete it if none is running"
                ) from None
            time.sleep(0.02)
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def _keep_aside(path: Path) -> Path:
    """A copy of the file at ``path`` under a free timestamped name, claimed atomically (a hard link, or a copy
    where links are not supported); ``path`` itself stays in place until the caller replaces it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    for n in itertools.count():
        candidate = path.with_name(f"{path.stem}.{stamp}{f'-{n}' if n else ''}{path.suffix}")
        try:
            os.link(path, candidate)
            return candidate
        except FileExistsError:
            continue
        except OSError:
            try:
                with open(path, "rb") as src, open(candidate, "xb") as dst:
                    shutil.copyfileobj(src, dst)
                return candidate
            except FileExistsError:
                continue
    raise AssertionError("unreachable")


def _remove_stale_temps(path: Path) -> None:
    """Remove temp files of this name left by saves that were killed mid-write: their process is gone, or they
    are over an hour old. A temp file of a save still running elsewhere is left alone."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name.removeprefix(f".{path.name}.").split(".")[0]
        try:
            stale = time.time() - tmp.stat().st_mtime > TEMP_STALE or (pid.isdigit() and not _alive(int(pid)))
            if stale:
                tmp.unlink()
        except OSError:
            continue


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap check elsewhere: the age rule applies
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fingerprint_of(path: Path) -> str | None:
    try:
        return load_checkpoint(path)["run_fingerprint"]
    except LabError:
        return None


def load_checkpoint(path: str | Path) -> dict:
    """Read a labkit checkpoint, or a bare ``state_dict`` of the lab's reference model (taken as the
    ``seed`` preset, the student id from the file name). Never unpickles code."""
    path = Path(path)
    if not path.is_file():
        raise LabError(f"checkpoint {path} not found; give the path of a .pth file saved by labkit")
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
        return _checked(_upgrade(obj), path)
    if isinstance(obj, dict) and "cls_token" in obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return _from_bare_state_dict(obj, path)
    raise LabError(
        f"{path} is neither a labkit checkpoint nor a state dict of the lab's ViT; "
        "save it with `python -m labkit train` or torch.save(model.state_dict(), path)"
    )


# Version 1 kept SPT's LayerNorm and Linear in a sub-module; version 2 puts every patch embedding's cut at index 0.
_V1_NAMES = {
    "to_patch_embedding.to_tokens.0.": "to_patch_embedding.1.",
    "to_patch_embedding.to_tokens.1.": "to_patch_embedding.2.",
}


def _upgrade(checkpoint: dict) -> dict:
    """A version-1 checkpoint in version 2's shape (the same numbers; names and keys as version 2 has them)."""
    if checkpoint.get("version") != 1:
        return checkpoint
    state = checkpoint.get("model_state")
    if isinstance(state, dict):
        renamed = {}
        for name, tensor in state.items():
            old = next((o for o in _V1_NAMES if isinstance(name, str) and name.startswith(o)), None)
            renamed[name if old is None else _V1_NAMES[old] + name.removeprefix(old)] = tensor
        checkpoint["model_state"] = renamed
    if isinstance(checkpoint.get("data"), dict):
        checkpoint["data"].pop("split_seed", None)  # stored twice in version 1; the data config holds it
    return {**{key: None for key in KEYS}, **checkpoint, "version": VERSION}


KEYS = ("format", "version", "model_state", "model_config", "preset", "student_id", "classes", "train_config",
        "seed", "normalization", "data", "metrics", "run_fingerprint", "versions", "created")  # fmt: skip


def _checked(checkpoint: dict, path: Path) -> dict:
    """The checkpoint, if it has the documented shape; else a LabError naming what is wrong."""
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
    """The lab's reference code saves only ``model.state_dict()``: read as the seed model (the ViT's defaults)."""
    head = state.get("mlp_head.1.weight")
    config = ViTConfig()
    if isinstance(head, torch.Tensor) and head.ndim == 2:
        config = ViTConfig(num_classes=head.shape[0])
    classes = [str(c) for c in range(config.num_classes)]
    return make_checkpoint(state, config, preset="seed", student_id=path.stem.removesuffix("_vit"), classes=classes)


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
        problems.append(f"{len(wrong)} shapes differ, e.g. {k}: {tuple(state[k].shape)} in the file, "
                        f"{tuple(expected[k].shape)} in the model")  # fmt: skip
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
