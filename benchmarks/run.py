"""The fast recipe against the lab's reference recipe, the CNN baseline, the hybrid and vit-pytorch, side by side.

    pip install -r benchmarks/requirements.txt
    python benchmarks/run.py [--quick] [--resume] [--readme]
    python benchmarks/run.py --throughput-only --device cuda [--readme]   # on a GPU machine

Prints one table per data set: parameters, test accuracy (final epoch, mean ± std over seeds), wall seconds and
training images per second; then the default's gap to the CNN trained for the same wall-clock, per set; then the
training throughput of labkit's ViT against vit_pytorch.ViT at the same dims.
Every finished row is cached in benchmarks/results/cache.json with its settings and machine: --resume reuses those
and reruns only rows whose settings changed. --readme writes the tables into README.md.

Data sets: the built-in set; the hard set (Fashion-MNIST classes 0-5, the first 300 of each in the training file)
from Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist), skipped with a message without
it; and the generated texture set (sets.py). Not part of the test suite: the full run takes hours on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from sets import DEVELOPMENT_SETS

from labkit.data import load_data
from labkit.errors import LabError
from labkit.models import build_model, count_parameters, fit_to_data, model_kind
from labkit.presets import get_preset
from labkit.train import TrainConfig, fit
from labkit.vit import ViTConfig

HERE = Path(__file__).resolve().parent
CACHE = HERE / "results" / "cache.json"
SUMMARY = HERE.parent / "labkit" / "results" / "benchmark.csv"  # shipped with labkit: the QA notebook reads it
README = HERE.parent / "README.md"
# The three development sets by the names the tables and labkit/results/benchmark.csv give them.
SETS = {
    "built-in (MNIST 0-5 × 300)": DEVELOPMENT_SETS["digits"][0],
    "hard (Fashion-MNIST 0-5 × 300)": DEVELOPMENT_SETS["clothes"][0],
    "textures (generated, 6 kinds × 300)": DEVELOPMENT_SETS["textures"][0],
}
HARD_SET = "hard (Fashion-MNIST 0-5 × 300)"


@dataclass(frozen=True)
class Row:
    name: str
    preset: str | None  # a labkit preset's model, or None for vit_pytorch.ViT at the fast preset's dims
    train: TrainConfig
    expected: float | None = None  # on the hard set: a fixed baseline below this is broken
    quick: bool = False  # part of --quick
    model_changes: tuple[tuple[str, object], ...] = ()  # (field, value) changes to the preset's model config

    def model_config(self):
        return replace(get_preset(self.preset).model, **dict(self.model_changes))


SAME_TIME = "CNN at the default's wall-clock (fast recipe)"
# The reference recipe takes about 300 s a run on 2 cores: it reruns only when --rows names it. Until then its rows
# from an earlier benchmark run (the same model, recipe and data, another machine or torch) are shown, with a dagger.
CARRIED = "reference (the lab's model and recipe, Adam 3e-4)"


def same_time_epochs(cache: dict, set_name: str) -> int | None:
    """Epochs of the CNN that take as long as the fast default: from the mean seconds of the cached fast and
    30-epoch CNN rows of this set (None until both have run)."""
    seconds = {name: [v["seconds"] for v in cache.values() if v["row"] == name and v["set"] == set_name]
               for name in ("fast (default)", "CNN baseline (fast recipe, 30 ep)")}  # fmt: skip
    if not all(seconds.values()):
        return None
    fast, cnn = (statistics.mean(v) for v in seconds.values())
    return max(1, round(30 * fast / cnn))


def rows() -> list[Row]:
    fast = get_preset("fast").train
    ablations = [
        ("AdamW → Adam, no weight decay", {"optimizer": "adam", "weight_decay": 0.0}),
        ("warmup + cosine → constant LR", {"warmup": 0, "schedule": "constant"}),
        ("no label smoothing", {"label_smoothing": 0.0}),
    ]
    if fast.augment != "none":
        ablations.append(("no augmentation", {"augment": "none"}))
    model = get_preset("fast").model
    architecture = [(what, field) for what, field in (("shifted patches", "shifted_patches"),
                    ("locality attention", "locality_attention"), ("mimetic initialisation", "mimetic_init"),
                    ("sine-cosine positions", "sincos_positions")) if getattr(model, field)]  # fmt: skip
    return [
        Row(CARRIED, "reference", get_preset("reference").train, expected=0.86, quick=True),
        Row("fast (default)", "fast", fast, quick=True),
        Row("fast at the lab's 20 epochs", "fast", replace(fast, epochs=20), quick=True),
        Row("CNN baseline (fast recipe, 30 ep)", "cnn", replace(fast, epochs=30), expected=0.90, quick=True),
        Row(SAME_TIME, "cnn", fast, quick=True),  # epochs set from the two rows above: see same_time_epochs
        Row("hybrid (conv stem + ViT)", "hybrid", get_preset("hybrid").train),
        Row("vit_pytorch.ViT, fast dims + recipe", None, fast),
        *(Row(f"fast − {what}", "fast", replace(fast, **change)) for what, change in ablations),
        *(Row(f"fast − {what}", "fast", fast, model_changes=((field, False),)) for what, field in architecture),
    ]


def vit_pytorch_model(c: ViTConfig) -> torch.nn.Module:
    """lucidrains' ViT with the same dims and number of tokens as a labkit ViT config."""
    from vit_pytorch import ViT

    return ViT(image_size=c.image_size, patch_size=c.patch_size, num_classes=c.num_classes, dim=c.dim, depth=c.depth,
               heads=c.heads, mlp_dim=c.mlp_dim, channels=c.channels, dim_head=c.dim_head, dropout=c.dropout,
               emb_dropout=c.emb_dropout)  # fmt: skip


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.is_file() else []  # fmt: skip
    cpu = names[0] if names else platform.processor() or "unknown CPU"
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": str(torch.__version__)}


