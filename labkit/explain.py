"""What a trained ViT has learned: position-embedding similarity, attention maps, attention rollout."""

from __future__ import annotations

import inspect
from dataclasses import replace

import torch
import torch.nn.functional as F
from einops import rearrange

from labkit.metrics import evaluate
from labkit.small_data import ShiftedPatches
from labkit.vit import Attention, PreNorm, Transformer, ViT, ViTConfig, patch_embedding


def position_similarity(model: ViT, subtract: ViT | None = None) -> torch.Tensor:
    """Cosine similarity between the position embeddings of every pair of patches (the paper's Fig. 7).

    Returns (g, g, g, g): entry [r, c] is the g x g map of patch (r, c)'s similarity to every patch. With
    ``subtract`` (the same model before training), it compares what training changed, not where it started.
    """
    pos = model.pos_embedding[0, 1:].detach()  # drop the [CLS] position
    if subtract is not None:
        pos = pos - subtract.pos_embedding[0, 1:].detach()
    g = model.config.grid
    sim = F.cosine_similarity(pos[:, None], pos[None, :], dim=-1)
    return sim.reshape(g, g, g, g)


@torch.no_grad()
def attention_maps(model: ViT, image: torch.Tensor) -> list[torch.Tensor]:
    """Per block, the attention weights (heads, tokens, tokens) for one normalised image (1 x H x W).

    The model's forward runs the fused kernel, which keeps no weights; a forward hook on each ``Attention``
    recomputes them from the very input that block received (``Attention.weights``)."""
    model.eval()
    maps = []

    def keep(module: Attention, inputs: tuple[torch.Tensor]) -> None:
        maps.append(module.weights(inputs[0])[0])

    hooks = [m.register_forward_pre_hook(keep) for m in model.modules() if isinstance(m, Attention)]
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
    """The weight the [CLS] token keeps on itself in one block, per head: what ``cls_attention``'s maps leave out
    (they and it sum to 1)."""
    return maps[block][:, 0, 0]


def attention_rollout(maps: list[torch.Tensor], grid: int) -> torch.Tensor:
    """Abnar & Zuidema (2020): multiply the head-averaged attention of every block, each mixed with the
    identity for the residual path, and read the [CLS] row: what the class token draws on, overall."""
    tokens = maps[0].shape[-1]
    rollout = torch.eye(tokens)
    for m in maps:
        a = 0.5 * m.mean(0) + 0.5 * torch.eye(tokens)
        rollout = (a / a.sum(-1, keepdim=True)) @ rollout
    return rollout[0, 1:].reshape(grid, grid)


def attention_on_content(image: torch.Tensor, rollout: torch.Tensor, patch_size: int) -> str:
    """One sentence on whether the rollout follows the image's content: the share of the [CLS] token's patch
    attention that lands on the patches whose mean brightness is above the image's (1 x H x W, raw pixels)."""
    patches = image[0].float().unfold(0, patch_size, patch_size).unfold(1, patch_size, patch_size).mean((-1, -2))
    bright = patches > image.float().mean()
    weight = rollout / rollout.sum()
    share, count = weight[bright].sum().item(), bright.float().mean().item()
    ratio = share / count if count else 1.0
    if ratio > 1.2:
        reading = "it leans towards the image's content"
    elif ratio >= 0.8:
        reading = "about an even share, so it does not single out the content"
    else:
        reading = "it draws more on the background than on the content"
    return (
        f"The rollout puts {share:.0%} of the [CLS] token's patch attention on the {count:.0%} of patches that are "
        f"brighter than the image's mean, {ratio:.1f}× their even share: {reading}."
    )


def locality(similarity: torch.Tensor) -> tuple[float, float]:
    """Mean similarity of grid neighbours (distance 1) and of positions 2 or more apart: if training taught the
    embeddings the 2-D layout, the first is clearly larger."""
    g = similarity.shape[0]
    rows, cols = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    cells = torch.stack([rows.flatten(), cols.flatten()], 1).float()
    distance = torch.cdist(cells, cells)
    flat = similarity.reshape(g * g, g * g)
    return flat[(distance > 0) & (distance <= 1)].mean().item(), flat[distance >= 2].mean().item()


