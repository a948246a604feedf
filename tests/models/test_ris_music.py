"""Behaviour of the RIS hybrid covariance network + MUSIC (models/ris_music.py) beyond the zoo contract."""
import dataclasses

import numpy as np
import pytest
import torch

import models
from models import SeededGenerator, UnsupportedError, init_parameters
from models._array import guarded_eigh, pick_peaks, ridge_ls_covariance, steering
from models.ris_music import HEAD_KEYS, RISMusic

TINY = models.get_spec("ris_music_tiny").config
HEAD_MODULES = ("cov_fact_angle", "cov_fact_range")


def _tiny(seed=0, **changes):
    model = RISMusic(dataclasses.replace(TINY, **changes))
    init_parameters(model, seed)
    return model


def _complex(t):
    return torch.view_as_complex(t.float().contiguous())


def _music_rmse(model, r, counts, target):
    return model.task_metric({"spectrum": model.music_spectrum(r, counts)}, target)


def _grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad for n, p in model.named_parameters()}


def test_shapes_of_inputs_outputs_and_covariances():
    model = _tiny()
    n, m, k = TINY.elements, TINY.antennas, TINY.max_sources
    (y, h, c), (r_true, counts, angles, p_true) = model.example_inputs(3, 7, SeededGenerator(0))
    assert y.shape == (3, 7, m, 2) and h.shape == (3, m, n, 2) and c.shape == (3, 7, n, 2)
    assert r_true.shape == (3, n, n, 2) and counts.shape == (3,) and angles.shape == (3, k)
    assert p_true.shape == (3, n, n, 2)
    assert counts.dtype == torch.int64 and int(counts.min()) >= 1 and int(counts.max()) <= k
    assert torch.allclose(_complex(c).abs(), torch.ones(3, 7, n), atol=1e-5)  # unit-modulus RIS codes
    out = model(y, h, c)
    assert set(out) == {"cov_fact_angle", "cov_fact_range", "k_logits", "r_blend"}
    assert out["cov_fact_angle"].shape == out["cov_fact_range"].shape == (3, n * k * 2)
    assert out["k_logits"].shape == (3, k)
    for r in (_complex(out["r_blend"]), _complex(r_true)):
        assert torch.allclose(r, r.conj().transpose(-2, -1), atol=1e-5)  # Hermitian
        assert torch.allclose(torch.diagonal(r, dim1=-2, dim2=-1).real.sum(-1), torch.full((3,), float(n)), atol=1e-3)
    # P_true: the projector on the true sources' steering vectors (idempotent, trace K, holds R_true).
    p = torch.view_as_complex(p_true.double().contiguous())
    assert torch.allclose(p @ p, p, atol=1e-5)
    assert torch.allclose(torch.diagonal(p, dim1=-2, dim2=-1).real.sum(-1), counts.double(), atol=1e-4)
    rt = torch.view_as_complex(r_true.double().contiguous())
    assert torch.allclose(p @ rt, rt, atol=1e-4)
    model.eval()
    with torch.no_grad():
        spectrum = model.infer(y, h, c)["spectrum"]
    assert spectrum.shape == (3, TINY.grid_points) and spectrum.dtype == torch.float32
    assert bool((spectrum > 0).all()) and bool(torch.isfinite(spectrum).all())


def test_true_angles_are_separated_and_in_range():
    model = _tiny()
    _, (_, counts, angles, _) = model.example_inputs(64, 2, SeededGenerator(1))
    for k, a in zip(counts.tolist(), angles.numpy()):
        active = np.sort(a[:k])
        assert np.all(np.abs(active) <= TINY.max_angle)
        assert np.all(np.diff(active) >= TINY.min_separation - 1e-4)
        assert np.all(a[k:] == 0)


def test_size_rules():
    spec = models.get_spec("ris_music_tiny")
    assert spec.size_error(2) is None and spec.size_error(31) is None
    assert "1" in spec.size_error(1)
    assert spec.size_error("8x4") is not None  # snapshots are a count, never "HxW"
    model = _tiny()
    with pytest.raises(ValueError, match="got 1"):
        model.example_inputs(2, 1, SeededGenerator(0))
    (y, h, c), _ = model.example_inputs(1, 4, SeededGenerator(0))
    with pytest.raises(ValueError, match="C of shape"):
        model(y, h, c[:, :3])


