"""The benchmark's record: its stored results (``results/``) as the Markdown tables of ``benchmarks/README.md``.

    python benchmarks/tables.py      # rewrites every generated block of benchmarks/README.md from results/

Each table is written between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; the prose around them is the
maintainers'. ``run.py`` writes its own block (``benchmark``) the same way.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
MAIN_README = HERE.parent / "README.md"
SUMMARY = HERE.parent / "labkit" / "notebook" / "benchmark.csv"  # run.py writes it
SETS = ("digits", "clothes", "textures")
CANDIDATE_SPLITS = {
    "builtin": "digits, small split",
    "hard": "clothes, small split",
    "hard_large": "clothes, 6,000 held out",
}


def read(name: str) -> list[dict]:
    with (RESULTS / name).open() as f:
        return list(csv.DictReader(f))


def pct(value: str | float) -> str:
    return f"{float(value):.1%}"


def sweep(name: str) -> list[str]:
    """A one-seed sweep table, each row's validation accuracy also as a change against the first row's."""
    rows = read(name)
    base = float(rows[0]["val_accuracy"])
    lines = [
        "| variant | dim | depth | heads | patch | MLP | recipe | params | val acc | Δ (points) | seconds |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        acc = float(r["val_accuracy"])
        lines.append(
            f"| {r['variant']} | {r['dim']} | {r['depth']} | {r['heads']} | {r['patch']} | {r['mlp_dim']} | "
            f"{r['recipe']} | {int(r['params']):,} | {acc:.1%} | {(acc - base) * 100:+.1f} | "
            f"{float(r['seconds']):.0f} |"
        )
    return lines


def candidates() -> list[str]:
    """The last candidates for the default, best first by the worse of the digits and the 6,000-image means."""
    rows = sorted(read("candidates.csv"), key=lambda r: -float(r["worse_mean"]))
    seeds = {s: min(int(r[f"{s}_seeds"]) for r in rows) for s in CANDIDATE_SPLITS}
    head = " | ".join(f"{name} ({seeds[s]} seeds)" for s, name in CANDIDATE_SPLITS.items())
    lines = [
        f"| candidate | params | {head} | worse of digits and 6,000 |",
        "|---|" + "---:|" * (len(CANDIDATE_SPLITS) + 2),
    ]
    for r in rows:
        cells = [f"{pct(r[f'{s}_mean'])} ± {pct(r[f'{s}_std'])}" for s in CANDIDATE_SPLITS]
        name = f"**{r['candidate']} (default)**" if r["default"] == "True" else r["candidate"]
        lines.append(f"| {name} | {int(r['params']):,} | " + " | ".join(cells) + f" | {pct(r['worse_mean'])} |")
    return lines


def mean_table(name: str, label: str) -> list[str]:
    """Variants scored on the three sets' held-out images (priors.py, teachers.py): mean ± std over the seeds per set,
    the worse of the means, and each ViT's gap to the CNN trained for the default's wall-clock."""
    rows = read(name)
    cnn = next(r for r in rows if r["model"] == "cnn")
    seeds = min(int(r[f"{s}_seeds"]) for r in rows for s in SETS)
    lines = [
        f"| {label} ({seeds} seeds each) | " + " | ".join(SETS) + " | worse set | gap to the CNN |",
        "|---|" + "---:|" * (len(SETS) + 2),
    ]
    for r in rows:
        cells = [f"{pct(r[f'{s}_mean'])} ± {pct(r[f'{s}_std'])}" for s in SETS]
        gap = (
            ""
            if r is cnn
            else " / ".join(f"{(float(r[f'{s}_mean']) - float(cnn[f'{s}_mean'])) * 100:+.1f}" for s in SETS)
        )
        name = f"**{r['variant']}**" if r["default"] == "True" else r["variant"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {pct(r['worse_mean'])} | {gap} |")
    return lines


def summary() -> list[str]:
    """The main README's table: the presets and the 20-epoch fast run on the three sets, mean over the seeds."""
    with SUMMARY.open() as f:
        rows = list(csv.DictReader(f))
    lines = ["| | " + " | ".join(SETS) + " | epochs |", "|---|" + "---:|" * (len(SETS) + 1)]
    for row in ("fast", "fast-20-epochs", "reference", "cnn", "hybrid"):
        found = {r["set"]: r for r in rows if r["id"] == row}
        cells = [pct(found[s]["mean_accuracy"]) for s in SETS]
        lines.append(f"| {found[SETS[0]]['name']} | " + " | ".join(cells) + f" | {found[SETS[0]]['epochs']} |")
    return lines


def write_block(name: str, lines: list[str], readme: Path = README) -> None:
    """Replace what ``readme`` holds between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    text = readme.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"error: {readme} has no {start} ... {end} block; add one where the table should go")
    head, rest = text.split(start)
    readme.write_text(head + start + "\n" + "\n".join(lines).strip() + "\n" + end + rest.split(end)[1])


BLOCKS = {
    "sweep-digits": lambda: sweep("sweep.csv"),
    "sweep-clothes": lambda: sweep("sweep_hard.csv"),
    "candidates": candidates,
    "priors": lambda: mean_table("priors_summary.csv", "variant"),
}


def main() -> int:
    for name, table in BLOCKS.items():
        write_block(name, table())
    write_block("readme-benchmark", summary(), MAIN_README)
    print(f"wrote {', '.join(BLOCKS)} into {README}, and the summary into {MAIN_README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
