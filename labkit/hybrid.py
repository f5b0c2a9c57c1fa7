"""The paper's hybrid (§3.1): a small convolutional stem makes the tokens, a ViT encoder mixes them.

The stem's feature map is read as 1x1 patches (the paper's special case), so each token is one location
of the downsampled map; a [CLS] token, learned positions, the same pre-norm Transformer and head follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from torch import nn

from labkit.cnn import conv_bn_relu
from labkit.errors import LabError
from labkit.vit import Transformer


@dataclass(frozen=True)
class HybridConfig:
    image_size: int = 28  # the lab's images
    channels: int = 1  # grayscale
    num_classes: int = 6  # the lab's six classes
    stem_width: int = 32  # channels of the convolutional stem
    downsample: int = 4  # the stem's total stride: 28 / 4 = 7x7 = 49 tokens, as many as ViT patches of 4
    dim: int = 64  # token width
    depth: int = 3  # Transformer blocks
    heads: int = 4
    dim_head: int = 16
    mlp_dim: int = 128
    dropout: float = 0.0
    emb_dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.downsample not in (1, 2, 4):
            raise LabError(f"invalid hybrid config: downsample {self.downsample} must be 1, 2 or 4 (stride-2 stages)")
        if self.image_size % self.downsample:
            raise LabError(f"invalid hybrid config: image_size {self.image_size} not divisible by {self.downsample}")
        if min(self.stem_width, self.dim, self.depth, self.heads, self.dim_head, self.mlp_dim, self.num_classes) < 1:
            raise LabError(f"invalid hybrid config {self}: every size must be at least 1")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.downsample) ** 2


class Hybrid(nn.Module):
    def __init__(self, config: HybridConfig):
        super().__init__()
        self.config = c = config
        layers, width = conv_bn_relu(c.channels, c.stem_width), c.stem_width
        for _ in range({1: 0, 2: 1, 4: 2}[c.downsample]):
            layers += [nn.MaxPool2d(2), *conv_bn_relu(width, width)]
        self.stem = nn.Sequential(*layers)
        self.to_tokens = nn.Linear(width, c.dim)  # the patch embedding E, on 1x1 patches of the feature map
        self.pos_embedding = nn.Parameter(torch.randn(1, c.num_patches + 1, c.dim))
        self.cls_token = nn.Parameter(torch.randn(1, 1, c.dim))
        self.dropout = nn.Dropout(c.emb_dropout)
        self.transformer = Transformer(c.dim, c.depth, c.heads, c.dim_head, c.mlp_dim, c.dropout)
        self.mlp_head = nn.Sequential(nn.LayerNorm(c.dim), nn.Linear(c.dim, c.num_classes))

    def forward_features(self, img: torch.Tensor, return_attn: bool = False):
        x = self.to_tokens(rearrange(self.stem(img), "b c h w -> b (h w) c"))
        x = torch.cat((repeat(self.cls_token, "1 1 d -> b 1 d", b=x.shape[0]), x), dim=1) + self.pos_embedding
        return self.transformer(self.dropout(x), return_attn=return_attn)

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.mlp_head(tokens[:, 0])

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(img))
