"""The Vision Transformer of Dosovitskiy et al. (2021), sized for small grayscale images.

Reads top to bottom like the paper's Eq. 1-4: patchify, embed each patch linearly, prepend a
learned [CLS] token, add learned position embeddings, run pre-norm Transformer blocks, classify
from the final [CLS] state. The patch embedding's cut is the plain one, SPT's shifted one, or the
paper's hybrid (§3.1) conv stem, whose feature map is read as 1x1 patches; the rest is the same.
Module classes, nesting and parameter names follow the lab's reference model (vit-pytorch's earlier
pre-norm ViT), so a state dict saved by the lab's own code loads into the ``seed`` preset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from einops.layers.torch import Rearrange
from torch import nn

from labkit.cnn import conv_bn_relu
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
    conv_stem: int = 0  # > 0: the paper's hybrid (§3.1), a conv stem of this width cuts the "patches"
    embedding_init_std: float = 1.0  # [CLS] and positions start N(0, std^2): 1 in the lab's code, 0.02 in the paper's

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "channels", "num_classes", "dim", "depth", "heads", "dim_head",
                     "mlp_dim"):  # fmt: skip
            if getattr(self, name) < 1:
                raise LabError(f"invalid ViT config: {name}={getattr(self, name)} must be at least 1")
        if self.image_size % self.patch_size:
            raise LabError(
                f"invalid ViT config: image_size {self.image_size} is not divisible by "
                f"patch_size {self.patch_size}; pick a patch size that divides it"
            )
        if self.embedding_init_std <= 0:
            raise LabError(f"invalid ViT config: embedding_init_std={self.embedding_init_std} must be positive")
        for name in ("dropout", "emb_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise LabError(f"invalid ViT config: {name}={getattr(self, name)} must be in [0, 1)")
        if self.conv_stem < 0 or (self.conv_stem and self.patch_size not in STEM_STAGES):
            raise LabError(
                f"invalid ViT config: a conv stem (conv_stem={self.conv_stem}) needs conv_stem >= 0 and patch_size "
                f"1, 2 or 4 (its stride-2 stages), not {self.patch_size}"
            )
        if self.conv_stem and self.shifted_patches:
            raise LabError("invalid ViT config: choose a conv stem or shifted patches, not both")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def grid(self) -> int:
        """Patches per side: tokens are laid out on a grid x grid square, row by row."""
        return self.image_size // self.patch_size


STEM_STAGES = {1: 0, 2: 1, 4: 2}  # conv-stem stride -> number of (max-pool, conv) stages after the first conv


def patchify(patch_size: int) -> Rearrange:
    """Cuts (b, c, H, W) images into a row-by-row sequence of flattened p x p patches: (b, N, p * p * c)."""
    return Rearrange("b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)


class ShiftedPatches(nn.Module):
    """SPT's cut (Lee et al., "Vision Transformer for Small-Size Datasets", 2021): the image and four copies
    shifted half a patch diagonally are stacked as channels before patching, so each patch vector also carries
    the edges of its neighbours: (b, N, 5 * p * p * c). One token per patch, as in the plain cut."""

    def __init__(self, patch_size: int):
        super().__init__()
        self.shift = max(1, patch_size // 2)
        self.patchify = patchify(patch_size)

    def stacked(self, img: torch.Tensor) -> torch.Tensor:
        """The image and its four diagonal shifts, stacked as channels: (b, 5c, H, W)."""
        s = self.shift
        # F.pad with a negative amount crops: each copy moves s pixels along one diagonal, zero-filled.
        shifted = (F.pad(img, pad) for pad in ((s, -s, s, -s), (-s, s, s, -s), (s, -s, -s, s), (-s, s, -s, s)))
        return torch.cat((img, *shifted), dim=1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.patchify(self.stacked(img))


class ConvStem(nn.Module):
    """The hybrid's cut (paper §3.1): a small CNN whose feature map, read as 1x1 patches, gives one
    ``width``-long vector per location: (b, (H / stride) * (W / stride), width)."""

    def __init__(self, channels: int, width: int, stride: int):
        super().__init__()
        layers = conv_bn_relu(channels, width)
        for _ in range(STEM_STAGES[stride]):
            layers += [nn.MaxPool2d(2), *conv_bn_relu(width, width)]
        self.net = nn.Sequential(*layers)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return rearrange(self.net(img), "b c h w -> b (h w) c")


def patch_embedding(c: ViTConfig) -> nn.Sequential:
    """Eq. 1's x_p E: first cut the image into patch vectors, then project each to ``dim``. The cut is always
    element 0, so ``ViT.patches`` reads it without knowing which kind it is. The plain one is the lab's
    ``Sequential(Rearrange, Linear)``, with its torchinfo rows and parameter names."""
    if c.conv_stem:
        return nn.Sequential(ConvStem(c.channels, c.conv_stem, c.patch_size), nn.Linear(c.conv_stem, c.dim))
    if c.shifted_patches:
        patch_dim = 5 * c.channels * c.patch_size**2
        # SPT normalises the stacked patch before projecting it (Lee et al., Eq. 3).
        return nn.Sequential(ShiftedPatches(c.patch_size), nn.LayerNorm(patch_dim), nn.Linear(patch_dim, c.dim))
    return nn.Sequential(patchify(c.patch_size), nn.Linear(c.channels * c.patch_size**2, c.dim))


class PreNorm(nn.Module):
    """LayerNorm before the wrapped sub-layer (pre-norm, as in the paper's Eq. 2-3)."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


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
    and sharpens where small data would leave it flat.

    ``forward`` runs PyTorch's fused kernel (SDPA), which never materialises the weights; ``weights``
    computes them explicitly from the same projections, for the QA notebook's attention maps."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.0, locality: bool = False):
        super().__init__()
        self.heads = heads
        self.scale = dim_head**-0.5
        self.dropout = dropout
        self.to_qkv = nn.Linear(dim, heads * dim_head * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(dropout))
        self.temperature = nn.Parameter(torch.tensor(math.log(self.scale))) if locality else None

    def _qkv(self, x: torch.Tensor):
        """Queries, keys and values (b, heads, n, dim_head), the score scale and the mask of allowed pairs
        (None: all). LSA's learned scale is a tensor, which SDPA does not take, so it goes into the queries."""
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in self.to_qkv(x).chunk(3, dim=-1))
        if self.temperature is None:
            return q, k, v, self.scale, None
        allowed = ~torch.eye(x.shape[1], dtype=torch.bool, device=x.device)  # LSA: no token attends to itself
        return q * self.temperature.exp(), k, v, 1.0, allowed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v, scale, allowed = self._qkv(x)
        dropout = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout, scale=scale)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights ``forward`` applies (before dropout): (b, heads, n, n), each row summing to 1."""
        q, k, _, scale, allowed = self._qkv(x)
        scores = q @ k.transpose(-1, -2) * scale
        return (scores if allowed is None else scores.masked_fill(~allowed, float("-inf"))).softmax(dim=-1)


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 2-3 per block: z' = MSA(LN(z)) + z, then z = MLP(LN(z')) + z'."""
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return x


