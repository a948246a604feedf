"""Selective state-space (Mamba-style) token LM (seed 003: the ``Mamba`` path of ``SOTAAttention2025``).

Re-implements the Mamba rung of the router of audit report 003 ("AstroBio-Gen System
Hardening & Production Readiness", 2025-10-01,
``models/sota_attention_2025.py``: "Flash 3.0, Ring, Sliding Window, Linear, Mamba";
the audit asks for the router's mask dtypes to be standardised)
as Mamba's selective SSM block (Gu & Dao, 2023) in a small pre-norm LM: token
embedding -> N x (x + mixer(ln(x))) -> ln -> LM head. No position embedding: the
scan is causal and ordered by construction.

The mixer, as Mamba has it:

* ``in_proj`` to ``2 * expand * dim``: the SSM branch ``x`` and the gate ``z``;
* a short causal depthwise ``conv1d`` (kernel ``d_conv``) on ``x``, then SiLU;
* input-dependent ("selective") parameters from ``x_proj``: a low-rank ``dt``
  (rank ``ceil(dim / 16)``) lifted by ``dt_proj``, and ``B_t``, ``C_t`` of ``d_state``;
  ``delta = softplus(dt_proj(dt) + dt_bias)`` > 0;
* ``A = -exp(A_log)``, diagonal, one rate per channel x state, negative so the state
  decays; S4D-real initialisation ``A_log = log(1..d_state)``; ``dt_bias`` the inverse
  softplus of step sizes log-spaced in [``dt_min``, ``dt_max``] across channels;
* zero-order-hold discretisation ``Abar = exp(delta * A)``, ``Bbar = delta * B`` (Mamba's
  simplification of the ZOH ``B``), the scan ``h_t = Abar_t h_{t-1} + Bbar_t x_t``,
  ``y_t = C_t . h_t + D x_t``, gated by ``SiLU(z)``, then ``out_proj``.

The scan (``selective_scan``) is pure PyTorch, chunked in two levels so that it takes
about ``2 * sqrt(t)`` Python steps, not ``t``: the sequence is cut into chunks of
``L = ceil(sqrt(t))`` steps; a loop over the ``L`` positions runs every chunk at once
from a zero state; the decay from each chunk's start is ``exp(cumsum(log Abar))``
(``log Abar = delta * A`` <= 0, so it only underflows, harmlessly); a loop over the
chunks carries the state across. Only products of factors <= 1 and sums occur: the
scan is as stable as the sequential recurrence (the closed form
``exp(S_t) * cumsum(exp(-S_s) u_s)`` would overflow once a chunk decays past e^-88).
The scan runs in float32, or float64 for a float64 model (``at_least_float32``).

How it differs from Mamba: no fused CUDA kernel, so the (b, t, expand*dim, d_state)
states are materialised (several are alive at a train step's peak: the kernel
recomputes them instead), 16x the memory of the (b, t, expand*dim) stream; LayerNorm
instead of RMSNorm (1.10 has no RMSNorm); no residual in float32, no out_proj rescale
by depth. The learned ``A_log`` and ``dt`` bias are stored as shifts from their
Mamba initial values (buffers): the runner's seeded init redraws every non-constant
parameter, which would otherwise erase S4D-real's spread of timescales. ``A_log`` and
``D`` get no weight decay, as in Mamba. Base: dim 512 and 12 layers, Mamba's two
mixers per transformer block, so its parameter count matches ``attention_*_base``.

Fault twin ``selective_ssm_positive_a_fault_tiny`` (a real slip of Mamba
re-implementations): ``A = exp(A_log)``, the minus dropped. Abar > 1 and the state grows
like exp(sum delta * A), up to e^0.8 per step in the fastest channel of the tiny model:
inf in fp16 at the default 32 tokens (the float32 scan's output cast back), in fp32 and
bf16 too from about 128 tokens, while float64 stays finite there; the harness flags the
non-finite outputs. (Dropping the softplus on delta instead makes delta < 0 through
Mamba's negative inverse-softplus bias, and the scan overflows in float64 as well within
32 tokens: no finite reference to judge against, so it is not a twin here.)

Synthetic task (``models._tokens``): induction copies; the metric is next-token
accuracy on the second copy. The benchmark inputs left-pad every second sequence
(pad id 0): the SSM has no mask, the pad tokens are inputs like any other and their
targets are ignored, as Mamba trains.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from models._base import at_least_float32
from models._registry import register_model
from models._tokens import TokenLanguageModel

FAULTS = ("", "positive_a")

# --- the scan ------------------------------------------------------------------


def scan_chunk_length(t: int, chunk: Optional[int] = None) -> int:
    """The chunk length of ``selective_scan``: ``chunk``, or ``ceil(sqrt(t))`` (fewest Python steps)."""
    return max(1, min(t, chunk if chunk else int(math.ceil(math.sqrt(t)))))


def selective_scan(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   D: torch.Tensor, chunk: Optional[int] = None) -> torch.Tensor:
    """``y_t = C_t . h_t + D x_t`` with ``h_t = exp(delta_t A) h_{t-1} + delta_t B_t x_t``, ``h_0 = 0``.

    x, delta: (b, t, e); A: (e, n); B, C: (b, t, n); D: (e,). Computed in float32, or
    float64 for float64 inputs; returns (b, t, e) in that dtype. Two-level chunked scan
    (see the module docstring); ``chunk`` overrides the chunk length.
    """
    acc = at_least_float32(x).dtype
    x, delta, A, B, C, D = (t_.to(acc) for t_ in (x, delta, A, B, C, D))
    b, t, e = x.shape
    n = A.shape[-1]
    L = scan_chunk_length(t, chunk)
    nc = -(-t // L)
    log_a = delta[..., None] * A  # (b, t, e, n): log Abar
    u = (delta * x)[..., None] * B[:, :, None, :]  # (b, t, e, n): Bbar x
    pad = nc * L - t
    if pad:  # Abar = 1, input 0: the padded steps leave the state as it is
        log_a = torch.cat([log_a, log_a.new_zeros(b, pad, e, n)], dim=1)
        u = torch.cat([u, u.new_zeros(b, pad, e, n)], dim=1)
    log_a = log_a.reshape(b, nc, L, e, n)
    u = u.reshape(b, nc, L, e, n)
    a = torch.exp(log_a)
    # Level 1: every chunk from a zero state, all chunks at once, L steps.
    h = u.new_zeros(b, nc, e, n)
    local = []
    for i in range(L):
        h = a[:, :, i] * h + u[:, :, i]  # (b, nc, e, n)
        local.append(h)
    local_h = torch.stack(local, dim=2)  # (b, nc, L, e, n)
    decay = torch.exp(torch.cumsum(log_a, dim=2))  # (b, nc, L, e, n): prod of Abar from the chunk's start
    # Level 2: the state entering each chunk, nc steps on (b, e, n).
    carry = [u.new_zeros(b, e, n)]
    for c in range(nc - 1):
        carry.append(local_h[:, c, -1] + decay[:, c, -1] * carry[-1])
    h_all = local_h + decay * torch.stack(carry, dim=1)[:, :, None]  # (b, nc, L, e, n)
    h_all = h_all.reshape(b, nc * L, e, n)[:, :t]
    y = (h_all * C[:, :, None, :]).sum(dim=-1)  # (b, t, e): elementwise, so autocast keeps it in float32
    return y + x * D


# --- blocks --------------------------------------------------------------------

def _inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))  # log(exp(y) - 1), stable for small y


class SelectiveSSM(nn.Module):
    """Mamba's mixer: in_proj -> causal depthwise conv -> SiLU -> selective scan, gated by SiLU(z) -> out_proj."""

    def __init__(self, dim: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, dt_rank: Optional[int] = None,
                 dt_min: float = 1e-3, dt_max: float = 0.1, chunk: Optional[int] = None, fault: str = ""):
        super().__init__()
        inner = expand * dim
        self.inner, self.d_state = inner, d_state
        self.dt_rank = dt_rank or int(math.ceil(dim / 16))
        self.chunk = chunk
        self.fault = fault
        self.in_proj = nn.Linear(dim, 2 * inner, bias=False)
        self.conv1d = nn.Conv1d(inner, inner, d_conv, groups=inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner, bias=False)
        # Mamba's initial values as buffers, the learned parts as shifts from them (zero: the
        # seeded init keeps constant parameters, so S4D-real's timescales survive it).
        s4d_real = torch.log(torch.arange(1, d_state + 1, dtype=torch.float32))  # A = -(1..n) per channel
        self.register_buffer("A_log_init", s4d_real.repeat(inner, 1))
        dt = torch.exp(torch.linspace(math.log(dt_min), math.log(dt_max), inner))  # log-spaced, not drawn
        self.register_buffer("dt_bias_init", _inverse_softplus(dt))
        self.A_log = nn.Parameter(torch.zeros(inner, d_state))  # (e, n)
        self.dt_bias = nn.Parameter(torch.zeros(inner))  # (e,)
        self.D = nn.Parameter(torch.ones(inner))  # (e,): the skip through the SSM
        self.out_proj = nn.Linear(inner, dim, bias=False)

    def ssm_params(self, dt: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(delta (b, t, e), A (e, n)) in float32 or wider; the fault twin's slip is here."""
        raw = at_least_float32(self.dt_proj(dt))
        raw = raw + at_least_float32(self.dt_bias_init).to(raw.dtype) + at_least_float32(self.dt_bias).to(raw.dtype)
        delta = F.softplus(raw)  # delta > 0
        A_log = at_least_float32(self.A_log_init) + at_least_float32(self.A_log)
        A = torch.exp(A_log) if self.fault == "positive_a" else -torch.exp(A_log)  # A < 0: the state decays
        return delta, A

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, t, c)
        t = x.shape[1]
        xs, z = self.in_proj(x).chunk(2, dim=-1)  # (b, t, e) each
        xs = F.silu(self.conv1d(xs.transpose(1, 2))[..., :t].transpose(1, 2))  # causal: drop the right overhang
        dt, B, C = self.x_proj(xs).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta, A = self.ssm_params(dt)
        y = selective_scan(xs, delta, A, B, C, self.D, self.chunk)  # (b, t, e), float32 or wider
        return self.out_proj(y.to(z.dtype) * F.silu(z))


