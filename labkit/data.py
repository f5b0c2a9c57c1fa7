"""The lab's data: a source split into train / (validation) / test (stratified, fixed by its own seed), batched."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from labkit.errors import LabError, check_fields
from labkit.lab import BUILTIN
from labkit.sources import load_source


@dataclass(frozen=True)
class DataConfig:
    source: str = BUILTIN  # a folder, an .npz, a dataset name, or the built-in set
    image_size: int = 28  # the model's input size; images are resized to it
    classes: tuple[int, ...] | None = None  # keep only these class indices
    per_class: int | None = None  # keep the first N images of each class
    test_fraction: float = 0.3  # the lab's 70/30 split
    val_fraction: float = 0.0  # carved from the training part for tuning; 0 keeps the lab's 1,260 / 540
    split_seed: int = 0  # fixes the split, independently of the training seed

    def __post_init__(self) -> None:
        if isinstance(self.classes, list):
            object.__setattr__(self, "classes", tuple(self.classes))  # lists come back from checkpoints
        check_fields(self, "data config")
        if self.image_size < 1 or (self.per_class is not None and self.per_class < 1):
            raise LabError(f"image_size {self.image_size} and per_class {self.per_class} must be at least 1")
        if not 0 < self.test_fraction < 1 or not 0 <= self.val_fraction < 1:
            raise LabError(f"test_fraction {self.test_fraction} must be in (0, 1) and val_fraction in [0, 1)")
        classes = [0] if self.classes is None else list(self.classes)
        if not classes or len(set(classes)) != len(classes) or min(classes) < 0:
            raise LabError(f"classes {classes} must name each class index once, e.g. 0,1,2")
        if not 0 <= self.split_seed < 2**63:
            raise LabError(f"split_seed {self.split_seed} must be from 0 to 2**63 - 1")


@dataclass
class Split:
    x: torch.Tensor  # uint8, N x 1 x S x S
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class LabData:
    train: Split
    val: Split | None
    test: Split
    classes: list[str]
    mean: float  # pixel statistics of the training part, in [0, 1] units
    std: float
    description: str  # where the images came from
    stored: str  # what they are as stored: format, size, colour
    stored_values: float  # values of a stored image, on average: pixels, times 3 in colour
    config: DataConfig

    @property
    def test_fingerprint(self) -> str:
        """sha256 of the test images and labels: tells whether two runs were scored on the same test set."""
        return fingerprint(self.test)

    @property
    def fingerprint(self) -> str:
        """sha256 of every split: tells whether two runs saw the same data."""
        parts = [fingerprint(s) for s in (self.train, self.val, self.test) if s is not None]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (..., C, H, W) as the model sees them: in [0, 1], then standardised by the training pixels."""
        return normalise(images, self.mean, self.std)

    def split(self, part: str) -> Split:
        split = {"train": self.train, "val": self.val, "test": self.test}[part]
        if split is None:
            raise LabError("no validation split: set val_fraction above 0 in the data config")
        return split

    def batches(
        self, part: str, batch_size: int = 64, augment: str = "none", seed: int = 0, device: torch.device | str = "cpu"
    ) -> Batches:
        """Batches of normalised images and labels; only the training part is shuffled (by ``seed``) and augmented."""
        return Batches(self, part, batch_size, augment, seed, device)


class Batches:
    """One split as (images, labels) batches, each made in one tensor operation: a per-image Dataset is slower."""

    def __init__(self, data: LabData, part: str, batch_size: int, augment: str, seed: int, device: torch.device | str):
        split, self.shuffle = data.split(part), part == "train"
        self.x, self.y = split.x.to(device), split.y.to(device)
        self.mean, self.std, self.batch_size = data.mean, data.std, batch_size
        self.augment = augment if self.shuffle else "none"
        self.generator = torch.Generator().manual_seed(seed)  # on the CPU: the same draws on every device

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __iter__(self):
        n = len(self.y)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size].to(self.x.device)
            x = self.x[idx]
            if self.augment != "none":
                x = augment_batch(x, self.augment, self.generator)
            yield normalise(x, self.mean, self.std), self.y[idx]


def max_shift(size: int) -> int:
    """The largest random translation: ±2 px on 28 px images, scaled with the size; label-preserving for lab data."""
    return max(1, round(size / 14))


def normalise(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return (images.float() / 255.0 - mean) / std


def augment_batch(x: torch.Tensor, augment: str, generator: torch.Generator) -> torch.Tensor:
    """Each image of a uint8 batch shifted by its own offset (zero-filled), and with "shift+flip" mirrored or not."""
    b, c, h, w = x.shape
    s = max_shift(h)
    offsets = torch.randint(0, 2 * s + 1, (2, b, 1), generator=generator).to(x.device)
    rows = offsets[0] + torch.arange(h, device=x.device)  # (b, h): which padded row lands on each output row
    cols = offsets[1] + torch.arange(w, device=x.device)
    padded = F.pad(x, (s, s, s, s))
    batch, channel = torch.arange(b, device=x.device), torch.arange(c, device=x.device)
    x = padded[batch[:, None, None, None], channel[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
    if augment == "shift+flip":
        flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


def fingerprint(split: Split) -> str:
    h = hashlib.sha256(str(tuple(split.x.shape)).encode())
    h.update(split.x.contiguous().numpy().tobytes())
    h.update(split.y.numpy().astype("int64").tobytes())
    return h.hexdigest()


def load_data(config: DataConfig) -> LabData:
    classes = list(config.classes) if config.classes else None
    src = load_source(config.source, config.image_size, classes, config.per_class)
    if len(src.classes) < 2 or (torch.bincount(src.y, minlength=len(src.classes)) > 0).sum() < 2:
        raise LabError(f"{src.description} has only one class; a classifier needs at least two")
    parts = split_indices(src.y, config.test_fraction, config.val_fraction, config.split_seed, src.classes)
    train, val, test = (None if idx is None else Split(src.x[idx], src.y[idx]) for idx in parts)
    pixels = train.x.float() / 255.0
    mean, std = pixels.mean().item(), pixels.std().item()
    return LabData(train, val, test, src.classes, mean, std, src.description, src.stored, src.stored_values, config)


def split_indices(y: torch.Tensor, test_fraction: float, val_fraction: float, seed: int, classes: list[str]):
    """Stratified (train, val or None, test) index tensors: per class, a seeded shuffle, then cut."""
    generator = torch.Generator().manual_seed(seed)
    train, val, test = [], [], []
    needed = 3 if val_fraction else 2
    for c in range(len(classes)):
        idx = (y == c).nonzero().flatten()
        if len(idx) == 0:
            continue
        if len(idx) < needed:
            fix = f"a stratified split needs at least {needed} per class; add images or drop the class"
            raise LabError(f"class {classes[c]!r} has {len(idx)} image(s); {fix}")
        idx = idx[torch.randperm(len(idx), generator=generator)]
        n_test = min(max(1, round(len(idx) * test_fraction)), len(idx) - needed + 1)
        rest = idx[n_test:]
        n_val = min(max(1, round(len(rest) * val_fraction)), len(rest) - 1) if val_fraction else 0
        test.append(idx[:n_test])
        val.append(rest[:n_val])
        train.append(rest[n_val:])
    return torch.cat(train), (torch.cat(val) if val_fraction else None), torch.cat(test)
