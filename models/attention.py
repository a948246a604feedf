"""Attention zoo: MHA, GQA, MQA, linear and sliding-window attention in a small token LM (seed 003).

Re-implements the attention family audited in ``shared/seeds/003_*`` (AstroBio-Gen's
``sota_attention_2025.py`` and friends): multi-head, grouped-query and multi-query
attention with a fused-kernel fallback chain, causal linear attention and sliding-window
attention. Each variant drives a small pre-norm transformer language model (token and
learned position embeddings -> N blocks -> LM head), so every variant has a real loss.

What the audit asked for and this file does:

* the fallback chain (``models._attention.attend``, shared by the zoo):
  ``torch.nn.functional.scaled_dot_product_attention`` where the build has it (2.0+,
  feature-detected), an explicit matmul-softmax otherwise (1.10) or with
  ``attn_impl="math"``; the audit's Flash/xFormers rungs need CUDA extensions and are
  left out;
* explicit ``head_dim ** -0.5`` scaling (issue 2): passed as SDPA's ``scale=`` where that
  argument exists (2.1+), otherwise folded into ``q`` before SDPA so that SDPA's own
  default ``1/sqrt(head_dim)`` gives the configured scale;
* masks (issue 1): every block accepts a boolean mask (True = may attend), an additive
  mask, or both (``mask_kind`` ``"bool"``, ``"additive"`` or ``"mixed"``: causal as bool
  plus key padding as additive); the additive mask is cast to the query dtype inside the
  attention, which is what autocast and pure fp16/bf16 need;
* linear attention with the ELU+1 feature map, causal through cumulative sums; key
  padding becomes a multiplicative key weight ``exp(additive mask)``; it needs
  O(t * head_dim**2) memory per head, and ``cumsum`` has no bf16 CPU kernel in 1.10;
* sliding-window attention as a banded causal mask.

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
The benchmark inputs left-pad every second sequence (pad id 0), exercising the masks.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from models._attention import attend, cast_additive, causal_mask, merge_masks, repeat_kv, resolve_attn_impl, to_additive
from models._base import ZooModel, at_least_float32
from models._registry import register_model
from models._tokens import IGNORE_INDEX, PAD_ID, induction_tokens, next_token_targets, second_copy_accuracy

VARIANTS = ("mha", "gqa", "mqa", "linear", "sliding_window")
MASK_KINDS = ("bool", "additive", "mixed")

# --- blocks --------------------------------------------------------------------

class SelfAttention(nn.Module):
    """Multi-head attention with ``kv_heads`` key/value heads: MHA, GQA (1 < kv < heads) or MQA (kv = 1)."""

    def __init__(self, dim: int, heads: int, kv_heads: int, impl: str, scale: Optional[float] = None,
                 cast_mask: bool = True):
        super().__init__()
        self.heads = heads
        self.kv_heads = kv_heads
        self.head_dim = dim // heads
        # Explicit, per the audit; never left to a sub-module's default.
        self.scaling = self.head_dim ** -0.5 if scale is None else scale
        self.impl = impl
        self.cast_mask = cast_mask
        self.q_proj = nn.Linear(dim, heads * self.head_dim)
        self.k_proj = nn.Linear(dim, kv_heads * self.head_dim)
        self.v_proj = nn.Linear(dim, kv_heads * self.head_dim)
        self.out_proj = nn.Linear(heads * self.head_dim, dim)

    def forward(self, x: torch.Tensor, bool_mask: Optional[torch.Tensor] = None,
                additive: Optional[torch.Tensor] = None) -> torch.Tensor:  # (b, t, c)
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (b, h, t, d)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)  # (b, kv, t, d)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        n_rep = self.heads // self.kv_heads
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        mask = merge_masks(bool_mask, additive, q.dtype, cast=self.cast_mask)
        out = attend(q, k, v, mask, self.scaling, self.impl)  # (b, h, t, d)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


class LinearAttention(nn.Module):
    """Causal linear attention (Katharopoulos et al.): ELU+1 features, running sums over time.

    Masks act on keys only (causality is the cumulative sum): a boolean key mask zeroes
    a key's features, an additive one scales them by ``exp(mask)``, the multiplicative
    form of adding ``mask`` to the scores before a softmax.
    """

    def __init__(self, dim: int, heads: int, scale: Optional[float] = None, eps: float = 1e-4):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scaling = self.head_dim ** -0.5 if scale is None else scale
        self.eps = eps
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bool_mask: Optional[torch.Tensor] = None,
                additive: Optional[torch.Tensor] = None) -> torch.Tensor:  # (b, t, c)
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (b, h, t, d)
        k = self.k_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        q = F.elu(q * self.scaling) + 1.0
        k = F.elu(k) + 1.0
        if additive is not None:
            k = k * torch.exp(cast_additive(additive, k.dtype))  # key mask (b, 1, t, 1)
        if bool_mask is not None:
            k = k.masked_fill(~bool_mask, 0.0)
        kv = torch.einsum("bhtd,bhte->bhtde", k, v).cumsum(dim=2)  # (b, h, t, d, d)
        num = torch.einsum("bhtd,bhtde->bhte", q, kv)  # (b, h, t, d)
        den = (q * k.cumsum(dim=2)).sum(dim=-1, keepdim=True)  # (b, h, t, 1)
        out = num / den.clamp_min(self.eps)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim: int, attn: nn.Module, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x: torch.Tensor, bool_mask: Optional[torch.Tensor] = None,
                additive: Optional[torch.Tensor] = None) -> torch.Tensor:  # (b, t, c)
        x = x + self.attn(self.norm1(x), bool_mask, additive)
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
    mlp_ratio: int = 4
    mask_kind: str = "mixed"
    attn_impl: str = "auto"
    scale: Optional[float] = None  # None: head_dim ** -0.5
    max_seq_len: int = 4096
    min_seq_len: int = 4
    mask_dtype_fault: bool = False  # the fault twin: float32 additive mask, never cast
    default_sizes: Tuple[int, ...] = (16, 256, 4096)


class AttentionLM(ZooModel):
    """A small causal LM whose blocks all use the configured attention variant."""

    size_axis = "sequence length in tokens"
    task_metric_name = "second_copy_accuracy"
    task_higher_is_better = True

    def __init__(self, config: AttentionLMConfig):
        super().__init__(config)
        c = config
        if c.variant not in VARIANTS:
            raise ValueError("variant must be one of %s, got %r" % (", ".join(VARIANTS), c.variant))
        if c.mask_kind not in MASK_KINDS:
            raise ValueError("mask_kind must be one of %s, got %r" % (", ".join(MASK_KINDS), c.mask_kind))
        if c.dim % c.heads:
            raise ValueError("dim must be divisible by heads, got dim=%d heads=%d" % (c.dim, c.heads))
        kv_heads = {"mha": c.heads, "mqa": 1, "linear": c.heads, "sliding_window": c.heads}.get(c.variant, c.kv_heads)
        if kv_heads < 1 or c.heads % kv_heads:
            raise ValueError("heads must be a multiple of kv_heads >= 1, got heads=%d kv_heads=%d"
                             % (c.heads, kv_heads))
        if c.variant == "sliding_window" and c.window < 1:
            raise ValueError("window must be at least 1, got %d" % c.window)
        # The audit's hand-written GQA added the mask with matmuls; the fault twin keeps that path.
        self.attn_impl = "math" if c.mask_dtype_fault else resolve_attn_impl(c.attn_impl)
        self.embed = nn.Embedding(c.vocab_size, c.dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, c.max_seq_len, c.dim).normal_(std=0.02))
        blocks = []
        for _ in range(c.depth):
            if c.variant == "linear":
                attn: nn.Module = LinearAttention(c.dim, c.heads, c.scale)
            else:
                attn = SelfAttention(c.dim, c.heads, kv_heads, self.attn_impl, c.scale,
                                     cast_mask=not c.mask_dtype_fault)
            blocks.append(TransformerBlock(c.dim, attn, c.mlp_ratio))
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.vocab_size)

    @classmethod
    def size_error(cls, config: AttentionLMConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)
        if reason is None and not config.min_seq_len <= size <= config.max_seq_len:
            reason = "sequence length must be between %d and max_seq_len %d, got %d" % (
                config.min_seq_len, config.max_seq_len, size)
        return reason

    def build_masks(self, tokens: torch.Tensor, dtype: torch.dtype
                    ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """(boolean mask, additive mask) for ``tokens``; either may be None per ``mask_kind``.

        Softmax variants get (b|1, 1, t, t) masks: causal (banded for sliding_window) and
        key padding, where a query always keeps its own position so no row is fully
        masked. The linear variant gets (b, 1, t, 1) key masks (causality is structural,
        so ``"mixed"`` there means the additive key mask alone).
        The additive mask is built in ``dtype`` (the activations'); attention casts it to
        the query dtype, which differs under autocast.
        """
        c = self.config
        b, t = tokens.shape
        add_dtype = torch.float32 if c.mask_dtype_fault else dtype
        keep_key = (tokens != PAD_ID)  # (b, t)
        if c.variant == "linear":
            keep = keep_key[:, None, :, None]  # (b, 1, t, 1)
            if c.mask_kind == "bool":
                return keep, None
            return None, to_additive(keep, add_dtype)
        window = c.window if c.variant == "sliding_window" else None
        causal = causal_mask(t, t, tokens.device, window)[None, None]  # (1, 1, t, t)
        eye = torch.eye(t, dtype=torch.bool, device=tokens.device)
        keep_pad = keep_key[:, None, None, :] | eye  # (b, 1, t, t)
        if c.mask_kind == "bool":
            return causal & keep_pad, None
        if c.mask_kind == "additive":
            return None, to_additive(causal & keep_pad, add_dtype)
        return causal, to_additive(keep_pad, add_dtype)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (b, t) -> (b, t, vocab)
        if tokens.dim() != 2 or tokens.shape[1] > self.config.max_seq_len:
            raise ValueError("expected tokens of shape (b, t) with t <= %d, got %s"
                             % (self.config.max_seq_len, tuple(tokens.shape)))
        t = tokens.shape[1]
        x = self.embed(tokens) + self.pos_embed[:, :t]  # (b, t, c)
        bool_mask, additive = self.build_masks(tokens, x.dtype)
        for block in self.blocks:
            x = self.checkpointed(block, x, bool_mask, additive)
        return self.head(self.norm(x))

    def example_inputs(self, batch_size: int, size, gen):
        self.check_size(size)
        tokens = gen.integers(1, self.config.vocab_size, (batch_size, size))
        # Left-pad every second sequence by a quarter so the padding masks do work.
        tokens[1::2, : size // 4] = PAD_ID
        return (tokens,), next_token_targets(tokens)

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(at_least_float32(outputs).reshape(-1, outputs.shape[-1]), target.reshape(-1),
                               ignore_index=IGNORE_INDEX)

    def task_batch(self, batch_size: int, size, gen):
        self.check_size(size)
        tokens = induction_tokens(gen, batch_size, size, self.config.vocab_size)
        return (tokens,), next_token_targets(tokens)

    def task_metric(self, outputs: torch.Tensor, target: torch.Tensor) -> float:
        return second_copy_accuracy(outputs, target)


# --- sizes ---------------------------------------------------------------------

#: tiny: 2 blocks, width 32, 4 heads (2 KV heads for GQA), 32 tokens; base: the config defaults.
_TINY = dict(vocab_size=32, dim=32, depth=2, heads=4, kv_heads=2, window=16, mlp_ratio=2, max_seq_len=64,
             default_sizes=(32,))
_DESCRIPTIONS = {
    "mha": "multi-head attention",
    "gqa": "grouped-query attention",
    "mqa": "multi-query attention (one KV head)",
    "linear": "causal linear attention, ELU+1 features",
    "sliding_window": "sliding-window (banded causal) attention",
}
_FAULT_TINY = AttentionLMConfig(variant="gqa", mask_kind="additive", mask_dtype_fault=True, **_TINY)

# --- registrations -------------------------------------------------------------

for _variant, _what in _DESCRIPTIONS.items():
    register_model(
        "attention_%s_tiny" % _variant, AttentionLM, AttentionLMConfig(variant=_variant, **_TINY),
        family="attention", description="2-block LM, width 32, seq 32: %s, bool causal + additive padding" % _what,
    )
    register_model(
        "attention_%s_base" % _variant, AttentionLM, AttentionLMConfig(variant=_variant),
        family="attention", description="6-block LM, width 512, 8 heads, seq up to 4096: %s" % _what,
    )

register_model(
    "attention_mask_dtype_fault_tiny", AttentionLM, _FAULT_TINY,
    family="attention", fault=True,
    description="GQA with a float32 additive mask never cast to the query dtype: bf16/fp16 dtype error",
)
