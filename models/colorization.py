"""Colorization as classification over ab bins: PaperNet and MobileLite (seed 002).

Re-implements the two networks of the Zhang/Isola/Efros (ECCV 2016) colorization code
audited in ``shared/seeds/002_*``. The input is the L channel of a Lab image, the
output one logit per quantised ab bin at a quarter of the input resolution:

* ``PaperNet``: the paper's VGG-style trunk, conv1..conv8, each block ends in batch
  norm; conv1-conv3 halve the resolution (1/8), conv5 and conv6 are dilated (2),
  conv8 upsamples back to 1/4 with a 4x4 transposed conv. The audit's "multi-scale
  feature fusion" is a concat of conv2's features (also at 1/4) into conv8.
* ``MobileLite``: the same topology with depthwise-separable 3x3 convs and nearest
  upsampling instead of the transposed conv.

Training is a cross-entropy over the ``Q`` bins against soft-encoded targets (the
``soft_k`` nearest bins weighted by a Gaussian of width ``soft_sigma``; ``soft_k=1``
is the nearest-bin one-hot), computed in float32. ``infer`` decodes with the
annealed mean (``softmax(z / T)`` weighted mean of the bin centres, T=0.38) and
upsamples the ab map bilinearly to the input resolution, as the paper does.

How it differs: the audited code used an "extended" 484-bin grid; the paper's 313
bins are the 10-spaced ab centres that are inside the sRGB gamut for some L, a
lopsided region (b reaches -110, a reaches +100, parts of every corner are missing).
We need no colour-science tables, so our grid is the 19x19 grid of centres -90..90
spaced 10, clipped to a disc of radius 102: exactly 313 bins, symmetric about the
origin; ab values outside it (very saturated blues, greens, yellows) fall to the
nearest bin. There is no class rebalancing (it needs a data set's empirical ab
prior; with a flat prior its weights are all one), no pretrained weights, and
``tiny`` uses one conv per block with widths 8-32.

The synthetic task (``make_colour_images``) draws a smooth random scalar field
painted with a fixed viridis-like colour map (ab is then a function of L) plus two
discs or squares from a four-colour palette, converted to Lab with the standard sRGB
-> XYZ (D65) -> CIELAB formulas in NumPy. Input L, target ab; the metric is the mean
absolute ab error (ab units, lower is better) of the annealed-mean decode.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models._base import ZooModel, at_least_float32
from models._registry import register_model

NUM_AB_BINS = 313
_GRID_STEP = 10.0  # ab units between neighbouring bin centres, as in the paper
_GRID_HALF = 9  # centres at -90..90 on each axis
_DISC_RADIUS = 102.0  # no centre lies on it: (60, 80) is at 100, (50, 90) at 102.96

# --- helpers -------------------------------------------------------------------


def ab_bin_grid() -> np.ndarray:
    """The 313 ab bin centres, (Q, 2) float64, ordered by a then b.

    A 10-spaced grid over [-90, 90]^2 clipped to a disc of radius 102; integer
    arithmetic on the grid indices keeps the selection exact on every platform.
    """
    idx = np.arange(-_GRID_HALF, _GRID_HALF + 1)
    ia, ib = np.meshgrid(idx, idx, indexing="ij")
    limit = int((_DISC_RADIUS / _GRID_STEP) ** 2)  # 104: no index pair has i^2 + j^2 == 105
    keep = (ia ** 2 + ib ** 2) <= limit
    grid = np.stack([ia[keep], ib[keep]], axis=1).astype(np.float64) * _GRID_STEP
    if grid.shape[0] != NUM_AB_BINS:
        raise RuntimeError("ab grid has %d bins, expected %d" % (grid.shape[0], NUM_AB_BINS))
    return grid


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] with channels on axis 1 -> CIELAB (D65), same layout, float64."""
    rgb = np.asarray(rgb, dtype=np.float64)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    white = np.array([0.95047, 1.0, 1.08883]).reshape(1, 3, *([1] * (rgb.ndim - 2)))
    xyz = np.einsum("ij,bj...->bi...", to_xyz, linear) / white
    delta = 6.0 / 29.0
    f = np.where(xyz > delta ** 3, np.cbrt(xyz), xyz / (3.0 * delta ** 2) + 4.0 / 29.0)
    lightness = 116.0 * f[:, 1] - 16.0
    a = 500.0 * (f[:, 0] - f[:, 1])
    b = 200.0 * (f[:, 1] - f[:, 2])
    return np.stack([lightness, a, b], axis=1)


