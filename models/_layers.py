"""Layers shared by several zoo families: the two float32-safe LayerNorms and a token MLP.

The two LayerNorms differ in what they hand on, and the models rely on it:

==================  =========================  ==========================
                    ``CastingLayerNorm``       ``Float32LayerNorm``
==================  =========================  ==========================
computes in         the weight's dtype         float32 (float64 stays)
returns             the weight's dtype         the input's dtype
fp32 model + amp    float32 (like CUDA amp)    the autocast dtype
pure bf16 model     the bf16 kernel            the float32 kernel
==================  =========================  ==========================

Both exist because CPU autocast on 1.10 leaves ``layer_norm`` out of its cast lists: a
bfloat16 activation meets float32 weights and the kernel raises.
"""
import torch
from torch import nn

from models._base import at_least_float32


class CastingLayerNorm(nn.LayerNorm):
    """LayerNorm that casts its input to its weight's dtype first.

    CUDA autocast runs layer norm in float32 anyway, which is what this does
    everywhere (graph VAE, RIS-MUSIC).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.to(self.weight.dtype))


class Float32LayerNorm(nn.LayerNorm):
    """LayerNorm over the last dim computed in float32 (float64 stays float64) and cast back to the input's dtype.

    Statistics in half precision lose digits, so even a pure bf16/fp16 model takes them
    in float32 (HSIFusionNet, SHARP).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.layer_norm(at_least_float32(x), self.normalized_shape, at_least_float32(self.weight),
                                       at_least_float32(self.bias), self.eps)
        return out.to(x.dtype)


class Mlp(nn.Module):
    """Two linear layers with GELU, on channels-last tokens (..., dim) -> (..., dim)."""

    def __init__(self, dim: int, ratio: float):
        super().__init__()
        hidden = max(int(dim * ratio), 1)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))
