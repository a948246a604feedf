"""Attention shared by the zoo: one scaled-dot-product attention with its fallback, masks, layouts.

``attend`` is the zoo's only call of ``torch.nn.functional.scaled_dot_product_attention``
(SDPA). What it uses is found by feature detection, never by version number:

* ``HAS_SDPA``: the build has SDPA (2.0+). Without it (1.10) ``math_attention``, an
  explicit matmul-softmax, runs instead; ``impl="math"`` asks for it on any build;
* ``SDPA_HAS_SCALE``: SDPA takes ``scale=`` (2.1+). Without it an explicit scale is
  folded into ``q`` so that SDPA's own default ``1/sqrt(head_dim)`` gives it;
* ``scale=None`` means ``head_dim ** -0.5`` on both paths (SDPA's default).

Masks (``attn_mask`` of SDPA) are boolean (True = may attend) or additive (added to the
scores), broadcast to (b, heads, t, s); the helpers here build, cast and merge them.
The Flash/xFormers rungs of the audited fallback chain need CUDA extensions and are
left out. ``is_causal=True`` asks for causal attention without any mask tensor: SDPA's
own ``is_causal`` flag where the build has SDPA (the only form that lets PyTorch pick its
flash kernel, which takes no ``attn_mask``), the explicit ``causal_mask`` on the
fallback. Which SDPA kernels (math, flash, efficient, cudnn) this build can be told to
use is what ``sdpa_backends_available`` reports, for a runner that wants to pin one.

The layouts (``split_heads``, ``repeat_kv``, ``window_partition``...), the blocked
layout of sliding-window attention (``local_query_blocks``, ``local_key_blocks``,
``local_window_mask``: O(t * window) instead of a banded t x t matrix), rotary position
embeddings (``rope_tables``, ``apply_rope``) and the top-k key attention of the sparse
hyperspectral transformers live here as well.
"""
import inspect
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from models._base import UnsupportedError

ATTN_IMPLS = ("auto", "sdpa", "math")

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


def _sdpa_accepts_scale() -> bool:
    # The scale= argument arrived in 2.1. The builtin usually has no inspectable
    # signature, so a one-element probe call settles it when inspect cannot.
    if not HAS_SDPA:
        return False
    try:
        return "scale" in inspect.signature(F.scaled_dot_product_attention).parameters
    except (TypeError, ValueError):
        pass
    probe = torch.zeros(1, 1, 1, 1)
    try:
        F.scaled_dot_product_attention(probe, probe, probe, scale=1.0)
    except TypeError:
        return False
    return True


SDPA_HAS_SCALE = _sdpa_accepts_scale()

#: The SDPA kernels ``sdpa_backends_available`` can report, in its order.
SDPA_BACKENDS = ("math", "flash", "efficient", "cudnn")
_SDPA_BACKEND_MEMBERS = {"math": "MATH", "flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
                         "cudnn": "CUDNN_ATTENTION"}
_SDPA_KERNEL_FLAGS = {"math": "enable_math", "flash": "enable_flash", "efficient": "enable_mem_efficient",
                      "cudnn": "enable_cudnn"}


def sdpa_backends_available() -> Tuple[str, ...]:
    """The SDPA kernels this build exposes for selection, a subset of ``SDPA_BACKENDS`` in that order.

    Feature detection only: a name is listed when this build has a way to pin the
    kernel, a ``torch.nn.attention.SDPBackend`` member where ``torch.nn.attention.sdpa_kernel``
    exists, else a flag of the older ``torch.backends.cuda.sdp_kernel`` context (2.0+:
    math, flash and efficient). Whether a listed kernel accepts a given call (device,
    dtype, head size, an ``attn_mask``: flash takes none, so only
    ``attend(..., is_causal=True)`` or maskless calls reach it) is decided by PyTorch at
    call time; a pinned kernel that cannot run raises there. An empty tuple means no
    SDPA at all (1.10): ``attend`` runs its matmul-softmax.
    """
    if not HAS_SDPA:
        return ()
    try:
        import torch.nn.attention as nn_attention
    except ImportError:
        nn_attention = None
    backend_enum = getattr(nn_attention, "SDPBackend", None)
    if backend_enum is not None and hasattr(nn_attention, "sdpa_kernel"):
        return tuple(name for name in SDPA_BACKENDS if hasattr(backend_enum, _SDPA_BACKEND_MEMBERS[name]))
    sdp_kernel = getattr(getattr(torch.backends, "cuda", None), "sdp_kernel", None)
    if sdp_kernel is None:
        return ()
    try:
        flags = set(inspect.signature(sdp_kernel).parameters)
    except (TypeError, ValueError):
        flags = {"enable_math", "enable_flash", "enable_mem_efficient"}
    return tuple(name for name in SDPA_BACKENDS if _SDPA_KERNEL_FLAGS[name] in flags)


