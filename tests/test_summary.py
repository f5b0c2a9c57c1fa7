"""The model's torchinfo table, with the lab's columns and depth."""

import pytest

from labkit.models import build_model
from labkit.notebook.summary import COLUMN_WIDTH, column_width, render, summarize
from labkit.presets import get_preset


def test_the_torchinfo_table_leaves_out_its_mult_adds_which_undercount_a_vit():
    table = render(summarize(build_model(get_preset("fast").model)))
    assert "mult-adds" not in table and "Total params: 142,246" in table


@pytest.mark.parametrize("terminal, width", [(200, COLUMN_WIDTH), (120, 17), (80, 12), (40, 12)])
def test_the_columns_narrow_to_fit_the_terminal_down_to_twelve(terminal, width):
    assert column_width(terminal) == width
