"""The lab's figures, one per function; class names (the student's folder names) are drawn ``literal``, not as math."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from labkit.lab import BASELINE

if TYPE_CHECKING:
    from labkit.metrics import Paired
    from labkit.train import History

MAX_CLASSES_DRAWN = 20  # rows of the sample grid; numbers in the confusion matrix's cells


def literal(text: object) -> str:
    """``text`` as matplotlib draws it unchanged: a ``$`` would otherwise start math (and a stray one fail)."""
    return str(text).replace("$", r"\$")


def sample_grid(x: Tensor, y: Tensor, classes: list[str], per_class: int = 8) -> Figure:
    """The first ``per_class`` images of each class, one row per class (of the first MAX_CLASSES_DRAWN)."""
    shown = classes[:MAX_CLASSES_DRAWN]
    fig, axes = plt.subplots(len(shown), per_class, figsize=(per_class * 0.65, len(shown) * 0.68), squeeze=False)
    for row, name in enumerate(shown):
        idx = (y == row).nonzero().flatten()[:per_class]
        for col, ax in enumerate(axes[row]):
            ax.set(xticks=[], yticks=[])
            if col < len(idx):
                ax.imshow(x[idx[col], 0], cmap="gray", vmin=0, vmax=255)
        axes[row, 0].set_ylabel(literal(name), rotation=0, ha="right", va="center")
    more = f" (the first {len(shown)} of {len(classes)} classes)" if len(shown) < len(classes) else ""
    fig.suptitle(f"Training images, by class{more}")
    return fig


def patch_grid(image: Tensor, patch_size: int, shifted: Tensor | None = None, title: str = "") -> Figure:
    """One image (1 x H x W) cut into patches numbered as tokens ([CLS] is 0), then SPT's ``shifted`` copies, if any."""
    img, g = image[0].float(), image.shape[-1] // patch_size
    copies = [] if shifted is None else list(zip(shifted[1:], [f"shifted {a}" for a in "↘↙↗↖"], strict=True))
    n = len(copies)
    fig, axes = plt.subplots(
        1, 1 + n, figsize=(4.6 + 2.2 * n, 4.6), layout="constrained", width_ratios=[2] + [1] * n, squeeze=False
    )
    ax = axes[0, 0]
    ax.imshow(img, cmap="gray", vmin=0, vmax=255)
    for k in range(1, g):
        ax.axhline(k * patch_size - 0.5, color="tab:red", lw=0.8)
        ax.axvline(k * patch_size - 0.5, color="tab:red", lw=0.8)
    style = {"color": "yellow", "ha": "center", "va": "center", "fontsize": 7 if g > 5 else 10}
    box = {"boxstyle": "round,pad=0.1", "fc": "black", "alpha": 0.5, "lw": 0}
    for r, c in np.ndindex(g, g):
        ax.text((c + 0.5) * patch_size - 0.5, (r + 0.5) * patch_size - 0.5, str(r * g + c + 1), **style, bbox=box)
    ax.set_title(f"{img.shape[-2]}×{img.shape[-1]} image, {g}×{g} patches of {patch_size}×{patch_size} px")
    ax.set(xlabel="column (pixels)", ylabel="row (pixels)")
    for a, (picture, name) in zip(axes[0, 1:], copies, strict=True):
        a.imshow(picture, cmap="gray", vmin=0, vmax=1)
        a.set(title=name, xticks=[], yticks=[])
    fig.suptitle(title or "Patchify: pixel (i, j) goes to patch (i // p, j // p)")
    return fig


