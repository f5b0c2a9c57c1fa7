"""A small CNN baseline with the ViT's interface: locality and translation equivariance built in, not learned."""

from dataclasses import dataclass

import torch
from torch import nn

from labkit.errors import LabError, check_fields


@dataclass(frozen=True)
class CNNConfig:
    image_size: int = 28  # any size works (global pooling); kept for the data pipeline
    channels: int = 1  # grayscale
    num_classes: int = 6  # the lab's six classes
    widths: tuple[int, int] = (32, 64)  # channels of the two conv blocks
    features: int = 128  # width of the last conv, i.e. of the pooled feature vector
    dropout: float = 0.1  # before the head

    def __post_init__(self) -> None:
        if isinstance(self.widths, list):
            object.__setattr__(self, "widths", tuple(self.widths))  # lists come back from checkpoints
        check_fields(self, "CNN config")
        if min(self.image_size, self.channels, self.num_classes, self.features, *self.widths) < 1:
            raise LabError(f"invalid CNN config {self}: every size must be at least 1")
        if self.image_size < 4:
            raise LabError(f"invalid CNN config: image_size {self.image_size} is below 4, the two poolings need it")


def conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class CNN(nn.Module):
    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = c = config
        w1, w2 = c.widths
        block1 = [*conv_bn_relu(c.channels, w1), *conv_bn_relu(w1, w1), nn.MaxPool2d(2)]
        block2 = [*conv_bn_relu(w1, w2), *conv_bn_relu(w2, w2), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*block1, *block2, *conv_bn_relu(w2, c.features))
        self.head = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(c.features, c.num_classes))

    def stages(self, img: torch.Tensor) -> list[torch.Tensor]:
        """Each block's map before its pooling, and the last conv's: what a taught ViT imitates (small_data.py)."""
        maps, x = [], img
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                maps.append(x)
            x = layer(x)
        return [*maps, x]

    def forward_features(self, img: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled features (b, features)."""
        return self.features(img).mean(dim=(2, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(img))
