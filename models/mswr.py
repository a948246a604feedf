"""MSWR-Net: multi-scale wavelet reconstruction of 31 spectral bands from RGB (seed 000).

Re-implements MSWR-Net v2.1.2 of the hyperspectral toolkit of
audit report 000 ("Model Audit Summary - Action Plan", 2025-11-01: 24 bugs in five
models; MSWR-Net's are the critical checkpoint wrapper #2 and the landmark attention's
#4, both kept in fault twins below): a U-shaped network whose scales are linked by a Haar discrete
wavelet transform (the four sub-bands are stacked as channels going down, and the
inverse transform rebuilds the finer grid going up), transformer blocks with 2-D
landmark attention (Nystrom-style: a coarse grid of pooled landmarks summarises the
image so attention costs O(n * m) instead of O(n^2)), a residual 1x1 projection of the
RGB input, and gradient checkpointing of every stage, including the first one, whose
input is the raw RGB batch.

How it differs: the Haar transform is written with strided slicing (no pywt, no fixed
conv), so it is exact and works in every dtype; the landmark attention drops the
Moore-Penrose middle factor of Nystrom attention (landmarks first read all tokens,
then every token reads the landmarks), because the iterative pseudo-inverse is
unstable in half precision and adds nothing at these sizes. Sizes: each wavelet level
halves the grid, so the input is replicate-padded up to a multiple of
``2 ** (scales - 1)`` and the output cropped back; odd and prime sides are therefore
valid, and so are non-square sizes (``"HxW"``, e.g. ``"48x32"``). The landmark grid
is pooled from ``h`` and ``w`` separately and the attention output is laid back out
as ``(h, w)``.

Two fault twins. ``mswr_net_legacy_ckpt_tiny`` keeps the audit's critical bug #2: its
checkpoint wrapper calls ``torch.utils.checkpoint.checkpoint`` directly (reentrant)
without making the raw input require grad, so under reentrant checkpointing the stem
and first encoder stage get no gradient at all, silently. ``mswr_net_hw_swap_fault_tiny``
keeps the audit's bug #4 (``OptimizedLandmarkAttention2D`` line 684 used ``h_dim`` and
``w_dim`` where ``H`` and ``W`` were meant): the attention output is laid back out with
height and width swapped, which is the identity on square maps and a shape error on
non-square ones.

The synthetic task is the MSWR task of ``models._spectral`` (shared with HSIFusionNet
and SHARP through ``SpectralReconstructionModel``): each image mixes a few materials
whose spectra are Gaussian bumps over 31 bands on a baseline, with smooth spatial
abundance maps (a softmax over low-frequency cosine fields), and is seen through a
fixed camera response (three smooth positive curves, 3 x 31, rows summing to one).
Input: the RGB image; target: the 31-band cube in [0, 1]. The training loss is MRAE
(the NTIRE challenge loss); the task metric is PSNR in dB (higher is better). The Haar
transform is ``models._wavelets`` (shared with WaveDiff).
"""
from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import checkpoint as _torch_checkpoint

from models._base import HAS_NON_REENTRANT_CHECKPOINT
from models._registry import register_model
from models._spectral import SpectralReconstructionModel
from models._wavelets import haar_dwt, haar_idwt

# --- helpers -------------------------------------------------------------------

def replicate_pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad h and w at the bottom/right up to a multiple by repeating the last row/column.

    Done with ``index_select`` rather than ``F.pad(mode="replicate")``, which some
    builds lack for half precision on the CPU.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph:
        x = x.index_select(x.dim() - 2, torch.arange(h + ph, device=x.device).clamp(max=h - 1))
    if pw:
        x = x.index_select(x.dim() - 1, torch.arange(w + pw, device=x.device).clamp(max=w - 1))
    return x


# --- blocks --------------------------------------------------------------------

