"""CSWin v2 generator: RGB to a 31-band hyperspectral cube with cross-shaped windows (seed 000).

Re-implements the generator (``generator_v3.py``) of the "CSWIN v2" GAN in the
hyperspectral imaging toolkit of audit report 000 ("Model Audit Summary - Action Plan",
2025-11-01: 24 bugs in five models; the generator's are an unconditional clone in
``NaNSafeAttention`` and a mutated ``iteration_count`` buffer, both below): a convolutional stem, a small
U-shaped stack of CSWin transformer blocks (a strided-conv merge between levels, a
transposed-conv split back up, skip fusion by concatenation and a 1x1 conv), and a 3x3
head to 31 bands. Each block's attention is cross-shaped-window self-attention: half of
the heads attend inside horizontal stripes ``split_size`` rows high and the full width,
the other half inside vertical stripes, each branch with LePE (a depthwise 3x3 conv on
the values of the window) as positional encoding. The attention sits inside
``NaNSafeAttention``, the toolkit's guard that zeroes non-finite attention outputs.

How it differs: only the generator is built (no discriminator, no adversarial or
perceptual losses); training is L1 reconstruction, computed in float32. A learned 1x1
spectral projection of the RGB is added to the head's output, since most of the
RGB-to-spectrum map is linear. Stripe widths, depths and widths are config fields and
the audit's NaN counters and ``iteration_count`` buffer are left out of the healthy
model. Sizes are a square side or ``"HxW"``: each side must be a multiple of every
level's stripe width at that level's scale (``size_error``).

The audit's issue #3 is that ``NaNSafeAttention`` clones every attention output before
scrubbing it, about twice the attention memory. The healthy guard here only touches the
tensor when it holds a non-finite value (and then with an out-of-place ``nan_to_num``);
``cswin_v2_clone_fault_*`` reproduces the unconditional clone (config flag
``clone_always``). The harness should see identical outputs and gradients but a higher
peak memory (``torch.cuda.max_memory_allocated``) in train and eval; on the CPU the
profiler shows one extra attention-sized allocation per block held by the guard. The
guard runs inside a ``record_function("nan_safe_guard")`` scope so a memory profile can
attribute its allocations.

Fault twin ``cswin_v2_iteration_fault_tiny`` keeps the audit's ``iteration_count`` buffer
mutation (generator_v3.py lines 295 and 353): a buffer counting forward calls, bumped
in every forward, eval included, and read by a schedule (the head's output is faded in
over ``fade_in_iters`` calls), so two identical eval calls give different cubes and
``state_dict()`` changes under ``torch.no_grad()``.

The synthetic task is the CSWin task of ``models._spectral`` (``spectral_task_batch``,
shared with WaveDiff): cubes whose pixels mix a few smooth spectra (Gaussian bumps over
31 bands) with abundances smooth in space, projected to RGB through a fixed smooth
3 x 31 camera response. Input RGB, target cube; the metric is PSNR in dB (higher is
better, data range 1). Attention goes through ``models._attention.attend``.
"""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.profiler import record_function

from models._attention import attend, merge_heads, split_heads, window_merge, window_partition
from models._base import ZooModel, at_least_float32, image_hw
from models._registry import register_model
from models._spectral import SPECTRAL_BANDS, psnr_db, spectral_task_batch

# --- blocks --------------------------------------------------------------------

