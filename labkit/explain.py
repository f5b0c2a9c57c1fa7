"""What a trained ViT has learned: position-embedding similarity, attention maps, attention rollout."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labkit.vit import Attention, ViT


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


def attention_rollout(maps: list[torch.Tensor], grid: int) -> torch.Tensor:
    """Abnar & Zuidema (2020): multiply the head-averaged attention of every block, each mixed with the
    identity for the residual path, and read the [CLS] row: what the class token draws on, overall."""
    tokens = maps[0].shape[-1]
    rollout = torch.eye(tokens)
    for m in maps:
        a = 0.5 * m.mean(0) + 0.5 * torch.eye(tokens)
        rollout = (a / a.sum(-1, keepdim=True)) @ rollout
    return rollout[0, 1:].reshape(grid, grid)


def locality(similarity: torch.Tensor) -> tuple[float, float]:
    """Mean similarity of grid neighbours (distance 1) and of positions 2 or more apart: if training taught the
    embeddings the 2-D layout, the first is clearly larger."""
    g = similarity.shape[0]
    rows, cols = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    cells = torch.stack([rows.flatten(), cols.flatten()], 1).float()
    distance = torch.cdist(cells, cells)
    flat = similarity.reshape(g * g, g * g)
    return flat[(distance > 0) & (distance <= 1)].mean().item(), flat[distance >= 2].mean().item()
