"""CBAM classifier: a torchvision-style ResNet (18, 34 or 50) with CBAM attention (seed 001).

Re-implements the classifier of the image-classification framework of audit report 001
("Issues, Gaps, and Limitations", 2024-11-27: its bugs are in the training and
cross-validation loops, e.g. a new model under an optimizer still holding the old one's
parameters; none in the network). Its ``pretrained_network`` builds a torchvision ResNet and puts
CBAM in every residual block. The network is the standard ResNet: a 7x7 stride-2 stem
conv, batch norm, ReLU and a 3x3 stride-2 max-pool (so the four stages run at 1/4, 1/8,
1/16 and 1/32 of the input: 56 -> 7 at 224 px), then BasicBlock stages (ResNet-18:
depths (2, 2, 2, 2); ResNet-34: (3, 4, 6, 3)) or Bottleneck stages (ResNet-50: 1x1 ->
3x3 -> 1x1 with expansion 4, depths (3, 4, 6, 3), the stride on the 3x3 conv as in
torchvision), global average pooling and a linear head trained with class-weighted
cross-entropy and Adam, as the audited training loop does. CBAM (channel attention
with a reduction-16 MLP over average- and max-pooled features, then spatial attention
from a 7x7 conv over the channel-wise mean and max) gates each block's residual branch
before the sum, as in the CBAM paper. At 224 px ResNet-18 + CBAM costs about 1.8 GMACs
forward, like ResNet-18 itself.

How it differs: no pretrained weights (nothing is downloaded), the class weights are a
fixed ramp rather than computed from a data set, and ``tiny`` is a narrow one-block-per-
stage variant for CPU tests (the same stem, three stages: stride 16). The audit's hard-coded
``reduction=16`` and ``kernel_size=7`` are config fields here. Any height and width of
at least ``min_size`` work, non-square ones included (``"HxW"``): the stride-32 network
pads each stride like torchvision, so odd sides just round up.

The synthetic task (``make_shapes``) draws filled squares, discs and crosses; the
metric is top-1 accuracy.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from models._base import ZooModel, at_least_float32, image_hw
from models._registry import register_model

# --- helpers -------------------------------------------------------------------


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


def make_shapes(batch_size: int, size, num_classes: int, gen):
    """Images of one filled shape each (square, disc, cross) on noise; label = shape.

    ``size`` is a side or ``"HxW"``. Shape centres, radii and the noise come from
    ``gen``, so every environment sees the same task. Labels beyond the three shapes
    are never drawn.
    """
    h, w = image_hw(size)
    side = min(h, w)
    labels = gen.integers(0, min(3, num_classes), (batch_size,))
    yy = torch.arange(h, dtype=torch.float32)[:, None]  # (h, 1): broadcasting, as meshgrid's
    xx = torch.arange(w, dtype=torch.float32)[None, :]  # (1, w)  indexing= is 1.10-incompatible
    centres = gen.uniform((batch_size, 2), 0.3, 0.7) * torch.tensor([float(h), float(w)])  # (b, 2): y, x
    radii = gen.uniform((batch_size,), side * 0.15, side * 0.3)
    images = gen.normal((batch_size, 3, h, w), std=0.3)
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


class CBAM(nn.Module):
    """Channel attention, then spatial attention (the CBAM paper's order)."""

    def __init__(self, channels: int, reduction: int, kernel_size: int):
        super().__init__()
        self.channel_att = ChannelAttention(channels, reduction)
        self.spatial_att = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, c, h, w)
        return self.spatial_att(self.channel_att(x))


def _shortcut(in_ch: int, out_ch: int, stride: int) -> Optional[nn.Module]:
    # torchvision's downsample: a strided 1x1 conv and batch norm where the shape changes.
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(_conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))


class CBAMBasicBlock(nn.Module):
    """ResNet-18/34 BasicBlock (two 3x3 convs) with CBAM on the residual branch before the sum."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int, reduction: int, kernel_size: int):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.cbam = CBAM(width, reduction, kernel_size)
        self.shortcut = _shortcut(in_ch, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, in, h, w) -> (b, width, h/s, w/s)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.cbam(self.bn2(self.conv2(out)))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)


class CBAMBottleneck(nn.Module):
    """ResNet-50 Bottleneck (1x1 reduce, strided 3x3, 1x1 expand x4) with CBAM before the sum."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int, reduction: int, kernel_size: int):
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = _conv1x1(in_ch, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)  # torchvision (v1.5) strides the 3x3, not the 1x1
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, out_ch)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.cbam = CBAM(out_ch, reduction, kernel_size)
        self.shortcut = _shortcut(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, in, h, w) -> (b, 4 width, h/s, w/s)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.cbam(self.bn3(self.conv3(out)))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)


BLOCKS = {"basic": CBAMBasicBlock, "bottleneck": CBAMBottleneck}

# --- model ---------------------------------------------------------------------


