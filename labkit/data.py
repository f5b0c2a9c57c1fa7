"""The lab's data: a source split into train / (validation) / test, normalised, batched.

The split is stratified and fixed by its own ``split_seed``, so changing the training seed never
moves an image between train and test. Normalisation statistics come from the training part only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from labkit.errors import LabError
from labkit.sources import BUILTIN, load_source

AUGMENTATIONS = ("none", "shift", "shift+flip")


@dataclass(frozen=True)
class DataConfig:
    source: str = BUILTIN  # a folder, an .npz, a dataset name, or the built-in set
    image_size: int = 28  # the model's input size; images are resized to it
    classes: tuple[int, ...] | None = None  # keep only these class indices
    per_class: int | None = None  # keep the first N images of each class
    test_fraction: float = 0.3  # the lab's 70/30 split
    val_fraction: float = 0.0  # carved from the training part for tuning; 0 keeps the lab's 1,260 / 540
    split_seed: int = 0  # fixes the split, independently of the training seed


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
    description: str
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

    def dataset(self, part: str, augment: str = "none") -> Dataset:
        split = {"train": self.train, "val": self.val, "test": self.test}[part]
        if split is None:
            raise LabError("no validation split: set val_fraction above 0 in the data config")
        return ImageDataset(split, self.mean, self.std, augment)

    def loader(self, part: str, batch_size: int = 64, augment: str = "none", seed: int = 0) -> DataLoader:
        """Batches of normalised float images; only the training part is shuffled (by ``seed``)."""
        shuffle = part == "train"
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return DataLoader(
            self.dataset(part, augment if shuffle else "none"),
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
        )


def fingerprint(split: Split) -> str:
    h = hashlib.sha256()
    h.update(str(tuple(split.x.shape)).encode())
    h.update(split.x.contiguous().numpy().tobytes())
    h.update(split.y.numpy().astype("int64").tobytes())
    return h.hexdigest()


class ImageDataset(Dataset):
    """uint8 images -> normalised float tensors, with the optional training augmentation."""

    def __init__(self, split: Split, mean: float, std: float, augment: str = "none"):
        if augment not in AUGMENTATIONS:
            raise LabError(f"unknown augmentation {augment!r}; choose one of {', '.join(AUGMENTATIONS)}")
        size = split.x.shape[-1]
        steps = []
        if augment != "none":
            # Shifts of up to ~10% of the side suit digits and clothes alike; flips only suit clothes and
            # textures. Padding with 0 (black, the background) happens before normalisation.
            steps.append(v2.RandomCrop(size, padding=max(1, round(size * 0.1))))
        if augment == "shift+flip":
            steps.append(v2.RandomHorizontalFlip())
        self.x = split.x.float() / 255.0  # converted once: per-sample transforms cost more than the model on CPU
        self.y, self.mean, self.std = split.y, mean, std
        self.augment = v2.Compose(steps) if steps else None

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        x = self.x[i] if self.augment is None else self.augment(self.x[i])
        return (x - self.mean) / self.std, self.y[i]


def load_data(config: DataConfig = DataConfig(), download_root: str | Path | None = None) -> LabData:
    """Read the source, split it, and compute the training part's pixel statistics."""
    images = load_source(
        config.source,
        config.image_size,
        list(config.classes) if config.classes else None,
        config.per_class,
        download_root,
    )
    counts = torch.bincount(images.y, minlength=len(images.classes))
    if len(images.classes) < 2 or (counts > 0).sum() < 2:
        raise LabError(f"{images.description} has only one class; a classifier needs at least two")
    parts = split_indices(images.y, config.test_fraction, config.val_fraction, config.split_seed, images.classes)
    train, val, test = (None if idx is None else Split(images.x[idx], images.y[idx]) for idx in parts)
    pixels = train.x.float() / 255.0
    return LabData(
        train, val, test, images.classes, pixels.mean().item(), pixels.std().item(), images.description, config
    )


def split_indices(y: torch.Tensor, test_fraction: float, val_fraction: float, seed: int, classes: list[str]):
    """Stratified (train, val or None, test) index tensors: per class, a seeded shuffle, then cut."""
    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1:
        raise LabError(f"test_fraction {test_fraction} must be in (0, 1) and val_fraction {val_fraction} in [0, 1)")
    generator = torch.Generator().manual_seed(seed)
    train, val, test = [], [], []
    needed = 3 if val_fraction else 2
    for c in range(len(classes)):
        idx = (y == c).nonzero().flatten()
        if len(idx) == 0:
            continue
        if len(idx) < needed:
            raise LabError(
                f"class {classes[c]!r} has {len(idx)} image(s); a stratified split needs at least "
                f"{needed} per class; add images or drop the class"
            )
        idx = idx[torch.randperm(len(idx), generator=generator)]
        n_test = min(max(1, round(len(idx) * test_fraction)), len(idx) - needed + 1)
        rest = idx[n_test:]
        n_val = min(max(1, round(len(rest) * val_fraction)), len(rest) - 1) if val_fraction else 0
        test.append(idx[:n_test])
        val.append(rest[:n_val])
        train.append(rest[n_val:])
    return torch.cat(train), (torch.cat(val) if val_fraction else None), torch.cat(test)
