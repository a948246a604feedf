"""SHARP: sparse hierarchical attention, a U-Net from RGB to 31 bands (seed 000).

Re-implements SHARP v3.2.2 (``sharp_v322_hardened.py``) of the hyperspectral toolkit of
audit report 000 ("Model Audit Summary - Action Plan", 2025-11-01: 24 bugs in five
models; SHARP's are validation by ``assert`` and silent fallbacks to local attention
and to dense keys), RGB (b, 3, h, w) to a 31-band cube
(b, 31, h, w): a U-Net (strided conv down, transposed conv up, any side and any
``"HxW"`` size works) whose
blocks attend inside ``window x window`` windows to the window's own tokens plus one
mean-pooled summary token per window of the whole image (the coarse level of the
hierarchy), keeping at most ``k_cap`` keys: per window and head, the keys with the
highest mean score over the window's queries are gathered by index and the queries
attend densely to them (``models._attention.topk_key_attention``, shared with
HSIFusionNet). A window larger than the map shrinks to it. When the window does not
divide the map, the block falls back to local window attention over a zero-padded map
with the padded keys masked (summaries of padded windows would be wrong); when
``k_cap`` is at least the number of keys, top-k is skipped (dense). Both switches are
logged at debug level (the audit asked for visibility) and recorded in each attention
module's ``last_mode``.

Fault twin ``sharp_assert_fault_tiny`` validates with ``assert`` as the audit's line 467
did, so under ``python -O`` nothing is checked. Fault twin ``sharp_key_cache_fault_tiny``
has the cache bug class of the audit's issues #6-9 (cache management in the toolkit's
attention): every attention layer appends the keys it selected to a cache that nothing
ever reads back or evicts, so the memory it holds grows with every forward call.

How it differs from the original: compact widths and depths, no CUDA kernels, no
caches or throttled warnings, and the key choice per window rather than per query
(one top-k per window and head instead of one per token).

The synthetic task and metric are the MSWR task of ``models._spectral`` (through
``SpectralReconstructionModel``): RGB seen through a fixed camera response, target the
smooth 31-band cube, MRAE loss, PSNR in dB.
"""
import dataclasses
import logging
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn

from models._attention import merge_heads, split_heads, topk_key_attention, window_merge, window_partition
from models._layers import Float32LayerNorm, Mlp
from models._registry import register_model
from models._spectral import SpectralReconstructionModel, side_note

_LOG = logging.getLogger(__name__)

# --- blocks --------------------------------------------------------------------

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
        self.keys_seen(k)
        out = topk_key_attention(q, k, v, min(self.k_cap, keys), self.scale, mask)  # (B, H, ws^2, d)
        out = window_merge(merge_heads(out), b, hp, wp, ws, ws)[:, :h, :w]
        return self.proj(out)

    def keys_seen(self, k: torch.Tensor) -> None:
        """Hook for the keys of a call, (B, H, L, d); the healthy layer keeps nothing."""


class KeyCachingAttentionFault(SparseHierarchicalAttention):
    """The cache fault: every call appends its keys to ``key_cache``, which is never evicted.

    The keys are detached (no autograd graph is kept), so what leaks is exactly one key
    tensor per layer and call: ``b * heads * keys * head_dim`` elements in the model's
    dtype, on its device, for as long as the model lives.
    """

    def __init__(self, dim: int, heads: int, window: int, k_cap: int):
        super().__init__(dim, heads, window, k_cap)
        self.key_cache = []

    def keys_seen(self, k: torch.Tensor) -> None:
        self.key_cache.append(k.detach())


class SHARPBlock(nn.Module):
    """Pre-norm transformer block around ``SparseHierarchicalAttention``."""

    def __init__(self, dim: int, heads: int, window: int, k_cap: int, mlp_ratio: float,
                 attention=SparseHierarchicalAttention):
        super().__init__()
        self.norm1 = Float32LayerNorm(dim)
        self.attn = attention(dim, heads, window, k_cap)
        self.norm2 = Float32LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, h, w, c)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


# --- model ---------------------------------------------------------------------

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

    #: The blocks' attention class (the key-cache fault twin replaces it).
    attention = SparseHierarchicalAttention

    def __init__(self, config: SHARPConfig):
        super().__init__(config)
        self._validate_config(config)
        c = config
        stage = lambda i: nn.Sequential(*[
            SHARPBlock(c.widths[i], c.heads[i], c.window, c.k_cap, c.mlp_ratio, self.attention)
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
    def side_error(cls, config: SHARPConfig, side: int, size) -> Optional[str]:
        if side > config.max_size:
            return "image side must be at most max_size=%d, got %s" % (config.max_size, side_note(side, size))
        return None

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


class SHARPKeyCacheFault(SHARP):
    """Fault twin of the audit's cache bugs (#6-9): an attention key cache without eviction.

    Outputs and gradients are the healthy model's; but each forward, in train and eval
    alike, every attention layer appends its (detached) keys to ``key_cache``, so the
    memory the model holds grows linearly with the number of calls. The harness sees
    memory allocated after a step climbing from step to step (a leak) where
    ``sharp_tiny`` stays flat.
    """

    attention = KeyCachingAttentionFault


# --- sizes ---------------------------------------------------------------------

_TINY = SHARPConfig(widths=(16, 32), depths=(1, 1), heads=(2, 2), window=8, k_cap=32, default_sizes=(32,))
_BASE = SHARPConfig()

# --- registrations -------------------------------------------------------------

register_model(
    "sharp_tiny", SHARP, _TINY,
    family="hyperspectral", description="SHARP: hierarchical top-k window attention U-Net, widths 16/32",
)
register_model(
    "sharp_base", SHARP, _BASE,
    family="hyperspectral", description="SHARP v3.2.2-sized: widths 64/128/256, window 8, k_cap 64",
)
register_model(
    "sharp_assert_fault_tiny", SHARPAssertFault, _TINY,
    family="hyperspectral", fault=True,
    description="fault: assert-based validation vanishes under python -O (audit bug #1)",
)
# The audit's bad value, k_cap=0, that only the twin's assert rejects: a scenario runs it with and
# without python -O (python_optimized) and sees "validation by assert" turn into a silent ok run.
# Not *_tiny: no healthy model is built from this config (SHARP rejects it with ValueError).
register_model(
    "sharp_assert_fault_kcap0", SHARPAssertFault, dataclasses.replace(_TINY, k_cap=0),
    family="hyperspectral", fault=True,
    description="fault: k_cap=0 passes under python -O, where only an assert rejected it (audit bug #1)",
)
register_model(
    "sharp_key_cache_fault_tiny", SHARPKeyCacheFault, _TINY,
    family="hyperspectral", fault=True,
    description="fault: every attention call appends its keys to a cache never evicted (memory grows per step)",
)
