"""HSIFusionNet and SHARP: sparse-attention transformers from RGB to 31 bands (seed 000).

Re-implements two models of the hyperspectral toolkit audited in ``shared/seeds/000_*``
(``hsifusion_v252_complete.py`` and ``sharp_v322_hardened.py``); both map an RGB image
(b, 3, h, w) to a 31-band cube (b, 31, h, w) and share this module's attention helpers.

Both attend sparsely the way the originals do: per window and head, the ``keep`` keys
with the highest mean score over the window's queries are gathered by index and the
queries attend densely to them (``topk_key_attention``).

* HSIFusionNet v2.5.2, a spatial-spectral fusion transformer: every block runs top-k
  sparse spatial self-attention inside windows (keeping ``1 - sparsity_ratio`` of each
  window's keys) beside spectral self-attention (the channels are the tokens,
  MST-style, with L2-normalised queries and keys and a learned temperature) and fuses
  the two with a linear layer. The window layout of each side comes from
  ``factor_pair(side)``: the divisor pair closest to the square root, so windows tile
  the image exactly. A prime side has only the pair ``(1, side)``: one window spans
  the whole side (we fall back to global attention rather than pad). The audit's
  ``factor_pair`` fell through for primes and returned a pair whose product is not the
  side; fault twin ``hsifusion_prime_fault_tiny`` keeps it. Windows are quadratic in
  memory, so ``size_error`` rejects sides whose window would exceed
  ``max_window_tokens`` (and sides above ``max_size``, the audit's hard-coded limit
  made a config field).
* SHARP v3.2.2, sparse hierarchical attention: a U-Net (strided conv down, transposed
  conv up, any side works) whose blocks attend inside ``window x window`` windows to
  the window's own tokens plus one mean-pooled summary token per window of the whole
  image (the coarse level of the hierarchy), keeping at most ``k_cap`` keys. A window
  larger than the map shrinks to it. When the window does not divide the map, the
  block falls back to local window attention over a zero-padded map with the padded
  keys masked (summaries of padded windows would be wrong); when ``k_cap`` is at
  least the number of keys, top-k is skipped (dense). Both switches are logged at
  debug level (the audit asked for visibility) and recorded in each attention
  module's ``last_mode``. Fault twin ``sharp_assert_fault_tiny`` validates with
  ``assert`` as the audit's line 467 did.

How they differ from the originals: compact widths and depths, no CUDA kernels, no
caches or throttled warnings, and the key choice per window rather than per query
(one top-k per window and head instead of one per token: the same sparsity pattern
class at a fraction of the CPU cost).

The synthetic task and metric are those of ``models.mswr``: RGB seen through a fixed
camera response, target the smooth 31-band cube, MRAE loss, PSNR in dB.
"""
import logging
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn

from models._registry import register_model
from models.mswr import SpectralReconstructionModel

_LOG = logging.getLogger(__name__)

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


def window_partition(x: torch.Tensor, wh: int, ww: int) -> torch.Tensor:
    """(b, h, w, c) -> (b * nh * nw, wh * ww, c) for windows of ``wh x ww`` tokens."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, wh * ww, c)


def window_merge(windows: torch.Tensor, b: int, h: int, w: int, wh: int, ww: int) -> torch.Tensor:
    """Inverse of ``window_partition``: (b * nh * nw, wh * ww, c) -> (b, h, w, c)."""
    c = windows.shape[-1]
    x = windows.reshape(b, h // wh, w // ww, wh, ww, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def topk_key_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: int, scale: float,
                       key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Attention of q (B, H, n, d) over the ``keep`` most relevant of L keys (B, H, L, d).

    A key's relevance is its mean score over the window's queries (``mean(q) . k``,
    exact because scores are linear in q); the chosen keys and values are gathered by
    index, as the originals do, and the queries attend densely to them. The choice is
    not differentiable (made on detached tensors); the attention over the kept keys is.
    ``key_mask`` (B or 1, 1, 1, L), True for keys to ignore (padding), ranks them last
    and masks them out. Returns (B, H, n, d).
    """
    B, H, L, d = k.shape
    if keep < L:
        relevance = q.detach().mean(dim=-2, keepdim=True) @ k.detach().transpose(-2, -1)  # (B, H, 1, L)
        if key_mask is not None:
            relevance = relevance.masked_fill(key_mask, float("-inf"))
        idx = relevance.topk(keep, dim=-1).indices  # (B, H, 1, keep)
        gather_idx = idx.transpose(-2, -1).expand(B, H, keep, d)
        k, v = k.gather(2, gather_idx), v.gather(2, gather_idx)  # (B, H, keep, d)
        if key_mask is not None:
            key_mask = key_mask.expand(B, H, 1, L).gather(-1, idx)
    scores = (q * scale) @ k.transpose(-2, -1)  # (B, H, n, keep)
    if key_mask is not None:
        scores = scores.masked_fill(key_mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, n, c) -> (B, heads, n, c / heads)."""
    B, n, c = t.shape
    return t.reshape(B, n, heads, c // heads).transpose(1, 2)


def merge_heads(t: torch.Tensor) -> torch.Tensor:
    """(B, heads, n, d) -> (B, n, heads * d)."""
    B, H, n, d = t.shape
    return t.transpose(1, 2).reshape(B, n, H * d)


class LayerNorm(nn.LayerNorm):
    """LayerNorm over the last dim computed in float32 and cast back to the input's dtype.

    Statistics in half precision lose digits; and torch 1.10's CPU autocast hands
    ``layer_norm`` a bf16 input with fp32 weights, which it rejects.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(),
                                       self.eps)
        return out.to(x.dtype)


