"""Datacube CNN: an EfficientNet-style classifier of climate datacubes (seed 003).

Re-implements the ``RebuiltDatacubeCNN`` of the AstroBio-Gen platform of
audit report 003 ("AstroBio-Gen System Hardening & Production Readiness", 2025-10-01:
"EfficientNet-inspired CNN with attention: depthwise separable convs, SE blocks", ~30M
parameters, production-ready, tests required). A cube ``(b, variables, levels, h, w)``
has its variables and levels folded into channels, then: a stride-2 3x3 stem, stages
of MBConv blocks (1x1 expansion, depthwise kxk, squeeze-excitation, linear 1x1
projection, residual when shape allows), a 1x1 head conv, global average pooling and
a linear classifier. Batch norm and SiLU throughout, as in EfficientNet.

How it differs: the stage table is EfficientNet-B0's, scaled by width and depth
multipliers (``base`` uses B5's 1.6 / 2.2, which lands near the audit's ~30M with a
9-class head); there is no stochastic depth or dropout (so checkpointed and plain
passes are comparable without RNG bookkeeping) and no pretrained weights. ``tiny`` is
three one-block stages with widths 8-24 and total stride 8.

The synthetic task (``make_pattern_cubes``) has ``3 x 3`` classes: a spatial pattern
(horizontal stripes, vertical stripes, a Gaussian blob; random frequency, phase and
position) times a spectral profile across levels (rising, falling, peaked), scaled
by a random amplitude per variable, plus Gaussian noise. The metric is top-1 accuracy.

Sizes: ``size`` is the horizontal grid of the cube, h = w, or ``"HxW"`` for a
non-square (latitude x longitude) grid: after folding, that plane is an image to the
2-D convs, and global pooling makes the classifier indifferent to its shape.
"""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models._base import ZooModel, at_least_float32, image_hw
from models._registry import register_model

# EfficientNet-B0: (expand ratio, kernel, stride, out channels, repeats) per stage.
EFFICIENTNET_B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
NUM_SPATIAL_PATTERNS = 3
NUM_SPECTRAL_PROFILES = 3

# --- helpers -------------------------------------------------------------------


def round_channels(channels: float, multiplier: float, divisor: int = 8) -> int:
    """EfficientNet's width scaling: scale, round to a multiple of ``divisor``, lose at most 10%."""
    scaled = channels * multiplier
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, multiplier: float) -> int:
    """EfficientNet's depth scaling: ceil(repeats * multiplier)."""
    return int(math.ceil(repeats * multiplier))


def make_pattern_cubes(batch_size: int, variables: int, levels: int, size, gen,
                       num_classes: int = NUM_SPATIAL_PATTERNS * NUM_SPECTRAL_PROFILES,
                       noise: float = 0.3) -> Tuple[np.ndarray, np.ndarray]:
    """Seeded cubes (b, variables, levels, h, w) float64 and labels (b,) int64; ``size`` is h = w or ``"HxW"``.

    Label ``y`` encodes spatial pattern ``y // 3`` and spectral profile ``y % 3``.
    """
    h, w = image_hw(size)
    labels = np.minimum((gen.uniform_np((batch_size,)) * num_classes).astype(np.int64), num_classes - 1)
    params = gen.uniform_np((batch_size, 4))  # frequency, phase, centre y, centre x
    amps = 0.5 + gen.uniform_np((batch_size, variables))
    noise_field = gen.normal_np((batch_size, variables, levels, h, w), noise)
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    z = np.linspace(0.0, 1.0, levels) if levels > 1 else np.full(1, 0.5)
    profiles = (z, 1.0 - z, np.exp(-((z - 0.5) ** 2) / 0.05))
    cubes = np.empty((batch_size, variables, levels, h, w))
    for i in range(batch_size):
        freq, phase, cy, cx = params[i]
        spatial_kind, spectral_kind = divmod(int(labels[i]), NUM_SPECTRAL_PROFILES)
        cycles = 1.0 / 8 + freq / 8  # cycles per pixel: wavelengths of 4-8 px
        if spatial_kind == 0:
            spatial = np.cos(2 * np.pi * (cycles * yy + phase))
        elif spatial_kind == 1:
            spatial = np.cos(2 * np.pi * (cycles * xx + phase))
        else:
            sigma = max(min(h, w) / 6.0, 1.0)
            dist2 = (yy - cy * (h - 1)) ** 2 + (xx - cx * (w - 1)) ** 2
            spatial = 2.0 * np.exp(-dist2 / (2 * sigma ** 2)) - 0.5
        signal = profiles[spectral_kind].reshape(levels, 1, 1) * spatial  # (levels, h, w)
        cubes[i] = amps[i].reshape(variables, 1, 1, 1) * signal + noise_field[i]
    return cubes, labels


# --- blocks --------------------------------------------------------------------


def _conv_bn_act(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(out_ch)]
    if act:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Global pool, 1x1 reduce + SiLU, 1x1 expand, sigmoid channel gate."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, c, h, w)
        s = F.adaptive_avg_pool2d(x, 1)  # (b, c, 1, 1)
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(s))))


