"""Cheap changes to the default ViT that the small-data literature offers (locality priors at initialisation or in
the attention, averaging the weights, a higher learning rate), judged by their worst case against the CNN baseline
trained for the default's wall-clock, on all three development sets, several seeds each.

    python benchmarks/priors.py --jobs 2        # runs what benchmarks/results/priors.csv lacks; appends each run
    python benchmarks/priors.py --table         # mean ± std per set, the worse set, and the gap to the CNN

A run trains one variant on a development set's benchmark training part (1,260 images, 75 epochs of the default
recipe unless the variant changes it; 1.5-2 minutes on one core) and scores it once, on that set's held-out images
(``sets.DEVELOPMENT_SETS``: 1,200 digits, 6,000 clothes, 3,000 textures), which none of the benchmark's splits
contains: validation data, large enough that one seed's std is well under a point. ``--jobs 2`` runs two at a time,
one torch thread each: accuracies do not depend on it, and the seconds column is not used. The summary goes to
results/priors_summary.csv and benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch
from sets import DEVELOPMENT_SETS
from tables import RESULTS as TABLES
from tables import mean_table, write_block
from variants import build, fit_averaged

from labkit.data import load_data
from labkit.metrics import EVAL_BATCH, evaluate
from labkit.models import fit_to_data, model_kind
from labkit.presets import get_preset
from labkit.train import TrainConfig, fit
from labkit.vit import ViTConfig

RESULTS = Path(__file__).resolve().parent / "results" / "priors.csv"
FIELDS = ["variant", "set", "seed", "accuracy", "seconds"]
CNN = "CNN, 50 epochs (the default's wall-clock)"
BASELINE = "no prior (SPT only)"
# Every prior off: each ViT variant is the fast preset's sizes and recipe with these, then its own changes, so what a
# variant measured stays what its name says whichever priors the preset ships with.
NO_PRIOR = {
    "mimetic_init": False,
    "sincos_positions": False,
    "gpsa_blocks": 0,
    "diagonal_mask": False,
    "impulse_init": False,
}
MIMETIC_SINCOS = {"mimetic_init": True, "sincos_positions": True}  # the fast preset's init="locality"
DEFAULT = "mimetic + sin-cos positions"
# name: (preset, changes to its model config, changes to its recipe)
VARIANTS = {
    BASELINE: ("fast", {}, {}),
    CNN: ("cnn", {}, {"epochs": 50}),  # the benchmark's same-wall-clock CNN: 43-60 epochs, by machine and day
    "mimetic": ("fast", {"mimetic_init": True}, {}),
    "sin-cos positions": ("fast", {"sincos_positions": True}, {}),
    "mimetic + sin-cos positions": ("fast", MIMETIC_SINCOS, {}),
    "mimetic + sin-cos, lr 3e-3": ("fast", MIMETIC_SINCOS, {"lr": 3e-3}),
    "GPSA, first 2 blocks": ("fast", {"gpsa_blocks": 2}, {}),
    "GPSA, all 4 blocks": ("fast", {"gpsa_blocks": 4}, {}),
    "LSA's diagonal mask alone": ("fast", {"diagonal_mask": True}, {}),
    "impulse init": ("fast", {"impulse_init": True}, {}),
    "EMA of the weights (0.995)": ("fast", {}, {"ema": 0.995}),
    # The steadiest gain of the single changes, with each of the others that gained somewhere and lost nowhere.
    "mimetic + sin-cos + GPSA, first 2 blocks": ("fast", {**MIMETIC_SINCOS, "gpsa_blocks": 2}, {}),
    "mimetic + sin-cos + diagonal mask": ("fast", {**MIMETIC_SINCOS, "diagonal_mask": True}, {}),
    "mimetic + sin-cos + EMA (0.995)": ("fast", MIMETIC_SINCOS, {"ema": 0.995}),
}


def runs() -> list[dict]:
    if not RESULTS.exists():
        return []
    with RESULTS.open() as f:
        return list(csv.DictReader(f))


def settings(variant: str) -> tuple[object, dict, TrainConfig, float]:
    """What ``variant`` trains: its model config and the changes to it (variants.build), its recipe, and the decay of
    the moving average of its weights it keeps (0: none). A ViT variant starts from the fast preset with no prior."""
    preset, model_changes, recipe = VARIANTS[variant]
    p = get_preset(preset)
    changes = (NO_PRIOR | model_changes) if isinstance(p.model, ViTConfig) else {}
    recipe = dict(recipe)
    ema = recipe.pop("ema", 0.0)
    return p.model, changes, replace(p.train, **recipe), ema


def score(variant: str, set_name: str, seed: int, threads: int | None = None) -> dict:
    """One run: ``variant`` trained on the set's benchmark training part, scored on its held-out images."""
    if threads:
        torch.set_num_threads(threads)
    config, held_out = DEVELOPMENT_SETS[set_name]
    data = replace(load_data(config()), test=held_out())
    model_config, changes, recipe, ema = settings(variant)
    model = build(fit_to_data(model_config, len(data.classes)), seed, changes)
    start = time.perf_counter()
    if ema:
        fit_averaged(model, data, recipe, seed, ema)
    else:
        fit(model, data, recipe, seed, eval_part=None, out=io.StringIO(), progress=False)
    accuracy = evaluate(model, data.batches("test", EVAL_BATCH))[1]
    return {
        "variant": variant,
        "set": set_name,
        "seed": seed,
        "accuracy": round(accuracy, 4),
        "seconds": round(time.perf_counter() - start, 1),
    }


