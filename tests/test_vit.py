"""The ViT: the reference preset's torchinfo table, parameter names, shapes, patchify, attention, configs."""

import re
from dataclasses import replace

import pytest
import torch

from labkit.errors import LabError
from labkit.lab import VIT_PRESET_NAMES
from labkit.models import build_model
from labkit.notebook.explain import attention_maps
from labkit.notebook.summary import summarize
from labkit.presets import get_preset
from labkit.small_data import embedding
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


@pytest.mark.parametrize("name", VIT_PRESET_NAMES)
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


def test_a_config_with_small_data_extras_is_built_only_with_its_patch_embedding():
    config = get_preset("fast").model
    assert config != config.paper() and not config.paper().shifted_patches and config.paper().init == "random"
    with pytest.raises(LabError, match="asks for small-data extras: build it with labkit.models.build_model"):
        ViT(config)
    assert isinstance(ViT(config.paper()), ViT)
    assert ViT(config, embedding(config)).patches(torch.randn(1, 1, 28, 28)).shape == (1, 49, 80)
