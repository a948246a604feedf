"""Hierarchical space-time attention: cross-scale attention with physics constraints (seed 003, AstroBio-Gen).

Re-implements the ``HierarchicalAttentionSystem`` (``models/hierarchical_attention.py``) of the
astrobiology platform of audit report 003 ("AstroBio-Gen System Hardening & Production
Readiness", 2025-10-01). The audit gives its purpose
("multi-scale temporal/spatial attention"), its architecture ("cross-scale attention with
physics constraints"), two of its classes, ``CrossScaleAttention`` and
``PhysicsConstrainedAttention``, and two findings: its masks need standardising ("requires
attention mask fixes") and all three classes define no scaling factor of their own (issue 2:
"may rely on implicit scaling in sub-modules"). It gives no sizes and no code; this file fills
the structure in as follows:

* input: ``frames`` gridded fields of ``variables`` each, ``(b, t, v, h, w)``; a patch
  embedding (conv, stride ``patch``) makes one token per cell, plus a learned time embedding;
* a pyramid of ``scales`` token grids, each average-pooled to half the side of the one before;
* each scale runs ``depth`` factorised blocks: ``TemporalAttention`` (per cell, causal over
  the frames: a boolean mask), then ``PhysicsConstrainedAttention`` (over the cells of a
  frame), then an MLP, all pre-norm with residuals;
* top-down ``CrossScaleAttention``: from the coarsest scale down, every cell of a scale
  attends to the cells of the next coarser scale in the same frame;
* a linear head turns the finest tokens back into patches: an increment that, added to each
  frame, predicts the next one (teacher forced: every frame predicts its successor).

Physics enters twice. The spatial and cross-scale attention weights are constrained by a
transport kernel: an additive bias ``-r^2 / (2 l^2)`` of the periodic distance ``r`` between
cell centres (in the key grid's cells), with a learned length ``l`` per head, so information
spreads locally as in advection-diffusion (a finite propagation prior) and a cell of one scale
finds its parent in the next. And the loss adds a conservation penalty: the domain mean of
the predicted increment (mass created or destroyed) squared, weighted by
``conservation_weight``; the task's dynamics conserve mass exactly.

Masks follow the audit's fix: the distance bias is computed in float32 (float64 in the
accuracy reference) and cast to the query dtype (``models._attention.cast_additive``); the
causal mask is boolean. Scaling is explicit: every attention module sets
``self.scaling = head_dim ** -0.5`` in ``__init__`` and passes it to ``attend``.

Compute and memory: the spatial attention at the finest scale dominates, (b * t, heads, n, n)
scores with n = (h / patch) * (w / patch) cells, one (1, heads, n, n) bias shared by all
frames; the temporal attention costs (b * n, heads, t, t); a coarser scale's spatial attention
costs 1/16 of the one below (its linear layers 1/4), the cross-scale attention n * n / 4 scores
per frame. Every block and every cross-scale step is a checkpoint stage. Base: 6.9M
parameters, 81 GFLOP per train step at batch 2 (8 frames of 64 x 64, FlopCounterMode:
matmuls and SDPA); tiny: 48k parameters, 0.08 GFLOP.

How it differs: nothing of the audited code is known beyond the above, so sizes, the
kernel form of the constraint and the penalty are ours; no dropout; the Flash/xFormers rungs
of the platform's fallback chain are left out (``models._attention.attend``: SDPA where the
build has it, matmul-softmax otherwise).

Fault twins, the audit's two findings for this system:

* ``hierarchical_attention_scale_fault_tiny`` (issue 2): no module defines its scale; the
  SDPA path (2.0+) relies on SDPA's implicit ``1/sqrt(head_dim)`` and the hand-written
  fallback (``attn_impl="math"``, and every 1.x build) applies none. On a build with SDPA it
  computes exactly what the healthy model does; where the fallback runs its outputs change
  (softmax over unscaled scores): the same seeded case gives other numbers on 1.10 than on
  2.x, which the cross-release fp32/float64 comparison of the report shows.
* ``hierarchical_attention_mask_dtype_fault_tiny`` (the mask finding, issue 1's form): the
  distance bias is built from float32 coordinates and added to the scores uncast, on the
  hand-written matmul path. In fp32 it equals the healthy model; in pure bf16/fp16 the scores
  are promoted to float32 and ``probs @ v`` fails with a dtype error; CPU autocast hides it.

Synthetic task (``advection_diffusion_batch``): periodic fields, each a mean plus a few Fourier
modes advected by a per-sample uniform velocity and damped by a per-sample diffusivity (exact
solution, so the mean, the mass, is conserved); input frames 0..t-1, target frames 1..t.
The metric is the skill over persistence, ``1 - mse(prediction) / mse(input frames)``
(higher is better; 0 is "no change", 1 is perfect).
"""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
from torch import nn