def test_two_heads_and_the_audited_parameter_split_and_optimizer():
    base = models.create_model("ris_music_base")
    groups = base.param_groups()
    assert [g["name"] for g in groups] == ["backbone", "head"]
    n_back, n_head = (sum(p.numel() for p in g["params"]) for g in groups)
    # The audit: ~8.3M backbone + ~11.0M head = ~19.3M, head at 4x the backbone's learning rate.
    assert 8.2e6 < n_back < 8.4e6 and 10.9e6 < n_head < 11.1e6, (n_back, n_head)
    assert n_back + n_head == sum(p.numel() for p in base.parameters())
    assert groups[0]["lr"] == pytest.approx(3e-4) and groups[1]["lr"] == pytest.approx(1.2e-3)
    assert base.optimizer_name == "adamw" and base.grad_clip_norm == 1.0
    head_ids = {id(p) for p in groups[1]["params"]}
    for name, p in base.named_parameters():
        assert (id(p) in head_ids) == (name.split(".")[0] in HEAD_KEYS), name
    # Both factor heads are real heads: same shape, separate parameters.
    assert base.cov_fact_angle.fc2.out_features == base.cov_fact_range.fc2.out_features == 144 * 5 * 2
    optimizer = _tiny().make_optimizer()
    assert isinstance(optimizer, torch.optim.AdamW) and len(optimizer.param_groups) == 2
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([3e-4, 1.2e-3])


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
    r_true, counts, _, _ = target
    r = _complex(r_true) + 1e-3 * torch.eye(TINY.elements)
    assert _music_rmse(model, r, counts, target) < 0.6  # half the 1-degree grid step
    a = steering(torch.tensor([10.0]), TINY.elements)
    assert torch.allclose(a.abs(), torch.ones_like(a.abs()))


def test_more_snapshots_give_a_better_sample_covariance():
    # beta = 1: MUSIC on the ridge-LS sample covariance alone (the network's factors drop out).
    # With N / M = 8 (as at base, 144 / 16) each snapshot sees an eighth of the surface: it takes
    # hundreds of snapshots to converge, which is what the network's factors are for.
    model = _tiny(beta=1.0).eval()
    rmse = []
    for snaps in (4, 16, 256):
        inputs, target = model.task_batch(48, snaps, SeededGenerator(11))
        with torch.no_grad():
            r = _complex(model(*inputs)["r_blend"])
        rmse.append(_music_rmse(model, r, target[1], target))
    assert rmse[0] > 2 * rmse[1] and rmse[1] >= rmse[2] and rmse[2] < 1.5, rmse


def test_blend_weights_and_detaches_the_sample_covariance():
    model = _tiny()
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
    # The loading comes before each eigh, not into the blend itself.
    assert torch.allclose(model.loaded(blend) - blend, TINY.diag_load * torch.eye(n, dtype=blend.dtype))


def test_guarded_eigh_matches_torch_where_eigenvalues_are_distinct():
    gen = SeededGenerator(8)
    a = torch.complex(gen.normal((2, 6, 6)), gen.normal((2, 6, 6))).to(torch.complex128)
    a = a + a.conj().transpose(-2, -1)
    w = gen.normal((6, 6)).double()

    def loss(x, eigh):
        evals, evecs = eigh(0.5 * (x + x.conj().transpose(-2, -1)))
        top = evecs[..., -2:]
        return ((top @ top.conj().transpose(-2, -1)).real * w).sum() + 0.1 * evals.pow(2).sum()

    x = a.clone().requires_grad_()
    (ours,) = torch.autograd.grad(loss(x, lambda t: guarded_eigh(t, 1e-5)), x)
    (ref,) = torch.autograd.grad(loss(x, torch.linalg.eigh), x)
    assert torch.allclose(ours, ref, atol=1e-10)
    assert torch.autograd.gradcheck(lambda t: loss(t, lambda u: guarded_eigh(u, 1e-5)), (a.clone().requires_grad_(),))


def test_guarded_eigh_is_finite_where_torch_divides_zero_by_zero():
    # A scaled identity: every eigenvalue tied. A projector loss is invariant inside the eigenspace,
    # so its gradient is 0 / 0 there: NaN from torch's backward, 0 from the clamped one.
    for eigh, finite in ((lambda t: guarded_eigh(t, 1e-5), True), (torch.linalg.eigh, False)):
        x = (2.0 * torch.eye(4, dtype=torch.complex64)).requires_grad_()
        _, evecs = eigh(x)
        top = evecs[:, -1:]
        (grad,) = torch.autograd.grad((top @ top.conj().T).real.sum(), x)
        assert bool(torch.isfinite(torch.view_as_real(grad)).all()) == finite


def test_gradients_flow_through_eigh_into_both_heads():
    # The eigengap and subspace losses alone (no NMSE, no count loss) train both factor heads.
    model = _tiny()
    inputs, (_, counts, _, p_true) = model.example_inputs(2, 8, SeededGenerator(9))
    for which in (0, 1):
        terms = model.eigen_losses(_complex(model(*inputs)["r_blend"]), counts, _complex(p_true))
        assert 0.0 < terms[which].item() <= 1.0
        grads = _grads(model, terms[which])
        for part in HEAD_MODULES + ("factor_gate", "blocks"):
            g = [v for k, v in grads.items() if k.startswith(part)]
            assert g and all(v is not None and torch.isfinite(v).all() for v in g), part
            assert sum(float(v.abs().sum()) for v in g) > 0, part
        assert grads["k_head.weight"] is None  # the count head is not in the eigen-losses


