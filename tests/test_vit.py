"""The ViT: the reference preset's torchinfo table, shapes, patchify, attention, names, configs."""

import re
from dataclasses import replace

import pytest
import torch

from labkit import explain
from labkit.errors import LabError
from labkit.explain import attention_maps
from labkit.models import build_model, config_from_dict, fit_to_data
from labkit.presets import PRESETS, VIT_PRESETS, get_preset
from labkit.small_data import (
    IMPULSE_TAPS,
    ConvStem,
    GatedPositionalAttention,
    LocalitySelfAttention,
    SelfMaskedAttention,
    relative_offsets,
)
from labkit.summary import summarize
from labkit.vit import Attention, ViT, ViTConfig

# The lab's reference table (torchinfo, depth 5, input (1, 1, 28, 28)): its first rows, as printed there.
REFERENCE_ROWS = """
ViT	[1, 1, 28, 28]	[1, 6]	9,792	--
Sequential: 1-1	[1, 1, 28, 28]	[1, 49, 192]	--	--
Rearrange: 2-1	[1, 1, 28, 28]	[1, 49, 16]	--	--
Linear: 2-2	[1, 49, 16]	[1, 49, 192]	3,264	--
Dropout: 1-2	[1, 50, 192]	[1, 50, 192]	--	--
Transformer: 1-3	[1, 50, 192]	[1, 50, 192]	--	--
ModuleList: 2-3	--	--	--	--
ModuleList: 3-1	--	--	--	--
PreNorm: 4-1	[1, 50, 192]	[1, 50, 192]	--	--
LayerNorm: 5-1	[1, 50, 192]	[1, 50, 192]	384	--
Attention: 5-2	[1, 50, 192]	[1, 50, 192]	393,408	--
PreNorm: 4-2	[1, 50, 192]	[1, 50, 192]	--	--
LayerNorm: 5-3	[1, 50, 192]	[1, 50, 192]	384	--
FeedForward: 5-4	[1, 50, 192]	[1, 50, 192]	148,032	--
ModuleList: 3-2	--	--	--	--
PreNorm: 4-3	[1, 50, 192]	[1, 50, 192]	--	--
LayerNorm: 5-5	[1, 50, 192]	[1, 50, 192]	384	--
Attention: 5-6	[1, 50, 192]	[1, 50, 192]	393,408	--
PreNorm: 4-4	[1, 50, 192]	[1, 50, 192]	--	--
LayerNorm: 5-7	[1, 50, 192]	[1, 50, 192]	384	--
FeedForward: 5-8	[1, 50, 192]	[1, 50, 192]	148,032	--
ModuleList: 3-3	--	--	--	--
""".strip().splitlines()


def table_rows(table: str) -> list[str]:
    """The layer rows of a torchinfo table, tree characters dropped and columns tab-separated."""
    rows = []
    for line in table.splitlines():
        line = re.sub(r"^[│├└─\s]+", "", line)
        if re.match(r"^\w+(: \d+-\d+)?\s{2,}", line):
            rows.append("\t".join(re.split(r"\s{2,}", line.strip())))
    return rows


@pytest.fixture(scope="module")
def reference_table() -> str:
    return str(summarize(build_model(get_preset("reference").model)))


def test_reference_table_matches_the_labs_reference_row_for_row(reference_table):
    rows = table_rows(reference_table)
    assert rows[: len(REFERENCE_ROWS)] == REFERENCE_ROWS
    assert len(rows) == 1 + 3 + 3 + 10 * 7 + 3  # ViT, patch embedding, Dropout + Transformer + ModuleList, blocks, head
    assert rows[-3:] == [
        "Sequential: 1-4\t[1, 192]\t[1, 6]\t--\t--",
        "LayerNorm: 2-4\t[1, 192]\t[1, 192]\t384\t--",
        "Linear: 2-5\t[1, 192]\t[1, 6]\t1,158\t--",
    ]


