"""The lab's figures: each draws, whatever the class names, and says what it shows."""

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.text import Text

from labkit.metrics import Paired
from labkit.notebook import plots

NAMES = ["$", "a$b$", r"\frac", "plain"]  # a lone $ would start matplotlib's math, and fail to draw


def drawn(fig) -> list[str]:
    """Every text the figure draws, once drawn."""
    fig.canvas.draw()
    texts = [t.get_text() for t in fig.findobj(Text)]
    plt.close(fig)
    return texts


@pytest.mark.hostile
def test_class_names_are_drawn_literally_never_as_math():
    y = torch.arange(4).repeat_interleave(3)
    x = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8)
    pred = (y + 1) % 4
    for fig in (
        plots.sample_grid(x, y, NAMES, per_class=3),
        plots.confusion(torch.eye(4, dtype=torch.long), NAMES),
        plots.misclassified(x, y, pred, NAMES, n=4),
    ):
        texts = drawn(fig)
        assert plots.literal("a$b$") in " ".join(texts), texts
    assert plots.literal("a$b$") == r"a\$b\$"


def test_the_sample_grid_says_when_it_shows_only_the_first_classes():
    classes = [str(c) for c in range(25)]
    y = torch.arange(25)
    fig = plots.sample_grid(torch.zeros(25, 1, 8, 8, dtype=torch.uint8), y, classes, per_class=1)
    assert fig._suptitle.get_text() == "Training images, by class (the first 20 of 25 classes)"
    assert len(fig.axes) == 20
    plt.close(fig)


def test_the_comparison_draws_each_lead_with_an_interval_on_an_axis_that_holds_zero():
    leads = {"ViT − CNN": Paired(15, 0, 540), "taught − ViT": Paired(2, 9, 540)}
    fig = plots.comparison(["ViT", "CNN", "taught"], [0.98, 0.95, 0.97], [60.0, 30.0, 90.0], leads)
    lead = fig.axes[1]
    low, high = lead.get_xlim()
    for difference in leads.values():
        assert low < 0 < high and low <= 100 * difference.interval()[0] and 100 * difference.interval()[1] <= high
    assert [t.get_text() for t in lead.get_yticklabels()] == list(leads)
    plt.close(fig)


@pytest.mark.hostile
def test_many_classes_draw_no_number_per_cell_and_at_most_a_few_probability_bars():
    """400 classes: the figures stay a few hundred artists, whatever the number of classes."""
    k = 400
    names = [f"c{i}" for i in range(k)]
    fig = plots.confusion(torch.ones(k, k, dtype=torch.long), names)
    assert len(fig.axes[0].texts) == 0
    plt.close(fig)
    probabilities = torch.softmax(torch.randn(k), 0)
    fig = plots.explorer_view(
        torch.zeros(1, 28, 28), torch.rand(7, 7), "t", False, probabilities, names, 3, torch.rand(7, 7, 7, 7), (0, 0), 4
    )
    assert len(fig.axes[1].patches) <= plots.MAX_CLASSES_DRAWN + 1
    plt.close(fig)
