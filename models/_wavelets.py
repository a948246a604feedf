"""The one-level orthonormal 2-D Haar transform, shared by the wavelet models (MSWR-Net, WaveDiff).

Written with strided slicing (no pywt, no fixed conv): exact, differentiable, and in
every dtype. The four sub-bands are stacked along the channels as [LL, LH, HL, HH];
``haar_idwt(haar_dwt(x)) == x`` up to rounding, and the transform keeps the norm.
"""
import torch


def haar_dwt(x: torch.Tensor) -> torch.Tensor:
    """(b, c, h, w) -> (b, 4c, h/2, w/2), sub-bands [LL, LH, HL, HH]; h and w must be even."""
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return torch.cat([a + b + c + d, a - b + c - d, a + b - c - d, a - b - c + d], dim=1) * 0.5


def haar_idwt(y: torch.Tensor) -> torch.Tensor:
    """Inverse of ``haar_dwt``: (b, 4c, h, w) -> (b, c, 2h, 2w)."""
    ll, lh, hl, hh = y.chunk(4, dim=1)
    a, b = (ll + lh + hl + hh) * 0.5, (ll - lh + hl - hh) * 0.5
    c, d = (ll + lh - hl - hh) * 0.5, (ll - lh - hl + hh) * 0.5
    top = torch.stack([a, b], dim=-1).flatten(-2)  # (b, c, h, 2w): even rows
    bottom = torch.stack([c, d], dim=-1).flatten(-2)  # odd rows
    return torch.stack([top, bottom], dim=-2).flatten(-3, -2)  # (b, c, 2h, 2w)