def test_eigen_losses_reward_the_true_covariance():
    model = _tiny()
    _, (r_true, counts, _, p_true) = model.example_inputs(8, 8, SeededGenerator(10))
    gap, subspace = model.eigen_losses(_complex(r_true), counts, _complex(p_true))
    assert float(subspace) < 1e-4 and float(gap) < 0.5
    noise = torch.eye(TINY.elements, dtype=torch.complex64).expand(8, -1, -1)
    gap_n, subspace_n = model.eigen_losses(noise, counts, _complex(p_true))
    assert float(gap_n) == pytest.approx(1.0) and float(subspace_n) > 0.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch,size", [(1, 8), (2, 8), (8, 8), (2, 17)])
def test_healthy_gradients_are_finite_at_the_benchmark_inputs_despite_tied_eigenvalues(batch, size, dtype):
    model = _tiny().to(dtype)
    inputs, target = model.example_inputs(batch, size, SeededGenerator(0))
    inputs = tuple(t.to(dtype) for t in inputs)
    target = tuple(t.to(dtype) if t.is_floating_point() else t for t in target)
    out = model(*inputs)
    with torch.no_grad():  # the loaded blend's noise eigenvalues are bitwise tied: eigh's 0 / 0 case
        evals = torch.linalg.eigvalsh(model.loaded(torch.view_as_complex(out["r_blend"].contiguous())))
        assert int((evals[..., 1:] == evals[..., :-1]).sum()) >= batch
    loss = model.loss(out, target)
    grads = _grads(model, loss)
    assert torch.isfinite(loss) and loss.dtype == dtype
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())


def test_degenerate_sample_covariance_keeps_loss_and_gradients_finite():
    # All-zero snapshots make R_samp zero (all its eigenvalues tied).
    model = _tiny()
    (y, h, c), target = model.example_inputs(2, 5, SeededGenerator(5))
    loss = model.loss(model(torch.zeros_like(y), h, c), target)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_complex_part_stays_float32_in_bfloat16_and_autocast_and_float64_in_float64():
    model = _tiny()
    inputs, target = model.example_inputs(2, 6, SeededGenerator(6))
    ref = model(*inputs)["r_blend"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = model(*inputs)
    assert auto["r_blend"].dtype == torch.float32
    assert model.loss(auto, target).dtype == torch.float32
    wide = _tiny().double()
    out64 = wide(*(t.double() for t in inputs))
    assert out64["r_blend"].dtype == torch.float64
    assert (out64["r_blend"].float() - ref).abs().max().item() < 1e-3 * ref.abs().max().item()
    wide.eval()
    with torch.no_grad():
        assert wide.infer(*(t.double() for t in inputs))["spectrum"].dtype == torch.float64
    half = model.to(torch.bfloat16)
    out = half(*(t.bfloat16() for t in inputs))
    assert out["cov_fact_angle"].dtype == torch.bfloat16 and out["r_blend"].dtype == torch.float32
    # Only the (gated) network correction is rounded; the sample-covariance part is exact float32.
    assert (out["r_blend"] - ref).abs().max().item() < 0.05 * ref.abs().max().item()
    half.eval()
    with torch.no_grad():
        assert torch.isfinite(half.infer(*(t.bfloat16() for t in inputs))["spectrum"]).all()


def test_missing_eigh_is_unsupported(monkeypatch):
    model = _tiny()
    inputs, _ = model.example_inputs(1, 4, SeededGenerator(0))
    monkeypatch.delattr(torch.linalg, "eigh")
    with pytest.raises(UnsupportedError, match="torch.linalg.eigh"):
        model(*inputs)


def test_short_training_lowers_loss_and_learns_the_source_count():
    # 32 snapshots: at 8, with N / M = 8, the count is barely learnable in 100 steps.
    model = _tiny()
    held_inputs, held_target = model.task_batch(64, 32, SeededGenerator(123))

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
        inputs, target = model.task_batch(16, 32, gen)
        opt.zero_grad()
        model.loss(model(*inputs), target).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), model.grad_clip_norm)
        opt.step()
    loss1, acc1, rmse1 = evaluate()
    assert loss1 < 0.9 * loss0 and acc1 > max(acc0 + 0.15, 0.5), (loss0, loss1, acc0, acc1)
    assert not model.task_higher_is_better and np.isfinite(rmse1) and rmse1 < min(rmse0, 12.0), (rmse0, rmse1)