# A viridis-like map whose lightness rises monotonically (L 15 -> 92), so ab is a
# function of L on the background; the palette colours have L 47, 55, 72 and 80.
_COLOUR_MAP = np.array([[0.10, 0.10, 0.40], [0.10, 0.50, 0.55], [0.35, 0.75, 0.30], [0.98, 0.92, 0.20]])
_PALETTE = np.array([[0.85, 0.15, 0.15], [0.80, 0.30, 0.80], [1.00, 0.60, 0.10], [0.60, 0.80, 1.00]])


def make_colour_images(batch_size: int, size: int, gen) -> np.ndarray:
    """Seeded sRGB images (b, 3, size, size) in [0, 1]: a colour-mapped smooth field and two shapes."""
    coords = (np.arange(size, dtype=np.float64) + 0.5) / size
    yy, xx = np.meshgrid(coords, coords, indexing="ij")  # (s, s)
    waves = gen.uniform_np((batch_size, 3, 4))  # per image 3 cosines: fx, fy, phase, amplitude
    shapes = gen.uniform_np((batch_size, 2, 5))  # per image 2 shapes: kind, cy, cx, radius, colour
    images = np.empty((batch_size, 3, size, size), dtype=np.float64)
    stops = np.linspace(0.0, 1.0, len(_COLOUR_MAP))
    for i in range(batch_size):
        field = np.zeros((size, size))
        for fx, fy, phase, amp in waves[i]:
            field += (0.5 + amp) * np.cos(2 * np.pi * ((4 * fx - 2) * xx + (4 * fy - 2) * yy) + 2 * np.pi * phase)
        field = (field - field.min()) / max(field.max() - field.min(), 1e-6)
        image = np.stack([np.interp(field, stops, _COLOUR_MAP[:, c]) for c in range(3)])  # (3, s, s)
        for kind, cy, cx, radius, colour in shapes[i]:
            r = 0.1 + 0.15 * radius
            if kind < 0.5:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
            else:
                mask = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
            image[:, mask] = _PALETTE[min(int(colour * len(_PALETTE)), len(_PALETTE) - 1)][:, None]
        images[i] = image
    return images


def soft_encode(ab: torch.Tensor, bins: torch.Tensor, k: int, sigma: float) -> torch.Tensor:
    """Soft targets (b, Q, h, w): Gaussian weights on the ``k`` nearest bins of each ab pixel."""
    diff = ab.unsqueeze(1) - bins.reshape(1, -1, 2, 1, 1)  # (b, Q, 2, h, w)
    dist2 = (diff * diff).sum(dim=2)  # (b, Q, h, w)
    near, idx = torch.topk(dist2, k, dim=1, largest=False)  # (b, k, h, w)
    # Relative to the nearest bin: same ratios, but pixels far outside the grid
    # (where every exp(-d^2 / 2 sigma^2) underflows) still get a distribution.
    weights = torch.exp(-(near - near[:, :1]) / (2.0 * sigma * sigma))
    weights = weights / weights.sum(dim=1, keepdim=True)
    return torch.zeros_like(dist2).scatter_(1, idx, weights)


def annealed_mean(logits: torch.Tensor, bins: torch.Tensor, temperature: float) -> torch.Tensor:
    """ab (b, 2, h, w) from logits (b, Q, h, w): the mean of softmax(log p / T) over bin centres.

    ``softmax(log_softmax(z) / T) == softmax(z / T)``, so the logits are used directly.
    """
    probs = F.softmax(logits / temperature, dim=1)  # (b, Q, h, w)
    return torch.einsum("bqhw,qc->bchw", probs, bins.to(probs.dtype))


# --- blocks --------------------------------------------------------------------


def _conv_relu(in_ch: int, out_ch: int, stride: int, dilation: int, separable: bool) -> nn.Sequential:
    if separable:
        return nn.Sequential(
            nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=dilation, dilation=dilation, groups=in_ch, bias=False),
            nn.Conv2d(in_ch, out_ch, 1),
            nn.ReLU(inplace=True),
        )
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation),
        nn.ReLU(inplace=True),
    )


