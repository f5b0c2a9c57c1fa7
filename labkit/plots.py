"""The lab's figures. Each function draws one figure and returns it; the notebooks show them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from labkit.lab import BASELINE

if TYPE_CHECKING:
    from labkit.train import History


def sample_grid(x: torch.Tensor, y: torch.Tensor, classes: list[str], per_class: int = 8) -> Figure:
    """The first ``per_class`` images of each class, one row per class."""
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 0.9, len(classes) * 0.95), squeeze=False)
    for row, name in enumerate(classes):
        idx = (y == row).nonzero().flatten()[:per_class]
        for col in range(per_class):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(idx):
                ax.imshow(x[idx[col], 0], cmap="gray")
        axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center")
    fig.suptitle("Training images, by class")
    return fig


def patch_grid(image: torch.Tensor, patch_size: int, shifted: torch.Tensor | None = None, title: str = "") -> Figure:
    """One image (1 x H x W) cut into patches, each numbered with its token position (the [CLS] token is 0), beside
    the patches in the order the patch embedding reads them. With ``shifted`` (SPT's (5, H, W) stack), a row
    below shows the four shifted copies that every patch vector also carries."""
    img = image[0].float()
    g = img.shape[-1] // patch_size
    rows = 2 if shifted is not None else 1
    fig = plt.figure(figsize=(10, 4.6 * rows), layout="constrained")
    top, bottom = fig.subfigures(rows, 1, height_ratios=[1, 0.55][:rows]) if rows == 2 else (fig, None)
    left, right = top.subfigures(1, 2, width_ratios=[1, 1])
    ax = left.subplots()
    ax.imshow(img, cmap="gray")
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
    ax.set_xlabel("column (pixels)")
    ax.set_ylabel("row (pixels)")
    # One row more than the grid: its first tile is token 0, the learned [CLS] token, which has no pixels.
    cells = right.subplots(g + 1, g, gridspec_kw={"hspace": 0.45, "wspace": 0.15})
    for a in cells.flat:
        a.set_xticks([])
        a.set_yticks([])
    for a in cells[0, 1:]:
        a.set_axis_off()
    cells[0, 0].imshow(torch.ones(patch_size, patch_size), cmap="Oranges", vmin=0, vmax=2)
    cells[0, 0].set_title("0 [CLS]", fontsize=6, pad=1)
    lo, hi = img.min().item(), img.max().item()
    for r in range(g):
        for c in range(g):
            a = cells[r + 1, c]
            a.imshow(
                img[r * patch_size : (r + 1) * patch_size, c * patch_size : (c + 1) * patch_size],
                cmap="gray",
                vmin=lo,
                vmax=hi,
            )
            a.set_title(str(r * g + c + 1), fontsize=6, pad=1)
    right.suptitle("the token sequence: 0 is [CLS] (learned), then the patches row by row", fontsize=9)
    if bottom is not None:
        copies = bottom.subplots(1, shifted.shape[0])
        names = ["the image", "shifted ↘", "shifted ↙", "shifted ↗", "shifted ↖"]
        for a, picture, name in zip(copies, shifted, names, strict=True):
            a.imshow(picture, cmap="gray", vmin=shifted.min().item(), vmax=shifted.max().item())
            a.set_title(name, fontsize=9)
            a.set_xticks([])
            a.set_yticks([])
        k = shifted.shape[0]
        bottom.suptitle(
            f"SPT: each patch vector holds that patch of all {k} ({k} × {patch_size}·{patch_size} = "
            f"{k * patch_size**2} values)",
            fontsize=10,
        )
    fig.suptitle(title or "Patchify: pixel (i, j) goes to patch (i // p, j // p)")
    return fig


def training_curves(history: History, test_images: int, baseline: float = BASELINE,
                    loss_floor: float | None = None, augment: str = "shift") -> Figure:  # fmt: skip
    """Loss and accuracy per epoch, training (measured on the batches as they passed, augmented as ``augment``
    says) beside test, and the test error on a log axis, where the late epochs' changes show. ``loss_floor`` draws
    the lowest training loss label smoothing allows. A log axis has no zero: epochs without a single test error are
    drawn on a dotted line half an image below the smallest possible error (one of ``test_images``)."""
    epochs = np.arange(1, len(history.eval_loss) + 1)
    fig, (loss, acc, err) = plt.subplots(1, 3, figsize=(15, 3.8), layout="constrained")
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
    error = 100 - np.array(history.eval_accuracy) * 100
    none = 50 / test_images
    err.plot(epochs, np.where(error > none, error, none), color="tab:orange", marker=".")
    if (error <= none).any():
        err.axhline(none, color="gray", ls=":", label="no test error")
        err.legend(loc="upper right")
    err.set_yscale("log")
    err.set(title="Test error per epoch (log axis)", xlabel="epoch", ylabel="test error (%, log scale)",
            ylim=(none / 1.5, 100))  # fmt: skip
    for ax in (loss, acc, err):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0.5, len(epochs) + 0.5)
    return fig


def confusion(matrix: torch.Tensor, classes: list[str]) -> Figure:
    """The confusion matrix (rows: true class) beside per-class accuracy on an axis from 0 to 100%."""
    m = matrix.numpy()
    per_class = m.diagonal() / np.maximum(m.sum(1), 1) * 100
    fig, (ax, bars) = plt.subplots(
        1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [1.2, 1]}, layout="constrained"
    )
    image = ax.imshow(m, cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix (test split, image counts)")
    fig.colorbar(image, ax=ax, shrink=0.8, label="images")
    bars.barh(range(len(classes)), per_class, color="tab:blue")
    for i, value in enumerate(per_class):  # inside the bar's end, so the axis can stop at 100%
        bars.text(value, i, f"{value:.1f}% ", va="center", ha="right", fontsize=9, color="white")
    bars.set_yticks(range(len(classes)), [f"{c} ({n})" for c, n in zip(classes, m.sum(1), strict=True)])
    bars.invert_yaxis()
    bars.set(xlim=(0, 100), xlabel="accuracy (%)", title="Per-class accuracy (test split; images per class)")
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
        ax.imshow(x[i, 0], cmap="gray")
        ax.set_title(f"true {classes[y[i]]}\npred {classes[pred[i]]}", fontsize=8)
    total = (pred != y).sum().item()
    if total:
        fig.suptitle(f"Misclassified test images: {len(chosen)} shown of {total} (out of {len(y)}), taken in turn "
                     "from each true class")  # fmt: skip
    else:
        fig.suptitle(f"Misclassified test images: none of the {len(y)}")
    return fig


def position_similarity(sims: list[torch.Tensor], titles: list[str]) -> Figure:
    """Fig. 7 of the paper: for each patch position (r, c), its position embedding's cosine similarity with
    every other position, drawn as a small map at (r, c). One panel per model, one colour scale for all, set by the
    largest similarity between *different* positions (each position's 1.0 with itself would wash the rest out)."""
    g = sims[0].shape[0]
    eye = torch.eye(g * g, dtype=torch.bool)
    limit = max(sim.reshape(g * g, g * g)[~eye].abs().max().item() for sim in sims)
    fig, axes = plt.subplots(1, len(sims), figsize=(5.2 * len(sims), 5.6), squeeze=False, layout="constrained")
    for ax, sim, title in zip(axes[0], sims, titles, strict=True):
        mosaic = torch.ones(g * (g + 1) - 1, g * (g + 1) - 1) * float("nan")
        for r in range(g):
            for c in range(g):
                mosaic[r * (g + 1) : r * (g + 1) + g, c * (g + 1) : c * (g + 1) + g] = sim[r, c]
        image = ax.imshow(mosaic, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(title)
        ax.set_xticks([r * (g + 1) + g / 2 - 0.5 for r in range(g)], range(1, g + 1))
        ax.set_yticks([r * (g + 1) + g / 2 - 0.5 for r in range(g)], range(1, g + 1))
        ax.set(xlabel="input patch column", ylabel="input patch row")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label=f"cosine similarity (clipped at ±{limit:.2f})")
    fig.suptitle("Similarity of position embeddings")
    return fig


def attention(image: torch.Tensor, heads: torch.Tensor, to_itself: torch.Tensor, rollout: torch.Tensor,
              patch_size: int, title: str) -> Figure:  # fmt: skip
    """The input with its patch grid; the [CLS] token's attention to each patch per head in the last block, each head
    on its own colour scale (its largest weight named in its title, beside the weight [CLS] keeps on itself, which
    the map leaves out); and the rollout over all blocks as a multiple of an even share, on a log scale that is
    symmetric around 1 (halved and doubled look alike)."""
    n, g = heads.shape[0], heads.shape[-1]
    fig, axes = plt.subplots(1, n + 2, figsize=(2.3 * (n + 2) + 1.5, 3.2), layout="constrained")
    axes[0].imshow(image[0], cmap="gray")
    for k in range(1, g):
        axes[0].axhline(k * patch_size - 0.5, color="tab:red", lw=0.6)
        axes[0].axvline(k * patch_size - 0.5, color="tab:red", lw=0.6)
    axes[0].set_title("input, its patches")
    for h, ax in enumerate(axes[1 : n + 1]):
        shown = ax.imshow(heads[h], cmap="magma", vmin=0, vmax=heads[h].max().item())
        ax.set_title(f"head {h + 1}: max {heads[h].max().item():.2f}\n(to [CLS] itself {to_itself[h].item():.2f})",
                     fontsize=9)  # fmt: skip
        fig.colorbar(shown, ax=ax, shrink=0.7)
    ratio = (rollout / rollout.mean()).clamp(min=1e-6)
    reach = max(float(np.abs(np.log2(ratio.numpy())).max()), 0.05)
    rolled = axes[-1].imshow(np.log2(ratio.numpy()), cmap="RdBu_r", vmin=-reach, vmax=reach)
    axes[-1].set_title("rollout ÷ even share")
    bar = fig.colorbar(rolled, ax=axes[-1], shrink=0.85, label="× even share")
    ticks = np.linspace(-reach, reach, 5)
    bar.set_ticks(ticks, labels=[f"{2**t:.3g}×" for t in ticks])
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
    ``position`` (row, column) to every patch, from -1 to 1."""
    g = attention.shape[-1]
    size = g * patch_size
    fig, (over, probs, pos) = plt.subplots(
        1, 3, figsize=(12, 3.6), layout="constrained", gridspec_kw={"width_ratios": [1, 1.2, 1]}
    )
    over.imshow(image[0].numpy(), cmap="gray", extent=(0, size, size, 0))
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
    probs.set_yticks(range(len(classes)), classes)
    probs.invert_yaxis()
    probs.set(xlim=(0, 100), xlabel="probability (%)")
    probs.set_title(f"true {classes[true]} (green), predicted {classes[predicted]}", fontsize=10)
    r, c = position
    cosine = pos.imshow(similarity[r, c].numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    fig.colorbar(cosine, ax=pos, shrink=0.8, label="cosine similarity")
    pos.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", lw=2))
    pos.set_title(f"position similarity of patch (row {r + 1}, col {c + 1})", fontsize=10)
    pos.set_xticks(range(g), range(1, g + 1), fontsize=7)
    pos.set_yticks(range(g), range(1, g + 1), fontsize=7)
    return fig


def comparison(names: list[str], accuracies: list[float], params: list[int], seconds: list[float]) -> Figure:
    """Models side by side: test accuracy (axis from 0 to 100%), parameters, training time; values on the bars."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), layout="constrained")
    colours = ["tab:blue", "tab:orange", "tab:green"][: len(names)]
    values = [np.array(accuracies) * 100, np.array(params), np.array(seconds)]
    labels = ["test accuracy (%)", "parameters", "training time (s)"]
    formats = ["{:.1f}%", "{:,.0f}", "{:.0f} s"]
    for ax, v, label, fmt in zip(axes, values, labels, formats, strict=True):
        bars = ax.bar(names, v, color=colours)
        ax.bar_label(bars, [fmt.format(x) for x in v], padding=2, fontsize=9)
        ax.set(title=label, ylabel=label)
        ax.set_ylim(0, v.max() * 1.18)
    axes[0].set_ylim(0, 105)
    return fig
