"""The fast recipe against the lab's reference recipe, the CNN baseline, the hybrid and vit-pytorch, side by side.

    pip install -r benchmarks/requirements.txt
    python benchmarks/run.py [--quick] [--resume] [--readme]
    python benchmarks/run.py --throughput-only --device cuda [--readme]   # on a GPU machine

Prints one table per data set: parameters, test accuracy (final epoch, mean ± std over seeds), wall seconds and
training images per second; then the default's gap to the CNN trained for the same wall-clock, per set; then the
training throughput of labkit's ViT against vit_pytorch.ViT at the same dims.
Every finished run is cached in benchmarks/results/cache.json under its row's id, set and seed, with the machine it
ran on: --resume reuses those (rerun a row whose settings you changed with --rows ID). --readme writes the tables into
benchmarks/README.md; labkit/notebook/benchmark.csv gets each row's mean and spread by row id (Question 7 quotes it).

Data sets: the built-in set; the hard set (Fashion-MNIST classes 0-5, the first 300 of each in the training file)
from Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist), skipped with a message without
it; and the generated texture set (sets.py). Not part of the test suite: the full run takes hours on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from sets import DEVELOPMENT_SETS
from tables import write_block
from variants import build

from labkit.data import load_data
from labkit.errors import LabError
from labkit.models import build_model, count_parameters, fit_to_data
from labkit.presets import get_preset
from labkit.train import TrainConfig, fit
from labkit.vit import ViTConfig

HERE = Path(__file__).resolve().parent
CACHE = HERE / "results" / "cache.json"
SUMMARY = HERE.parent / "labkit" / "notebook" / "benchmark.csv"  # shipped with labkit: Question 7 quotes it
# The three development sets: their ids (sets.DEVELOPMENT_SETS, benchmark.csv) and the names the tables give them.
SETS = {
    "digits": "built-in (MNIST 0-5 × 300)",
    "clothes": "hard (Fashion-MNIST 0-5 × 300)",
    "textures": "textures (generated, 6 kinds × 300)",
}


@dataclass(frozen=True)
class Row:
    id: str  # stable: the cache and benchmark.csv key rows by it
    name: str
    preset: str | None  # a labkit preset's model, or None for vit_pytorch.ViT at the fast preset's dims
    train: TrainConfig
    expected: float | None = None  # on the hard set: a fixed baseline below this is broken
    quick: bool = False  # part of --quick
    model_changes: tuple[tuple[str, object], ...] = ()  # (field or variants.OPTIONS, value) changes to the model


SAME_TIME = "cnn-same-time"
# The reference recipe takes about 300 s a run on 2 cores: it reruns only when --rows names it.
CARRIED = "reference"


def same_time_epochs(cache: dict, set_id: str) -> int | None:
    """Epochs of the CNN that take as long as the fast default: from the mean seconds of the cached fast and
    30-epoch CNN rows of this set (None until both have run)."""
    seconds = {
        row: [v["seconds"] for v in cache.values() if v["row"] == row and v["set"] == set_id] for row in ("fast", "cnn")
    }
    if not all(seconds.values()):
        return None
    fast, cnn = (statistics.mean(v) for v in seconds.values())
    return max(1, round(30 * fast / cnn))


def rows() -> list[Row]:
    fast = get_preset("fast").train
    ablations = [
        ("fast-adam", "AdamW → Adam, no weight decay", {"optimizer": "adam", "weight_decay": 0.0}),
        ("fast-constant-lr", "warmup + cosine → constant LR", {"warmup": 0, "schedule": "constant"}),
        ("fast-no-smoothing", "no label smoothing", {"label_smoothing": 0.0}),
        ("fast-no-augmentation", "no augmentation", {"augment": "none"}),
    ]
    architecture = [
        ("fast-no-spt", "shifted patches", "shifted_patches"),
        ("fast-no-mimetic", "mimetic initialisation", "mimetic_init"),
        ("fast-no-sincos", "sine-cosine positions", "sincos_positions"),
    ]
    return [
        Row(
            CARRIED,
            "reference (the lab's model and recipe, Adam 3e-4)",
            "reference",
            get_preset("reference").train,
            expected=0.86,
            quick=True,
        ),
        Row("fast", "fast (default)", "fast", fast, quick=True),
        Row("fast-20-epochs", "fast at the lab's 20 epochs", "fast", replace(fast, epochs=20), quick=True),
        Row("cnn", "CNN baseline (fast recipe, 30 ep)", "cnn", replace(fast, epochs=30), expected=0.90, quick=True),
        # epochs set from the two rows above: see same_time_epochs
        Row(SAME_TIME, "CNN at the default's wall-clock (fast recipe)", "cnn", fast, quick=True),
        Row("hybrid", "hybrid (conv stem + ViT)", "hybrid", get_preset("hybrid").train),
        Row("vit-pytorch", "vit_pytorch.ViT, fast dims + recipe", None, fast),
        *(Row(i, f"fast − {what}", "fast", replace(fast, **change)) for i, what, change in ablations),
        *(Row(i, f"fast − {what}", "fast", fast, model_changes=((field, False),)) for i, what, field in architecture),
    ]


def vit_pytorch_model(c: ViTConfig) -> torch.nn.Module:
    """lucidrains' ViT with the same dims and number of tokens as a labkit ViT config."""
    from vit_pytorch import ViT

    return ViT(
        image_size=c.image_size,
        patch_size=c.patch_size,
        num_classes=c.num_classes,
        dim=c.dim,
        depth=c.depth,
        heads=c.heads,
        mlp_dim=c.mlp_dim,
        channels=c.channels,
        dim_head=c.dim_head,
        dropout=c.dropout,
        emb_dropout=c.emb_dropout,
    )


