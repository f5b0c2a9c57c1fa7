"""The Vision Transformer of Dosovitskiy et al. (2021), sized for small grayscale images.

Reads top to bottom like the paper's Eq. 1-4: patchify, embed each patch linearly, prepend a
learned [CLS] token, add learned position embeddings, run pre-norm Transformer blocks, classify
from the final [CLS] state. Module classes, nesting and parameter names follow the lab's
reference model (vit-pytorch's earlier pre-norm ViT), so a state dict saved by the lab's own
code loads into the ``seed`` preset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from einops.layers.torch import Rearrange
from torch import nn

from labkit.errors import LabError


@dataclass(frozen=True)
class ViTConfig:
    image_size: int = 28  # the lab's images are 28x28
    patch_size: int = 4  # 28 / 4 = 7x7 = 49 tokens: short sequences, fine detail
    channels: int = 1  # grayscale
    num_classes: int = 6  # the lab's six classes
    dim: int = 192  # token width
    depth: int = 10  # Transformer blocks
    heads: int = 8
    dim_head: int = 64  # heads * dim_head need not equal dim (the seed uses 8 * 64 = 512 > 192)
    mlp_dim: int = 384  # hidden width of each block's MLP
    dropout: float = 0.0  # inside attention output and MLP
    emb_dropout: float = 0.1  # on the token sequence, after position embeddings
    shifted_patches: bool = False  # SPT (Lee et al. 2021): tokens also see their neighbours, a locality prior
    locality_attention: bool = False  # LSA (Lee et al. 2021): learned temperature, no token attends to itself

    def __post_init__(self) -> None:
        for name in (
            "image_size",
            "patch_size",
            "channels",
            "num_classes",
            "dim",
            "depth",
            "heads",
            "dim_head",
            "mlp_dim",
        ):
            if getattr(self, name) < 1:
                raise LabError(f"invalid ViT config: {name}={getattr(self, name)} must be at least 1")
        if self.image_size % self.patch_size:
            raise LabError(
                f"invalid ViT config: image_size {self.image_size} is not divisible by "
                f"patch_size {self.patch_size}; pick a patch size that divides it"
            )
        for name in ("dropout", "emb_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise LabError(f"invalid ViT config: {name}={getattr(self, name)} must be in [0, 1)")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def patchify(patch_size: int) -> Rearrange:
    """Cuts (b, c, H, W) images into a row-by-row sequence of flattened p x p patches: (b, N, p * p * c)."""
    return Rearrange("b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)


class PreNorm(nn.Module):
    """LayerNorm before the wrapped sub-layer (pre-norm, as in the paper's Eq. 2-3)."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.fn(self.norm(x), **kwargs)


class ShiftedPatchEmbedding(nn.Module):
    """SPT (Lee et al., "Vision Transformer for Small-Size Datasets", 2021): the image and four copies shifted
    half a patch diagonally are stacked as channels before patching, so each token also carries the edges of
    its neighbours. It keeps one token per patch and costs one wider Linear."""

    def __init__(self, channels: int, patch_size: int, dim: int):
        super().__init__()
        self.shift = max(1, patch_size // 2)
        patch_dim = 5 * channels * patch_size**2
        self.patchify = patchify(patch_size)
        self.to_tokens = nn.Sequential(nn.LayerNorm(patch_dim), nn.Linear(patch_dim, dim))

    def patches(self, img: torch.Tensor) -> torch.Tensor:
        """(b, num_patches, 5 * p * p * c): each patch of the image and of its four shifted copies."""
        s = self.shift
        # F.pad with a negative amount crops: each copy moves s pixels along one diagonal, zero-filled.
        shifted = (F.pad(img, pad) for pad in ((s, -s, s, -s), (-s, s, s, -s), (s, -s, -s, s), (-s, s, -s, s)))
        return self.patchify(torch.cat((img, *shifted), dim=1))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.to_tokens(self.patches(img))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Attention(nn.Module):
    """Multi-head self-attention: heads attend in parallel on split projections, then are
    concatenated and projected back to ``dim``. With ``locality`` it is LSA (Lee et al., 2021): the
    softmax temperature is learned and the diagonal is masked, so attention cannot stay on the token itself
    and sharpens where small data would leave it flat."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.0, locality: bool = False):
        super().__init__()
        self.heads = heads
        self.scale = dim_head**-0.5
        self.dropout = dropout
        self.to_qkv = nn.Linear(dim, heads * dim_head * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(dropout))
        self.temperature = nn.Parameter(torch.tensor(math.log(self.scale))) if locality else None

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in self.to_qkv(x).chunk(3, dim=-1))
        scale = self.scale if self.temperature is None else self.temperature.exp()
        # True where attention is allowed: everywhere, or (LSA) everywhere but the diagonal.
        allowed = None if self.temperature is None else ~torch.eye(x.shape[1], dtype=torch.bool, device=x.device)
        if return_attn:
            # The fused kernel never materialises the weights, so compute them explicitly here.
            scores = q @ k.transpose(-1, -2) * scale
            attn = (scores if allowed is None else scores.masked_fill(~allowed, float("-inf"))).softmax(dim=-1)
            out = F.dropout(attn, self.dropout, self.training) @ v
        else:
            attn = None
            # SDPA takes the scale as a number, so a learned one is applied to q instead.
            out = F.scaled_dot_product_attention(
                q if allowed is None else q * scale,
                k,
                v,
                attn_mask=allowed,
                dropout_p=self.dropout if self.training else 0.0,
                scale=None if allowed is None else 1.0,
            )
        out = self.to_out(rearrange(out, "b h n d -> b n (h d)"))
        return (out, attn) if return_attn else out


class Transformer(nn.Module):
    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        dim_head: int,
        mlp_dim: int,
        dropout: float = 0.0,
        locality: bool = False,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PreNorm(dim, Attention(dim, heads=heads, dim_head=dim_head, dropout=dropout, locality=locality)),
                    PreNorm(dim, FeedForward(dim, mlp_dim, dropout=dropout)),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        """Returns the tokens, and with ``return_attn`` also a list of (b, heads, n, n) weights per block."""
        maps = []
        for attn, ff in self.layers:
            if return_attn:
                a, weights = attn(x, return_attn=True)
                maps.append(weights)
                x = a + x
            else:
                x = attn(x) + x
            x = ff(x) + x
        return (x, maps) if return_attn else x


class ViT(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = c = config
        if c.shifted_patches:
            self.to_patch_embedding = ShiftedPatchEmbedding(c.channels, c.patch_size, c.dim)
        else:
            self.to_patch_embedding = nn.Sequential(
                patchify(c.patch_size),
                nn.Linear(c.channels * c.patch_size**2, c.dim),
            )
        self.pos_embedding = nn.Parameter(torch.randn(1, c.num_patches + 1, c.dim))
        self.cls_token = nn.Parameter(torch.randn(1, 1, c.dim))
        self.dropout = nn.Dropout(c.emb_dropout)
        self.transformer = Transformer(c.dim, c.depth, c.heads, c.dim_head, c.mlp_dim, c.dropout, c.locality_attention)
        self.mlp_head = nn.Sequential(nn.LayerNorm(c.dim), nn.Linear(c.dim, c.num_classes))

    def patches(self, img: torch.Tensor) -> torch.Tensor:
        """The flattened patch vectors the patch embedding projects: (b, num_patches, values per patch)."""
        embedding = self.to_patch_embedding
        return embedding.patches(img) if isinstance(embedding, ShiftedPatchEmbedding) else embedding[0](img)

    def embed(self, img: torch.Tensor) -> torch.Tensor:
        """Eq. 1: z0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos."""
        c = self.config
        expected = (c.channels, c.image_size, c.image_size)
        assert tuple(img.shape[1:]) == expected, f"expected images of shape (b, {expected}), got {tuple(img.shape)}"
        x = self.to_patch_embedding(img)
        cls_tokens = repeat(self.cls_token, "1 1 d -> b 1 d", b=x.shape[0])
        x = torch.cat((cls_tokens, x), dim=1) + self.pos_embedding
        return self.dropout(x)

    def forward_features(self, img: torch.Tensor, return_attn: bool = False):
        """Eq. 2-3: all tokens after the last block (b, 1 + num_patches, dim)."""
        return self.transformer(self.embed(img), return_attn=return_attn)

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        """Eq. 4: y = LN(z_L^0), then a linear classifier on the [CLS] state."""
        return self.mlp_head(tokens[:, 0])

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(img))
