"""The small-data extras, each a replacement for one part of the paper's ViT: shifted patch tokens, the hybrid's
conv stem, the locality start (mimetic attention, sine-cosine positions); and a CNN teacher's locality guidance,
which only reads the teacher and leaves the plain ViT."""

import io
from dataclasses import replace

import pytest
import torch

from labkit.cli import main
from labkit.cnn import CNN, CNNConfig
from labkit.errors import LabError
from labkit.models import build_model, fit_to_data
from labkit.notebook import explain
from labkit.presets import get_preset
from labkit.run import train_run
from labkit.settings import RunConfig
from labkit.small_data import GUIDED_BLOCKS, MIMETIC_QK, MIMETIC_VO, ConvStem, Guidance, sincos_positions
from labkit.train import fit
from labkit.vit import ViT, ViTConfig


def test_shifted_patches_let_a_token_see_past_its_patch_edge():
    config = ViTConfig(image_size=12, patch_size=4, dim=8, depth=1, heads=2, dim_head=4, mlp_dim=8)
    plain_model, spt_model = build_model(config, seed=0), build_model(replace(config, shifted_patches=True), seed=0)
    plain, spt = plain_model.to_patch_embedding, spt_model.to_patch_embedding
    image = torch.randn(1, 1, 12, 12)
    values = spt_model.patches(image)
    assert values.shape == (1, 9, 5 * 16)  # the patch and its four shifted copies, stacked as channels
    assert torch.equal(values[..., ::5], plain_model.patches(image))  # channel 0 is the unshifted image
    image = torch.zeros(1, 1, 12, 12)
    nudged = image.clone()
    nudged[0, 0, 4, 4] = 1.0  # the top-left pixel of patch (1, 1), two pixels (half a patch) from patch (0, 0)
    for embed, sees_it in ((plain, False), (spt, True)):
        tokens, moved = embed(image), embed(nudged)
        assert tokens.shape == (1, 9, 8)  # still one token per patch
        assert not torch.equal(tokens[0, 4], moved[0, 4])
        assert (not torch.equal(tokens[0, 0], moved[0, 0])) == sees_it
        assert torch.equal(tokens[0, 8], moved[0, 8])  # the far corner sees nothing of it either way


def test_hybrid_is_a_vit_whose_patch_embedding_is_a_conv_stem():
    model = build_model(get_preset("hybrid").model, seed=0)
    assert isinstance(model, ViT) and isinstance(model.to_patch_embedding[0], ConvStem)
    assert model.patches(torch.randn(3, 1, 28, 28)).shape == (3, 49, 32)  # a 7x7 map of 32 stem channels


def test_mimetic_init_starts_each_head_near_its_target_products():
    config = replace(fit_to_data(get_preset("fast").model.paper(), 6), init="locality", depth=1)
    attention = build_model(config, seed=0).transformer.layers[0][0].fn
    w, inner = attention.to_qkv.weight.detach(), config.heads * config.dim_head
    q, k = w[: config.dim_head], w[inner : inner + config.dim_head]
    # A rank-16 product of a 64x64 target keeps its identity part as a positive diagonal, and the value-output
    # product (full rank here: 4 x 16 = 64) is the target itself, whose diagonal averages -0.4.
    assert (q.T @ k).diagonal().mean() > 0.2 * MIMETIC_QK[1]
    vo = w[2 * inner :].T @ attention.to_out[0].weight.detach().T
    assert vo.diagonal().mean().item() == pytest.approx(MIMETIC_VO[1], abs=0.05)


def test_sincos_positions_make_neighbouring_patches_alike_from_the_start():
    config = replace(fit_to_data(get_preset("fast").model.paper(), 6), init="locality")
    model = build_model(config, seed=0)
    sim = explain.position_similarity(model)  # (g, g, g, g)
    assert sim[3, 3, 3, 4] > sim[3, 3, 3, 6] and sim[3, 3, 4, 3] > sim[3, 3, 6, 3]
    assert torch.all(model.pos_embedding[0, 0] == 0)
    with pytest.raises(LabError, match="divisible by 4"):
        replace(config, dim=66)


def test_the_locality_start_sets_the_sine_cosine_table_a_small_cls_and_mimetic_attention():
    """locality_init, as build_model applies it for init="locality": the same model as the random start but for the
    positions (MAE's table), [CLS] (scaled to the paper's std 0.02) and the attention's q/k/v and output weights."""
    config = replace(fit_to_data(get_preset("fast").model.paper(), 6), init="locality")
    local, plain = build_model(config, seed=0), build_model(replace(config, init="random"), seed=0)
    torch.testing.assert_close(local.pos_embedding[0, 1:], sincos_positions(config.grid, config.dim))
    assert local.cls_token.std() < 0.05 < plain.cls_token.std()
    changed = {n for n, p in local.state_dict().items() if not torch.equal(p, plain.state_dict()[n])}
    attention = {n for n in changed if ".fn.to_qkv." in n or ".fn.to_out.0.weight" in n}
    assert changed == {"pos_embedding", "cls_token"} | attention
    assert len(attention) == 2 * config.depth
    with pytest.raises(LabError, match="choose one of random, locality"):
        replace(config, init="impulse")


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


@pytest.mark.parametrize("preset", ["hybrid", "reference"])
def test_every_vit_preset_can_be_taught_on_the_guided_blocks_it_has(quick, preset):
    config = fit_to_data(get_preset(preset).model, len(quick.classes))
    student = build_model(config, seed=0)
    guide = Guidance(student, build_model(fit_to_data(get_preset("cnn").model, 6), seed=0))
    x = quick.normalise(quick.test.x[:2])
    student(x)
    assert sorted(guide.kept) == [b for b in GUIDED_BLOCKS if b < config.depth] and guide.loss(x) > 0


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
