"""RGB to 31 spectral bands: the two synthetic tasks of the hyperspectral models and their base class.

Seed 000's toolkit reconstructs a 31-band cube (b, 31, h, w), 400-700 nm in 10 nm
steps, from an RGB image (b, 3, h, w). The zoo's five models of it share two seeded
synthetic tasks; both mix a few smooth material spectra with abundances smooth in
space and project the cube to RGB through a fixed camera response. They are kept
apart because each model's inputs and metric must not change:

* the MSWR task (``make_spectral_batch``; MSWR-Net, HSIFusionNet, SHARP through
  ``SpectralReconstructionModel``): each spectrum a baseline plus two Gaussian bumps
  at random centres, abundances a softmax over two cosine fields per material, RGB
  through ``sensor_response`` (rows R, G, B; red has a small blue lobe). MRAE loss
  (``mrae``, the NTIRE challenge loss), metric ``pooled_psnr_db`` (one MSE over the
  batch);
* the CSWin task (``spectral_task_batch``; CSWin v2, WaveDiff): each spectrum a floor
  plus three Gaussian bumps near blue, green and red, abundances a softmax over three
  plane waves, RGB through ``camera_response`` (rows B, G, R). Metric ``psnr_db``
  (the mean of each image's PSNR); the models bring their own L1 loss.

Every number comes from the version-stable generator (``models._seeded``); the
arithmetic is NumPy float64, cast to float32 once. Values are in [0, 1] (data range 1).
Both batch makers take a square side or an ``"HxW"`` size (``models.image_hw``); the
random draws do not depend on the size, so a square ``"16x16"`` is exactly size 16.
"""
import math
from typing import Any, Optional, Tuple

import numpy as np
import torch

from models._base import ZooModel, at_least_float32, image_hw

SPECTRAL_BANDS = 31
#: Band centres in nm of the 31-band cubes (ARAD-1K / CAVE layout).
WAVELENGTHS_NM = np.arange(400.0, 701.0, 10.0)


def _hw(size: Any) -> Tuple[int, int]:
    # Validating sizes is the model's job (size_error); a bare side of 0 gives empty
    # tensors, which SHARP's assert fault twin shows under python -O.
    return (size, size) if isinstance(size, int) and not isinstance(size, bool) else image_hw(size)


# --- the MSWR task (MSWR-Net, HSIFusionNet, SHARP) --------------------------------

def sensor_response(bands: int = SPECTRAL_BANDS) -> np.ndarray:
    """A fixed (3, bands) RGB camera response: smooth positive curves, rows R, G, B summing to 1."""
    lam = np.linspace(400.0, 700.0, bands)
    g = lambda centre, width: np.exp(-0.5 * ((lam - centre) / width) ** 2)
    # Red has a small blue lobe, as real sensors do; it keeps the 3 x 31 map well mixed.
    curves = np.stack([g(605.0, 40.0) + 0.08 * g(450.0, 25.0), g(540.0, 38.0), g(455.0, 30.0)])
    return curves / curves.sum(axis=1, keepdims=True)


def make_spectral_batch(gen, batch_size: int, size: Any, bands: int = SPECTRAL_BANDS,
                        materials: int = 3) -> Tuple[torch.Tensor, torch.Tensor]:
    """RGB images (b, 3, h, w) and their spectral cubes (b, bands, h, w); ``size`` is a side or ``"HxW"``.

    Every number comes from ``gen`` (version-stable); the arithmetic is NumPy float64
    and the result is cast to float32 once.
    """
    b, m = batch_size, materials
    h, w = _hw(size)
    lam = np.linspace(0.0, 1.0, bands)
    # Spectra: a baseline and two Gaussian bumps per material, peak value below 1.
    base = gen.uniform_np((b, m, 1), 0.05, 0.15)
    centres = gen.uniform_np((b, m, 2, 1), 0.0, 1.0)
    widths = gen.uniform_np((b, m, 2, 1), 0.06, 0.2)
    amps = gen.uniform_np((b, m, 2, 1), 0.15, 0.4)
    spectra = base + (amps * np.exp(-0.5 * ((lam - centres) / widths) ** 2)).sum(axis=2)  # (b, m, bands)
    # Abundances: softmax over materials of two low-frequency cosine fields each.
    yy, xx = np.meshgrid((np.arange(h, dtype=np.float64) + 0.5) / max(h, 1),
                         (np.arange(w, dtype=np.float64) + 0.5) / max(w, 1), indexing="ij")  # (h, w)
    freq = gen.uniform_np((b, m, 2, 2, 1, 1), -1.5, 1.5)
    phase = gen.uniform_np((b, m, 2, 1, 1), 0.0, 2.0 * np.pi)
    fields = np.cos(2.0 * np.pi * (freq[:, :, :, 0] * yy + freq[:, :, :, 1] * xx) + phase).sum(axis=2)
    logits = 2.0 * fields  # (b, m, h, w)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights = weights / weights.sum(axis=1, keepdims=True)
    cube = np.einsum("bmhw,bml->blhw", weights, spectra)  # (b, bands, h, w)
    rgb = np.einsum("cl,blhw->bchw", sensor_response(bands), cube)  # (b, 3, h, w)
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(torch.float32)
    return as_tensor(rgb), as_tensor(cube)


