"""The lab benchmark's summary that ships with labkit (``benchmarks/run.py`` writes it): each row's test accuracy on
the benchmark's three sets, mean and spread over its seeds, by the row's id. Question 7 quotes it once."""

from __future__ import annotations

import csv
from importlib import resources

SETS = ("digits", "clothes", "textures")


def benchmark(row: str) -> dict[str, dict]:
    """The benchmark's row ``row`` on each of its sets, numbers as numbers."""
    with (resources.files("labkit") / "results" / "benchmark.csv").open() as f:
        found = {r["set"]: r for r in csv.DictReader(f) if r["id"] == row}
    return {s: {k: float(v) if k.endswith("accuracy") else v for k, v in found[s].items()} for s in SETS}


def accuracies(row: str) -> str:
    """A row's mean test accuracy on the three sets, as "98.6 / 90.4 / 98.4%"."""
    found = benchmark(row)
    return " / ".join(f"{found[s]['mean_accuracy'] * 100:.1f}" for s in SETS) + "%"


def preset_effect(preset: str) -> str:
    """What the lab benchmark measured for a preset (its row has the preset's name) against the lab's reference,
    labelled as the benchmark's."""
    where = f"lab benchmark, its sets ({' / '.join(SETS)}), {benchmark(preset)['digits']['seeds']} seeds"
    if preset == "reference":
        return f"{where}: {accuracies('reference')}"
    return f"{where}: {accuracies(preset)} against the reference's {accuracies('reference')}"
