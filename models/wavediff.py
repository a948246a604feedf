"""WaveDiff: conditional diffusion in the Haar wavelet domain, RGB to a 31-band cube (seed 000).

Re-implements the WaveDiff model (``WaveDiff/models/base_model.py``) of the hyperspectral
imaging toolkit of audit report 000 ("Model Audit Summary - Action Plan", 2025-11-01: 24
bugs in five models; WaveDiff's are channels read back from a conv, duplicated mask
handling, unchecked ``sampling_steps`` and a fallback tensor on the wrong device): the target cube is taken to
the wavelet domain by a one-level orthonormal 2-D Haar transform (four sub-bands LL, LH,
HL, HH at half resolution), noised on a linear or cosine beta schedule, and a small
U-Net denoiser conditioned on the Haar coefficients of the (masked) RGB, the mask and a
sinusoidal timestep embedding (FiLM scale and shift in every residual block) predicts
the clean coefficients; the inverse transform gives the cube. Sampling is DDIM.

How it differs: the denoiser predicts the clean coefficients (x0-parameterisation), so
``forward`` returns a cube and training and evaluation share the cube as target; the
training loss is L1 on the cube, in float32. One training step is one denoising step:
``forward(rgb, cube, noise, t, mask)`` noises the cube's coefficients at timestep ``t``
with ``noise``, both drawn from the seeded generator in ``example_inputs`` (nothing is
drawn inside ``forward``), so a step is deterministic. ``infer`` runs
``config.sampling_steps`` DDIM steps with eta = 0 from ``noise`` as x_T and ignores
``cube`` and ``t``; it draws nothing either. The audit's fixes are built in:
``out_channels`` is stored on the model and the denoiser (issue #5) rather than read
back from a conv, masks go through one helper (``expand_mask``) that reports a
mismatched shape with ValueError, ``sampling_steps`` is validated, and the all-ones
fallback mask is made on the input's device and dtype.

The mask marks observed RGB pixels (1 observed, 0 missing): masked pixels are zeroed in
the condition and the mask is a condition channel, so the model learns to fill them in.
``example_inputs`` drops one random box per image (``mask_ratio`` of the area; a square
on square images). Sizes are a square side or ``"HxW"``, each side a multiple of
``2 ** len(widths)`` (one Haar level, then the U-Net's downsamples).

Fault twin ``wavediff_lazy_head_fault_tiny`` undoes the issue #5 fix the other way: it
infers the coefficient channel count from the first input it sees and only then builds
the denoiser's output conv, replacing the one made in ``__init__`` (with the same
weights, so outputs do not change). An optimizer made before that first forward, as a
training loop makes it, holds the replaced conv's parameters: the live output conv
gets gradients and is never updated.

The Haar transform is ``models._wavelets`` (shared with MSWR-Net). The synthetic task
is the CSWin task of ``models._spectral`` (``spectral_task_batch``: smooth mixtures of
Gaussian-bump spectra through a fixed camera response); input RGB, target cube; the
metric is PSNR in dB of the sampled cube (higher is better).
"""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models._base import ZooModel, image_hw
from models._registry import register_model
from models._spectral import SPECTRAL_BANDS, psnr_db, spectral_task_batch
from models._wavelets import haar_dwt, haar_idwt

BETA_SCHEDULES = ("linear", "cosine")

# --- helpers -------------------------------------------------------------------

