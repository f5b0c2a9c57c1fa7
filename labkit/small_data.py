"""The small-data extras of the lab's ViT, each a replacement for one part of ``vit.py``'s model.

- Shifted patch tokenization (SPT) and locality self-attention (LSA), from Lee, Lee & Song, "Vision Transformer for
  Small-Size Datasets" (2021): a patch embedding whose tokens also see their neighbours, and an attention with a
  learned temperature that cannot stay on the token itself.
- The paper's hybrid (Dosovitskiy et al., §3.1): a small CNN's feature map, read as 1x1 patches, as the tokens.
- LSA's diagonal mask alone, and ConViT's gated positional self-attention (d'Ascoli et al., "ConViT: Improving
  Vision Transformers with Soft Convolutional Inductive Biases", ICML 2021): attention started local, gated.
- Initialisations that start the model with a locality prior and cost nothing per step: mimetic attention
  weights (Trockman & Kolter, "Mimetic Initialization of Self-Attention Layers", ICML 2023), 2-D sine-cosine
  positions (as MAE, He et al. 2022), and impulse attention (Zheng et al., "Structured Initialization for Attention
  in Vision Transformers", 2024); training can unlearn each.

``build_vit`` puts the ones a config asks for into the paper's ViT; the rest of the model is unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from labkit.cnn import conv_bn_relu
from labkit.vit import Attention, ViT, ViTConfig, patchify

STEM_STAGES = {1: 0, 2: 1, 4: 2}  # conv-stem stride -> number of (max-pool, conv) stages after the first conv
SPT_COPIES = 5  # the image and its four diagonal shifts


class ShiftedPatches(nn.Module):
    """SPT's cut: the image and four copies shifted half a patch diagonally are stacked as channels before patching,
    so each patch vector also carries the edges of its neighbours: (b, N, 5 * p * p * c). One token per patch, as
    in the plain cut."""

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


def shifted_patch_embedding(c: ViTConfig) -> nn.Sequential:
    """SPT's embedding: the shifted cut, a LayerNorm over the stacked patch (Lee et al., Eq. 3), then the Linear."""
    patch_dim = SPT_COPIES * c.channels * c.patch_size**2
    return nn.Sequential(ShiftedPatches(c.patch_size), nn.LayerNorm(patch_dim), nn.Linear(patch_dim, c.dim))


class ConvStem(nn.Module):
    """The hybrid's cut: a small CNN whose feature map, read as 1x1 patches, gives one ``width``-long vector per
    location: (b, (H / stride) * (W / stride), width)."""

    def __init__(self, channels: int, width: int, stride: int):
        super().__init__()
        layers = conv_bn_relu(channels, width)
        for _ in range(STEM_STAGES[stride]):
            layers += [nn.MaxPool2d(2), *conv_bn_relu(width, width)]
        self.net = nn.Sequential(*layers)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return rearrange(self.net(img), "b c h w -> b (h w) c")


def hybrid_embedding(c: ViTConfig) -> nn.Sequential:
    """The hybrid's embedding: the conv stem's vectors projected to ``dim``."""
    return nn.Sequential(ConvStem(c.channels, c.conv_stem, c.patch_size), nn.Linear(c.conv_stem, c.dim))


class SelfMaskedAttention(Attention):
    """LSA's diagonal mask alone: each token's score with itself is masked, so attention goes to *other* tokens
    (the residual connection already carries the token itself)."""

    @staticmethod
    def allowed(n: int, device: torch.device) -> torch.Tensor:
        """Which (query, key) pairs may attend: every pair but a token with itself."""
        return ~torch.eye(n, dtype=torch.bool, device=device)

    def query_scale(self) -> torch.Tensor | float:
        return self.scale

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # SDPA takes a float scale, not a learned tensor: the scale goes into the queries instead.
        q, mask = q * self.query_scale(), self.allowed(q.shape[-2], q.device)
        dropout = self.dropout if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=1.0)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        q, k, _ = self.qkv(x)
        scores = q @ k.transpose(-1, -2) * self.query_scale()
        return scores.masked_fill(~self.allowed(x.shape[1], x.device), float("-inf")).softmax(dim=-1)


