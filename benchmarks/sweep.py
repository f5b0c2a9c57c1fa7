"""The full hyperparameter sweep around the fast preset, scored on a validation split (never the test split).

    python benchmarks/sweep.py            # the built-in set: labkit/results/sweep.csv
    python benchmarks/sweep.py --hard     # Fashion-MNIST 0-5 (benchmarks/sets.py): labkit/results/sweep_hard.csv

Both tables ship with labkit, so the QA notebook shows them without re-running (``labkit.sweep.read_table``). The
shipped tables were made side by side, one torch thread each (``OMP_NUM_THREADS=1``): their seconds compare rows
within a table, not with the benchmark's. About 11 minutes a table on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import replace
from pathlib import Path

from priors import NO_PRIOR
from sets import HARD

from labkit.data import DataConfig, load_data
from labkit.sweep import COLUMNS, REFERENCE_RECIPE, Variant, run_sweep, shipped

# The sweep chose the sizes and recipe before the locality priors were tried (priors.py): each variant runs with every
# prior off, whichever the preset now ships, and its first row is that model.
SWEPT = [
    Variant("fast without priors"),
    Variant("dim 32", {"dim": 32, "mlp_dim": 64}),  # widths keep the MLP at 2x the tokens, as the default does
    Variant("dim 128", {"dim": 128, "mlp_dim": 256}),
    Variant("depth 2", {"depth": 2}),
    Variant("depth 6", {"depth": 6}),
    Variant("heads 2", {"heads": 2}),
    Variant("heads 8", {"heads": 8}),
    Variant("patch 7", {"patch_size": 7}),
    Variant("mlp 256", {"mlp_dim": 256}),
    Variant("no shifted patches", {"shifted_patches": False}),
    Variant("with locality attention", {"locality_attention": True}),
    Variant("embeddings start at std 1", {"embedding_init_std": 1.0}),
    Variant("lr 1e-3", train={"lr": 1e-3}, recipe="lr 1e-3"),
    Variant("no shifts", train={"augment": "none"}, recipe="no augmentation"),
    Variant("shifts + flips", train={"augment": "shift+flip"}, recipe="+ flips"),
    Variant("no label smoothing", train={"label_smoothing": 0.0}, recipe="no smoothing"),
    Variant("constant LR, no warmup", train={"schedule": "constant", "warmup": 0}, recipe="constant LR"),
    Variant("reference recipe", train=REFERENCE_RECIPE, recipe="Adam 3e-4, plain"),
]
FULL_SWEEP = [replace(v, model=NO_PRIOR | v.model) for v in SWEPT]


def write_table(rows: list[dict], path: str | Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/sweep.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--hard", action="store_true", help="sweep the hard set (Fashion-MNIST 0-5 x 300)")
    parser.add_argument("--out", help="where to write the table (default: the shipped one for the set)")
    args = parser.parse_args(argv)
    out = args.out or str(shipped(args.hard))
    data = load_data(replace(HARD if args.hard else DataConfig(), val_fraction=0.2))
    write_table(run_sweep(FULL_SWEEP, data, out=sys.stdout), out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