def expand_mask(mask: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """Broadcast a pixel mask to ``like``'s (b, c, h, w) without copying, in its dtype.

    Accepts (h, w), (b, h, w), (b or 1, 1 or c, h, w); ``None`` means all observed and
    gives ones on ``like``'s device. A shape that does not fit raises ValueError naming
    both shapes, rather than a broadcasting error deep in the network.
    """
    b, c, h, w = like.shape
    if mask is None:
        return torch.ones((1, 1, 1, 1), dtype=like.dtype, device=like.device).expand(b, c, h, w)
    if mask.dim() == 2:
        mask = mask[None, None]
    elif mask.dim() == 3:
        mask = mask[:, None]
    if mask.dim() != 4 or tuple(mask.shape[-2:]) != (h, w) or mask.shape[0] not in (1, b) \
            or mask.shape[1] not in (1, c):
        raise ValueError("mask of shape %s does not fit (b, c, h, w) = %s; use (h, w), (b, h, w), (b, 1, h, w) or "
                         "(b, c, h, w)" % (tuple(mask.shape), tuple(like.shape)))
    return mask.to(like.dtype).expand(b, c, h, w)


def beta_schedule(kind: str, num_timesteps: int) -> np.ndarray:
    """Betas in float64: DDPM's linear ramp (rescaled to ``num_timesteps``) or Nichol-Dhariwal cosine."""
    if not isinstance(num_timesteps, int) or num_timesteps < 1:
        raise ValueError("num_timesteps must be a positive integer, got %r" % (num_timesteps,))
    if kind == "linear":
        scale = 1000.0 / num_timesteps
        return np.linspace(scale * 1e-4, min(scale * 0.02, 0.999), num_timesteps, dtype=np.float64)
    if kind == "cosine":
        s = 0.008
        steps = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
        f = np.cos((steps + s) / (1.0 + s) * math.pi / 2.0) ** 2
        return np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)
    raise ValueError("beta_schedule must be one of %s, got %r" % (", ".join(BETA_SCHEDULES), kind))


def _sinusoidal_table(num_timesteps: int, dim: int) -> np.ndarray:
    # (T, dim) transformer-style embedding; a table so nothing is built inside forward.
    half = dim // 2
    freqs = np.exp(-math.log(10000.0) * np.arange(half, dtype=np.float64) / max(half, 1))
    args = np.arange(num_timesteps, dtype=np.float64)[:, None] * freqs[None]
    return np.concatenate([np.sin(args), np.cos(args)], axis=1)


def random_box_masks(batch_size: int, size, gen, ratio: float) -> torch.Tensor:
    """(b, 1, h, w) float masks of ones with one box of zeros covering ~``ratio`` of the area.

    ``size`` is a side or ``"HxW"``; the box has the image's aspect (a square on square images).
    """
    h, w = image_hw(size)
    bh, bw = int(round(h * math.sqrt(ratio))), int(round(w * math.sqrt(ratio)))
    corners = gen.uniform_np((batch_size, 2), 0.0, 1.0)
    mask = np.ones((batch_size, 1, h, w), dtype=np.float64)
    if bh > 0 and bw > 0:
        for i, (u, v) in enumerate(corners):
            y, x = int(u * (h - bh + 1)), int(v * (w - bw + 1))
            mask[i, :, y:y + bh, x:x + bw] = 0.0
    return torch.from_numpy(mask).float()


# --- blocks --------------------------------------------------------------------

