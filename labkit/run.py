"""A training run end to end: data, model, fit, checkpoint; or the saved one, when it matches.

This is what the CLI's ``train`` and the notebooks call, so both print the same lab log.
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from torch import nn

from labkit.checkpoint import (
    check_writable,
    checkpoint_name,
    load_checkpoint,
    make_checkpoint,
    model_from_checkpoint,
    rescue_folder,
    run_fingerprint,
    save_checkpoint,
)
from labkit.data import DataConfig, LabData, load_data
from labkit.errors import LabError
from labkit.lab import outputs_dir
from labkit.models import build_model, fit_to_data
from labkit.presets import Preset, get_preset
from labkit.train import History, fit, pick_device


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


def data_for(preset: str | Preset, source: str = "builtin", **data_options) -> LabData:
    """The data at the preset's input size."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    return load_data(DataConfig(source=str(source), image_size=preset.model.image_size, **data_options))


def train_run(
    data: LabData,
    preset: str = "fast",
    epochs: int | None = None,
    augment: str | None = None,
    seed: int = 0,
    student_id: str = "student_id",
    out_dir: str | Path | None = None,
    device: str = "auto",
    reuse: bool = False,
    filename: str | None = None,
    out: TextIO | None = None,
    progress: bool = True,
    log: bool = True,
) -> Run:
    """Train ``preset`` on ``data`` and save ``<out_dir>/<student_id>_vit.pth``, printing the lab's log (``out_dir``
    defaults to ``lab.outputs_dir()``).

    ``epochs`` and ``augment`` override the preset's. ``log=False`` prints one summary line instead of the lab's
    log, for a second model whose log is not the point. With ``reuse``, a checkpoint already at that path from the
    same settings and data is loaded instead. ``filename`` replaces the lab's name (for a second model beside the
    ViT, such as the CNN baseline). The output is checked before training; if saving still fails at the end, the
    model is saved in ``rescue_folder()`` instead and that path is printed: a trained model is never thrown away.
    """
    out = out or sys.stdout
    p = get_preset(preset)
    train_config = p.recipe(epochs, augment)
    model_config = fit_to_data(p.model, len(data.classes))
    path = check_writable(Path(out_dir or outputs_dir()) / (filename or checkpoint_name(student_id)))
    device = pick_device(device)
    if reuse and path.is_file():
        try:
            saved = load_checkpoint(path)
        except LabError:
            saved = None
        if saved and saved["run_fingerprint"] == run_fingerprint(model_config, train_config, seed, data.fingerprint):
            print(f"✓ Loaded {path}: trained earlier with the same settings and data", file=out)
            history = History(**saved["metrics"]["history"])
            return Run(model_from_checkpoint(saved), saved, path, history, trained=False)
    model = build_model(model_config, seed)
    history = fit(model, data, train_config, seed, device, out=out if log else io.StringIO(), progress=progress)
    if not log:
        print(f"✓ {p.name}: {train_config.epochs} epochs in {history.seconds:.0f} s, final test accuracy "
              f"{history.final_accuracy:.2%}", file=out)  # fmt: skip
    model.cpu().eval()
    checkpoint = make_checkpoint(
        model.state_dict(), model_config, preset=p.name, student_id=student_id, classes=data.classes,
        train=train_config, seed=seed, data=data, history=history,
    )  # fmt: skip
    try:
        path = save_checkpoint(checkpoint, path, out=out)
    except (OSError, LabError) as err:
        rescued = rescue_folder() / f"{time.strftime('%Y%m%d-%H%M%S')}-{path.name}"
        print(f"! could not save {path} ({err}); saving the trained model as {rescued} instead", file=out)
        path = save_checkpoint(checkpoint, rescued, out=out)
    return Run(model, checkpoint, path, history, trained=True)
