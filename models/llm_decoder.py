"""Decoder-only LM with grouped-query attention, RoPE and a KV-cache (seed 003).

Re-implements the language-model core of AstroBio-Gen's ``RebuiltLLMIntegration`` /
``ProductionLLMIntegration`` of audit report 003 ("AstroBio-Gen System Hardening &
Production Readiness", 2025-10-01): a LLaMA-style decoder
(RMSNorm, rotary position embeddings, grouped-query attention, SwiGLU MLP) with the
KV-cache the audit found incomplete (issue 3): every attention layer returns its
``(key, value)`` after RoPE, unexpanded to the query heads (the memory GQA saves), and
a decode step appends to it and attends over the whole cache.

Training (``forward``) is next-token prediction over the sequence. Inference (``infer``)
prefills the prompt in one pass, then runs ``decode_steps`` greedy steps (argmax, so
deterministic) and returns the logits of every position, prompt and decoded:
(b, t + decode_steps, vocab). ``use_cache`` picks how the steps run: against the
KV-cache (``llm_decoder_*``), or re-running the whole sequence for every new token
(``llm_decoder_nocache_*``), so the audit's with/without-cache comparison is two models
with the same weights and the same logits. The prompt plus the decode steps must fit
``max_seq_len`` (8192 + 16 for ``_base``: the audit's longest sequence); ``size_error``
says so otherwise. The rotary tables are built per call for the positions used.

No call passes a mask tensor: the attention is causal through
``attend(..., is_causal=True)`` (SDPA's flag for a prefill, so a GPU may pick its flash
kernel; an offset causal mask only for a multi-token chunk after a cache; nothing for a
single decode step).

How it differs: no PEFT/LoRA, no quantisation, no beam search or streaming, random
initialisation. The report's 13.14B-parameter model would not fit a benchmark step, so
``_base`` is a ~0.5B model of the same family (width 2048, 16 query / 4 KV heads).
Attention goes through ``models._attention.attend`` (SDPA where the build has it, the
explicit matmul-softmax on 1.10), with explicit ``head_dim ** -0.5`` scaling.

Synthetic task (``models._tokens``, shared with the attention zoo): induction sequences
(a random segment repeated); the metric is greedy next-token accuracy on the second
copy, higher is better (``second_copy_accuracy``).
"""
import dataclasses
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

# rope_tables and apply_rope live in models._attention, shared with the attention zoo.
from models._attention import apply_rope, attend, repeat_kv, resolve_attn_impl, rope_dtype, rope_tables
from models._registry import register_model
from models._tokens import TokenLanguageModel, next_token_targets

KVCache = Tuple[torch.Tensor, torch.Tensor]

# --- blocks --------------------------------------------------------------------

class RMSNorm(nn.Module):
    """Root-mean-square norm; the statistic is taken in float32 so fp16 squares cannot overflow."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, t, c)
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


class GQAttention(nn.Module):
    """Grouped-query attention with RoPE and an optional KV-cache."""

    def __init__(self, dim: int, heads: int, kv_heads: int, impl: str):
        super().__init__()
        self.heads = heads
        self.kv_heads = kv_heads
        self.head_dim = dim // heads
        self.scaling = self.head_dim ** -0.5
        self.impl = impl
        self.q_proj = nn.Linear(dim, heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(heads * self.head_dim, dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                past: Optional[KVCache] = None) -> Tuple[torch.Tensor, KVCache]:  # (b, t, c)
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (b, h, t, d)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)  # (b, kv, t, d)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (b, kv, s, d)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v)
        n_rep = self.heads // self.kv_heads
        # Causal without a mask tensor: SDPA's is_causal (flash-eligible) for a prefill, the
        # offset causal mask for a chunk after a cache, no mask for a single decode step.
        out = attend(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), None, self.scaling, self.impl, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, self.heads * self.head_dim)), present


class SwiGLU(nn.Module):
    """LLaMA MLP: down(silu(gate(x)) * up(x))."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class DecoderBlock(nn.Module):
    """Pre-norm decoder block; returns the new KV-cache entry when ``use_cache``."""

    def __init__(self, dim: int, heads: int, kv_heads: int, mlp_hidden: int, impl: str):
        super().__init__()
        self.attn_norm = RMSNorm(dim)
        self.attn = GQAttention(dim, heads, kv_heads, impl)
        self.mlp_norm = RMSNorm(dim)
        self.mlp = SwiGLU(dim, mlp_hidden)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                past: Optional[KVCache] = None, use_cache: bool = False):
        h, present = self.attn(self.attn_norm(x), cos, sin, past)
        x = x + h
        x = x + self.mlp(self.mlp_norm(x))
        return (x, present) if use_cache else x


