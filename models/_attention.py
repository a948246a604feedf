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
left out, and ``is_causal`` is not offered: the callers that need causality pass a
``causal_mask``.

The layouts (``split_heads``, ``repeat_kv``, ``window_partition``...) and the top-k
key attention of the sparse hyperspectral transformers live here as well.
"""
import inspect
import math
from typing import Optional

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
           scale: Optional[float] = None, impl: str = "auto", scale_scores: bool = False) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v on (b, h, t, d) tensors: SDPA where the build has it.

    ``mask`` is boolean (True = may attend) or additive, broadcastable to (b, h, t, s);
    ``scale`` defaults to ``head_dim ** -0.5``; ``impl`` is ``auto``, ``sdpa`` (an
    UnsupportedError without SDPA) or ``math``; ``scale_scores``: see ``math_attention``.
    Returns (b, h, t, d).
    """
    if resolve_attn_impl(impl) == "math":
        return math_attention(q, k, v, mask, scale, scale_scores)
    if scale is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if SDPA_HAS_SCALE:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    # 2.0 has no scale=: pre-scale q so that SDPA's default 1/sqrt(d) yields ``scale``.
    q = q * (scale * math.sqrt(q.shape[-1]))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


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

