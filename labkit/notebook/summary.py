"""The model's torchinfo table, with the lab's columns and depth."""

from __future__ import annotations

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


def summarize(
    model: nn.Module, depth: int = LAB_DEPTH, verbose: int = 0, col_width: int = COLUMN_WIDTH
) -> torchinfo.ModelStatistics:
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


def render(stats: torchinfo.ModelStatistics) -> str:
    """The table as text, without torchinfo's mult-adds line: it counts a Linear layer once per image, not once per
    token, so for a ViT it is many times too low."""
    return "\n".join(line for line in str(stats).splitlines() if not line.startswith("Total mult-adds"))
