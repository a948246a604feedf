"""Attention zoo: MHA, GQA, MQA, linear and sliding-window attention in a small token LM (seed 003).

Re-implements AstroBio-Gen's attention family (``sota_attention_2025.py`` and friends) of
audit report 003 ("AstroBio-Gen System Hardening & Production Readiness", 2025-10-01),
whose attention findings are mask dtypes, missing explicit scaling and KV-cache gaps:
multi-head, grouped-query and multi-query
attention with a fused-kernel fallback chain, causal linear attention and sliding-window
attention. Each variant drives a small pre-norm transformer language model (token
embedding, rotary position embeddings in every attention -> N blocks -> LM head), so
every variant has a real loss.

What the audit asked for and this file does:

* the fallback chain (``models._attention.attend``, shared by the zoo):
  ``torch.nn.functional.scaled_dot_product_attention`` where the build has it (2.0+,
  feature-detected), an explicit matmul-softmax otherwise (1.10) or with
  ``attn_impl="math"``; the audit's Flash/xFormers rungs need CUDA extensions and are
  left out. PyTorch's own flash kernel takes no mask tensor: the ``padding=False``
  configs (``attention_{mha,gqa,mqa}_causal_*``) feed unpadded sequences and call
  ``attend(..., is_causal=True)`` with no mask, so a GPU may pick flash or
  memory-efficient SDPA; the padded configs pass masks on every call, as the audit's do;
* explicit ``head_dim ** -0.5`` scaling (issue 2): passed as SDPA's ``scale=`` where that
  argument exists (2.1+), otherwise folded into ``q`` before SDPA so that SDPA's own
  default ``1/sqrt(head_dim)`` gives the configured scale;
* masks (issue 1): every block accepts a boolean mask (True = may attend), an additive
  mask, or both (``mask_kind`` ``"bool"``, ``"additive"`` or ``"mixed"``: causal as bool
  plus key padding as additive); the additive mask is cast to the query dtype inside the
  attention, which is what autocast and pure fp16/bf16 need;
* linear attention with the ELU+1 feature map, causal through running sums computed in
  chunks (``causal_linear_attention``): quadratic inside a chunk of ``chunk`` positions,
  one (d, d) state per chunk boundary across them, so memory is
  O(t * chunk + t * d**2 / chunk) per head rather than the O(t * d**2) of per-position
  states; key padding becomes a multiplicative key weight ``exp(additive mask)``;
  ``cumsum`` (over chunks) has no bf16 CPU kernel in 1.10;
* sliding-window attention in blocks of the window (``models._attention.local_*``): each
  block of ``window`` queries attends its own and the previous block's keys under a
  (window, 2 * window) band mask, so scores cost O(t * window), not the O(t**2) of a
  banded full matrix; the result is the banded attention's.

Positions are rotary (RoPE, tables built for the length at hand) rather than the learned
(max_seq_len, dim) table of earlier versions: the 8192 tokens the audit asks for would
have cost a 4.2M-parameter table at width 512, and RoPE needs no maximum at all
(``max_seq_len`` only bounds the benchmark sizes). Linear attention rotates q and k
before its feature map.

How it differs: no Flash/xFormers/Ring/Mamba paths, no dropout; sizes are config fields.
The KV-cache of issue 3 lives in the decoder LM (``models/llm_decoder.py``).

The fault twin ``attention_mask_dtype_fault_tiny`` reproduces issue 1 as the audit's
hand-written classes (GroupedQueryAttention, MultiQueryAttention) have it: the additive
mask is built in float32 and added to the scores without a cast. In a pure bf16/fp16
model the scores are promoted to float32 and the probabilities @ values matmul fails
with a dtype error (on every PyTorch version); under CPU autocast the bug is hidden,
because autocast re-casts the matmul inputs. The harness sees errors in the bf16/fp16
cases where the healthy ``attention_gqa_tiny`` runs within bf16 tolerance of fp32.

Synthetic task (``models._tokens``, shared with the decoder LM): induction/copy sequences
(a random segment repeated once); the metric is next-token accuracy on the second copy
(``second_copy_accuracy``), higher is better.
The benchmark inputs of the ``padding=True`` configs left-pad every second sequence
(pad id 0), exercising the masks; the ``padding=False`` ones draw no pad tokens.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from models._attention import (
    apply_rope,
    attend,
    cast_additive,
    causal_mask,
    local_blocks,
    local_key_blocks,
    local_merge,
    local_query_blocks,
    local_window_mask,
    merge_masks,
    repeat_kv,
    resolve_attn_impl,
    rope_dtype,
    rope_tables,
    to_additive,
)
from models._base import at_least_float32
from models._registry import register_model
from models._tokens import PAD_ID, TokenLanguageModel

VARIANTS = ("mha", "gqa", "mqa", "linear", "sliding_window")
MASK_KINDS = ("bool", "additive", "mixed")

# --- blocks --------------------------------------------------------------------

class SelfAttention(nn.Module):
    """Multi-head attention with ``kv_heads`` key/value heads: MHA, GQA (1 < kv < heads) or MQA (kv = 1).

    With ``window`` it is sliding-window attention in blocks (``models._attention.local_*``):
    the masks then come in the blocked (b * nb | 1, 1, block, span) layout of
    ``AttentionLM.build_masks``. Without any mask the attention is causal through
    ``attend(..., is_causal=True)``, which SDPA may run on its flash kernel.
    """

    def __init__(self, dim: int, heads: int, kv_heads: int, impl: str, scale: Optional[float] = None,
                 cast_mask: bool = True, window: Optional[int] = None):
        super().__init__()
        self.heads = heads
        self.kv_heads = kv_heads
        self.head_dim = dim // heads
        # Explicit, per the audit; never left to a sub-module's default.
        self.scaling = self.head_dim ** -0.5 if scale is None else scale
        self.impl = impl
        self.cast_mask = cast_mask
        self.window = window
        self.q_proj = nn.Linear(dim, heads * self.head_dim)
        self.k_proj = nn.Linear(dim, kv_heads * self.head_dim)
        self.v_proj = nn.Linear(dim, kv_heads * self.head_dim)
        self.out_proj = nn.Linear(heads * self.head_dim, dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, bool_mask: Optional[torch.Tensor] = None,
                additive: Optional[torch.Tensor] = None) -> torch.Tensor:  # (b, t, c)
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (b, h, t, d)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)  # (b, kv, t, d)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        n_rep = self.heads // self.kv_heads
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        mask = merge_masks(bool_mask, additive, q.dtype, cast=self.cast_mask)
        if self.window is not None:
            # (b * nb, h, block, d) queries against (b * nb, h, 2 * block, d) keys: O(t * window).
            q, k, v = (local_query_blocks(q, self.window), local_key_blocks(k, self.window),
                       local_key_blocks(v, self.window))
            out = local_merge(attend(q, k, v, mask, self.scaling, self.impl), b, t)  # (b, h, t, d)
        else:
            out = attend(q, k, v, mask, self.scaling, self.impl, is_causal=mask is None)  # (b, h, t, d)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


def causal_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk: int,
                            eps: float) -> torch.Tensor:
    """out_i = sum_{j<=i} (q_i . k_j) v_j / max(sum_{j<=i} q_i . k_j, eps) on (b, h, t, d) features, in chunks.

    The running sums are never kept per position: within a chunk of ``chunk``
    positions the causal part is quadratic ((chunk, chunk) scores under a lower
    triangle), and what came before is one (d, e) state sum_j k_j v_j^T (and the key
    sum for the normaliser) per chunk, an exclusive cumulative sum over chunks.
    Memory O(t * chunk + t * d * e / chunk) per head instead of O(t * d * e); the
    sequence is zero-padded to whole chunks (zero keys add nothing) and cut back.

    Numerator and denominator are both divided by the query's position count (the
    ratio is unchanged): the normaliser grows like t * d, past float16's range from about
    a thousand positions, which turned late outputs into num / inf = 0. The states are
    summed in float32 at least and kept as means over the positions before the chunk.
    """
    b, h, t, d = q.shape
    e = v.shape[-1]
    size = min(chunk, t)
    n = -(-t // size)
    if n * size != t:
        pad = n * size - t
        q, k, v = (torch.cat([x, x.new_zeros(b, h, pad, x.shape[-1])], dim=2) for x in (q, k, v))
    qc, kc = q.reshape(b, h, n, size, d), k.reshape(b, h, n, size, d)
    vc = v.reshape(b, h, n, size, e)
    lower = torch.ones(size, size, dtype=torch.bool, device=q.device).tril()
    scores = torch.matmul(qc, kc.transpose(-2, -1)).masked_fill(~lower, 0.0)  # (b, h, n, c, c)
    counts = torch.arange(1, n * size + 1, device=q.device).reshape(n, size, 1)  # positions up to each query
    num = torch.matmul(scores, vc) / counts.to(scores.dtype)  # (b, h, n, c, e)
    den = scores.sum(dim=-1, keepdim=True) / counts.to(scores.dtype)  # (b, h, n, c, 1)
    if n > 1:
        states = at_least_float32(torch.matmul(kc.transpose(-2, -1), vc))  # (b, h, n, d, e): per chunk k v^T
        key_sums = at_least_float32(kc.sum(dim=3))  # (b, h, n, d)
        before = torch.arange(n, device=q.device) * size  # positions before each chunk
        per_position = 1.0 / before.clamp_min(1).to(states.dtype)  # (n,): sums before the chunk -> means
        # The state before chunk i: the mean over chunks < i (exclusive cumulative sum).
        prior = torch.cat([torch.zeros_like(states[:, :, :1]), states[:, :, :-1].cumsum(dim=2)], dim=2)
        prior = (prior * per_position[:, None, None]).to(q.dtype)
        prior_keys = torch.cat([torch.zeros_like(key_sums[:, :, :1]), key_sums[:, :, :-1].cumsum(dim=2)], dim=2)
        prior_keys = (prior_keys * per_position[:, None]).to(q.dtype)
        weight = (before[:, None, None].to(states.dtype) / counts.to(states.dtype)).to(q.dtype)  # (n, c, 1): <= 1
        num = num + torch.matmul(qc, prior) * weight
        den = den + (qc * prior_keys.unsqueeze(3)).sum(dim=-1, keepdim=True) * weight
    # eps applies to the unnormalised sum, as the per-position form had it.
    out = num / torch.max(den, eps / counts.to(den.dtype))  # (b, h, n, c, e)
    return out.reshape(b, h, n * size, e)[:, :, :t]


class LinearAttention(nn.Module):
    """Causal linear attention (Katharopoulos et al.): ELU+1 features, running sums over time, in chunks.

    Masks act on keys only (causality is the running sum): a boolean key mask zeroes
    a key's features, an additive one scales them by ``exp(mask)``, the multiplicative
    form of adding ``mask`` to the scores before a softmax. RoPE rotates q and k before
    the feature map (positive features, position-aware; not exactly relative then).
    """

    def __init__(self, dim: int, heads: int, scale: Optional[float] = None, eps: float = 1e-4, chunk: int = 64):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scaling = self.head_dim ** -0.5 if scale is None else scale
        self.eps = eps
        self.chunk = chunk
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def features(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, bool_mask: Optional[torch.Tensor] = None,
                 additive: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(phi(q), phi(k) weighted by the key mask, v), each (b, h, t, d)."""
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (b, h, t, d)
        k = self.k_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        q = F.elu(apply_rope(q, cos, sin) * self.scaling) + 1.0
        k = F.elu(apply_rope(k, cos, sin)) + 1.0
        if additive is not None:
            k = k * torch.exp(cast_additive(additive, k.dtype))  # key mask (b, 1, t, 1)
        if bool_mask is not None:
            k = k.masked_fill(~bool_mask, 0.0)
        return q, k, v

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, bool_mask: Optional[torch.Tensor] = None,
                additive: Optional[torch.Tensor] = None) -> torch.Tensor:  # (b, t, c)
        b, t, _ = x.shape
        q, k, v = self.features(x, cos, sin, bool_mask, additive)
        out = causal_linear_attention(q, k, v, self.chunk, self.eps)  # (b, h, t, d)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim: int, attn: nn.Module, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, bool_mask: Optional[torch.Tensor] = None,
                additive: Optional[torch.Tensor] = None) -> torch.Tensor:  # (b, t, c)
        x = x + self.attn(self.norm1(x), cos, sin, bool_mask, additive)
        return x + self.mlp(self.norm2(x))


