"""MSWR-Net: padding, size rules (square and "HxW"), training on the task, and the two fault twins."""
import dataclasses

import pytest
import torch

import models
from models import SeededGenerator, init_parameters
from models.mswr import MSWRNet, MSWRNetHWSwapFault, replicate_pad_to


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


def test_replicate_padding_repeats_the_last_row_and_column():
    x = torch.arange(15.0).reshape(1, 1, 3, 5)
    y = replicate_pad_to(x, 4)
    assert y.shape == (1, 1, 4, 8)
    assert torch.equal(y[..., :3, :5], x)
    assert torch.equal(y[..., 3, :5], x[..., 2, :])
    assert torch.equal(y[..., :3, 7], x[..., :, 4])
    assert replicate_pad_to(x, 1) is x


def test_loss_is_mrae_and_the_metric_psnr():
    # The task, MRAE and PSNR themselves (models._spectral) are tested in test_layers.py.
    model = _build("mswr_net_tiny")
    assert model.task_metric_name == "psnr_db" and model.task_higher_is_better
    target = torch.full((1, 31, 4, 4), 0.5)
    assert abs(model.loss(target * 1.1, target).item() - 0.1) < 1e-3
    assert abs(model.task_metric(target + 0.1, target) - 20.0) < 1e-4


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


@pytest.mark.parametrize("size", ["32x16", "17x24"])
def test_non_square_sizes_train_and_give_a_non_square_cube(size):
    spec = models.get_spec("mswr_net_tiny")
    assert spec.model_cls.non_square and spec.size_error(size) is None
    h, w = models.image_hw(size)
    model = _build("mswr_net_tiny")
    inputs, target = model.example_inputs(2, size, SeededGenerator(4))
    assert inputs[0].shape == (2, 3, h, w) and target.shape == (2, 31, h, w)
    loss, grads = _grads(model, inputs, target)
    assert torch.isfinite(loss) and all(g is not None for g in grads.values())
    model.eval()
    with torch.no_grad():
        assert model(*inputs).shape == (2, 31, h, w)


def test_a_square_hxw_size_is_the_square_side():
    model = _build("mswr_net_tiny")
    (a,), ta = model.example_inputs(2, "16x16", SeededGenerator(4))
    (b,), tb = model.example_inputs(2, 16, SeededGenerator(4))
    assert torch.equal(a, b) and torch.equal(ta, tb)
    assert models.get_spec("mswr_net_tiny").size_error("16x0") is not None


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


def test_training_on_the_task_raises_psnr(train_on_task):
    torch.manual_seed(0)
    model = _build("mswr_net_tiny")
    before, after = train_on_task(model)
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


def test_fault_hw_swap_runs_square_inputs_and_fails_on_non_square_ones():
    spec = models.get_spec("mswr_net_hw_swap_fault_tiny")
    assert spec.fault and spec.model_cls is MSWRNetHWSwapFault
    assert spec.size_error("32x16") is None  # it claims non-square sizes, as the healthy model does
    healthy, fault = _build("mswr_net_tiny").eval(), _build("mswr_net_hw_swap_fault_tiny").eval()
    (square,), _ = fault.example_inputs(2, 32, SeededGenerator(0))
    with torch.no_grad():
        assert torch.equal(fault(square), healthy(square))  # square: the swap is the identity
        for size in ("32x16", "16x32"):
            (rgb,), _ = fault.example_inputs(2, size, SeededGenerator(0))
            assert healthy(rgb).shape == (2, 31) + models.image_hw(size)
            with pytest.raises(RuntimeError, match="size"):
                fault(rgb)