def training_curves(
    history: History, baseline: float = BASELINE, loss_floor: float | None = None, augment: str = "shift"
) -> Figure:
    """Loss and accuracy per epoch, training (augmented as ``augment`` says) beside test, and ``loss_floor`` if any."""
    epochs = np.arange(1, len(history.eval_loss) + 1)
    fig, (loss, acc) = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
    loss.plot(epochs, history.train_loss, label="training" + (" (smoothed targets)" if loss_floor else ""))
    loss.plot(epochs, history.eval_loss, label="test (plain targets)")
    if loss_floor:
        loss.axhline(loss_floor, color="gray", ls=":", label=f"floor under smoothing ({loss_floor:.3f})")
    loss.set(title="Loss per epoch", xlabel="epoch", ylabel="cross-entropy (nats)", ylim=(0, None))
    loss.legend()
    if history.train_accuracy:
        words = {"none": "as they passed", "shift": "shifted, as they passed", "shift+flip": "shifted and mirrored"}
        acc.plot(epochs, np.array(history.train_accuracy) * 100, label=f"training ({words[augment]})")
    acc.plot(epochs, np.array(history.eval_accuracy) * 100, label="test")
    acc.axhline(baseline * 100, color="tab:red", ls="--", label=f"{baseline:.0%} baseline")
    acc.set(title="Accuracy per epoch", xlabel="epoch", ylabel="accuracy (%)", ylim=(0, 100))
    acc.legend(loc="lower right")
    for ax in (loss, acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0.5, len(epochs) + 0.5)
    return fig


def confusion(matrix: Tensor, classes: list[str]) -> Figure:
    """The confusion matrix (rows: true class), its counts written in the cells when there are few classes."""
    m, k = matrix.numpy(), len(classes)
    size = min(9, 2 + 0.25 * k)
    fig, ax = plt.subplots(figsize=(size + 1.2, size), layout="constrained")
    image = ax.imshow(m, cmap="Blues")
    if k <= MAX_CLASSES_DRAWN:
        for i, j in np.ndindex(k, k):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    if k <= 2 * MAX_CLASSES_DRAWN:
        labels = [literal(c) for c in classes]
        ax.set_xticks(range(k), labels, rotation=45, ha="right")
        ax.set_yticks(range(k), [f"{c} ({n})" for c, n in zip(labels, m.sum(1), strict=True)])
    ax.set(xlabel="predicted class", ylabel="true class (test images)", title="Confusion matrix (test split)")
    fig.colorbar(image, ax=ax, shrink=0.8, label="images")
    return fig


def misclassified(x: Tensor, y: Tensor, pred: Tensor, classes: list[str], n: int = 16) -> Figure:
    """Up to ``n`` misclassified test images, taken in turn from each true class, so no one class fills the grid."""
    queues = [((pred != y) & (y == c)).nonzero().flatten().tolist() for c in range(len(classes))]
    chosen = []
    while len(chosen) < n and any(queues):
        chosen += [q.pop(0) for q in queues if q][: n - len(chosen)]
    rows, cols = max(1, -(-len(chosen) // 8)), 8
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.8 + 0.5), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, chosen, strict=False):
        ax.imshow(x[i, 0], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"true {literal(classes[y[i]])}\npred {literal(classes[pred[i]])}", fontsize=8)
    total = (pred != y).sum().item()
    some = f"{len(chosen)} shown of {total} (out of {len(y)}), taken in turn from each true class"
    fig.suptitle("Misclassified test images: " + (some if total else f"none of the {len(y)}"))
    return fig


def similarity_range(sims: list[Tensor]) -> tuple[float, float]:
    """The colour scale's ends: the least and most similarity between *different* positions (1.0 would wash out)."""
    g = sims[0].shape[0]
    others = torch.cat([sim.reshape(g * g, g * g)[~torch.eye(g * g, dtype=torch.bool)] for sim in sims])
    return others.min().item(), others.max().item()


