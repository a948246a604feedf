"""Colorization as classification over ab bins: PaperNet and MobileLite (seed 002).

Re-implements the two networks of the Zhang/Isola/Efros (ECCV 2016) colorization code
of audit report 002 ("Codebase Audit Report", 2025-11-09: it passes, the paper's
parameters checked, with Q = 484 bins instead of 313 as a documented trade-off).
The input is the L channel of a Lab image, the
output one logit per quantised ab bin *at the input resolution*, ``[B, Q, H, W]`` with
``Q = 484`` as the audited model produces:

* ``PaperNet``: the paper's VGG-style trunk, conv1..conv8, each block ends in batch
  norm; conv1-conv3 halve the resolution (1/8), conv5 and conv6 are dilated (2),
  conv8 upsamples back to 1/4 with a 4x4 transposed conv. The audit's "multi-scale
  feature fusion" is a concat of conv2's features (also at 1/4) into conv8. The 1x1
  head's 1/4-resolution logits are then resized bilinearly to H x W (the paper's
  ``upsample4``, applied to the logits since the audited model outputs full-resolution
  bins): the ``Q x H x W`` logits, the loss's softmax over them and their gradient are
  most of the activation memory (the audit's ~2.1 GB peak).
* ``MobileLite``: the same topology with "fewer channels" (every width halved: the 1/8
  trunk is 256 wide, PaperNet's 512), depthwise-separable convs (3x3 depthwise carrying
  the stride or dilation, then 1x1) in the high-resolution blocks conv1-conv3 and conv8,
  and nearest upsampling plus a separable conv instead of the transposed conv. The 1/8
  trunk keeps full 3x3 convs: only there can the audit's ~8M parameters come from at
  half width (a separable trunk holds ~1M; widening it back, as this zoo once did to
  800 channels, contradicts "fewer channels"), and a separable layer saves more for
  backward than a full one (its depthwise output too), which a "memory-optimized"
  variant would not do. 7.0M parameters, ~17% of PaperNet's FLOPs.

Training is the paper's class-rebalanced cross-entropy against soft-encoded targets:
each ab pixel is spread over its ``soft_k = 5`` nearest bins with a Gaussian of width
``soft_sigma = 5``, and weighted by ``w[q*]`` of its nearest bin, where
``w ~ ((1 - lambda) p~ + lambda / Q)^-1`` with ``lambda = 0.5``, ``p~`` the ab prior
smoothed by a Gaussian of width 5 over the bins, and ``sum(p~ w) = 1``. Everything is
computed in float32 (float64 for the accuracy reference); the targets are kept sparse
(``k`` bin indices and weights per pixel), so the loss gathers ``k`` log-probabilities
instead of building a dense ``Q x H x W`` target. ``infer`` decodes with the annealed
mean (``softmax(z / T)`` weighted mean of the bin centres, T = 0.38). Both models
checkpoint each conv block when asked and train with Adam, betas (0.9, 0.99), weight
decay 1e-3, as the audit lists.

How it differs: the audit's 484 bins are an "extended grid with more inclusive
in-gamut filtering"; 484 = 22 x 22, so ours is the whole 10-spaced grid of centres
-110..100 on each axis (nothing filtered; the paper quantises ab in [-110, 110]), so a
flat distribution decodes to (-5, -5) rather than grey. ``num_bins = 313`` selects the
paper's count instead: the 19 x 19 grid of centres -90..90 clipped to a disc of radius
102, symmetric about the origin (the paper's 313 are the centres inside the sRGB gamut,
a lopsided region that needs colour-science tables); ``colorization_papernet_q313`` is
the paper's network exactly (313 bins, logits at H/4, the target area-averaged to them).
The ab prior is a fixed synthetic one, ``p(c) ~ exp(-|c| / 25)``: like ImageNet's
empirical prior it peaks at grey and falls off with saturation, but it is not measured
on a data set. No pretrained weights; ``tiny`` uses one conv per block with widths
8-32 and keeps Q = 484.

The synthetic task (``make_colour_images``) draws a smooth random scalar field
painted with a fixed viridis-like colour map (ab is then a function of L) plus two
discs or squares from a four-colour palette, converted to Lab with the standard sRGB
-> XYZ (D65) -> CIELAB formulas in NumPy. Input L, target ab; the metric is the mean
absolute ab error (ab units, lower is better) of the annealed-mean decode. Sizes are a
side or ``"HxW"``, each a multiple of 8.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models._base import ZooModel, at_least_float32, image_hw
from models._registry import register_model

NUM_AB_BINS = 484  # the audited model's Q
PAPER_AB_BINS = 313  # the paper's Q
_GRID_STEP = 10.0  # ab units between neighbouring bin centres, as in the paper
_DISC_HALF = 9  # 313 grid: centres at -90..90 on each axis ...
_DISC_RADIUS = 102.0  # ... inside this disc; no centre lies on it: (60, 80) is at 100, (50, 90) at 102.96
_FULL_LOW, _FULL_COUNT = -11, 22  # 484 grid: centres at -110..100 on each axis, 22 x 22

# --- helpers -------------------------------------------------------------------


def ab_bin_grid(num_bins: int = NUM_AB_BINS) -> np.ndarray:
    """The ab bin centres, (Q, 2) float64, ordered by a then b, for Q = 484 or 313.

    484: the full 22 x 22 grid of 10-spaced centres -110..100. 313: the 19 x 19 grid
    -90..90 clipped to a disc of radius 102. Integer arithmetic on the grid indices
    keeps the selection exact on every platform.
    """
    if num_bins == NUM_AB_BINS:
        idx = np.arange(_FULL_LOW, _FULL_LOW + _FULL_COUNT)
        ia, ib = np.meshgrid(idx, idx, indexing="ij")
        keep = np.ones(ia.shape, dtype=bool)
    elif num_bins == PAPER_AB_BINS:
        idx = np.arange(-_DISC_HALF, _DISC_HALF + 1)
        ia, ib = np.meshgrid(idx, idx, indexing="ij")
        limit = int((_DISC_RADIUS / _GRID_STEP) ** 2)  # 104: no index pair has i^2 + j^2 == 105
        keep = (ia ** 2 + ib ** 2) <= limit
    else:
        raise ValueError("num_bins must be %d (the audit's grid) or %d (the paper's), got %r"
                         % (NUM_AB_BINS, PAPER_AB_BINS, num_bins))
    grid = np.stack([ia[keep], ib[keep]], axis=1).astype(np.float64) * _GRID_STEP
    if grid.shape[0] != num_bins:
        raise RuntimeError("ab grid has %d bins, expected %d" % (grid.shape[0], num_bins))
    return grid


def ab_grid_axis(num_bins: int) -> Optional[np.ndarray]:
    """The per-axis centres (n,) when the grid is the full product ``axis x axis`` (Q = 484), else None."""
    if num_bins == NUM_AB_BINS:
        return np.arange(_FULL_LOW, _FULL_LOW + _FULL_COUNT).astype(np.float64) * _GRID_STEP
    return None


def synthetic_ab_prior(bins: np.ndarray, scale: float) -> np.ndarray:
    """A fixed stand-in for the empirical ab prior: ``p(c) ~ exp(-|c| / scale)``, summing to one."""
    prior = np.exp(-np.hypot(bins[:, 0], bins[:, 1]) / scale)
    return prior / prior.sum()


def rebalance_weights(bins: np.ndarray, prior: np.ndarray, sigma: float, lam: float) -> np.ndarray:
    """The paper's class-rebalancing weights (Q,), float64.

    ``p~`` is ``prior`` smoothed by a Gaussian of width ``sigma`` over the bin centres;
    ``w ~ ((1 - lam) p~ + lam / Q)^-1``, normalised so that ``sum(p~ w) = 1`` (the
    expected weight under the prior is one). ``lam = 1`` gives all-ones weights.
    """
    d2 = ((bins[:, None, :] - bins[None, :, :]) ** 2).sum(-1)  # (Q, Q)
    smoothed = np.exp(-d2 / (2.0 * sigma * sigma)) @ prior
    smoothed = smoothed / smoothed.sum()
    weights = 1.0 / ((1.0 - lam) * smoothed + lam / bins.shape[0])
    return weights / (smoothed * weights).sum()


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


def make_colour_images(batch_size: int, size, gen) -> np.ndarray:
    """Seeded sRGB images (b, 3, h, w) in [0, 1]: a colour-mapped smooth field and two shapes.

    ``size`` is a side or ``"HxW"``; coordinates run over [0, 1] on each axis.
    """
    h, w = image_hw(size)
    ys = (np.arange(h, dtype=np.float64) + 0.5) / h
    xs = (np.arange(w, dtype=np.float64) + 0.5) / w
    yy, xx = np.meshgrid(ys, xs, indexing="ij")  # (h, w)
    waves = gen.uniform_np((batch_size, 3, 4))  # per image 3 cosines: fx, fy, phase, amplitude
    shapes = gen.uniform_np((batch_size, 2, 5))  # per image 2 shapes: kind, cy, cx, radius, colour
    images = np.empty((batch_size, 3, h, w), dtype=np.float64)
    stops = np.linspace(0.0, 1.0, len(_COLOUR_MAP))
    for i in range(batch_size):
        field = np.zeros((h, w))
        for fx, fy, phase, amp in waves[i]:
            field += (0.5 + amp) * np.cos(2 * np.pi * ((4 * fx - 2) * xx + (4 * fy - 2) * yy) + 2 * np.pi * phase)
        field = (field - field.min()) / max(field.max() - field.min(), 1e-6)
        image = np.stack([np.interp(field, stops, _COLOUR_MAP[:, c]) for c in range(3)])  # (3, h, w)
        for kind, cy, cx, radius, colour in shapes[i]:
            r = 0.1 + 0.15 * radius
            if kind < 0.5:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
            else:
                mask = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
            image[:, mask] = _PALETTE[min(int(colour * len(_PALETTE)), len(_PALETTE) - 1)][:, None]
        images[i] = image
    return images


def soft_encode_sparse(ab: torch.Tensor, bins: torch.Tensor, k: int, sigma: float,
                       axis: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest bins of each ab pixel, nearest first, and their Gaussian weights.

    ``ab`` (b, 2, h, w), ``bins`` (Q, 2) -> ``(idx, weights)``, each (b, k, h, w); the
    weights sum to one per pixel. When ``bins`` is the product grid ``axis x axis``
    (a-major, the 484 grid), the search is separable: ``d^2 = da^2 + db^2``, so the
    ``k`` nearest pairs are among the ``k`` nearest a-centres times the ``k`` nearest
    b-centres, and no (b, Q, h, w) distance map is built (the audited code soft-encodes
    in its data pipeline; a Q x H x W map per image here would inflate the step's memory
    peak). Otherwise the (b, Q, h, w) squared distances are searched directly.
    """
    if axis is None:
        da = ab[:, :1] - bins[:, 0].reshape(1, -1, 1, 1)  # (b, Q, h, w)
        db = ab[:, 1:] - bins[:, 1].reshape(1, -1, 1, 1)
        near, idx = torch.topk(da * da + db * db, k, dim=1, largest=False, sorted=True)  # (b, k, h, w)
    else:
        n = axis.shape[0]
        kk = min(k, n)
        da = ab[:, :1] - axis.reshape(1, -1, 1, 1)  # (b, n, h, w)
        db = ab[:, 1:] - axis.reshape(1, -1, 1, 1)
        near_a, ia = torch.topk(da * da, kk, dim=1, largest=False, sorted=True)  # (b, kk, h, w)
        near_b, ib = torch.topk(db * db, kk, dim=1, largest=False, sorted=True)
        pairs = (near_a.unsqueeze(2) + near_b.unsqueeze(1)).flatten(1, 2)  # (b, kk * kk, h, w)
        near, j = torch.topk(pairs, k, dim=1, largest=False, sorted=True)  # (b, k, h, w)
        row = torch.div(j, kk, rounding_mode="floor")
        idx = ia.gather(1, row) * n + ib.gather(1, j - row * kk)
    # Relative to the nearest bin: same ratios, but pixels far outside the grid
    # (where every exp(-d^2 / 2 sigma^2) underflows) still get a distribution.
    weights = torch.exp(-(near - near[:, :1]) / (2.0 * sigma * sigma))
    return idx, weights / weights.sum(dim=1, keepdim=True)