class TimeResBlock(nn.Module):
    """GroupNorm-SiLU-conv residual block with FiLM (scale, shift) from the timestep embedding."""

    def __init__(self, in_ch: int, out_ch: int, time_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(math.gcd(groups, in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.film = nn.Linear(time_dim, 2 * out_ch)
        self.norm2 = nn.GroupNorm(math.gcd(groups, out_ch), out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:  # (b, c, h, w), (b, time_dim)
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(temb))[:, :, None, None].chunk(2, dim=1)  # (b, out, 1, 1) each
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return h + self.skip(x)


class TimeStage(nn.Module):
    """A run of ``TimeResBlock``s sharing one timestep embedding (the unit of checkpointing)."""

    def __init__(self, in_ch: int, out_ch: int, depth: int, time_dim: int, groups: int):
        super().__init__()
        self.blocks = nn.ModuleList([
            TimeResBlock(in_ch if i == 0 else out_ch, out_ch, time_dim, groups) for i in range(depth)
        ])

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, temb)
        return x


class WaveletDenoiser(nn.Module):
    """U-Net over wavelet coefficients: (x_t, condition, temb) -> predicted clean coefficients."""

    def __init__(self, coeff_channels: int, cond_channels: int, widths: Tuple[int, ...], depth: int,
                 time_dim: int, groups: int):
        super().__init__()
        # Kept as an attribute: the audit's issue #5 read it back from decoder.final_conv.
        self.out_channels = coeff_channels
        levels = len(widths)
        self.conv_in = nn.Conv2d(coeff_channels + cond_channels, widths[0], 3, padding=1)
        self.encoder = nn.ModuleList([TimeStage(widths[i], widths[i], depth, time_dim, groups) for i in range(levels)])
        self.down = nn.ModuleList([nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1)
                                   for i in range(levels - 1)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(levels - 1)])
        self.decoder = nn.ModuleList([TimeStage(2 * widths[i], widths[i], depth, time_dim, groups)
                                      for i in range(levels - 1)])
        self.norm_out = nn.GroupNorm(math.gcd(groups, widths[0]), widths[0])
        self.conv_out = nn.Conv2d(widths[0], coeff_channels, 3, padding=1)

    def forward(self, x_t: torch.Tensor, cond: torch.Tensor, temb: torch.Tensor, run=None) -> torch.Tensor:
        """``run(stage, x, temb)`` runs a stage (the model passes its checkpointing wrapper)."""
        run = run or (lambda stage, *args: stage(*args))
        x = self.conv_in(torch.cat([x_t, cond], dim=1))  # (b, w0, h, w)
        skips = []
        for i, stage in enumerate(self.encoder):
            x = run(stage, x, temb)
            if i < len(self.down):
                skips.append(x)
                x = self.down[i](x)  # (b, w_{i+1}, h / 2**(i+1), w / 2**(i+1))
        for i in reversed(range(len(self.decoder))):
            x = run(self.decoder[i], torch.cat([self.up[i](x), skips[i]], dim=1), temb)
        return self.conv_out(F.silu(self.norm_out(x)))  # (b, coeff_channels, h, w)


# --- model ---------------------------------------------------------------------

@dataclass(frozen=True)
class WaveDiffConfig:
    in_channels: int = 3
    out_channels: int = SPECTRAL_BANDS
    widths: Tuple[int, ...] = (64, 128, 256)  # denoiser width per level, at half the image side and below
    blocks_per_level: int = 2
    time_dim: int = 128
    norm_groups: int = 8
    num_timesteps: int = 1000
    beta_schedule: str = "linear"
    sampling_steps: int = 50  # DDIM steps in infer
    mask_ratio: float = 0.1  # area of the square dropped from the RGB in example_inputs
    default_sizes: Tuple[int, ...] = (128,)


class WaveDiff(ZooModel):
    """Wavelet-domain conditional diffusion from RGB (b, 3, h, w) to a cube (b, 31, h, w)."""

    size_axis = "image side in pixels, or HxW"
    non_square = True
    task_metric_name = "psnr_db"
    task_higher_is_better = True

    def __init__(self, config: WaveDiffConfig):
        super().__init__(config)
        c = config
        if len(c.widths) < 1 or min(c.widths) < 1 or c.blocks_per_level < 1:
            raise ValueError("widths must be non-empty and positive and blocks_per_level >= 1, got %r and %r"
                             % (c.widths, c.blocks_per_level))
        if c.time_dim < 2 or c.time_dim % 2:
            raise ValueError("time_dim must be an even integer >= 2, got %r" % (c.time_dim,))
        if not 0.0 <= c.mask_ratio < 1.0:
            raise ValueError("mask_ratio must be in [0, 1), got %r" % (c.mask_ratio,))
        betas = beta_schedule(c.beta_schedule, c.num_timesteps)
        self._check_steps(c.sampling_steps)
        self.out_channels = c.out_channels  # issue #5: stored, never inferred from a layer
        self.coeff_channels = 4 * c.out_channels
        self.denoiser = WaveletDenoiser(self.coeff_channels, 4 * c.in_channels + 1, c.widths, c.blocks_per_level,
                                        c.time_dim, c.norm_groups)
        self.time_mlp = nn.Sequential(nn.Linear(c.time_dim, c.time_dim), nn.SiLU(), nn.Linear(c.time_dim, c.time_dim))
        # Python floats for the sampler; buffers (which follow .to(device, dtype)) for the batched lookups.
        self._alphas_cumprod = np.cumprod(1.0 - betas)
        f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float()
        self.register_buffer("betas", f32(betas))
        self.register_buffer("alphas_cumprod", f32(self._alphas_cumprod))
        self.register_buffer("sqrt_alphas_cumprod", f32(np.sqrt(self._alphas_cumprod)))
        self.register_buffer("sqrt_one_minus_alphas_cumprod", f32(np.sqrt(1.0 - self._alphas_cumprod)))
        self.register_buffer("timestep_table", f32(_sinusoidal_table(c.num_timesteps, c.time_dim)))

    def _check_steps(self, steps) -> int:
        t = self.config.num_timesteps
        if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= t:
            raise ValueError("sampling_steps must be an integer in [1, num_timesteps=%d], got %r" % (t, steps))
        return steps

    @classmethod
    def size_error(cls, config: WaveDiffConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)
        multiple = 2 ** len(config.widths)
        for side in (image_hw(size) if reason is None else ()):
            if side % multiple:
                note = str(side) if side == size else "%d (of size %r)" % (side, size)
                return "image side must be a multiple of %d (one Haar level and %d U-Net downsamples), got %s" % (
                    multiple, len(config.widths) - 1, note)
        return reason

    # -- pieces ------------------------------------------------------------------
    def _check_inputs(self, rgb: torch.Tensor, noise: torch.Tensor) -> None:
        if rgb.dim() != 4 or rgb.shape[1] != self.config.in_channels:
            raise ValueError("expected rgb of shape (b, %d, h, w), got %s"
                             % (self.config.in_channels, tuple(rgb.shape)))
        for side in rgb.shape[-2:]:
            reason = self.size_error(self.config, int(side))
            if reason is not None:
                raise ValueError(reason)
        b, _, h, w = rgb.shape
        want = (b, self.coeff_channels, h // 2, w // 2)
        if tuple(noise.shape) != want:
            raise ValueError("noise must have the wavelet shape %s for rgb %s, got %s"
                             % (want, tuple(rgb.shape), tuple(noise.shape)))

    def _condition(self, rgb: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        m = expand_mask(mask, rgb)  # (b, 3, h, w)
        observed = haar_dwt((rgb * 2 - 1) * m)  # (b, 12, h/2, w/2), missing pixels read as 0
        return torch.cat([observed, F.avg_pool2d(m[:, :1], 2)], dim=1)  # (b, 13, h/2, w/2)

    def _denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(self.timestep_table[t])  # (b, time_dim)
        return self.denoiser(x_t, cond, temb, run=self.checkpointed)  # predicted clean coefficients

    # -- the interface -----------------------------------------------------------
    def forward(self, rgb: torch.Tensor, cube: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One denoising step: noise ``cube``'s coefficients at ``t``, predict the clean cube (b, 31, h, w)."""
        self._check_inputs(rgb, noise)
        if tuple(cube.shape) != (rgb.shape[0], self.out_channels) + tuple(rgb.shape[-2:]):
            raise ValueError("cube must have shape (b, %d, h, w) matching rgb %s, got %s"
                             % (self.out_channels, tuple(rgb.shape), tuple(cube.shape)))
        if t.shape != (rgb.shape[0],) or t.is_floating_point():
            raise ValueError("t must be integer timesteps of shape (%d,), got %s %s"
                             % (rgb.shape[0], t.dtype, tuple(t.shape)))
        if bool((t < 0).any()) or bool((t >= self.config.num_timesteps).any()):
            raise ValueError("timesteps must be in [0, %d), got %s" % (self.config.num_timesteps, t.tolist()))
        x0 = haar_dwt(cube * 2 - 1)  # (b, 124, h/2, w/2)
        x_t = self.sqrt_alphas_cumprod[t].view(-1, 1, 1, 1) * x0 \
            + self.sqrt_one_minus_alphas_cumprod[t].view(-1, 1, 1, 1) * noise
        x0_pred = self._denoise(x_t, t, self._condition(rgb, mask))
        return (haar_idwt(x0_pred) + 1) * 0.5  # (b, 31, h, w)

    def infer(self, rgb: torch.Tensor, cube: Optional[torch.Tensor] = None, noise: Optional[torch.Tensor] = None,
              t: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
              sampling_steps: Optional[int] = None) -> torch.Tensor:
        """DDIM (eta = 0) from ``noise`` as x_T over ``sampling_steps`` steps; ``cube`` and ``t`` are unused."""
        steps = self._check_steps(self.config.sampling_steps if sampling_steps is None else sampling_steps)
        if noise is None:
            raise ValueError("infer needs the x_T noise tensor (drawn by example_inputs); it draws none itself")
        self._check_inputs(rgb, noise)
        cond = self._condition(rgb, mask)
        ab = self._alphas_cumprod
        seq = [int(s) for s in np.round(np.linspace(self.config.num_timesteps - 1, 0, steps))]
        x = noise
        x0 = noise
        for i, step in enumerate(seq):
            t_batch = torch.full((rgb.shape[0],), step, dtype=torch.long, device=rgb.device)
            x0 = self._denoise(x, t_batch, cond)
            if i + 1 < len(seq):
                # Deterministic DDIM update: re-noise the prediction to the next timestep.
                eps = (x - math.sqrt(ab[step]) * x0) / math.sqrt(1.0 - ab[step])
                nxt = seq[i + 1]
                x = math.sqrt(ab[nxt]) * x0 + math.sqrt(1.0 - ab[nxt]) * eps
        return (haar_idwt(x0) + 1) * 0.5  # (b, 31, h, w)

    def example_inputs(self, batch_size: int, size, gen):
        self.check_size(size)
        rgb, cube = spectral_task_batch(batch_size, size, gen, bands=self.out_channels)
        h, w = image_hw(size)
        noise = gen.normal((batch_size, self.coeff_channels, h // 2, w // 2))
        t = gen.integers(0, self.config.num_timesteps, (batch_size,))
        mask = random_box_masks(batch_size, size, gen, self.config.mask_ratio)
        return (rgb, cube, noise, t, mask), cube

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(outputs.float(), target.float())

    def task_metric(self, outputs: torch.Tensor, target: torch.Tensor) -> float:
        return psnr_db(outputs, target)


class WaveDiffLazyHeadFault(WaveDiff):
    """Fault twin: the denoiser's output conv is (re)built by the first forward (a stale optimizer).

    The channel count is inferred from the first noisy coefficients seen, the reverse of
    the audit's issue #5 fix, and ``denoiser.conv_out`` is replaced by a conv of that
    width, initialised from the old one so nothing looks different. An optimizer made
    before that first call (``make_optimizer()``, as every training loop does) keeps the
    old conv's parameters, which get no gradient; the live ones get gradients and are
    never stepped. The harness sees parameters with gradients that a train step leaves
    unchanged, where ``wavediff_tiny`` updates them all.
    """

    def __init__(self, config: WaveDiffConfig):
        super().__init__(config)
        self.head_built = False

    def _denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if not self.head_built:
            self._build_head(x_t.shape[1])
        return super()._denoise(x_t, t, cond)

    def _build_head(self, channels: int) -> None:
        old = self.denoiser.conv_out
        new = nn.Conv2d(old.in_channels, channels, old.kernel_size, padding=old.padding)
        new = new.to(device=old.weight.device, dtype=old.weight.dtype)
        new.load_state_dict(old.state_dict())
        self.denoiser.conv_out = new
        self.head_built = True


# --- sizes ---------------------------------------------------------------------

_TINY = WaveDiffConfig(widths=(16, 32), blocks_per_level=1, time_dim=32, num_timesteps=100, beta_schedule="cosine",
                       sampling_steps=3, default_sizes=(16,))
_BASE = WaveDiffConfig()

# --- registrations -------------------------------------------------------------

register_model(
    "wavediff_tiny", WaveDiff, _TINY,
    family="hyperspectral", description="WaveDiff, Haar-domain U-Net 16/32, 100 cosine steps, 3 DDIM steps",
)
register_model(
    "wavediff_base", WaveDiff, _BASE,
    family="hyperspectral", description="WaveDiff, Haar-domain U-Net 64/128/256, 1000 linear steps, 50 DDIM steps",
)
register_model(
    "wavediff_lazy_head_fault_tiny", WaveDiffLazyHeadFault, _TINY,
    family="hyperspectral", fault=True,
    description="fault: the first forward rebuilds the output conv, so an optimizer made before it never updates it",
)
