"""HSIFusionNet: a spatial-spectral fusion transformer from RGB to 31 bands (seed 000).

Re-implements HSIFusionNet v2.5.2 (``hsifusion_v252_complete.py``) of the hyperspectral
toolkit of audit report 000 ("Model Audit Summary - Action Plan", 2025-11-01: 24 bugs in
five models; HSIFusionNet's are validation by ``assert``, silent index clamping,
``factor_pair`` on primes and a hard-coded image-size limit), RGB (b, 3, h, w) to a 31-band
cube (b, 31, h, w). Every block runs top-k sparse spatial self-attention inside windows
beside spectral self-attention (the channels are the tokens, MST-style, with
L2-normalised queries and keys and a learned temperature) and fuses the two with a
linear layer. The spatial attention attends sparsely the way the original does: per
window and head, the ``keep = ceil((1 - sparsity_ratio) * window tokens)`` keys with the
highest mean score over the window's queries are gathered by index and the queries
attend densely to them (``models._attention.topk_key_attention``, shared with SHARP).

The window layout of each side comes from ``factor_pair(side)``: the divisor pair
closest to the square root, so windows tile the image exactly. A prime side has only
the pair ``(1, side)``: one window spans the whole side (we fall back to global
attention rather than pad). The audit's ``factor_pair`` fell through for primes and
returned a pair whose product is not the side; fault twin ``hsifusion_prime_fault_tiny``
keeps it. Sizes are a square side or ``"HxW"`` (each side factored on its own, so a
window is ``factor_pair(h)[1] x factor_pair(w)[1]`` tokens). Windows are quadratic in
memory, so ``size_error`` rejects sizes whose window would exceed ``max_window_tokens``
(and sides above ``max_size``, the audit's hard-coded limit made a config field).

How it differs from the original: compact widths and depths, no CUDA kernels, no
caches or throttled warnings, and the key choice per window rather than per query
(one top-k per window and head instead of one per token: the same sparsity pattern
class at a fraction of the CPU cost).

Two more fault twins, of the accuracy check's two fault classes: in
``hsifusion_half_norm_fault_tiny`` the spectral attention scales its logits after the matrix
product by one factor per head, sqrt(sum q^2 * sum k^2) / d over all its d queries and keys
(in exact arithmetic the root of the product of their mean squared norms: logits on the
healthy cosine's scale, and bf16 passes on every release where the healthy model's does),
taken in the tensors' own dtype: the product of the two sums (1.4e3 to 4.7e3 each at 32 px)
is 40 to 230 times past fp16's 65504, so in fp16 and amp_fp16 every logit is 0, the
attention uniform and its temperature's gradient exactly zero, which the accuracy check
fails wherever fp16 runs (``accuracy.zeroed``); in ``hsifusion_detached_fault_tiny`` the
spectral temperature is used detached, so that parameter never gets a gradient (in the fp32
reference too).

The synthetic task and metric are the MSWR task of ``models._spectral`` (through
``SpectralReconstructionModel``): RGB seen through a fixed camera response, target the
smooth 31-band cube, MRAE loss, PSNR in dB.
"""
import math
from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch
from torch import nn

from models._attention import merge_heads, split_heads, topk_key_attention, window_merge, window_partition
from models._base import image_hw
from models._layers import Float32LayerNorm, Mlp
from models._registry import register_model
from models._spectral import SpectralReconstructionModel, side_note

# --- helpers -------------------------------------------------------------------

def factor_pair(n: int) -> Tuple[int, int]:
    """``(a, b)`` with ``a * b == n``, ``a <= b`` and ``a`` the divisor nearest ``sqrt(n)``.

    A prime ``n`` gives ``(1, n)``: a single window spanning the whole side.
    """
    a = math.isqrt(n)
    while n % a:
        a -= 1
    return a, n // a


def legacy_factor_pair(n: int) -> Tuple[int, int]:
    """The audited v2.5.2 ``factor_pair``: for a prime it falls through to ``(isqrt, isqrt)``.

    The product is then not ``n`` (``(4, 4)`` for 17), so the window partition fails.
    """
    for a in range(int(math.sqrt(n)), 1, -1):
        if n % a == 0:
            return a, n // a
    root = int(math.sqrt(n))
    return root, root


# --- blocks --------------------------------------------------------------------