from models._attention import attend, cast_additive, causal_mask, math_attention, resolve_attn_impl
from models._base import ZooModel, at_least_float32, image_hw
from models._layers import Float32LayerNorm, Mlp
from models._registry import register_model

# --- the synthetic task ----------------------------------------------------------


def advection_diffusion_batch(gen, batch_size: int, frames: int, variables: int, h: int, w: int,
                              modes: int = 6, max_wavenumber: int = 3, max_speed: float = 1.0,
                              diffusivity: Tuple[float, float] = (0.05, 0.3)) -> torch.Tensor:
    """``frames`` periodic fields per sample, (b, frames, variables, h, w), float32.

    Each variable is a mean plus ``modes`` Fourier modes (integer wavenumbers up to
    ``max_wavenumber``, never the zero mode) of random amplitude and phase; all variables
    of a sample move with one velocity (uniform in +-``max_speed`` cells per frame on each
    axis) and decay with one diffusivity (cells^2 per frame), the exact solution of
    du/dt + u . grad(u) = kappa laplacian(u) for a uniform flow. Every number comes from
    ``gen``; the arithmetic is NumPy float64, cast to float32 once.
    """
    b, m = batch_size, modes
    kx = np.floor(gen.uniform_np((b, variables, m), 0.0, max_wavenumber + 1.0))  # (b, v, m), 0..K
    ky = np.floor(gen.uniform_np((b, variables, m), -max_wavenumber, max_wavenumber + 1.0))  # -K..K
    kx = np.where((kx == 0) & (ky == 0), 1.0, kx)  # the zero mode is the mean, set apart
    amp = gen.normal_np((b, variables, m)) / math.sqrt(m)
    phase = gen.uniform_np((b, variables, m), 0.0, 2.0 * math.pi)
    mean = gen.normal_np((b, variables), std=0.5)
    vel = gen.uniform_np((b, 2), -max_speed, max_speed)  # (b, [y, x]) cells per frame
    kappa = gen.uniform_np((b,), diffusivity[0], diffusivity[1])
    tau = np.arange(frames, dtype=np.float64)
    wave_y, wave_x = 2.0 * math.pi * ky / h, 2.0 * math.pi * kx / w  # (b, v, m) radians per cell
    decay = np.exp(-kappa[:, None, None, None] * (wave_x ** 2 + wave_y ** 2)[:, None] * tau[None, :, None, None])
    # Phase of each mode at each frame: advection shifts the argument by k . u * tau.
    shift = (wave_y * vel[:, 0, None, None] + wave_x * vel[:, 1, None, None])[:, None] * tau[None, :, None, None]
    arg = phase[:, None] - shift  # (b, t, v, m)
    ys, xs = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
    theta = (wave_y[:, None, :, :, None, None] * ys[:, None] + wave_x[:, None, :, :, None, None] * xs[None, :]
             + arg[..., None, None])  # (b, t, v, m, h, w)
    field = mean[:, None, :, None, None] + ((amp[:, None] * decay)[..., None, None] * np.cos(theta)).sum(axis=3)
    return torch.from_numpy(np.ascontiguousarray(field)).to(torch.float32)


def persistence_skill(prediction: torch.Tensor, increment: torch.Tensor, target: torch.Tensor) -> float:
    """``1 - mse(prediction) / mse(persistence)``; persistence (no change) is ``prediction - increment``."""
    pred, inc, tgt = prediction.detach().double(), increment.detach().double(), target.detach().double()
    err = float(((pred - tgt) ** 2).mean())
    base = float(((pred - inc - tgt) ** 2).mean())
    return 1.0 - err / base if base > 0 else float("nan")