def run_one(row: Row, data, seed: int) -> dict:
    torch.manual_seed(seed)
    if row.preset is None:
        model = vit_pytorch_model(fit_to_data(get_preset("fast").model, len(data.classes)))
    else:
        model = build_model(fit_to_data(row.model_config(), len(data.classes)), seed)
    history = fit(model, data, row.train, seed, out=io.StringIO(), progress=False)
    return {"accuracy": history.final_accuracy, "seconds": history.seconds, "epochs": row.train.epochs,
            "params": count_parameters(model),
            "images_per_s": len(data.train) * row.train.epochs / history.seconds}  # fmt: skip


def settings(config) -> dict:
    """A config's settings, less those that are off (False or 0): a setting added later, off by default, leaves the
    runs it does not change with the same key, since before it existed every run had it off."""
    return {k: v for k, v in asdict(config).items() if v not in (False, 0)}


def key(row: Row, set_name: str, fingerprint: str, seed: int, where: dict) -> str:
    model = "vit_pytorch" if row.preset is None else {"kind": model_kind(row.model_config()),
                                                       **settings(row.model_config())}  # fmt: skip
    spec = {"model": model, "train": settings(row.train), "set": set_name, "data": fingerprint, "seed": seed,
            "machine": where}  # fmt: skip
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


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
    lines = [f"**Training throughput on the {'GPU' if on_gpu else 'CPU'}** (batch 64, median of {rounds} interleaved "
             f"runs of {steps['fast']} steps, {steps['reference']} at the reference's dims; same dims and tokens):", "",
             "| dims | labkit img/s | vit_pytorch img/s | ratio |", "|---|---:|---:|---:|"]  # fmt: skip
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

    lines = ["**labkit's loop against a bare PyTorch loop** (`benchmarks/bare_loop.py`: the same model, data, "
             "shifts and optimizer in a minimal loop; training steps alone, then with a test evaluation every epoch, "
             "which the lab's log needs; median of alternating runs; training images/s):", "",
             "| preset | epochs | steps: bare | labkit | ratio | with evaluations: bare | labkit | ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for preset in ("fast", "reference", "cnn", "hybrid"):
        v = compare(preset, rounds=1 if preset == "reference" else 3)
        lines.append(f"| {preset} | {EPOCHS[preset]} | {v['bare_steps']:.0f} | {v['fit_steps']:.0f} | "
                     f"{v['fit_steps'] / v['bare_steps']:.2f}× | {v['bare']:.0f} | {v['fit']:.0f} | "
                     f"{v['fit'] / v['bare']:.2f}× |")  # fmt: skip
    return lines + [""]


def write_readme_block(name: str, lines: list[str]) -> None:
    """Replace what README.md holds between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    text = README.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"error: README.md has no {start} ... {end} block; add one where the table should go")
    head, rest = text.split(start)
    README.write_text(head + start + "\n" + "\n".join(lines).strip() + "\n" + end + rest.split(end)[1])


def fmt(results: list[dict], row: Row, seeds: int, set_name: str) -> str:
    acc = [r["accuracy"] * 100 for r in results]
    mean = statistics.mean(acc)
    accuracy = f"{mean:.1f} ± {statistics.stdev(acc):.1f}" if len(acc) > 1 else f"{mean:.1f}"
    if len(acc) < seeds:
        accuracy += f" ({len(acc)} of {seeds} seeds)"
    if row.expected is not None and set_name == HARD_SET and mean < row.expected * 100:
        accuracy += f" **BROKEN: below its expected {row.expected:.0%}**; check the recipe and the data"
    epochs = results[0].get("epochs", row.train.epochs)
    name = row.name + (" †" if any(r.get("carried") for r in results) else "")
    cells = [name, f"{results[0]['params']:,}", accuracy, str(epochs),
             f"{statistics.mean(r['seconds'] for r in results):.0f}",
             f"{statistics.mean(r['images_per_s'] for r in results):.0f}"]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def summary_row(results: list[dict], row: Row, set_name: str, where: dict) -> dict:
    """One row of labkit/results/benchmark.csv, which the QA notebook reads for the figures it quotes."""
    acc = [r["accuracy"] for r in results]
    return {"set": set_name, "row": row.name, "params": results[0]["params"], "seeds": len(acc),
            # 6 digits, so that the notebook's rounding to 0.1% gives the README's figures (no double rounding)
            "mean_accuracy": round(statistics.mean(acc), 6),
            "std_accuracy": round(statistics.stdev(acc), 6) if len(acc) > 1 else 0.0,
            "epochs": results[0].get("epochs", row.train.epochs),
            "seconds": round(statistics.mean(r["seconds"] for r in results), 1),
            "carried": any(r.get("carried") for r in results),
            "machine": f"{where['cpu']}, {where['cores']} cores, torch {where['torch']}"}  # fmt: skip


def gap_table(summary: list[dict]) -> list[str]:
    """The default against the CNN trained for its wall-clock, per set: the ViT's gap (negative: behind)."""
    found = {(r["set"], r["row"]): r for r in summary}
    lines = ["**The default against the CNN at its wall-clock** (test accuracy, mean over the seeds; the gap is the "
             "ViT's, in points):", "", "| set | fast (default) | CNN at the default's wall-clock | gap |",
             "|---|---:|---:|---:|"]  # fmt: skip
    for set_name in SETS:
        vit, cnn = found.get((set_name, "fast (default)")), found.get((set_name, SAME_TIME))
        if vit and cnn:
            gap = (vit["mean_accuracy"] - cnn["mean_accuracy"]) * 100
            lines.append(f"| {set_name} | {vit['mean_accuracy']:.1%} | {cnn['mean_accuracy']:.1%} "
                         f"({cnn['epochs']} epochs) | {gap:+.1f} |")  # fmt: skip
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
            write_readme_block(f"throughput-{device.type}", lines)
        return 0
    seeds = range(1 if args.quick else args.seeds)
    where = machine()
    cache = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
    lines = [f"Machine: {where['cpu']}, {where['cores']} cores ({where['threads']} torch threads), torch "
             f"{where['torch']}, {time.strftime('%Y-%m-%d')}; {len(seeds)} seed(s) per row; test accuracy is the final "
             "epoch's on the lab's 70/30 split.", ""]  # fmt: skip
    summary: list[dict] = []
    for set_name, config in SETS.items():
        try:
            data = load_data(config())
        except LabError as err:
            print(f"skipping {set_name}: {err} (apt-get install dataset-fashion-mnist)", file=sys.stderr)
            continue
        lines += [
            f"**{set_name}**: {len(data.train)} train / {len(data.test)} test",
            "",
            "| row | params | test acc % (mean ± std) | epochs | wall s | train img/s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        wanted = [p.strip().lower() for p in args.rows.split(",")] if args.rows else [""]
        for row in (r for r in rows() if (r.quick or not args.quick) and r.name.lower().startswith(tuple(wanted))):
            if row.name == SAME_TIME:
                epochs = same_time_epochs(cache, set_name)
                if epochs is None:
                    lines.append(f"| {row.name} | | needs the fast and CNN rows first | | | |")
                    continue
                row = replace(row, train=replace(row.train, epochs=epochs))
            results = []
            carry = row.name == CARRIED and not args.rows  # rerun only when --rows names it
            for seed in seeds:
                k = key(row, set_name, data.fingerprint, seed, where)
                if (args.cached_only or carry) and k not in cache:
                    continue
                if k not in cache or not (args.resume or args.cached_only):  # --cached-only never trains
                    print(f"{set_name} · {row.name} · seed {seed} ...", file=sys.stderr, flush=True)
                    cache[k] = run_one(row, data, seed) | {"row": row.name, "set": set_name, "seed": seed}
                    CACHE.parent.mkdir(exist_ok=True)
                    CACHE.write_text(json.dumps(cache, indent=1, sort_keys=True))
                results.append(cache[k])
            if not results and row.name == CARRIED:
                results = [
                    v | {"carried": True} for v in cache.values() if v["row"] == CARRIED and v["set"] == set_name
                ]
            missing = f"| {row.name} | | not run yet | | | |"
            lines.append(fmt(results, row, len(seeds), set_name) if results else missing)
            if results:
                summary.append(summary_row(results, row, set_name, where))
            print(lines[-1], file=sys.stderr, flush=True)
        lines.append("")
    lines += gap_table(summary)
    with open(SUMMARY, "w", newline="") as f:
        writer = csv.DictWriter(f, list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    if any(line.startswith(f"| {CARRIED} †") for line in lines):
        lines += [f"† from an earlier run of this benchmark (the same model, recipe and data, {where['cores']} cores; "
                  "another machine or torch), not rerun: about 300 s a run.", ""]  # fmt: skip
    if not args.no_throughput:
        lines += bare_loop_table() + throughput_table("cpu")
    print("\n".join(lines))
    if args.readme:
        write_readme_block("benchmark", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
