"""What a trained ViT has learned: position-embedding similarity, attention maps, attention rollout."""

from __future__ import annotations

import ast
import inspect
import textwrap

import torch
import torch.nn.functional as F
from einops import rearrange

from labkit.metrics import EVAL_BATCH, correct
from labkit.small_data import ShiftedPatches, attentions
from labkit.vit import Transformer, ViT, ViTConfig


def position_similarity(model: ViT) -> torch.Tensor:
    """Position embeddings' cosine similarity (the paper's Fig. 7), (g, g, g, g): [r, c] is patch (r, c)'s g x g map."""
    pos, g = model.pos_embedding[0, 1:].detach(), model.config.grid  # [CLS]'s position dropped
    return F.cosine_similarity(pos[:, None], pos[None, :], dim=-1).reshape(g, g, g, g)


@torch.no_grad()
def attention_maps(model: ViT, image: torch.Tensor) -> list[torch.Tensor]:
    """Per block, the attention (heads, tokens, tokens) for a normalised image, recomputed: fused kernels keep none."""
    model.eval()
    maps, blocks = [], attentions(model)
    hooks = [m.register_forward_pre_hook(lambda module, args: maps.append(module.weights(args[0])[0])) for m in blocks]
    try:
        model(image[None])
    finally:
        for hook in hooks:
            hook.remove()
    return maps


def cls_attention(maps: list[torch.Tensor], grid: int, block: int = -1) -> torch.Tensor:
    """How much the [CLS] token attends to each patch in one block: (heads, grid, grid)."""
    return maps[block][:, 0, 1:].reshape(-1, grid, grid)


def cls_to_itself(maps: list[torch.Tensor], block: int = -1) -> torch.Tensor:
    """The weight [CLS] keeps on itself in one block, per head: what ``cls_attention``'s maps leave out of 1."""
    return maps[block][:, 0, 0]


def attention_rollout(maps: list[torch.Tensor], grid: int) -> torch.Tensor:
    """Abnar & Zuidema (2020): what [CLS] draws on overall, through every block's head-mean attention and residual."""
    rollout = eye = torch.eye(maps[0].shape[-1])
    for m in maps:
        a = 0.5 * m.mean(0) + 0.5 * eye
        rollout = (a / a.sum(-1, keepdim=True)) @ rollout
    return rollout[0, 1:].reshape(grid, grid)


def locality(similarity: torch.Tensor) -> tuple[float, float]:
    """Mean similarity of grid neighbours and of positions 2+ apart: a learned 2-D layout makes the first larger."""
    g = similarity.shape[0]
    cells = torch.cartesian_prod(torch.arange(g), torch.arange(g)).float()
    distance = torch.cdist(cells, cells)
    flat = similarity.reshape(g * g, g * g)
    return flat[(distance > 0) & (distance <= 1)].mean().item(), flat[distance >= 2].mean().item()


def tokens_sentence(config: ViTConfig) -> str:
    """How the patch embedding turns one image into tokens, with this config's numbers."""
    p, size, g = config.patch_size, config.image_size, config.grid
    if config.conv_stem:
        return (
            f"The convolutional stem turns a {size}×{size} image into a {g}×{g} map of {config.conv_stem} channels: "
            f"**{g * g} tokens** of {config.conv_stem} values, each projected to **{config.dim}** dimensions; with "
            f"[CLS] the encoder reads **{g * g + 1} tokens**."
        )
    values = p * p * config.channels
    spt = f" ({5 * values} with the four shifted copies of SPT)" if config.shifted_patches else ""
    return (
        f"With patch size {p}, a {size}×{size} image becomes {g}×{g} = **{g * g} patches** of {values} values{spt}, "
        f"each projected to **{config.dim}** dimensions; with [CLS] the encoder reads **{g * g + 1} tokens**."
    )


def spt_copies(config: ViTConfig, image: torch.Tensor, mean: float) -> torch.Tensor | None:
    """SPT's input for a uint8 image (1 x H x W): it and 4 diagonal shifts, (5, H, W), filled with ``mean``; or None."""
    if not config.shifted_patches:
        return None
    return ShiftedPatches(config.patch_size).stacked(image[None].float() / 255 - mean)[0] + mean


@torch.no_grad()
def position_control(model: ViT, data) -> tuple[torch.Tensor, torch.Tensor]:
    """Which test images ``model`` gets right with its position embeddings, and with their mean (zeroing drops more)."""
    original = model.pos_embedding.detach().clone()
    mean = torch.cat((original[:, :1], original[:, 1:].mean(1, keepdim=True).expand_as(original[:, 1:])), dim=1)
    right = []
    try:
        for positions in (original, mean):
            model.pos_embedding.copy_(positions)
            right.append(correct(model, data.batches("test", EVAL_BATCH)))
    finally:
        model.pos_embedding.copy_(original)
    return right[0], right[1]


def equation_code() -> list[tuple[str, str]]:
    """Where the paper's Eq. 1-3 live in ``vit.py``, for Question 10a: the code every ViT preset runs (no docstring)."""
    found = []
    for title, fn in (("Eq. 1, [CLS] and E_pos", ViT.embed), ("Eq. 2-3, the blocks", Transformer.forward)):
        lines = inspect.getsource(fn).splitlines(keepends=True)
        first = ast.parse(textwrap.dedent("".join(lines))).body[0].body[0]  # the function's first statement
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):  # its docstring
            lines = lines[: first.lineno - 1] + lines[first.end_lineno :]
        found.append((title, "".join(lines)))
    return found


@torch.no_grad()
def equation_shapes(model: ViT, images: torch.Tensor) -> str:
    """The shapes one batch takes through Eq. 1-4 of ``model``, one line each."""
    model.eval()
    c, (norm, classifier) = model.config, model.mlp_head
    cut = "x_p with SPT's copies" if c.shifted_patches else "x_p from the stem" if c.conv_stem else "x_p"
    zl = model.forward_features(images)
    y = norm(zl[:, 0])
    steps = [("images", images), (cut, model.patches(images)), ("x_p E", model.to_patch_embedding(images))]
    steps += [("z_0", model.embed(images)), ("z_L", zl), ("y = LN(z_L^0)", y), ("class scores", classifier(y))]
    return "\n".join(f"{name:>21}: {tuple(t.shape)}" for name, t in steps)


@torch.no_grad()
def patch_embedding_is_a_convolution(config: ViTConfig, images: torch.Tensor) -> bool:
    """Whether the paper's patch embedding equals a Conv2d, kernel = stride = patch size, of the same (any) weights."""
    p, plain = config.patch_size, ViT(config.paper())
    linear = plain.to_patch_embedding[1]
    conv = torch.nn.Conv2d(config.channels, config.dim, kernel_size=p, stride=p)
    conv.weight.copy_(rearrange(linear.weight, "d (p1 p2 c) -> d c p1 p2", p1=p, p2=p))
    conv.bias.copy_(linear.bias)
    return torch.allclose(plain.to_patch_embedding(images), rearrange(conv(images), "b d h w -> b (h w) d"), atol=1e-5)


@torch.no_grad()
def encoder_is_permutation_equivariant(model: ViT, seed: int = 0) -> bool:
    """Without position embeddings the encoder treats tokens as a set: shuffling its input only shuffles its output."""
    n, d = model.config.num_patches, model.config.dim
    generator = torch.Generator().manual_seed(seed)
    tokens, order = torch.randn(1, n, d, generator=generator), torch.randperm(n, generator=generator)
    model.eval()
    return torch.allclose(model.transformer(tokens[:, order]), model.transformer(tokens)[:, order], atol=1e-5)