# --- blocks --------------------------------------------------------------------


def periodic_sq_distance(q_grid: Tuple[int, int], k_grid: Tuple[int, int], dtype: torch.dtype,
                         device) -> torch.Tensor:
    """(nq, nk) squared periodic distance between the cell centres of two grids over one domain.

    Units are the key grid's cells (the domain is ``k_grid`` cells); a query grid twice as
    fine has centres at 0.25, 0.75... of a key cell, so a fine cell is 0.25 * sqrt(2) from
    its parent. Rows are query cells in row-major order, columns key cells.
    """
    parts = []
    for q_side, k_side in zip(q_grid, k_grid):
        q = (torch.arange(q_side, dtype=dtype, device=device) + 0.5) * (k_side / q_side)
        k = torch.arange(k_side, dtype=dtype, device=device) + 0.5
        d = (q[:, None] - k[None, :]).abs()  # (q_side, k_side)
        parts.append(torch.min(d, k_side - d) ** 2)
    dy, dx = parts
    qh, qw, kh, kw = q_grid[0], q_grid[1], k_grid[0], k_grid[1]
    return (dy[:, None, :, None] + dx[None, :, None, :]).reshape(qh * qw, kh * kw)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor], scaling: float,
            impl: str, scale_fault: bool) -> torch.Tensor:
    """``attend`` with the module's explicit scale; the scale fault twin passes none (see the docstring)."""
    if not scale_fault:
        return attend(q, k, v, mask, scaling, impl)
    if impl == "math":  # the hand-written fallback never scaled: softmax(q k^T + mask) v
        return math_attention(q, k, v, mask, scale=1.0)
    return attend(q, k, v, mask, None, impl)  # SDPA's implicit default


