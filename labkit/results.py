"""Result tables that ship with labkit, so the QA notebook can quote measured figures without re-running them.

``sweep.csv`` / ``sweep_hard.csv``: the hyperparameter sweep on validation splits (``benchmarks/sweep.py``).
``benchmark.csv``: mean and spread over seeds of each benchmark row on the test split (``benchmarks/run.py``).
``candidates.csv``: the default's last candidates, several seeds each on validation data of both sets
(``benchmarks/candidates.py``, which also holds the rule that chose among them).
``priors.csv``: cheap changes to the default (locality priors, an average of the weights) and the CNN at the
default's wall-clock, several seeds each on held-out images of three sets (``benchmarks/priors.py``).
"""

from __future__ import annotations

import csv
import math
from importlib import resources
from importlib.abc import Traversable

BENCHMARK = "benchmark.csv"
BENCHMARK_SETS = ("built-in", "hard", "textures")  # benchmark.csv's sets, by the start of their names
SHORT_NAMES = {"built-in": "digits", "hard": "clothes", "textures": "textures"}
SAME_TIME_ROW = "CNN at the default's wall-clock (fast recipe)"
REFERENCE_ROW = "reference (the lab's model and recipe, Adam 3e-4)"  # benchmark.csv's row of the reference preset
CANDIDATES = "candidates.csv"
PRIORS = "priors.csv"
PRIOR_SETS = {"digits": "digits", "clothes": "clothes", "textures": "textures"}  # priors.csv's sets, by column prefix
# candidates.csv's validation splits, by the prefix of their columns
CANDIDATE_SPLITS = {
    "builtin": "digits, small split",
    "hard": "clothes, small split",
    "hard_large": "clothes, 6,000 held out",
}


def shipped(name: str) -> Traversable:
    """Where labkit keeps the result table ``name``."""
    return resources.files("labkit") / "results" / name


def read(name: str) -> list[dict]:
    with shipped(name).open() as f:
        return list(csv.DictReader(f))


def benchmark(set_name: str, rows: list[str]) -> list[dict]:
    """The benchmark's rows of one data set, in the order asked, with numbers as numbers."""
    table = {r["row"]: r for r in read(BENCHMARK) if r["set"].startswith(set_name)}
    missing = [row for row in rows if row not in table]
    if missing:
        raise KeyError(f"benchmark.csv has no rows {missing} for {set_name!r}; rerun benchmarks/run.py")
    numbers = ("params", "seeds", "epochs")
    return [
        {
            k: int(v) if k in numbers else float(v) if k in ("mean_accuracy", "std_accuracy", "seconds") else v
            for k, v in table[row].items()
        }
        for row in rows
    ]


def comparison(rows: list[str], sets: tuple[str, ...] = BENCHMARK_SETS) -> str:
    """Benchmark rows side by side for the data sets, as markdown: test accuracy (mean ± std over the seeds), and
    each set's epochs and seconds where they differ between the sets."""
    found = {s: benchmark(s, rows) for s in sets}
    names = {"built-in": "digits (built-in)", "hard": "clothes (Fashion-MNIST 0–5)", "textures": "textures (generated)"}
    lines = ["| benchmark row | " + " | ".join(names.get(s, s) for s in sets) + " | epochs | seconds |",
             "|---|" + "---:|" * (len(sets) + 2)]  # fmt: skip
    for i, row in enumerate(rows):
        cells = [f"{found[s][i]['mean_accuracy']:.1%} ± {found[s][i]['std_accuracy']:.1%}" for s in sets]
        epochs = " / ".join(dict.fromkeys(str(found[s][i]["epochs"]) for s in sets))
        seconds = " / ".join(f"{found[s][i]['seconds']:.0f}" for s in sets)
        mark = " †" if found[sets[0]][i]["carried"] == "True" else ""
        lines.append(f"| {row}{mark} | " + " | ".join(cells) + f" | {epochs} | {seconds} |")
    order = ", ".join(SHORT_NAMES.get(s, s) for s in sets)
    return "\n".join(lines) + f"\n\n(Where numbers share a cell, they are the sets' in this order: {order}.)"


def leaders(rows: list[str], sets: tuple[str, ...] = BENCHMARK_SETS) -> str:
    """Which of the benchmark's ``rows`` is the most accurate on each of its sets, and which lie within one standard
    deviation (over seeds) of it: the benchmark's answer on its own sets, said as such."""
    names = {"built-in": "the built-in digits", "hard": "Fashion-MNIST 0–5", "textures": "the generated textures"}
    parts = []
    for s in sets:
        found = benchmark(s, rows)
        best = max(found, key=lambda r: r["mean_accuracy"])
        close = [
            r["row"]
            for r in found
            if r is not best and r["mean_accuracy"] + r["std_accuracy"] >= best["mean_accuracy"] - best["std_accuracy"]
        ]
        part = f"on {names[s]}, {best['row']} is the most accurate ({best['mean_accuracy']:.1%})"
        parts.append(part + (f"; {', '.join(close)} within its spread (their ±1 std ranges overlap)" if close else ""))
    return "**On the benchmark's sets** (not this run's data): " + "; ".join(parts) + "."


