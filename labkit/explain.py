"""What a trained ViT has learned: position-embedding similarity, attention maps, attention rollout."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labkit.vit import ViT


def position_similarity(model: ViT) -> torch.Tensor:
    """Cosine similarity between the position embeddings of every pair of patches (the paper's Fig. 7).

    Returns (g, g, g, g): entry [r, c] is the g x g map of patch (r, c)'s similarity to every patch.
    """
    pos = model.pos_embedding[0, 1:].detach()  # drop the [CLS] position
    g = model.config.image_size // model.config.patch_size
    sim = F.cosine_similarity(pos[:, None], pos[None, :], dim=-1)
    return sim.reshape(g, g, g, g)


@torch.no_grad()
def attention_maps(model: ViT, image: torch.Tensor) -> list[torch.Tensor]:
    """Per block, the attention weights (heads, tokens, tokens) for one normalised image (1 x H x W)."""
    model.eval()
    _, maps = model.forward_features(image[None], return_attn=True)
    return [m[0] for m in maps]


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
