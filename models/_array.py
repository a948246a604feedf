"""Array signal processing shared by the zoo's localisation model (``ris_music``, seed 004):
steering vectors, the ridge least-squares sample covariance, covariance hygiene (Hermitian part,
trace normalisation), MUSIC peak picking, and ``torch.linalg.eigh`` with an eigengap-guarded
backward (eigh's own backward divides by eigenvalue differences: 0/0 at tied eigenvalues, the
audit's NaN risk).

Complex paths take ``at_least_float32`` inputs: complex64, or complex128 for the float64 accuracy
reference (``eigh`` and ``view_as_complex`` have no half-precision forms).
"""
import contextlib
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from models._base import UnsupportedError, at_least_float32


def autocast_off(device: torch.device):
    """A context with autocast disabled for ``device`` (torch.autocast is 1.10+)."""
    if hasattr(torch, "autocast") and device.type in ("cpu", "cuda"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def as_complex(t: torch.Tensor) -> torch.Tensor:
    """(..., 2) real/imag in any float dtype -> complex64 (...); complex128 from float64."""
    return torch.view_as_complex(at_least_float32(t).contiguous())


def trace_normalise(r: torch.Tensor, n: int) -> torch.Tensor:
    """Scale each (b, n, n) complex matrix to trace ``n``; the floor keeps a zero matrix finite."""
    tr = torch.diagonal(r, dim1=-2, dim2=-1).real.sum(-1).clamp(min=1e-12)  # (b,)
    return r * (n / tr).view(-1, 1, 1)


def hermitian(r: torch.Tensor) -> torch.Tensor:
    return 0.5 * (r + r.conj().transpose(-2, -1))


def eye_like(r: torch.Tensor) -> torch.Tensor:
    return torch.eye(r.shape[-1], dtype=r.dtype, device=r.device)


def steering(angles_deg: torch.Tensor, elements: int) -> torch.Tensor:
    """Half-wavelength ULA steering vectors (..., N), complex64 (complex128 for float64 angles)."""
    angles_deg = at_least_float32(angles_deg)
    n = torch.arange(elements, dtype=angles_deg.dtype, device=angles_deg.device)
    phase = np.pi * torch.sin(torch.deg2rad(angles_deg)).unsqueeze(-1) * n  # (..., N)
    return torch.complex(torch.cos(phase), torch.sin(phase))


def ridge_ls_covariance(y: torch.Tensor, h: torch.Tensor, c: torch.Tensor, ridge: float) -> Tuple[torch.Tensor, ...]:
    """Per-snapshot ridge LS estimates x (b, L, N) and their trace-normalised covariance (b, N, N).

    ``y`` (b, L, M), ``h`` (b, M, N), ``c`` (b, L, N) complex. With ``A_l = H diag(c_l)``
    the estimate is ``A_l^H (A_l A_l^H + alpha I)^-1 y_l`` (the M x M form of
    ``(A^H A + alpha I)^-1 A^H y``, cheaper because M < N), ``alpha = ridge * tr(A^H A) / N``.
    """
    b, snaps, m = y.shape
    n = h.shape[-1]
    a = h.unsqueeze(1) * c.unsqueeze(2)  # (b, L, M, N)
    gram = torch.matmul(a, a.conj().transpose(-2, -1))  # (b, L, M, M)
    alpha = ridge * torch.diagonal(gram, dim1=-2, dim2=-1).real.sum(-1) / n + 1e-12  # (b, L)
    z = torch.linalg.solve(gram + alpha[..., None, None] * eye_like(gram), y.unsqueeze(-1))  # (b, L, M, 1)
    x = torch.matmul(a.conj().transpose(-2, -1), z).squeeze(-1)  # (b, L, N)
    xc = x - x.mean(dim=1, keepdim=True)
    r = torch.matmul(xc.transpose(1, 2), xc.conj()) / snaps  # (b, N, N): E[x_n conj(x_m)]
    return x, trace_normalise(r, n)


def pick_peaks(spectrum: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` highest local maxima of a 1-D spectrum, topped up by the highest bins."""
    s = np.asarray(spectrum, dtype=np.float64)
    left = np.concatenate([[-np.inf], s[:-1]])
    right = np.concatenate([s[1:], [-np.inf]])
    maxima = np.nonzero((s >= left) & (s > right))[0]
    chosen = list(maxima[np.argsort(-s[maxima], kind="stable")][:count])
    for idx in np.argsort(-s, kind="stable"):
        if len(chosen) >= count:
            break
        if idx not in chosen:
            chosen.append(idx)
    return np.asarray(chosen, dtype=np.int64)


# --- differentiable eigh ---------------------------------------------------------

def check_eigh() -> None:
    if not hasattr(torch, "linalg") or not hasattr(torch.linalg, "eigh"):
        raise UnsupportedError("torch.linalg.eigh: not in torch %s (the eigengap and subspace losses and MUSIC "
                               "need it)" % torch.__version__)


class _GuardedEigh(torch.autograd.Function):
    """``torch.linalg.eigh`` whose backward clamps every eigengap ``|lambda_j - lambda_i|``
    to at least ``floor`` times the spectral radius.

    The backward is PyTorch's for Hermitian inputs, ``V (diag(gL) + skew(V^H gV) / E) V^H``
    with ``E_ij = lambda_j - lambda_i`` and ``skew(X) = (X - X^H) / 2``, except for that
    clamp: a gauge-invariant loss puts exact zeros in ``skew(V^H gV)`` at pairs inside a
    degenerate eigenspace, and the clamp turns their ``0 / 0`` into 0 instead of NaN.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, floor: float):
        evals, evecs = torch.linalg.eigh(a)
        ctx.floor = floor
        ctx.save_for_backward(evals, evecs)
        return evals, evecs

    @staticmethod
    @once_differentiable
    def backward(ctx, g_evals: torch.Tensor, g_evecs: torch.Tensor):
        evals, evecs = ctx.saved_tensors
        vh = evecs.conj().transpose(-2, -1)
        vhgv = torch.matmul(vh, g_evecs)  # (..., N, N)
        vhgv = 0.5 * (vhgv - vhgv.conj().transpose(-2, -1))
        gap = evals.unsqueeze(-2) - evals.unsqueeze(-1)  # [i, j] = lambda_j - lambda_i
        radius = evals.abs().amax(dim=-1, keepdim=True).unsqueeze(-1)  # (..., 1, 1)
        floor = torch.clamp(radius * ctx.floor, min=torch.finfo(evals.dtype).tiny)
        sign = torch.where(gap >= 0, torch.ones_like(gap), -torch.ones_like(gap))
        inner = vhgv / (sign * torch.maximum(gap.abs(), floor)).to(vhgv.dtype)
        # The diagonal of skew(V^H gV) is the phase-gauge part (zero for a well-posed loss): gL replaces it.
        eye = torch.eye(evals.shape[-1], dtype=torch.bool, device=evals.device)
        inner = torch.where(eye, torch.diag_embed(g_evals).to(inner.dtype), inner)
        return torch.matmul(evecs, torch.matmul(inner, vh)), None


def guarded_eigh(a: torch.Tensor, gap_floor: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and eigenvectors of Hermitian ``a``, with the eigengap-clamped backward."""
    check_eigh()
    return _GuardedEigh.apply(a, gap_floor)


_NATIVE_EIGH_BACKWARD: List[Optional[str]] = []


def native_complex_eigh_backward_error() -> Optional[str]:
    """Why this build cannot differentiate ``torch.linalg.eigh`` of a complex matrix, or None."""
    if not _NATIVE_EIGH_BACKWARD:
        reason = None
        try:
            a = torch.tensor([[2.0, 0.5j], [-0.5j, 1.0]], dtype=torch.complex64, requires_grad=True)
            evals, evecs = torch.linalg.eigh(a)
            (evals.sum() + evecs.abs().sum()).backward()
        except (RuntimeError, AttributeError) as exc:
            reason = "complex torch.linalg.eigh backward in torch %s: %s" % (torch.__version__,
                                                                            str(exc).split("\n")[0][:200])
        _NATIVE_EIGH_BACKWARD.append(reason)
    return _NATIVE_EIGH_BACKWARD[0]
