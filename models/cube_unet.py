"""Cube U-Net: a 3-D U-Net surrogate for climate datacubes (seed 003, EnhancedCubeUNet).

Re-implements the ``EnhancedCubeUNet`` of the AstroBio-Gen platform of
audit report 003 ("AstroBio-Gen System Hardening & Production Readiness", 2025-10-01),
which calls it a production-ready, physics-informed transformer-CNN hybrid of ~50M
parameters, tests required: a U-Net over 5-D datacubes ``(b, variables, levels, h, w)``
with separable 3-D convolutions, attention at the bottleneck and gradient
checkpointing of every encoder and decoder stage. Each separable conv is a (1, 3, 3)
spatial conv followed by a (3, 1, 1) conv across levels, then group norm and SiLU;
a stage is two of them. The encoder halves h and w per level (max pooling
(1, 2, 2)), the bottleneck runs multi-head self-attention over all d*h*w voxels, the
decoder upsamples with a (1, 2, 2) transposed conv and concatenates the skip. The
head predicts the change of the state: ``output = input + head(features)``.

How it differs: the audited model was "physics-informed" and a transformer-CNN
hybrid of ~50M parameters; ours keeps the U-Net, the separable convs and one
attention block, with no physics loss terms. The levels axis ``d`` is never pooled,
so ``size`` sets only the horizontal grid, h x w (latitude x longitude, an image-like
plane that the (1, 3, 3) convs and (1, 2, 2) pooling treat as one): a side, or
``"HxW"`` for the usual non-square grids; each side must be a multiple of
``2 ** levels``, and ``d`` is fixed per config (``depth``). Attention is ``models._attention.attend``:
``F.scaled_dot_product_attention`` where this PyTorch has it (2.0+) and the explicit
``softmax(q k^T / sqrt(head_dim)) v`` otherwise; ``head_dim`` is derived from the width
and the head count and validated (the audit's smoke test died on a config without
``head_dim``).

The synthetic task (``make_diffusion_batch``) is a heat-equation step: a smooth
random field (a sum of random plane waves) is advanced a few explicit finite-
difference steps of du/dt = kappa_c * laplacian(u) with zero-flux boundaries and a
different diffusivity per variable; input the field, target the next state. The
metric is the RMSE (lower is better); predicting "no change" (persistence) is the
baseline a trained model must beat.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models._attention import attend
from models._base import ZooModel, at_least_float32, image_hw
from models._registry import register_model

# --- helpers -------------------------------------------------------------------


def _groups(channels: int) -> int:
    # Group norm rather than batch norm: 3-D cubes leave room for batches of 1-2.
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


def _laplacian(u: np.ndarray) -> np.ndarray:
    """7-point Laplacian over the last three axes with zero-flux (edge-replicated) boundaries."""
    pad = np.pad(u, [(0, 0)] * (u.ndim - 3) + [(1, 1)] * 3, mode="edge")
    centre = pad[..., 1:-1, 1:-1, 1:-1]
    return (pad[..., :-2, 1:-1, 1:-1] + pad[..., 2:, 1:-1, 1:-1] + pad[..., 1:-1, :-2, 1:-1]
            + pad[..., 1:-1, 2:, 1:-1] + pad[..., 1:-1, 1:-1, :-2] + pad[..., 1:-1, 1:-1, 2:] - 6.0 * centre)


def make_diffusion_batch(batch_size: int, channels: int, depth: int, size, gen, steps: int = 4,
                         waves: int = 6) -> Tuple[np.ndarray, np.ndarray]:
    """Seeded ``(state, next_state)``, each (b, c, depth, h, w) float64; ``size`` is h = w or ``"HxW"``.

    Variable ``c`` diffuses with ``kappa_c`` in [0.04, 0.16] (stable: the explicit 3-D
    scheme needs kappa <= 1/6). Wavelengths of the initial field are 6-24 voxels in h
    and w, so a step changes it visibly at any size.
    """
    h, w = image_hw(size)
    zz, yy, xx = np.meshgrid(np.arange(depth), np.arange(h), np.arange(w), indexing="ij")
    params = gen.uniform_np((batch_size, channels, waves, 6))  # kz, ky, kx, phase, amplitude, sign
    state = np.zeros((batch_size, channels, depth, h, w))
    for i in range(batch_size):
        for c in range(channels):
            for kz, ky, kx, phase, amp, sign in params[i, c]:
                # Cycles per voxel: |k| in [1/24, 1/6] for h and w, [0, 1/8] across levels.
                fy = (1.0 / 24 + (1.0 / 6 - 1.0 / 24) * ky) * (1 if sign < 0.5 else -1)
                fx = (1.0 / 24 + (1.0 / 6 - 1.0 / 24) * kx)
                fz = kz / 8.0
                state[i, c] += (0.5 + amp) * np.cos(2 * np.pi * (fz * zz + fy * yy + fx * xx + phase))
    state /= np.sqrt(waves)
    kappa = np.linspace(0.04, 0.16, channels).reshape(1, channels, 1, 1, 1)
    nxt = state.copy()
    for _ in range(steps):
        nxt = nxt + kappa * _laplacian(nxt)
    return state, nxt


# --- blocks --------------------------------------------------------------------


class SeparableConv3d(nn.Module):
    """A (1, 3, 3) conv over h, w then a (3, 1, 1) conv across levels, group norm, SiLU."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.spatial = nn.Conv3d(in_ch, out_ch, (1, 3, 3), padding=(0, 1, 1), bias=False)
        self.levels = nn.Conv3d(out_ch, out_ch, (3, 1, 1), padding=(1, 0, 0), bias=False)
        self.norm = nn.GroupNorm(_groups(out_ch), out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, c, d, h, w)
        return F.silu(self.norm(self.levels(self.spatial(x))))