def sdpa_kernel_context(name: str):
    """A context in which SDPA may use kernel ``name`` only (one of ``sdpa_backends_available()``),
    through the API this build has; UnsupportedError naming the build where it has no way to pin it."""
    available = sdpa_backends_available()
    if name not in available:
        why = "has no scaled_dot_product_attention" if not HAS_SDPA else "can pin only %s" % ", ".join(available)
        raise UnsupportedError("SDPA kernel %s: torch %s %s" % (name, torch.__version__, why))
    try:
        import torch.nn.attention as nn_attention
    except ImportError:  # 2.0-2.1: the older flags context
        nn_attention = None
    if hasattr(nn_attention, "sdpa_kernel"):
        return nn_attention.sdpa_kernel(getattr(nn_attention.SDPBackend, _SDPA_BACKEND_MEMBERS[name]))
    flags = [_SDPA_KERNEL_FLAGS[b] for b in available]
    return torch.backends.cuda.sdp_kernel(**{flag: flag == _SDPA_KERNEL_FLAGS[name] for flag in flags})


def resolve_attn_impl(impl: str) -> str:
    """Map ``auto``/``sdpa``/``math`` to the path this build runs; UnsupportedError for sdpa on 1.x."""
    if impl not in ATTN_IMPLS:
        raise ValueError("attn_impl must be one of %s, got %r" % (", ".join(ATTN_IMPLS), impl))
    if impl == "auto":
        return "sdpa" if HAS_SDPA else "math"
    if impl == "sdpa" and not HAS_SDPA:
        raise UnsupportedError(
            "attn_impl='sdpa': torch.nn.functional.scaled_dot_product_attention is missing in torch %s"
            % torch.__version__
        )
    return impl


# --- masks ---------------------------------------------------------------------

def mask_value(dtype: torch.dtype) -> float:
    """The most negative finite value of ``dtype``: masks with it never overflow to NaN rows."""
    return torch.finfo(dtype).min


def causal_mask(q_len: int, k_len: int, device, window: Optional[int] = None) -> torch.Tensor:
    """Boolean (q_len, k_len) mask, True where query i may attend key j.

    Queries are the last ``q_len`` positions of the ``k_len`` keys (a KV-cache decode step
    has ``q_len=1``). ``window`` keeps only the ``window`` most recent keys (banded mask).
    """
    q_pos = torch.arange(k_len - q_len, k_len, device=device).unsqueeze(1)  # (q, 1)
    k_pos = torch.arange(k_len, device=device).unsqueeze(0)  # (1, k)
    keep = k_pos <= q_pos
    if window is not None:
        keep = keep & (k_pos > q_pos - window)
    return keep