def position_similarity(sims: list[Tensor], titles: list[str]) -> Figure:
    """The paper's Fig. 7, a panel per model: at (r, c), patch (r, c)'s position similarity map, one scale for all."""
    g = sims[0].shape[0]
    low, high = similarity_range(sims)
    fig, axes = plt.subplots(1, len(sims), figsize=(3.6 * len(sims), 3.8), squeeze=False, layout="constrained")
    for ax, sim, title in zip(axes[0], sims, titles, strict=True):
        mosaic = torch.ones(g * (g + 1) - 1, g * (g + 1) - 1) * float("nan")  # the maps, a NaN gap between them
        for r, c in np.ndindex(g, g):
            mosaic[r * (g + 1) : r * (g + 1) + g, c * (g + 1) : c * (g + 1) + g] = sim[r, c]
        image = ax.imshow(mosaic, cmap="viridis", vmin=low, vmax=high)
        ax.set_xticks([r * (g + 1) + g / 2 - 0.5 for r in range(g)], range(1, g + 1))
        ax.set_yticks([r * (g + 1) + g / 2 - 0.5 for r in range(g)], range(1, g + 1))
        ax.set(title=title, xlabel="input patch column", ylabel="input patch row")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label=f"cosine similarity ({low:+.2f} to {high:+.2f})")
    fig.suptitle("Similarity of position embeddings")
    return fig


def _even_share_map(fig: Figure, ax, rollout: Tensor, least: float, bar: dict, **style) -> None:
    """Draws ``rollout`` as × an even share, on a log scale symmetric around 1 that spans at least 2**±``least``."""
    ratio = np.log2((rollout / rollout.mean()).clamp(min=1e-6).numpy())
    reach = max(float(np.abs(ratio).max()), least)
    image = ax.imshow(ratio, cmap="RdBu_r", vmin=-reach, vmax=reach, **style)
    ticks = np.linspace(-reach, reach, 5)
    fig.colorbar(image, ax=ax, **bar).set_ticks(ticks, labels=[f"{2**t:.3g}×" for t in ticks])


def attention(image: Tensor, heads: Tensor, to_itself: Tensor, rollout: Tensor, patch_size: int, title: str) -> Figure:
    """The input, the rollout, and per head the last block's [CLS] attention (titles: what [CLS] keeps on itself)."""
    n, g = heads.shape[0], heads.shape[-1]
    rows, cols = -(-(n + 2) // 6), min(n + 2, 6)  # six panels a row
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.2 * rows + 0.4), layout="constrained", squeeze=False)
    axes = axes.ravel()
    for ax in axes[n + 2 :]:
        ax.set_axis_off()
    axes[0].imshow(image[0], cmap="gray", vmin=0, vmax=255)
    for k in range(1, g):
        axes[0].axhline(k * patch_size - 0.5, color="tab:red", lw=0.6)
        axes[0].axvline(k * patch_size - 0.5, color="tab:red", lw=0.6)
    axes[0].set_title("input and its patches", fontsize=9)
    _even_share_map(fig, axes[1], rollout, 1.0, {"shrink": 0.85})
    axes[1].set_title("rollout, all blocks\n(× an even share)", fontsize=9)
    for h, ax in enumerate(axes[2 : n + 2]):
        shown = ax.imshow(heads[h], cmap="magma", vmin=0, vmax=heads.max().item())
        ax.set_title(f"head {h + 1}\nkeeps {to_itself[h].item():.2f} on [CLS]", fontsize=9)
    fig.colorbar(shown, ax=list(axes[2 : n + 2]), shrink=0.7, label="[CLS] attention weight")
    for ax in axes:
        ax.set(xticks=[], yticks=[])
    fig.suptitle(title)
    return fig


