"""Named presets, each a model config plus the recipe that trains it; ``fast`` is the default everywhere."""

from dataclasses import dataclass, replace

from labkit.cnn import CNNConfig
from labkit.errors import LabError
from labkit.models import ModelConfig
from labkit.train import TrainConfig
from labkit.vit import ViTConfig


@dataclass(frozen=True)
class Preset:
    name: str
    model: ModelConfig
    train: TrainConfig
    why: str  # one line: why this model and recipe (the numbers behind it: benchmarks/README.md)

    def recipe(self, epochs: int | None = None, augment: str | None = None) -> TrainConfig:
        """The preset's training recipe, with ``epochs`` and ``augment`` overriding its own when given."""
        changes = {k: v for k, v in (("epochs", epochs), ("augment", augment)) if v is not None}
        return replace(self.train, **changes)


# The fast preset's sizes, which the hybrid shares: 49 tokens of width 64, no dropout.
SMALL_VIT = {"patch_size": 4, "dim": 64, "heads": 4, "dim_head": 16, "mlp_dim": 128, "dropout": 0.0, "emb_dropout": 0.0}
# The reference recipe's optimizer, as given: Adam at a constant 3e-4, without warm-up or weight decay.
REFERENCE_OPTIMIZER = {"optimizer": "adam", "lr": 3e-4, "weight_decay": 0.0, "warmup": 0, "schedule": "constant"}
PRESETS = {
    p.name: p
    for p in (
        Preset(
            "fast",
            ViTConfig(**SMALL_VIT, depth=4, shifted_patches=True, init="locality"),
            TrainConfig(epochs=75),
            why="among the lab benchmark's most accurate ViTs on its hardest set, ahead of `reference` on all three",
        ),
        Preset(
            "reference",
            # The lab's reference model, as its torchinfo table has it: 5,436,678 parameters for 6 classes.
            ViTConfig(patch_size=4, dim=192, depth=10, heads=8, dim_head=64, mlp_dim=384, emb_dropout=0.1),
            TrainConfig(epochs=20, **REFERENCE_OPTIMIZER, label_smoothing=0.0, augment="none", log_every=100),
            why="the lab's reference model and recipe, as given",
        ),
        Preset("cnn", CNNConfig(), TrainConfig(epochs=30), why="the CNN baseline, with the fast recipe"),
        Preset(
            "hybrid",
            # The paper's §3.1 special case: the stem's 7x7 feature map read as 1x1 patches, 49 tokens like patch 4.
            ViTConfig(**SMALL_VIT, depth=3, conv_stem=32),
            TrainConfig(epochs=30),
            why="the paper's hybrid (§3.1): a small convolutional stem makes the tokens",
        ),
    )
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise LabError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