def to_additive(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean keep-mask -> additive mask of ``dtype``: 0 where kept, ``mask_value`` elsewhere."""
    zeros = torch.zeros(keep.shape, dtype=dtype, device=keep.device)
    return zeros.masked_fill(~keep, mask_value(dtype))


def cast_additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Cast an additive mask to the query dtype (the attention audit's fix for its issue 1).

    Clamping first keeps float32's minimum from becoming -inf in float16.
    """
    if mask.dtype == dtype:
        return mask
    return mask.clamp_min(mask_value(dtype)).to(dtype)


def merge_masks(bool_mask: Optional[torch.Tensor], additive: Optional[torch.Tensor], dtype: torch.dtype,
                cast: bool = True) -> Optional[torch.Tensor]:
    """One mask for ``attend`` from an optional boolean and an optional additive mask.

    ``cast=False`` is the attention fault twin's bug: the additive mask keeps whatever
    dtype it was built in.
    """
    if additive is None:
        return bool_mask
    if cast:
        additive = cast_additive(additive, dtype)
    if bool_mask is None:
        return additive
    return additive.masked_fill(~bool_mask, mask_value(additive.dtype))


# --- attention -----------------------------------------------------------------

def math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor] = None,
                   scale: Optional[float] = None, scale_scores: bool = False) -> torch.Tensor:
    """Explicit matmul-softmax attention on (b, h, t, d) tensors, the fallback where SDPA is missing.

    The scale multiplies ``q`` before the product (t * d multiplies rather than t * s,
    and half-precision scores are formed already scaled). The softmax stays in the
    scores' dtype (no float32 detour), so a mask of the wrong dtype shows up as a dtype
    error in ``probs @ v`` instead of being papered over. ``scale_scores`` multiplies the
    scores instead, as the audited CSWin, graph VAE and RIS code do: the two orders agree
    only to rounding, and each model keeps its own so its outputs stay bit-for-bit.
    """
    if scale is None:
        scale = q.shape[-1] ** -0.5
    if scale_scores:
        scores = torch.matmul(q, k.transpose(-2, -1)) * scale  # (b, h, t, s)
    else:
        scores = torch.matmul(q * scale, k.transpose(-2, -1))  # (b, h, t, s)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, mask_value(scores.dtype))
        else:
            scores = scores + mask
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, v)  # (b, h, t, d)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor] = None,
           scale: Optional[float] = None, impl: str = "auto", scale_scores: bool = False,
           is_causal: bool = False) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v on (b, h, t, d) tensors: SDPA where the build has it.

    ``mask`` is boolean (True = may attend) or additive, broadcastable to (b, h, t, s);
    ``scale`` defaults to ``head_dim ** -0.5``; ``impl`` is ``auto``, ``sdpa`` (an
    UnsupportedError without SDPA) or ``math``; ``scale_scores``: see ``math_attention``.
    ``is_causal`` (no ``mask`` then) lets query i see keys up to its own position, the
    t queries being the last t of the s keys as in ``causal_mask`` (a cached decode
    step). With t == s that is SDPA's ``is_causal=True`` (no mask tensor: the flash
    kernel stays eligible); the fallback builds ``causal_mask`` itself. SDPA aligns
    ``is_causal`` top-left when t < s, so there the explicit mask is passed instead,
    and none at all for a single query, which may see every key.
    Returns (b, h, t, d).
    """
    path = resolve_attn_impl(impl)
    sdpa_causal = False
    if is_causal:
        if mask is not None:
            raise ValueError("attend: pass either a mask or is_causal=True, not both")
        t, s = q.shape[-2], k.shape[-2]
        if t > s:
            raise ValueError("attend: is_causal needs at least as many keys as queries, got %d queries, %d keys"
                             % (t, s))
        if path == "sdpa" and t == s:
            sdpa_causal = True
        elif t > 1:
            mask = causal_mask(t, s, q.device)
    if path == "math":
        return math_attention(q, k, v, mask, scale, scale_scores)
    if scale is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=sdpa_causal)
    if SDPA_HAS_SCALE:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=sdpa_causal, scale=scale)
    # 2.0 has no scale=: pre-scale q so that SDPA's default 1/sqrt(d) yields ``scale``.
    q = q * (scale * math.sqrt(q.shape[-1]))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=sdpa_causal)


def topk_key_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: int, scale: float,
                       key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Attention of q (B, H, n, d) over the ``keep`` most relevant of L keys (B, H, L, d).

    A key's relevance is its mean score over the window's queries (``mean(q) . k``,
    exact because scores are linear in q); the chosen keys and values are gathered by
    index, as the audited HSIFusionNet and SHARP do, and the queries attend densely to
    them. The choice is not differentiable (made on detached tensors); the attention
    over the kept keys is. ``key_mask`` (B or 1, 1, 1, L), True for keys to ignore
    (padding), ranks them last and masks them out. Returns (B, H, n, d).
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


# --- layouts -------------------------------------------------------------------

def split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, n, c) -> (B, heads, n, c / heads)."""
    B, n, c = t.shape
    return t.reshape(B, n, heads, c // heads).transpose(1, 2)


def merge_heads(t: torch.Tensor) -> torch.Tensor:
    """(B, heads, n, d) -> (B, n, heads * d)."""
    B, H, n, d = t.shape
    return t.transpose(1, 2).reshape(B, n, H * d)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(b, kv_heads, s, d) -> (b, kv_heads * n_rep, s, d); each KV head serves n_rep query heads."""
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x.unsqueeze(2).expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def window_partition(x: torch.Tensor, wh: int, ww: int) -> torch.Tensor:
    """(b, h, w, c) -> (b * nh * nw, wh * ww, c) for non-overlapping windows of ``wh x ww`` tokens.

    Splitting h and w is a view, also of a channel slice such as ``q[..., :half]``; the
    flatten after the permute copies.
    """
    b, h, w, c = x.shape
    x = x.reshape(b, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, wh * ww, c)


def window_merge(windows: torch.Tensor, b: int, h: int, w: int, wh: int, ww: int) -> torch.Tensor:
    """Inverse of ``window_partition``: (b * nh * nw, wh * ww, c) -> (b, h, w, c)."""
    c = windows.shape[-1]
    x = windows.reshape(b, h // wh, w // ww, wh, ww, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)



# --- sliding-window attention in blocks ------------------------------------------
#
# A causal window of w keys, as a (t, t) banded mask, costs t * t scores of which
# t * w are kept. In blocks of w queries, block n needs only its own keys and those of
# block n - 1: the band fits a (w, 2w) mask, and scores and probabilities cost
# t * 2w whatever t is. Blocks are folded into the batch, (b * nb, h, w, d), so the
# attention call stays 4-D (what SDPA's fused kernels take) and masks broadcast over
# heads. The sequence is zero-padded to nb * w at the end: padded keys lie in every
# real query's future, padded queries are cut off again by ``local_merge``.

def local_blocks(t: int, window: int) -> Tuple[int, int, int]:
    """(block, n_blocks, key span) of sliding-window attention with ``window`` over ``t`` positions.

    Blocks are ``window`` long; each attends its previous block and itself (span
    ``2 * block``). A sequence no longer than the window is one block of ``t`` that
    attends itself only (span ``t``): the band is then plain causality.
    """
    if window < 1 or t < 1:
        raise ValueError("local_blocks: window and t must be at least 1, got window=%d t=%d" % (window, t))
    if t <= window:
        return t, 1, t
    n_blocks = -(-t // window)
    return window, n_blocks, 2 * window


def _pad_positions(x: torch.Tensor, length: int) -> torch.Tensor:
    # Zero rows (False for a boolean tensor) after the last position of dim 2.
    extra = length - x.shape[2]
    if extra == 0:
        return x
    pad = torch.zeros(x.shape[:2] + (extra,) + x.shape[3:], dtype=x.dtype, device=x.device)
    return torch.cat([x, pad], dim=2)


def local_query_blocks(x: torch.Tensor, window: int) -> torch.Tensor:
    """(b, h, t, d) -> (b * nb, h, block, d): the queries in blocks of ``local_blocks(t, window)``."""
    b, h, t, d = x.shape
    block, n_blocks, _ = local_blocks(t, window)
    x = _pad_positions(x, block * n_blocks).reshape(b, h, n_blocks, block, d)
    return x.transpose(1, 2).reshape(b * n_blocks, h, block, d)


def local_key_blocks(x: torch.Tensor, window: int) -> torch.Tensor:
    """(b, h, t, d) -> (b * nb, h, span, d): for each query block, the previous block's keys, then its own.

    Block 0 has zeros for a previous block (``local_window_mask`` masks them). Works on
    any (b, h, t, d) tensor: keys, values, or a (b, 1, t, 1) key mask.
    """
    b, h, t, d = x.shape
    block, n_blocks, span = local_blocks(t, window)
    if n_blocks == 1:
        return x
    own = _pad_positions(x, block * n_blocks).reshape(b, h, n_blocks, block, d)
    prev = torch.cat([torch.zeros_like(own[:, :, :1]), own[:, :, :-1]], dim=2)
    keys = torch.cat([prev, own], dim=3)  # (b, h, nb, span, d)
    return keys.transpose(1, 2).reshape(b * n_blocks, h, span, d)


def local_merge(x: torch.Tensor, batch: int, t: int) -> torch.Tensor:
    """Inverse of ``local_query_blocks``: (b * nb, h, block, d) -> (b, h, t, d), padding cut off."""
    bn, h, block, d = x.shape
    n_blocks = bn // batch
    x = x.reshape(batch, n_blocks, h, block, d).transpose(1, 2).reshape(batch, h, n_blocks * block, d)
    return x[:, :, :t]


def local_window_mask(t: int, window: int, device) -> torch.Tensor:
    """Boolean (nb, 1, block, span) mask of the blocked layout, True where query i may see key j.

    The same band as ``causal_mask(t, t, device, window)``: j <= i and j > i - window,
    with the previous block of block 0 (zeros) masked out.
    """
    block, n_blocks, span = local_blocks(t, window)
    if n_blocks == 1:
        return causal_mask(t, t, device)[None, None]
    r = torch.arange(block, device=device).unsqueeze(1)  # query offset in its block
    s = torch.arange(span, device=device).unsqueeze(0)  # key offset from the previous block's start
    band = (s > r) & (s <= r + block)  # (block, span): key s - block relative to query r
    first = band & (s >= block)  # block 0 has no previous block
    return torch.stack([first] + [band] * (n_blocks - 1))[:, None]  # (nb, 1, block, span)


# --- rotary position embeddings -------------------------------------------------

def rope_tables(start: int, length: int, head_dim: int, base: float, device, dtype: torch.dtype = torch.float32
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(length, head_dim) cos and sin of the rotary angles for positions start..start+length-1.

    Built for the positions asked, never as a fixed max-length table. Angles are in
    ``dtype``, float32 unless the model runs in float64 (pass that): bf16 cannot hold
    position * frequency to useful precision beyond a few hundred positions; ``apply_rope``
    casts the tables to the query dtype.
    """
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device, dtype=dtype) / head_dim))
    pos = torch.arange(start, start + length, device=device, dtype=dtype)
    angles = pos[:, None] * inv_freq[None, :]  # (t, d / 2)
    angles = torch.cat([angles, angles], dim=-1)  # (t, d)
    return angles.cos(), angles.sin()


def rope_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype to build rotary tables in for activations ``x``: float64 for float64, else float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (b, h, t, d) ``x`` by the (t, d) tables, in ``x``'s dtype."""
    return x * cos.to(x.dtype) + _rotate_half(x) * sin.to(x.dtype)