# --- model ---------------------------------------------------------------------

@dataclass(frozen=True)
class AttentionLMConfig:
    variant: str = "mha"
    vocab_size: int = 1024
    dim: int = 512
    depth: int = 6
    heads: int = 8
    kv_heads: int = 2  # gqa only: mha uses ``heads``, mqa and linear their own
    window: int = 256  # sliding_window only
    chunk: int = 64  # linear only: positions per chunk of the chunked running sums
    mlp_ratio: int = 4
    mask_kind: str = "mixed"
    attn_impl: str = "auto"
    scale: Optional[float] = None  # None: head_dim ** -0.5
    rope_base: float = 10000.0
    # True: the benchmark inputs left-pad every second sequence and every call passes masks;
    # False: no padding, and the full-attention variants run with no mask at all (is_causal).
    padding: bool = True
    max_seq_len: int = 8192
    min_seq_len: int = 4
    mask_dtype_fault: bool = False  # the fault twin: float32 additive mask, never cast
    default_sizes: Tuple[int, ...] = (16, 256, 4096)


class AttentionLM(TokenLanguageModel):
    """A small causal LM whose blocks all use the configured attention variant."""

    def __init__(self, config: AttentionLMConfig):
        super().__init__(config)
        c = config
        if c.variant not in VARIANTS:
            raise ValueError("variant must be one of %s, got %r" % (", ".join(VARIANTS), c.variant))
        if c.mask_kind not in MASK_KINDS:
            raise ValueError("mask_kind must be one of %s, got %r" % (", ".join(MASK_KINDS), c.mask_kind))
        if c.dim % c.heads or (c.dim // c.heads) % 2:
            raise ValueError("dim / heads must be an even integer (RoPE rotates pairs), got dim=%d heads=%d"
                             % (c.dim, c.heads))
        kv_heads = {"mha": c.heads, "mqa": 1, "linear": c.heads, "sliding_window": c.heads}.get(c.variant, c.kv_heads)
        if kv_heads < 1 or c.heads % kv_heads:
            raise ValueError("heads must be a multiple of kv_heads >= 1, got heads=%d kv_heads=%d"
                             % (c.heads, kv_heads))
        if c.variant == "sliding_window" and c.window < 1:
            raise ValueError("window must be at least 1, got %d" % c.window)
        if c.variant == "linear" and c.chunk < 1:
            raise ValueError("chunk must be at least 1, got %d" % c.chunk)
        if c.mask_dtype_fault and not c.padding:
            raise ValueError("mask_dtype_fault needs padding=True: without masks there is nothing to mis-cast")
        # The audit's hand-written GQA added the mask with matmuls; the fault twin keeps that path.
        self.attn_impl = "math" if c.mask_dtype_fault else resolve_attn_impl(c.attn_impl)
        self.head_dim = c.dim // c.heads
        self.embed = nn.Embedding(c.vocab_size, c.dim)
        window = c.window if c.variant == "sliding_window" else None
        blocks = []
        for _ in range(c.depth):
            if c.variant == "linear":
                attn: nn.Module = LinearAttention(c.dim, c.heads, c.scale, chunk=c.chunk)
            else:
                attn = SelfAttention(c.dim, c.heads, kv_heads, self.attn_impl, c.scale,
                                     cast_mask=not c.mask_dtype_fault, window=window)
            blocks.append(TransformerBlock(c.dim, attn, c.mlp_ratio))
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.vocab_size)

    def build_masks(self, tokens: torch.Tensor, dtype: torch.dtype
                    ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """(boolean mask, additive mask) for ``tokens``; either may be None per ``mask_kind``.

        Full-attention variants get (b|1, 1, t, t) masks: causal and key padding, where a
        query always keeps its own position so no row is fully masked. Without
        ``padding`` they get none at all: the attention is then causal by ``is_causal``.
        sliding_window gets the same in the blocked layout, (b * nb, 1, block, span)
        (``models._attention.local_window_mask``), the band always. The linear variant
        gets (b, 1, t, 1) key masks (causality is structural, so ``"mixed"`` there means
        the additive key mask alone), none without ``padding``.
        The additive mask is built in ``dtype`` (the activations'); attention casts it to
        the query dtype, which differs under autocast.
        """
        c = self.config
        b, t = tokens.shape
        device = tokens.device
        add_dtype = torch.float32 if c.mask_dtype_fault else dtype
        keep_key = (tokens != PAD_ID)  # (b, t)
        if c.variant == "linear":
            if not c.padding:
                return None, None
            keep = keep_key[:, None, :, None]  # (b, 1, t, 1)
            if c.mask_kind == "bool":
                return keep, None
            return None, to_additive(keep, add_dtype)
        if c.variant == "sliding_window":
            block, n_blocks, span = local_blocks(t, c.window)
            causal = local_window_mask(t, c.window, device).repeat(b, 1, 1, 1)  # (b * nb, 1, block, span)
            if not c.padding:
                return (causal, None) if c.mask_kind != "additive" else (None, to_additive(causal, add_dtype))
            keys = local_key_blocks(keep_key[:, None, :, None], c.window).transpose(-2, -1)  # (b * nb, 1, 1, span)
            own = torch.arange(span, device=device)[None] == torch.arange(block, device=device)[:, None] + span - block
            keep_pad = keys | own  # (b * nb, 1, block, span)
        else:
            if not c.padding:
                return None, None
            causal = causal_mask(t, t, device)[None, None]  # (1, 1, t, t)
            keep_pad = keep_key[:, None, None, :] | torch.eye(t, dtype=torch.bool, device=device)  # (b, 1, t, t)
        if c.mask_kind == "bool":
            return causal & keep_pad, None
        if c.mask_kind == "additive":
            return None, to_additive(causal & keep_pad, add_dtype)
        return causal, to_additive(keep_pad, add_dtype)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (b, t) -> (b, t, vocab)
        if tokens.dim() != 2 or tokens.shape[1] > self.config.max_seq_len:
            raise ValueError("expected tokens of shape (b, t) with t <= %d, got %s"
                             % (self.config.max_seq_len, tuple(tokens.shape)))
        x = self.embed(tokens)  # (b, t, c)
        # Rotary tables for the length at hand (no fixed max-length table, no parameters).
        cos, sin = rope_tables(0, tokens.shape[1], self.head_dim, self.config.rope_base, tokens.device,
                               rope_dtype(x))
        bool_mask, additive = self.build_masks(tokens, x.dtype)
        for block in self.blocks:
            x = self.checkpointed(block, x, cos, sin, bool_mask, additive)
        return self.head(self.norm(x))


# --- sizes ---------------------------------------------------------------------

#: tiny: 2 blocks, width 32, 4 heads (2 KV heads for GQA), 32 tokens (window 16, linear chunks of 8), and up
#: to the audit's 8192 (RoPE: a longer limit costs no parameters);
#: base: the config defaults (6 blocks, width 512, 8 heads of 64, window 256, chunks of 64, up to 8192 tokens).
_TINY = dict(vocab_size=32, dim=32, depth=2, heads=4, kv_heads=2, window=16, chunk=8, mlp_ratio=2, max_seq_len=8192,
             default_sizes=(32,))
_DESCRIPTIONS = {
    "mha": "multi-head attention",
    "gqa": "grouped-query attention",
    "mqa": "multi-query attention (one KV head)",
    "linear": "causal linear attention, ELU+1 features, chunked running sums",
    "sliding_window": "sliding-window attention in blocks of the window (O(t * window))",
}
#: Unpadded twins of the full-attention variants: no mask tensor at all (SDPA is_causal), so a
#: GPU may run PyTorch's flash or memory-efficient kernel.
_CAUSAL_VARIANTS = ("mha", "gqa", "mqa")
_FAULT_TINY = AttentionLMConfig(variant="gqa", mask_kind="additive", mask_dtype_fault=True, **_TINY)

# --- registrations -------------------------------------------------------------

for _variant, _what in _DESCRIPTIONS.items():
    register_model(
        "attention_%s_tiny" % _variant, AttentionLM, AttentionLMConfig(variant=_variant, **_TINY),
        family="attention", description="2-block LM, width 32, seq 32: %s, bool causal + additive padding" % _what,
    )
    register_model(
        "attention_%s_base" % _variant, AttentionLM, AttentionLMConfig(variant=_variant),
        family="attention", description="6-block LM, width 512, 8 heads, RoPE, seq up to 8192: %s" % _what,
    )

for _variant in _CAUSAL_VARIANTS:
    _what = _DESCRIPTIONS[_variant]
    register_model(
        "attention_%s_causal_tiny" % _variant, AttentionLM, AttentionLMConfig(variant=_variant, padding=False, **_TINY),
        family="attention", description="2-block LM, width 32, seq 32: %s, unpadded, is_causal (no mask)" % _what,
    )
    register_model(
        "attention_%s_causal_base" % _variant, AttentionLM, AttentionLMConfig(variant=_variant, padding=False),
        family="attention",
        description="6-block LM, width 512, 8 heads, RoPE, seq up to 8192: %s, unpadded, is_causal (no mask)" % _what,
    )

register_model(
    "attention_mask_dtype_fault_tiny", AttentionLM, _FAULT_TINY,
    family="attention", fault=True,
    description="GQA with a float32 additive mask never cast to the query dtype: bf16/fp16 dtype error",
)