class Stage(nn.Module):
    """Two separable convs: one U-Net encoder or decoder stage."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = SeparableConv3d(in_ch, out_ch)
        self.conv2 = SeparableConv3d(out_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class UpStage(nn.Module):
    """(1, 2, 2) transposed conv, concat the encoder skip, a ``Stage``."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.up = nn.ConvTranspose3d(in_ch, out_ch, (1, 2, 2), stride=(1, 2, 2))
        self.stage = Stage(2 * out_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:  # (b, c, d, h, w), (b, c/2, d, 2h, 2w)
        return self.stage(torch.cat([self.up(x), skip], dim=1))


class BottleneckAttention(nn.Module):
    """Pre-norm multi-head self-attention over the d*h*w voxels, with a residual."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if heads < 1 or channels % heads != 0:
            raise ValueError("bottleneck width %d must be divisible by the head count, got %d heads"
                             % (channels, heads))
        self.heads = heads
        self.head_dim = channels // heads
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, c, d, h, w)
        b, c, d, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (b, n, c)
        n = tokens.shape[1]
        qkv = self.qkv(self.norm(tokens)).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = attend(qkv[0], qkv[1], qkv[2])  # (b, heads, n, head_dim)
        tokens = tokens + self.proj(out.transpose(1, 2).reshape(b, n, c))
        return tokens.transpose(1, 2).reshape(b, c, d, h, w)


class Bottleneck(nn.Module):
    """The lowest level: a ``Stage`` then attention."""

    def __init__(self, in_ch: int, out_ch: int, heads: int):
        super().__init__()
        self.stage = Stage(in_ch, out_ch)
        self.attn = BottleneckAttention(out_ch, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(self.stage(x))


# --- model ---------------------------------------------------------------------


@dataclass(frozen=True)
class CubeUNetConfig:
    widths: Tuple[int, ...] = (64, 128, 256, 512, 1024)  # one per level; the last is the bottleneck
    heads: int = 8
    in_channels: int = 5  # climate variables
    depth: int = 8  # vertical levels: fixed per config, never pooled
    min_bottleneck: int = 1  # smallest h = w at the bottleneck
    default_sizes: Tuple[int, ...] = (64,)


class CubeUNet(ZooModel):
    """(b, c, d, h, w) state -> (b, c, d, h, w) next state, as input + predicted change."""

    size_axis = "cube grid side h = w in voxels, or HxW (depth fixed per config)"
    non_square = True
    task_metric_name = "rmse"
    task_higher_is_better = False

    def __init__(self, config: CubeUNetConfig):
        super().__init__(config)
        c = config
        if len(c.widths) < 2:
            raise ValueError("widths needs at least 2 levels, got %r" % (c.widths,))
        if c.depth < 1:
            raise ValueError("depth (levels axis) must be >= 1, got %d" % c.depth)
        self.encoders = nn.ModuleList()
        in_ch = c.in_channels
        for width in c.widths[:-1]:
            self.encoders.append(Stage(in_ch, width))
            in_ch = width
        self.bottleneck = Bottleneck(in_ch, c.widths[-1], c.heads)
        self.decoders = nn.ModuleList(
            [UpStage(c.widths[i + 1], c.widths[i]) for i in reversed(range(len(c.widths) - 1))]
        )
        self.head = nn.Conv3d(c.widths[0], c.in_channels, 1)

    @property
    def levels(self) -> int:
        return len(self.config.widths) - 1

    @classmethod
    def size_error(cls, config: CubeUNetConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)
        factor = 2 ** (len(config.widths) - 1)
        for side in (image_hw(size) if reason is None else ()):
            note = str(side) if side == size else "%d (of size %r)" % (side, size)
            if side % factor != 0:
                return "cube side must be a multiple of %d (2**%d pooling levels), got %s" % (
                    factor, len(config.widths) - 1, note)
            if side < factor * config.min_bottleneck:
                return "cube side must be at least %d for this config, got %s" % (factor * config.min_bottleneck, note)
        return reason

    def forward(self, cube: torch.Tensor) -> torch.Tensor:  # (b, c, d, h, w)
        c = self.config
        if cube.dim() != 5 or cube.shape[1] != c.in_channels:
            raise ValueError("expected a cube of shape (b, %d, d, h, w), got %s" % (c.in_channels, tuple(cube.shape)))
        factor = 2 ** self.levels
        if cube.shape[-2] % factor or cube.shape[-1] % factor:
            raise ValueError("cube h and w must be multiples of %d, got %dx%d"
                             % (factor, cube.shape[-2], cube.shape[-1]))
        x = cube
        skips = []
        for i, encoder in enumerate(self.encoders):
            if i > 0:
                x = F.max_pool3d(x, (1, 2, 2))
            x = self.checkpointed(encoder, x)
            skips.append(x)
        x = self.checkpointed(self.bottleneck, F.max_pool3d(x, (1, 2, 2)))
        for decoder, skip in zip(self.decoders, reversed(skips)):
            x = self.checkpointed(decoder, x, skip)
        return cube + self.head(x)

    def example_inputs(self, batch_size: int, size, gen):
        self.check_size(size)
        shape = (batch_size, self.config.in_channels, self.config.depth) + image_hw(size)
        return (gen.normal(shape),), gen.normal(shape)

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(at_least_float32(outputs), at_least_float32(target))

    def task_batch(self, batch_size: int, size, gen):
        self.check_size(size)
        state, nxt = make_diffusion_batch(batch_size, self.config.in_channels, self.config.depth, size, gen)
        return (torch.from_numpy(state).float(),), torch.from_numpy(nxt).float()

    def task_metric(self, outputs: torch.Tensor, target: torch.Tensor) -> float:
        return float(((outputs.detach().float() - target.float()) ** 2).mean().sqrt())


# --- sizes ---------------------------------------------------------------------

_TINY = CubeUNetConfig(widths=(8, 16, 32), heads=2, in_channels=2, depth=4, default_sizes=(16,))
_BASE = CubeUNetConfig()

# --- registrations -------------------------------------------------------------

register_model(
    "cube_unet_tiny", CubeUNet, _TINY,
    family="cube_unet", description="3-D datacube U-Net, 2 levels, widths 8-32, 2 variables x 4 levels",
)
register_model(
    "cube_unet_base", CubeUNet, _BASE,
    family="cube_unet", description="3-D datacube U-Net (EnhancedCubeUNet), 4 levels, widths 64-1024, attention",
)