class TemporalAttention(nn.Module):
    """Causal self-attention over frames, per cell: (b, t, n, d) -> (b, t, n, d)."""

    def __init__(self, dim: int, heads: int, impl: str, scale_fault: bool = False):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scaling = self.head_dim ** -0.5  # explicit, the audit's fix for issue 2
        self.impl = impl
        self.scale_fault = scale_fault
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, n, d = x.shape
        seq = x.transpose(1, 2).reshape(b * n, t, d)  # one sequence of frames per cell
        q, k, v = self.qkv(seq).reshape(b * n, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        mask = causal_mask(t, t, x.device)  # (t, t) boolean: a frame sees itself and the past
        out = _attend(q, k, v, mask, self.scaling, self.impl, self.scale_fault)  # (b*n, heads, t, hd)
        out = self.proj(out.transpose(1, 2).reshape(b * n, t, d))
        return out.reshape(b, n, t, d).transpose(1, 2)


class PhysicsConstrainedAttention(nn.Module):
    """Attention of a frame's cells over cells of the same frame, biased by a learned transport kernel.

    The bias ``-r^2 / (2 l_h^2)`` (``periodic_sq_distance``, one length per head) is built in
    float32 or wider and cast to the query dtype; ``mask_dtype_fault`` builds it from
    float32 coordinates and adds it uncast. Keys and values come from ``context`` when given
    (``CrossScaleAttention``), else from ``x``.
    """

    def __init__(self, dim: int, heads: int, impl: str, init_length: float, scale_fault: bool = False,
                 mask_dtype_fault: bool = False):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scaling = self.head_dim ** -0.5  # explicit, the audit's fix for issue 2
        self.impl = impl
        self.scale_fault = scale_fault
        self.mask_dtype_fault = mask_dtype_fault
        self.q_proj = nn.Linear(dim, dim)
        self.kv_proj = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        # log of the kernel length in key cells; a constant, so the seeded init keeps it.
        self.log_length = nn.Parameter(torch.full((heads,), math.log(init_length)))

    def kernel_bias(self, q_grid: Tuple[int, int], k_grid: Tuple[int, int], dtype: torch.dtype,
                    device) -> torch.Tensor:
        """The additive (1, heads, nq, nk) bias, in ``dtype`` (the fault twin: float32 whatever ``dtype``)."""
        if self.mask_dtype_fault:
            dist2 = periodic_sq_distance(q_grid, k_grid, torch.float32, device)
            inv = 0.5 * torch.exp(-2.0 * self.log_length)  # promotes with dist2: float32 or wider
            return -dist2[None] * inv[:, None, None]
        wide = torch.float64 if dtype == torch.float64 else torch.float32  # the accuracy reference stays float64
        dist2 = periodic_sq_distance(q_grid, k_grid, wide, device)
        inv = 0.5 * torch.exp(-2.0 * self.log_length.to(wide))  # (heads,)
        bias = -dist2[None] * inv[:, None, None]  # (heads, nq, nk)
        return cast_additive(bias, dtype)

    def forward(self, x: torch.Tensor, grid: Tuple[int, int], context: Optional[torch.Tensor] = None,
                context_grid: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        # x (B, nq, d), context (B, nk, d) -> (B, nq, d); B is batch * frames
        if context is None:
            context, context_grid = x, grid
        B, nq, d = x.shape
        nk = context.shape[1]
        q = self.q_proj(x).reshape(B, nq, self.heads, self.head_dim).transpose(1, 2)  # (B, heads, nq, hd)
        k, v = self.kv_proj(context).reshape(B, nk, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        bias = self.kernel_bias(grid, context_grid, q.dtype, x.device)[None]  # (1, heads, nq, nk)
        out = _attend(q, k, v, bias, self.scaling, self.impl, self.scale_fault)
        return self.proj(out.transpose(1, 2).reshape(B, nq, d))


class CrossScaleAttention(nn.Module):
    """Top-down fusion: the cells of a scale attend to those of the next coarser scale, per frame.

    Pre-norm residual step, fine (b, t, nf, d) and coarse (b, t, nc, d) -> fine (b, t, nf, d);
    the same transport-kernel bias, in the coarse grid's cells, lets a cell find its parent.
    """

    def __init__(self, dim: int, heads: int, impl: str, init_length: float, scale_fault: bool = False,
                 mask_dtype_fault: bool = False):
        super().__init__()
        self.norm_fine = Float32LayerNorm(dim)
        self.norm_coarse = Float32LayerNorm(dim)
        self.attn = PhysicsConstrainedAttention(dim, heads, impl, init_length, scale_fault, mask_dtype_fault)
        self.scaling = self.attn.scaling  # explicit here as well (the audit lists this class)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor, fine_h: int, fine_w: int, coarse_h: int,
                coarse_w: int) -> torch.Tensor:
        b, t, nf, d = fine.shape
        nc = coarse.shape[2]
        out = self.attn(self.norm_fine(fine).reshape(b * t, nf, d), (fine_h, fine_w),
                        self.norm_coarse(coarse).reshape(b * t, nc, d), (coarse_h, coarse_w))
        return fine + out.reshape(b, t, nf, d)


class SpaceTimeBlock(nn.Module):
    """Pre-norm factorised block on (b, t, n, d): causal temporal attention, physics-constrained
    spatial attention, MLP, each with a residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, impl: str, init_length: float,
                 scale_fault: bool = False, mask_dtype_fault: bool = False):
        super().__init__()
        self.norm_t = Float32LayerNorm(dim)
        self.temporal = TemporalAttention(dim, heads, impl, scale_fault)
        self.norm_s = Float32LayerNorm(dim)
        self.spatial = PhysicsConstrainedAttention(dim, heads, impl, init_length, scale_fault, mask_dtype_fault)
        self.norm_m = Float32LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        b, t, n, d = x.shape
        x = x + self.temporal(self.norm_t(x))
        x = x + self.spatial(self.norm_s(x).reshape(b * t, n, d), (gh, gw)).reshape(b, t, n, d)
        return x + self.mlp(self.norm_m(x))


# --- model ---------------------------------------------------------------------


@dataclass(frozen=True)
class HierarchicalAttentionConfig:
    variables: int = 4  # fields per frame
    frames: int = 8  # input frames (the time embedding's length)
    patch: int = 4
    dim: int = 256
    heads: int = 8
    scales: int = 3  # token grids, each half the side of the last
    depth: int = 2  # space-time blocks per scale
    mlp_ratio: float = 4.0
    init_length: float = 1.0  # transport-kernel length at init, in key cells
    conservation_weight: float = 1.0
    attn_impl: str = "auto"
    # The synthetic task.
    modes: int = 6
    max_speed: float = 1.0  # cells per frame
    # Fault twins (see the module docstring).
    scale_fault: bool = False
    mask_dtype_fault: bool = False
    default_sizes: Tuple[int, ...] = (64,)


class HierarchicalAttentionSystem(ZooModel):
    """Multi-scale space-time transformer: next-frame increments of gridded fields."""

    size_axis = "grid side in cells, or HxW"
    non_square = True
    task_metric_name = "persistence_skill"
    task_higher_is_better = True

    def __init__(self, config: HierarchicalAttentionConfig):
        super().__init__(config)
        c = config
        if c.dim % c.heads:
            raise ValueError("dim must be divisible by heads, got dim=%d heads=%d" % (c.dim, c.heads))
        if c.scales < 1 or c.depth < 1 or c.patch < 1 or c.frames < 1 or c.variables < 1:
            raise ValueError("scales, depth, patch, frames and variables must be at least 1, got %d, %d, %d, %d, %d"
                             % (c.scales, c.depth, c.patch, c.frames, c.variables))
        if c.init_length <= 0:
            raise ValueError("init_length must be positive, got %r" % (c.init_length,))
        # The audit's hand-written mask path added the bias with matmuls; the mask fault twin keeps it.
        self.attn_impl = "math" if c.mask_dtype_fault else resolve_attn_impl(c.attn_impl)
        self.embed = nn.Conv2d(c.variables, c.dim, c.patch, stride=c.patch)
        self.time_embed = nn.Parameter(torch.zeros(c.frames, c.dim).normal_(std=0.02))
        faults = dict(scale_fault=c.scale_fault, mask_dtype_fault=c.mask_dtype_fault)
        self.stages = nn.ModuleList([
            nn.ModuleList([SpaceTimeBlock(c.dim, c.heads, c.mlp_ratio, self.attn_impl, c.init_length, **faults)
                           for _ in range(c.depth)])
            for _ in range(c.scales)
        ])
        self.cross = nn.ModuleList([CrossScaleAttention(c.dim, c.heads, self.attn_impl, c.init_length, **faults)
                                    for _ in range(c.scales - 1)])
        self.norm = Float32LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.variables * c.patch * c.patch)

    # -- sizes -----------------------------------------------------------------
    @classmethod
    def multiple(cls, config: HierarchicalAttentionConfig) -> int:
        """Each grid side must be a multiple of this: a patch per cell, halved ``scales - 1`` times."""
        return config.patch * 2 ** (config.scales - 1)

    @classmethod
    def size_error(cls, config: HierarchicalAttentionConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)
        if reason is None:
            m = cls.multiple(config)
            bad = [side for side in image_hw(size) if side % m]
            if bad:
                reason = "each grid side must be a multiple of %d (patch %d, %d scales), got %r" % (
                    m, config.patch, config.scales, size)
        return reason

    def _check(self, frames: torch.Tensor) -> None:
        c = self.config
        m = self.multiple(c)
        if (frames.dim() != 5 or frames.shape[2] != c.variables or not 1 <= frames.shape[1] <= c.frames
                or frames.shape[3] % m or frames.shape[4] % m or min(frames.shape[3:]) < m):
            raise ValueError("expected frames (b, t <= %d, %d, h, w) with h, w multiples of %d, got %s"
                             % (c.frames, c.variables, m, tuple(frames.shape)))

    # -- forward -------------------------------------------------------------------
    def forward(self, frames: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """frames (b, t, v, h, w) -> (prediction, increment), each (b, t, v, h, w): frame i + 1 from frames <= i."""
        self._check(frames)
        c = self.config
        b, t, nv, h, w = frames.shape
        p, d = c.patch, c.dim
        gh, gw = h // p, w // p
        x = self.embed(frames.reshape(b * t, nv, h, w))  # (b*t, d, gh, gw)
        grids = [(gh, gw)]
        maps = [x]
        for _ in range(1, c.scales):
            # 2x2 average pooling as a reshape and a mean: 1.10 has no bf16 avg_pool2d on the CPU.
            ph, pw = grids[-1][0] // 2, grids[-1][1] // 2
            maps.append(maps[-1].reshape(b * t, d, ph, 2, pw, 2).mean(dim=(3, 5)))  # (b*t, d, gh / 2^s, gw / 2^s)
            grids.append((ph, pw))
        time = self.time_embed[:t].to(x.dtype).view(1, t, 1, d)
        levels = [m.flatten(2).transpose(1, 2).reshape(b, t, -1, d) + time for m in maps]  # (b, t, n_s, d)
        for s, blocks in enumerate(self.stages):
            for block in blocks:
                levels[s] = self.checkpointed(block, levels[s], grids[s][0], grids[s][1])
        for s in range(c.scales - 2, -1, -1):  # top-down: each scale takes in the coarser one
            levels[s] = self.checkpointed(self.cross[s], levels[s], levels[s + 1], grids[s][0], grids[s][1],
                                          grids[s + 1][0], grids[s + 1][1])
        out = self.head(self.norm(levels[0]))  # (b, t, n0, v*p*p)
        increment = out.reshape(b, t, gh, gw, nv, p, p).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, t, nv, h, w)
        return frames + increment, increment

    # -- the interface -------------------------------------------------------------
    def task_batch(self, batch_size: int, size, gen):
        self.check_size(size)
        c = self.config
        h, w = image_hw(size)
        fields = advection_diffusion_batch(gen, batch_size, c.frames + 1, c.variables, h, w, c.modes,
                                           max_speed=c.max_speed)
        return (fields[:, :-1].contiguous(),), fields[:, 1:].contiguous()

    def example_inputs(self, batch_size: int, size, gen):
        return self.task_batch(batch_size, size, gen)

    def loss(self, outputs, target: torch.Tensor) -> torch.Tensor:
        prediction, increment = outputs
        pred = at_least_float32(prediction)
        mse = ((pred - target.to(device=pred.device, dtype=pred.dtype)) ** 2).mean()
        # Conservation: the task's dynamics neither create nor destroy mass (the domain mean).
        drift = at_least_float32(increment).mean(dim=(-2, -1))  # (b, t, v)
        return mse + self.config.conservation_weight * (drift ** 2).mean()

    def task_metric(self, outputs, target: torch.Tensor) -> float:
        prediction, increment = outputs
        return persistence_skill(prediction, increment, target)


# --- sizes ---------------------------------------------------------------------

#: tiny: 2 fields, 4 frames, 16x16 grid, patch 2 (8x8, 4x4, 2x2 cells), width 32, 2 heads, one block per scale.
_TINY = dict(variables=2, frames=4, patch=2, dim=32, heads=2, scales=3, depth=1, mlp_ratio=2.0,
             default_sizes=(16,))

# --- registrations -------------------------------------------------------------

register_model(
    "hierarchical_attention_tiny", HierarchicalAttentionSystem, HierarchicalAttentionConfig(**_TINY),
    family="hierarchical_attention",
    description="3-scale space-time attention, width 32, 4 frames of 2 fields on 16x16, transport-kernel bias",
)
register_model(
    "hierarchical_attention_base", HierarchicalAttentionSystem, HierarchicalAttentionConfig(),
    family="hierarchical_attention",
    description="3 scales x 2 space-time blocks, width 256, 8 heads, 8 frames of 4 fields on 64x64 (patch 4)",
)
register_model(
    "hierarchical_attention_scale_fault_tiny", HierarchicalAttentionSystem,
    HierarchicalAttentionConfig(scale_fault=True, **_TINY),
    family="hierarchical_attention", fault=True,
    description="no explicit attention scale: SDPA's implicit one, none on the matmul fallback (1.x, math)",
)
register_model(
    "hierarchical_attention_mask_dtype_fault_tiny", HierarchicalAttentionSystem,
    HierarchicalAttentionConfig(mask_dtype_fault=True, **_TINY),
    family="hierarchical_attention", fault=True,
    description="transport-kernel bias built in float32 and never cast to the query dtype: bf16/fp16 dtype error",
)