def where_text(where: dict) -> str:
    return f"{where['cpu']}, {where['cores']} cores, torch {where['torch']}"


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    names = (
        [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        if cpuinfo.is_file()
        else []
    )
    cpu = names[0] if names else platform.processor() or "unknown CPU"
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": str(torch.__version__)}


def run_one(row: Row, data, seed: int) -> dict:
    torch.manual_seed(seed)
    if row.preset is None:
        model = vit_pytorch_model(fit_to_data(get_preset("fast").model, len(data.classes)))
    else:
        model = build(fit_to_data(get_preset(row.preset).model, len(data.classes)), seed, dict(row.model_changes))
    history = fit(model, data, row.train, seed, out=io.StringIO(), progress=False)
    return {
        "accuracy": history.final_accuracy,
        "seconds": history.seconds,
        "epochs": row.train.epochs,
        "params": count_parameters(model),
        "images_per_s": len(data.train) * row.train.epochs / history.seconds,
    }


def key(row: Row, set_id: str, seed: int) -> str:
    return f"{row.id}|{set_id}|{seed}"


def throughput(c: ViTConfig, steps: int, rounds: int = 5, batch: int = 64, device: str = "cpu") -> tuple[float, float]:
    """Median training images/s of labkit's ViT with config ``c`` and of vit_pytorch.ViT at its dims and number
    of tokens (always the paper's plain patches and attention), interleaved runs."""
    models = {
        "labkit": build_model(c, 0).to(device),
        "vit_pytorch": vit_pytorch_model(c).to(device),
    }
    x = torch.randn(batch, c.channels, c.image_size, c.image_size, device=device)
    y = torch.randint(0, c.num_classes, (batch,), device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda: None  # GPU work is async
    optimizers = {name: torch.optim.AdamW(model.train().parameters()) for name, model in models.items()}

    def train_steps(name: str, n: int) -> None:
        for _ in range(n):
            loss = torch.nn.functional.cross_entropy(models[name](x), y)
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()

    for name in models:  # one untimed step each: allocator, kernel choice, optimizer state
        train_steps(name, 1)
    rates = {name: [] for name in models}
    for _ in range(rounds):
        for name in models:
            sync()
            start = time.perf_counter()
            train_steps(name, steps)
            sync()
            rates[name].append(batch * steps / (time.perf_counter() - start))
    return statistics.median(rates["labkit"]), statistics.median(rates["vit_pytorch"])


def throughput_table(device: str) -> list[str]:
    """labkit's ViT against vit_pytorch.ViT in training images/s, at the fast and the reference preset's dims."""
    on_gpu = torch.device(device).type != "cpu"
    # A CPU step at the reference's dims takes ~2 s on 2 cores; a GPU step takes milliseconds and is bound by kernel
    # launches, which jitter, so GPU runs are longer and more.
    steps = {"fast": 100, "reference": 100} if on_gpu else {"fast": 8, "reference": 2}
    rounds = 15 if on_gpu else 5
    lines = [
        f"**Training throughput on the {'GPU' if on_gpu else 'CPU'}** (batch 64, median of {rounds} interleaved "
        f"runs of {steps['fast']} steps, {steps['reference']} at the reference's dims; same dims and tokens):",
        "",
        "| dims | labkit img/s | vit_pytorch img/s | ratio |",
        "|---|---:|---:|---:|",
    ]
    fast, plain = get_preset("fast").model, {"shifted_patches": False, "locality_attention": False}
    for dims, config, n in (
        ("fast, plain ViT (the same model as vit_pytorch's)", replace(fast, **plain), steps["fast"]),
        ("fast as trained (+ shifted patches, against plain vit_pytorch)", fast, steps["fast"]),
        ("reference", get_preset("reference").model, steps["reference"]),
    ):
        ours, theirs = throughput(config, n, rounds, device=device)
        lines.append(f"| {dims} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f}× |")
    return lines + [""]


def bare_loop_table() -> list[str]:
    """labkit's fit against a bare PyTorch loop on the same model, for the four presets (bare_loop.py)."""
    from bare_loop import EPOCHS, compare

    lines = [
        "**labkit's loop against a bare PyTorch loop** (`benchmarks/bare_loop.py`: the same model, data, "
        "shifts and optimizer in a minimal loop; training steps alone, then with a test evaluation every epoch, "
        "which the lab's log needs; median of alternating runs; training images/s):",
        "",
        "| preset | epochs | steps: bare | labkit | ratio | with evaluations: bare | labkit | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for preset in ("fast", "reference", "cnn", "hybrid"):
        v = compare(preset, rounds=1 if preset == "reference" else 3)
        lines.append(
            f"| {preset} | {EPOCHS[preset]} | {v['bare_steps']:.0f} | {v['fit_steps']:.0f} | "
            f"{v['fit_steps'] / v['bare_steps']:.2f}× | {v['bare']:.0f} | {v['fit']:.0f} | "
            f"{v['fit'] / v['bare']:.2f}× |"
        )
    return lines + [""]


def fmt(results: list[dict], row: Row, seeds: int, set_id: str) -> str:
    acc = [r["accuracy"] * 100 for r in results]
    mean = statistics.mean(acc)
    accuracy = f"{mean:.1f} ± {statistics.stdev(acc):.1f}" if len(acc) > 1 else f"{mean:.1f}"
    if len(acc) < seeds:
        accuracy += f" ({len(acc)} of {seeds} seeds)"
    if row.expected is not None and set_id == "clothes" and mean < row.expected * 100:
        accuracy += f" **BROKEN: below its expected {row.expected:.0%}**; check the recipe and the data"
    cells = [
        row.name,
        f"{results[0]['params']:,}",
        accuracy,
        str(results[0]["epochs"]),
        f"{statistics.mean(r['seconds'] for r in results):.0f}",
        f"{statistics.mean(r['images_per_s'] for r in results):.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def summary_row(results: list[dict], row: Row, set_id: str) -> dict:
    """One row of labkit/notebook/benchmark.csv, which labkit reads by row id."""
    acc = [r["accuracy"] for r in results]
    return {
        "id": row.id,
        "set": set_id,
        "name": row.name,
        "params": results[0]["params"],
        "seeds": len(acc),
        # 6 digits, so that the notebook's rounding to 0.1% gives the tables' figures (no double rounding)
        "mean_accuracy": round(statistics.mean(acc), 6),
        "std_accuracy": round(statistics.stdev(acc), 6) if len(acc) > 1 else 0.0,
        "epochs": results[0]["epochs"],
        "seconds": round(statistics.mean(r["seconds"] for r in results), 1),
        "machine": results[0]["machine"],
    }


def gap_table(summary: list[dict]) -> list[str]:
    """The default against the CNN trained for its wall-clock, per set: the ViT's gap (negative: behind)."""
    found = {(r["set"], r["id"]): r for r in summary}
    lines = [
        "**The default against the CNN at its wall-clock** (test accuracy, mean over the seeds; the gap is the "
        "ViT's, in points):",
        "",
        "| set | fast (default) | CNN at the default's wall-clock | gap |",
        "|---|---:|---:|---:|",
    ]
    for set_id, set_name in SETS.items():
        vit, cnn = found.get((set_id, "fast")), found.get((set_id, SAME_TIME))
        if vit and cnn:
            gap = (vit["mean_accuracy"] - cnn["mean_accuracy"]) * 100
            lines.append(
                f"| {set_name} | {vit['mean_accuracy']:.1%} | {cnn['mean_accuracy']:.1%} "
                f"({cnn['epochs']} epochs) | {gap:+.1f} |"
            )
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed and the reference, fast and CNN rows only")
    parser.add_argument("--resume", action="store_true", help="reuse cached rows with the same settings")
    parser.add_argument("--readme", action="store_true", help="write the tables into README.md")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", help="comma-separated row-name prefixes to run (default: all)")
    parser.add_argument("--cached-only", action="store_true", help="train nothing: tables from the cache")
    parser.add_argument("--no-throughput", action="store_true", help="skip the throughput comparison")
    parser.add_argument("--throughput-only", action="store_true", help="only the throughput comparison, on --device")
    parser.add_argument("--device", default="cpu", help="where --throughput-only runs (cuda for a GPU; default cpu)")
    args = parser.parse_args(argv)
    if args.device != "cpu" and not args.throughput_only:
        parser.error("--device applies to --throughput-only; the accuracy rows train on the CPU, so wall times compare")
    if args.throughput_only:
        try:
            device = torch.device(args.device)
        except RuntimeError:
            parser.error(f"--device {args.device!r} is not a device torch knows; use cpu or cuda")
        if device.type == "cuda" and not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA GPU found here; run it on a GPU machine, or leave --device out")
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else machine()["cpu"]
        lines = [f"Device: {name}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}.", ""]
        lines += throughput_table(args.device)
        print("\n".join(lines))
        if args.readme:
            write_block(f"throughput-{device.type}", lines)
        return 0
    seeds = range(1 if args.quick else args.seeds)
    where = machine()
    cache = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
    lines = [
        f"{len(seeds)} seed(s) per row; test accuracy is the final epoch's on the lab's 70/30 split; seconds and "
        "images/s from the machine each row's runs name in labkit/notebook/benchmark.csv.",
        "",
    ]
    summary: list[dict] = []
    for set_id, set_name in SETS.items():
        try:
            data = load_data(DEVELOPMENT_SETS[set_id][0]())
        except LabError as err:
            print(f"skipping {set_name}: {err} (apt-get install dataset-fashion-mnist)", file=sys.stderr)
            continue
        lines += [
            f"**{set_name}**: {len(data.train)} train / {len(data.test)} test",
            "",
            "| row | params | test acc % (mean ± std) | epochs | wall s | train img/s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        wanted = [p.strip() for p in args.rows.split(",")] if args.rows else None
        for row in (r for r in rows() if (r.quick or not args.quick)):
            if row.id == SAME_TIME:
                epochs = same_time_epochs(cache, set_id)
                if epochs is None:
                    lines.append(f"| {row.name} | | needs the fast and CNN rows first | | | |")
                    continue
                row = replace(row, train=replace(row.train, epochs=epochs))
            results = []
            rerun = wanted is not None and row.id in wanted
            for seed in seeds:
                k = key(row, set_id, seed)
                if k in cache and not rerun and (args.resume or args.cached_only):
                    results.append(cache[k])
                elif not args.cached_only and (row.id != CARRIED or rerun) and (wanted is None or rerun):
                    print(f"{set_name} · {row.name} · seed {seed} ...", file=sys.stderr, flush=True)
                    cache[k] = run_one(row, data, seed) | {
                        "row": row.id,
                        "set": set_id,
                        "seed": seed,
                        "machine": where_text(where),
                    }
                    CACHE.parent.mkdir(exist_ok=True)
                    CACHE.write_text(json.dumps(cache, indent=1, sort_keys=True))
                    results.append(cache[k])
            missing = f"| {row.name} | | not run yet | | | |"
            lines.append(fmt(results, row, len(seeds), set_id) if results else missing)
            if results:
                summary.append(summary_row(results, row, set_id))
            print(lines[-1], file=sys.stderr, flush=True)
        lines.append("")
    lines += gap_table(summary)
    with open(SUMMARY, "w", newline="") as f:
        writer = csv.DictWriter(f, list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    print("\n".join(lines))
    if args.readme:
        write_block("benchmark", lines)
    if not args.no_throughput:
        speed = {"bare-loop": bare_loop_table(), "throughput-cpu": throughput_table("cpu")}
        for name, table in speed.items():
            print("\n".join(table))
            if args.readme:
                write_block(name, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
