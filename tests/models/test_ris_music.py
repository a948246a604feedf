"""Behaviour of the RIS hybrid covariance network + MUSIC (models/ris_music.py) beyond the zoo contract."""
import dataclasses

import numpy as np
import pytest
import torch

import models
from models import SeededGenerator, init_parameters
from models.ris_music import RISMusic, pick_peaks, ridge_ls_covariance, steering

TINY = models.get_spec("ris_music_tiny").config


def _tiny(seed=0, **changes):
    model = RISMusic(dataclasses.replace(TINY, **changes))
    init_parameters(model, seed)
    return model


def _complex(t):
    return torch.view_as_complex(t.float().contiguous())


def _music_rmse(model, r, counts, target):
    return model.task_metric({"spectrum": model.music_spectrum(r, counts)}, target)


def test_shapes_of_inputs_outputs_and_covariances():
    model = _tiny()
    n, m, k = TINY.elements, TINY.antennas, TINY.max_sources
    (y, h, c), (r_true, counts, angles) = model.example_inputs(3, 7, SeededGenerator(0))
    assert y.shape == (3, 7, m, 2) and h.shape == (3, m, n, 2) and c.shape == (3, 7, n, 2)
    assert r_true.shape == (3, n, n, 2) and counts.shape == (3,) and angles.shape == (3, k)
    assert counts.dtype == torch.int64 and int(counts.min()) >= 1 and int(counts.max()) <= k
    assert torch.allclose(_complex(c).abs(), torch.ones(3, 7, n), atol=1e-5)  # unit-modulus RIS codes
    out = model(y, h, c)
    assert out["factors"].shape == (3, n * k * 2) and out["k_logits"].shape == (3, k)
    for r in (_complex(out["r_blend"]), _complex(r_true)):
        assert torch.allclose(r, r.conj().transpose(-2, -1), atol=1e-5)  # Hermitian
        assert torch.allclose(torch.diagonal(r, dim1=-2, dim2=-1).real.sum(-1), torch.full((3,), float(n)), atol=1e-3)
    model.eval()
    with torch.no_grad():
        spectrum = model.infer(y, h, c)["spectrum"]
    assert spectrum.shape == (3, TINY.grid_points) and spectrum.dtype == torch.float32
    assert bool((spectrum > 0).all()) and bool(torch.isfinite(spectrum).all())


def test_true_angles_are_separated_and_in_range():
    model = _tiny()
    _, (_, counts, angles) = model.example_inputs(64, 2, SeededGenerator(1))
    for k, a in zip(counts.tolist(), angles.numpy()):
        active = np.sort(a[:k])
        assert np.all(np.abs(active) <= TINY.max_angle)
        assert np.all(np.diff(active) >= TINY.min_separation - 1e-4)
        assert np.all(a[k:] == 0)


def test_size_rules():
    spec = models.get_spec("ris_music_tiny")
    assert spec.size_error(2) is None and spec.size_error(31) is None
    assert "1" in spec.size_error(1)
    model = _tiny()
    with pytest.raises(ValueError, match="got 1"):
        model.example_inputs(2, 1, SeededGenerator(0))
    (y, h, c), _ = model.example_inputs(1, 4, SeededGenerator(0))
    with pytest.raises(ValueError, match="C of shape"):
        model(y, h, c[:, :3])


def test_ridge_ls_recovers_snapshots_through_an_invertible_channel():
    # M = N and a tiny ridge: the LS estimate is the incident signal, and its covariance the mean-centred one.
    gen = SeededGenerator(2)
    n, snaps = 6, 5
    cplx = lambda shape: torch.complex(gen.normal(shape), gen.normal(shape))  # noqa: E731
    h = cplx((1, n, n)) + 3 * torch.eye(n)
    c = torch.exp(1j * 2 * np.pi * gen.uniform((1, snaps, n))).to(torch.complex64)
    x = cplx((1, snaps, n))
    y = torch.matmul(h.unsqueeze(1), (c * x).unsqueeze(-1)).squeeze(-1)  # (1, L, M)
    x_hat, r = ridge_ls_covariance(y, h, c, ridge=1e-7)
    assert torch.allclose(x_hat, x, atol=1e-3)
    xc = x - x.mean(dim=1, keepdim=True)
    ref = torch.matmul(xc.transpose(1, 2), xc.conj()) / snaps
    ref = ref * (n / torch.diagonal(ref, dim1=-2, dim2=-1).real.sum())
    assert torch.allclose(r, ref, atol=1e-3)


