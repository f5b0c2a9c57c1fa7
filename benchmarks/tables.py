"""The benchmark's record: its stored results (``results/``) as the Markdown tables of ``benchmarks/README.md``.

    python benchmarks/tables.py      # rewrites every generated block of benchmarks/README.md from results/

Each table is written between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; the prose around them is the
maintainers'. ``run.py`` writes its own block (``benchmark``) the same way.
"""

from __future__ import annotations

import csv
import json
import statistics
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


def teacher_rows() -> list[dict]:
    return [json.loads(line) for line in (RESULTS / "teachers.jsonl").read_text().splitlines()]


TAUGHT = {  # the judged rows of teachers.py, in the table's order
    "teacher": "CNN, the teacher (30 epochs)",
    "cnn-same-minute": "CNN for the ViT's minute (50 epochs)",
    "pure": "ViT, fast preset (the default)",
    "lg": "**ViT taught by locality guidance (adopted)**",
    "deit": "ViT taught by DeiT's distillation token",
}


def teachers() -> list[str]:
    """The judging half (B) of each set's held-out images: mean ± std over seeds 0-2, each row's gap to the CNN of the
    same minute, and the student's and the teacher's training times apart."""
    rows = [r for r in teacher_rows() if not r.get("prototype") or r["kind"] != "lg"]
    found = {
        k: {s: [r for r in rows if r["kind"] == k and r["set"] == s and r["seed"] < 3] for s in SETS} for k in TAUGHT
    }
    mean = {k: {s: statistics.mean(r["accuracy_B"] for r in found[k][s]) for s in SETS} for k in TAUGHT}
    lines = [
        "| model (3 seeds each) | " + " | ".join(SETS) + " | gap to the same-minute CNN | student s | teacher s |",
        "|---|" + "---:|" * (len(SETS) + 3),
    ]
    for kind, name in TAUGHT.items():
        spread = {s: statistics.stdev(r["accuracy_B"] for r in found[kind][s]) for s in SETS}
        cells = [f"{pct(mean[kind][s])} ± {pct(spread[s])}" for s in SETS]
        every = [r for s in SETS for r in found[kind][s]]
        gap = " / ".join(f"{(mean[kind][s] - mean['cnn-same-minute'][s]) * 100:+.1f}" for s in SETS)
        teacher = statistics.mean(r.get("teacher_seconds", 0) for r in every)
        times = f"{statistics.mean(r['seconds'] for r in every):.0f} | {f'{teacher:.0f}' if teacher else '-'}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'' if kind == 'cnn-same-minute' else gap} | {times} |")
    return lines


def selection() -> list[str]:
    """Locality guidance's blocks and weight, chosen at seed 0 on the selection half (A) by the worst set's gap to the
    same-minute CNN, ties by the mean gap (the prototype's runs)."""
    rows = [r for r in teacher_rows() if r["seed"] == 0 and "accuracy_A" in r]
    cnn = {r["set"]: r["accuracy_A"] for r in rows if r["kind"] == "cnn-same-minute"}
    tried = [r for r in rows if r["kind"] == "deit" or (r["kind"] == "lg" and r.get("prototype"))]
    lines = [
        "| taught by | " + " | ".join(SETS) + " | worst gap to the CNN | mean gap |",
        "|---|" + "---:|" * (len(SETS) + 2),
    ]
    lines.append("| (the same-minute CNN) | " + " | ".join(pct(cnn[s]) for s in SETS) + " | | |")
    for r in sorted(
        (r for r in tried if r["set"] == SETS[0]), key=lambda r: (r["kind"], r.get("blocks"), r.get("weight"))
    ):
        name = f"guidance into blocks {r['blocks']}, weight {r['weight']:g}" if r["kind"] == "lg" else "DeiT token"
        found = {s: next(x["accuracy_A"] for x in tried if x["set"] == s and _same(x, r)) for s in SETS}
        gaps = [(found[s] - cnn[s]) * 100 for s in SETS]
        cells = " | ".join(pct(found[s]) for s in SETS)
        lines.append(f"| {name} | {cells} | {min(gaps):+.1f} | {statistics.mean(gaps):+.2f} |")
    return lines


def _same(a: dict, b: dict) -> bool:
    return a["kind"] == b["kind"] and a.get("blocks") == b.get("blocks") and a.get("weight") == b.get("weight")


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
    "teachers": teachers,
    "teachers-selection": selection,
}


def main() -> int:
    for name, table in BLOCKS.items():
        write_block(name, table())
    write_block("readme-benchmark", summary(), MAIN_README)
    print(f"wrote {', '.join(BLOCKS)} into {README}, and the summary into {MAIN_README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
