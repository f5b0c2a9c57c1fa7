"""What a submitted model may ask a grader's machine for, checked before it is built; a memory-bounded eval batch."""

from __future__ import annotations

import torch

from labkit.cnn import CNN
from labkit.errors import LabError
from labkit.metrics import EVAL_BATCH
from labkit.models import ModelConfig
from labkit.small_data import embedding
from labkit.vit import ViT, ViTConfig

# Far above any lab model (the reference: 5.4 M parameters, 50 tokens, 5 M activations), far below a grader's limits.
MAX_PARAMETERS = 100_000_000
MAX_ACTIVATIONS = 50_000_000  # values one image's forward pass computes, summed over modules and attention maps
MAX_IMAGE_SIZE = 224  # ImageNet's input: every test image is resized to it, so the data grows as its square
MAX_TOKENS = 1_025  # attention's cost grows with their square
MAX_CLASSES = 10_000
BATCH_MEMORY = 256 << 20  # bytes of activations one evaluation batch may hold


def size(config: ModelConfig) -> tuple[int, int]:
    """(parameters, activations per image with attention maps) of ``config``'s model, counted on the meta device."""
    outputs = []

    def count(_module, _inputs, output):
        outputs.append(output[0].numel() if isinstance(output, torch.Tensor) else 0)

    with torch.device("meta"):
        model = ViT(config, embedding(config)) if isinstance(config, ViTConfig) else CNN(config)
        hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
        model(torch.empty(1, config.channels, config.image_size, config.image_size))
    for hook in hooks:
        hook.remove()
    maps = config.depth * config.heads * (config.num_patches + 1) ** 2 if isinstance(config, ViTConfig) else 0
    return sum(p.numel() for p in model.parameters()), sum(outputs) + maps


def check_size(config: ModelConfig) -> None:
    """A LabError, before any allocation, if ``config`` asks for more than any lab model needs."""
    tokens = config.num_patches + 1 if isinstance(config, ViTConfig) else 0
    problems = [
        (config.image_size > MAX_IMAGE_SIZE, f"images of {config.image_size} px (limit {MAX_IMAGE_SIZE})"),
        (config.num_classes > MAX_CLASSES, f"{config.num_classes:,} classes (limit {MAX_CLASSES:,})"),
        (tokens > MAX_TOKENS, f"{tokens:,} tokens (limit {MAX_TOKENS:,})"),
    ]
    if not any(found for found, _ in problems):
        params, activations = size(config)
        problems += [
            (params > MAX_PARAMETERS, f"{params:,} parameters (limit {MAX_PARAMETERS:,})"),
            (activations > MAX_ACTIVATIONS, f"{activations:,} activations per image (limit {MAX_ACTIVATIONS:,})"),
        ]
    if found := [what for too_big, what in problems if too_big]:
        raise LabError(f"the model config asks for {found[0]}; no lab model is that large, so it is not built")


def eval_batch(config: ModelConfig) -> int:
    """EVAL_BATCH, or fewer images where their activations would pass BATCH_MEMORY."""
    return max(1, min(EVAL_BATCH, BATCH_MEMORY // (4 * size(config)[1])))