def run(variants: list[str], seeds: list[int], jobs: int) -> None:
    done = {(r["variant"], r["set"], int(r["seed"])) for r in runs()}
    # Seed by seed, so that a stopped run leaves every variant measured on every set once before any twice.
    todo = [(v, s, seed) for seed in seeds for v in variants for s in DEVELOPMENT_SETS if (v, s, seed) not in done]
    with ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(score, *job, 1 if jobs > 1 else None) for job in todo]
        for future in futures:
            row = future.result()
            new = not RESULTS.exists()
            with RESULTS.open("a", newline="") as f:
                writer = csv.DictWriter(f, FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow(row)
            print(f"{row['variant']:>42} · {row['set']:>8} · seed {row['seed']}: {row['accuracy']:.1%}", flush=True)


def summary() -> list[dict]:
    """One row per variant measured on every set: mean, std and seeds per set, and the worse of the means."""
    found, rows = runs(), []
    for variant in VARIANTS:
        row = {"variant": variant, "model": model_kind(settings(variant)[0]), "default": variant == DEFAULT}
        for s in DEVELOPMENT_SETS:
            acc = [float(r["accuracy"]) for r in found if r["variant"] == variant and r["set"] == s]
            if not acc:
                break
            row |= {
                f"{s}_mean": round(statistics.mean(acc), 4),
                f"{s}_std": round(statistics.stdev(acc), 4) if len(acc) > 1 else 0.0,
                f"{s}_seeds": len(acc),
            }
        else:
            row["worse_mean"] = min(row[f"{s}_mean"] for s in DEVELOPMENT_SETS)
            rows.append(row)
    return rows


def write_summary(rows: list[dict]) -> None:
    with open(TABLES / "priors_summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/priors.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), metavar="NAME")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time; above 1, each gets one torch thread")
    parser.add_argument("--table", action="store_true", help="train nothing: the table of the runs so far")
    args = parser.parse_args(argv)
    if not args.table:
        run(args.variants, args.seeds, args.jobs)
    rows = summary()
    if rows:
        write_summary(rows)
        write_block("priors", mean_table("priors_summary.csv", "variant"))
        print("\n".join(mean_table("priors_summary.csv", "variant")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