@dataclass(frozen=True)
class CBAMClassifierConfig:
    #: "basic" (ResNet-18/34 BasicBlock) or "bottleneck" (ResNet-50, expansion 4).
    block: str = "basic"
    #: Blocks per stage: (2, 2, 2, 2) ResNet-18, (3, 4, 6, 3) ResNet-34/50.
    depths: Tuple[int, ...] = (2, 2, 2, 2)
    #: Per-stage 3x3 widths (a bottleneck stage outputs 4x this).
    widths: Tuple[int, ...] = (64, 128, 256, 512)
    #: Channels of the 7x7 stride-2 stem conv.
    stem_width: int = 64
    num_classes: int = 10
    in_channels: int = 3
    reduction: int = 16
    spatial_kernel: int = 7
    #: Smallest side: at 32 px the 1/32 stage is 1x1, the least batch norm can train on (batch >= 2).
    min_size: int = 32
    default_sizes: Tuple[int, ...] = (224,)


class CBAMClassifier(ZooModel):
    """torchvision-style ResNet with CBAM in every block; images (b, 3, h, w) -> logits (b, classes)."""

    size_axis = "image side in pixels, or HxW"
    non_square = True
    optimizer_name = "adam"  # the audited loop: Adam(model.parameters(), lr=...)

    def __init__(self, config: CBAMClassifierConfig):
        super().__init__(config)
        c = config
        if c.block not in BLOCKS:
            raise ValueError("block must be one of %s, got %r" % (", ".join(sorted(BLOCKS)), c.block))
        if len(c.widths) != len(c.depths) or not c.depths:
            raise ValueError("widths and depths must have the same non-zero length, got %r and %r"
                             % (c.widths, c.depths))
        block = BLOCKS[c.block]
        # (b, 3, h, w) -> (b, stem, h/4, w/4): the 7x7/2 conv and the 3x3/2 max-pool.
        self.stem = nn.Sequential(
            nn.Conv2d(c.in_channels, c.stem_width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(c.stem_width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages = []
        in_ch = c.stem_width
        for i, (width, depth) in enumerate(zip(c.widths, c.depths)):
            blocks = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1  # stage 1 keeps the stem's 1/4
                blocks.append(block(in_ch, width, stride, c.reduction, c.spatial_kernel))
                in_ch = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(in_ch, c.num_classes)
        # A fixed ramp of class weights stands in for inverse class frequencies.
        self.register_buffer("class_weights", torch.linspace(0.5, 1.5, c.num_classes))

    @classmethod
    def size_error(cls, config: CBAMClassifierConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)
        if reason is None and min(image_hw(size)) < config.min_size:
            reason = "image height and width must be at least %d px for this config, got %s" % (
                config.min_size, size)
        return reason

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (b, 3, h, w) -> (b, classes)
        if images.dim() != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(
                "expected images of shape (b, %d, h, w), got %s" % (self.config.in_channels, tuple(images.shape))
            )
        x = self.stem(images)  # (b, stem, h/4, w/4)
        for stage in self.stages:
            x = self.checkpointed(stage, x)  # (b, c, h/4 .. h/32, w/4 .. w/32)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (b, c)
        return self.head(x)

    def example_inputs(self, batch_size: int, size, gen):
        self.check_size(size)
        h, w = image_hw(size)
        images = gen.normal((batch_size, self.config.in_channels, h, w))
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

# A CPU-fast test size: the same stem (7x7/2 conv, 3x3/2 max-pool), then three narrow one-block
# stages (stride 16, not 32), so a batch of one at 17 px still leaves batch norm a 2x2 map.
_TINY = CBAMClassifierConfig(widths=(16, 32, 64), depths=(1, 1, 1), stem_width=16, reduction=4, min_size=16,
                             default_sizes=(32,))
_BASE = CBAMClassifierConfig()  # ResNet-18 + CBAM
_R34 = CBAMClassifierConfig(depths=(3, 4, 6, 3))
_R50 = CBAMClassifierConfig(block="bottleneck", depths=(3, 4, 6, 3))

# --- registrations -------------------------------------------------------------

register_model(
    "cbam_classifier_tiny", CBAMClassifier, _TINY,
    family="classification", description="ResNet-style CBAM classifier (7x7/2 stem + max-pool), three one-block "
                                         "stages, widths 16-64",
)
register_model(
    "cbam_classifier_base", CBAMClassifier, _BASE,
    family="classification", description="ResNet-18 + CBAM (reduction 16, 7x7 spatial kernel), ~1.8 GMACs at 224",
)
register_model(
    "cbam_classifier_r34", CBAMClassifier, _R34,
    family="classification", description="ResNet-34 + CBAM: BasicBlock depths (3, 4, 6, 3)",
)
register_model(
    "cbam_classifier_r50", CBAMClassifier, _R50,
    family="classification", description="ResNet-50 + CBAM: Bottleneck (expansion 4) depths (3, 4, 6, 3)",
)