def mrae(outputs: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean relative absolute error, in float32 whatever the model's dtype."""
    target = at_least_float32(target)
    return ((at_least_float32(outputs) - target).abs() / (target.abs() + eps)).mean()


def pooled_psnr_db(outputs: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of one MSE pooled over the whole batch."""
    mse = float(((outputs.detach().float() - target.float()) ** 2).mean())
    return 10.0 * math.log10(data_range ** 2 / max(mse, 1e-12))


def side_note(side: int, size: Any) -> str:
    """How a size rule names the offending side: ``"18"``, or ``"18 (of size '16x18')"`` for an ``"HxW"`` size."""
    return str(side) if side == size else "%d (of size %r)" % (side, size)


class SpectralReconstructionModel(ZooModel):
    """Shared interface of the MSWR-task models: RGB (b, 3, h, w) in, MRAE loss, PSNR metric.

    Subclass configs have ``in_channels`` and ``bands``. Sizes are a square side or
    ``"HxW"``; a subclass with per-side rules overrides ``side_error``.
    """

    size_axis = "image side in pixels, or HxW"
    non_square = True
    task_metric_name = "psnr_db"
    task_higher_is_better = True

    def _check_rgb(self, rgb: torch.Tensor) -> None:
        c = self.config.in_channels
        if rgb.dim() != 4 or rgb.shape[1] != c or min(rgb.shape[-2:]) < 1:
            raise ValueError("expected RGB of shape (b, %d, h, w) with h, w >= 1, got %s" % (c, tuple(rgb.shape)))

    @classmethod
    def size_error(cls, config: Any, size: Any) -> Optional[str]:
        reason = super().size_error(config, size)
        if reason is None:
            for side in dict.fromkeys(image_hw(size)):
                reason = cls.side_error(config, side, size)
                if reason is not None:
                    break
        return reason

    @classmethod
    def side_error(cls, config: Any, side: int, size: Any) -> Optional[str]:
        """Why one side of ``size`` is invalid (None when valid); every side is valid here."""
        return None

    def example_inputs(self, batch_size: int, size, gen):
        self.check_size(size)
        rgb, cube = make_spectral_batch(gen, batch_size, size, bands=self.config.bands)
        return (rgb,), cube

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mrae(outputs, target)

    def task_metric(self, outputs: torch.Tensor, target: torch.Tensor) -> float:
        return pooled_psnr_db(outputs, target)


# --- the CSWin task (CSWin v2, WaveDiff) ------------------------------------------

def camera_response(bands: int = SPECTRAL_BANDS) -> np.ndarray:
    """A fixed smooth (3, bands) RGB response: Gaussian B, G, R curves, rows summing to 1."""
    grid = np.linspace(0.0, 1.0, bands)
    centres, widths = (0.2, 0.5, 0.78), (0.12, 0.12, 0.14)  # blue, green, red
    curves = np.stack([np.exp(-0.5 * ((grid - c) / w) ** 2) for c, w in zip(centres, widths)])
    return curves / curves.sum(axis=1, keepdims=True)


def spectral_task_batch(batch_size: int, size: Any, gen, bands: int = SPECTRAL_BANDS,
                        materials: int = 3) -> Tuple[torch.Tensor, torch.Tensor]:
    """Draw ``(rgb, cube)``: (b, 3, h, w) and (b, bands, h, w), values in [0, 1]; ``size`` is a side or ``"HxW"``.

    Each image mixes ``materials`` spectra, each a floor plus three Gaussian bumps (blue,
    green and red-ish centres, jittered by up to 3 bands, widths of 4-7 bands, random
    heights), so spectra are smooth and mostly but not fully recoverable from RGB: the
    best linear RGB-to-cube map scores about 24 dB. The abundances are a softmax over
    sums of three low-frequency plane waves, so the cube is smooth in space. All in
    float64 NumPy from the version-stable generator, cast once.
    """
    b, k = batch_size, materials
    lam = np.linspace(0.0, bands - 1.0, bands)
    scale = (bands - 1.0) / 30.0  # centres and widths are given for 31 bands
    centre = scale * (np.array([4.0, 15.0, 26.0])[:, None] + gen.uniform_np((b, k, 3, 1), -3.0, 3.0))
    width = scale * gen.uniform_np((b, k, 3, 1), 4.0, 7.0)
    amp = gen.uniform_np((b, k, 3, 1), 0.0, 1.0)
    spectra = 0.05 + (amp * np.exp(-0.5 * ((lam - centre) / width) ** 2)).sum(axis=2)  # (b, k, bands)
    spectra = spectra / np.maximum(1.0, spectra.max(axis=2, keepdims=True) / 0.95)

    h, w = _hw(size)
    ys, xs = np.arange(h, dtype=np.float64) / max(h, 1), np.arange(w, dtype=np.float64) / max(w, 1)
    freq = gen.uniform_np((b, k, 3, 2), -1.5, 1.5)  # cycles per image along (y, x)
    phase = gen.uniform_np((b, k, 3), 0.0, 2.0 * np.pi)
    waves = np.cos(2.0 * np.pi * (freq[..., 0, None, None] * ys[:, None] + freq[..., 1, None, None] * xs)
                   + phase[..., None, None])  # (b, k, 3, h, w)
    logits = 2.0 * waves.sum(axis=2)  # (b, k, h, w)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights = weights / weights.sum(axis=1, keepdims=True)

    cube = np.einsum("bkl,bkhw->blhw", spectra, weights)  # (b, bands, h, w)
    rgb = np.einsum("cl,blhw->bchw", camera_response(bands), cube)  # (b, 3, h, w)
    return (torch.from_numpy(np.ascontiguousarray(rgb)).float(),
            torch.from_numpy(np.ascontiguousarray(cube)).float())


def psnr_db(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """Mean over the batch of each image's PSNR in dB, computed in float64."""
    diff = pred.detach().double() - target.detach().double().to(pred.device)
    mse = diff.pow(2).flatten(1).mean(dim=1).clamp_min(1e-12)  # (b,)
    return float((10.0 * torch.log10(data_range ** 2 / mse)).mean())