def cnn_gap() -> str:
    """The default against the CNN trained for the same wall-clock, on each of the benchmark's sets."""
    rows = ["fast (default)", SAME_TIME_ROW]
    found = [benchmark(s, rows) for s in BENCHMARK_SETS]
    gaps = " / ".join(f"{(vit['mean_accuracy'] - cnn['mean_accuracy']) * 100:+.1f}" for vit, cnn in found)
    behind = sum(vit["mean_accuracy"] < cnn["mean_accuracy"] for vit, cnn in found)
    return (
        f"Against the CNN trained for the same wall-clock, the default ViT stands {gaps} points "
        f"({' / '.join(SHORT_NAMES.values())}; negative: behind it): behind on {behind} of the {len(found)} sets."
    )


def ablation_rows() -> list[str]:
    """The benchmark's rows that take one ingredient out of the default, in its order."""
    return [r["row"] for r in read(BENCHMARK) if r["set"].startswith("built-in") and r["row"].startswith("fast − ")]


def epochs_reading() -> str:
    """What the benchmark says about epochs against tuning: the default at the lab's 20 epochs against the lab's
    reference recipe, set by set, and the default at its own epochs."""
    rows = ["fast at the lab's 20 epochs", REFERENCE_ROW, "fast (default)"]
    short, ref, full = zip(*(benchmark(s, rows) for s in BENCHMARK_SETS), strict=True)
    sides = {"ahead": [], "behind": [], "level": []}
    for name, a, b in zip(BENCHMARK_SETS, short, ref, strict=True):
        gap, spread = a["mean_accuracy"] - b["mean_accuracy"], max(a["std_accuracy"], b["std_accuracy"])
        sides["ahead" if gap > 2 * spread else "behind" if gap < -2 * spread else "level"].append(SHORT_NAMES[name])

    def each(r):
        return " / ".join(f"{x['mean_accuracy']:.1%}" for x in r)

    epochs = full[0]["epochs"]
    if len(sides["ahead"]) == len(BENCHMARK_SETS):
        verdict = "ahead on every set by more than their spread, so the tuned sizes and recipe bought part of the gain"
    else:
        found = "; ".join(f"{side} on {', '.join(names)}" for side, names in sides.items() if names)
        verdict = (f"not ahead by more than two standard deviations on every set ({found}), so most of the default's "
                   f"gain over the reference came from training {epochs} epochs")  # fmt: skip
    return (
        f"At the lab's 20 epochs the tuned model reaches {each(short)} ({' / '.join(SHORT_NAMES.values())}) against "
        f"the reference recipe's {each(ref)}: {verdict}; at {epochs} epochs it reaches {each(full)}."
    )


def candidates_reading() -> str:
    """How far apart the leading candidates are, against how far one seed moves one of them."""
    rows = sorted(read(CANDIDATES), key=lambda r: -float(r["worse_mean"]))
    top = [r for r in rows if float(rows[0]["worse_mean"]) - float(r["worse_mean"]) <= 0.005]
    std = max(float(r["hard_large_std"]) for r in top)
    return (
        f"The first {len(top)} lie within half a point of each other on the worse-set mean, while one seed moves a "
        f"candidate by up to {std * 100:.1f} points on the 6,000 images: their order among themselves is not a "
        "result, and the default is one of them."
    )


def spread(sets: tuple[str, ...] = BENCHMARK_SETS) -> tuple[float, float]:
    """The smallest and largest standard deviation over seeds among the benchmark's rows: how far one seed's
    accuracy moves by chance, as fractions."""
    stds = [float(r["std_accuracy"]) for r in read(BENCHMARK) if r["set"].startswith(sets) and int(r["seeds"]) > 1]
    return min(stds), max(stds)


def candidates() -> str:
    """The default's last candidates as markdown, best first: validation accuracy (mean ± std over the seeds) on the
    small splits of both sets and on clothes' 6,000 held-out images, and the worse of the digits and the large-split
    means, by which they were ranked."""
    rows = sorted(read(CANDIDATES), key=lambda r: -float(r["worse_mean"]))
    seeds = {s: min(int(r[f"{s}_seeds"]) for r in rows) for s in CANDIDATE_SPLITS}
    head = " | ".join(f"{name} ({seeds[s]} seeds)" for s, name in CANDIDATE_SPLITS.items())
    lines = [
        f"| candidate | params | {head} | worse of digits and 6,000 |",
        "|---|" + "---:|" * (len(CANDIDATE_SPLITS) + 2),
    ]
    for r in rows:
        cells = [f"{float(r[f'{s}_mean']):.1%} ± {float(r[f'{s}_std']):.1%}" for s in CANDIDATE_SPLITS]
        name = f"**{r['candidate']} (default)**" if r["default"] == "True" else r["candidate"]
        lines.append(f"| {name} | {int(r['params']):,} | " + " | ".join(cells) + f" | {float(r['worse_mean']):.1%} |")
    return "\n".join(lines)