class StripeAttentionBranch(nn.Module):
    """Self-attention inside horizontal (``axis=0``) or vertical (``axis=1``) stripes, with LePE."""

    def __init__(self, dim: int, heads: int, split_size: int, axis: int):
        super().__init__()
        self.heads = heads
        self.split_size = split_size
        self.axis = axis
        # LePE: positional information from a depthwise conv over each window's values.
        self.lepe = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # each (b, h, w, c)
        b, h, w, c = q.shape
        wh, ww = (self.split_size, w) if self.axis == 0 else (h, self.split_size)
        qw, kw, vw = (window_partition(t, wh, ww) for t in (q, k, v))  # (b*nw, wh*ww, c)
        lepe = self.lepe(vw.transpose(1, 2).reshape(-1, c, wh, ww))  # (b*nw, c, wh, ww)
        out = attend(*(split_heads(t, self.heads) for t in (qw, kw, vw)), scale_scores=True)  # (b*nw, heads, wh*ww, d)
        out = merge_heads(out) + lepe.flatten(2).transpose(1, 2)  # (b*nw, wh*ww, c)
        return window_merge(out, b, h, w, wh, ww)


class CSWinAttention(nn.Module):
    """Cross-shaped window attention: half the heads on row stripes, half on column stripes."""

    def __init__(self, dim: int, heads: int, split_size: int):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.rows = StripeAttentionBranch(dim // 2, heads // 2, split_size, axis=0)
        self.cols = StripeAttentionBranch(dim // 2, heads // 2, split_size, axis=1)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, h, w, c)
        half = x.shape[-1] // 2
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        rows = self.rows(q[..., :half], k[..., :half], v[..., :half])
        cols = self.cols(q[..., half:], k[..., half:], v[..., half:])
        return self.proj(torch.cat([rows, cols], dim=-1))  # (b, h, w, c)


class NaNSafeAttention(nn.Module):
    """Run ``attn`` and zero any NaN or infinity in its output.

    The healthy guard hands the attention output on untouched, the same tensor, when it
    is all finite (the common case) and only then pays for an out-of-place
    ``nan_to_num``. With ``clone_always`` it reproduces the audit's issue #3: every
    output is cloned and scrubbed in place, one more attention-sized tensor per block
    (plus, on builds whose in-place ``nan_to_num_`` saves its input, one more for backward).
    """

    def __init__(self, attn: nn.Module, clone_always: bool = False):
        super().__init__()
        self.attn = attn
        self.clone_always = clone_always

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.attn(x)
        with record_function("nan_safe_guard"):
            if self.clone_always:
                out = out.clone()
                out.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
            elif not bool(torch.isfinite(out).all()):
                out = torch.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
        return out


class CSWinBlock(nn.Module):
    """Pre-norm transformer block: guarded cross-shaped attention, then a GELU MLP."""

    def __init__(self, dim: int, heads: int, split_size: int, mlp_ratio: float, clone_always: bool):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = NaNSafeAttention(CSWinAttention(dim, heads, split_size), clone_always)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, c, h, w)
        t = x.permute(0, 2, 3, 1)  # (b, h, w, c)
        t = t + self.attn(self.norm1(t))
        t = t + self.mlp(self.norm2(t))
        return t.permute(0, 3, 1, 2).contiguous()  # (b, c, h, w)


# --- model ---------------------------------------------------------------------

@dataclass(frozen=True)
class CSWinGeneratorConfig:
    in_channels: int = 3
    out_channels: int = SPECTRAL_BANDS
    dims: Tuple[int, ...] = (48, 96, 192)  # per level; the last is the bottleneck
    depths: Tuple[int, ...] = (2, 2, 2)  # blocks per encoder level; the decoder mirrors all but the last
    heads: Tuple[int, ...] = (2, 4, 8)
    split_sizes: Tuple[int, ...] = (2, 4, 8)  # stripe width per level
    mlp_ratio: float = 2.0
    clone_always: bool = False  # the audit's unconditional clone in NaNSafeAttention
    default_sizes: Tuple[int, ...] = (128,)


def _side_multiple(config: CSWinGeneratorConfig) -> int:
    # Level i runs at side / 2**i and needs it divisible by that level's stripe width.
    m = 1
    for i, split in enumerate(config.split_sizes):
        step = split * 2 ** i
        m = m * step // math.gcd(m, step)
    return m


class CSWinGenerator(ZooModel):
    """U-shaped CSWin transformer generator from RGB (b, 3, h, w) to a cube (b, 31, h, w)."""

    size_axis = "image side in pixels, or HxW"
    non_square = True
    task_metric_name = "psnr_db"
    task_higher_is_better = True

    def __init__(self, config: CSWinGeneratorConfig):
        super().__init__(config)
        c = config
        levels = len(c.dims)
        if levels < 1 or not (len(c.depths) == len(c.heads) == len(c.split_sizes) == levels):
            raise ValueError("dims, depths, heads and split_sizes need one entry per level, got %r, %r, %r, %r"
                             % (c.dims, c.depths, c.heads, c.split_sizes))
        for dim, heads in zip(c.dims, c.heads):
            if heads < 2 or heads % 2 or dim % heads:
                raise ValueError("each level needs an even head count >= 2 dividing its width, got %d heads for "
                                 "width %d" % (heads, dim))
        if min(c.depths) < 1 or min(c.split_sizes) < 1:
            raise ValueError("depths and split_sizes must be >= 1, got %r and %r" % (c.depths, c.split_sizes))
        # Stored, not inferred from the head conv later (the WaveDiff audit's issue #5).
        self.out_channels = c.out_channels

        def stage(level: int, depth: int) -> nn.Sequential:
            return nn.Sequential(*[
                CSWinBlock(c.dims[level], c.heads[level], c.split_sizes[level], c.mlp_ratio, c.clone_always)
                for _ in range(depth)
            ])

        self.stem = nn.Conv2d(c.in_channels, c.dims[0], 3, padding=1)
        self.encoder = nn.ModuleList([stage(i, c.depths[i]) for i in range(levels)])
        self.down = nn.ModuleList([nn.Conv2d(c.dims[i], c.dims[i + 1], 3, stride=2, padding=1)
                                   for i in range(levels - 1)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(c.dims[i + 1], c.dims[i], 2, stride=2)
                                 for i in range(levels - 1)])
        self.fuse = nn.ModuleList([nn.Conv2d(2 * c.dims[i], c.dims[i], 1) for i in range(levels - 1)])
        self.decoder = nn.ModuleList([stage(i, c.depths[i]) for i in range(levels - 1)])
        self.head = nn.Conv2d(c.dims[0], c.out_channels, 3, padding=1)
        self.spectral_skip = nn.Conv2d(c.in_channels, c.out_channels, 1)

    @classmethod
    def size_error(cls, config: CSWinGeneratorConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)
        multiple = _side_multiple(config)
        for side in (image_hw(size) if reason is None else ()):
            if side % multiple:
                note = str(side) if side == size else "%d (of size %r)" % (side, size)
                return "image side must be a multiple of %d (stripe widths %s over %d levels), got %s" % (
                    multiple, config.split_sizes, len(config.dims), note)
        return reason

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # (b, 3, h, w) -> (b, 31, h, w)
        return self.head(self.features(rgb)) + self.spectral_skip(rgb)  # (b, 31, h, w)

    def features(self, rgb: torch.Tensor) -> torch.Tensor:  # (b, 3, h, w) -> (b, c0, h, w)
        """Validate ``rgb`` and run the stem and the U-shaped stack (everything but the two heads)."""
        if rgb.dim() != 4 or rgb.shape[1] != self.config.in_channels:
            raise ValueError("expected rgb of shape (b, %d, h, w), got %s"
                             % (self.config.in_channels, tuple(rgb.shape)))
        for side in rgb.shape[-2:]:
            reason = self.size_error(self.config, int(side))
            if reason is not None:
                raise ValueError(reason)
        x = self.stem(rgb)  # (b, c0, h, w)
        skips = []
        for i, stage in enumerate(self.encoder):
            x = self.checkpointed(stage, x)
            if i < len(self.down):
                skips.append(x)
                x = self.down[i](x)  # (b, c_{i+1}, h / 2**(i+1), w / 2**(i+1))
        for i in reversed(range(len(self.decoder))):
            x = self.fuse[i](torch.cat([self.up[i](x), skips[i]], dim=1))  # (b, c_i, h / 2**i, w / 2**i)
            x = self.checkpointed(self.decoder[i], x)
        return x

    def example_inputs(self, batch_size: int, size, gen):
        self.check_size(size)
        return self.task_batch(batch_size, size, gen)

    def task_batch(self, batch_size: int, size, gen):
        self.check_size(size)
        rgb, cube = spectral_task_batch(batch_size, size, gen, bands=self.out_channels)
        return (rgb,), cube

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(at_least_float32(outputs), at_least_float32(target))

    def task_metric(self, outputs: torch.Tensor, target: torch.Tensor) -> float:
        return psnr_db(outputs, target)


class CSWinIterationCountFault(CSWinGenerator):
    """Fault twin of the audit's ``iteration_count`` buffer mutation (generator_v3.py lines 295, 353).

    A registered buffer counts forward calls and is bumped in place by every forward,
    in eval and under ``torch.no_grad()`` too, and a schedule reads it: the head's output
    is faded in as ``min(1, (iteration_count + 1) / fade_in_iters)``. Two identical eval
    calls therefore return different cubes and leave a different ``state_dict()``
    behind (the weights themselves never change). The harness flags it as an eval
    forward that changed a buffer, with outputs differing between two identical calls.
    """

    #: Length of the fade-in schedule, in forward calls.
    fade_in_iters = 1000

    def __init__(self, config: CSWinGeneratorConfig):
        super().__init__(config)
        self.register_buffer("iteration_count", torch.zeros((), dtype=torch.long))

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # (b, 3, h, w) -> (b, 31, h, w)
        x = self.features(rgb)
        # The count stays int64 under .to(dtype); the fade follows the features' dtype.
        fade = ((self.iteration_count + 1).to(x.dtype) / self.fade_in_iters).clamp(max=1.0)
        with torch.no_grad():
            self.iteration_count += 1  # the bug: every call, not once per optimizer step in training
        return fade * self.head(x) + self.spectral_skip(rgb)


# --- sizes ---------------------------------------------------------------------

_TINY = CSWinGeneratorConfig(dims=(16, 32), depths=(1, 1), heads=(2, 2), split_sizes=(2, 2), default_sizes=(16,))
_BASE = CSWinGeneratorConfig()
_CLONE_FAULT_TINY = CSWinGeneratorConfig(dims=(16, 32), depths=(1, 1), heads=(2, 2), split_sizes=(2, 2),
                                         default_sizes=(16,), clone_always=True)
_CLONE_FAULT_BASE = CSWinGeneratorConfig(clone_always=True)

# --- registrations -------------------------------------------------------------

register_model(
    "cswin_v2_tiny", CSWinGenerator, _TINY,
    family="hyperspectral", description="CSWin v2 generator, two levels of width 16/32, one block each",
)
register_model(
    "cswin_v2_base", CSWinGenerator, _BASE,
    family="hyperspectral", description="CSWin v2 generator, three levels 48/96/192, stripes 2/4/8, 128 px",
)
register_model(
    "cswin_v2_clone_fault_tiny", CSWinGenerator, _CLONE_FAULT_TINY,
    family="hyperspectral", fault=True,
    description="audit #3: NaNSafeAttention clones every attention output (about 2x attention memory)",
)
register_model(
    "cswin_v2_clone_fault_base", CSWinGenerator, _CLONE_FAULT_BASE,
    family="hyperspectral", fault=True,
    description="audit #3 at base size: unconditional clone in NaNSafeAttention",
)
register_model(
    "cswin_v2_iteration_fault_tiny", CSWinIterationCountFault, _TINY,
    family="hyperspectral", fault=True,
    description="fault: an iteration_count buffer bumped by every forward (eval too) drives a fade-in schedule",
)