# --- model ---------------------------------------------------------------------

@dataclass(frozen=True)
class LLMDecoderConfig:
    vocab_size: int = 32000
    dim: int = 2048
    depth: int = 8
    heads: int = 16
    kv_heads: int = 4
    mlp_hidden: int = 5632
    rope_base: float = 10000.0
    # 8192-token prompts (the audit's longest) plus the decode steps; RoPE tables are built
    # per call for the positions used, so this bounds sizes, not memory.
    max_seq_len: int = 8192 + 16
    min_seq_len: int = 4
    decode_steps: int = 16
    # infer's decoding: True appends to a KV-cache; False re-runs the whole sequence for
    # every decoded token (the audit's router classes lacked the cache), to compare the two.
    use_cache: bool = True
    attn_impl: str = "auto"
    default_sizes: Tuple[int, ...] = (256, 4096)


class LLMDecoder(TokenLanguageModel):
    """LLaMA-style decoder LM: RMSNorm, RoPE, GQA, SwiGLU, untied LM head, KV-cached decoding."""

    size_axis = "prompt length in tokens (decode_steps more are generated by infer)"

    def __init__(self, config: LLMDecoderConfig):
        super().__init__(config)
        c = config
        if c.dim % c.heads or (c.dim // c.heads) % 2:
            raise ValueError("dim / heads must be an even integer (RoPE rotates pairs), got dim=%d heads=%d"
                             % (c.dim, c.heads))
        if c.kv_heads < 1 or c.heads % c.kv_heads:
            raise ValueError("heads must be a multiple of kv_heads >= 1, got heads=%d kv_heads=%d"
                             % (c.heads, c.kv_heads))
        if c.decode_steps < 0:
            raise ValueError("decode_steps must be >= 0, got %d" % c.decode_steps)
        self.attn_impl = resolve_attn_impl(c.attn_impl)
        self.head_dim = c.dim // c.heads
        self.embed = nn.Embedding(c.vocab_size, c.dim)
        self.blocks = nn.ModuleList(
            [DecoderBlock(c.dim, c.heads, c.kv_heads, c.mlp_hidden, self.attn_impl) for _ in range(c.depth)]
        )
        self.norm = RMSNorm(c.dim)
        self.head = nn.Linear(c.dim, c.vocab_size, bias=False)

    @classmethod
    def size_error(cls, config: LLMDecoderConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)  # min_seq_len <= size <= max_seq_len
        if reason is None and size + config.decode_steps > config.max_seq_len:
            reason = "prompt length %d plus %d decode steps exceeds max_seq_len %d (prompt at most %d)" % (
                size, config.decode_steps, config.max_seq_len, config.max_seq_len - config.decode_steps)
        return reason

    def _check_tokens(self, tokens: torch.Tensor, extra: int) -> None:
        if tokens.dim() != 2:
            raise ValueError("expected tokens of shape (b, t), got %s" % (tuple(tokens.shape),))
        if tokens.shape[1] + extra > self.config.max_seq_len:
            raise ValueError("sequence length %d plus %d decode steps exceeds max_seq_len %d"
                             % (tokens.shape[1], extra, self.config.max_seq_len))

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:  # (b, t) -> (b, t, c)
        """The final normed hidden states of a full causal pass over ``tokens`` (no cache)."""
        t = tokens.shape[1]
        x = self.embed(tokens)  # (b, t, c)
        cos, sin = rope_tables(0, t, self.head_dim, self.config.rope_base, tokens.device, rope_dtype(x))
        for block in self.blocks:
            x = self.checkpointed(block, x, cos, sin)
        return self.norm(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (b, t) -> (b, t, vocab)
        self._check_tokens(tokens, 0)
        return self.head(self.hidden(tokens))

    def step(self, tokens: torch.Tensor, cache: Optional[List[KVCache]] = None
             ) -> Tuple[torch.Tensor, List[KVCache]]:
        """Run ``tokens`` (b, t) after the ``cache``d positions; return their logits and the grown cache."""
        start = 0 if cache is None else cache[0][0].shape[2]
        t = tokens.shape[1]
        x = self.embed(tokens)
        cos, sin = rope_tables(start, t, self.head_dim, self.config.rope_base, tokens.device, rope_dtype(x))
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, present = block(x, cos, sin, None if cache is None else cache[i], use_cache=True)
            new_cache.append(present)
        return self.head(self.norm(x)), new_cache

    def infer(self, tokens: torch.Tensor) -> torch.Tensor:  # (b, t) -> (b, t + decode_steps, vocab)
        """Prefill ``tokens``, then ``decode_steps`` greedy steps; the logits of every position.

        With ``use_cache`` each step runs the new token against the KV-cache; without, it
        re-runs the whole sequence so far (O(t) work per token instead of O(1) layers'
        worth) and keeps the last position's logits: the same logits, to rounding.
        """
        steps = self.config.decode_steps
        self._check_tokens(tokens, steps)
        if not self.config.use_cache:
            return self._infer_uncached(tokens, steps)
        logits, cache = self.step(tokens)
        outputs = [logits]
        for _ in range(steps):
            next_token = outputs[-1][:, -1].argmax(dim=-1, keepdim=True)  # (b, 1)
            logits, cache = self.step(next_token, cache)
            outputs.append(logits)
        return torch.cat(outputs, dim=1)

    def _infer_uncached(self, tokens: torch.Tensor, steps: int) -> torch.Tensor:
        outputs = [self.head(self.hidden(tokens))]
        for _ in range(steps):
            next_token = outputs[-1][:, -1].argmax(dim=-1, keepdim=True)  # (b, 1)
            tokens = torch.cat([tokens, next_token], dim=1)
            # The whole prefix again; only the new position goes through the LM head.
            outputs.append(self.head(self.hidden(tokens)[:, -1:]))
        return torch.cat(outputs, dim=1)

    def example_inputs(self, batch_size: int, size, gen):
        self.check_size(size)
        tokens = gen.integers(0, self.config.vocab_size, (batch_size, size))
        return (tokens,), next_token_targets(tokens, pad_id=None)  # no padding: 0 is a token

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # infer's decoded positions have no target
        return super().loss(outputs[:, : target.shape[1]], target)


# --- sizes ---------------------------------------------------------------------

# max_seq_len: the audit's 8192-token prompts plus the decode steps (RoPE: the limit costs no parameters)
_TINY = LLMDecoderConfig(vocab_size=32, dim=32, depth=2, heads=4, kv_heads=2, mlp_hidden=64, max_seq_len=8192 + 4,
                         decode_steps=4, default_sizes=(32,))
_BASE = LLMDecoderConfig()  # ~0.5B parameters: width 2048, 8 blocks, 16 query / 4 KV heads

# --- registrations -------------------------------------------------------------

register_model(
    "llm_decoder_tiny", LLMDecoder, _TINY,
    family="llm", description="2-block LLaMA-style decoder, width 32, 4 query / 2 KV heads, 4 cached decode steps",
)
register_model(
    "llm_decoder_base", LLMDecoder, _BASE,
    family="llm", description="8-block LLaMA-style decoder, width 2048, 16 query / 4 KV heads, RoPE, KV-cache",
)
register_model(
    "llm_decoder_nocache_tiny", LLMDecoder, dataclasses.replace(_TINY, use_cache=False),
    family="llm", description="llm_decoder_tiny decoding without a KV-cache: 4 steps re-running the whole prefix",
)
register_model(
    "llm_decoder_nocache_base", LLMDecoder, dataclasses.replace(_BASE, use_cache=False),
    family="llm", description="llm_decoder_base decoding without a KV-cache: 16 steps re-running the whole prefix",
)
