"""A training run end to end (data, model, fit, checkpoint), the same lab log from the CLI and the notebooks."""

import io
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import torch
from torch import nn

from labkit.checkpoint import (
    Training,
    load_checkpoint,
    make_checkpoint,
    model_from_checkpoint,
    run_fingerprint,
    save_checkpoint,
)
from labkit.cnn import CNN
from labkit.data import DataConfig, LabData, load_data
from labkit.errors import LabError
from labkit.handin.safe_write import check_writable, rescue_folder, shown
from labkit.lab import LAB_EPOCHS, VIT_PRESET_NAMES
from labkit.metrics import EVAL_BATCH, correct
from labkit.models import build_model, fit_to_data, model_kind
from labkit.presets import Preset, get_preset
from labkit.settings import RunConfig, checkpoint_name
from labkit.small_data import GUIDANCE
from labkit.train import History, fit, pick_device, seed_everything


@dataclass
class Run:
    model: nn.Module  # on the CPU, in eval mode
    checkpoint: dict
    path: Path
    history: History
    trained: bool  # False when an existing checkpoint of the same run was loaded

    @property
    def test_accuracy(self) -> float:
        return self.checkpoint["metrics"]["test_accuracy"]


def begin(settings: RunConfig, vit_only: bool = False) -> Preset:
    """A notebook's first step: seed, print what reproduces the run and return the preset (``vit_only``: a ViT's)."""
    if vit_only and settings.preset not in VIT_PRESET_NAMES:
        raise LabError(f"the questions are about a ViT: set PRESET to one of {', '.join(VIT_PRESET_NAMES)}")
    seed_everything(settings.seed)
    print(f"seed {settings.seed} · device {pick_device()} · torch {torch.__version__}")
    return get_preset(settings.preset)


def data_for(settings: RunConfig, classes: tuple[int, ...] | None = None, per_class: int | None = None) -> LabData:
    """The data the settings name, at their preset's input size (``classes`` and ``per_class`` select from it)."""
    size = get_preset(settings.preset).model.image_size
    return load_data(DataConfig(source=settings.data, image_size=size, classes=classes, per_class=per_class))


def train_run(
    data: LabData,
    settings: RunConfig,
    device: str = "auto",
    reuse: bool = False,
    out: TextIO | None = None,
    progress: bool = True,
    log: bool = True,
    teacher: str | Path | None = None,
) -> Run:
    """Train the preset (taught by a CNN checkpoint) and save it, or with ``reuse`` load the same run's checkpoint."""
    out = out or sys.stdout
    p = get_preset(settings.preset)
    cnn = None if teacher is None else teacher_from(teacher, data, settings.preset)
    train_config = replace(p.recipe(settings.epochs, settings.augment), guidance=0.0 if cnn is None else GUIDANCE)
    model_config = fit_to_data(p.model, len(data.classes))
    path = check_writable(settings.out_dir / checkpoint_name(settings.student_id, model_kind(model_config)))
    device = pick_device(device)
    if reuse and path.is_file():
        try:
            saved = load_checkpoint(path)
        except LabError:
            saved = None
        fingerprint = run_fingerprint(model_config, train_config, settings.seed, data.fingerprint)
        if saved and saved["run_fingerprint"] == fingerprint:
            if log:
                print(f"✓ Loaded {shown(path)} (the same settings and data)", file=out)
            return Run(model_from_checkpoint(saved), saved, path, History(**saved["metrics"]["history"]), trained=False)
    model = build_model(model_config, settings.seed)
    log_out = out if log else io.StringIO()
    try:
        history = fit(model, data, train_config, settings.seed, device, out=log_out, progress=progress, teacher=cnn)
    except KeyboardInterrupt:
        raise LabError("training interrupted (Ctrl-C): nothing was saved") from None
    if not log:
        accuracy = f"final test accuracy {history.final_accuracy:.2%}"
        print(f"✓ {p.name}: {train_config.epochs} epochs in {history.seconds:.0f} s, {accuracy}", file=out)
    model.cpu().eval()
    # The stored score is the CPU's, whatever trained the model, so a grader's re-score on a CPU gives it back exactly.
    history.eval_accuracy[-1] = correct(model, data.batches("test", EVAL_BATCH)).float().mean().item()
    training = Training(train_config, settings.seed, data, history)
    checkpoint = make_checkpoint(model.state_dict(), model_config, p.name, settings.student_id, data.classes, training)
    try:
        path = save_checkpoint(checkpoint, path, out=out)
    except (OSError, LabError) as err:
        rescued = rescue_folder() / f"{time.strftime('%Y%m%d-%H%M%S')}-{path.name}"
        print(f"! could not save {shown(path)} ({err}); saving the trained model as {rescued} instead", file=out)
        path = save_checkpoint(checkpoint, rescued, out=out)
    except KeyboardInterrupt:
        raise LabError(f"interrupted (Ctrl-C) while saving: {shown(path)} was not written; train again") from None
    return Run(model, checkpoint, path, history, trained=True)


def variations(settings: RunConfig) -> dict[str, RunConfig]:
    """The runs that differ from ``settings`` in one choice left to the student: fewer epochs, or augmentation. At a
    constant rate a shorter run is this run's own earlier epoch, which the learning curves already show."""
    recipe = get_preset(settings.preset).recipe(settings.epochs, settings.augment)
    epochs = LAB_EPOCHS if recipe.epochs > LAB_EPOCHS else recipe.epochs // 2
    prefix = recipe.schedule == "constant" and not recipe.warmup
    found = {"epochs": replace(settings, epochs=epochs)} if epochs and not prefix else {}
    return found | {"augment": replace(settings, augment="none" if recipe.augment != "none" else "shift")}


def train_variant(data: LabData, settings: RunConfig, teacher: CNN | None = None) -> tuple[nn.Module, float]:
    """A model trained as ``settings`` say (taught by ``teacher``), silently, not saved; and its training seconds."""
    p = get_preset(settings.preset)
    model = build_model(fit_to_data(p.model, len(data.classes)), settings.seed)
    recipe = replace(p.recipe(settings.epochs, settings.augment), guidance=0.0 if teacher is None else GUIDANCE)
    seconds = fit(model, data, recipe, settings.seed, pick_device(), None, io.StringIO(), False, teacher).seconds
    return model.cpu().eval(), seconds


def teacher_from(path: str | Path, data: LabData, preset: str) -> CNN:
    """The CNN that teaches a ViT: a labkit checkpoint of the CNN, trained on exactly this data and split."""
    if preset not in VIT_PRESET_NAMES:
        raise LabError(f"a teacher teaches a ViT: choose one of the presets {', '.join(VIT_PRESET_NAMES)}")
    checkpoint = load_checkpoint(path)
    if checkpoint["model_config"].get("kind") != "cnn":
        raise LabError(f"{path} is not a CNN: train the teacher with `python -m labkit train --preset cnn`")
    if not checkpoint["data"] or checkpoint["data"]["fingerprint"] != data.fingerprint:
        raise LabError(f"{path} was trained on other data or another split: train the CNN on this data first")
    return model_from_checkpoint(checkpoint)