def test_reference_table_totals(reference_table):
    for line in (
        "Total params: 5,436,678",
        "Forward/backward pass size (MB): 10.83",
        "Params size (MB): 21.71",
    ):
        assert line in reference_table.splitlines()


def test_reference_parameter_names_follow_the_reference_layout():
    names = set(build_model(get_preset("reference").model).state_dict())
    block = {
        "0.norm.weight",
        "0.norm.bias",
        "0.fn.to_qkv.weight",
        "0.fn.to_out.0.weight",
        "0.fn.to_out.0.bias",
        "1.norm.weight",
        "1.norm.bias",
        "1.fn.net.0.weight",
        "1.fn.net.0.bias",
        "1.fn.net.3.weight",
        "1.fn.net.3.bias",
    }
    expected = {"cls_token", "pos_embedding", "to_patch_embedding.1.weight", "to_patch_embedding.1.bias"}
    expected |= {f"transformer.layers.{i}.{name}" for i in range(10) for name in block}
    expected |= {"mlp_head.0.weight", "mlp_head.0.bias", "mlp_head.1.weight", "mlp_head.1.bias"}
    assert names == expected


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


def test_patchify_puts_pixel_r_c_into_patch_r_over_p_c_over_p():
    config = ViTConfig(image_size=12, patch_size=3, dim=8, depth=1, heads=2, dim_head=4, mlp_dim=8)
    patchify = build_model(config).patches
    image = torch.arange(144.0).reshape(1, 1, 12, 12)  # pixel (r, c) holds 12 r + c
    tokens = patchify(image)[0]
    assert tokens.shape == (16, 9)
    for r in range(12):
        for c in range(12):
            token = (r // 3) * 4 + c // 3
            assert tokens[token, (r % 3) * 3 + c % 3] == 12 * r + c


def reference_attention(attn: Attention, x: torch.Tensor):
    """Plain matmul + softmax, written independently of labkit's einops code."""
    b, n, _ = x.shape
    h = attn.heads
    qkv = x @ attn.to_qkv.weight.T
    q, k, v = (t.reshape(b, n, h, -1).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
    weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(b, n, -1)
    return attn.to_out(out), weights


def test_attention_and_its_weights_match_a_matmul_softmax_reference():
    torch.manual_seed(0)
    attn = Attention(dim=20, heads=3, dim_head=8).eval()  # heads * dim_head = 24 != dim
    x = torch.randn(2, 7, 20)
    expected, expected_weights = reference_attention(attn, x)
    torch.testing.assert_close(attn(x), expected)
    weights = attn.weights(x)
    assert weights.shape == (2, 3, 7, 7)
    torch.testing.assert_close(weights, expected_weights)


def test_locality_attention_masks_the_diagonal_and_uses_its_learned_temperature():
    torch.manual_seed(0)
    attn = LocalitySelfAttention(dim=20, heads=3, dim_head=8).eval()
    with torch.no_grad():
        attn.temperature.fill_(0.7)  # not the 1/sqrt(d) it starts at, so a fixed scale would differ
    x = torch.randn(2, 7, 20)
    qkv = x @ attn.to_qkv.weight.T
    q, k, v = (t.reshape(2, 7, 3, -1).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
    scores = (q @ k.transpose(-1, -2) * torch.e**0.7).masked_fill(torch.eye(7, dtype=torch.bool), float("-inf"))
    expected_weights = scores.softmax(-1)
    expected = attn.to_out((expected_weights @ v).transpose(1, 2).reshape(2, 7, -1))
    weights = attn.weights(x)
    torch.testing.assert_close(weights, expected_weights)
    assert weights.diagonal(dim1=-2, dim2=-1).abs().max() == 0
    out = attn(x)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert attn.temperature.grad is not None and attn.temperature.grad != 0


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


@pytest.mark.parametrize("name", VIT_PRESETS)
def test_every_vit_preset_has_the_same_token_interface(name):
    """Patches, tokens, features and attention maps for every ViT preset, the hybrid included."""
    model = build_model(get_preset(name).model, seed=0).eval()
    c = model.config
    x = torch.randn(2, 1, 28, 28)
    n = c.num_patches + 1
    assert model.patches(x).shape[:2] == (2, c.num_patches)
    tokens = model.forward_features(x)
    assert model.embed(x).shape == tokens.shape == (2, n, c.dim)
    torch.testing.assert_close(model.forward_head(tokens), model(x))
    maps = attention_maps(model, x[0])
    assert len(maps) == c.depth and maps[0].shape == (c.heads, n, n)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(c.heads, n))


def test_attention_maps_are_the_weights_each_block_applies():
    """Recomputed by the hook from each block's own input: the first block's equal the weights of the embedded,
    normalised image, computed by hand."""
    model = build_model(get_preset("fast").model, seed=0).eval()
    x = torch.randn(1, 1, 28, 28)
    first = model.transformer.layers[0][0]
    with torch.no_grad():
        expected = first.fn.weights(first.norm(model.embed(x)))[0]
    torch.testing.assert_close(attention_maps(model, x[0])[0], expected)
    assert not any(m._forward_pre_hooks for m in model.modules()), "the hooks are removed afterwards"


def test_hybrid_is_a_vit_whose_patch_embedding_is_a_conv_stem():
    model = build_model(get_preset("hybrid").model, seed=0)
    assert isinstance(model, ViT) and isinstance(model.to_patch_embedding[0], ConvStem)
    assert model.patches(torch.randn(3, 1, 28, 28)).shape == (3, 49, 32)  # a 7x7 map of 32 stem channels


def test_an_old_hybrid_checkpoint_config_is_refused_in_one_line():
    with pytest.raises(LabError, match="saved by an older labkit"):
        config_from_dict({"kind": "hybrid", "stem_width": 32, "downsample": 4})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"patch_size": 5}, "image_size 28 is not divisible by patch_size 5"),
        ({"heads": 0}, "heads=0 must be at least 1"),
        ({"emb_dropout": 1.5}, "emb_dropout=1.5 must be in [0, 1)"),
    ],
)
def test_impossible_configs_are_one_clear_error(changes, message):
    with pytest.raises(LabError, match=re.escape(message)):
        replace(get_preset("fast").model, **changes)


