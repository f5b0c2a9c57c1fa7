"""The lab's figures. Each function draws one figure and returns it; the notebooks show them.

Class names are the student's folder names: drawn literally (``literal``), never as matplotlib's TeX-like math.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from labkit.lab import BASELINE

if TYPE_CHECKING:
    from labkit.metrics import Paired
    from labkit.train import History

MAX_CLASSES_DRAWN = 20  # rows of the sample grid; numbers in the confusion matrix's cells


def literal(text: object) -> str:
    """``text`` as matplotlib draws it unchanged: a ``$`` would otherwise start math (and a stray one fail)."""
    return str(text).replace("$", r"\$")


def sample_grid(x: torch.Tensor, y: torch.Tensor, classes: list[str], per_class: int = 8) -> Figure:
    """The first ``per_class`` images of each class, one row per class (of the first MAX_CLASSES_DRAWN)."""
    shown = classes[:MAX_CLASSES_DRAWN]
    fig, axes = plt.subplots(len(shown), per_class, figsize=(per_class * 0.65, len(shown) * 0.68), squeeze=False)
    for row, name in enumerate(shown):
        idx = (y == row).nonzero().flatten()[:per_class]
        for col in range(per_class):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(idx):
                ax.imshow(x[idx[col], 0], cmap="gray", vmin=0, vmax=255)
        axes[row, 0].set_ylabel(literal(name), rotation=0, ha="right", va="center")
    more = f" (the first {len(shown)} of {len(classes)} classes)" if len(shown) < len(classes) else ""
    fig.suptitle(f"Training images, by class{more}")
    return fig


def patch_grid(image: torch.Tensor, patch_size: int, shifted: torch.Tensor | None = None, title: str = "") -> Figure:
    """One image (1 x H x W) cut into patches, each numbered with its token position ([CLS] is 0). With ``shifted``
    (SPT's (5, H, W) stack), the four shifted copies follow, whose patches each patch vector also carries."""
    img = image[0].float()
    g = img.shape[-1] // patch_size
    copies = (
        []
        if shifted is None
        else list(zip(shifted[1:], ["shifted ↘", "shifted ↙", "shifted ↗", "shifted ↖"], strict=True))
    )
    fig, axes = plt.subplots(
        1,
        1 + len(copies),
        figsize=(4.6 + 2.2 * len(copies), 4.6),
        layout="constrained",
        gridspec_kw={"width_ratios": [2] + [1] * len(copies)},
        squeeze=False,
    )
    ax = axes[0, 0]
    ax.imshow(img, cmap="gray", vmin=0, vmax=255)
    for k in range(1, g):
        ax.axhline(k * patch_size - 0.5, color="tab:red", lw=0.8)
        ax.axvline(k * patch_size - 0.5, color="tab:red", lw=0.8)
    for r in range(g):
        for c in range(g):
            ax.text(
                (c + 0.5) * patch_size - 0.5,
                (r + 0.5) * patch_size - 0.5,
                str(r * g + c + 1),
                color="yellow",
                ha="center",
                va="center",
                fontsize=7 if g > 5 else 10,
                bbox={"boxstyle": "round,pad=0.1", "fc": "black", "alpha": 0.5, "lw": 0},
            )
    ax.set_title(f"{img.shape[-2]}×{img.shape[-1]} image, {g}×{g} patches of {patch_size}×{patch_size} px")
    ax.set(xlabel="column (pixels)", ylabel="row (pixels)")
    for a, (picture, name) in zip(axes[0, 1:], copies, strict=True):
        a.imshow(picture, cmap="gray", vmin=0, vmax=1)
        a.set_title(name)
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle(title or "Patchify: pixel (i, j) goes to patch (i // p, j // p)")
    return fig


def training_curves(
    history: History, baseline: float = BASELINE, loss_floor: float | None = None, augment: str = "shift"
) -> Figure:
    """Loss and accuracy per epoch, training (measured on the batches as they passed, augmented as ``augment``
    says) beside test; ``loss_floor`` draws the lowest training loss label smoothing allows."""
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


def confusion(matrix: torch.Tensor, classes: list[str]) -> Figure:
    """The confusion matrix (rows: true class), its counts written in the cells when there are few classes."""
    m, k = matrix.numpy(), len(classes)
    size = min(9, 2 + 0.25 * k)
    fig, ax = plt.subplots(figsize=(size + 1.2, size), layout="constrained")
    image = ax.imshow(m, cmap="Blues")
    if k <= MAX_CLASSES_DRAWN:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black"
                )
    if k <= 2 * MAX_CLASSES_DRAWN:
        labels = [literal(c) for c in classes]
        ax.set_xticks(range(k), labels, rotation=45, ha="right")
        ax.set_yticks(range(k), [f"{c} ({n})" for c, n in zip(labels, m.sum(1), strict=True)])
    ax.set(xlabel="predicted class", ylabel="true class (test images)", title="Confusion matrix (test split)")
    fig.colorbar(image, ax=ax, shrink=0.8, label="images")
    return fig


