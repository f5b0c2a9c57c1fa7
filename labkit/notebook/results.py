"""The lab benchmark's summary shipped with labkit (``benchmarks/run.py`` writes it), which Question 7 quotes."""

from __future__ import annotations

import csv
from importlib import resources

SETS = ("digits", "clothes", "textures")


def benchmark(row: str) -> dict[str, dict]:
    """The benchmark's row ``row`` on each of its sets, numbers as numbers."""
    with (resources.files("labkit.notebook") / "benchmark.csv").open() as f:
        found = {r["set"]: r for r in csv.DictReader(f) if r["id"] == row}
    return {s: {k: float(v) if k.endswith("accuracy") else v for k, v in found[s].items()} for s in SETS}


def accuracies(row: str) -> str:
    """A row's mean test accuracy on the three sets, as "98.6 / 90.4 / 98.4%"."""
    found = benchmark(row)
    return " / ".join(f"{found[s]['mean_accuracy'] * 100:.1f}" for s in SETS) + "%"


def preset_effect(preset: str, builtin: bool = False) -> str:
    """The lab benchmark's numbers for a preset and the lab's presets beside it, labelled as the benchmark's; on the
    built-in data, whose images and split are the benchmark's digits set, only that set's."""
    runs, rows = benchmark(preset)["digits"]["seeds"], dict.fromkeys([preset, "fast", "reference"])
    if builtin:
        found = ", ".join(f"`{row}` {benchmark(row)['digits']['mean_accuracy']:.1%}" for row in rows)
        return f"the lab benchmark on this data and split ({runs} seeds): {found}"
    found = ", ".join(f"`{row}` {accuracies(row)}" for row in rows)
    return f"not measured on this data; the lab benchmark on its sets ({' / '.join(SETS)}, {runs} seeds): {found}"
