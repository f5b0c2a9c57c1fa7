"""The small-data extras beside ``vit.py``'s ViT: shifted patches, the hybrid's stem, a locality start, CNN guidance."""

import math
from functools import partial

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from labkit.cnn import CNN, conv_bn_relu
from labkit.vit import Attention, ViT, ViTConfig, patch_embedding, patchify

STEM_STAGES = {1: 0, 2: 1, 4: 2}  # conv-stem stride -> number of (max-pool, conv) stages after the first conv
SPT_COPIES = 5  # the image and its four diagonal shifts


class ShiftedPatches(nn.Module):
    """SPT's cut (Lee et al., 2021): a patch with its copies in 4 half-patch diagonal shifts: (b, N, 5 * p * p * c)."""

    def __init__(self, patch_size: int):
        super().__init__()
        self.shift, self.patchify = max(1, patch_size // 2), patchify(patch_size)

    def stacked(self, img: torch.Tensor) -> torch.Tensor:
        """The image and its four diagonal shifts, stacked as channels: (b, 5c, H, W)."""
        s = self.shift
        # F.pad with a negative amount crops: each copy moves s pixels along one diagonal, zero-filled.
        shifted = (F.pad(img, pad) for pad in ((s, -s, s, -s), (-s, s, s, -s), (s, -s, -s, s), (-s, s, -s, s)))
        return torch.cat((img, *shifted), dim=1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.patchify(self.stacked(img))


class ConvStem(nn.Module):
    """The hybrid's cut (Dosovitskiy et al., §3.1): a small CNN's feature map read as 1x1 patches, (b, N, width)."""

    def __init__(self, channels: int, width: int, stride: int):
        super().__init__()
        layers = conv_bn_relu(channels, width)
        for _ in range(STEM_STAGES[stride]):
            layers += [nn.MaxPool2d(2), *conv_bn_relu(width, width)]
        self.net = nn.Sequential(*layers)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return rearrange(self.net(img), "b c h w -> b (h w) c")


# Mimetic initialisation (Trockman & Kolter, "Mimetic Initialization of Self-Attention Layers", ICML 2023, §4).
MIMETIC_QK = (0.7, 0.7)  # per head W_q^T W_k = 0.7 Z + 0.7 I, so a token attends to tokens like itself
MIMETIC_VO = (0.4, -0.4)  # per block W_v^T W_o^T = 0.4 Z - 0.4 I


def low_rank_factors(target: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B), each (rank, d), A^T B the best rank-``rank`` approximation of the (d, d) ``target``; rows past d zero."""
    u, s, vh = torch.linalg.svd(target)
    r = min(rank, target.shape[0])
    a, b = torch.zeros(rank, target.shape[0]), torch.zeros(rank, target.shape[0])
    a[:r], b[:r] = (u[:, :r] * s[:r].sqrt()).T, s[:r, None].sqrt() * vh[:r]
    return a, b


def mimetic_target(d: int, scale: tuple[float, float]) -> torch.Tensor:
    """alpha Z + beta I, Z ~ N(0, 1/d)."""
    alpha, beta = scale
    return alpha * torch.randn(d, d) / math.sqrt(d) + beta * torch.eye(d)


def attentions(model: ViT) -> list[Attention]:
    return [m for m in model.modules() if isinstance(m, Attention)]


@torch.no_grad()
def set_query_key(attention: Attention, head: int, q: torch.Tensor, k: torch.Tensor) -> None:
    """Head ``head``'s query and key weights, (dim_head, dim) each."""
    inner = attention.to_qkv.out_features // 3
    per_head, w = inner // attention.heads, attention.to_qkv.weight
    w[head * per_head : (head + 1) * per_head] = q
    w[inner + head * per_head : inner + (head + 1) * per_head] = k


@torch.no_grad()
def mimetic_values(attention: Attention) -> None:
    """The value and output weights, their product started at MIMETIC_VO."""
    d, inner = attention.to_qkv.in_features, attention.to_qkv.out_features // 3
    v, out = low_rank_factors(mimetic_target(d, MIMETIC_VO), inner)
    attention.to_qkv.weight[2 * inner :] = v
    attention.to_out[0].weight.copy_(out.T)


@torch.no_grad()
def mimetic_init(model: ViT) -> None:
    """Every attention's weights at the targets above, Z from torch's global generator (``build_model`` seeds it)."""
    for attention in attentions(model):
        d, per_head = attention.to_qkv.in_features, attention.to_qkv.out_features // 3 // attention.heads
        for h in range(attention.heads):
            set_query_key(attention, h, *low_rank_factors(mimetic_target(d, MIMETIC_QK), per_head))
        mimetic_values(attention)


def sincos_positions(grid: int, dim: int) -> torch.Tensor:
    """MAE's 2-D sine-cosine table (He et al., 2022), (grid * grid, dim): sines and cosines of the row, then column."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4) / (dim // 4))  # dim / 4 frequencies from 1 to 1/10000
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    row, col = (position.flatten()[:, None].float() * omega[None] for position in (rows, cols))
    return torch.cat((row.sin(), row.cos(), col.sin(), col.cos()), dim=1)


@torch.no_grad()
def locality_init(model: ViT) -> None:
    """Mimetic attention, [CLS] at std 0.02 (the paper's code) and sine-cosine positions: tokens start local."""
    mimetic_init(model)
    model.cls_token.mul_(0.02)
    model.pos_embedding[0, 0] = 0.0  # [CLS] has no place on the grid
    model.pos_embedding[0, 1:] = sincos_positions(model.config.grid, model.config.dim)


def embedding(c: ViTConfig) -> nn.Sequential:
    """The patch embedding ``c`` asks for: the hybrid's stem, SPT's shifted cut, or the paper's plain one."""
    if c.conv_stem:
        return nn.Sequential(ConvStem(c.channels, c.conv_stem, c.patch_size), nn.Linear(c.conv_stem, c.dim))
    if not c.shifted_patches:
        return patch_embedding(c)
    patch_dim = SPT_COPIES * c.channels * c.patch_size**2  # SPT: a LayerNorm over the stacked patch (Lee et al., Eq. 3)
    return nn.Sequential(ShiftedPatches(c.patch_size), nn.LayerNorm(patch_dim), nn.Linear(patch_dim, c.dim))


def build_vit(c: ViTConfig) -> ViT:
    model = ViT(c, embedding(c))
    if c.init == "locality":
        locality_init(model)
    return model


# Locality guidance (Li et al., ECCV 2022): while it trains, the ViT's early blocks imitate the CNN's feature maps.
GUIDED_BLOCKS = (0, 2, 3)  # the ViT blocks that imitate the CNN's three stages, in order (chosen on validation)
GUIDANCE = 5.0  # the imitation loss's weight beside the classification loss (chosen on validation)


def guided_blocks(depth: int) -> tuple[int, ...]:
    """The guided blocks a ViT of ``depth`` blocks has (the hybrid's 3 have blocks 0 and 2: the first two stages)."""
    return tuple(b for b in GUIDED_BLOCKS if b < depth)


class Guidance(nn.Module):
    """Training's part, never saved: hooks that keep the guided blocks' outputs, 1x1 convs to the teacher's channels."""

    def __init__(self, student: ViT, teacher: CNN):
        super().__init__()
        self.stages, self.grid, self.kept = teacher.eval().stages, student.config.grid, {}  # not a submodule: frozen
        self.blocks, widths = guided_blocks(student.config.depth), (*teacher.config.widths, teacher.config.features)
        self.align = nn.ModuleList(nn.Conv2d(student.config.dim, w, 1) for w in widths[: len(self.blocks)])
        layers = student.transformer.layers  # each guided block's MLP, layers[b][1], is hooked: z = MLP(LN(z')) + z'
        self.hooks = [layers[b][1].register_forward_hook(partial(self._keep, b)) for b in self.blocks]

    def _keep(self, block: int, _module, inputs, output) -> None:
        self.kept[block] = inputs[0] + output  # the block's output tokens

    def loss(self, img: torch.Tensor) -> torch.Tensor:
        """Mean squared error between each aligned block and its CNN stage, both resized to the larger map."""
        with torch.no_grad():
            stages = self.stages(img)
        total = torch.zeros((), device=img.device)
        for block, stage, align in zip(self.blocks, stages, self.align, strict=False):
            tokens = self.kept[block][:, 1:]  # the patches, [CLS] left out
            student = align(tokens.transpose(1, 2).reshape(len(img), -1, self.grid, self.grid))
            size = [max(a, b) for a, b in zip(student.shape[-2:], stage.shape[-2:], strict=True)]
            total = total + F.mse_loss(_resized(student, size), _resized(stage, size))
        return total

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()


def _resized(x: torch.Tensor, size: list[int]) -> torch.Tensor:
    return x if list(x.shape[-2:]) == size else F.interpolate(x, size, mode="bilinear", align_corners=False)