class Mlp(nn.Module):
    """Two linear layers with GELU, on channels-last tokens."""

    def __init__(self, dim: int, ratio: float):
        super().__init__()
        hidden = max(int(dim * ratio), 1)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


# --- HSIFusionNet blocks -------------------------------------------------------

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

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, h, w, c)
        b, h, w, c = x.shape
        tokens = self.qkv(x).reshape(b, h * w, 3 * c)
        # (b, H, d, n): each channel of a head is one token described by all pixels.
        q, k, v = (split_heads(t, self.heads).transpose(-2, -1) for t in tokens.chunk(3, dim=-1))
        q = nn.functional.normalize(q, dim=-1)
        k = nn.functional.normalize(k, dim=-1)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.temperature, dim=-1)  # (b, H, d, d)
        out = merge_heads((attn @ v).transpose(-2, -1))  # (b, n, c)
        return self.proj(out.reshape(b, h, w, c))


class FusionBlock(nn.Module):
    """Pre-norm block: spatial top-k and spectral attention fused linearly, then an MLP."""

    def __init__(self, dim: int, heads: int, sparsity_ratio: float, mlp_ratio: float):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.spatial = TopKWindowAttention(dim, heads, sparsity_ratio)
        self.spectral = SpectralAttention(dim, heads)
        self.fuse = nn.Linear(2 * dim, dim)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, window: Tuple[int, int]) -> torch.Tensor:  # (b, h, w, c)
        y = self.norm1(x)
        x = x + self.fuse(torch.cat([self.spatial(y, window[0], window[1]), self.spectral(y)], dim=-1))
        return x + self.mlp(self.norm2(x))


# --- HSIFusionNet --------------------------------------------------------------

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
        self.blocks = nn.ModuleList([FusionBlock(c.dim, c.heads, c.sparsity_ratio, c.mlp_ratio)
                                     for _ in range(c.depth)])
        self.norm = LayerNorm(c.dim)
        self.head = nn.Conv2d(c.dim, c.bands, 3, padding=1)
        self.rgb_proj = nn.Conv2d(c.in_channels, c.bands, 1)

    @classmethod
    def size_error(cls, config: HSIFusionConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)
        if reason is None and size > config.max_size:
            reason = "image side must be at most max_size=%d, got %d" % (config.max_size, size)
        if reason is None:
            side = cls.factor_pair(size)[1]
            if side * side > config.max_window_tokens:
                reason = ("image side %d gives %dx%d windows (%d tokens), above max_window_tokens=%d"
                          % (size, side, side, side * side, config.max_window_tokens))
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


# --- SHARP blocks --------------------------------------------------------------