def soft_encode(ab: torch.Tensor, bins: torch.Tensor, k: int, sigma: float,
                axis: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Dense soft targets (b, Q, h, w) of ``soft_encode_sparse`` (for inspection; the loss stays sparse)."""
    idx, weights = soft_encode_sparse(ab, bins, k, sigma, axis)
    shape = (ab.shape[0], bins.shape[0]) + tuple(ab.shape[2:])
    return torch.zeros(shape, dtype=weights.dtype, device=weights.device).scatter_(1, idx, weights)


def annealed_mean(logits: torch.Tensor, bins: torch.Tensor, temperature: float) -> torch.Tensor:
    """ab (b, 2, h, w) from logits (b, Q, h, w): the mean of softmax(log p / T) over bin centres.

    ``softmax(log_softmax(z) / T) == softmax(z / T)``, so the logits are used directly.
    """
    probs = F.softmax(logits / temperature, dim=1)  # (b, Q, h, w)
    return torch.einsum("bqhw,qc->bchw", probs, bins.to(probs.dtype))


# --- blocks --------------------------------------------------------------------


def _conv_relu(in_ch: int, out_ch: int, stride: int, dilation: int, separable: bool) -> nn.Sequential:
    if separable and in_ch > 1:  # a one-channel input has nothing to separate
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
    #: Whether the 1/8 trunk (conv4-conv7) is separable too (None: as ``separable``).
    trunk_separable: Optional[bool] = None
    #: Q: 484 (the audited grid) or 313 (the paper's).
    num_bins: int = NUM_AB_BINS
    #: Logits resized to the input's H x W (the audited model); False: left at H/4 (the paper's).
    full_resolution: bool = True
    soft_k: int = 5
    soft_sigma: float = 5.0
    #: Class rebalancing: lambda of the uniform mix (1: no rebalancing), sigma of the prior's smoothing.
    rebalance_lambda: float = 0.5
    rebalance_sigma: float = 5.0
    #: Decay (ab units) of the synthetic prior exp(-|ab| / scale) the weights are computed from.
    prior_scale: float = 25.0
    temperature: float = 0.38
    min_size: int = 16
    default_sizes: Tuple[int, ...] = (256,)


class ColorizationNet(ZooModel):
    """L channel (b, 1, h, w) in [0, 100] -> ab-bin logits (b, Q, h, w) (or (b, Q, h/4, w/4))."""

    size_axis = "image side in pixels, or HxW (each a multiple of 8)"
    non_square = True
    task_metric_name = "ab_mae"
    task_higher_is_better = False
    stride = 8  # conv1-conv3 each halve the resolution
    optimizer_name = "adam"

    def __init__(self, config: ColorizationConfig):
        super().__init__(config)
        c = config
        if len(c.widths) != 5 or len(c.convs_per_block) != 8:
            raise ValueError("widths needs 5 entries and convs_per_block 8, got %r and %r"
                             % (c.widths, c.convs_per_block))
        bins = ab_bin_grid(c.num_bins)  # ValueError for a Q without a grid
        if not 1 <= c.soft_k <= c.num_bins:
            raise ValueError("soft_k must be in [1, %d], got %d" % (c.num_bins, c.soft_k))
        if c.temperature <= 0:
            raise ValueError("temperature must be > 0, got %r" % (c.temperature,))
        if not 0.0 < c.rebalance_lambda <= 1.0:
            raise ValueError("rebalance_lambda must be in (0, 1], got %r" % (c.rebalance_lambda,))
        w1, w2, w3, w_mid, w8 = c.widths
        n = c.convs_per_block
        sep = c.separable
        trunk_sep = sep if c.trunk_separable is None else c.trunk_separable
        self.blocks = nn.ModuleList([
            ConvBlock(1, w1, n[0], stride=2, separable=sep),
            ConvBlock(w1, w2, n[1], stride=2, separable=sep),
            ConvBlock(w2, w3, n[2], stride=2, separable=sep),
            ConvBlock(w3, w_mid, n[3], separable=trunk_sep),
            ConvBlock(w_mid, w_mid, n[4], dilation=c.middle_dilation, separable=trunk_sep),
            ConvBlock(w_mid, w_mid, n[5], dilation=c.middle_dilation, separable=trunk_sep),
            ConvBlock(w_mid, w_mid, n[6], separable=trunk_sep),
        ])
        self.up = UpFuseBlock(w_mid, w2, w8, n[7], separable=sep)
        self.head = nn.Conv2d(w8, c.num_bins, 1)
        # Not persistent: the grid and the weights are constants of the code, not learned state.
        self.register_buffer("ab_bins", torch.from_numpy(bins).float(), persistent=False)
        weights = rebalance_weights(bins, synthetic_ab_prior(bins, c.prior_scale), c.rebalance_sigma,
                                    c.rebalance_lambda)
        self.register_buffer("class_weights", torch.from_numpy(weights).float(), persistent=False)
        axis = ab_grid_axis(c.num_bins)
        self.grid_axis: Optional[torch.Tensor]
        if axis is None:
            self.grid_axis = None
        else:
            self.register_buffer("grid_axis", torch.from_numpy(axis).float(), persistent=False)

    @classmethod
    def size_error(cls, config: ColorizationConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)
        if reason is None:
            h, w = image_hw(size)
            if h % cls.stride or w % cls.stride:
                reason = "image height and width must be multiples of %d (three stride-2 blocks), got %s" % (
                    cls.stride, size)
            elif min(h, w) < config.min_size:
                reason = "image height and width must be at least %d px for this config, got %s" % (
                    config.min_size, size)
        return reason

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:  # (b, 1, h, w) -> (b, Q, h, w)
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
        logits = self.head(x)  # (b, Q, h/4, w/4)
        if self.config.full_resolution:
            # The audited model's [B, Q, H, W]: the paper's bilinear x4, on the logits, in the model's dtype.
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        return logits

    def decode(self, logits: torch.Tensor, out_size=None) -> torch.Tensor:
        """Annealed-mean ab (b, 2, ...) of ``logits``, bilinearly resized to ``out_size`` if given.

        Decoded in float32 whatever the model's dtype: it is a small reduction and
        half-precision bilinear resizing is missing on some CPU builds.
        """
        ab = annealed_mean(at_least_float32(logits), at_least_float32(self.ab_bins), self.config.temperature)
        if out_size is not None and tuple(ab.shape[-2:]) != tuple(out_size):
            ab = F.interpolate(ab, size=tuple(out_size), mode="bilinear", align_corners=False)
        return ab.to(logits.dtype)

    def infer(self, lightness: torch.Tensor) -> torch.Tensor:  # (b, 1, h, w) -> ab (b, 2, h, w)
        return self.decode(self(lightness), out_size=lightness.shape[-2:])

    def make_optimizer(self) -> "torch.optim.Optimizer":
        """Adam with betas (0.9, 0.99) and weight decay 1e-3, as the audited ``src/train.py`` trains."""
        return torch.optim.Adam(self.param_groups(), lr=self.learning_rate, betas=(0.9, 0.99), weight_decay=1e-3)

    def example_inputs(self, batch_size: int, size, gen):
        self.check_size(size)
        h, w = image_hw(size)
        lightness = gen.uniform((batch_size, 1, h, w), 0.0, 100.0)
        ab = gen.uniform((batch_size, 2, h, w), -90.0, 90.0)
        return (lightness,), ab

    def loss(self, outputs: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """Class-rebalanced soft-encoded cross-entropy, the mean over pixels, in float32 at least."""
        logits = at_least_float32(outputs)
        target_ab = at_least_float32(ab)
        if tuple(target_ab.shape[-2:]) != tuple(logits.shape[-2:]):
            # The paper variant's H/4 logits: area-average the target to them (exact: h/4 divides h).
            target_ab = F.adaptive_avg_pool2d(target_ab, logits.shape[-2:])
        with torch.no_grad():
            bins = self.ab_bins.to(logits.dtype)
            axis = None if self.grid_axis is None else self.grid_axis.to(logits.dtype)
            idx, weights = soft_encode_sparse(target_ab, bins, self.config.soft_k, self.config.soft_sigma, axis)
            pixel_weight = self.class_weights.to(logits.dtype)[idx[:, 0]]  # (b, h, w): w of the nearest bin
        # log p of the k target bins: gather, minus the log-sum-exp over Q (the same as gathering from
        # log_softmax, without materialising it: torch 1.10's log_softmax over dim 1 is ~7x slower on the CPU).
        picked = logits.gather(1, idx) - torch.logsumexp(logits, dim=1, keepdim=True)  # (b, k, h, w)
        return -(pixel_weight * (weights * picked).sum(dim=1)).mean()

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
_PAPERNET_Q313 = ColorizationConfig(num_bins=PAPER_AB_BINS, full_resolution=False)
_MOBILE_TINY = ColorizationConfig(widths=(8, 16, 32, 32, 16), convs_per_block=(1,) * 8, separable=True,
                                  trunk_separable=False, default_sizes=(32,))
# PaperNet's widths halved; depthwise-separable conv1-conv3 and conv8, full 3x3 convs in the 1/8 trunk.
_MOBILE_BASE = ColorizationConfig(widths=(32, 64, 128, 256, 128), separable=True, trunk_separable=False)

# --- registrations -------------------------------------------------------------

register_model(
    "colorization_papernet_tiny", ColorizationNet, _PAPERNET_TINY,
    family="colorization", description="Zhang et al. PaperNet, one conv per block, widths 8-32, 484 bins at H x W",
)
register_model(
    "colorization_papernet_base", ColorizationNet, _PAPERNET_BASE,
    family="colorization", description="Zhang et al. PaperNet (VGG trunk, dilated conv5/6, conv2 fusion), "
                                       "484 bins at H x W, class-rebalanced",
)
register_model(
    "colorization_papernet_q313", ColorizationNet, _PAPERNET_Q313,
    family="colorization", description="Zhang et al. PaperNet as in the paper: 313 bins at H/4",
)
register_model(
    "colorization_mobilelite_tiny", ColorizationNet, _MOBILE_TINY,
    family="colorization", description="MobileLite colorizer, separable conv1-3/conv8, widths 8-32, 484 bins",
)
register_model(
    "colorization_mobilelite_base", ColorizationNet, _MOBILE_BASE,
    family="colorization", description="MobileLite colorizer: PaperNet topology at half width, depthwise-separable "
                                       "conv1-3/conv8, 484 bins at H x W",
)
