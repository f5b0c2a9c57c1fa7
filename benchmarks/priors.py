"""Locality priors that cost nothing per step, judged by their worst case: the default ViT against the same model with
mimetic attention initialisation and 2-D sine-cosine positions (``ViTConfig.mimetic_init``, ``sincos_positions``),
and the CNN baseline beside them, on validation splits of all three development sets (digits, clothes, generated
textures), several seeds each.

    python benchmarks/priors.py --seeds 0 1        # appends each finished run to benchmarks/results/priors.csv
    python benchmarks/priors.py --seeds 2 --sets textures
    python benchmarks/priors.py --table            # the table: mean ± std per set, and the worse-set mean

A run is one variant on one set with one seed (the default recipe, 75 epochs, about 2-4 minutes on 2 cores); runs
already in the file are skipped, so the command can be stopped, or run twice side by side with other seeds.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
from dataclasses import replace
from pathlib import Path

from sets import HARD, textures

from labkit.data import DataConfig, load_data
from labkit.models import build_model, fit_to_data
from labkit.presets import get_preset
from labkit.sweep import Variant, validation_split
from labkit.train import fit

RESULTS = Path(__file__).resolve().parent / "results" / "priors.csv"
VARIANTS = [  # (preset, variant): the ViT rows, then the CNN they are measured against
    ("fast", Variant("fast (default)")),
    ("fast", Variant("mimetic", {"mimetic_init": True})),
    ("fast", Variant("mimetic + sin-cos positions", {"mimetic_init": True, "sincos_positions": True})),
    ("cnn", Variant("CNN baseline (its preset: 30 epochs)")),
]
SETS = {"digits": DataConfig, "clothes": lambda: HARD, "textures": textures}
FIELDS = ["variant", "set", "seed", "val_accuracy", "seconds"]


def done() -> set[tuple[str, str, int]]:
    if not RESULTS.exists():
        return set()
    with RESULTS.open() as f:
        return {(r["variant"], r["set"], int(r["seed"])) for r in csv.DictReader(f)}


def score(preset: str, variant: Variant, data, seed: int) -> tuple[float, float]:
    """One run of ``variant`` of ``preset``, trained on ``data.train``: (last epoch's accuracy on ``data.val``, s)."""
    p = get_preset(preset)
    model = build_model(fit_to_data(replace(p.model, **variant.model), len(data.classes)), seed)
    history = fit(model, data, p.train, seed, eval_part="val", out=io.StringIO(), progress=False)
    return history.final_accuracy, history.seconds


def run(seeds: list[int], sets: list[str]) -> None:
    finished = done()
    for name in sets:
        data = validation_split(load_data(SETS[name]()))
        for preset, variant in VARIANTS:
            for seed in seeds:
                if (variant.name, name, seed) in finished:
                    continue
                accuracy, seconds = score(preset, variant, data, seed)
                new = not RESULTS.exists()
                with RESULTS.open("a", newline="") as f:
                    writer = csv.DictWriter(f, FIELDS)
                    if new:
                        writer.writeheader()
                    row = {"variant": variant.name, "set": name, "seed": seed}
                    writer.writerow({**row, "val_accuracy": round(accuracy, 4), "seconds": round(seconds, 1)})
                print(f"{variant.name:>36} · {name:>8} · seed {seed}: {accuracy:.1%} in {seconds:.0f} s")


def table() -> str:
    with RESULTS.open() as f:
        rows = list(csv.DictReader(f))
    lines = ["| variant | " + " | ".join(SETS) + " | worse-set mean |", "|---|" + "---:|" * (len(SETS) + 1)]
    for _, variant in VARIANTS:
        cells, means = [], []
        for name in SETS:
            found = [float(r["val_accuracy"]) * 100 for r in rows if r["variant"] == variant.name and r["set"] == name]
            if not found:
                cells.append("—")
                continue
            means.append(statistics.mean(found))
            spread = f" ± {statistics.stdev(found):.1f}" if len(found) > 1 else ""
            cells.append(f"{means[-1]:.1f}{spread} ({len(found)} seeds)")
        worst = f"{min(means):.1f}" if len(means) == len(SETS) else "—"
        lines.append(f"| {variant.name} | " + " | ".join(cells) + f" | {worst} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/priors.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--table", action="store_true", help="print the table of the runs so far")
    args = parser.parse_args(argv)
    if not args.table:
        run(args.seeds, args.sets)
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
