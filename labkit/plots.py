"""The lab's figures. Each function draws one figure and returns it; the notebooks show them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from labkit.lab import BASELINE

if TYPE_CHECKING:
    from labkit.train import History


def sample_grid(x: torch.Tensor, y: torch.Tensor, classes: list[str], per_class: int = 8) -> Figure:
    """The first ``per_class`` images of each class, one row per class."""
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 0.9, len(classes) * 0.95),
                             squeeze=False)  # fmt: skip
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


def patch_grid(image: torch.Tensor, patch_size: int, title: str = "") -> Figure:
    """One image (1 x H x W) beside its patches, laid out as the patch embedding reads them."""
    img = image[0].float()
    g = img.shape[-1] // patch_size
    fig = plt.figure(figsize=(9, 4.2))
    left = fig.add_subplot(1, 2, 1)
    left.imshow(img, cmap="gray")
    for k in range(1, g):
        left.axhline(k * patch_size - 0.5, color="tab:red", lw=0.8)
        left.axvline(k * patch_size - 0.5, color="tab:red", lw=0.8)
    left.set_title(f"{img.shape[-2]}x{img.shape[-1]} image, {g}x{g} grid of {patch_size}x{patch_size} patches")
    left.set_xlabel("column (pixels)")
    left.set_ylabel("row (pixels)")
    right = fig.add_gridspec(g, g, left=0.55, right=0.95, wspace=0.1, hspace=0.1)
    lo, hi = img.min().item(), img.max().item()
    for r in range(g):
        for c in range(g):
            ax = fig.add_subplot(right[r, c])
            ax.imshow(img[r * patch_size : (r + 1) * patch_size, c * patch_size : (c + 1) * patch_size],
                      cmap="gray", vmin=lo, vmax=hi)  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and c == g // 2:
                ax.set_title(f"token {1}..{g * g}, read row by row")
    fig.suptitle(title or "Patchify: pixel (r, c) goes to patch (r // p, c // p)")
    return fig


def training_curves(history: History, baseline: float = BASELINE) -> Figure:
    epochs = np.arange(1, len(history.eval_loss) + 1)
    fig, (loss, acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    loss.plot(epochs, history.train_loss, marker="o", label="train (as optimised)")
    loss.plot(epochs, history.eval_loss, marker="o", label="test")
    loss.set_title("Loss per epoch")
    loss.set_xlabel("epoch")
    loss.set_ylabel("cross-entropy")
    loss.legend()
    acc.plot(epochs, np.array(history.eval_accuracy) * 100, marker="o", color="tab:green", label="test")
    acc.axhline(baseline * 100, color="tab:red", ls="--", label=f"{baseline:.0%} baseline")
    acc.set_title("Test accuracy per epoch")
    acc.set_xlabel("epoch")
    acc.set_ylabel("accuracy (%)")
    acc.set_ylim(0, 100)
    acc.legend(loc="lower right")
    fig.tight_layout()
    return fig


def confusion(matrix: torch.Tensor, classes: list[str]) -> Figure:
    """The confusion matrix (rows: true class) beside per-class accuracy."""
    m = matrix.numpy()
    per_class = m.diagonal() / np.maximum(m.sum(1), 1)
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [1.2, 1]})
    ax.imshow(m, cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix (test split)")
    bars.barh(range(len(classes)), per_class * 100, color="tab:blue")
    bars.set_yticks(range(len(classes)), classes)
    bars.invert_yaxis()
    bars.set_xlim(0, 100)
    bars.set_xlabel("accuracy (%)")
    bars.set_title("Per-class accuracy")
    fig.tight_layout()
    return fig


def misclassified(x: torch.Tensor, y: torch.Tensor, pred: torch.Tensor, classes: list[str], n: int = 16) -> Figure:
    wrong = (pred != y).nonzero().flatten()[:n]
    cols = 8
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.8 + 0.5), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong.tolist(), strict=False):
        ax.imshow(x[i, 0], cmap="gray")
        ax.set_title(f"true {classes[y[i]]}\npred {classes[pred[i]]}", fontsize=8)
    fig.suptitle(f"Misclassified test images (first {len(wrong)} of {(pred != y).sum().item()})")
    return fig


def position_similarity(sims: list[torch.Tensor], titles: list[str]) -> Figure:
    """Fig. 7 of the paper: for each patch position (r, c), its position embedding's cosine similarity with
    every other position, drawn as a small map at (r, c). One panel per model."""
    fig, axes = plt.subplots(1, len(sims), figsize=(5.2 * len(sims), 5.4), squeeze=False)
    for ax, sim, title in zip(axes[0], sims, titles, strict=True):
        g = sim.shape[0]
        mosaic = torch.ones(g * (g + 1) - 1, g * (g + 1) - 1) * float("nan")
        for r in range(g):
            for c in range(g):
                mosaic[r * (g + 1) : r * (g + 1) + g, c * (g + 1) : c * (g + 1) + g] = sim[r, c]
        image = ax.imshow(mosaic, cmap="viridis", vmin=-1, vmax=1)
        ax.set_title(title)
        ax.set_xticks([r * (g + 1) + g / 2 - 0.5 for r in range(g)], range(1, g + 1))
        ax.set_yticks([r * (g + 1) + g / 2 - 0.5 for r in range(g)], range(1, g + 1))
        ax.set_xlabel("input patch column")
        ax.set_ylabel("input patch row")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="cosine similarity")
    fig.suptitle("Similarity of position embeddings")
    return fig


def attention(image: torch.Tensor, heads: torch.Tensor, rollout: torch.Tensor, title: str) -> Figure:
    """The image, the [CLS] token's attention per head in the last block, and the rollout over all blocks."""
    n = heads.shape[0]
    fig, axes = plt.subplots(1, n + 2, figsize=(1.9 * (n + 2), 2.5))
    axes[0].imshow(image[0], cmap="gray")
    axes[0].set_title("input")
    for h in range(n):
        axes[h + 1].imshow(heads[h], cmap="magma")
        axes[h + 1].set_title(f"head {h + 1}")
    axes[-1].imshow(rollout, cmap="magma")
    axes[-1].set_title("rollout")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def comparison(names: list[str], accuracies: list[float], params: list[int], seconds: list[float]) -> Figure:
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, values, label in zip(axes, [np.array(accuracies) * 100, params, seconds],
                                 ["test accuracy (%)", "parameters", "training seconds"], strict=True):  # fmt: skip
        ax.bar(names, values, color=["tab:blue", "tab:orange", "tab:green"][: len(names)])
        ax.set_title(label)
        ax.set_ylabel(label)
    axes[0].set_ylim(0, 100)
    fig.tight_layout()
    return fig
