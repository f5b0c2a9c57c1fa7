"""The model's torchinfo table (the lab's columns) and a per-part parameter breakdown."""

from __future__ import annotations

import re
from collections import Counter

import torchinfo
from torch import nn

LAB_COLUMNS = ("input_size", "output_size", "num_params", "kernel_size")  # the lab's reference table
LAB_DEPTH = 5  # deep enough to show each block's PreNorm -> LayerNorm / Attention / FeedForward


NAME_WIDTH = 52  # torchinfo's layer-name column at the lab's depth, which does not shrink
COLUMN_WIDTH = 25  # torchinfo's default width of each other column: the lab's table is 150 characters wide


def column_width(terminal: int) -> int:
    """The widest columns that fit a terminal ``terminal`` characters wide, from torchinfo's 25 down to 12 (below
    that the shapes no longer fit)."""
    return max(12, min(COLUMN_WIDTH, (terminal - NAME_WIDTH) // len(LAB_COLUMNS)))


def summarize(model: nn.Module, depth: int = LAB_DEPTH, verbose: int = 0,
              col_width: int = COLUMN_WIDTH) -> torchinfo.ModelStatistics:  # fmt: skip
    """torchinfo's summary for one image of the model's input size, on the CPU; ``str()`` gives the table."""
    c = model.config
    return torchinfo.summary(
        model,
        input_size=(1, c.channels, c.image_size, c.image_size),
        col_names=LAB_COLUMNS,
        depth=depth,
        col_width=col_width,
        device="cpu",
        verbose=verbose,
    )


# torchinfo prints its unit enum by name on Python 3.11+ ("Total mult-adds (Units.MEGABYTES)"): mult-adds are counts.
_UNITS = {"NONE": "", "KILOBYTES": "thousands", "MEGABYTES": "millions", "GIGABYTES": "billions", "TERABYTES": "T"}


def render(stats: torchinfo.ModelStatistics) -> str:
    """The table as text, with the mult-adds line reading "Total mult-adds (millions): ..." on every Python."""
    return re.sub(r"\(Units\.(\w+)\)", lambda m: f"({_UNITS.get(m[1], m[1])})", str(stats))


def parameter_breakdown(model: nn.Module) -> dict[str, int]:
    """Parameters by part of the ViT (or CNN); the counts add up to the model's total."""
    parts: Counter[str] = Counter()
    for name, p in model.named_parameters():
        parts[_part(name)] += p.numel()
    return dict(parts)


def _part(name: str) -> str:
    if name.startswith("to_patch_embedding"):
        return "patch embedding"
    if name in ("cls_token", "pos_embedding"):
        return "[CLS] token + position embeddings"
    if name.startswith("transformer.layers."):
        block, sub = name.split(".")[2:4]
        return f"block {block}: {'attention' if sub == '0' else 'MLP'} (with its LayerNorm)"
    if name.startswith("mlp_head"):
        return "head (LayerNorm + Linear)"
    return name.split(".")[0]
