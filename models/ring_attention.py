"""Ring attention in a small causal token LM (seed 003: the ``RingAttention`` path of ``SOTAAttention2025``).

Re-implements the Ring rung of the router of audit report 003 ("AstroBio-Gen System
Hardening & Production Readiness", 2025-10-01,
``models/sota_attention_2025.py``: "Flash 3.0, Ring, Sliding Window, Linear, Mamba";
the audit lists ``RingAttention`` under "mask dtype, scaling" and asks for multi-GPU
validation). Ring attention (Liu et al., 2023) shards a sequence over ``n_ring``
devices: device ``i`` keeps query block ``i`` and the key/value block it was given,
and the key/value blocks travel round the ring, one hop per step, ``n_ring`` steps in
all. Each step attends the resident queries to the visiting block and merges the
result with an online (flash-style) softmax: a running max ``m``, a running
denominator ``l`` and a running numerator ``acc``. After the last hop every query
has seen every key exactly once, so the output equals full attention.

What this file does:

* the ring on one device: the sequence (padded at the end to ``n * block``, which
  causality hides from every real query) is cut into ``n <= n_ring`` blocks, and
  the visiting blocks are a Python list rotated by one each step (the send/recv),
  the devices a loop; a device whose visitor lies wholly in its future skips the
  step (the load imbalance of causal ring attention); the diagonal step, first,
  applies the causal mask inside the block;
* accumulators ``m``, ``l``, ``acc`` (and the backward's ``dq``, ``dk``, ``dv``) in
  float32, or float64 for a float64 model (``at_least_float32``); the block matmuls
  run in the activations' dtype, as flash kernels do;
* a hand-written backward (``RingAttentionFunction``), itself a ring pass: forward
  saves only q, k, v, the output and the per-query log-sum-exp; backward recomputes
  each block's probabilities, keeps ``dq`` at home and sends ``dk``/``dv`` round the
  ring with their blocks. Memory is O(t * head_dim) saved plus O(block**2) per step,
  never the (t, t) matrix that matmul-softmax attention keeps for its backward;
* explicit ``head_dim ** -0.5`` scaling (audit issue 2), applied to q before the product;
* key padding as a boolean key mask that travels with its block, where a query
  always keeps its own position, so no row is ever fully masked (audit issue 1: no
  additive mask whose dtype could go wrong).

How it differs: one device, so no communication and no overlap of compute with
transfer (the point of the real ring); blocks are plain matmul-softmax, not flash
kernels; multi-head attention only (no GQA); no dropout.

Fault twin ``ring_attention_mask_dtype_fault_tiny``: the audit's own fix for issue 1,
applied to the ring: the key padding mask is built additive in float32 with shape
(b, 1, 1, t) (no own-position keep) and cast with ``.to(dtype=query.dtype)``. float32's
minimum becomes ``-inf`` in bf16 and fp16, so a left-padded query, whose every
visible key is padding, has ``m = -inf`` after its diagonal step, and the online
softmax's ``exp(m - m_new)`` is ``exp(-inf + inf) = NaN``; the NaN spreads through the
next block's values. In fp32 and float64 the mask stays finite and the padded rows
are a harmless average: the harness flags the fault in bf16/fp16/autocast only.

Synthetic task (``models._tokens``): induction copies; the metric is next-token
accuracy on the second copy. The benchmark inputs left-pad every second sequence.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import nn

from models._attention import merge_heads, split_heads, to_additive
from models._base import at_least_float32
from models._registry import register_model
from models._tokens import PAD_ID, TokenLanguageModel

# --- the ring ------------------------------------------------------------------


def ring_layout(t: int, n_ring: int) -> Tuple[int, int]:
    """(block, n): ``n <= n_ring`` blocks of ``block`` tokens covering ``t`` (the last may be padding)."""
    block = -(-t // n_ring)
    return block, -(-t // block)


def _blocks(x: Optional[torch.Tensor], n: int, block: int, dim: int, fill=0) -> List[Optional[torch.Tensor]]:
    """``x`` padded at the end of ``dim`` to ``n * block`` with ``fill``, cut into ``n`` blocks."""
    if x is None:
        return [None] * n
    pad = n * block - x.shape[dim]
    if pad:
        shape = list(x.shape)
        shape[dim] = pad
        x = torch.cat([x, torch.full(shape, fill, dtype=x.dtype, device=x.device)], dim=dim)
    return list(x.split(block, dim=dim))


def _mask_blocks(key_mask: Optional[torch.Tensor], n: int, block: int) -> List[Optional[torch.Tensor]]:
    """The (b, t) key mask in ``n`` blocks; padded keys are kept (causality hides them anyway)."""
    fill = True if key_mask is not None and key_mask.dtype == torch.bool else 0
    return _blocks(key_mask, n, block, 1, fill=fill)


def _block_scores(q_i: torch.Tensor, k_j: torch.Tensor, scale: float, acc_dtype: torch.dtype,
                  key_mask_j: Optional[torch.Tensor], diagonal: bool, keep_self: bool) -> torch.Tensor:
    """Masked scores of query block i against key block j, (b, h, blk, blk) in ``acc_dtype``.

    ``key_mask_j`` is a boolean keep-mask or an additive mask of the block's keys, (b, blk).
    On the diagonal block the causal mask applies inside the block, and ``keep_self``
    keeps each query's own key whatever the key mask says.
    """
    s = at_least_float32(torch.matmul(q_i * scale, k_j.transpose(-2, -1))).to(acc_dtype)  # (b, h, blk, blk)
    blk = s.shape[-1]
    keep = None
    if key_mask_j is not None:
        if key_mask_j.dtype == torch.bool:
            keep = key_mask_j[:, None, None, :]  # (b, 1, 1, blk)
        else:
            s = s + key_mask_j[:, None, None, :]  # additive, in whatever dtype it was given
    if diagonal:
        idx = torch.arange(blk, device=s.device)
        if keep is not None and keep_self:
            keep = keep | (idx[None, :] == idx[:, None])  # a query's own key (on the diagonal block)
        causal = idx[None, :] <= idx[:, None]  # (blk, blk), key <= query
        keep = causal if keep is None else keep & causal
    if keep is not None:
        s = s.masked_fill(~keep, float("-inf"))
    return s


class RingAttentionFunction(torch.autograd.Function):
    """Causal ring attention on (b, h, t, d) q, k, v with a flash-style backward.

    Forward: online softmax over the ring; saves q, k, v, the output and the log-sum-exp.
    Backward: the same ring, recomputing each block's probabilities from the log-sum-exp.
    """

    @staticmethod
    def forward(ctx, q, k, v, key_mask, n_ring, scale, keep_self):
        t = q.shape[2]
        block, n = ring_layout(t, n_ring)
        acc_dtype = at_least_float32(q).dtype
        qs, ks, vs = (_blocks(x, n, block, 2) for x in (q, k, v))
        # Padded keys lie after every real query, so causality hides them whatever they hold.
        ms = _mask_blocks(key_mask, n, block)
        b, h, _, d = q.shape
        m = [q.new_full((b, h, block), float("-inf"), dtype=acc_dtype) for _ in range(n)]  # running max
        den = [q.new_zeros((b, h, block), dtype=acc_dtype) for _ in range(n)]  # running denominator
        num = [q.new_zeros((b, h, block, d), dtype=acc_dtype) for _ in range(n)]  # running numerator
        ring = [(j, ks[j], vs[j], ms[j]) for j in range(n)]  # device i holds ring[i]
        for _ in range(n):
            for i in range(n):
                j, k_j, v_j, mask_j = ring[i]
                if j > i:  # wholly in this device's future: nothing to do this step
                    continue
                s = _block_scores(qs[i], k_j, scale, acc_dtype, mask_j, j == i, keep_self)
                m_new = torch.maximum(m[i], s.amax(dim=-1))
                alpha = torch.exp(m[i] - m_new)  # rescales what was summed under the old max
                p = torch.exp(s - m_new[..., None])  # (b, h, blk, blk), <= 1
                den[i] = den[i] * alpha + p.sum(dim=-1)
                num[i] = num[i] * alpha[..., None] + at_least_float32(torch.matmul(p.to(v_j.dtype), v_j)).to(acc_dtype)
                m[i] = m_new
            ring = ring[-1:] + ring[:-1]  # one hop: device i receives device i - 1's block
        out = torch.cat([num[i] / den[i][..., None] for i in range(n)], dim=2)[:, :, :t]  # (b, h, t, d)
        lse = torch.cat([m[i] + torch.log(den[i]) for i in range(n)], dim=2)[:, :, :t]  # (b, h, t)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.key_mask, ctx.n_ring, ctx.scale, ctx.keep_self = key_mask, n_ring, scale, keep_self
        return out.to(q.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        key_mask, scale, keep_self = ctx.key_mask, ctx.scale, ctx.keep_self
        t = q.shape[2]
        block, n = ring_layout(t, ctx.n_ring)
        acc_dtype = out.dtype
        qs, ks, vs = (_blocks(x, n, block, 2) for x in (q, k, v))
        ms = _mask_blocks(key_mask, n, block)
        dos = _blocks(grad_out.to(q.dtype), n, block, 2)
        # delta_i = rowsum(dO * O): the softmax Jacobian's correction term, per query.
        deltas = _blocks((at_least_float32(grad_out).to(acc_dtype) * out).sum(dim=-1), n, block, 2)
        lses = _blocks(lse, n, block, 2)
        dq = [torch.zeros_like(x, dtype=acc_dtype) for x in qs]
        ring = [(j, ks[j], vs[j], ms[j], torch.zeros_like(ks[j], dtype=acc_dtype),
                 torch.zeros_like(vs[j], dtype=acc_dtype)) for j in range(n)]
        for _ in range(n):
            for i in range(n):
                j, k_j, v_j, mask_j, dk_j, dv_j = ring[i]
                if j > i:
                    continue
                s = _block_scores(qs[i], k_j, scale, acc_dtype, mask_j, j == i, keep_self)
                p = torch.exp(s - lses[i][..., None])  # (b, h, blk, blk): the forward's probabilities
                dv_j += at_least_float32(torch.matmul(p.to(v_j.dtype).transpose(-2, -1), dos[i])).to(acc_dtype)
                dp = at_least_float32(torch.matmul(dos[i], v_j.transpose(-2, -1))).to(acc_dtype)
                ds = (p * (dp - deltas[i][..., None])).to(q.dtype)
                dq[i] += at_least_float32(torch.matmul(ds, k_j)).to(acc_dtype) * scale
                dk_j += at_least_float32(torch.matmul(ds.transpose(-2, -1), qs[i])).to(acc_dtype) * scale
            ring = ring[-1:] + ring[:-1]  # dk, dv travel with their blocks and are home after n hops
        dk = [None] * n
        dv = [None] * n
        for j, _, _, _, dk_j, dv_j in ring:
            dk[j], dv[j] = dk_j, dv_j
        grads = [torch.cat(g, dim=2)[:, :, :t].to(x.dtype) for g, x in ((dq, q), (dk, k), (dv, v))]
        return grads[0], grads[1], grads[2], None, None, None, None


def ring_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_ring: int, scale: float,
                   key_mask: Optional[torch.Tensor] = None, keep_self: bool = True) -> torch.Tensor:
    """Causal attention of (b, h, t, d) q, k, v computed round a ring of ``n_ring`` blocks.

    ``key_mask`` (b, t): boolean (True = key may be attended) or additive; with
    ``keep_self`` a query always attends its own position. Returns (b, h, t, d).
    """
    if n_ring < 1:
        raise ValueError("n_ring must be at least 1, got %d" % n_ring)
    return RingAttentionFunction.apply(q, k, v, key_mask, n_ring, scale, keep_self)


# --- blocks --------------------------------------------------------------------

class RingSelfAttention(nn.Module):
    """Multi-head causal self-attention whose core is ``ring_attention``."""

    def __init__(self, dim: int, heads: int, n_ring: int, scale: Optional[float] = None,
                 mask_dtype_fault: bool = False):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        # Explicit, per the audit (issue 2); never left to a sub-module's default.
        self.scaling = self.head_dim ** -0.5 if scale is None else scale
        self.n_ring = n_ring
        self.mask_dtype_fault = mask_dtype_fault
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_keep: Optional[torch.Tensor]) -> torch.Tensor:  # (b, t, c)
        q, k, v = (split_heads(part, self.heads) for part in self.qkv(x).chunk(3, dim=-1))  # (b, h, t, d)
        key_mask, keep_self = key_keep, True
        if self.mask_dtype_fault and key_keep is not None:
            # The audit's fix for issue 1 as written: an additive (b, 1, 1, t) mask built in float32,
            # then ``attention_mask.to(dtype=query.dtype)``; float32's minimum is -inf in bf16/fp16,
            # and a (b, 1, 1, t) key mask cannot keep a padded query's own position.
            key_mask, keep_self = to_additive(key_keep, torch.float32).to(dtype=q.dtype), False
        out = ring_attention(q, k, v, self.n_ring, self.scaling, key_mask, keep_self)
        return self.out_proj(merge_heads(out))  # (b, t, c)


class RingBlock(nn.Module):
    """Pre-norm block: x + ring_attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int, n_ring: int, mlp_ratio: int, scale: Optional[float],
                 mask_dtype_fault: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = RingSelfAttention(dim, heads, n_ring, scale, mask_dtype_fault)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x: torch.Tensor, key_keep: Optional[torch.Tensor]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), key_keep)  # (b, t, c)
        return x + self.mlp(self.norm2(x))


