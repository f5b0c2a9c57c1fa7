"""The attention explorer: an ipywidgets panel over a trained ViT, and where no widget runs, a PNG of its first view."""

from __future__ import annotations

import base64
import html
import io
from functools import cache, lru_cache

import matplotlib.pyplot as plt
import torch

from labkit.data import LabData
from labkit.handin import safe_text
from labkit.metrics import predict
from labkit.notebook import explain, plots
from labkit.vit import ViT

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ROLLOUT = "rollout"


class Explorer:
    """The views, their numbers and ``widget()``'s controls; as a cell's result, the widget (else its first view)."""

    def __init__(self, model: ViT, data: LabData):
        self.model, self.data = model, data
        self.grid, self.patch_size = model.config.grid, model.config.patch_size
        self.similarity = explain.position_similarity(model)
        self.maps = lru_cache(maxsize=16)(lambda i: explain.attention_maps(model, data.normalise(data.test.x[i])))
        # The model's class for every test image (from its logits), computed the first time a mistake is asked for.
        self.predicted = cache(lambda: predict(model, data.batches("test"))[0].argmax(1))

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
        if head == ROLLOUT:
            return explain.attention_rollout(self.maps(index), self.grid)
        return explain.cls_attention(self.maps(index), self.grid, block)[head]

    def describe(self, block: int, head: int | str) -> str:
        if head == ROLLOUT:
            return f"rollout over all {len(self.model.transformer.layers)} blocks"
        return f"block {block + 1}, head {head + 1}: [CLS] attention"

    def png(self, index: int, block: int, head: int | str, position: tuple[int, int]) -> bytes:
        attention, true = self.attention(index, block, head), int(self.data.test.y[index])
        with torch.no_grad():  # after ``attention``, which puts the model in eval mode
            probabilities = self.model(self.data.normalise(self.data.test.x[index])[None])[0].softmax(0).cpu()
        view = (attention, self.describe(block, head), head == ROLLOUT, probabilities, self.data.classes, true)
        fig = plots.explorer_view(self.data.test.x[index], *view, self.similarity, position, self.patch_size)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        plt.close(fig)
        return buffer.getvalue()

    def numbers(self, index: int, block: int, head: int | str) -> str:
        """The map's numbers as a small HTML table, one cell per patch (class names escaped: a student chose them)."""
        grid = self.attention(index, block, head)
        grid, unit = (grid / grid.mean(), "× even share") if head == ROLLOUT else (grid, "weight")
        cell = "<td style='padding: 0 0.5em; text-align: right'>"  # spaced in any front end (Classic has no table CSS)
        rows = "".join("<tr>" + "".join(f"{cell}{v:.2f}</td>" for v in row.tolist()) + "</tr>" for row in grid)
        true = html.escape(safe_text.printable(self.data.classes[int(self.data.test.y[index])]))
        return (
            f"<b>Test image {index}</b> (true class {true}): {html.escape(self.describe(block, head))}, "
            f"per patch ({unit})<table class='lab-numbers'>{rows}</table>"
        )

    def widget(self):
        import ipywidgets as w

        g, blocks = self.grid, len(self.model.transformer.layers)
        layers = [(f"block {b + 1}", b) for b in range(blocks)]
        maps = [(f"head {h + 1}", h) for h in range(self.model.config.heads)] + [("rollout", ROLLOUT)]
        patches = [(f"row {r + 1}, col {c + 1}", (r, c)) for r in range(g) for c in range(g)]
        index = w.BoundedIntText(value=0, min=0, max=len(self.data.test) - 1, description="test image")
        names = [(safe_text.printable(name), k) for k, name in enumerate(self.data.classes)]
        label = w.Dropdown(options=names, description="class")
        next_class, next_mistake = w.Button(description="next of this class"), w.Button(description="next mistake")
        block = w.Dropdown(options=layers, value=blocks - 1, description="block")
        head = w.Dropdown(options=maps, value=0, description="map")
        position = w.Dropdown(options=patches, value=(g // 2, g // 2), description="patch")
        picture, table, status = w.Image(format="png"), w.HTML(), w.Label()

        def show(*_):
            picture.value = self.png(index.value, block.value, head.value, position.value)
            table.value = self.numbers(index.value, block.value, head.value)

        def to_class(_):
            index.value = self.next_of_class(label.value, index.value)

        def same_class(*_):  # the class shown is the chosen image's
            label.value = int(self.data.test.y[index.value])

        def to_other_class(change):  # a class chosen, not set to the image's by ``same_class``
            if change["new"] != int(self.data.test.y[index.value]):
                to_class(change)

        def to_mistake(_):
            found = self.next_mistake(index.value)
            status.value = "" if found is not None else "no test image is misclassified"
            if found is not None:
                index.value = found

        for control in (index, block, head, position):
            control.observe(show, names="value")
        index.observe(same_class, names="value")
        label.observe(to_other_class, names="value")
        next_class.on_click(to_class)
        next_mistake.on_click(to_mistake)
        show()
        controls = [w.HBox([index, next_mistake, status]), w.HBox([label, next_class]), w.HBox([block, head, position])]
        return w.VBox([w.VBox(controls), picture, table])

    def _repr_mimebundle_(self, **_) -> dict:  # IPython passes include= and exclude=, which a bundle may ignore
        first = (0, len(self.model.transformer.layers) - 1, 0, (self.grid // 2, self.grid // 2))
        bundle = {
            "text/plain": f"Attention explorer: test image 0, {self.describe(first[1], first[2])} (its first view)",
            "image/png": base64.b64encode(self.png(*first)).decode("ascii"),  # as IPython sends a figure
        }
        try:
            widget = self.widget()
        except ImportError:  # no ipywidgets: the picture alone
            return bundle
        return {**bundle, WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}}


def explore(model: ViT, data: LabData) -> Explorer:
    """The attention explorer over ``model`` and ``data``'s test split: display it (a cell's last line)."""
    return Explorer(model, data)


def without_widgets(nb) -> None:
    """A run notebook as shown without a kernel: widget views and nbclient's widget state dropped (pictures stay)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_VIEW, None)
