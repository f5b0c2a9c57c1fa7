"""What a model is in labkit: its kinds, and its config written into a checkpoint and read back."""

import pytest

from labkit import lab, models
from labkit.errors import LabError
from labkit.models import build_model, config_from_dict, config_to_dict, count_parameters, fit_to_data
from labkit.presets import PRESETS


def test_the_labs_model_kinds_are_the_ones_labkit_builds():
    assert tuple(models.MODEL_KINDS) == lab.MODEL_KINDS


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_presets_config_comes_back_from_its_dict_and_builds_the_same_model(name):
    config = fit_to_data(PRESETS[name].model, 3)
    stored = config_to_dict(config)
    assert stored["kind"] == models.model_kind(config) and stored["num_classes"] == 3
    assert config_from_dict(stored) == config
    assert count_parameters(build_model(config_from_dict(stored))) == count_parameters(build_model(config))


@pytest.mark.hostile
@pytest.mark.parametrize(
    "stored, message",
    [
        ([1, 2], "the stored model config is a list, not a dict"),
        ({"kind": "resnet", "depth": 18}, "unknown model kind 'resnet'; this labkit builds vit, cnn"),
        ({"kind": ["vit"]}, "unknown model kind"),
        ({"kind": "vit", "dim": 64}, "the stored vit config does not fit this labkit's"),
    ],
)
def test_a_stored_config_labkit_cannot_build_is_one_clear_error(stored, message):
    with pytest.raises(LabError, match=message):
        config_from_dict(stored)
