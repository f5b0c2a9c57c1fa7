"""The attention explorer: a small ipywidgets panel over a trained ViT, for asking it questions a fixed figure
cannot answer (which patches does head 3 of block 2 read for this mistake; how does that change from block to block).

Only the chosen image's attention is computed, when it is chosen. Shown where no widget can run (``pytest --nbval``,
the HTML report, a stored notebook), the panel is a picture of its first view: its display carries that PNG beside
the widget, and ``without_widgets`` drops the widget from a run notebook so that the picture is what remains.
"""

from __future__ import annotations

import base64
import html
import io
from functools import lru_cache

import matplotlib.pyplot as plt
import torch

from labkit.data import LabData
from labkit.metrics import predict
from labkit.notebook import explain, plots
from labkit.vit import ViT

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ROLLOUT = "rollout"


class Explorer:
    """The views and their numbers; ``widget()`` builds the controls over them."""

    def __init__(self, model: ViT, data: LabData):
        self.model, self.data = model, data
        self.grid, self.patch_size = model.config.grid, model.config.patch_size
        self.similarity = explain.position_similarity(model)
        self.maps = lru_cache(maxsize=16)(self._maps)
        self._predicted: torch.Tensor | None = None

    def _maps(self, index: int) -> list[torch.Tensor]:
        return explain.attention_maps(self.model, self.data.normalise(self.data.test.x[index]))

    def predicted(self) -> torch.Tensor:
        """The model's class for every test image, computed the first time a mistake is asked for."""
        if self._predicted is None:
            logits, _ = predict(self.model, self.data.batches("test"))
            self._predicted = logits.argmax(1)
        return self._predicted

    def next_mistake(self, after: int) -> int | None:
        """The first misclassified test image after ``after`` (wrapping round), or None when there is none."""
        wrong = (self.predicted() != self.data.test.y).nonzero().flatten().tolist()
        return next((i for i in wrong if i > after), wrong[0] if wrong else None)

    def next_of_class(self, label: int, after: int) -> int:
        """The first test image of class ``label`` after ``after``, wrapping round."""
        found = (self.data.test.y == label).nonzero().flatten().tolist()
        return next((i for i in found if i > after), found[0])

    def attention(self, index: int, block: int, head: int | str) -> torch.Tensor:
        """The grid of what the [CLS] token reads from each patch: one head of one block, or the rollout."""
        maps = self.maps(index)
        if head == ROLLOUT:
            return explain.attention_rollout(maps, self.grid)
        return explain.cls_attention(maps, self.grid, block)[head]

    def probabilities(self, index: int) -> torch.Tensor:
        with torch.no_grad():
            return self.model(self.data.normalise(self.data.test.x[index])[None])[0].softmax(0).cpu()

    def describe(self, block: int, head: int | str) -> str:
        if head == ROLLOUT:
            return f"rollout over all {len(self.model.transformer.layers)} blocks"
        return f"block {block + 1}, head {head + 1}: [CLS] attention"

    def figure(self, index: int, block: int, head: int | str, position: tuple[int, int]):
        return plots.explorer_view(
            self.data.test.x[index],
            self.attention(index, block, head),
            self.describe(block, head),
            head == ROLLOUT,
            self.probabilities(index),
            self.data.classes,
            int(self.data.test.y[index]),
            self.similarity,
            position,
            self.patch_size,
        )

    def png(self, index: int, block: int, head: int | str, position: tuple[int, int]) -> bytes:
        fig = self.figure(index, block, head, position)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        plt.close(fig)
        return buffer.getvalue()

    def numbers(self, index: int, block: int, head: int | str) -> str:
        """The map's numbers as a small HTML table, one cell per patch (class names escaped: a student chose them)."""
        grid = self.attention(index, block, head)
        unit = "× even share" if head == ROLLOUT else "weight"
        if head == ROLLOUT:
            grid = grid / grid.mean()
        rows = "".join("<tr>" + "".join(f"<td>{v:.2f}</td>" for v in row.tolist()) + "</tr>" for row in grid)
        true = html.escape(self.data.classes[int(self.data.test.y[index])])
        return (
            f"<b>Test image {index}</b> (true class {true}): {html.escape(self.describe(block, head))}, "
            f"per patch ({unit})<table class='lab-numbers'>{rows}</table>"
        )

    def widget(self):
        import ipywidgets as w

        heads = self.model.config.heads
        blocks = len(self.model.transformer.layers)
        index = w.BoundedIntText(value=0, min=0, max=len(self.data.test) - 1, description="test image")
        label = w.Dropdown(options=[(name, k) for k, name in enumerate(self.data.classes)], description="class")
        next_class = w.Button(description="next of this class")
        next_mistake = w.Button(description="next mistake")
        block = w.Dropdown(
            options=[(f"block {b + 1}", b) for b in range(blocks)], value=blocks - 1, description="block"
        )
        head = w.Dropdown(
            options=[(f"head {h + 1}", h) for h in range(heads)] + [("rollout", ROLLOUT)], value=0, description="map"
        )
        g = self.grid
        position = w.Dropdown(
            options=[(f"row {r + 1}, col {c + 1}", (r, c)) for r in range(g) for c in range(g)],
            value=(g // 2, g // 2),
            description="patch",
        )
        picture = w.Image(format="png")
        table = w.HTML()
        status = w.Label()

        def show(*_):
            picture.value = self.png(index.value, block.value, head.value, position.value)
            table.value = self.numbers(index.value, block.value, head.value)

        def to_class(_):
            index.value = self.next_of_class(label.value, index.value)

        def same_class(*_):  # the class shown is the chosen image's
            label.value = int(self.data.test.y[index.value])

        def same_image_class(change) -> bool:
            return change["new"] == int(self.data.test.y[index.value])

        def to_mistake(_):
            found = self.next_mistake(index.value)
            status.value = "" if found is not None else "no test image is misclassified"
            if found is not None:
                index.value = found

        for control in (index, block, head, position):
            control.observe(show, names="value")
        index.observe(same_class, names="value")
        label.observe(lambda change: None if same_image_class(change) else to_class(change), names="value")
        next_class.on_click(to_class)
        next_mistake.on_click(to_mistake)
        show()
        controls = w.VBox(
            [w.HBox([index, next_mistake, status]), w.HBox([label, next_class]), w.HBox([block, head, position])]
        )
        return w.VBox([controls, picture, table])


class Panel:
    """What a notebook cell shows: the widget where one runs, and otherwise the picture of its first view."""

    def __init__(self, explorer: Explorer):
        self.explorer = explorer

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        ex = self.explorer
        first = (0, len(ex.model.transformer.layers) - 1, 0, (ex.grid // 2, ex.grid // 2))
        bundle = {
            "text/plain": f"Attention explorer: test image 0, {ex.describe(first[1], first[2])} (its first view)",
            "image/png": base64.b64encode(ex.png(*first)).decode("ascii"),  # as IPython sends a figure
        }
        try:
            widget = ex.widget()
        except ImportError:  # no ipywidgets: the picture alone
            return bundle
        return {**bundle, WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}}


def explore(model: ViT, data: LabData) -> Panel:
    """The attention explorer over ``model`` and ``data``'s test split: display it (a cell's last line)."""
    return Panel(Explorer(model, data))


def without_widgets(nb) -> None:
    """A run notebook as it is shown without a kernel: widget views dropped from its outputs (their pictures stay),
    and the widget state nbclient stored, which nothing outside a live kernel can use."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_VIEW, None)