class ConvBlock(nn.Module):
    """The paper's convN block: ``n`` 3x3 conv+ReLU, the last one strided, then batch norm."""

    def __init__(self, in_ch: int, out_ch: int, n: int, stride: int = 1, dilation: int = 1, separable: bool = False):
        super().__init__()
        layers = []
        for i in range(n):
            layers.append(_conv_relu(in_ch if i == 0 else out_ch, out_ch, stride if i == n - 1 else 1,
                                     dilation, separable))
        self.convs = nn.Sequential(*layers)
        self.norm = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, c, h, w)
        return self.norm(self.convs(x))


class UpFuseBlock(nn.Module):
    """conv8: upsample x2, concat the conv2 features of the same resolution, ``n`` convs."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, n: int, separable: bool):
        super().__init__()
        self.separable = separable
        if separable:
            self.up = _conv_relu(in_ch, out_ch, 1, 1, True)  # applied after nearest upsampling
        else:
            self.up = nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1), nn.ReLU(inplace=True))
        self.fuse = ConvBlock(out_ch + skip_ch, out_ch, n, separable=separable)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:  # (b, c, h/8, w/8), (b, c2, h/4, w/4)
        if self.separable:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = self.up(x)  # (b, out, h/4, w/4)
        return self.fuse(torch.cat([x, skip], dim=1))


# --- model ---------------------------------------------------------------------


@dataclass(frozen=True)
class ColorizationConfig:
    # conv1, conv2, conv3, conv4-7 (the 1/8 trunk), conv8
    widths: Tuple[int, ...] = (64, 128, 256, 512, 256)
    # convs in conv1..conv8; conv8's count excludes its upsampling layer (its first conv fuses conv2)
    convs_per_block: Tuple[int, ...] = (2, 2, 3, 3, 3, 3, 3, 3)
    middle_dilation: int = 2
    separable: bool = False
    num_bins: int = NUM_AB_BINS
    soft_k: int = 5
    soft_sigma: float = 5.0
    temperature: float = 0.38
    min_size: int = 16
    default_sizes: Tuple[int, ...] = (256,)


class ColorizationNet(ZooModel):
    """L channel (b, 1, h, w) in [0, 100] -> ab-bin logits (b, Q, h/4, w/4)."""

    size_axis = "image side in pixels (square images, a multiple of 8)"
    task_metric_name = "ab_mae"
    task_higher_is_better = False
    stride = 8  # conv1-conv3 each halve the resolution

    def __init__(self, config: ColorizationConfig):
        super().__init__(config)
        c = config
        if len(c.widths) != 5 or len(c.convs_per_block) != 8:
            raise ValueError("widths needs 5 entries and convs_per_block 8, got %r and %r"
                             % (c.widths, c.convs_per_block))
        if c.num_bins != NUM_AB_BINS:
            raise ValueError("num_bins must be %d (the fixed ab grid), got %d" % (NUM_AB_BINS, c.num_bins))
        if not 1 <= c.soft_k <= c.num_bins:
            raise ValueError("soft_k must be in [1, %d], got %d" % (c.num_bins, c.soft_k))
        if c.temperature <= 0:
            raise ValueError("temperature must be > 0, got %r" % (c.temperature,))
        w1, w2, w3, w_mid, w8 = c.widths
        n = c.convs_per_block
        sep = c.separable
        self.blocks = nn.ModuleList([
            ConvBlock(1, w1, n[0], stride=2, separable=sep),
            ConvBlock(w1, w2, n[1], stride=2, separable=sep),
            ConvBlock(w2, w3, n[2], stride=2, separable=sep),
            ConvBlock(w3, w_mid, n[3], separable=sep),
            ConvBlock(w_mid, w_mid, n[4], dilation=c.middle_dilation, separable=sep),
            ConvBlock(w_mid, w_mid, n[5], dilation=c.middle_dilation, separable=sep),
            ConvBlock(w_mid, w_mid, n[6], separable=sep),
        ])
        self.up = UpFuseBlock(w_mid, w2, w8, n[7], separable=sep)
        self.head = nn.Conv2d(w8, c.num_bins, 1)
        # Not persistent: the grid is a constant of the code, not a learned state.
        self.register_buffer("ab_bins", torch.from_numpy(ab_bin_grid()).float(), persistent=False)

    @classmethod
    def size_error(cls, config: ColorizationConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)
        if reason is None and size % cls.stride != 0:
            reason = "image side must be a multiple of %d (three stride-2 blocks), got %d" % (cls.stride, size)
        if reason is None and size < config.min_size:
            reason = "image side must be at least %d px for this config, got %d" % (config.min_size, size)
        return reason

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:  # (b, 1, h, w) -> (b, Q, h/4, w/4)
        if lightness.dim() != 4 or lightness.shape[1] != 1:
            raise ValueError("expected L of shape (b, 1, h, w), got %s" % (tuple(lightness.shape),))
        h, w = lightness.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ValueError("image height and width must be multiples of %d, got %dx%d" % (self.stride, h, w))
        x = (lightness - 50.0) / 50.0  # the paper centres L at 50
        skip = None
        for i, block in enumerate(self.blocks):
            x = self.checkpointed(block, x)
            if i == 1:
                skip = x  # conv2 output, (b, w2, h/4, w/4)
        x = self.checkpointed(self.up, x, skip)
        return self.head(x)

    def decode(self, logits: torch.Tensor, out_size=None) -> torch.Tensor:
        """Annealed-mean ab (b, 2, ...) of ``logits``, bilinearly resized to ``out_size`` if given.

        Decoded in float32 whatever the model's dtype: it is a tiny reduction and
        half-precision bilinear resizing is missing on some CPU builds.
        """
        ab = annealed_mean(at_least_float32(logits), at_least_float32(self.ab_bins), self.config.temperature)
        if out_size is not None and tuple(ab.shape[-2:]) != tuple(out_size):
            ab = F.interpolate(ab, size=tuple(out_size), mode="bilinear", align_corners=False)
        return ab.to(logits.dtype)

    def infer(self, lightness: torch.Tensor) -> torch.Tensor:  # (b, 1, h, w) -> ab (b, 2, h, w)
        return self.decode(self(lightness), out_size=lightness.shape[-2:])

    def example_inputs(self, batch_size: int, size, gen):
        self.check_size(size)
        lightness = gen.uniform((batch_size, 1, size, size), 0.0, 100.0)
        ab = gen.uniform((batch_size, 2, size, size), -90.0, 90.0)
        return (lightness,), ab

    def loss(self, outputs: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        logits = at_least_float32(outputs)
        # Area-average the full-resolution target to the logits' grid (exact: h/4 divides h).
        ab_small = F.adaptive_avg_pool2d(at_least_float32(ab), logits.shape[-2:])
        target = soft_encode(ab_small, at_least_float32(self.ab_bins), self.config.soft_k, self.config.soft_sigma)
        return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()

    def task_batch(self, batch_size: int, size, gen):
        self.check_size(size)
        lab = torch.from_numpy(srgb_to_lab(make_colour_images(batch_size, size, gen))).float()
        return (lab[:, :1].contiguous(),), lab[:, 1:].contiguous()

    def task_metric(self, outputs: torch.Tensor, ab: torch.Tensor) -> float:
        """Mean |ab error|; accepts logits from ``forward`` or decoded ab from ``infer``."""
        if outputs.shape[1] == self.config.num_bins:
            outputs = self.decode(outputs, out_size=ab.shape[-2:])
        return float((outputs.detach().float() - ab.float()).abs().mean())


# --- sizes ---------------------------------------------------------------------

_PAPERNET_TINY = ColorizationConfig(widths=(8, 16, 32, 32, 16), convs_per_block=(1,) * 8, default_sizes=(32,))
_PAPERNET_BASE = ColorizationConfig()
_MOBILE_TINY = ColorizationConfig(widths=(8, 16, 32, 32, 16), convs_per_block=(1,) * 8, separable=True,
                                  default_sizes=(32,))
_MOBILE_BASE = ColorizationConfig(widths=(64, 128, 256, 800, 256), separable=True)

# --- registrations -------------------------------------------------------------

register_model(
    "colorization_papernet_tiny", ColorizationNet, _PAPERNET_TINY,
    family="colorization", description="Zhang et al. PaperNet, one conv per block, widths 8-32, 313 ab bins",
)
register_model(
    "colorization_papernet_base", ColorizationNet, _PAPERNET_BASE,
    family="colorization", description="Zhang et al. PaperNet (VGG trunk, dilated conv5/6, conv2 fusion), 313 bins",
)
register_model(
    "colorization_mobilelite_tiny", ColorizationNet, _MOBILE_TINY,
    family="colorization", description="MobileLite colorizer, depthwise-separable, widths 8-32, 313 ab bins",
)
register_model(
    "colorization_mobilelite_base", ColorizationNet, _MOBILE_BASE,
    family="colorization", description="MobileLite colorizer: depthwise-separable PaperNet topology, 313 bins",
)