def test_mimetic_init_starts_each_head_near_its_target_products():
    from labkit.small_data import MIMETIC_QK, MIMETIC_VO

    config = replace(fit_to_data(get_preset("fast").model, 6), mimetic_init=True, depth=1)
    attention = build_model(config, seed=0).transformer.layers[0][0].fn
    w, inner = attention.to_qkv.weight.detach(), config.heads * config.dim_head
    q, k = w[: config.dim_head], w[inner : inner + config.dim_head]
    # A rank-16 product of a 64x64 target keeps its identity part as a positive diagonal, and the value-output
    # product (full rank here: 4 x 16 = 64) is the target itself, whose diagonal averages -0.4.
    assert (q.T @ k).diagonal().mean() > 0.2 * MIMETIC_QK[1]
    vo = w[2 * inner :].T @ attention.to_out[0].weight.detach().T
    assert vo.diagonal().mean().item() == pytest.approx(MIMETIC_VO[1], abs=0.05)


def test_sincos_positions_make_neighbouring_patches_alike_from_the_start():
    config = replace(fit_to_data(get_preset("fast").model, 6), sincos_positions=True)
    model = build_model(config, seed=0)
    sim = explain.position_similarity(model)  # (g, g, g, g)
    assert sim[3, 3, 3, 4] > sim[3, 3, 3, 6] and sim[3, 3, 4, 3] > sim[3, 3, 6, 3]
    assert torch.all(model.pos_embedding[0, 0] == 0)
    with pytest.raises(LabError, match="divisible by 4"):
        replace(config, dim=66)