def misclassified(x: torch.Tensor, y: torch.Tensor, pred: torch.Tensor, classes: list[str], n: int = 16) -> Figure:
    """Up to ``n`` misclassified test images, taken in turn from each true class, so no one class fills the grid."""
    wrong = [(pred != y) & (y == c) for c in range(len(classes))]
    queues = [w.nonzero().flatten().tolist() for w in wrong]
    chosen = []
    while len(chosen) < n and any(queues):
        chosen += [q.pop(0) for q in queues if q][: n - len(chosen)]
    cols = 8
    rows = max(1, -(-len(chosen) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.8 + 0.5), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, chosen, strict=False):
        ax.imshow(x[i, 0], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"true {literal(classes[y[i]])}\npred {literal(classes[pred[i]])}", fontsize=8)
    total = (pred != y).sum().item()
    if total:
        fig.suptitle(
            f"Misclassified test images: {len(chosen)} shown of {total} (out of {len(y)}), taken in turn "
            "from each true class"
        )
    else:
        fig.suptitle(f"Misclassified test images: none of the {len(y)}")
    return fig


def similarity_range(sims: list[torch.Tensor]) -> tuple[float, float]:
    """The smallest and largest similarity between *different* positions in the maps: the colour scale's ends (each
    position's 1.0 with itself would wash the rest out)."""
    g = sims[0].shape[0]
    others = torch.cat([sim.reshape(g * g, g * g)[~torch.eye(g * g, dtype=torch.bool)] for sim in sims])
    return others.min().item(), others.max().item()


def position_similarity(sims: list[torch.Tensor], titles: list[str]) -> Figure:
    """Fig. 7 of the paper: for each patch position (r, c), its position embedding's cosine similarity with
    every other position, drawn as a small map at (r, c). One panel per model, one sequential colour scale for all,
    fitted to the similarities between different positions (bright: more alike)."""
    g = sims[0].shape[0]
    low, high = similarity_range(sims)
    fig, axes = plt.subplots(1, len(sims), figsize=(3.6 * len(sims), 3.8), squeeze=False, layout="constrained")
    for ax, sim, title in zip(axes[0], sims, titles, strict=True):
        mosaic = torch.ones(g * (g + 1) - 1, g * (g + 1) - 1) * float("nan")
        for r in range(g):
            for c in range(g):
                mosaic[r * (g + 1) : r * (g + 1) + g, c * (g + 1) : c * (g + 1) + g] = sim[r, c]
        image = ax.imshow(mosaic, cmap="viridis", vmin=low, vmax=high)
        ax.set_title(title)
        ax.set_xticks([r * (g + 1) + g / 2 - 0.5 for r in range(g)], range(1, g + 1))
        ax.set_yticks([r * (g + 1) + g / 2 - 0.5 for r in range(g)], range(1, g + 1))
        ax.set(xlabel="input patch column", ylabel="input patch row")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label=f"cosine similarity ({low:+.2f} to {high:+.2f})")
    fig.suptitle("Similarity of position embeddings")
    return fig


def attention(
    image: torch.Tensor,
    heads: torch.Tensor,
    to_itself: torch.Tensor,
    rollout: torch.Tensor,
    patch_size: int,
    title: str,
) -> Figure:
    """The input with its patch grid, the rollout over all blocks, and the [CLS] token's attention to each patch per
    head in the last block, six panels a row. The heads share one colour scale, from 0 to the largest weight any of
    them puts on a patch (each title gives the weight [CLS] keeps on itself, which its map leaves out); the rollout is
    a multiple of an even share, on a log scale symmetric around 1 (halved and doubled look alike) that spans at least
    half to twice, so a nearly even rollout looks pale."""
    n, g = heads.shape[0], heads.shape[-1]
    cols = min(n + 2, 6)
    rows = -(-(n + 2) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.2 * rows + 0.4), layout="constrained", squeeze=False)
    axes = axes.flat
    for ax in axes:
        ax.set_axis_off()
    axes[0].set_axis_on()
    axes[0].imshow(image[0], cmap="gray", vmin=0, vmax=255)
    for k in range(1, g):
        axes[0].axhline(k * patch_size - 0.5, color="tab:red", lw=0.6)
        axes[0].axvline(k * patch_size - 0.5, color="tab:red", lw=0.6)
    axes[0].set_title("input and its patches", fontsize=9)
    ratio = (rollout / rollout.mean()).clamp(min=1e-6)
    reach = max(float(np.abs(np.log2(ratio.numpy())).max()), 1.0)
    axes[1].set_axis_on()
    rolled = axes[1].imshow(np.log2(ratio.numpy()), cmap="RdBu_r", vmin=-reach, vmax=reach)
    axes[1].set_title("rollout, all blocks\n(× an even share)", fontsize=9)
    bar = fig.colorbar(rolled, ax=axes[1], shrink=0.85)
    ticks = np.linspace(-reach, reach, 5)
    bar.set_ticks(ticks, labels=[f"{2**t:.3g}×" for t in ticks])
    top = heads.max().item()
    for h in range(n):
        ax = axes[h + 2]
        ax.set_axis_on()
        shown = ax.imshow(heads[h], cmap="magma", vmin=0, vmax=top)
        ax.set_title(f"head {h + 1}\nkeeps {to_itself[h].item():.2f} on [CLS]", fontsize=9)
    fig.colorbar(shown, ax=[axes[h + 2] for h in range(n)], shrink=0.7, label="[CLS] attention weight")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    return fig