class MBConv(nn.Module):
    """Inverted residual: expand 1x1, depthwise kxk (strided), SE, linear project 1x1."""

    def __init__(self, in_ch: int, out_ch: int, expand: int, kernel: int, stride: int, se_ratio: float = 0.25):
        super().__init__()
        mid = in_ch * expand
        # expand == 1 has no expansion conv; a module that is never called would get no gradient.
        self.expand = _conv_bn_act(in_ch, mid, 1) if expand != 1 else None
        self.depthwise = _conv_bn_act(mid, mid, kernel, stride=stride, groups=mid)
        # SE width follows the block input, as in EfficientNet.
        self.se = SqueezeExcite(mid, max(1, int(in_ch * se_ratio)))
        self.project = _conv_bn_act(mid, out_ch, 1, act=False)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, c, h, w)
        out = x if self.expand is None else self.expand(x)
        out = self.project(self.se(self.depthwise(out)))
        return out + x if self.residual else out


# --- model ---------------------------------------------------------------------


@dataclass(frozen=True)
class DatacubeCNNConfig:
    stages: Tuple[Tuple[int, int, int, int, int], ...] = EFFICIENTNET_B0_STAGES
    stem: int = 32
    head: int = 1280
    width_mult: float = 1.6
    depth_mult: float = 2.2
    variables: int = 5
    levels: int = 8
    num_classes: int = NUM_SPATIAL_PATTERNS * NUM_SPECTRAL_PROFILES
    default_sizes: Tuple[int, ...] = (128,)


class DatacubeCNN(ZooModel):
    """(b, variables, levels, h, w) cube -> (b, num_classes) logits."""

    size_axis = "cube grid side h = w in pixels, or HxW"
    non_square = True
    task_metric_name = "top1"
    task_higher_is_better = True

    def __init__(self, config: DatacubeCNNConfig):
        super().__init__(config)
        c = config
        if not 1 <= c.num_classes <= NUM_SPATIAL_PATTERNS * NUM_SPECTRAL_PROFILES:
            raise ValueError("num_classes must be in [1, %d] (the task's patterns), got %d"
                             % (NUM_SPATIAL_PATTERNS * NUM_SPECTRAL_PROFILES, c.num_classes))
        stem = round_channels(c.stem, c.width_mult)
        self.stem = _conv_bn_act(c.variables * c.levels, stem, 3, stride=2)
        stages = []
        in_ch = stem
        for expand, kernel, stride, out, repeats in c.stages:
            out = round_channels(out, c.width_mult)
            blocks = []
            for j in range(round_repeats(repeats, c.depth_mult)):
                blocks.append(MBConv(in_ch, out, expand, kernel, stride if j == 0 else 1))
                in_ch = out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        head = round_channels(c.head, c.width_mult)
        self.head = _conv_bn_act(in_ch, head, 1)
        self.classifier = nn.Linear(head, c.num_classes)

    @classmethod
    def total_stride(cls, config: DatacubeCNNConfig) -> int:
        """Product of the stem's and the stages' strides."""
        stride = 2
        for stage in config.stages:
            stride *= stage[2]
        return stride

    @classmethod
    def size_error(cls, config: DatacubeCNNConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)
        # Padded strided convs take any side (ceil); the floor keeps the last feature map
        # at least 2x2, so training batch norm sees more than one value even at batch 1.
        min_size = 2 * cls.total_stride(config)
        for side in (image_hw(size) if reason is None else ()):
            if side < min_size:
                note = str(side) if side == size else "%d (of size %r)" % (side, size)
                return "cube side must be at least %d (2 x total stride %d), got %s" % (
                    min_size, cls.total_stride(config), note)
        return reason

    def forward(self, cube: torch.Tensor) -> torch.Tensor:  # (b, v, l, h, w) -> (b, classes)
        c = self.config
        if cube.dim() != 5 or cube.shape[1] != c.variables or cube.shape[2] != c.levels:
            raise ValueError("expected a cube of shape (b, %d, %d, h, w), got %s"
                             % (c.variables, c.levels, tuple(cube.shape)))
        x = self.stem(cube.flatten(1, 2))  # (b, v*l, h, w) -> (b, stem, h/2, w/2)
        for stage in self.stages:
            x = self.checkpointed(stage, x)
        x = F.adaptive_avg_pool2d(self.head(x), 1).flatten(1)  # (b, head)
        return self.classifier(x)

    def example_inputs(self, batch_size: int, size, gen):
        self.check_size(size)
        c = self.config
        cube = gen.normal((batch_size, c.variables, c.levels) + image_hw(size))
        return (cube,), gen.integers(0, c.num_classes, (batch_size,))

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(at_least_float32(outputs), labels)

    def task_batch(self, batch_size: int, size, gen):
        self.check_size(size)
        c = self.config
        cubes, labels = make_pattern_cubes(batch_size, c.variables, c.levels, size, gen, c.num_classes)
        return (torch.from_numpy(cubes).float(),), torch.from_numpy(labels)

    def task_metric(self, outputs: torch.Tensor, labels: torch.Tensor) -> float:
        return float((outputs.detach().argmax(dim=1) == labels).float().mean())


# --- sizes ---------------------------------------------------------------------

_TINY = DatacubeCNNConfig(stages=((1, 3, 1, 8, 1), (4, 3, 2, 16, 1), (4, 5, 2, 24, 1)), stem=8, head=64,
                          width_mult=1.0, depth_mult=1.0, variables=2, levels=4, default_sizes=(32,))
_BASE = DatacubeCNNConfig()

# --- registrations -------------------------------------------------------------

register_model(
    "datacube_cnn_tiny", DatacubeCNN, _TINY,
    family="datacube_cnn", description="EfficientNet-style datacube CNN, 3 MBConv stages, widths 8-24",
)
register_model(
    "datacube_cnn_base", DatacubeCNN, _BASE,
    family="datacube_cnn", description="EfficientNet-B0 stages scaled x1.6 width, x2.2 depth (B5-like), SE, 9 classes",
)
