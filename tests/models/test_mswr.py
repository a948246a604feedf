"""MSWR-Net: the Haar transform, size rules, the spectral task, and the legacy-checkpoint fault twin."""
import dataclasses

import numpy as np
import pytest
import torch

import models
from models import SeededGenerator, init_parameters
from models.mswr import (
    MSWRNet,
    camera_response,
    haar_dwt,
    haar_idwt,
    make_spectral_batch,
    mrae,
    psnr_db,
    replicate_pad_to,
)


def _build(name, seed=0):
    model = models.create_model(name)
    init_parameters(model, seed)
    return model


def _grads(model, inputs, target):
    model.train()
    model.zero_grad(set_to_none=True)  # 1.10 zeroes grads by default: a lost one would look like 0
    loss = model.loss(model(*inputs), target)
    loss.backward()
    return loss.detach(), {n: (None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()}


def test_haar_transform_is_orthonormal_and_inverted_exactly():
    x = SeededGenerator(0).normal((2, 3, 8, 12), dtype=torch.float64)
    y = haar_dwt(x)
    assert y.shape == (2, 12, 4, 6)
    assert torch.allclose(haar_idwt(y), x, atol=1e-12)
    assert torch.allclose((y ** 2).sum(), (x ** 2).sum())  # energy is preserved
    # A constant image has only an LL band.
    const = haar_dwt(torch.ones(1, 1, 4, 4, dtype=torch.float64))
    assert torch.allclose(const[:, 0], torch.full((1, 2, 2), 2.0, dtype=torch.float64))
    assert const[:, 1:].abs().max().item() == 0.0


def test_replicate_padding_repeats_the_last_row_and_column():
    x = torch.arange(15.0).reshape(1, 1, 3, 5)
    y = replicate_pad_to(x, 4)
    assert y.shape == (1, 1, 4, 8)
    assert torch.equal(y[..., :3, :5], x)
    assert torch.equal(y[..., 3, :5], x[..., 2, :])
    assert torch.equal(y[..., :3, 7], x[..., :, 4])
    assert replicate_pad_to(x, 1) is x


def test_synthetic_task_is_a_smooth_cube_seen_through_the_camera():
    resp = camera_response()
    assert resp.shape == (3, 31) and (resp > 0).all() and np.allclose(resp.sum(axis=1), 1.0)
    rgb, cube = make_spectral_batch(SeededGenerator(4), 2, 16)
    assert rgb.shape == (2, 3, 16, 16) and cube.shape == (2, 31, 16, 16)
    assert cube.min().item() > 0.0 and cube.max().item() < 1.0
    expected = torch.einsum("cl,blhw->bchw", torch.from_numpy(resp).float(), cube)
    assert torch.allclose(rgb, expected, atol=1e-5)
    # Smooth along the spectrum and in space: neighbours differ far less than the range.
    # (White noise would give about 1.1 standard deviations.)
    assert (cube[:, 1:] - cube[:, :-1]).abs().mean() < 0.35 * cube.std()
    assert (cube[..., 1:, :] - cube[..., :-1, :]).abs().mean() < 0.35 * cube.std()
    again = make_spectral_batch(SeededGenerator(4), 2, 16)
    assert torch.equal(again[0], rgb) and torch.equal(again[1], cube)


def test_metrics():
    target = torch.full((1, 31, 4, 4), 0.5)
    assert mrae(target, target).item() == 0.0
    assert abs(mrae(target * 1.1, target).item() - 0.1) < 1e-3
    assert abs(psnr_db(target + 0.1, target) - 20.0) < 1e-4
    model = _build("mswr_net_tiny")
    assert model.task_metric_name == "psnr_db" and model.task_higher_is_better


@pytest.mark.parametrize("h, w", [(17, 17), (31, 31), (16, 24), (24, 16), (1, 1), (5, 3)])
def test_any_size_and_non_square_inputs_give_a_full_cube(h, w):
    # Odd sides are padded for the Haar levels and cropped back; non-square inputs
    # exercise the landmark grid per side (audit bug #4).
    model = MSWRNet(models.get_spec("mswr_net_tiny").config).eval()
    init_parameters(model, 0)
    with torch.no_grad():
        out = model(SeededGenerator(1).uniform((1, 3, h, w)))
    assert out.shape == (1, 31, h, w) and torch.isfinite(out).all()


def test_size_rules():
    spec = models.get_spec("mswr_net_tiny")
    assert spec.size_error(17) is None and spec.size_error(31) is None
    for bad in (0, -3, 2.5):
        reason = spec.size_error(bad)
        assert reason is not None and str(bad) in reason
    with pytest.raises(ValueError, match="0"):
        _build("mswr_net_tiny").example_inputs(1, 0, SeededGenerator(0))
    with pytest.raises(ValueError, match="shape"):
        _build("mswr_net_tiny")(torch.zeros(1, 4, 8, 8))


def test_config_validation():
    base = models.get_spec("mswr_net_tiny").config
    with pytest.raises(ValueError, match="heads"):
        MSWRNet(dataclasses.replace(base, heads=(3, 2)))
    with pytest.raises(ValueError, match="one entry per scale"):
        MSWRNet(dataclasses.replace(base, depths=(1,)))


def test_base_builds_with_the_report_sized_widths():
    model = models.create_model("mswr_net_base")
    n = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < n < 5_000_000, n


def test_training_on_the_task_raises_psnr():
    torch.manual_seed(0)
    model = _build("mswr_net_tiny")
    (x_eval,), y_eval = model.task_batch(4, 16, SeededGenerator(99))

    def evaluate():
        model.eval()
        with torch.no_grad():
            return model.task_metric(model.infer(x_eval), y_eval)

    before = evaluate()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = SeededGenerator(1)
    model.train()
    for _ in range(20):
        (x,), y = model.task_batch(4, 16, gen)
        opt.zero_grad()
        model.loss(model(x), y).backward()
        opt.step()
    after = evaluate()
    assert after > before + 6.0, (before, after)


def test_healthy_checkpointing_keeps_the_first_stage_gradients():
    model = _build("mswr_net_tiny")
    inputs, target = model.example_inputs(2, 16, SeededGenerator(2))
    _, ref = _grads(model, inputs, target)
    model.set_grad_checkpointing("reentrant")
    _, got = _grads(model, inputs, target)
    for name, g in ref.items():
        assert got[name] is not None, name
        assert torch.allclose(got[name], g, rtol=1e-4, atol=1e-6), name


@pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad")
def test_fault_legacy_checkpoint_silently_drops_first_stage_gradients():
    fault = _build("mswr_net_legacy_ckpt_tiny")
    assert models.get_spec("mswr_net_legacy_ckpt_tiny").fault
    inputs, target = fault.example_inputs(2, 16, SeededGenerator(2))
    loss_plain, plain = _grads(fault, inputs, target)
    assert all(g is not None for g in plain.values())  # without checkpointing it is healthy
    fault.set_grad_checkpointing("reentrant")
    loss_ckpt, ckpt = _grads(fault, inputs, target)
    # The loss is the same, nothing fails: only the gradients are gone.
    assert torch.allclose(loss_ckpt, loss_plain)
    lost = sorted(n for n, g in ckpt.items() if g is None)
    assert lost and all(n.startswith(("stem.", "encoders.0.")) for n in lost), lost
    assert "stem.weight" in lost and any(n.startswith("encoders.0.") for n in lost)
    assert ckpt["head.weight"] is not None and ckpt["encoders.1.0.attn.qkv.weight"] is not None
    # The same weights in the healthy model keep every gradient under the same mode.
    healthy = _build("mswr_net_tiny")
    healthy.set_grad_checkpointing("reentrant")
    _, good = _grads(healthy, inputs, target)
    assert all(g is not None for g in good.values())
    assert torch.allclose(good["stem.weight"], plain["stem.weight"], rtol=1e-4, atol=1e-6)
