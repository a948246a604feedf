"""Cube U-Net (seed 003): 5-D shapes, separable 3-D convs, attention scaling, sizes, the heat task."""
import numpy as np
import pytest
import torch

import models
from models import SeededGenerator, init_parameters
from models.cube_unet import CubeUNet, CubeUNetConfig, _laplacian, make_diffusion_batch

assert_close = getattr(torch.testing, "assert_close", None) or torch.testing.assert_allclose
TINY = "cube_unet_tiny"


def _build(seed=0, **overrides):
    if overrides:
        model = CubeUNet(CubeUNetConfig(**dict(dict(widths=(8, 16, 32), heads=2, in_channels=2, depth=4),
                                               **overrides)))
    else:
        model = models.create_model(TINY)
    init_parameters(model, seed)
    return model


def test_output_keeps_the_5d_cube_shape():
    model = _build().eval()
    (cube,), target = model.example_inputs(2, 16, SeededGenerator(0))
    assert cube.shape == target.shape == (2, 2, 4, 16, 16)
    with torch.no_grad():
        out = model(cube)
    assert out.shape == cube.shape


def test_levels_axis_is_never_pooled_so_any_depth_works():
    model = _build(depth=3).eval()
    for depth in (1, 3, 5):
        with torch.no_grad():
            out = model(torch.zeros(1, 2, depth, 8, 8))
        assert out.shape == (1, 2, depth, 8, 8)


def test_convs_are_separable_3d():
    kernels = {tuple(m.kernel_size) for m in _build().modules() if isinstance(m, torch.nn.Conv3d)}
    assert (1, 3, 3) in kernels and (3, 1, 1) in kernels
    assert (3, 3, 3) not in kernels
    assert kernels <= {(1, 3, 3), (3, 1, 1), (1, 1, 1)}


def test_attention_heads_are_derived_and_validated():
    # The attention itself (scaled by 1/sqrt(head_dim) on every torch) is tested in test_layers.py.
    attn = _build().bottleneck.attn
    assert attn.heads == 2 and attn.head_dim == 16
    with pytest.raises(ValueError, match="divisible"):
        _build(heads=3)


def test_size_rules_name_the_value():
    config = models.get_spec(TINY).config
    assert CubeUNet.size_error(config, 16) is None and CubeUNet.size_error(config, 4) is None
    for size in (18, 17, 31, 2):
        reason = CubeUNet.size_error(config, size)
        assert reason is not None and str(size) in reason
    assert "multiple of 4" in CubeUNet.size_error(config, 18)
    deep = CubeUNetConfig(widths=(8, 16, 32, 64), heads=2)
    assert "multiple of 8" in CubeUNet.size_error(deep, 12)
    model = _build()
    with pytest.raises(ValueError, match="18"):
        model.example_inputs(1, 18, SeededGenerator(0))
    with pytest.raises(ValueError, match="multiples of 4"):
        model(torch.zeros(1, 2, 4, 16, 10))
    with pytest.raises(ValueError, match="b, 2, d, h, w"):
        model(torch.zeros(1, 2, 16, 16))  # a 4-D input is the audit's smoke-test shape error inverted


def test_non_square_grids_follow_the_rule_per_side_and_train():
    spec = models.get_spec(TINY)
    assert spec.model_cls.non_square and spec.size_error("16x8") is None
    for bad, side in (("16x6", "6"), ("4x2", "2")):
        reason = spec.size_error(bad)
        assert reason is not None and side in reason and bad in reason
    model = _build()
    (cube,), target = model.example_inputs(2, "16x8", SeededGenerator(0))
    assert cube.shape == target.shape == (2, 2, 4, 16, 8)
    (state,), nxt = model.task_batch(2, "8x16", SeededGenerator(0))
    assert state.shape == nxt.shape == (2, 2, 4, 8, 16)
    model.train()
    out = model(cube)
    assert out.shape == (2, 2, 4, 16, 8)
    model.loss(out, target).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_base_builds_near_the_audit_size():
    model = models.create_model("cube_unet_base")
    count = sum(p.numel() for p in model.parameters())
    assert 35e6 < count < 55e6  # audit: ~50M (configurable)
    assert model.levels == 4 and models.get_spec("cube_unet_base").size_error(64) is None


def test_heat_task_is_an_explicit_diffusion_step():
    state, nxt = make_diffusion_batch(2, 3, 4, 16, SeededGenerator(9), steps=1)
    kappa = np.linspace(0.04, 0.16, 3).reshape(1, 3, 1, 1, 1)
    np.testing.assert_allclose(nxt, state + kappa * _laplacian(state), atol=1e-12)
    # Zero-flux boundaries: the total heat of each variable is conserved.
    np.testing.assert_allclose(nxt.sum(axis=(2, 3, 4)), state.sum(axis=(2, 3, 4)), atol=1e-8)
    # Diffusion smooths: every variable's variance drops.
    assert (nxt.var(axis=(2, 3, 4)) < state.var(axis=(2, 3, 4))).all()


def test_task_batch_is_seeded_and_persistence_is_a_nontrivial_baseline():
    model = _build()
    (a,), ta = model.task_batch(2, 16, SeededGenerator(3))
    (b,), tb = model.task_batch(2, 16, SeededGenerator(3))
    assert torch.equal(a, b) and torch.equal(ta, tb)
    persistence = model.task_metric(a, ta)
    assert 0.05 < persistence < float(a.std())  # visible change, smaller than the field itself


def test_short_training_beats_persistence():
    torch.manual_seed(0)
    model = _build()
    (eval_x,), eval_y = model.task_batch(8, 16, SeededGenerator(123))
    persistence = model.task_metric(eval_x, eval_y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = SeededGenerator(7)
    for _ in range(40):
        inputs, target = model.task_batch(4, 16, gen)
        opt.zero_grad()
        model.loss(model(*inputs), target).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        rmse = model.task_metric(model.infer(eval_x), eval_y)
    assert model.task_metric_name == "rmse" and model.task_higher_is_better is False
    assert rmse < 0.85 * persistence, "rmse %.4f vs persistence %.4f" % (rmse, persistence)
