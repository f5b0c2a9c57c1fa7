"""What a trained ViT has learned, as the QA notebook reads it: position similarity, attention maps, rollout, the
position control, and the paper's equations in this model's code."""

from dataclasses import replace

import torch

from labkit.models import build_model, fit_to_data
from labkit.notebook import explain
from labkit.presets import get_preset


def test_position_similarity_is_a_grid_of_cosine_maps():
    model = build_model(get_preset("reference").model, seed=0)
    sim = explain.position_similarity(model)
    assert sim.shape == (7, 7, 7, 7)
    torch.testing.assert_close(sim[2, 3, 2, 3], torch.tensor(1.0))  # every position is most like itself
    torch.testing.assert_close(sim[1, 5, 4, 0], sim[4, 0, 1, 5])  # and similarity is symmetric


def test_attention_maps_cls_attention_and_rollout():
    model = build_model(get_preset("reference").model, seed=0)
    maps = explain.attention_maps(model, torch.randn(1, 28, 28))
    assert len(maps) == 10 and maps[0].shape == (8, 50, 50)
    heads = explain.cls_attention(maps, grid=7)
    assert heads.shape == (8, 7, 7)
    torch.testing.assert_close(heads.sum((1, 2)), 1 - maps[-1][:, 0, 0])  # [CLS]'s row, less its self-attention
    rollout = explain.attention_rollout(maps, grid=7)
    assert rollout.shape == (7, 7) and (rollout >= 0).all() and rollout.sum() < 1


def test_attention_maps_are_the_weights_each_block_applies():
    """Recomputed by the hook from each block's own input: the first block's equal the weights of the embedded,
    normalised image, computed by hand."""
    model = build_model(get_preset("fast").model, seed=0).eval()
    x = torch.randn(1, 1, 28, 28)
    first = model.transformer.layers[0][0]
    with torch.no_grad():
        expected = first.fn.weights(first.norm(model.embed(x)))[0]
    torch.testing.assert_close(explain.attention_maps(model, x[0])[0], expected)
    assert not any(m._forward_pre_hooks for m in model.modules()), "the hooks are removed afterwards"


def test_rollout_of_identity_attention_stays_on_cls():
    eye = [torch.eye(5).expand(2, 5, 5)] * 3
    assert explain.attention_rollout(eye, grid=2).abs().sum() == 0


def test_the_position_control_keeps_the_shared_offset_and_restores_the_embeddings(quick):
    model = build_model(fit_to_data(get_preset("fast").model, 6), seed=0).eval()
    before = model.pos_embedding.detach().clone()
    seen = []
    forward = model.forward

    def record(img):
        seen.append(model.pos_embedding.detach().clone())
        return forward(img)

    model.forward = record
    intact, mean = explain.position_control(model, quick)
    assert intact.shape == mean.shape == (len(quick.test),) and intact.dtype == torch.bool
    assert torch.equal(model.pos_embedding, before)
    controlled = seen[-1][0, 1:]
    assert torch.allclose(controlled, before[0, 1:].mean(0).expand_as(controlled))  # every patch: the mean position
    assert torch.equal(seen[-1][0, 0], before[0, 0])  # [CLS] keeps its own


def test_equation_shapes_follow_the_paper():
    model = build_model(get_preset("fast").model, seed=0)
    lines = explain.equation_shapes(model, torch.randn(2, 1, 28, 28)).splitlines()
    assert lines[1].endswith("(2, 49, 80)") and lines[3].endswith("(2, 50, 64)") and lines[-1].endswith("(2, 6)")
    assert "SPT" in lines[1]


def test_the_equations_code_is_shown_without_docstrings():
    titles = [title for title, _ in explain.equation_code()]
    assert titles == ["Eq. 1, [CLS] and E_pos", "Eq. 2-3, the blocks"]
    assert all('"""' not in source and source.strip().startswith("def ") for _, source in explain.equation_code())


def test_the_patch_embedding_is_a_convolution_and_the_encoder_ignores_order():
    config = get_preset("fast").model
    assert explain.patch_embedding_is_a_convolution(config, torch.randn(2, 1, 28, 28))
    assert explain.encoder_is_permutation_equivariant(build_model(config, seed=0))


def test_spt_copies_are_filled_with_the_training_mean():
    config = get_preset("fast").model
    copies = explain.spt_copies(config, torch.full((1, 28, 28), 255, dtype=torch.uint8), 0.25)
    assert copies.shape == (5, 28, 28) and copies[1:].min() == 0.25 and copies[0].min() == 1
    assert explain.spt_copies(replace(config, shifted_patches=False), torch.ones(1, 28, 28), 0.25) is None


def test_the_hybrids_tokens_are_its_stems_feature_map_not_patches():
    config = get_preset("hybrid").model
    assert explain.tokens_sentence(config).startswith("The convolutional stem turns a 28×28 image into a 7×7 map of 32")
