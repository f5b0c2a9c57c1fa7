"""The lab's data once read: the config checked first, the split, the batches and their augmentation."""

import re

import numpy as np
import pytest
import torch

import labkit.sources as sources_module
from labkit.data import DataConfig, augment_batch, load_data
from labkit.errors import LabError


def test_builtin_has_the_labs_shape(builtin):
    assert (len(builtin.train), len(builtin.test)) == (1260, 540)
    assert builtin.classes == ["0", "1", "2", "3", "4", "5"]
    assert torch.bincount(builtin.test.y).tolist() == [90] * 6
    assert builtin.train.x.shape[1:] == (1, 28, 28) and builtin.train.x.dtype == torch.uint8
    pixels = builtin.train.x.float() / 255
    assert builtin.mean == pytest.approx(pixels.mean().item()) and 0.05 < builtin.mean < 0.3


def test_the_split_ignores_the_training_seed_and_follows_the_split_seed():
    torch.manual_seed(1)
    first = load_data(DataConfig())
    torch.manual_seed(2)
    np.random.seed(2)
    second = load_data(DataConfig())
    other = load_data(DataConfig(split_seed=1))
    assert first.fingerprint == second.fingerprint
    assert first.test_fingerprint != other.test_fingerprint


def test_validation_is_carved_from_the_training_part(builtin):
    data = load_data(DataConfig(val_fraction=0.2))
    assert data.test_fingerprint == builtin.test_fingerprint
    assert (len(data.train), len(data.val), len(data.test)) == (1008, 252, 540)
    assert torch.bincount(data.val.y).tolist() == [42] * 6


def test_batches_normalise_with_training_statistics_and_shuffle_only_training(builtin):
    x, y = next(iter(builtin.batches("test", batch_size=540, augment="shift")))
    assert x.shape == (540, 1, 28, 28) and x.dtype == torch.float32
    expected = (builtin.test.x.float() / 255 - builtin.mean) / builtin.std
    torch.testing.assert_close(x, expected)  # the test split is never augmented or shuffled
    assert torch.equal(y, builtin.test.y)
    train = builtin.batches("train", batch_size=64, seed=0)
    assert len(train) == 20
    first, again = (torch.cat([b[1] for b in train]) for _ in range(2))
    assert not torch.equal(first, again), "each epoch reshuffles"
    assert torch.equal(torch.sort(first).values, torch.sort(builtin.train.y).values)
    assert torch.equal(first, torch.cat([b[1] for b in builtin.batches("train", batch_size=64, seed=0)])), "seeded"


def test_shifts_move_each_image_by_its_own_offset_within_two_pixels():
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 14, 14] = 1.0
    batch = image.expand(64, 1, 28, 28)
    shifted = augment_batch(batch, "shift", torch.Generator().manual_seed(0))
    assert shifted.shape == batch.shape and torch.equal(shifted.sum((1, 2, 3)), torch.ones(64))
    where = shifted[:, 0].flatten(1).argmax(1)
    rows, cols = where // 28, where % 28
    assert (rows - 14).abs().max() == 2 and (cols - 14).abs().max() == 2  # ±2 px on 28 px images
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 10, "offsets differ between images"
    edge = torch.ones(64, 1, 28, 28)
    assert augment_batch(edge, "shift", torch.Generator().manual_seed(0)).min() == 0, "shifted in from black"


def test_flips_mirror_about_half_of_the_images_and_shift_alone_never_does():
    image = torch.zeros(1, 1, 28, 28)
    image[..., :, :10] = 1.0  # bright left third: a mirror image is bright on the right
    batch = image.expand(200, 1, 28, 28)
    right = lambda x: (x[..., 18:].sum((1, 2, 3)) > x[..., :10].sum((1, 2, 3))).float().mean().item()  # noqa: E731
    assert right(augment_batch(batch, "shift", torch.Generator().manual_seed(0))) == 0
    assert 0.3 < right(augment_batch(batch, "shift+flip", torch.Generator().manual_seed(0))) < 0.7


@pytest.mark.hostile
def test_data_config_checks_run_before_any_image_is_read(monkeypatch):
    def read(*args, **kwargs):
        raise AssertionError("an image was read before the data config was checked")

    monkeypatch.setattr(sources_module, "_builtin", read)
    with pytest.raises(LabError, match="must name each class index once"):
        DataConfig(classes=(1, 1))


@pytest.mark.hostile
@pytest.mark.parametrize(
    "changes, message",
    [
        ({"per_class": 0}, "per_class 0 must be at least 1"),
        ({"test_fraction": 1.0}, "test_fraction 1.0 must be in (0, 1)"),
        ({"classes": (0, -1)}, "must name each class index once"),
        ({"split_seed": 2**63}, "split_seed 9223372036854775808 must be from 0 to 2**63 - 1"),
    ],
)
def test_impossible_data_configs_are_one_clear_error(changes, message):
    with pytest.raises(LabError, match=re.escape(message)):
        DataConfig(**changes)


@pytest.mark.hostile
def test_a_source_of_one_class_or_too_few_images_for_a_split_is_one_line(tmp_path):
    np.savez(tmp_path / "one.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.zeros(4, int))
    with pytest.raises(LabError, match="has only one class; a classifier needs at least two"):
        load_data(DataConfig(source=str(tmp_path / "one.npz")))
    np.savez(tmp_path / "few.npz", x=np.zeros((5, 8, 8), np.uint8), y=np.array([0, 0, 0, 0, 1]))
    with pytest.raises(LabError, match="class '1' has 1 image\\(s\\); a stratified split needs at least 2"):
        load_data(DataConfig(source=str(tmp_path / "few.npz")))