def priors() -> str:
    """The cheap changes to the default and the CNN at its wall-clock as markdown, in the order measured: held-out
    accuracy (mean ± std over the seeds) on each set, the worse of the three means, and each ViT's gap to the CNN."""
    rows = read(PRIORS)
    cnn = next(r for r in rows if r["model"] == "cnn")
    seeds = min(int(r[f"{s}_seeds"]) for r in rows for s in PRIOR_SETS)
    names = " / ".join(PRIOR_SETS.values())
    lines = [f"| variant ({seeds} seeds each) | " + " | ".join(PRIOR_SETS.values())
             + f" | worse set | gap to the CNN ({names}) |", "|---|" + "---:|" * (len(PRIOR_SETS) + 2)]  # fmt: skip
    for r in rows:
        cells = [f"{float(r[f'{s}_mean']):.1%} ± {float(r[f'{s}_std']):.1%}" for s in PRIOR_SETS]
        gap = "" if r is cnn else " / ".join(f"{points_apart(r, cnn, s):+.1f}" for s in PRIOR_SETS)
        name = f"**{r['variant']}**" if r["default"] == "True" else r["variant"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {float(r['worse_mean']):.1%} | {gap} |")
    return "\n".join(lines)


def points_apart(row: dict, other: dict, s: str) -> float:
    """``row``'s mean on set ``s`` less ``other``'s, in points."""
    return (float(row[f"{s}_mean"]) - float(other[f"{s}_mean"])) * 100


def errors_apart(row: dict, other: dict, s: str) -> float:
    """``row``'s lead over ``other`` on set ``s`` in standard errors of the difference of their means."""
    error = math.hypot(*(float(r[f"{s}_std"]) / math.sqrt(int(r[f"{s}_seeds"])) for r in (row, other)))
    return points_apart(row, other, s) / 100 / error if error else math.copysign(math.inf, points_apart(row, other, s))


def worse_set_lead(row: dict, other: dict) -> float:
    """How far ``row``'s worse-set mean lies above ``other``'s, in standard errors of the difference (each from
    the spread over the seeds on its own worse set)."""

    def error(r: dict) -> float:
        worse = min(PRIOR_SETS, key=lambda s: float(r[f"{s}_mean"]))
        return float(r[f"{worse}_std"]) / math.sqrt(int(r[f"{worse}_seeds"]))

    lead = float(row["worse_mean"]) - float(other["worse_mean"])
    return lead / math.hypot(error(row), error(other)) if error(row) or error(other) else math.copysign(math.inf, lead)


def priors_reading() -> str:
    """What the priors table shows, by the rule that chose: against the same ViT without any prior (its first row),
    which change moved a set by more than two standard errors of the difference, up or down; which of those that
    lose on no set has the best worse set; and how far the default trails the CNN at its wall-clock."""
    rows = read(PRIORS)
    baseline = rows[0]
    default = next(r for r in rows if r["default"] == "True")
    cnn = next(r for r in rows if r["model"] == "cnn")
    changes = [r for r in rows if r is not baseline and r is not cnn]
    moved, still = [], []
    for r in changes:
        ups = [PRIOR_SETS[s] for s in PRIOR_SETS if errors_apart(r, baseline, s) > 2]
        downs = [PRIOR_SETS[s] for s in PRIOR_SETS if errors_apart(r, baseline, s) < -2]
        parts = [f"up on {', '.join(ups)}"] * bool(ups) + [f"down on {', '.join(downs)}"] * bool(downs)
        (moved.append(f"{r['variant']} ({'; '.join(parts)})") if parts else still.append(r["variant"]))
    text = (f"Against {baseline['variant']}, by more than two standard errors of the difference: "
            + ("; ".join(moved) if moved else "no change moved any set")
            + (f". Within noise on every set: {', '.join(still)}" if still else ""))  # fmt: skip
    safe = [r for r in changes if all(errors_apart(r, baseline, s) >= -2 for s in PRIOR_SETS)]
    best = max(safe, key=lambda r: float(r["worse_mean"]), default=None)
    if best is not None:
        text += (f". Of the changes that lose on no set, {best['variant']} has the best worse set: "
                 f"{float(best['worse_mean']):.1%} against {float(baseline['worse_mean']):.1%}")  # fmt: skip
        if best is not default:
            lead = worse_set_lead(best, default)
            noise = "within noise" if lead <= 2 else "beyond noise"
            text += f", {lead:+.1f} standard errors from the default's ({noise})"
    gaps = " / ".join(f"{points_apart(default, cnn, s):+.1f}" for s in PRIOR_SETS)
    return text + (f". The default ({default['variant']}) stands {gaps} points from the CNN at its wall-clock "
                   f"({' / '.join(PRIOR_SETS.values())}; negative: behind it).")  # fmt: skip