class LandmarkAttention2D(nn.Module):
    """Multi-head attention through a (g x g) grid of average-pooled landmarks.

    Landmarks (pooled queries) first attend to every token, then every token attends
    to the landmarks (pooled keys) and reads what they gathered: two (n x m) products.
    """

    def __init__(self, dim: int, heads: int, landmarks: int):
        super().__init__()
        self.heads, self.landmarks = heads, landmarks
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Conv2d(dim, 3 * dim, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, c, h, w)
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=1)
        # The landmark grid follows each side on its own (audit bug #4 mixed them up).
        grid = (min(self.landmarks, h), min(self.landmarks, w))
        q_lm = F.adaptive_avg_pool2d(q, grid)  # (b, c, gh, gw)
        k_lm = F.adaptive_avg_pool2d(k, grid)
        split = lambda t: t.reshape(b, self.heads, c // self.heads, -1).transpose(-2, -1)  # (b, H, n, d)
        q, k, v, q_lm, k_lm = split(q), split(k), split(v), split(q_lm), split(k_lm)
        gather = torch.softmax((q_lm * self.scale) @ k.transpose(-2, -1), dim=-1) @ v  # (b, H, m, d)
        read = torch.softmax((q * self.scale) @ k_lm.transpose(-2, -1), dim=-1)  # (b, H, n, m)
        return self.proj(self.to_map((read @ gather).transpose(-2, -1), h, w))

    def to_map(self, tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(b, heads, d, h * w) -> (b, c, h, w): heads back to channels, tokens back to the grid."""
        return tokens.reshape(tokens.shape[0], -1, h, w)


class LandmarkAttention2DHWSwap(LandmarkAttention2D):
    """Audit bug #4: the output is laid back out as ``(w, h)``, the names of the other side.

    Square maps are unaffected (same memory order, same shape); a non-square map becomes
    a ``(b, c, w, h)`` tensor that the block's residual cannot add to its ``(b, c, h, w)`` input.
    """

    def to_map(self, tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return tokens.reshape(tokens.shape[0], -1, w, h)


class ConvFFN(nn.Module):
    """Pointwise expand, depthwise 3x3 for local spatial context, GELU, pointwise back."""

    def __init__(self, dim: int, ratio: float):
        super().__init__()
        hidden = max(int(dim * ratio), 1)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, c, h, w)
        return self.fc2(F.gelu(self.dw(self.fc1(x))))


class MSWRBlock(nn.Module):
    """Pre-norm transformer block: landmark attention, then the convolutional FFN."""

    def __init__(self, dim: int, heads: int, landmarks: int, ffn_ratio: float, attention=LandmarkAttention2D):
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.attn = attention(dim, heads, landmarks)
        self.norm2 = nn.GroupNorm(1, dim)
        self.ffn = ConvFFN(dim, ffn_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, c, h, w)
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


# --- model ---------------------------------------------------------------------

@dataclass(frozen=True)
class MSWRNetConfig:
    widths: Tuple[int, ...] = (64, 128, 256)  # one per scale; scales - 1 Haar levels
    depths: Tuple[int, ...] = (2, 2, 2)  # blocks per encoder scale; the decoder mirrors all but the last
    heads: Tuple[int, ...] = (2, 4, 8)
    landmarks: int = 8  # landmark grid side: up to landmarks ** 2 landmarks per head
    ffn_ratio: float = 2.0
    in_channels: int = 3
    bands: int = 31
    default_sizes: Tuple[int, ...] = (128,)


class MSWRNet(SpectralReconstructionModel):
    """Wavelet U-Net with landmark-attention blocks, RGB (b, 3, h, w) -> cube (b, 31, h, w)."""

    #: The blocks' attention class (the H/W-swap fault twin replaces it).
    attention = LandmarkAttention2D

    def __init__(self, config: MSWRNetConfig):
        super().__init__(config)
        c = config
        if not (len(c.widths) == len(c.depths) == len(c.heads)) or not c.widths:
            raise ValueError("widths, depths and heads need one entry per scale, got %r, %r, %r"
                             % (c.widths, c.depths, c.heads))
        for width, heads in zip(c.widths, c.heads):
            if heads < 1 or width % heads:
                raise ValueError("each width must be a multiple of its heads, got width %d, heads %d" % (width, heads))
        if c.landmarks < 1 or min(c.depths) < 1:
            raise ValueError("landmarks and depths must be >= 1, got %d and %r" % (c.landmarks, c.depths))
        block = lambda i: MSWRBlock(c.widths[i], c.heads[i], c.landmarks, c.ffn_ratio, self.attention)
        self.stem = nn.Conv2d(c.in_channels, c.widths[0], 3, padding=1)
        self.encoders = nn.ModuleList(
            [nn.Sequential(*[block(i) for _ in range(c.depths[i])]) for i in range(len(c.widths))]
        )
        # Down: the four Haar sub-bands of scale i become the channels of scale i + 1.
        self.downs = nn.ModuleList([nn.Conv2d(4 * c.widths[i], c.widths[i + 1], 1) for i in range(len(c.widths) - 1)])
        self.ups = nn.ModuleList([nn.Conv2d(c.widths[i + 1], 4 * c.widths[i], 1) for i in range(len(c.widths) - 1)])
        self.decoders = nn.ModuleList(
            [nn.Sequential(*[block(i) for _ in range(c.depths[i])]) for i in range(len(c.widths) - 1)]
        )
        self.head = nn.Conv2d(c.widths[0], c.bands, 3, padding=1)
        # A per-pixel linear map RGB -> bands carries the bulk of the spectrum; the net adds detail.
        self.rgb_proj = nn.Conv2d(c.in_channels, c.bands, 1)

    def _first_stage(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.encoders[0](self.stem(rgb))

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # (b, 3, h, w) -> (b, bands, h, w)
        self._check_rgb(rgb)
        h, w = rgb.shape[-2:]
        x = replicate_pad_to(rgb, 2 ** (len(self.config.widths) - 1))
        # The first stage sees the raw input, which does not require grad: the case
        # reentrant checkpointing gets wrong unless the wrapper handles it.
        x = self.checkpointed(self._first_stage, x)  # (b, w0, H, W)
        skips = [x]
        for down, encoder in zip(self.downs, self.encoders[1:]):
            x = self.checkpointed(encoder, down(haar_dwt(x)))  # (b, w_i, H / 2^i, W / 2^i)
            skips.append(x)
        for i in reversed(range(len(self.decoders))):
            x = haar_idwt(self.ups[i](x)) + skips[i]
            x = self.checkpointed(self.decoders[i], x)
        return self.head(x)[..., :h, :w] + self.rgb_proj(rgb)


class MSWRNetLegacyCheckpoint(MSWRNet):
    """Fault twin of audit bug #2: the legacy checkpoint wrapper of MSWR-Net v2.1.2.

    In ``reentrant`` mode it hands its arguments to ``torch.utils.checkpoint.checkpoint``
    as they are (``non_reentrant`` is unaffected). The first stage's input is the raw RGB
    batch, which does not require grad, so reentrant checkpointing returns a tensor
    outside the graph: the stem and first encoder stage get ``None`` gradients while
    the loss and the other stages look normal. The harness sees parameters without
    gradients, and gradients that differ from the un-checkpointed run.
    """

    def checkpointed(self, fn, *args):
        mode = self.grad_checkpointing if self.training else "none"
        if mode == "none" or not torch.is_grad_enabled():
            return fn(*args)
        if HAS_NON_REENTRANT_CHECKPOINT:
            return _torch_checkpoint.checkpoint(fn, *args, use_reentrant=(mode == "reentrant"))
        return _torch_checkpoint.checkpoint(fn, *args)


class MSWRNetHWSwapFault(MSWRNet):
    """Fault twin of audit bug #4: landmark attention swaps H and W when laying its output out.

    The model claims non-square sizes like the healthy one (``size_error("32x16")`` is
    None) and square inputs give the healthy outputs, but every non-square input fails
    in the first block with a shape RuntimeError: the harness records status ``error``
    on ``"HxW"`` cases where ``mswr_net_tiny`` runs.
    """

    attention = LandmarkAttention2DHWSwap


# --- sizes ---------------------------------------------------------------------

_TINY = MSWRNetConfig(widths=(16, 32), depths=(1, 1), heads=(2, 2), landmarks=4, default_sizes=(32,))
_BASE = MSWRNetConfig()

# --- registrations -------------------------------------------------------------

register_model(
    "mswr_net_tiny", MSWRNet, _TINY,
    family="hyperspectral", description="MSWR-Net: one Haar level, landmark attention, widths 16/32",
)
register_model(
    "mswr_net_base", MSWRNet, _BASE,
    family="hyperspectral", description="MSWR-Net v2.1.2-sized: widths 64/128/256, 2 blocks per scale, 8x8 landmarks",
)
register_model(
    "mswr_net_legacy_ckpt_tiny", MSWRNetLegacyCheckpoint, _TINY,
    family="hyperspectral", fault=True,
    description="fault: legacy reentrant checkpoint wrapper drops the first stage's gradients (audit bug #2)",
)
register_model(
    "mswr_net_hw_swap_fault_tiny", MSWRNetHWSwapFault, _TINY,
    family="hyperspectral", fault=True,
    description="fault: landmark attention lays its output out as (w, h), a shape error on non-square inputs "
                "(audit bug #4)",
)
