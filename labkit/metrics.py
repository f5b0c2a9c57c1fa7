"""Predictions and scores, without label smoothing so that runs trained with different recipes are scored alike."""

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

EVAL_BATCH = 128  # the fastest for every preset on a 2-core CPU (conv layers slow down beyond it)


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable, device: torch.device | str = "cpu"):
    """(logits, labels) over all ``(images, labels)`` batches, in eval mode, on the CPU."""
    model.eval()
    logits, labels = [], []
    for x, y in batches:
        logits.append(model(x.to(device)).float().cpu())
        labels.append(y.cpu())
    return torch.cat(logits), torch.cat(labels)


def correct(model: nn.Module, batches: Iterable, device: torch.device | str = "cpu") -> torch.Tensor:
    """Which images of the batches the model gets right, in order: (N,) booleans."""
    logits, labels = predict(model, batches, device)
    return logits.argmax(1) == labels


def score(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in [0, 1])."""
    return F.cross_entropy(logits, labels).item(), accuracy(logits.argmax(1), labels)


def evaluate(model: nn.Module, batches: Iterable, device: torch.device | str = "cpu") -> tuple[float, float]:
    return score(*predict(model, batches, device))


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return (pred == labels).float().mean().item()


def confusion_matrix(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts (true class, predicted class): row i holds where the images of class i went."""
    return torch.bincount(labels * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def smoothing_floor(label_smoothing: float, num_classes: int) -> float:
    """The least cross-entropy on label-smoothed targets, their entropy: why training loss may sit above test loss."""
    if label_smoothing == 0:
        return 0.0
    k, eps = num_classes, label_smoothing
    hit, miss = 1 - eps + eps / k, eps / k
    return float(-(hit * math.log(hit) + (k - 1) * miss * math.log(miss)))


@dataclass(frozen=True)
class Paired:
    """Two models scored on the same test images: where they disagree is the evidence (McNemar's test)."""

    only_a: int  # images model A got right and model B wrong
    only_b: int  # the reverse
    images: int  # all of them

    @property
    def difference(self) -> float:
        """A's accuracy minus B's."""
        return (self.only_a - self.only_b) / self.images

    @property
    def p(self) -> float:
        """Exact two-sided McNemar test: the chance of disagreements this uneven if neither model were better."""
        n, k = self.only_a + self.only_b, min(self.only_a, self.only_b)
        return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """The difference's exact (Clopper-Pearson) interval, excluding 0 exactly when ``p`` is below 1 - ``level``."""
        n, alpha = self.only_a + self.only_b, (1 - level) / 2
        if n == 0:
            return 0.0, 0.0
        low = 0.0 if self.only_a == 0 else _solve(lambda q: _tail(self.only_a, n, q) - alpha)
        high = 1.0 if self.only_a == n else _solve(lambda q: alpha - _tail(n - self.only_a, n, 1 - q))
        return tuple(n / self.images * (2 * q - 1) for q in (low, high))


def paired(right_a: torch.Tensor, right_b: torch.Tensor) -> Paired:
    """``Paired`` from two boolean tensors: which test images each model got right."""
    return Paired(int((right_a & ~right_b).sum()), int((~right_a & right_b).sum()), len(right_a))


def _tail(k: int, n: int, q: float) -> float:
    """P(X >= k) for X ~ Binomial(n, q), summed in log space (n may be thousands)."""
    if q <= 0 or q >= 1:
        return 0.0 if q <= 0 else 1.0
    log_n, log_q, log_1q = math.lgamma(n + 1), math.log(q), math.log1p(-q)
    logs = [log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_q + (n - i) * log_1q for i in range(k, n + 1)]
    top = max(logs)
    return math.exp(top) * sum(math.exp(v - top) for v in logs)


def _solve(f) -> float:
    """The root in [0, 1] of an increasing ``f``, by bisection."""
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if f(mid) < 0 else (low, mid)
    return (low + high) / 2
