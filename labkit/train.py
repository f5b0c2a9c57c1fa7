"""The training loop, printing the lab's log in the reference run's format, line for line (scores: ``metrics.py``)."""

import random
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TextIO

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from labkit.cnn import CNN
from labkit.data import LabData
from labkit.errors import LabError, check_fields
from labkit.lab import AUGMENTATIONS
from labkit.metrics import EVAL_BATCH, evaluate
from labkit.small_data import Guidance
from labkit.threads import CpuThreads

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20  # the lab's reference budget (the fast preset trains longer)
    batch_size: int = 64  # 20 steps an epoch on the lab's 1,260 training images
    optimizer: str = "adamw"  # decoupled weight decay: the small-data ViT standard
    lr: float = 2e-3  # peak, after warmup; tied 1e-3 on validation, slightly ahead over 3 seeds
    weight_decay: float = 0.05  # regularises a model that has no convolutional prior
    warmup: float = 0.1  # fraction of all steps spent warming up linearly: the usual ViT choice, robust to epochs
    schedule: str = "cosine"  # "cosine" decays to 0 by the last step; "constant" is the reference recipe's
    label_smoothing: float = 0.1  # softer targets generalise better on 1,260 images
    augment: str = "shift"  # ±2 px translations: label-preserving for any lab data; "shift+flip" adds mirror images
    log_every: int = 10  # print a "Train Step" line every this many steps
    guidance: float = 0.0  # weight of a CNN teacher's locality guidance (small_data.py); 0: no teacher

    def __post_init__(self) -> None:
        check_fields(self, "training config")
        if self.epochs < 1 or self.batch_size < 1 or self.log_every < 1:
            raise LabError(f"invalid training config: epochs, batch_size and log_every must be at least 1 ({self})")
        choices = (("optimizer", self.optimizer, OPTIMIZERS), ("schedule", self.schedule, SCHEDULES))
        for word, value, known in (*choices, ("augmentation", self.augment, AUGMENTATIONS)):
            if value not in known:
                raise LabError(f"unknown {word} {value!r}; choose one of {', '.join(known)}")
        fractions = 0 <= self.label_smoothing < 1 and 0 <= self.warmup < 1
        if self.lr <= 0 or self.weight_decay < 0 or self.guidance < 0 or not fractions:
            need = "lr > 0, weight_decay >= 0, guidance >= 0, 0 <= label_smoothing < 1, 0 <= warmup < 1"
            raise LabError(f"invalid training config: need {need} ({self})")


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)  # mean training loss of each epoch
    train_accuracy: list[float] = field(default_factory=list)  # on the training batches as they passed (augmented)
    eval_loss: list[float] = field(default_factory=list)  # per epoch, on the evaluated split (none: not evaluated)
    eval_accuracy: list[float] = field(default_factory=list)  # fraction in [0, 1]
    seconds: float = 0.0  # wall time of the whole run

    @property
    def final_accuracy(self) -> float:
        """The last epoch's accuracy: the reported figure (never the best epoch's)."""
        return self.eval_accuracy[-1]

    def to_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    """Same seed, same machine -> the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str = "auto") -> torch.device:
    """The device to train on: "auto" takes a CUDA GPU, then Apple's MPS, then the CPU."""
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    if name == "auto":
        return torch.device(next(kind for kind, ok in available.items() if ok))
    try:
        device = torch.device(name)
    except RuntimeError:
        raise LabError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from None
    if not available.get(device.type, False):
        raise LabError(f"device {name!r} is not available on this machine; use --device auto (or cpu)")
    return device


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices only: shrinking norms, biases, [CLS] or positions regularises nothing (timm)."""
    exempt = set(getattr(model, "no_weight_decay", set)())
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or name in exempt else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, config: TrainConfig, steps_per_epoch: int, *extra: nn.Module):
    optimizer_class = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    groups = [group for m in (model, *extra) for group in parameter_groups(m, config.weight_decay)]
    optimizer = optimizer_class([g for g in groups if g["params"]], lr=config.lr)
    total = config.epochs * steps_per_epoch
    warmup = min(round(config.warmup * total), total - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if config.schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + np.cos(np.pi * (step - warmup) / max(1, total - warmup)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(
    model: nn.Module,
    data: LabData,
    config: TrainConfig,
    seed: int = 0,
    device: torch.device | str = "cpu",
    eval_part: str | None = "test",
    out: TextIO | None = None,
    progress: bool = True,
    teacher: CNN | None = None,
) -> History:
    """Train ``model`` (guided by ``teacher``), evaluating ``eval_part`` (None: never) per epoch, logging to ``out``."""
    if (teacher is None) != (config.guidance == 0):
        raise LabError("a teacher and a guidance weight go together: give both (--teacher) or neither")
    seed_everything(seed)
    model.to(device)
    guide = None if teacher is None else Guidance(model, teacher.to(device)).to(device)
    train_batches = data.batches("train", config.batch_size, config.augment, seed, device)
    eval_batches = None if eval_part is None else data.batches(eval_part, EVAL_BATCH, device=device)
    steps = len(train_batches)
    optimizer, scheduler = make_optimizer(model, config, steps, *([] if guide is None else [guide]))
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    history, start = History(), time.perf_counter()
    bar = tqdm(total=config.epochs * steps, desc="training", unit="step", leave=False, disable=not progress)
    log = partial(tqdm.write, file=out or sys.stdout)
    with CpuThreads(device) as threads:
        for epoch in range(config.epochs):
            threads.epoch()  # as many as the cores this process may use, less those other runs keep busy
            log(f"\nEpoch {epoch + 1}/{config.epochs}")
            model.train()
            # Summed on the device and read once an epoch: a .item() per step would wait for a GPU at every step.
            total_loss, correct = torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long)
            for step, (x, y) in enumerate(train_batches):
                logits = model(x)
                loss = criterion(logits, y) + (config.guidance * guide.loss(x) if guide is not None else 0)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total_loss += loss.detach() * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
                if step % config.log_every == 0:
                    log(f"Train Step {step}/{steps} - Loss: {loss.item():.4f}")
                bar.update()
            history.train_loss.append(total_loss.item() / len(data.train))
            history.train_accuracy.append(correct.item() / len(data.train))
            if eval_batches is not None:
                eval_loss, accuracy = evaluate(model, eval_batches, device)
                history.eval_loss.append(eval_loss)
                history.eval_accuracy.append(accuracy)
                log(f"✓ Evaluation - Avg Loss: {eval_loss:.4f}, Accuracy: {accuracy * 100:.2f}%")
        bar.close()
    if guide is not None:
        guide.remove()
    history.seconds = time.perf_counter() - start
    log(f"⌚ Total training time: {history.seconds:.2f} seconds")
    return history
