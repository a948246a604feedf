"""Building blocks shared by several zoo models."""
import torch
from torch import nn


class CastingLayerNorm(nn.LayerNorm):
    """LayerNorm that casts its input to its weight's dtype first.

    CPU autocast on 1.10 leaves ``layer_norm`` out of its cast lists, so a bfloat16
    activation meets float32 weights and the kernel raises; CUDA autocast runs
    layer norm in float32 anyway, which is what this does everywhere.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.to(self.weight.dtype))
