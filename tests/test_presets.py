"""The named presets: each one builds and trains, and the lab's fixed names (lab.py, read before torch loads) are
the presets' own."""

import pytest
import torch

from labkit import lab
from labkit.errors import LabError
from labkit.models import build_model
from labkit.presets import PRESETS, get_preset
from labkit.vit import ViTConfig


def test_the_labs_preset_names_are_the_presets_in_order():
    assert tuple(PRESETS) == lab.PRESET_NAMES


def test_the_labs_vit_preset_names_are_the_presets_whose_model_is_a_vit():
    assert tuple(name for name, p in PRESETS.items() if isinstance(p.model, ViTConfig)) == lab.VIT_PRESET_NAMES


def test_an_unknown_preset_is_one_clear_error():
    with pytest.raises(LabError, match="unknown preset 'nope'; choose one of fast, reference, cnn, hybrid"):
        get_preset("nope")


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_trains_forward_and_backward(name):
    model = build_model(get_preset(name).model, seed=0)
    model.train()
    logits = model(torch.randn(4, 1, 28, 28))
    assert logits.shape == (4, get_preset(name).model.num_classes)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