class LocalitySelfAttention(SelfMaskedAttention):
    """LSA: the diagonal mask, and a learned softmax temperature (it starts at the plain 1/√d_head), so attention
    can sharpen where small data would leave it flat."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.0):
        super().__init__(dim, heads, dim_head, dropout)
        self.temperature = nn.Parameter(torch.tensor(math.log(self.scale)))

    def query_scale(self) -> torch.Tensor:
        return self.temperature.exp()


def relative_offsets(grid: int) -> torch.Tensor:
    """(δx, δy, δx² + δy²) from each patch to each other patch of a grid x grid layout: (N, N, 3), row by row."""
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    dy = rows.flatten()[None, :] - rows.flatten()[:, None]
    dx = cols.flatten()[None, :] - cols.flatten()[:, None]
    return torch.stack((dx, dy, dx**2 + dy**2), dim=-1).float()


class GatedPositionalAttention(Attention):
    """ConViT's gated positional self-attention (GPSA; d'Ascoli et al., ICML 2021). Each head's weights are
    (1 - g) softmax(q kᵀ / √d) + g softmax(r · v_pos): content attention mixed, by a learned gate g = sigmoid(λ),
    with an attention that depends only on where the key patch lies relative to the query patch.

    At the start the positional part of head h peaks at its own offset Δ_h of a k x k kernel (k² <= heads) and
    g = sigmoid(1) = 0.73, so the layer begins close to a convolution; training can raise or lower each gate. The
    paper keeps [CLS] out of GPSA blocks; here [CLS] stays in the sequence as the lab's model has it: its positional
    part averages every token and no patch attends to it by position."""

    def __init__(
        self, dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.0, grid: int = 7, strength: float = 1.0
    ):
        super().__init__(dim, heads, dim_head, dropout)
        self.pos_proj = nn.Linear(3, heads)
        self.gate = nn.Parameter(torch.ones(heads))
        self.register_buffer("offsets", relative_offsets(grid), persistent=False)
        self.local_init(strength)

    @torch.no_grad()
    def local_init(self, strength: float) -> None:
        """Head h's score for offset δ: -strength (|δ|² - 2 Δ_h · δ) = -strength |δ - Δ_h|² + const, which peaks at
        δ = Δ_h. The paper places k² heads on a k x k kernel; heads past k² are centred on the patch itself."""
        k = math.isqrt(self.heads)
        centre = (k - 1) / 2
        self.pos_proj.weight.zero_()
        self.pos_proj.bias.zero_()
        for h in range(self.heads):
            dx, dy = (h % k - centre, h // k - centre) if h < k * k else (0.0, 0.0)
            self.pos_proj.weight[h] = strength * torch.tensor([2 * dx, 2 * dy, -1.0])

    def positional(self) -> torch.Tensor:
        """Each head's positional attention over the whole sequence, [CLS] first: (heads, 1 + N, 1 + N)."""
        scores = rearrange(self.pos_proj(self.offsets), "i j h -> h i j")
        n = scores.shape[-1] + 1
        full = scores.new_zeros(self.heads, n, n)  # [CLS]'s row stays zero: an even average of every token
        full[:, 1:, 0] = float("-inf")
        full[:, 1:, 1:] = scores
        return full.softmax(dim=-1)

    def gates(self) -> torch.Tensor:
        return self.gate.sigmoid()[:, None, None]

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # Both parts sum to 1 over the keys, so mixing the outputs is mixing the weights, and SDPA keeps the
        # content part.
        g = self.gates()
        return (1 - g) * super().attend(q, k, v) + g * (self.positional() @ v)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gates()
        return (1 - g) * super().weights(x) + g * self.positional()


# Mimetic initialisation's targets (Trockman & Kolter, §4): per head W_q^T W_k = 0.7 Z + 0.7 I, making a token
# attend to tokens like itself (with sine-cosine positions: to its neighbours); per block W_v^T W_o^T = 0.4 Z - 0.4 I.
MIMETIC_QK = (0.7, 0.7)
MIMETIC_VO = (0.4, -0.4)


def low_rank_factors(target: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B), each (rank, d), with A^T B the best rank-``rank`` approximation of the (d, d) ``target`` (its SVD);
    rows past d are zeros."""
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
    """Set every attention's q/k/v and output weights so that their products start as MIMETIC_QK and MIMETIC_VO
    say, drawing Z from torch's global generator (``build_model`` seeds it)."""
    for attention in attentions(model):
        d, per_head = attention.to_qkv.in_features, attention.to_qkv.out_features // 3 // attention.heads
        for h in range(attention.heads):
            set_query_key(attention, h, *low_rank_factors(mimetic_target(d, MIMETIC_QK), per_head))
        mimetic_values(attention)


