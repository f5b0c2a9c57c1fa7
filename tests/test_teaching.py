"""A ViT taught by the lab's CNN (locality guidance): the teacher is only read, the taught model is the plain ViT, and
``train --teacher`` takes only a CNN of the same data."""

import io
from dataclasses import replace

import pytest
import torch

from labkit.cli import main
from labkit.cnn import CNN, CNNConfig
from labkit.errors import LabError
from labkit.models import build_model, fit_to_data
from labkit.presets import get_preset
from labkit.run import train_run
from labkit.settings import RunConfig
from labkit.teaching import GUIDED_BLOCKS, Guidance
from labkit.train import fit


def test_the_cnn_gives_each_blocks_map_before_pooling_and_the_last():
    shapes = [m.shape for m in CNN(CNNConfig()).eval().stages(torch.zeros(2, 1, 28, 28))]
    assert shapes == [(2, 32, 28, 28), (2, 64, 14, 14), (2, 128, 7, 7)]


def test_guidance_trains_its_alignment_reads_the_teacher_and_leaves_a_plain_vit(quick):
    config = fit_to_data(get_preset("fast").model, len(quick.classes))
    teacher = build_model(fit_to_data(get_preset("cnn").model, len(quick.classes)), seed=0).eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    taught, plain = build_model(config, seed=0), build_model(config, seed=0)
    recipe = get_preset("fast").recipe(2, None)
    fit(taught, quick, replace(recipe, guidance=5.0), 0, "cpu", None, io.StringIO(), False, teacher)
    fit(plain, quick, recipe, 0, "cpu", None, io.StringIO(), False)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items()), "the teacher is only read"
    assert taught.state_dict().keys() == plain.state_dict().keys(), "nothing of the teacher is left in the ViT"
    assert not any(torch.equal(taught.state_dict()[k], plain.state_dict()[k]) for k in ("cls_token", "pos_embedding"))
    assert all(not block[1]._forward_hooks for block in taught.transformer.layers), "the hooks are gone after training"


def test_the_imitation_loss_compares_each_guided_block_with_its_stage(quick):
    config = fit_to_data(get_preset("fast").model, len(quick.classes))
    student = build_model(config, seed=0)
    guide = Guidance(student, build_model(fit_to_data(get_preset("cnn").model, 6), seed=0))
    x = quick.normalise(quick.test.x[:4])
    student(x)
    assert sorted(guide.kept) == list(GUIDED_BLOCKS) and guide.loss(x) > 0


def test_a_teacher_and_a_guidance_weight_go_together(quick):
    model = build_model(fit_to_data(get_preset("fast").model, len(quick.classes)), seed=0)
    with pytest.raises(LabError, match="a teacher and a guidance weight go together"):
        fit(model, quick, replace(get_preset("fast").recipe(1, None), guidance=5.0), out=io.StringIO(), progress=False)


@pytest.mark.hostile
def test_train_takes_only_a_cnn_of_the_same_data_as_teacher(quick, tmp_path, capsys):
    out = tmp_path / "out"
    train_run(quick, RunConfig(preset="fast", epochs=1, outputs=out), out=io.StringIO(), progress=False)
    assert main(["train", "--teacher", str(out / "student_id_vit.pth"), "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "is not a CNN: train the teacher with" in capsys.readouterr().err
    train_run(quick, RunConfig(preset="cnn", epochs=1, outputs=out), out=io.StringIO(), progress=False)
    assert main(["train", "--teacher", str(out / "student_id_cnn.pth"), "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "was trained on other data or another split" in capsys.readouterr().err  # quick is a subset of builtin