class TopKWindowAttention(nn.Module):
    """Multi-head self-attention inside windows, each query keeping its top-k keys."""

    def __init__(self, dim: int, heads: int, sparsity_ratio: float):
        super().__init__()
        self.heads, self.sparsity_ratio = heads, sparsity_ratio
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, wh: int, ww: int) -> torch.Tensor:  # (b, h, w, c)
        b, h, w, c = x.shape
        windows = window_partition(self.qkv(x), wh, ww)  # (B, n, 3c)
        q, k, v = (split_heads(t, self.heads) for t in windows.chunk(3, dim=-1))  # (B, H, n, d)
        keep = max(1, int(math.ceil(wh * ww * (1.0 - self.sparsity_ratio))))
        out = topk_key_attention(q, k, v, keep, self.scale)  # (B, H, n, d)
        out = window_merge(merge_heads(out), b, h, w, wh, ww)
        return self.proj(out)


class SpectralAttention(nn.Module):
    """Self-attention across channels (spectral tokens) over all pixels, MST-style."""

    def __init__(self, dim: int, heads: int, fault: str = ""):
        super().__init__()
        self.heads, self.fault = heads, fault
        self.qkv = nn.Linear(dim, 3 * dim)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, h, w, c)
        b, h, w, c = x.shape
        tokens = self.qkv(x).reshape(b, h * w, 3 * c)
        # (b, H, d, n): each channel of a head is one token described by all pixels.
        q, k, v = (split_heads(t, self.heads).transpose(-2, -1) for t in tokens.chunk(3, dim=-1))
        temperature = self.temperature.detach() if self.fault == "detached" else self.temperature
        if self.fault == "half_norm":
            # The fault: one scale per head, sqrt(mean |q_i|^2 * mean |k_j|^2), taken after the
            # product in the tensors' own dtype as sqrt(sum * sum) / d: the product of the sums
            # over all the head's queries and keys leaves fp16's range.
            d = q.shape[-2]
            norms = (q * q).sum(-1, keepdim=True).sum(-2, keepdim=True) * (k * k).sum(-1, keepdim=True).sum(
                -2, keepdim=True)  # (b, H, 1, 1)
            logits = (q @ k.transpose(-2, -1)) / norms.sqrt() * d
        else:
            q = nn.functional.normalize(q, dim=-1)
            k = nn.functional.normalize(k, dim=-1)
            logits = q @ k.transpose(-2, -1)  # (b, H, d, d)
        attn = torch.softmax(logits * temperature, dim=-1)
        out = merge_heads((attn @ v).transpose(-2, -1))  # (b, n, c)
        return self.proj(out.reshape(b, h, w, c))


class FusionBlock(nn.Module):
    """Pre-norm block: spatial top-k and spectral attention fused linearly, then an MLP."""

    def __init__(self, dim: int, heads: int, sparsity_ratio: float, mlp_ratio: float, fault: str = ""):
        super().__init__()
        self.norm1 = Float32LayerNorm(dim)
        self.spatial = TopKWindowAttention(dim, heads, sparsity_ratio)
        self.spectral = SpectralAttention(dim, heads, fault)
        self.fuse = nn.Linear(2 * dim, dim)
        self.norm2 = Float32LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, window: Tuple[int, int]) -> torch.Tensor:  # (b, h, w, c)
        y = self.norm1(x)
        x = x + self.fuse(torch.cat([self.spatial(y, window[0], window[1]), self.spectral(y)], dim=-1))
        return x + self.mlp(self.norm2(x))


# --- model ---------------------------------------------------------------------

@dataclass(frozen=True)
class HSIFusionConfig:
    dim: int = 64
    depth: int = 6
    heads: int = 4
    sparsity_ratio: float = 0.5  # fraction of each window's keys dropped, in [0, 1)
    mlp_ratio: float = 2.0
    max_window_tokens: int = 4096  # a prime side s needs one s x s window
    max_size: int = 4096
    in_channels: int = 3
    bands: int = 31
    default_sizes: Tuple[int, ...] = (128,)
    #: Fault twins only: "half_norm" or "detached" (see the module docstring).
    fault: str = ""


