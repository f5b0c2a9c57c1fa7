"""What a model is in labkit, how to build one, and how its config is written into a checkpoint.

Two kinds: the ViT (``vit.py``, with the small-data extras of ``small_data.py`` where its config asks for them) and
the CNN baseline (``cnn.py``). A config is a frozen dataclass; ``config_to_dict`` / ``config_from_dict`` turn it into
the plain dict a checkpoint stores and back, so a checkpoint rebuilds its model without any pickled class.
"""

from __future__ import annotations

from dataclasses import asdict, replace

import torch
from torch import nn

from labkit.cnn import CNN, CNNConfig
from labkit.errors import LabError
from labkit.lab import MODEL_KINDS as KIND_NAMES
from labkit.small_data import build_vit
from labkit.vit import ViTConfig

ModelConfig = ViTConfig | CNNConfig
MODEL_KINDS = {"vit": (ViTConfig, build_vit), "cnn": (CNNConfig, CNN)}
# Checkpoint file names carry the kind (lab.py, which loads without torch): they must be these.
assert tuple(MODEL_KINDS) == KIND_NAMES, "update lab.MODEL_KINDS"
RETIRED_KINDS = {"hybrid": "the hybrid is now a ViT with a conv stem (conv_stem > 0)"}


def model_kind(config: ModelConfig) -> str:
    return next(kind for kind, (cls, _) in MODEL_KINDS.items() if isinstance(config, cls))


def fit_to_data(config: ModelConfig, num_classes: int, image_size: int | None = None) -> ModelConfig:
    """The config, resized to the data's number of classes (and image size, if given)."""
    return replace(config, num_classes=num_classes, image_size=image_size or config.image_size)


# What a config may ask for: far above any lab model (the reference has 5.4 M parameters and ~1.5 M activations per
# image), far below what would exhaust a grader's machine, which builds the models that submissions describe.
MAX_PARAMETERS = 100_000_000
MAX_ACTIVATIONS = 20_000_000  # values computed for one image in a forward pass, summed over layers
MAX_IMAGE_SIZE = 512  # every image of the data is resized to this before the model sees it
MAX_CLASSES = 10_000


def size(config: ModelConfig) -> tuple[int, int]:
    """(parameters, activations per image) of the model ``config`` describes, from the config alone, before anything
    is allocated: estimates within 1% of the presets' true parameter counts (biases and norms left out)."""
    c = config
    if isinstance(c, CNNConfig):
        w1, w2 = c.widths
        params = 9 * (c.channels * w1 + w1 * w1 + w1 * w2 + w2 * w2 + w2 * c.features) + c.features * c.num_classes
        pixels = c.image_size**2
        return params, pixels * 2 * w1 + pixels // 4 * 2 * w2 + pixels // 16 * c.features
    tokens, inner = c.num_patches + 1, c.heads * c.dim_head
    patch = max(c.conv_stem, c.channels * c.patch_size**2 * (5 if c.shifted_patches else 1))
    stem = 9 * c.conv_stem * (c.channels + 2 * c.conv_stem)
    block = 4 * c.dim * inner + 2 * c.dim * c.mlp_dim + 6 * c.dim + c.mlp_dim
    params = stem + patch * c.dim + tokens * c.dim + c.depth * block + c.dim * c.num_classes
    per_block = tokens * (4 * c.dim + 4 * inner + c.mlp_dim) + c.heads * tokens**2
    return params, c.image_size**2 * max(1, c.conv_stem) + tokens * patch + c.depth * per_block


def check_size(config: ModelConfig) -> None:
    """A LabError, before any allocation, if ``config`` asks for more than any lab model needs (see the limits)."""
    params, activations = size(config)
    problems = [
        (config.image_size > MAX_IMAGE_SIZE, f"images of {config.image_size} px (limit {MAX_IMAGE_SIZE})"),
        (config.num_classes > MAX_CLASSES, f"{config.num_classes:,} classes (limit {MAX_CLASSES:,})"),
        (params > MAX_PARAMETERS, f"about {params:,} parameters (limit {MAX_PARAMETERS:,})"),
        (activations > MAX_ACTIVATIONS, f"about {activations:,} activations per image (limit {MAX_ACTIVATIONS:,})"),
    ]
    found = [what for too_big, what in problems if too_big]
    if found:
        raise LabError(f"the model config asks for {found[0]}; no lab model is that large, so it is not built")


def build_model(config: ModelConfig, seed: int | None = None) -> nn.Module:
    """A freshly initialised model; with ``seed``, the same weights every time. Configs beyond the limits above
    are refused first."""
    check_size(config)
    if seed is not None:
        torch.manual_seed(seed)
    return MODEL_KINDS[model_kind(config)][1](config)


def count_parameters(model: nn.Module) -> int:
    """The model's parameters, as torchinfo's "Total params" counts them (buffers such as BatchNorm's excluded)."""
    return sum(p.numel() for p in model.parameters())


def config_to_dict(config: ModelConfig) -> dict:
    return {"kind": model_kind(config), **asdict(config)}


def config_from_dict(d: dict) -> ModelConfig:
    if not isinstance(d, dict):
        raise LabError(f"the stored model config is a {type(d).__name__}, not a dict; the file is not labkit's")
    d = dict(d)
    kind = d.pop("kind", "vit")
    if kind in RETIRED_KINDS:
        raise LabError(
            f"this checkpoint was saved by an older labkit ({RETIRED_KINDS[kind]}); retrain it with this version"
        )
    if kind not in MODEL_KINDS:
        raise LabError(f"unknown model kind {kind!r} in checkpoint; this labkit builds {', '.join(MODEL_KINDS)}")
    try:
        return MODEL_KINDS[kind][0](**d)
    except TypeError as err:
        raise LabError(
            f"checkpoint config does not fit labkit's {kind} config ({err}); was it saved by another labkit version?"
        ) from None
