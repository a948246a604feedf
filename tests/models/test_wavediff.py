"""WaveDiff: schedules, masks, sizes ("HxW" too), deterministic DDIM, the task, the lazy-head fault twin.

The Haar transform is tested in test_layers.py.
"""
import subprocess
import sys

import numpy as np
import pytest
import torch

import models
from models import SeededGenerator, init_parameters
from models.wavediff import (
    WaveDiff,
    WaveDiffConfig,
    WaveDiffLazyHeadFault,
    beta_schedule,
    expand_mask,
    random_box_masks,
)


def _build(name="wavediff_tiny", seed=0):
    model = models.create_model(name)
    init_parameters(model, seed)
    return model


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_beta_schedules_and_buffers(kind):
    betas = beta_schedule(kind, 100)
    assert betas.shape == (100,) and (betas > 0).all() and (betas < 1).all()
    assert (np.diff(betas) >= 0).all()
    model = WaveDiff(WaveDiffConfig(widths=(8, 16), blocks_per_level=1, time_dim=8, num_timesteps=100,
                                    beta_schedule=kind, sampling_steps=2))
    buffers = dict(model.named_buffers())
    assert {"betas", "alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod"} <= set(buffers)
    assert (buffers["alphas_cumprod"][1:] < buffers["alphas_cumprod"][:-1]).all()
    assert model.double().alphas_cumprod.dtype == torch.float64  # buffers follow .to(dtype)


def test_config_validation_raises_valueerror_with_the_value():
    tiny = dict(widths=(8, 16), blocks_per_level=1, time_dim=8, num_timesteps=20)
    with pytest.raises(ValueError, match="quadratic"):
        WaveDiff(WaveDiffConfig(beta_schedule="quadratic", **tiny))
    for steps in (0, 21):
        with pytest.raises(ValueError, match=str(steps)):
            WaveDiff(WaveDiffConfig(sampling_steps=steps, **tiny))
    model = _build()
    inputs, _ = model.example_inputs(1, 16, SeededGenerator(0))
    with pytest.raises(ValueError, match="1000"):
        model.infer(*inputs, sampling_steps=1000)


def test_sampling_steps_validation_survives_python_O():
    code = ("from models.wavediff import WaveDiff, WaveDiffConfig\n"
            "try:\n"
            "    WaveDiff(WaveDiffConfig(widths=(8,), time_dim=8, num_timesteps=10, sampling_steps=0))\n"
            "except ValueError as exc:\n"
            "    print('ValueError', exc)\n")
    proc = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=models.__path__[0] + "/..")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ValueError") and "got 0" in proc.stdout


def test_out_channels_are_stored_not_inferred():
    model = _build()
    assert model.out_channels == 31 and model.denoiser.out_channels == 4 * 31
    assert model.denoiser.conv_out.out_channels == model.denoiser.out_channels


def test_size_rule_names_the_value():
    tiny, base = models.get_spec("wavediff_tiny"), models.get_spec("wavediff_base")
    assert tiny.size_error(16) is None and tiny.size_error(20) is None
    assert "18" in tiny.size_error(18) and "multiple of 4" in tiny.size_error(18)
    assert base.size_error(128) is None and "36" in base.size_error(36)


def test_non_square_sizes_follow_the_rule_per_side_train_and_sample():
    spec = models.get_spec("wavediff_tiny")
    assert spec.model_cls.non_square and spec.size_error("16x8") is None
    reason = spec.size_error("16x18")
    assert reason is not None and "18" in reason and "16x18" in reason and "multiple of 4" in reason
    model = _build()
    (rgb, cube, noise, t, mask), target = model.example_inputs(2, "16x8", SeededGenerator(0))
    assert rgb.shape == (2, 3, 16, 8) and cube.shape == target.shape == (2, 31, 16, 8)
    assert noise.shape == (2, 124, 8, 4) and mask.shape == (2, 1, 16, 8)
    model.train()
    out = model(rgb, cube, noise, t, mask)
    assert out.shape == (2, 31, 16, 8)
    model.loss(out, target).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert model.infer(rgb, cube, noise, t, mask).shape == (2, 31, 16, 8)


def test_box_masks_keep_the_area_ratio_and_the_image_aspect():
    square = random_box_masks(3, 16, SeededGenerator(0), 0.25)
    assert square.shape == (3, 1, 16, 16) and bool((square.sum(dim=(1, 2, 3)) == 256 - 64).all())
    wide = random_box_masks(3, "8x32", SeededGenerator(0), 0.25)
    assert wide.shape == (3, 1, 8, 32) and bool((wide.sum(dim=(1, 2, 3)) == 256 - 4 * 16).all())


def test_expand_mask_accepts_the_documented_shapes_and_rejects_the_rest():
    like = torch.zeros(2, 3, 4, 6, dtype=torch.float64)
    for mask in (torch.ones(4, 6), torch.ones(2, 4, 6), torch.ones(2, 1, 4, 6), torch.ones(1, 3, 4, 6)):
        out = expand_mask(mask, like)
        assert out.shape == like.shape and out.dtype == like.dtype
    assert expand_mask(torch.ones(2, 1, 4, 6), like).stride()[1] == 0  # a view, not a copy
    ones = expand_mask(None, like)
    assert ones.shape == like.shape and ones.dtype == like.dtype and bool((ones == 1).all())
    for bad in (torch.ones(2, 4, 5), torch.ones(3, 1, 4, 6), torch.ones(2, 2, 4, 6), torch.ones(1, 1, 1, 4, 6)):
        with pytest.raises(ValueError, match=r"\(2, 3, 4, 6\)"):
            expand_mask(bad, like)