def explorer_view(
    image: Tensor,
    attention: Tensor,
    title: str,
    rollout: bool,
    probabilities: Tensor,
    classes: list[str],
    true: int,
    similarity: Tensor,
    position: tuple[int, int],
    patch_size: int,
) -> Figure:
    """The explorer's view of one test image: an attention map over it, class probabilities, a position's similarity."""
    g = attention.shape[-1]
    box = (0, g * patch_size, g * patch_size, 0)  # the map stretched over the image's pixels
    fig, (over, probs, pos) = plt.subplots(1, 3, figsize=(12, 3.6), layout="constrained", width_ratios=[1, 1.2, 1])
    over.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=255, extent=box)
    if rollout:
        bar = {"shrink": 0.8, "location": "bottom", "label": "× even share"}
        _even_share_map(fig, over, attention, 0.05, bar, alpha=0.6, extent=box)
    else:
        shown = over.imshow(attention.numpy(), cmap="magma", vmin=0, vmax=attention.max().item(), alpha=0.6, extent=box)
        fig.colorbar(shown, ax=over, shrink=0.8, location="bottom", label="[CLS] attention weight")
    over.set_title(title, fontsize=10)
    over.set(xticks=[], yticks=[])
    predicted = int(probabilities.argmax())
    shown = sorted(set(probabilities.argsort(descending=True)[:MAX_CLASSES_DRAWN].tolist()) | {true})  # at most 21
    colours = ["tab:green" if k == true else "tab:gray" for k in shown]
    probs.barh(range(len(shown)), probabilities[shown].numpy() * 100, color=colours)
    probs.set_yticks(range(len(shown)), [literal(classes[k]) for k in shown])
    probs.invert_yaxis()
    probs.set(xlim=(0, 100), xlabel="probability (%)")
    probs.set_title(f"true {literal(classes[true])} (green), predicted {literal(classes[predicted])}", fontsize=10)
    (r, c), (low, high) = position, similarity_range([similarity])
    cosine = pos.imshow(similarity[r, c].numpy(), cmap="viridis", vmin=low, vmax=high)
    fig.colorbar(cosine, ax=pos, shrink=0.8, label="cosine similarity")
    pos.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", lw=2))
    pos.set_title(f"position similarity of patch (row {r + 1}, col {c + 1})", fontsize=10)
    pos.set_xticks(range(g), range(1, g + 1), fontsize=7)
    pos.set_yticks(range(g), range(1, g + 1), fontsize=7)
    return fig


def comparison(names: list[str], accuracies: list[float], seconds: list[float], leads: dict[str, Paired]) -> Figure:
    """Models on the same test images: accuracies, each lead with its exact paired 95% interval, training times."""
    fig, (acc, lead, time) = plt.subplots(1, 3, figsize=(11, 2.6), layout="constrained", width_ratios=[1.2, 1.2, 1])
    values, rows = np.array(accuracies) * 100, np.arange(len(names))
    acc.plot(values, rows, "o", color="tab:blue")
    for y, v in zip(rows, values, strict=True):
        acc.annotate(f"{v:.1f}%", (v, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=9)
    span = max(values.max() - values.min(), 1.0)
    acc.set(xlim=(values.min() - span, min(100, values.max() + span)), ylim=(-0.7, len(names) - 0.3))
    acc.set(xlabel="test accuracy (%)", title="accuracy")
    acc.set_yticks(rows, names)
    reach = 0.5
    for y, difference in enumerate(leads.values()):
        low, high = (100 * v for v in difference.interval())
        point = difference.difference * 100
        lead.errorbar([point], [y], xerr=[[point - low], [high - point]], fmt="o", color="tab:orange", capsize=4)
        reach = max(reach, abs(low), abs(high))
    lead.axvline(0, color="gray", lw=0.8)
    lead.set(xlim=(-reach * 1.3, reach * 1.3), ylim=(-0.7, len(leads) - 0.3))
    lead.set(xlabel="points", title="lead (95% interval)")
    lead.set_yticks(range(len(leads)), list(leads))
    time.barh(rows, seconds, color="tab:gray")
    time.set_yticks(rows, names)
    time.set(xlabel="training time (s)", title="time", xlim=(0, max(seconds) * 1.25))
    for y, v in zip(rows, seconds, strict=True):
        time.text(v, y, f" {v:.0f} s", va="center", fontsize=9)
    return fig