# Impulse initialisation's constants, as the paper's code has them: the 3x3 kernel's taps in the order heads take
# them (centre, then the cross, then the corners); the target's height at the impulse, and elsewhere noise: 3 times a
# N(0, 0.6²) cut at ±2; the positions' std (0.02 scaled by 18); the Frobenius norm of each head's query and key.
IMPULSE_TAPS = (4, 1, 5, 3, 7, 0, 2, 6, 8)
IMPULSE_HEIGHT, IMPULSE_NOISE = 1000.0, (3.0, 0.6)
IMPULSE_POSITION_STD = 0.36
IMPULSE_QK_NORM = 7.0


def impulse_target(grid: int, tap: int) -> torch.Tensor:
    """A 3x3 convolution with a single tap as an (N, N) matrix of scores on the grid x grid patches: IMPULSE_HEIGHT
    where the key patch is the query patch moved by the tap's offset, IMPULSE_NOISE elsewhere."""
    dy, dx = tap // 3 - 1, tap % 3 - 1
    offsets = relative_offsets(grid)
    impulse = (offsets[..., 0] == dx) & (offsets[..., 1] == dy)
    factor, std = IMPULSE_NOISE
    noise = factor * nn.init.trunc_normal_(torch.empty(impulse.shape), std=std)
    return torch.where(impulse, IMPULSE_HEIGHT, noise)


@torch.no_grad()
def impulse_init(model: ViT) -> None:
    """Zheng et al.'s structured initialisation: positions scaled up, then each head's query and key weights solved
    so that LN(P) W_q^T W_k LN(P)^T, on the patches' positions P, is as near as rank dim_head allows to a 3x3
    impulse filter (head h takes IMPULSE_TAPS[h]); values and outputs as mimetic initialisation has them."""
    c = model.config
    model.pos_embedding.mul_(IMPULSE_POSITION_STD / c.embedding_init_std)
    u, s, vh = torch.linalg.svd(F.layer_norm(model.pos_embedding[0, 1:], (c.dim,)), full_matrices=False)
    rank = c.dim_head
    inverse = vh[:rank].T @ torch.diag(1 / s[:rank]) @ u[:, :rank].T  # LN(P)'s pseudo-inverse, top rank only
    for attention in attentions(model):
        for h in range(attention.heads):
            target = inverse @ impulse_target(c.grid, IMPULSE_TAPS[h % len(IMPULSE_TAPS)]) @ inverse.T
            q, k = low_rank_factors(target, rank)
            set_query_key(attention, h, IMPULSE_QK_NORM * q / q.norm(), IMPULSE_QK_NORM * k / k.norm())
        mimetic_values(attention)


def sincos_positions(grid: int, dim: int) -> torch.Tensor:
    """MAE's 2-D sine-cosine table, (grid * grid, dim), row by row: half the channels encode the patch's row, half
    its column, each as the sines and cosines of dim / 4 frequencies from 1 to 1/10000."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")

    def encode(position: torch.Tensor) -> torch.Tensor:
        angle = position.flatten()[:, None].float() * omega[None]
        return torch.cat((angle.sin(), angle.cos()), dim=1)

    return torch.cat((encode(rows), encode(cols)), dim=1)


def build_vit(c: ViTConfig) -> ViT:
    """The paper's ViT with the extras ``c`` asks for."""
    embedding = hybrid_embedding(c) if c.conv_stem else shifted_patch_embedding(c) if c.shifted_patches else None
    attention = LocalitySelfAttention if c.locality_attention else SelfMaskedAttention if c.diagonal_mask else Attention
    model = ViT(c, embedding, attention)
    for block in model.transformer.layers[: c.gpsa_blocks]:
        block[0].fn = GatedPositionalAttention(c.dim, c.heads, c.dim_head, c.dropout, c.grid)
    if c.impulse_init:
        impulse_init(model)
    if c.mimetic_init:
        mimetic_init(model)
    if c.sincos_positions:
        with torch.no_grad():
            model.pos_embedding[0, 0] = 0.0  # [CLS] has no place on the grid
            model.pos_embedding[0, 1:] = sincos_positions(c.grid, c.dim)
    return model