# --- model ---------------------------------------------------------------------

@dataclass(frozen=True)
class RingAttentionLMConfig:
    vocab_size: int = 1024
    dim: int = 512
    depth: int = 6
    heads: int = 8
    n_ring: int = 8  # the ring's devices: one node of 8 accelerators
    mlp_ratio: int = 4
    scale: Optional[float] = None  # None: head_dim ** -0.5
    max_seq_len: int = 4096
    min_seq_len: int = 4
    mask_dtype_fault: bool = False  # the fault twin: float32 additive (b,1,1,t) key mask cast to the query dtype
    default_sizes: Tuple[int, ...] = (16, 256, 4096)


class RingAttentionLM(TokenLanguageModel):
    """A small causal LM (learned positions, pre-norm blocks) whose attention runs round a ring."""

    def __init__(self, config: RingAttentionLMConfig):
        super().__init__(config)
        c = config
        if c.dim % c.heads:
            raise ValueError("dim must be divisible by heads, got dim=%d heads=%d" % (c.dim, c.heads))
        if c.n_ring < 1:
            raise ValueError("n_ring must be at least 1, got %d" % c.n_ring)
        self.embed = nn.Embedding(c.vocab_size, c.dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, c.max_seq_len, c.dim).normal_(std=0.02))
        self.blocks = nn.ModuleList([RingBlock(c.dim, c.heads, c.n_ring, c.mlp_ratio, c.scale, c.mask_dtype_fault)
                                     for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (b, t) -> (b, t, vocab)
        if tokens.dim() != 2 or tokens.shape[1] > self.config.max_seq_len:
            raise ValueError("expected tokens of shape (b, t) with t <= %d, got %s"
                             % (self.config.max_seq_len, tuple(tokens.shape)))
        t = tokens.shape[1]
        x = self.embed(tokens) + self.pos_embed[:, :t]  # (b, t, c)
        key_keep = tokens != PAD_ID  # (b, t): travels round the ring with its key block
        for block in self.blocks:
            x = self.checkpointed(block, x, key_keep)
        return self.head(self.norm(x))


# --- sizes ---------------------------------------------------------------------

#: tiny: 2 blocks, width 32, 4 heads, a ring of 4 (blocks of 8 at 32 tokens); base: the config defaults.
_TINY = dict(vocab_size=32, dim=32, depth=2, heads=4, n_ring=4, mlp_ratio=2, max_seq_len=64, default_sizes=(32,))
_TINY_CONFIG = RingAttentionLMConfig(**_TINY)
_BASE_CONFIG = RingAttentionLMConfig()
_FAULT_TINY = RingAttentionLMConfig(mask_dtype_fault=True, **_TINY)

# --- registrations -------------------------------------------------------------

register_model(
    "ring_attention_tiny", RingAttentionLM, _TINY_CONFIG, family="attention",
    description="2-block LM, width 32, seq 32: causal ring attention over 4 blocks, online softmax",
)
register_model(
    "ring_attention_base", RingAttentionLM, _BASE_CONFIG, family="attention",
    description="6-block LM, width 512, 8 heads, seq up to 4096: causal ring attention over 8 blocks",
)
register_model(
    "ring_attention_mask_dtype_fault_tiny", RingAttentionLM, _FAULT_TINY, family="attention", fault=True,
    description="ring attention with the audit's float32 (b,1,1,t) key mask cast to the query dtype: "
                "-inf in bf16/fp16, NaN from the online softmax on padded rows",
)
