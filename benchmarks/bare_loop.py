"""labkit's training loop against a bare PyTorch loop on the same model: is ``fit`` as fast as the minimum?

    python benchmarks/bare_loop.py [--presets fast,reference,cnn,hybrid] [--rounds 3]

The bare loop takes only the model and its augmentation setting from labkit: one in-memory uint8 tensor, a shuffle,
the same per-image shifts (and flips), normalisation, AdamW and cross-entropy; no schedule, no log. labkit's ``fit``
does all of that plus the schedule, the lab's log and a test evaluation every epoch, which the lab requires. So both
are timed twice: their training steps alone (``fit`` with no per-epoch evaluation; the bare loop's time less its
evaluations), and as a whole, the bare loop then with the same minimal evaluation of the test split each epoch
(normalised once, batches of 128, no gradients). Both train
the same number of images on the built-in set; the two runs alternate, and the median of a few rounds is kept.
Ratios within one run are what to read: absolute images/s change with the machine and load.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from labkit.data import DataConfig, load_data, max_shift, normalise
from labkit.models import build_model, fit_to_data
from labkit.presets import get_preset
from labkit.train import fit

# Epochs per timed run: about 3-10 s each on 2 CPU cores (one reference-preset epoch alone takes about a minute).
EPOCHS = {"fast": 3, "reference": 1, "cnn": 2, "hybrid": 2}


def bare_fit(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    batch: int,
    augment: str,
    mean: float,
    std: float,
    test: tuple[torch.Tensor, torch.Tensor],
) -> tuple[float, float]:
    """Seconds to train ``model`` for ``epochs`` on uint8 images ``x`` (N, C, H, W) and labels ``y``, evaluating on
    ``test`` (uint8 images, labels) after each epoch; and the seconds of those evaluations."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    test_x, test_y = normalise(test[0], mean, std), test[1]
    evaluating = 0.0
    s = max_shift(x.shape[-1])
    n, (h, w) = len(y), x.shape[-2:]
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n)
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            xb = x[idx]
            if augment != "none":
                # per-image offsets as one gather from the padded batch (single channel, as the lab's images)
                padded = F.pad(xb, (s, s, s, s))[:, 0]
                dy, dx = torch.randint(0, 2 * s + 1, (2, len(idx), 1))
                rows, cols = dy + torch.arange(h), dx + torch.arange(w)
                xb = padded[torch.arange(len(idx))[:, None, None], rows[:, :, None], cols[:, None, :]][:, None]
                if augment == "shift+flip":
                    xb = torch.where(torch.rand(len(idx), 1, 1, 1) < 0.5, xb.flip(-1), xb)
            loss = F.cross_entropy(model(normalise(xb, mean, std)), y[idx], label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        began = time.perf_counter()
        model.eval()
        with torch.no_grad():  # the loss and accuracy that labkit's log prints, read back as numbers as it does
            logits = torch.cat([model(test_x[i : i + 128]) for i in range(0, len(test_y), 128)])
            F.cross_entropy(logits, test_y).item(), (logits.argmax(1) == test_y).float().mean().item()
        model.train()
        evaluating += time.perf_counter() - began
    return time.perf_counter() - start, evaluating


def compare(preset: str, rounds: int) -> dict[str, float]:
    """Training images/s, medians over ``rounds`` alternating runs, of labkit's fit and of the bare loop: their
    training steps alone (``fit_steps``, ``bare_steps``) and whole, per-epoch evaluations included (``fit``,
    ``bare``)."""
    p = get_preset(preset)
    data = load_data(DataConfig(image_size=p.model.image_size))
    config = fit_to_data(p.model, len(data.classes))
    epochs = EPOCHS.get(preset, 2)
    recipe = p.recipe(epochs)
    images = len(data.train) * epochs
    speeds: dict[str, list[float]] = {"fit": [], "fit_steps": [], "bare": [], "bare_steps": []}
    for r in range(rounds):
        for name in ("labkit", "bare") if r % 2 == 0 else ("bare", "labkit"):
            if name == "labkit":
                whole = fit(build_model(config, seed=0), data, recipe, out=io.StringIO(), progress=False).seconds
                steps = fit(
                    build_model(config, seed=0), data, recipe, eval_part=None, out=io.StringIO(), progress=False
                ).seconds
            else:
                test = (data.test.x, data.test.y)
                whole, evaluating = bare_fit(
                    build_model(config, seed=0),
                    data.train.x,
                    data.train.y,
                    epochs,
                    recipe.batch_size,
                    recipe.augment,
                    data.mean,
                    data.std,
                    test,
                )
                steps = whole - evaluating
            prefix = "fit" if name == "labkit" else "bare"
            speeds[prefix].append(images / whole)
            speeds[f"{prefix}_steps"].append(images / steps)
    return {k: statistics.median(v) for k, v in speeds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="fast,reference,cnn,hybrid")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.rounds} alternating runs")
    print("| preset | epochs | training steps: bare | labkit | ratio | with evaluations: bare | labkit | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for preset in args.presets.split(","):
        v = compare(preset, args.rounds)
        print(
            f"| {preset} | {EPOCHS.get(preset, 2)} | {v['bare_steps']:.0f} | {v['fit_steps']:.0f} | "
            f"{v['fit_steps'] / v['bare_steps']:.2f}× | {v['bare']:.0f} | {v['fit']:.0f} | "
            f"{v['fit'] / v['bare']:.2f}× |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
