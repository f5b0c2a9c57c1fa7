"""The full hyperparameter sweep around the fast preset, one seed a row, scored on a validation split (never the test
split): what suggested the candidates of ``candidates.py``.

    python benchmarks/full_sweep.py            # the built-in set: results/sweep.csv
    python benchmarks/full_sweep.py --hard     # Fashion-MNIST 0-5 (sets.py): results/sweep_hard.csv

The stored tables were made side by side, one torch thread each (``OMP_NUM_THREADS=1``): their seconds compare rows
within a table, not with the benchmark's. About 11 minutes a table on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from priors import NO_PRIOR
from sets import clothes
from variants import OPTIONS, build

from labkit.data import DataConfig, LabData, load_data
from labkit.models import count_parameters, fit_to_data
from labkit.presets import get_preset
from labkit.train import fit

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ["variant", "dim", "depth", "heads", "patch", "mlp_dim", "recipe", "params", "val_accuracy", "seconds"]


@dataclass(frozen=True)
class Variant:
    name: str
    model: dict = field(default_factory=dict)  # changes to the fast preset's model config
    train: dict = field(default_factory=dict)  # changes to its recipe
    recipe: str = ""  # a word for the table; empty: the preset's own recipe


# The lab's reference recipe on the fast model: every training setting of the reference preset but its epochs and
# logging.
REFERENCE_RECIPE = {k: v for k, v in asdict(get_preset("reference").train).items() if k not in ("epochs", "log_every")}
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


def run_variant(variant: Variant, data: LabData, epochs: int | None = None, seed: int = 0) -> dict:
    """Train one variant of the fast preset on ``data.train`` and score it on ``data.val`` (its last epoch)."""
    p = get_preset("fast")
    model = build(fit_to_data(p.model, len(data.classes)), seed, variant.model)
    config = replace(p.model, **{k: v for k, v in variant.model.items() if k not in OPTIONS})
    train = replace(p.train, **variant.train, **({"epochs": epochs} if epochs else {}))
    history = fit(model, data, train, seed, eval_part="val", out=io.StringIO(), progress=False)
    return {
        "variant": variant.name,
        "dim": config.dim,
        "depth": config.depth,
        "heads": config.heads,
        "patch": config.patch_size,
        "mlp_dim": config.mlp_dim,
        "recipe": variant.recipe or "fast",
        "params": count_parameters(model),
        "val_accuracy": round(history.final_accuracy, 4),
        "seconds": round(history.seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/full_sweep.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--hard", action="store_true", help="sweep the hard set (Fashion-MNIST 0-5 x 300)")
    args = parser.parse_args(argv)
    out = RESULTS / ("sweep_hard.csv" if args.hard else "sweep.csv")
    data = load_data(replace(clothes() if args.hard else DataConfig(), val_fraction=0.2))
    rows = []
    for variant in FULL_SWEEP:
        rows.append(run_variant(variant, data))
        print(f"{variant.name:>26}: {rows[-1]['val_accuracy']:.1%}", flush=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
