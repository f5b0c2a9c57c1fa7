"""Cheap changes to the default ViT that the small-data literature offers (locality priors at initialisation or in
the attention, averaging the weights, a higher learning rate), judged by their worst case against the CNN baseline
trained for the default's wall-clock, on all three development sets, several seeds each.

    python benchmarks/priors.py --jobs 2        # runs what benchmarks/results/priors.csv lacks; appends each run
    python benchmarks/priors.py --table         # mean ± std per set, the worse set, and the gap to the CNN

A run trains one variant on a development set's benchmark training part (1,260 images, 75 epochs of the default
recipe unless the variant changes it; 1.5-2 minutes on one core) and scores it once, on that set's held-out images
(``sets.DEVELOPMENT_SETS``: 1,200 digits, 6,000 clothes, 3,000 textures), which none of the benchmark's splits
contains: validation data, large enough that one seed's std is well under a point. ``--jobs 2`` runs two at a time,
one torch thread each: accuracies do not depend on it, and the seconds column is not used.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch
from sets import DEVELOPMENT_SETS

from labkit.data import load_data
from labkit.metrics import EVAL_BATCH, evaluate
from labkit.models import build_model, fit_to_data
from labkit.presets import get_preset
from labkit.train import fit

RESULTS = Path(__file__).resolve().parent / "results" / "priors.csv"
FIELDS = ["variant", "set", "seed", "accuracy", "seconds"]
CNN = "CNN, 50 epochs (the default's wall-clock)"
MIMETIC_SINCOS = {"mimetic_init": True, "sincos_positions": True}
# name: (preset, changes to its model config, changes to its recipe)
VARIANTS = {
    "fast (default)": ("fast", {}, {}),
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
}


def runs() -> list[dict]:
    if not RESULTS.exists():
        return []
    with RESULTS.open() as f:
        return list(csv.DictReader(f))


def score(variant: str, set_name: str, seed: int, threads: int | None = None) -> dict:
    """One run: ``variant`` trained on the set's benchmark training part, scored on its held-out images."""
    if threads:
        torch.set_num_threads(threads)
    preset, model_changes, recipe = VARIANTS[variant]
    config, held_out = DEVELOPMENT_SETS[set_name]
    data = replace(load_data(config()), test=held_out())
    p = get_preset(preset)
    model = build_model(fit_to_data(replace(p.model, **model_changes), len(data.classes)), seed)
    history = fit(model, data, replace(p.train, **recipe), seed, eval_part=None, out=io.StringIO(), progress=False)
    accuracy = evaluate(model, data.batches("test", EVAL_BATCH))[1]
    return {"variant": variant, "set": set_name, "seed": seed, "accuracy": round(accuracy, 4),
            "seconds": round(history.seconds, 1)}  # fmt: skip


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


def table() -> str:
    """Each variant's mean ± std per set, its worse set, and its gap to the CNN per set (negative: behind it)."""
    found = runs()

    def accuracies(variant: str, set_name: str) -> list[float]:
        return [float(r["accuracy"]) * 100 for r in found if r["variant"] == variant and r["set"] == set_name]

    cnn = {s: statistics.mean(accuracies(CNN, s)) if accuracies(CNN, s) else None for s in DEVELOPMENT_SETS}
    sets = " | ".join(DEVELOPMENT_SETS)
    lines = [f"| variant | {sets} | worse set | gap to the CNN: {sets.replace(' | ', ' / ')} |",
             "|---|" + "---:|" * (len(DEVELOPMENT_SETS) + 2)]  # fmt: skip
    for variant in VARIANTS:
        cells, means, gaps = [], [], []
        for s in DEVELOPMENT_SETS:
            acc = accuracies(variant, s)
            if not acc:
                cells.append("—")
                continue
            means.append(statistics.mean(acc))
            spread = f" ± {statistics.stdev(acc):.1f}" if len(acc) > 1 else ""
            cells.append(f"{means[-1]:.1f}{spread}" + (f" ({len(acc)} seeds)" if len(acc) < 3 else ""))
            gaps.append(f"{means[-1] - cnn[s]:+.1f}" if cnn[s] is not None and variant != CNN else "—")
        complete = len(means) == len(DEVELOPMENT_SETS)
        worse = f"{min(means):.1f}" if complete else "—"
        gap = " / ".join(gaps) if complete and variant != CNN else "—"
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {worse} | {gap} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/priors.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), metavar="NAME")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time; above 1, each gets one torch thread")
    parser.add_argument("--table", action="store_true", help="only print the table of the runs so far")
    args = parser.parse_args(argv)
    if not args.table:
        run(args.variants, args.seeds, args.jobs)
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