def test_pick_peaks_prefers_local_maxima_and_tops_up():
    s = np.array([0.0, 5.0, 1.0, 0.5, 3.0, 2.9, 0.1])
    assert sorted(pick_peaks(s, 2).tolist()) == [1, 4]
    assert pick_peaks(s, 3).tolist()[:2] == [1, 4] and len(set(pick_peaks(s, 3).tolist())) == 3
    flat = pick_peaks(np.ones(4), 2).tolist()  # no strict maximum: still two distinct bins
    assert len(set(flat)) == 2 and all(0 <= i < 4 for i in flat)


def test_music_on_the_true_covariance_finds_the_sources():
    model = _tiny()
    _, target = model.example_inputs(32, 4, SeededGenerator(3))
    r_true, counts, _ = target
    r = _complex(r_true) + 1e-3 * torch.eye(TINY.elements)
    assert _music_rmse(model, r, counts, target) < 0.6  # half the 1-degree grid step
    a = steering(torch.tensor([10.0]), TINY.elements)
    assert torch.allclose(a.abs(), torch.ones_like(a.abs()))


def test_more_snapshots_give_a_better_sample_covariance():
    # beta = 1: MUSIC on the ridge-LS sample covariance alone (the network's factors drop out).
    model = _tiny(beta=1.0).eval()
    rmse = []
    for snaps in (4, 16, 64):
        inputs, target = model.task_batch(48, snaps, SeededGenerator(11))
        with torch.no_grad():
            r = _complex(model(*inputs)["r_blend"])
        rmse.append(_music_rmse(model, r, target[1], target))
    assert rmse[0] > 2 * rmse[1] and rmse[1] >= rmse[2] and rmse[2] < 1.5, rmse


def test_blend_weights_and_detaches_the_sample_covariance():
    model = _tiny(diag_load=0.0)
    n = TINY.elements
    gen = SeededGenerator(4)
    f = torch.complex(gen.normal((1, n, 2)), gen.normal((1, n, 2))).requires_grad_()
    r_pred = f @ f.conj().transpose(-2, -1)
    r_pred = r_pred * (n / torch.diagonal(r_pred, dim1=-2, dim2=-1).real.sum())
    r_samp = torch.eye(n, dtype=torch.complex64).unsqueeze(0).requires_grad_()
    blend = model.blend(r_pred, r_samp)
    assert torch.allclose(blend, (1 - TINY.beta) * r_pred + TINY.beta * r_samp, atol=1e-5)
    blend.real.sum().backward()
    assert r_samp.grad is None and f.grad is not None


def test_degenerate_sample_covariance_keeps_loss_and_gradients_finite():
    # All-zero snapshots make R_samp zero (all eigenvalues equal): eigh must not be differentiated.
    model = _tiny()
    (y, h, c), target = model.example_inputs(2, 5, SeededGenerator(5))
    loss = model.loss(model(torch.zeros_like(y), h, c), target)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_complex_part_stays_float32_in_bfloat16_and_autocast():
    model = _tiny()
    inputs, target = model.example_inputs(2, 6, SeededGenerator(6))
    ref = model(*inputs)["r_blend"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = model(*inputs)
    assert auto["r_blend"].dtype == torch.float32
    assert model.loss(auto, target).dtype == torch.float32
    half = model.to(torch.bfloat16)
    out = half(*(t.bfloat16() for t in inputs))
    assert out["factors"].dtype == torch.bfloat16 and out["r_blend"].dtype == torch.float32
    # Only the (gated) network correction is rounded; the sample-covariance part is exact float32.
    assert (out["r_blend"] - ref).abs().max().item() < 0.05 * ref.abs().max().item()
    half.eval()
    with torch.no_grad():
        assert torch.isfinite(half.infer(*(t.bfloat16() for t in inputs))["spectrum"]).all()


def test_short_training_lowers_loss_and_learns_the_source_count():
    model = _tiny()
    held_inputs, held_target = model.task_batch(64, 8, SeededGenerator(123))

    def evaluate():
        model.eval()
        with torch.no_grad():
            out = model.infer(*held_inputs)
            loss = model.loss(out, held_target).item()
            acc = ((out["k_logits"].argmax(-1) + 1) == held_target[1]).float().mean().item()
            rmse = model.task_metric(out, held_target)
        model.train()
        return loss, acc, rmse

    loss0, acc0, rmse0 = evaluate()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = SeededGenerator(7)
    for _ in range(100):
        inputs, target = model.task_batch(16, 8, gen)
        opt.zero_grad()
        model.loss(model(*inputs), target).backward()
        opt.step()
    loss1, acc1, rmse1 = evaluate()
    assert loss1 < 0.9 * loss0 and acc1 > max(acc0 + 0.15, 0.5), (loss0, loss1, acc0, acc1)
    assert not model.task_higher_is_better and np.isfinite(rmse1) and rmse1 < 12.0, (rmse0, rmse1)
