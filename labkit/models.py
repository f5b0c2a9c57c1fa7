"""The ViT and the CNN: building one, and its config as the plain dict a checkpoint stores (no pickled class)."""

from dataclasses import asdict, replace

import torch
from torch import nn

from labkit.cnn import CNN, CNNConfig
from labkit.errors import LabError
from labkit.small_data import build_vit
from labkit.vit import ViTConfig

ModelConfig = ViTConfig | CNNConfig
# The kinds by the names checkpoint files carry (lab.MODEL_KINDS): their config and their builder.
MODEL_KINDS = {"vit": (ViTConfig, build_vit), "cnn": (CNNConfig, CNN)}


def model_kind(config: ModelConfig) -> str:
    return next(kind for kind, (cls, _) in MODEL_KINDS.items() if isinstance(config, cls))


def fit_to_data(config: ModelConfig, num_classes: int, image_size: int | None = None) -> ModelConfig:
    """The config, resized to the data's number of classes (and image size, if given)."""
    return replace(config, num_classes=num_classes, image_size=image_size or config.image_size)


def build_model(config: ModelConfig, seed: int | None = None) -> nn.Module:
    """A freshly initialised model; with ``seed``, the same weights every time."""
    if seed is not None:
        torch.manual_seed(seed)
    return MODEL_KINDS[model_kind(config)][1](config)


def count_parameters(model: nn.Module) -> int:
    """The model's parameters, as torchinfo's "Total params" counts them (buffers such as BatchNorm's excluded)."""
    return sum(p.numel() for p in model.parameters())


def config_to_dict(config: ModelConfig) -> dict:
    return {"kind": model_kind(config), **asdict(config)}


def config_from_dict(d: dict) -> ModelConfig:
    """The config a checkpoint stores, checked field by field by the config itself."""
    if not isinstance(d, dict):
        raise LabError(f"the stored model config is a {type(d).__name__}, not a dict; the file is not labkit's")
    kind = d.get("kind", "vit")
    if not isinstance(kind, str) or kind not in MODEL_KINDS:
        raise LabError(f"unknown model kind {str(kind)[:40]!r}; this labkit builds {', '.join(MODEL_KINDS)}")
    try:
        return MODEL_KINDS[kind][0](**{k: v for k, v in d.items() if k != "kind"})
    except TypeError as err:
        raise LabError(f"the stored {kind} config does not fit this labkit's ({err}); retrain with it") from None