def tokens_sentence(config: ViTConfig) -> str:
    """How the patch embedding turns one image into tokens, with this config's numbers: the grid, the values per
    patch (with SPT, the patch and its four shifted copies), the width, the sequence and the position table."""
    p, size, c, g = config.patch_size, config.image_size, config.channels, config.grid
    values = p * p * c
    spt = (
        f", **{5 * values} values** with SPT (the patch and its four shifted copies)" if config.shifted_patches else ""
    )
    return (
        f"With patch size {p}, a {size}×{size} image becomes a **{g}×{g} grid = {g * g} patches**, each flattened to "
        f"{p}·{p}·{c} = {values} values{spt}, projected to **{config.dim}** dimensions; with the [CLS] token "
        f"(position 0) the Transformer reads **{g * g + 1} tokens**, and the position table is {g * g + 1} × "
        f"{config.dim}."
    )


def spt_copies(config: ViTConfig, image: torch.Tensor) -> torch.Tensor | None:
    """For a model with shifted patch tokens, what SPT cuts into patches for one uint8 image (1 x H x W): the image
    and its four diagonal shifts, (5, H, W) in [0, 1]. None for a model without SPT."""
    if not config.shifted_patches:
        return None
    return ShiftedPatches(config.patch_size).stacked(image[None].float() / 255)[0]


@torch.no_grad()
def position_ablation(model: ViT, data, seed: int = 0) -> dict[str, float]:
    """Test accuracy of ``model`` with its patch position embeddings intact, shuffled among the patches (each patch
    gets another patch's position; [CLS] keeps its own) and zeroed: how much the model relies on where patches are."""
    original = model.pos_embedding.detach().clone()
    order = torch.randperm(original.shape[1] - 1, generator=torch.Generator().manual_seed(seed)) + 1
    variants = {
        "intact": original,
        "shuffled among patches": torch.cat((original[:, :1], original[:, order]), dim=1),
        "zeroed": torch.cat((original[:, :1], torch.zeros_like(original[:, 1:])), dim=1),
    }
    accuracy = {}
    try:
        for name, pos in variants.items():
            model.pos_embedding.copy_(pos)
            accuracy[name] = evaluate(model, data.batches("test", 128))[1]
    finally:
        model.pos_embedding.copy_(original)
    return accuracy


def position_summary(sims: dict[str, torch.Tensor], change: float) -> str:
    """Question 6's reading of the similarity maps (trained, untrained, what training changed, in that order):
    neighbours against distant positions, the spread of the similarities between different positions, and whether
    the 2-D layout was there from the start (a sine-cosine table), learned, or neither."""
    rows = [
        "| position embeddings | neighbours (mean) | ≥ 2 apart (mean) | different positions: range |",
        "|---|---:|---:|---:|",
    ]
    for name, sim in sims.items():
        near, far = locality(sim)
        g = sim.shape[0]
        others = sim.reshape(g * g, g * g)[~torch.eye(g * g, dtype=torch.bool)]
        rows.append(f"| {name} | {near:+.3f} | {far:+.3f} | {others.min().item():+.2f} … {others.max().item():+.2f} |")
    (near, far), (start_near, start_far), (added_near, added_far) = (locality(m) for m in sims.values())
    if start_near - start_far > 0.1:
        kept = "still" if near - far > 0.1 else "no longer"
        verdict = (
            f"The embeddings started as a 2-D sine-cosine table, neighbours alike from the start ({start_near:+.3f} "
            f"against {start_far:+.3f}): that layout is a prior put in, not learned. After training, neighbouring "
            f"positions are {kept} more alike than distant ones ({near:+.3f} against {far:+.3f}); "
            + (f"what training changed also favours neighbours ({added_near:+.3f} against {added_far:+.3f})."
               if added_near - added_far > 0.1 else
               f"what training changed adds no layout of its own ({added_near:+.3f} against {added_far:+.3f}).")
        )  # fmt: skip
    elif near - far > 0.1:
        verdict = (
            f"Neighbouring positions end up more alike than distant ones ({near:+.3f} against {far:+.3f}): training "
            "taught the embeddings some of the 2-D layout, as in the paper's Fig. 7."
        )
    else:
        verdict = (
            f"Neighbouring positions are hardly more alike than distant ones ({near:+.3f} against {far:+.3f}): no "
            "2-D layout was learned here, unlike the paper's Fig. 7 (whose Appendix D.4 notes that the pattern "
            "depends on the training hyperparameters, Fig. 10)."
        )
    return (
        "\n".join(rows)
        + f"\n\nTraining changed the position embeddings by {change:.1%} of their starting size. "
        + verdict
    )


