"""Hybrid covariance network + MUSIC for RIS-aided localisation (seed 004).

Re-implements the pipeline of the RIS localisation project audited in
``shared/seeds/004_*``: a base station with ``M`` antennas observes ``L`` snapshots
through a reconfigurable intelligent surface of ``N`` elements whose phase code
``C`` changes per snapshot, ``y_l = H diag(c_l) x_l + noise``. A network maps
``(y, H, C)`` to covariance factors (``N * K_MAX * 2`` outputs, ``K_MAX = 5`` at
base) and source-count logits; ``R_pred = F F^H`` is trace-normalised to ``N``; a
ridge least-squares estimate of every snapshot's RIS-incident signal (mean-centred,
scale-invariant ridge ``alpha = ridge * tr(A^H A) / N``) gives the sample
covariance ``R_samp``; the two are blended, ``R = (1 - beta) R_pred + beta
R_samp.detach()``, Hermitianised, diagonally loaded and re-normalised, and MUSIC
scans the noise subspace from ``torch.linalg.eigh``. Base sizes follow the report:
``L = M = 16``, ``N = 144``, ``K_MAX = 5``, ~19M parameters, ``beta = 0.3``.

How it differs: the array is a uniform linear RIS with half-wavelength spacing and
far-field azimuth only (the report's 12x12 surface, near-field range and 2.5D scan
with Newton refinement are left out); one factor head instead of separate angle and
range heads; the network is ours and leans on the model-based front end (hence
"hybrid"): a transformer over one token for the flattened channel ``H``, one for the
log-eigenvalue profile of ``R_samp`` (what classical source counting looks at) and
one per snapshot holding ``y_l``, ``c_l`` and the ridge-LS estimate ``x_l``,
mean-pooled into the two heads. The factors are ``F = F_samp + g * F_net``: the top
``K_MAX`` eigenpairs of ``R_samp`` (``U sqrt(lambda)``, no gradient) corrected by the
head's ``N * K_MAX * 2`` outputs through a learned scalar gate ``g`` (starts at 0.1),
because a tiny network cannot learn steering vectors from scratch in a short run.

Precision: everything complex (the ridge LS solve, ``F F^H``, the blend and ``eigh``)
runs in complex64 (complex128 in the float64 accuracy reference) with autocast
disabled, whatever the model's dtype: inputs and factors are cast to float32 before
``torch.view_as_complex`` (which has no float16 or bfloat16 form on 1.10, and ``eigh``
has no half kernels anywhere). Only the network runs in the model's dtype / under autocast.

Training never differentiates through ``eigh`` (its gradient is NaN for degenerate
eigenvalues, and a rank-``K`` covariance has ``N - K`` equal ones): the ``eigh`` of
``R_samp`` in ``forward`` sees only inputs, the loss is the NMSE of the blended
covariance against the true one plus the source-count cross-entropy, both in
float32, and MUSIC (the ``eigh`` of the blend) runs in ``infer`` only, with ``K``
taken from the count head.

``size`` is the number of snapshots ``L`` (at least 2, since the snapshots are
mean-centred). Synthetic task: 1 to ``K_MAX`` sources at random azimuths with a
minimum separation, complex Gaussian signals, random unit-modulus RIS codes and a
Rayleigh RIS-to-BS channel at a random SNR, simulated in float64 NumPy from the
seeded generator; the metric is the angle RMSE in degrees after picking the true
number of peaks of the MUSIC spectrum (lower is better).
"""
import contextlib
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models._attention import attend
from models._base import ZooModel, at_least_float32
from models._layers import CastingLayerNorm
from models._registry import register_model

# --- helpers -------------------------------------------------------------------

