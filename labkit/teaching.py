"""A ViT taught by the lab's CNN: locality guidance (Li et al., "Locality Guidance for Improving Vision Transformers on
Tiny Datasets", ECCV 2022). While the ViT trains, its early blocks' patch tokens, laid out on their grid, imitate the
CNN's feature maps; at test time it is the lab's plain ViT, with nothing of the teacher left in it."""

import torch
import torch.nn.functional as F
from torch import nn

from labkit.cnn import CNN
from labkit.vit import ViT

GUIDED_BLOCKS = (0, 2, 3)  # the ViT blocks that imitate the CNN's three stages, in order (chosen on validation)
GUIDANCE = 5.0  # the imitation loss's weight beside the classification loss (chosen on validation)


class Guidance(nn.Module):
    """The training-only part: hooks that keep the guided blocks' outputs, and the 1x1 convolutions that align them
    with the teacher's channels (the paper's alignment)."""

    def __init__(self, student: ViT, teacher: CNN):
        super().__init__()
        self.stages, self.grid, self.kept = teacher.eval().stages, student.config.grid, {}  # not a submodule: frozen
        widths = (*teacher.config.widths, teacher.config.features)
        self.align = nn.ModuleList(nn.Conv2d(student.config.dim, w, 1) for w in widths[: len(GUIDED_BLOCKS)])
        blocks = [student.transformer.layers[b][1] for b in GUIDED_BLOCKS]  # each block's MLP: z = MLP(LN(z')) + z'
        self.hooks = [m.register_forward_hook(self._keep(b)) for b, m in zip(GUIDED_BLOCKS, blocks, strict=True)]

    def _keep(self, block: int):
        def hook(_module, inputs, output):
            self.kept[block] = inputs[0] + output  # the block's output tokens

        return hook

    def loss(self, img: torch.Tensor) -> torch.Tensor:
        """Mean squared error between each aligned block and its CNN stage, both resized to the larger map."""
        with torch.no_grad():
            stages = self.stages(img)
        total = torch.zeros((), device=img.device)
        for block, stage, align in zip(GUIDED_BLOCKS, stages, self.align, strict=False):
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