class SparseHierarchicalAttention(nn.Module):
    """Window attention to local tokens plus per-window summaries, at most ``k_cap`` keys.

    ``last_mode`` records the path taken by the latest call: ``"hierarchical"`` or
    ``"local"`` (the fallback when the window does not divide the map), with
    ``"+dense"`` when ``k_cap`` covers every key and top-k is skipped.
    """

    def __init__(self, dim: int, heads: int, window: int, k_cap: int):
        super().__init__()
        self.heads, self.window, self.k_cap = heads, window, k_cap
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.last_mode = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, h, w, c)
        b, h, w, c = x.shape
        ws = min(self.window, h, w)  # a window larger than the map shrinks to it
        qkv = self.qkv(x)  # (b, h, w, 3c)
        mask = None
        if h % ws == 0 and w % ws == 0:
            mode = "hierarchical"
            hp, wp = h, w
            windows = window_partition(qkv, ws, ws)  # (b * nW, ws^2, 3c)
            n_win = windows.shape[0] // b
            # One summary (mean) token per window; every window sees all of its image's.
            summary = windows[..., c:].mean(dim=1).reshape(b, 1, n_win, 2 * c)
            summary = summary.expand(b, n_win, n_win, 2 * c).reshape(b * n_win, n_win, 2 * c)
            kv = torch.cat([windows[..., c:], summary], dim=1)  # (b * nW, ws^2 + nW, 2c)
        else:
            mode = "local"
            hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
            pad = (0, 0, 0, wp - w, 0, hp - h)
            windows = window_partition(nn.functional.pad(qkv, pad), ws, ws)
            valid = nn.functional.pad(x.new_ones(1, h, w, 1), pad)
            mask = window_partition(valid, ws, ws).reshape(1, -1, ws * ws) == 0  # (1, nW, ws^2): padded keys
            mask = mask.expand(b, -1, -1).reshape(-1, 1, 1, ws * ws)  # (b * nW, 1, 1, ws^2)
            kv = windows[..., c:]
            _LOG.debug("SHARP: window %d does not divide %dx%d, local window attention", ws, h, w)
        q = split_heads(windows[..., :c], self.heads)  # (B, H, ws^2, d)
        k, v = (split_heads(t, self.heads) for t in kv.chunk(2, dim=-1))  # (B, H, L, d)
        keys = k.shape[-2]
        if self.k_cap >= keys:
            mode += "+dense"
            _LOG.debug("SHARP: k_cap %d >= %d keys, top-k disabled", self.k_cap, keys)
        self.last_mode = mode
        out = topk_key_attention(q, k, v, min(self.k_cap, keys), self.scale, mask)  # (B, H, ws^2, d)
        out = window_merge(merge_heads(out), b, hp, wp, ws, ws)[:, :h, :w]
        return self.proj(out)


class SHARPBlock(nn.Module):
    """Pre-norm transformer block around ``SparseHierarchicalAttention``."""

    def __init__(self, dim: int, heads: int, window: int, k_cap: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = SparseHierarchicalAttention(dim, heads, window, k_cap)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, h, w, c)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


# --- SHARP ---------------------------------------------------------------------

@dataclass(frozen=True)
class SHARPConfig:
    widths: Tuple[int, ...] = (64, 128, 256)  # one per level; each level halves the map
    depths: Tuple[int, ...] = (2, 2, 2)  # blocks per encoder level; the decoder mirrors all but the last
    heads: Tuple[int, ...] = (2, 4, 8)
    window: int = 8
    k_cap: int = 64  # keys kept per window and head; >= the key count disables top-k
    mlp_ratio: float = 2.0
    max_size: int = 4096
    in_channels: int = 3
    bands: int = 31
    default_sizes: Tuple[int, ...] = (128,)


