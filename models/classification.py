"""CBAM classifier: a ResNet-18-style backbone with CBAM attention (seed 001).

Re-implements the classifier of the image-classification framework audited in
``shared/seeds/001_*``: BasicBlock residual stages, each block followed by CBAM
(channel attention with a reduction-16 MLP over average- and max-pooled features,
then spatial attention from a 7x7 conv over channel-wise average and max), global
average pooling and a linear head trained with class-weighted cross-entropy.

How it differs: no pretrained weights (nothing is downloaded), the class weights are
a fixed ramp rather than computed from a data set, and ``tiny`` is a narrow one-block
per stage variant for CPU tests. The audit's hard-coded ``reduction=16`` and
``kernel_size=7`` are config fields here.

The synthetic task (``make_task_batch``) draws filled squares, discs and crosses;
the metric is top-1 accuracy.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from models._base import ZooModel, at_least_float32
from models._registry import register_model

# --- helpers -------------------------------------------------------------------

def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


def make_shapes(batch_size: int, size: int, num_classes: int, gen):
    """Images of one filled shape each (square, disc, cross) on noise; label = shape.

    Shape centres, radii and the noise come from ``gen``, so every environment sees
    the same task. Labels beyond the three shapes are never drawn.
    """
    labels = gen.integers(0, min(3, num_classes), (batch_size,))
    yy = torch.arange(size, dtype=torch.float32)[:, None]  # (h, 1): broadcasting, as meshgrid's
    xx = torch.arange(size, dtype=torch.float32)[None, :]  # (1, w)  indexing= is 1.10-incompatible
    centres = gen.uniform((batch_size, 2), size * 0.3, size * 0.7)
    radii = gen.uniform((batch_size,), size * 0.15, size * 0.3)
    images = gen.normal((batch_size, 3, size, size), std=0.3)
    for i in range(batch_size):
        dy, dx = yy - centres[i, 0], xx - centres[i, 1]
        r = radii[i]
        if int(labels[i]) == 0:
            mask = (dy.abs() <= r) & (dx.abs() <= r)
        elif int(labels[i]) == 1:
            mask = dy ** 2 + dx ** 2 <= r ** 2
        else:
            mask = ((dy.abs() <= r / 3) & (dx.abs() <= r)) | ((dx.abs() <= r / 3) & (dy.abs() <= r))
        images[i] += mask.to(images.dtype)  # (3, h, w): the shape lights every channel
    return (images,), labels


# --- blocks --------------------------------------------------------------------

class ChannelAttention(nn.Module):
    """Squeeze by average and max pooling, a shared bottleneck MLP, sigmoid gate."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, c, h, w)
        avg = self.mlp(F.adaptive_avg_pool2d(x, 1))  # (b, c, 1, 1)
        mx = self.mlp(F.adaptive_max_pool2d(x, 1))  # (b, c, 1, 1)
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """A k x k conv over the channel-wise mean and max maps, sigmoid gate."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, c, h, w)
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))  # gate (b, 1, h, w)


class CBAMBasicBlock(nn.Module):
    """ResNet BasicBlock with CBAM applied to the residual branch before the sum."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, reduction: int, kernel_size: int):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = _conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.channel_att = ChannelAttention(out_ch, reduction)
        self.spatial_att = SpatialAttention(kernel_size)
        self.shortcut: Optional[nn.Module] = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.spatial_att(self.channel_att(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)


# --- model ---------------------------------------------------------------------

@dataclass(frozen=True)
class CBAMClassifierConfig:
    widths: Tuple[int, ...] = (64, 128, 256, 512)
    depths: Tuple[int, ...] = (2, 2, 2, 2)
    num_classes: int = 10
    in_channels: int = 3
    reduction: int = 16
    spatial_kernel: int = 7
    min_size: int = 8
    default_sizes: Tuple[int, ...] = (224,)


class CBAMClassifier(ZooModel):
    """ResNet-18-style classifier with CBAM in every block."""

    size_axis = "image side in pixels (square images)"

    def __init__(self, config: CBAMClassifierConfig):
        super().__init__(config)
        c = config
        if len(c.widths) != len(c.depths):
            raise ValueError("widths and depths must have the same length, got %r and %r" % (c.widths, c.depths))
        self.stem = nn.Sequential(
            nn.Conv2d(c.in_channels, c.widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(c.widths[0]),
            nn.ReLU(inplace=True),
        )
        stages = []
        in_ch = c.widths[0]
        for i, (width, depth) in enumerate(zip(c.widths, c.depths)):
            blocks = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(CBAMBasicBlock(in_ch, width, stride, c.reduction, c.spatial_kernel))
                in_ch = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(in_ch, c.num_classes)
        # A fixed ramp of class weights stands in for inverse class frequencies.
        self.register_buffer("class_weights", torch.linspace(0.5, 1.5, c.num_classes))

    @classmethod
    def size_error(cls, config: CBAMClassifierConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)
        if reason is None and size < config.min_size:
            reason = "image side must be at least %d px for this config, got %d" % (config.min_size, size)
        return reason

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (b, 3, h, w) -> (b, classes)
        if images.dim() != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(
                "expected images of shape (b, %d, h, w), got %s" % (self.config.in_channels, tuple(images.shape))
            )
        x = self.stem(images)
        for stage in self.stages:
            x = self.checkpointed(stage, x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (b, c)
        return self.head(x)

    def example_inputs(self, batch_size: int, size, gen):
        self.check_size(size)
        images = gen.normal((batch_size, self.config.in_channels, size, size))
        labels = gen.integers(0, self.config.num_classes, (batch_size,))
        return (images,), labels

    task_metric_name = "top1"
    task_higher_is_better = True

    def task_batch(self, batch_size: int, size, gen):
        self.check_size(size)
        return make_shapes(batch_size, size, self.config.num_classes, gen)

    def task_metric(self, outputs: torch.Tensor, labels: torch.Tensor) -> float:
        return float((outputs.argmax(dim=1) == labels).float().mean())

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(at_least_float32(outputs), labels, weight=at_least_float32(self.class_weights))


# --- sizes ---------------------------------------------------------------------

_TINY = CBAMClassifierConfig(widths=(8, 16, 32, 64), depths=(1, 1, 1, 1), reduction=4, default_sizes=(32,))
_BASE = CBAMClassifierConfig()

# --- registrations -------------------------------------------------------------

register_model(
    "cbam_classifier_tiny", CBAMClassifier, _TINY,
    family="classification", description="ResNet-style CBAM classifier, one block per stage, width 8",
)
register_model(
    "cbam_classifier_base", CBAMClassifier, _BASE,
    family="classification", description="ResNet-18 + CBAM (reduction 16, 7x7 spatial kernel)",
)
