"""The QA notebook's sweeps: a live mini-sweep around a preset on a validation split (never the test split), and
the full sweep's tables that ship with labkit.

The full sweep is a tuning tool, ``benchmarks/sweep.py``; its tables (``labkit/results/sweep.csv`` for the built-in
set, ``sweep_hard.csv`` for Fashion-MNIST classes 0-5) are read here so the notebook shows them without re-running.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from labkit import results
from labkit.data import LabData, load_data
from labkit.models import build_model, count_parameters, fit_to_data
from labkit.presets import get_preset
from labkit.train import fit

COLUMNS = ["variant", "dim", "depth", "heads", "patch", "mlp_dim", "recipe", "params", "val_accuracy", "seconds"]
SHIPPED = "sweep.csv"
SHIPPED_HARD = "sweep_hard.csv"


@dataclass(frozen=True)
class Variant:
    name: str
    model: dict = field(default_factory=dict)  # changes to the preset's model config
    train: dict = field(default_factory=dict)  # changes to its recipe
    recipe: str = ""  # a word for the table; empty: the swept preset's own recipe


# The lab's reference recipe on the preset's model: every training setting of the reference preset but its epochs
# and logging, which stay the swept preset's.
REFERENCE_RECIPE = {k: v for k, v in asdict(get_preset("reference").train).items() if k not in ("epochs", "log_every")}

MINI_SWEEP = [  # well under a minute on 2 cores at 8 epochs: patch size and recipe move accuracy and time the most
    Variant("the preset as it is"),
    Variant("patch 7", {"patch_size": 7}),
    Variant("dim 32", {"dim": 32, "mlp_dim": 64}),
    Variant("reference recipe", train=REFERENCE_RECIPE, recipe="Adam 3e-4, plain"),
]


def mini_sweep(preset: str) -> list[Variant]:
    """MINI_SWEEP for ``preset``: the preset as it is, then each change that changes something in it (the reference
    recipe is no change to the reference preset)."""
    p = get_preset(preset)
    same = (p.model, p.train)
    return [
        MINI_SWEEP[0],
        *(v for v in MINI_SWEEP[1:] if (replace(p.model, **v.model), replace(p.train, **v.train)) != same),
    ]


def run_variant(
    variant: Variant, data: LabData, preset: str = "fast", epochs: int | None = None, seed: int = 0
) -> dict:
    """Train one variant of ``preset`` on ``data.train`` and score it on ``data.val`` (its last epoch)."""
    p = get_preset(preset)
    config = fit_to_data(replace(p.model, **variant.model), len(data.classes))
    train = replace(p.train, **variant.train, **({"epochs": epochs} if epochs else {}))
    model = build_model(config, seed)
    history = fit(model, data, train, seed, eval_part="val", out=io.StringIO(), progress=False)
    return {
        "variant": variant.name,
        "dim": config.dim,
        "depth": config.depth,
        "heads": config.heads,
        "patch": config.patch_size,
        "mlp_dim": config.mlp_dim,
        "recipe": variant.recipe or preset,
        "params": count_parameters(model),
        "val_accuracy": round(history.final_accuracy, 4),
        "seconds": round(history.seconds, 1),
    }


def run_sweep(
    variants: list[Variant], data: LabData, preset: str = "fast", epochs: int | None = None, seed: int = 0, out=None
) -> list[dict]:
    """Each variant of ``preset`` trained on ``data.train`` and scored on ``data.val``, one row each."""
    rows = []
    for variant in variants:
        rows.append(run_variant(variant, data, preset, epochs=epochs, seed=seed))
        if out:
            r = rows[-1]
            print(
                f"{r['variant']:>24}: {r['val_accuracy'] * 100:5.1f}% val, {r['params']:,} params, "
                f"{r['seconds']:.0f} s",
                file=out,
                flush=True,
            )
    return rows


def shipped(hard: bool = False):
    """Where labkit keeps the full-sweep table of the built-in set, or with ``hard`` of the hard set."""
    return results.shipped(SHIPPED_HARD if hard else SHIPPED)


def read_table(path: str | Path | None = None, hard: bool = False) -> list[dict]:
    """A shipped full-sweep table (see ``shipped``), or the one at ``path``."""
    source = shipped(hard) if path is None else Path(path)
    with source.open() as f:
        return list(csv.DictReader(f))


def validation_split(data: LabData, fraction: float = 0.2) -> LabData:
    """The same source and selection as ``data``, with ``fraction`` of the training part held out for validation."""
    return load_data(replace(data.config, val_fraction=fraction))


SIZE_VARIANTS = ("dim", "depth", "heads", "mlp")  # the rows that change only the model's size


def reading(table: list[dict], images: int, preset: str) -> str:
    """What the live mini-sweep shows and what it cannot: each change against the preset as it is, beside how far
    two runs can land apart by chance on ``images`` validation images (two binomial standard errors)."""
    from labkit.answers import noise

    base = float(table[0]["val_accuracy"])
    margin = noise(base, images)
    beyond = [r["variant"] for r in table[1:] if abs(float(r["val_accuracy"]) - base) > margin]
    changes = "; ".join(f"{r['variant']} {(float(r['val_accuracy']) - base) * 100:+.1f} points" for r in table[1:])
    if beyond:
        found = (f"{', '.join(beyond)} differed from the `{preset}` preset by more than that after 8 epochs; but an "
                 "8-epoch run rewards what learns fastest, so this says which learns faster on this data, not which "
                 "ends best")  # fmt: skip
    else:
        found = (f"so after 8 epochs no change is distinguishable from the `{preset}` preset on this data: this run "
                 "cannot rank them, and the evidence for the default's choice is the benchmark's full-length runs "
                 "below, on its own sets")  # fmt: skip
    return (
        f"Against the preset as it is: {changes}. One seed on {images} validation images can move an accuracy "
        f"difference by about ±{margin * 100:.1f} points by chance; {found}."
    )


def markdown(table: list[dict]) -> str:
    """A sweep table as markdown, each row's validation accuracy also as a change against the first row's."""
    base = float(table[0]["val_accuracy"])
    lines = [
        "| variant | dim | depth | heads | patch | MLP | recipe | params | val acc | Δ (points) | seconds |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in table:
        acc = float(r["val_accuracy"])
        lines.append(
            f"| {r['variant']} | {r['dim']} | {r['depth']} | {r['heads']} | {r['patch']} | {r['mlp_dim']} | "
            f"{r['recipe']} | {int(r['params']):,} | {acc:.1%} | {(acc - base) * 100:+.1f} | "
            f"{float(r['seconds']):.0f} |"
        )
    return "\n".join(lines)


def delta(table: list[dict], variant: str) -> float:
    """Validation accuracy of ``variant`` less the default's (the table's first row)."""
    row = next(r for r in table if r["variant"] == variant)
    return float(row["val_accuracy"]) - float(table[0]["val_accuracy"])


def effects(digits: list[dict], hard: list[dict]) -> str:
    """What each swept change did on the benchmark's two sets, as one paragraph of the QA notebook's Question 7,
    with how much of it one seed on the validation split can move by chance."""
    from labkit.answers import noise
    from labkit.data import DataConfig

    images = len(validation_split(load_data(DataConfig())).val)  # the benchmark's split: 20% of each training part
    margin = noise(float(hard[0]["val_accuracy"]), images)

    def both(variant: str) -> str:
        return f"{delta(digits, variant) * 100:+.1f} points on digits and {delta(hard, variant) * 100:+.1f} on clothes"

    sizes = [r["variant"] for r in digits if r["variant"].split()[0] in SIZE_VARIANTS]
    worst = {v: min(delta(digits, v), delta(hard, v)) for v in sizes}
    best = max(worst, key=worst.get)
    slow = next(r for r in digits if r["variant"] == "patch 7")
    if worst[best] > 0:
        lead = "Of the size changes (width, depth, heads, MLP), the best in the worse of the two sets was "
    else:
        lead = (
            "None of the size changes (width, depth, heads, MLP) improved the worse of the two sets; the closest was "
        )
    return (
        f"**Effect on validation accuracy, on the benchmark's sets** (one seed per row, {images} validation images "
        f"each: a difference under about ±{margin * 100:.1f} points is within chance). "
        f"Coarser patches (patch 7, 16 tokens) changed accuracy by {both('patch 7')} at "
        f"{float(slow['seconds']) / float(digits[0]['seconds']):.1f}× the time. "
        + lead
        + f"*{best}* ({both(best)}). Removing SPT changed "
        f"accuracy by {both('no shifted patches')}; adding LSA by {both('with locality attention')}; starting the "
        f"embeddings at std 1 instead of 0.02 by {both('embeddings start at std 1')}. In the recipe: no shifts "
        f"{both('no shifts')}; shifts and flips {both('shifts + flips')}; learning rate 1e-3 instead of 2e-3 "
        f"{both('lr 1e-3')}; no label smoothing {both('no label smoothing')}; a constant learning rate "
        f"{both('constant LR, no warmup')}; the reference recipe (Adam 3e-4, nothing else) {both('reference recipe')}. "
        "Most of these are within chance on one seed, which is why the choice rested on the several-seed runs below."
    )
