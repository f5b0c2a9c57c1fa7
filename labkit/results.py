"""Result tables that ship with labkit, so the QA notebook can quote measured figures without re-running them.

``sweep.csv`` / ``sweep_hard.csv``: the hyperparameter sweep on validation splits (``benchmarks/sweep.py``).
``benchmark.csv``: mean and spread over seeds of each benchmark row on the test split (``benchmarks/run.py``).
``candidates.csv``: the default's last candidates, several seeds each on validation data of both sets
(``benchmarks/candidates.py``, which also holds the rule that chose among them).
"""

from __future__ import annotations

import csv
from importlib import resources
from importlib.abc import Traversable

BENCHMARK = "benchmark.csv"
CANDIDATES = "candidates.csv"
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


def comparison(rows: list[str], sets: tuple[str, ...] = ("built-in", "hard")) -> str:
    """Benchmark rows side by side for the data sets, as markdown: test accuracy, mean ± std over the seeds."""
    found = {s: benchmark(s, rows) for s in sets}
    names = {"built-in": "digits (built-in)", "hard": "clothes (Fashion-MNIST 0–5)"}
    lines = [
        "| benchmark row | " + " | ".join(names.get(s, s) for s in sets) + " | epochs | seconds |",
        "|---|" + "---:|" * (len(sets) + 2),
    ]
    for i, row in enumerate(rows):
        cells = [f"{found[s][i]['mean_accuracy']:.1%} ± {found[s][i]['std_accuracy']:.1%}" for s in sets]
        first = found[sets[0]][i]
        mark = " †" if first["carried"] == "True" else ""
        lines.append(f"| {row}{mark} | " + " | ".join(cells) + f" | {first['epochs']} | {first['seconds']:.0f} |")
    return "\n".join(lines)


def spread(sets: tuple[str, ...] = ("built-in", "hard")) -> tuple[float, float]:
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