class SHARP(SpectralReconstructionModel):
    """Sparse hierarchical attention U-Net, RGB (b, 3, h, w) -> cube (b, 31, h, w).

    Any side works: down-sampling rounds up and up-sampling crops back to the skip.
    """

    def __init__(self, config: SHARPConfig):
        super().__init__(config)
        self._validate_config(config)
        c = config
        stage = lambda i: nn.Sequential(*[SHARPBlock(c.widths[i], c.heads[i], c.window, c.k_cap, c.mlp_ratio)
                                          for _ in range(c.depths[i])])
        levels = len(c.widths)
        self.stem = nn.Conv2d(c.in_channels, c.widths[0], 3, padding=1)
        self.encoders = nn.ModuleList([stage(i) for i in range(levels)])
        self.downs = nn.ModuleList([nn.Conv2d(c.widths[i], c.widths[i + 1], 3, stride=2, padding=1)
                                    for i in range(levels - 1)])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(c.widths[i + 1], c.widths[i], 2, stride=2)
                                  for i in range(levels - 1)])
        self.decoders = nn.ModuleList([stage(i) for i in range(levels - 1)])
        self.head = nn.Conv2d(c.widths[0], c.bands, 3, padding=1)
        self.rgb_proj = nn.Conv2d(c.in_channels, c.bands, 1)

    def _validate_config(self, c: SHARPConfig) -> None:
        if not (len(c.widths) == len(c.depths) == len(c.heads)) or not c.widths:
            raise ValueError("widths, depths and heads need one entry per level, got %r, %r, %r"
                             % (c.widths, c.depths, c.heads))
        for width, heads in zip(c.widths, c.heads):
            if heads < 1 or width % heads:
                raise ValueError("each width must be a multiple of its heads, got width %d, heads %d" % (width, heads))
        if c.k_cap < 1:
            raise ValueError("k_cap must be >= 1, got %r" % (c.k_cap,))
        if c.window < 1 or min(c.depths) < 1:
            raise ValueError("window and depths must be >= 1, got %r and %r" % (c.window, c.depths))

    @classmethod
    def size_error(cls, config: SHARPConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)
        if reason is None and size > config.max_size:
            reason = "image side must be at most max_size=%d, got %d" % (config.max_size, size)
        return reason

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # (b, 3, h, w) -> (b, bands, h, w)
        self._check_rgb(rgb)
        to_tokens = lambda t: t.permute(0, 2, 3, 1)  # (b, c, h, w) -> (b, h, w, c)
        to_map = lambda t: t.permute(0, 3, 1, 2)
        x = self.checkpointed(self.encoders[0], to_tokens(self.stem(rgb)))
        skips = [x]
        for down, encoder in zip(self.downs, self.encoders[1:]):
            x = self.checkpointed(encoder, to_tokens(down(to_map(x))))  # ceil(h / 2) per level
            skips.append(x)
        for i in reversed(range(len(self.decoders))):
            skip = skips[i]
            up = to_tokens(self.ups[i](to_map(x)))[:, :skip.shape[1], :skip.shape[2]]
            x = self.checkpointed(self.decoders[i], up + skip)
        return self.head(to_map(x)) + self.rgb_proj(rgb)


class SHARPAssertFault(SHARP):
    """Fault twin of the audit's critical bug #1: SHARP validating with ``assert``.

    Config and size checks are asserts (sharp_v322 line 467), so a bad value raises
    AssertionError instead of ValueError, and under ``python -O`` nothing is checked:
    ``example_inputs`` with size 0 returns empty tensors, and ``k_cap=0`` builds and
    silently keeps no key at all: every attention layer outputs its projection bias.
    The harness sees a missing ValueError under -O.
    """

    def _validate_config(self, c: SHARPConfig) -> None:
        assert len(c.widths) == len(c.depths) == len(c.heads), "one entry per level"
        assert c.k_cap >= 1, "k_cap must be >= 1"
        assert c.window >= 1, "window must be >= 1"

    def check_size(self, size) -> None:
        assert self.size_error(self.config, size) is None, self.size_error(self.config, size)

    def _check_rgb(self, rgb: torch.Tensor) -> None:
        assert rgb.dim() == 4 and rgb.shape[1] == self.config.in_channels and min(rgb.shape[-2:]) >= 1


# --- registration --------------------------------------------------------------

_HSIFUSION_TINY = HSIFusionConfig(dim=16, depth=2, heads=2, sparsity_ratio=0.5, max_window_tokens=1024,
                                  default_sizes=(32,))
_SHARP_TINY = SHARPConfig(widths=(16, 32), depths=(1, 1), heads=(2, 2), window=8, k_cap=32, default_sizes=(32,))

register_model(
    "hsifusion_tiny", HSIFusionNet, _HSIFUSION_TINY,
    family="hyperspectral", description="HSIFusionNet: top-k window + spectral attention fusion, dim 16, 2 blocks",
)
register_model(
    "hsifusion_base", HSIFusionNet, HSIFusionConfig(),
    family="hyperspectral", description="HSIFusionNet v2.5.2-sized: dim 64, 6 fusion blocks, sparsity 0.5",
)
register_model(
    "hsifusion_prime_fault_tiny", HSIFusionPrimeFault, _HSIFUSION_TINY,
    family="hyperspectral", fault=True,
    description="fault: legacy factor_pair breaks the window partition at prime sides it accepts",
)
register_model(
    "sharp_tiny", SHARP, _SHARP_TINY,
    family="hyperspectral", description="SHARP: hierarchical top-k window attention U-Net, widths 16/32",
)
register_model(
    "sharp_base", SHARP, SHARPConfig(),
    family="hyperspectral", description="SHARP v3.2.2-sized: widths 64/128/256, window 8, k_cap 64",
)
register_model(
    "sharp_assert_fault_tiny", SHARPAssertFault, _SHARP_TINY,
    family="hyperspectral", fault=True,
    description="fault: assert-based validation vanishes under python -O (audit bug #1)",
)
