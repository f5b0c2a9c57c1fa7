"""Dosovitskiy et al.'s ViT (2021), read like Eq. 1-4, named as the lab's reference (vit-pytorch) so weights load."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from einops.layers.torch import Rearrange
from torch import nn

from labkit.errors import LabError, check_fields

INITS = ("random", "locality")
# The extras the presets use beyond the paper's model (small_data.py), each at its value in the paper's model.
EXTRAS = {"shifted_patches": False, "conv_stem": 0, "init": "random"}


@dataclass(frozen=True)
class ViTConfig:
    patch_size: int  # image_size / patch_size patches per side
    dim: int  # token width D
    depth: int  # Transformer blocks L
    heads: int
    dim_head: int  # heads * dim_head need not equal dim (the reference uses 8 * 64 = 512 > 192)
    mlp_dim: int  # hidden width of each block's MLP
    image_size: int = 28  # the lab's images are 28x28
    channels: int = 1  # grayscale
    num_classes: int = 6  # the lab's six classes
    dropout: float = 0.0  # inside attention output and MLP
    emb_dropout: float = 0.1  # on the token sequence, after position embeddings (the lab's reference code)
    shifted_patches: bool = False  # shifted patch tokens (SPT): each patch vector also holds its neighbours' edges
    conv_stem: int = 0  # > 0: the paper's hybrid (§3.1), a conv stem of this width makes the tokens
    init: str = "random"  # "random": [CLS] and positions N(0, 1) as the reference; "locality": see small_data.py

    def __post_init__(self) -> None:
        check_fields(self, "ViT config")
        sizes = ("image_size", "patch_size", "channels", "num_classes", "dim", "depth", "heads", "dim_head", "mlp_dim")
        for name in sizes:
            if getattr(self, name) < 1:
                raise LabError(f"invalid ViT config: {name}={getattr(self, name)} must be at least 1")
        if self.image_size % self.patch_size:
            problem = f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}"
            raise LabError(f"invalid ViT config: {problem}; pick a patch size that divides it")
        for name in ("dropout", "emb_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise LabError(f"invalid ViT config: {name}={getattr(self, name)} must be in [0, 1)")
        if self.conv_stem < 0 or (self.conv_stem and self.patch_size not in (1, 2, 4)):
            need = f"conv_stem >= 0 and patch_size 1, 2 or 4 (its stride-2 stages), not {self.patch_size}"
            raise LabError(f"invalid ViT config: a conv stem (conv_stem={self.conv_stem}) needs {need}")
        if self.conv_stem and self.shifted_patches:
            raise LabError("invalid ViT config: choose a conv stem or shifted patches, not both")
        if self.init not in INITS:
            raise LabError(f"invalid ViT config: init={self.init!r}; choose one of {', '.join(INITS)}")
        if self.init == "locality" and self.dim % 4:
            raise LabError(f"invalid ViT config: the locality start needs dim divisible by 4, not {self.dim}")

    @property
    def num_patches(self) -> int:
        return self.grid**2

    @property
    def grid(self) -> int:
        """Patches per side: tokens are laid out on a grid x grid square, row by row."""
        return self.image_size // self.patch_size

    def paper(self) -> ViTConfig:
        """This config with every extra off: the paper's ViT of the same sizes."""
        return replace(self, **EXTRAS)


def patchify(patch_size: int) -> Rearrange:
    """Cuts (b, c, H, W) images into a row-by-row sequence of flattened p x p patches: (b, N, p * p * c)."""
    return Rearrange("b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)


def patch_embedding(c: ViTConfig) -> nn.Sequential:
    """Eq. 1's x_p E: cut the image into patch vectors, then project each with one shared Linear to ``dim``."""
    return nn.Sequential(patchify(c.patch_size), nn.Linear(c.channels * c.patch_size**2, c.dim))


class PreNorm(nn.Module):
    """LayerNorm before the wrapped sub-layer (pre-norm, as in the paper's Eq. 2-3)."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm, self.fn = nn.LayerNorm(dim), fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden_dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Attention(nn.Module):
    """Multi-head self-attention, softmax(q kᵀ / √d_head) v per head, concatenated and projected (PyTorch's SDPA)."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.0):
        super().__init__()
        self.heads, self.scale, self.dropout = heads, dim_head**-0.5, dropout
        self.to_qkv = nn.Linear(dim, heads * dim_head * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(dropout))

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values, (b, heads, n, dim_head) each."""
        return tuple(rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in self.to_qkv(x).chunk(3, dim=-1))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        dropout = self.dropout if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_out(rearrange(self.attend(*self.qkv(x)), "b h n d -> b n (h d)"))

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights ``forward`` applies (before dropout): (b, heads, n, n), each row summing to 1."""
        q, k, _ = self.qkv(x)
        return (q @ k.transpose(-1, -2) * self.scale).softmax(dim=-1)


class Transformer(nn.Module):
    def __init__(self, c: ViTConfig, attention=Attention):
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(c.depth):
            attn = PreNorm(c.dim, attention(c.dim, heads=c.heads, dim_head=c.dim_head, dropout=c.dropout))
            self.layers.append(nn.ModuleList([attn, PreNorm(c.dim, FeedForward(c.dim, c.mlp_dim, dropout=c.dropout))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 2-3 per block: z' = MSA(LN(z)) + z, then z = MLP(LN(z')) + z'."""
        for attn, ff in self.layers:  # PreNorm: LN, then MSA or MLP
            x = attn(x) + x
            x = ff(x) + x
        return x


class ViT(nn.Module):
    """The paper's ViT; small_data.build_vit replaces ``to_patch_embedding`` (element 0 always the cut) for extras."""

    def __init__(self, config: ViTConfig, to_patch_embedding: nn.Sequential | None = None, attention=Attention):
        super().__init__()
        if to_patch_embedding is None and config != config.paper():
            raise LabError("this ViT config asks for small-data extras: build it with labkit.models.build_model")
        self.config = c = config
        self.to_patch_embedding = to_patch_embedding or patch_embedding(c)
        self.pos_embedding = nn.Parameter(torch.randn(1, c.num_patches + 1, c.dim))
        self.cls_token = nn.Parameter(torch.randn(1, 1, c.dim))
        self.dropout = nn.Dropout(c.emb_dropout)
        self.transformer = Transformer(c, attention)
        self.mlp_head = nn.Sequential(nn.LayerNorm(c.dim), nn.Linear(c.dim, c.num_classes))

    def no_weight_decay(self) -> set[str]:
        """Parameters the optimizer should not decay (timm's convention): learned embeddings, not weights."""
        return {"cls_token", "pos_embedding"}

    def patches(self, img: torch.Tensor) -> torch.Tensor:
        """The patch vectors the patch embedding projects: (b, num_patches, values per patch)."""
        return self.to_patch_embedding[0](img)

    def embed(self, img: torch.Tensor) -> torch.Tensor:
        """Eq. 1: z0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos."""
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