class HSIFusionNet(SpectralReconstructionModel):
    """Spatial-spectral fusion transformer, RGB (b, 3, h, w) -> cube (b, 31, h, w)."""

    #: How a side is split into (windows, window side); the fault twin swaps it.
    factor_pair = staticmethod(factor_pair)

    def __init__(self, config: HSIFusionConfig):
        super().__init__(config)
        c = config
        if not 0.0 <= c.sparsity_ratio < 1.0:
            raise ValueError("sparsity_ratio must be in [0, 1), got %r" % (c.sparsity_ratio,))
        if c.heads < 1 or c.dim % c.heads:
            raise ValueError("dim must be a multiple of heads, got dim %d, heads %d" % (c.dim, c.heads))
        if c.depth < 1 or c.max_window_tokens < 1:
            raise ValueError("depth and max_window_tokens must be >= 1, got %d and %d"
                             % (c.depth, c.max_window_tokens))
        self.stem = nn.Conv2d(c.in_channels, c.dim, 3, padding=1)
        self.blocks = nn.ModuleList([FusionBlock(c.dim, c.heads, c.sparsity_ratio, c.mlp_ratio, c.fault)
                                     for _ in range(c.depth)])
        self.norm = Float32LayerNorm(c.dim)
        self.head = nn.Conv2d(c.dim, c.bands, 3, padding=1)
        self.rgb_proj = nn.Conv2d(c.in_channels, c.bands, 1)

    @classmethod
    def side_error(cls, config: HSIFusionConfig, side: int, size) -> Optional[str]:
        if side > config.max_size:
            return "image side must be at most max_size=%d, got %s" % (config.max_size, side_note(side, size))
        return None

    @classmethod
    def size_error(cls, config: HSIFusionConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)  # the per-side rules (side_error)
        if reason is None:
            h, w = image_hw(size)
            wh, ww = cls.factor_pair(h)[1], cls.factor_pair(w)[1]
            if wh * ww > config.max_window_tokens:
                reason = ("image size %s gives %dx%d windows (%d tokens), above max_window_tokens=%d"
                          % (size, wh, ww, wh * ww, config.max_window_tokens))
        return reason

    def window(self, h: int, w: int) -> Tuple[int, int]:
        """The window (height, width) in tokens for an h x w map."""
        return self.factor_pair(h)[1], self.factor_pair(w)[1]

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # (b, 3, h, w) -> (b, bands, h, w)
        self._check_rgb(rgb)
        window = self.window(rgb.shape[-2], rgb.shape[-1])
        x = self.stem(rgb).permute(0, 2, 3, 1)  # (b, h, w, c)
        for block in self.blocks:
            x = self.checkpointed(block, x, window)
        x = self.norm(x).permute(0, 3, 1, 2)  # (b, c, h, w)
        return self.head(x) + self.rgb_proj(rgb)


class HSIFusionPrimeFault(HSIFusionNet):
    """Fault twin of the audit's ``factor_pair`` bug (hsifusion_v252 lines 120-127).

    For a prime side the legacy ``factor_pair`` returns ``(isqrt(n), isqrt(n))``,
    whose product is not the side. ``size_error`` uses the same function, so it
    accepts sizes 17 or 31 (it claims the windows are 4x4 or 5x5) and the forward
    pass then fails in the window partition with a reshape RuntimeError: the harness
    sees an error at sizes the model declared valid, where the healthy model runs.
    """

    factor_pair = staticmethod(legacy_factor_pair)


# --- sizes ---------------------------------------------------------------------

_TINY = HSIFusionConfig(dim=16, depth=2, heads=2, sparsity_ratio=0.5, max_window_tokens=1024, default_sizes=(32,))
_BASE = HSIFusionConfig()

# --- registrations -------------------------------------------------------------

register_model(
    "hsifusion_tiny", HSIFusionNet, _TINY,
    family="hyperspectral", description="HSIFusionNet: top-k window + spectral attention fusion, dim 16, 2 blocks",
)
register_model(
    "hsifusion_base", HSIFusionNet, _BASE,
    family="hyperspectral", description="HSIFusionNet v2.5.2-sized: dim 64, 6 fusion blocks, sparsity 0.5",
)
register_model(
    "hsifusion_prime_fault_tiny", HSIFusionPrimeFault, _TINY,
    family="hyperspectral", fault=True,
    description="fault: legacy factor_pair breaks the window partition at prime sides it accepts",
)
register_model(
    "hsifusion_half_norm_fault_tiny", HSIFusionNet, replace(_TINY, fault="half_norm"),
    family="hyperspectral", fault=True,
    description="fault: spectral logits scaled by a product of sums that leaves fp16's range: all 0",
)
register_model(
    "hsifusion_detached_fault_tiny", HSIFusionNet, replace(_TINY, fault="detached"),
    family="hyperspectral", fault=True,
    description="fault: the spectral temperature is used detached and never gets a gradient",
)