def _autocast_off(device: torch.device):
    """A context with autocast disabled for ``device`` (torch.autocast is 1.10+)."""
    if hasattr(torch, "autocast") and device.type in ("cpu", "cuda"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def _as_complex(t: torch.Tensor) -> torch.Tensor:
    """(..., 2) real/imag in any float dtype -> complex64 (...); complex128 from float64."""
    return torch.view_as_complex(at_least_float32(t).contiguous())


def _trace_normalise(r: torch.Tensor, n: int) -> torch.Tensor:
    """Scale each (b, n, n) complex matrix to trace ``n``; the floor keeps a zero matrix finite."""
    tr = torch.diagonal(r, dim1=-2, dim2=-1).real.sum(-1).clamp(min=1e-12)  # (b,)
    return r * (n / tr).view(-1, 1, 1)


def _hermitian(r: torch.Tensor) -> torch.Tensor:
    return 0.5 * (r + r.conj().transpose(-2, -1))


def steering(angles_deg: torch.Tensor, elements: int) -> torch.Tensor:
    """Half-wavelength ULA steering vectors (..., N) complex64 for azimuths in degrees."""
    angles_deg = at_least_float32(angles_deg)
    n = torch.arange(elements, dtype=angles_deg.dtype, device=angles_deg.device)
    phase = np.pi * torch.sin(torch.deg2rad(angles_deg)).unsqueeze(-1) * n  # (..., N)
    return torch.complex(torch.cos(phase), torch.sin(phase))


def ridge_ls_covariance(y: torch.Tensor, h: torch.Tensor, c: torch.Tensor, ridge: float) -> Tuple[torch.Tensor, ...]:
    """Per-snapshot ridge LS estimates x (b, L, N) and their trace-normalised covariance (b, N, N).

    ``y`` (b, L, M), ``h`` (b, M, N), ``c`` (b, L, N) complex64. With ``A_l = H diag(c_l)``
    the estimate is ``A_l^H (A_l A_l^H + alpha I)^-1 y_l`` (the M x M form of
    ``(A^H A + alpha I)^-1 A^H y``, cheaper because M < N), ``alpha = ridge * tr(A^H A) / N``.
    """
    b, snaps, m = y.shape
    n = h.shape[-1]
    a = h.unsqueeze(1) * c.unsqueeze(2)  # (b, L, M, N)
    gram = torch.matmul(a, a.conj().transpose(-2, -1))  # (b, L, M, M)
    alpha = ridge * torch.diagonal(gram, dim1=-2, dim2=-1).real.sum(-1) / n + 1e-12  # (b, L)
    eye = torch.eye(m, dtype=gram.dtype, device=gram.device)
    z = torch.linalg.solve(gram + alpha[..., None, None] * eye, y.unsqueeze(-1))  # (b, L, M, 1)
    x = torch.matmul(a.conj().transpose(-2, -1), z).squeeze(-1)  # (b, L, N)
    xc = x - x.mean(dim=1, keepdim=True)
    r = torch.matmul(xc.transpose(1, 2), xc.conj()) / snaps  # (b, N, N): E[x_n conj(x_m)]
    return x, _trace_normalise(r, n)


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


# --- blocks --------------------------------------------------------------------

class SnapshotBlock(nn.Module):
    """Pre-norm transformer encoder layer over the snapshot (and channel) tokens."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        if dim % heads:
            raise ValueError("width must be divisible by heads, got %d and %d" % (dim, heads))
        self.heads = heads
        self.norm1 = CastingLayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = CastingLayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, t, d)
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(attend(q, k, v, scale_scores=True).transpose(1, 2).reshape(b, t, d))  # (b, t, d)
        return x + self.mlp(self.norm2(x))


# --- model ---------------------------------------------------------------------

@dataclass(frozen=True)
class RISMusicConfig:
    elements: int = 144  # N, RIS elements
    antennas: int = 16  # M, base-station antennas
    max_sources: int = 5  # K_MAX
    dim: int = 512
    depth: int = 5
    heads: int = 8
    mlp_ratio: int = 4
    beta: float = 0.3  # weight of the sample covariance in the blend
    ridge: float = 1e-2  # Tikhonov factor of the LS solve, relative to tr(A^H A) / N
    diag_load: float = 1e-3  # diagonal loading of the blend, relative to trace N
    grid_points: int = 241  # MUSIC scan bins over [-max_angle, max_angle]
    max_angle: float = 60.0  # degrees
    min_separation: float = 6.0  # degrees between sources of one scene
    snr_db: Tuple[float, float] = (10.0, 20.0)
    min_snapshots: int = 2
    default_sizes: Tuple[int, ...] = (16,)


class RISMusic(ZooModel):
    """Snapshot-set transformer to covariance factors and source count, blended with ridge-LS covariance."""

    size_axis = "snapshots per scene (L)"
    task_metric_name = "angle_rmse_deg"
    task_higher_is_better = False

    def __init__(self, config: RISMusicConfig):
        super().__init__(config)
        c = config
        if c.max_sources >= c.elements:
            raise ValueError("max_sources must be below elements (MUSIC needs a noise subspace), got %d and %d"
                             % (c.max_sources, c.elements))
        self.snap_embed = nn.Linear(2 * c.antennas + 4 * c.elements, c.dim)  # y_l, c_l, x_l as real/imag
        self.chan_embed = nn.Linear(2 * c.antennas * c.elements, c.dim)  # flattened H
        self.eig_embed = nn.Linear(c.elements, c.dim)  # log-eigenvalues of R_samp, for the count head
        self.blocks = nn.ModuleList([SnapshotBlock(c.dim, c.heads, c.mlp_ratio) for _ in range(c.depth)])
        self.norm = CastingLayerNorm(c.dim)
        self.factor_head = nn.Linear(c.dim, c.elements * c.max_sources * 2)
        self.count_head = nn.Linear(c.dim, c.max_sources)
        # The learned factors start as a small correction of the sample ones (init keeps scalars).
        self.factor_gate = nn.Parameter(torch.tensor(0.1))

    @classmethod
    def size_error(cls, config: RISMusicConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)
        if reason is None and size < config.min_snapshots:
            reason = "need at least %d snapshots (they are mean-centred), got %d" % (config.min_snapshots, size)
        return reason

    def _check_inputs(self, y: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> None:
        cfg = self.config
        b, snaps = y.shape[0], y.shape[1]
        want = {"y": (b, snaps, cfg.antennas, 2), "H": (b, cfg.antennas, cfg.elements, 2),
                "C": (b, snaps, cfg.elements, 2)}
        for name, t in (("y", y), ("H", h), ("C", c)):
            if tuple(t.shape) != want[name]:
                raise ValueError("expected %s of shape %s, got %s" % (name, want[name], tuple(t.shape)))

    def front_end(self, y: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """The model-based part, complex64 without autocast and without parameters.

        Returns the unit-power ridge-LS snapshots x (b, L, N), ``R_samp`` (b, N, N) and
        its eigen-decomposition; nothing here needs a gradient, so ``eigh`` is never
        differentiated.
        """
        with _autocast_off(y.device):
            x, r_samp = ridge_ls_covariance(_as_complex(y), _as_complex(h), _as_complex(c), self.config.ridge)
            x = x / torch.sqrt(x.abs().pow(2).mean(dim=(1, 2), keepdim=True).clamp(min=1e-12))
            evals, evecs = torch.linalg.eigh(r_samp)  # ascending
        return x, r_samp, evals, evecs

    def forward(self, y: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """Dict of ``factors`` (b, N*K_MAX*2), ``k_logits`` (b, K_MAX) and ``r_blend`` (b, N, N, 2) float32."""
        self._check_inputs(y, h, c)
        cfg = self.config
        b, snaps = y.shape[0], y.shape[1]
        x, r_samp, evals, evecs = self.front_end(y, h, c)
        dtype = self.snap_embed.weight.dtype
        snap = torch.cat([y.reshape(b, snaps, -1).to(dtype), c.reshape(b, snaps, -1).to(dtype),
                          torch.view_as_real(x).reshape(b, snaps, -1).to(dtype)], dim=-1)  # (b, L, 2M + 4N)
        log_eig = torch.log(evals.clamp(min=1e-6)).unsqueeze(1).to(dtype)  # (b, 1, N): the eigenvalue profile
        t = torch.cat([self.chan_embed(h.reshape(b, 1, -1).to(dtype)), self.eig_embed(log_eig),
                       self.snap_embed(snap)], dim=1)  # (b, 2 + L, d)
        for block in self.blocks:
            t = self.checkpointed(block, t)
        pooled = self.norm(t.mean(dim=1))  # (b, d)
        factors = self.factor_head(pooled)  # (b, N * K_MAX * 2)
        with _autocast_off(y.device):
            # Cast before view_as_complex: there is no half complex on 1.10 and no half eigh anywhere.
            learned = _as_complex(factors.reshape(b, cfg.elements, cfg.max_sources, 2))  # (b, N, K_MAX)
            k = cfg.max_sources
            sample = evecs[..., -k:] * evals[..., -k:].clamp(min=0).sqrt().unsqueeze(-2)  # (b, N, K_MAX)
            f = sample + self.factor_gate.float() * learned
            r_pred = _trace_normalise(torch.matmul(f, f.conj().transpose(-2, -1)), cfg.elements)
            r_blend = self.blend(r_pred, r_samp)
        return {"factors": factors, "k_logits": self.count_head(pooled), "r_blend": torch.view_as_real(r_blend)}

    def blend(self, r_pred: torch.Tensor, r_samp: torch.Tensor) -> torch.Tensor:
        """``(1 - beta) R_pred + beta R_samp`` (gradient through R_pred only), Hermitian, loaded, trace N."""
        n = self.config.elements
        r = (1.0 - self.config.beta) * r_pred + self.config.beta * r_samp.detach()
        eye = torch.eye(n, dtype=r.dtype, device=r.device)
        return _trace_normalise(_hermitian(r) + self.config.diag_load * eye, n)

    def music_spectrum(self, r_blend: torch.Tensor, k_est: torch.Tensor) -> torch.Tensor:
        """MUSIC pseudo-spectrum (b, grid) in float32 from ``r_blend`` (b, N, N) complex64, K per scene."""
        cfg = self.config
        with _autocast_off(r_blend.device):
            _, vecs = torch.linalg.eigh(r_blend)  # eigenvalues ascending: noise subspace first
            noise_cols = torch.arange(cfg.elements, device=r_blend.device) < (cfg.elements - k_est).unsqueeze(1)
            grid = torch.linspace(-cfg.max_angle, cfg.max_angle, cfg.grid_points, device=r_blend.device)
            a = steering(grid, cfg.elements)  # (G, N)
            proj = torch.matmul(a.conj(), vecs).abs().pow(2)  # (b, G, N): |a^H e_i|^2
            denom = (proj * noise_cols.unsqueeze(1).float()).sum(-1)  # (b, G)
            return 1.0 / denom.clamp(min=1e-12)

    def infer(self, y: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """``forward`` plus the MUSIC ``spectrum`` (b, grid) with K from the count head."""
        out = self(y, h, c)
        k_est = out["k_logits"].float().argmax(dim=-1) + 1
        spectrum = self.music_spectrum(torch.view_as_complex(out["r_blend"].contiguous()), k_est)
        return dict(out, spectrum=spectrum)

    def simulate(self, batch_size: int, snapshots: int, gen):
        """One batch of scenes: inputs ``(y, H, C)`` and target ``(R_true (b,N,N,2), K (b,), angles (b,K_MAX))``."""
        cfg = self.config
        n, m, kmax = cfg.elements, cfg.antennas, cfg.max_sources
        counts = gen.integers(1, kmax + 1, (batch_size,)).numpy()
        slots = gen.uniform_np((batch_size, kmax))
        angles = np.zeros((batch_size, kmax))
        for i, k in enumerate(counts):
            # Order statistics spread over the room left after the separations: uniform, separated.
            span = 2 * cfg.max_angle * 0.9 - (k - 1) * cfg.min_separation
            angles[i, :k] = -0.9 * cfg.max_angle + np.sort(slots[i, :k]) * span + np.arange(k) * cfg.min_separation
        active = np.arange(kmax)[None, :] < counts[:, None]  # (b, K_MAX)
        power = gen.uniform_np((batch_size, kmax), 0.5, 1.5) * active
        a = np.exp(1j * np.pi * np.sin(np.deg2rad(angles))[..., None] * np.arange(n))  # (b, K_MAX, N)
        s = (gen.normal_np((batch_size, snapshots, kmax)) + 1j * gen.normal_np((batch_size, snapshots, kmax)))
        s = s * np.sqrt(power / 2.0)[:, None, :]  # (b, L, K_MAX)
        x = np.einsum("blk,bkn->bln", s, a)  # (b, L, N) incident on the RIS
        codes = np.exp(2j * np.pi * gen.uniform_np((batch_size, snapshots, n)))  # (b, L, N) unit modulus
        chan = (gen.normal_np((batch_size, m, n)) + 1j * gen.normal_np((batch_size, m, n))) / np.sqrt(2.0 * n)
        clean = np.einsum("bmn,bln->blm", chan, codes * x)  # (b, L, M)
        snr = 10.0 ** (gen.uniform_np((batch_size, 1, 1), *cfg.snr_db) / 10.0)
        noise_std = np.sqrt(np.mean(np.abs(clean) ** 2, axis=(1, 2), keepdims=True) / snr / 2.0)
        noise = (gen.normal_np(clean.shape) + 1j * gen.normal_np(clean.shape)) * noise_std
        r_true = np.einsum("bk,bkn,bkm->bnm", power, a, a.conj())
        r_true = r_true * (n / np.trace(r_true, axis1=1, axis2=2).real)[:, None, None]

        def ri(z):
            return torch.from_numpy(np.ascontiguousarray(np.stack([z.real, z.imag], axis=-1))).float()

        inputs = (ri(clean + noise), ri(chan), ri(codes))
        return inputs, (ri(r_true), torch.from_numpy(counts.astype(np.int64)), torch.from_numpy(angles).float())

    def example_inputs(self, batch_size: int, size, gen):
        self.check_size(size)
        return self.simulate(batch_size, size, gen)

    def loss(self, outputs, target) -> torch.Tensor:
        r_true, counts, _ = target
        r_blend = outputs["r_blend"].float()
        r_true = r_true.float().to(r_blend.device)
        err = (r_blend - r_true).pow(2).sum(dim=(1, 2, 3)) / r_true.pow(2).sum(dim=(1, 2, 3)).clamp(min=1e-12)
        ce = F.cross_entropy(outputs["k_logits"].float(), counts.to(r_blend.device) - 1)
        return err.mean() + ce

    def task_metric(self, outputs, target) -> float:
        """Angle RMSE (degrees) of the true number of MUSIC peaks against the true angles, sorted pairing."""
        cfg = self.config
        _, counts, angles = target
        if "spectrum" in outputs:
            spectrum = outputs["spectrum"]
        else:
            r = torch.view_as_complex(outputs["r_blend"].float().contiguous())
            spectrum = self.music_spectrum(r, outputs["k_logits"].float().argmax(dim=-1) + 1)
        spectrum = spectrum.detach().float().cpu().numpy()
        grid = np.linspace(-cfg.max_angle, cfg.max_angle, cfg.grid_points)
        sq = []
        for spec, k, true in zip(spectrum, counts.tolist(), angles.float().cpu().numpy()):
            est = np.sort(grid[pick_peaks(spec, k)])
            sq.extend(((est - np.sort(true[:k])) ** 2).tolist())
        return float(np.sqrt(np.mean(sq)))


# --- sizes ---------------------------------------------------------------------

_TINY = RISMusicConfig(elements=16, antennas=8, max_sources=3, dim=32, depth=1, heads=2, mlp_ratio=2,
                       grid_points=121, min_separation=15.0, default_sizes=(8,))
_BASE = RISMusicConfig()

# --- registrations -------------------------------------------------------------

register_model(
    "ris_music_tiny", RISMusic, _TINY,
    family="array_processing", description="RIS hybrid covariance net + MUSIC, N=16, M=8, K_MAX=3, width 32",
)
register_model(
    "ris_music_base", RISMusic, _BASE,
    family="array_processing",
    description="RIS hybrid covariance net + MUSIC, N=144, M=16, L=16, K_MAX=5, width 512, ~19M params",
)
