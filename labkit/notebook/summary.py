"""The model's torchinfo table, with the lab's columns and depth."""

from __future__ import annotations

import torchinfo
from torch import nn

LAB_COLUMNS = ("input_size", "output_size", "num_params", "kernel_size")  # the lab's reference table
LAB_DEPTH = 5  # deep enough to show each block's PreNorm -> LayerNorm / Attention / FeedForward
NAME_WIDTH = 52  # torchinfo's layer-name column at the lab's depth, which does not shrink
COLUMN_WIDTH = 25  # torchinfo's default width of each other column: the lab's table is 150 characters wide


def column_width(terminal: int) -> int:
    """The widest columns that fit a ``terminal`` this wide, from torchinfo's 25 down to 12 (shapes no longer fit)."""
    return max(12, min(COLUMN_WIDTH, (terminal - NAME_WIDTH) // len(LAB_COLUMNS)))


def summarize(
    model: nn.Module, depth: int = LAB_DEPTH, verbose: int = 0, col_width: int = COLUMN_WIDTH
) -> torchinfo.ModelStatistics:
    """torchinfo's summary for one image of the model's input size, on the CPU; ``str()`` gives the table."""
    size = (1, model.config.channels, model.config.image_size, model.config.image_size)
    return torchinfo.summary(
        model, input_size=size, col_names=LAB_COLUMNS, depth=depth, col_width=col_width, device="cpu", verbose=verbose
    )


def render(stats: torchinfo.ModelStatistics) -> str:
    """The table as text, less torchinfo's mult-adds: it counts a Linear once per image, not per token (far too low)."""
    return "\n".join(line for line in str(stats).splitlines() if not line.startswith("Total mult-adds"))