class MambaBlock(nn.Module):
    """Pre-norm residual block: x + mixer(ln(x)) (Mamba has no separate MLP)."""

    def __init__(self, dim: int, mixer: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mixer = mixer

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, t, c)
        return x + self.mixer(self.norm(x))


# --- model ---------------------------------------------------------------------

@dataclass(frozen=True)
class SelectiveSSMLMConfig:
    vocab_size: int = 1024
    dim: int = 512
    depth: int = 12  # two mixers per transformer block: parameters as attention_*_base
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: Optional[int] = None  # None: ceil(dim / 16)
    dt_min: float = 1e-3
    dt_max: float = 0.1
    scan_chunk: Optional[int] = None  # None: ceil(sqrt(t))
    max_seq_len: int = 8192  # no position table: a sanity bound only (the audit asks for 8192 tokens)
    min_seq_len: int = 4
    fault: str = ""  # the fault twin: "positive_a"
    default_sizes: Tuple[int, ...] = (16, 256, 4096)


class SelectiveSSMLM(TokenLanguageModel):
    """A small causal LM of Mamba blocks (selective scan, no attention)."""

    def __init__(self, config: SelectiveSSMLMConfig):
        super().__init__(config)
        c = config
        if c.fault not in FAULTS:
            raise ValueError("fault must be one of %s, got %r" % (", ".join(repr(f) for f in FAULTS), c.fault))
        for field in ("dim", "depth", "d_state", "d_conv", "expand"):
            if getattr(c, field) < 1:
                raise ValueError("%s must be at least 1, got %d" % (field, getattr(c, field)))
        if not 0.0 < c.dt_min <= c.dt_max:
            raise ValueError("need 0 < dt_min <= dt_max, got %g, %g" % (c.dt_min, c.dt_max))
        if c.scan_chunk is not None and c.scan_chunk < 1:
            raise ValueError("scan_chunk must be at least 1 (or None), got %d" % c.scan_chunk)
        self.embed = nn.Embedding(c.vocab_size, c.dim)
        self.blocks = nn.ModuleList([
            MambaBlock(c.dim, SelectiveSSM(c.dim, c.d_state, c.d_conv, c.expand, c.dt_rank, c.dt_min, c.dt_max,
                                           c.scan_chunk, c.fault))
            for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.vocab_size)

    def param_groups(self) -> List[dict]:
        """Mamba's two groups: ``A_log`` and ``D`` without weight decay, the rest with it."""
        plain, no_decay = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (no_decay if name.endswith(("A_log", ".D")) else plain).append(p)
        return [{"params": plain, "name": "decay"}, {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"}]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (b, t) -> (b, t, vocab)
        if tokens.dim() != 2 or tokens.shape[1] > self.config.max_seq_len:
            raise ValueError("expected tokens of shape (b, t) with t <= %d, got %s"
                             % (self.config.max_seq_len, tuple(tokens.shape)))
        x = self.embed(tokens)  # (b, t, c)
        for block in self.blocks:
            x = self.checkpointed(block, x)
        return self.head(self.norm(x))


# --- sizes ---------------------------------------------------------------------

#: tiny: 2 layers, width 32 (inner 64), 8 states, 32 tokens; base: the config defaults.
_TINY = dict(vocab_size=32, dim=32, depth=2, d_state=8, default_sizes=(32,))
_TINY_CONFIG = SelectiveSSMLMConfig(**_TINY)
_BASE_CONFIG = SelectiveSSMLMConfig()

# --- registrations -------------------------------------------------------------

register_model(
    "selective_ssm_tiny", SelectiveSSMLM, _TINY_CONFIG, family="ssm",
    description="2-layer Mamba LM, width 32 (inner 64), 8 states, seq 32: selective scan, conv 4, SiLU gate",
)
register_model(
    "selective_ssm_base", SelectiveSSMLM, _BASE_CONFIG, family="ssm",
    description="12-layer Mamba LM, width 512 (inner 1024), 16 states, seq up to 8192: chunked selective scan",
)
register_model(
    "selective_ssm_positive_a_fault_tiny", SelectiveSSMLM, SelectiveSSMLMConfig(fault="positive_a", **_TINY),
    family="ssm", fault=True,
    description="A = exp(A_log) without the minus: the state grows, inf in fp16 at 32 tokens, in fp32 from ~128",
)