def test_the_diagonal_mask_alone_keeps_the_plain_scale_and_adds_no_parameter():
    torch.manual_seed(0)
    masked = SelfMaskedAttention(dim=20, heads=3, dim_head=8).eval()
    plain = Attention(dim=20, heads=3, dim_head=8).eval()
    plain.load_state_dict(masked.state_dict())  # the same parameters, nothing more
    x = torch.randn(2, 7, 20)
    scores = (plain.weights(x).log()).masked_fill(torch.eye(7, dtype=torch.bool), float("-inf"))
    torch.testing.assert_close(masked.weights(x), scores.softmax(-1))
    assert masked.weights(x).diagonal(dim1=-2, dim2=-1).abs().max() == 0
    q, k, v = masked.qkv(x)
    expected = masked.to_out((masked.weights(x) @ v).transpose(1, 2).reshape(2, 7, -1))
    torch.testing.assert_close(masked(x), expected)


def test_gpsa_mixes_content_and_a_local_positional_attention_by_a_learned_gate():
    torch.manual_seed(0)
    attn = GatedPositionalAttention(dim=16, heads=4, dim_head=4, grid=3).eval()
    x = torch.randn(2, 10, 16)  # [CLS] and 3 x 3 patches
    weights = attn.weights(x)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 10))
    _, _, v = attn.qkv(x)
    expected = attn.to_out((weights @ v).transpose(1, 2).reshape(2, 10, -1))
    torch.testing.assert_close(attn(x), expected)  # the fused path computes the weights it reports
    positional = attn.positional()
    assert positional[:, 1:, 0].abs().max() == 0, "no patch attends to [CLS] by position"
    torch.testing.assert_close(positional[:, 0], torch.full((4, 10), 0.1))  # [CLS] averages every token
    # Each head starts peaked at its own offset, and the four offsets differ: a 2 x 2 kernel around each patch.
    centre = 1 + 4  # the middle patch of the 3 x 3 grid
    peaks = positional[:, centre, 1:].argmax(-1)
    assert len(set(peaks.tolist())) == 4
    assert torch.all(relative_offsets(3)[4, peaks, 2] <= 2), "each head's peak is a neighbour of the patch"
    attn(x).sum().backward()
    assert attn.gate.grad is not None and torch.all(attn.gate.grad != 0)


def test_gpsa_blocks_replace_the_first_blocks_attention_and_keep_the_rest():
    config = replace(fit_to_data(get_preset("fast").model, 6), gpsa_blocks=2)
    model = build_model(config, seed=0)
    kinds = [type(block[0].fn) for block in model.transformer.layers]
    assert kinds == [GatedPositionalAttention] * 2 + [Attention] * (config.depth - 2)
    maps = attention_maps(model, torch.randn(1, 28, 28))
    assert len(maps) == config.depth and all(m.shape == (config.heads, 50, 50) for m in maps)
    with pytest.raises(LabError, match="gpsa_blocks=5 must be between 0 and depth 4"):
        replace(config, gpsa_blocks=5)


def test_impulse_init_makes_each_head_attend_to_its_tap_on_the_positions():
    # The reference model's heads (dim_head 64) have rank enough for 49 patches: every row peaks at its tap.
    config = replace(fit_to_data(get_preset("reference").model, 6), impulse_init=True, depth=1)
    model = build_model(config, seed=0)
    positions = torch.nn.functional.layer_norm(model.pos_embedding[0, 1:], (config.dim,)).detach()
    attention, offsets = model.transformer.layers[0][0].fn, relative_offsets(config.grid)
    q, k, _ = attention.qkv(positions[None])
    weights = (q @ k.transpose(-1, -2) * attention.scale).softmax(-1)[0]
    for h in range(config.heads):
        dy, dx = IMPULSE_TAPS[h] // 3 - 1, IMPULSE_TAPS[h] % 3 - 1
        tap = (offsets[..., 0] == dx) & (offsets[..., 1] == dy)
        rows = tap.any(-1)  # patches whose neighbour at the tap lies inside the grid
        assert torch.equal(weights[h].argmax(-1)[rows], tap.float().argmax(-1)[rows]), f"head {h}"
    with pytest.raises(LabError, match="impulse_init sets the attention weights and positions itself"):
        replace(config, mimetic_init=True)
