"""What a submitted checkpoint may ask a grader's machine for: refused before anything is built."""

from dataclasses import replace

import pytest
import torch

from labkit.handin.grading import grade
from labkit.handin.guard import BATCH_MEMORY, MAX_ACTIVATIONS, check_size, eval_batch, size
from labkit.metrics import EVAL_BATCH
from labkit.models import build_model, count_parameters
from labkit.presets import PRESETS, get_preset


@pytest.mark.hostile
def test_a_config_asking_for_a_huge_model_is_refused_before_any_allocation(good, tmp_path):
    torch.save(good | {"model_config": good["model_config"] | {"heads": 10**6}}, tmp_path / "big_vit.pth")
    torch.save(good | {"model_config": good["model_config"] | {"image_size": 100_000}}, tmp_path / "wide_vit.pth")
    rows = {g.file: g for g in grade([tmp_path], baseline=0.1)}
    assert "no lab model is that large" in rows["big_vit.pth"].note and "parameters" in rows["big_vit.pth"].note
    assert "images of 100000 px" in rows["wide_vit.pth"].note


def test_every_preset_is_counted_exactly_and_passes_the_guard():
    for name, preset in PRESETS.items():
        params, activations = size(preset.model)
        assert params == count_parameters(build_model(preset.model)), name
        check_size(preset.model)
        assert activations < MAX_ACTIVATIONS and 1 <= eval_batch(preset.model) <= EVAL_BATCH, name


@pytest.mark.hostile
def test_a_wide_layer_within_the_limits_is_evaluated_in_batches_that_fit_the_memory_bound():
    """One MLP layer of 300,000 units: under the activation cap per image, but about 20 GiB in a batch of 128."""
    config = replace(get_preset("fast").model, dim=8, depth=1, heads=1, dim_head=8, mlp_dim=300_000)
    check_size(config)
    assert eval_batch(config) * size(config)[1] * 4 <= BATCH_MEMORY