class ViT(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = c = config
        self.to_patch_embedding = patch_embedding(c)
        self.pos_embedding = nn.Parameter(torch.randn(1, c.num_patches + 1, c.dim) * c.embedding_init_std)
        self.cls_token = nn.Parameter(torch.randn(1, 1, c.dim) * c.embedding_init_std)
        self.dropout = nn.Dropout(c.emb_dropout)
        self.transformer = Transformer(c.dim, c.depth, c.heads, c.dim_head, c.mlp_dim, c.dropout, c.locality_attention)
        self.mlp_head = nn.Sequential(nn.LayerNorm(c.dim), nn.Linear(c.dim, c.num_classes))

    def no_weight_decay(self) -> set[str]:
        """Parameters the optimizer should not decay (timm's convention): learned embeddings, not weights."""
        return {"cls_token", "pos_embedding"}

    def patches(self, img: torch.Tensor) -> torch.Tensor:
        """The patch vectors the patch embedding projects: (b, num_patches, values per patch)."""
        return self.to_patch_embedding[0](img)

    def embed(self, img: torch.Tensor) -> torch.Tensor:
        """Eq. 1: z0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos."""
        c = self.config
        expected = (c.channels, c.image_size, c.image_size)
        assert tuple(img.shape[1:]) == expected, f"expected images of shape (b, {expected}), got {tuple(img.shape)}"
        x = self.to_patch_embedding(img)
        cls_tokens = repeat(self.cls_token, "1 1 d -> b 1 d", b=x.shape[0])
        x = torch.cat((cls_tokens, x), dim=1) + self.pos_embedding
        return self.dropout(x)

    def forward_features(self, img: torch.Tensor) -> torch.Tensor:
        """Eq. 2-3: all tokens after the last block (b, 1 + num_patches, dim)."""
        return self.transformer(self.embed(img))

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        """Eq. 4: y = LN(z_L^0), then a linear classifier on the [CLS] state."""
        return self.mlp_head(tokens[:, 0])

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(img))
