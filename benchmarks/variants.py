"""The model variants the benchmark tried and did not adopt, kept so that its stored runs can be made again.

- LSA (Lee, Lee & Song 2021): each token's score with itself masked, and a learned softmax temperature; or the mask
  alone (``diagonal_mask``).
- ConViT's gated positional self-attention (GPSA; d'Ascoli et al., ICML 2021) in the first ``gpsa_blocks`` blocks.
- Impulse initialisation (Zheng et al., "Structured Initialization for Attention in Vision Transformers", 2024).
- The locality start's two parts one at a time (mimetic attention, sine-cosine positions) and the start's scale of
  [CLS] and the positions, which labkit's ``init="locality"`` sets together.
- An exponential moving average of the weights (``ema``), evaluated and kept in place of the last step's.

``build`` makes a variant's model with the same draws, in the same order, as the runs in results/ were made.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from labkit.models import build_model
from labkit.small_data import (
    attentions,
    embedding,
    low_rank_factors,
    mimetic_init,
    mimetic_values,
    set_query_key,
    sincos_positions,
)
from labkit.vit import Attention, ViT, ViTConfig

# The options a variant may give beyond labkit's config, by the names the benchmark's tables were made with (when
# they were settings of ViTConfig), and their values in a plain ViT.
OPTIONS = {
    "embedding_init_std": 1.0,
    "mimetic_init": False,
    "sincos_positions": False,
    "locality_attention": False,
    "diagonal_mask": False,
    "gpsa_blocks": 0,
    "impulse_init": False,
}
LOCALITY = {"embedding_init_std": 0.02, "mimetic_init": True, "sincos_positions": True}  # labkit's init="locality"


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
def impulse_init(model: ViT, std: float) -> None:
    """Zheng et al.'s structured initialisation: positions scaled up, then each head's query and key weights solved
    so that LN(P) W_q^T W_k LN(P)^T, on the patches' positions P, is as near as rank dim_head allows to a 3x3
    impulse filter (head h takes IMPULSE_TAPS[h]); values and outputs as mimetic initialisation has them."""
    c = model.config
    model.pos_embedding.mul_(IMPULSE_POSITION_STD / std)
    u, s, vh = torch.linalg.svd(F.layer_norm(model.pos_embedding[0, 1:], (c.dim,)), full_matrices=False)
    rank = c.dim_head
    inverse = vh[:rank].T @ torch.diag(1 / s[:rank]) @ u[:, :rank].T  # LN(P)'s pseudo-inverse, top rank only
    for attention in attentions(model):
        for h in range(attention.heads):
            target = inverse @ impulse_target(c.grid, IMPULSE_TAPS[h % len(IMPULSE_TAPS)]) @ inverse.T
            q, k = low_rank_factors(target, rank)
            set_query_key(attention, h, IMPULSE_QK_NORM * q / q.norm(), IMPULSE_QK_NORM * k / k.norm())
        mimetic_values(attention)


def build(config: ViTConfig, seed: int, changes: dict | None = None) -> nn.Module:
    """The model of ``config`` with ``changes``: to its fields, or to OPTIONS, starting from what its ``init`` means;
    seeded as ``labkit.models.build_model`` seeds, with the same draws in the same order as the runs in results/."""
    changes = changes or {}
    fields = {k: v for k, v in changes.items() if k not in OPTIONS}
    config = replace(config, **fields)
    if len(fields) == len(changes):
        return build_model(config, seed)
    o = OPTIONS | (LOCALITY if config.init == "locality" else {}) | {k: changes[k] for k in changes if k in OPTIONS}
    config = replace(config, init="random")
    torch.manual_seed(seed)
    attention = (
        LocalitySelfAttention if o["locality_attention"] else SelfMaskedAttention if o["diagonal_mask"] else Attention
    )
    model = ViT(config, embedding(config), attention)
    with torch.no_grad():
        model.pos_embedding.mul_(o["embedding_init_std"])
        model.cls_token.mul_(o["embedding_init_std"])
    for block in model.transformer.layers[: o["gpsa_blocks"]]:
        block[0].fn = GatedPositionalAttention(config.dim, config.heads, config.dim_head, config.dropout, config.grid)
    if o["impulse_init"]:
        impulse_init(model, o["embedding_init_std"])
    if o["mimetic_init"]:
        mimetic_init(model)
    if o["sincos_positions"]:
        with torch.no_grad():
            model.pos_embedding[0, 0] = 0.0
            model.pos_embedding[0, 1:] = sincos_positions(config.grid, config.dim)
    return model


def averaged(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s weights, updated by ``update_parameters`` after each step."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def fit_averaged(model: nn.Module, data, recipe, seed: int, decay: float) -> nn.Module:
    """``model`` trained as ``labkit.train.fit`` trains it (the same batches, schedule and loss), keeping an
    exponential moving average of its weights after every step, which it then holds."""
    from labkit.train import make_optimizer, seed_everything

    seed_everything(seed)
    batches = data.batches("train", recipe.batch_size, recipe.augment, seed)
    optimizer, scheduler = make_optimizer(model, recipe, len(batches))
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    average = averaged(model, decay)
    for _ in range(recipe.epochs):
        model.train()
        for x, y in batches:
            loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            average.update_parameters(model)
    model.load_state_dict(average.module.state_dict())
    return model