def explorer_view(
    image: torch.Tensor,
    attention: torch.Tensor,
    title: str,
    rollout: bool,
    probabilities: torch.Tensor,
    classes: list[str],
    true: int,
    similarity: torch.Tensor,
    position: tuple[int, int],
    patch_size: int,
) -> Figure:
    """The attention explorer's view of one test image: the image with one attention map over it (a head's weights
    from 0 to their largest, or the ``rollout`` as a multiple of an even share on a log scale symmetric around 1);
    the class probabilities, the true class marked; and the position-embedding similarity of the patch at
    ``position`` (row, column) to every other patch, on the scale of Question 6's figure."""
    g = attention.shape[-1]
    size = g * patch_size
    fig, (over, probs, pos) = plt.subplots(
        1, 3, figsize=(12, 3.6), layout="constrained", gridspec_kw={"width_ratios": [1, 1.2, 1]}
    )
    over.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=255, extent=(0, size, size, 0))
    if rollout:
        ratio = np.log2((attention / attention.mean()).clamp(min=1e-6).numpy())
        reach = max(float(np.abs(ratio).max()), 0.05)
        shown = over.imshow(ratio, cmap="RdBu_r", vmin=-reach, vmax=reach, alpha=0.6, extent=(0, size, size, 0))
        bar = fig.colorbar(shown, ax=over, shrink=0.8, location="bottom", label="× even share")
        ticks = np.linspace(-reach, reach, 5)
        bar.set_ticks(ticks, labels=[f"{2**t:.3g}×" for t in ticks])
    else:
        shown = over.imshow(
            attention.numpy(), cmap="magma", vmin=0, vmax=attention.max().item(), alpha=0.6, extent=(0, size, size, 0)
        )
        fig.colorbar(shown, ax=over, shrink=0.8, location="bottom", label="[CLS] attention weight")
    over.set_title(title, fontsize=10)
    over.set_xticks([])
    over.set_yticks([])
    predicted = int(probabilities.argmax())
    colours = ["tab:green" if k == true else "tab:gray" for k in range(len(classes))]
    probs.barh(range(len(classes)), probabilities.numpy() * 100, color=colours)
    probs.set_yticks(range(len(classes)), [literal(c) for c in classes])
    probs.invert_yaxis()
    probs.set(xlim=(0, 100), xlabel="probability (%)")
    probs.set_title(f"true {literal(classes[true])} (green), predicted {literal(classes[predicted])}", fontsize=10)
    r, c = position
    low, high = similarity_range([similarity])
    cosine = pos.imshow(similarity[r, c].numpy(), cmap="viridis", vmin=low, vmax=high)
    fig.colorbar(cosine, ax=pos, shrink=0.8, label="cosine similarity")
    pos.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", lw=2))
    pos.set_title(f"position similarity of patch (row {r + 1}, col {c + 1})", fontsize=10)
    pos.set_xticks(range(g), range(1, g + 1), fontsize=7)
    pos.set_yticks(range(g), range(1, g + 1), fontsize=7)
    return fig


def comparison(names: list[str], accuracies: list[float], seconds: list[float], difference: Paired) -> Figure:
    """Two models on the same test images: each one's accuracy as a point, on an axis fitted to them; the first's
    lead over the second with its exact paired 95% interval, on an axis that holds 0; and each one's training time."""
    fig, (acc, lead, time) = plt.subplots(
        1, 3, figsize=(11, 2.6), layout="constrained", gridspec_kw={"width_ratios": [1.2, 1.2, 1]}
    )
    values = np.array(accuracies) * 100
    rows = np.arange(len(names))
    acc.plot(values, rows, "o", color="tab:blue")
    for y, v in zip(rows, values, strict=True):
        acc.annotate(f"{v:.1f}%", (v, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=9)
    span = max(values.max() - values.min(), 1.0)
    acc.set(
        xlim=(values.min() - span, min(100, values.max() + span)),
        ylim=(-0.7, len(names) - 0.3),
        xlabel="test accuracy (%)",
        title="accuracy",
    )
    acc.set_yticks(rows, names)
    low, high = (100 * v for v in difference.interval())
    point = difference.difference * 100
    lead.errorbar([point], [0], xerr=[[point - low], [high - point]], fmt="o", color="tab:orange", capsize=4)
    lead.axvline(0, color="gray", lw=0.8)
    reach = max(abs(low), abs(high), 0.5) * 1.3
    lead.set(xlim=(-reach, reach), ylim=(-1, 1), xlabel="points", title=f"{names[0]} − {names[1]} (95% interval)")
    lead.set_yticks([])
    time.barh(rows, seconds, color="tab:gray")
    time.set_yticks(rows, names)
    time.set(xlabel="training time (s)", title="time", xlim=(0, max(seconds) * 1.25))
    for y, v in zip(rows, seconds, strict=True):
        time.text(v, y, f" {v:.0f} s", va="center", fontsize=9)
    return fig