def test_forward_validates_noise_and_timesteps():
    model = _build()
    (rgb, cube, noise, t, mask), _ = model.example_inputs(2, 16, SeededGenerator(0))
    assert noise.shape == (2, 124, 8, 8) and t.dtype == torch.int64 and mask.shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="wavelet shape"):
        model(rgb, cube, noise[:, :31], t, mask)
    with pytest.raises(ValueError, match=r"\[0, 100\)"):
        model(rgb, cube, noise, torch.tensor([0, 100]), mask)


def test_masked_rgb_pixels_do_not_reach_the_network():
    model = _build().eval()
    (rgb, cube, noise, t, mask), _ = model.example_inputs(2, 16, SeededGenerator(0))
    assert 0 < float(mask.mean()) < 1
    with torch.no_grad():
        ref = model(rgb, cube, noise, t, mask)
        hidden = model(rgb + 5.0 * (1 - mask), cube, noise, t, mask)
        seen = model(rgb + 5.0 * mask, cube, noise, t, mask)
    assert torch.equal(ref, hidden)
    assert not torch.allclose(ref, seen)


def test_training_step_and_sampling_draw_no_random_numbers_and_repeat_exactly():
    model = _build()
    inputs, target = model.example_inputs(2, 16, SeededGenerator(0))
    state = torch.get_rng_state()
    first = model(*inputs)
    assert torch.equal(first, model(*inputs))
    model.eval()
    with torch.no_grad():
        sample = model.infer(*inputs)
        assert torch.equal(sample, model.infer(*inputs))
    assert torch.equal(state, torch.get_rng_state())
    assert first.shape == sample.shape == target.shape == (2, 31, 16, 16)


def test_infer_runs_the_configured_ddim_steps_from_the_noise_alone():
    model = _build().eval()
    rgb, cube, noise, t, mask = model.example_inputs(2, 16, SeededGenerator(0))[0]
    calls = []
    hook = model.denoiser.register_forward_hook(lambda m, i, o: calls.append(1))
    with torch.no_grad():
        ref = model.infer(rgb, cube, noise, t, mask)
        assert len(calls) == model.config.sampling_steps == 3
        # The target cube and the training timestep are not used by sampling; the noise is.
        assert torch.equal(ref, model.infer(rgb, torch.zeros_like(cube), noise, t.flip(0), mask))
        assert not torch.allclose(ref, model.infer(rgb, cube, noise.flip(1), t, mask))
        model.infer(rgb, cube, noise, t, mask, sampling_steps=1)
    hook.remove()
    assert len(calls) == 3 * 3 + 1


def test_training_on_the_task_raises_sampled_psnr():
    torch.manual_seed(0)
    model = _build(seed=1)
    assert model.task_metric_name == "psnr_db" and model.task_higher_is_better
    eval_inputs, eval_cube = model.task_batch(4, 16, SeededGenerator(100))

    def metric():
        model.eval()
        with torch.no_grad():
            value = model.task_metric(model.infer(*eval_inputs), eval_cube)
        model.train()
        return value

    before = metric()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = SeededGenerator(7)
    for _ in range(60):
        inputs, cube = model.task_batch(4, 16, gen)
        opt.zero_grad()
        model.loss(model(*inputs), cube).backward()
        opt.step()
    after = metric()
    assert after > before + 4.5 and after > 15.5, (before, after)


def test_fault_lazy_head_leaves_a_stale_optimizer_that_never_updates_the_live_head():
    spec = models.get_spec("wavediff_lazy_head_fault_tiny")
    assert spec.fault and spec.model_cls is WaveDiffLazyHeadFault
    healthy, fault = _build(), _build("wavediff_lazy_head_fault_tiny")
    inputs, target = healthy.example_inputs(2, 16, SeededGenerator(0))
    placeholder = fault.denoiser.conv_out
    results = {}
    for name, model in (("healthy", healthy), ("fault", fault)):
        opt = model.make_optimizer()  # before the first forward, as a training loop does
        model.train()
        start = None
        for _ in range(3):
            opt.zero_grad()
            model.loss(model(*inputs), target).backward()
            if start is None:  # the live head after the first forward (the fault rebuilt it there)
                start = {k: v.detach().clone() for k, v in model.denoiser.conv_out.named_parameters()}
            opt.step()
        live = dict(model.denoiser.conv_out.named_parameters())
        assert all(p.grad is not None for p in live.values())  # the live head gets gradients ...
        results[name] = [torch.equal(start[k], live[k].detach()) for k in sorted(start)]
    assert results["healthy"] == [False, False]
    assert results["fault"] == [True, True]  # ... but the fault's never changes
    assert fault.denoiser.conv_out is not placeholder and fault.head_built
    assert healthy.denoiser.conv_out.out_channels == fault.denoiser.conv_out.out_channels == 124


def test_fault_lazy_head_gives_the_healthy_outputs_before_training():
    healthy, fault = _build().eval(), _build("wavediff_lazy_head_fault_tiny").eval()
    inputs, _ = healthy.example_inputs(2, 16, SeededGenerator(1))
    with torch.no_grad():
        assert torch.equal(fault(*inputs), healthy(*inputs))
        assert torch.equal(fault.infer(*inputs), healthy.infer(*inputs))
