"""A training run end to end: data, model, fit, checkpoint; or the saved one, when it matches.

This is what the CLI's ``train`` and the notebooks call, so both print the same lab log. ``variations`` gives the
runs that differ from one run in one of the settings a student chooses, which Question 7 trains beside it.
"""

from __future__ import annotations

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
from labkit.data import DataConfig, LabData, load_data
from labkit.errors import LabError
from labkit.handin.safe_write import check_writable, rescue_folder, shown
from labkit.lab import LAB_EPOCHS, VIT_PRESET_NAMES
from labkit.metrics import EVAL_BATCH, predict
from labkit.models import build_model, fit_to_data, model_kind
from labkit.presets import Preset, get_preset
from labkit.settings import RunConfig, checkpoint_name
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
    """A notebook's first step: seed everything from the settings, print what reproduces the run (seed, device,
    torch) and return the preset; ``vit_only`` for a notebook whose questions are about a ViT."""
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
) -> Run:
    """Train the settings' preset on ``data`` and save its checkpoint, ``<student_id>_vit.pth`` (``_cnn.pth`` for
    the CNN) in ``settings.out_dir``, printing the lab's log (``log=False``: one summary line instead, and nothing
    for a checkpoint loaded, where the log is not the point).

    With ``reuse``, a checkpoint already at that path from the same settings and data is loaded instead. The output
    is checked before training; if saving still fails at the end, the model is saved in ``rescue_folder()`` instead
    and that path is printed: a trained model is never thrown away. Ctrl-C stops with one line saying what was kept.
    """
    out = out or sys.stdout
    p = get_preset(settings.preset)
    train_config = p.recipe(settings.epochs, settings.augment)
    model_config = fit_to_data(p.model, len(data.classes))
    path = check_writable(settings.out_dir / checkpoint_name(settings.student_id, model_kind(model_config)))
    device = pick_device(device)
    if reuse and path.is_file():
        try:
            saved = load_checkpoint(path)
        except LabError:
            saved = None
        if saved and saved["run_fingerprint"] == run_fingerprint(
            model_config, train_config, settings.seed, data.fingerprint
        ):
            if log:
                print(f"✓ Loaded {shown(path)} (the same settings and data)", file=out)
            history = History(**saved["metrics"]["history"])
            return Run(model_from_checkpoint(saved), saved, path, history, trained=False)
    model = build_model(model_config, settings.seed)
    try:
        history = fit(
            model, data, train_config, settings.seed, device, out=out if log else io.StringIO(), progress=progress
        )
    except KeyboardInterrupt:
        raise LabError("training interrupted (Ctrl-C): nothing was saved") from None
    if not log:
        print(
            f"✓ {p.name}: {train_config.epochs} epochs in {history.seconds:.0f} s, final test accuracy "
            f"{history.final_accuracy:.2%}",
            file=out,
        )
    model.cpu().eval()
    # The stored score is the CPU's, whatever trained the model, so a grader's re-score on a CPU gives it back exactly.
    logits, labels = predict(model, data.batches("test", EVAL_BATCH))
    history.eval_accuracy[-1] = (logits.argmax(1) == labels).float().mean().item()
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
    """The runs that differ from ``settings`` in one choice the settings cell leaves to the student: fewer epochs
    (the lab's 20, or half of a run that trains 20 or fewer; none for a run of one epoch), and the other side of
    augmentation (none for a run that augments, shifts for one that does not)."""
    recipe = get_preset(settings.preset).recipe(settings.epochs, settings.augment)
    epochs = LAB_EPOCHS if recipe.epochs > LAB_EPOCHS else recipe.epochs // 2
    augment = "none" if recipe.augment != "none" else "shift"
    found = {"epochs": replace(settings, epochs=epochs)} if epochs else {}
    return found | {"augment": replace(settings, augment=augment)}


def train_variant(data: LabData, settings: RunConfig) -> nn.Module:
    """A model trained as ``settings`` say, silently and not saved: a comparison, not a hand-in."""
    p = get_preset(settings.preset)
    model = build_model(fit_to_data(p.model, len(data.classes)), settings.seed)
    fit(
        model,
        data,
        p.recipe(settings.epochs, settings.augment),
        settings.seed,
        pick_device(),
        eval_part=None,
        out=io.StringIO(),
        progress=False,
    )
    return model.cpu().eval()