def equation_code() -> list[tuple[str, str]]:
    """Where each of the paper's Eq. 1-4 lives in ``vit.py``, in reading order, with its source, for Question 10a."""
    parts = [
        ("Eq. 1, x_p E: the plain patch embedding (cut, then one shared Linear)", patch_embedding),
        ("Eq. 1: ViT.embed ([CLS] prepended, E_pos added)", ViT.embed),
        ("Eq. 2-3: Transformer.forward (residual around each sub-layer)", Transformer.forward),
        ("Eq. 2-3: PreNorm.forward (the LN before MSA and MLP)", PreNorm.forward),
        ("Eq. 4: ViT.forward_head (LN, then the linear classifier on z_L^0)", ViT.forward_head),
    ]
    return [(title, inspect.getsource(fn)) for title, fn in parts]


@torch.no_grad()
def equation_shapes(model: ViT, images: torch.Tensor) -> str:
    """The shapes one batch takes through Eq. 1-4 of ``model``, one line each."""
    model.eval()
    patches = model.patches(images)
    tokens = model.to_patch_embedding(images)
    z0 = model.embed(images)
    zl = model.forward_features(images)
    norm, classifier = model.mlp_head
    steps = [
        ("images", images),
        ("patches x_p", patches),
        ("x_p E", tokens),
        ("z_0 ([CLS] + E_pos)", z0),
        ("z_L (after all blocks)", zl),
        ("z_L^0 ([CLS])", zl[:, 0]),
        ("y = LN(z_L^0) (Eq. 4)", norm(zl[:, 0])),
        ("class scores (head on y)", classifier(norm(zl[:, 0]))),
    ]
    return "\n".join(f"{name:>24}: {tuple(t.shape)}" for name, t in steps)


@torch.no_grad()
def patch_embedding_is_a_convolution(config: ViTConfig, images: torch.Tensor) -> bool:
    """The paper's plain patch embedding equals a Conv2d with kernel = stride = patch size carrying the same
    weights (checked on an untrained model: the identity holds for any weights)."""
    p = config.patch_size
    plain = ViT(replace(config, shifted_patches=False, conv_stem=0, locality_attention=False, gpsa_blocks=0,
                        diagonal_mask=False))  # fmt: skip
    linear = plain.to_patch_embedding[1]
    conv = torch.nn.Conv2d(config.channels, config.dim, kernel_size=p, stride=p)
    conv.weight.copy_(rearrange(linear.weight, "d (p1 p2 c) -> d c p1 p2", p1=p, p2=p))
    conv.bias.copy_(linear.bias)
    by_conv = rearrange(conv(images), "b d h w -> b (h w) d")
    return torch.allclose(plain.to_patch_embedding(images), by_conv, atol=1e-5)


@torch.no_grad()
def encoder_is_permutation_equivariant(model: ViT, seed: int = 0) -> bool:
    """Without position embeddings the encoder treats tokens as a set: shuffling its input only shuffles its output."""
    n, d = model.config.num_patches, model.config.dim
    generator = torch.Generator().manual_seed(seed)
    tokens, order = torch.randn(1, n, d, generator=generator), torch.randperm(n, generator=generator)
    model.eval()
    return torch.allclose(model.transformer(tokens[:, order]), model.transformer(tokens)[:, order], atol=1e-5)
