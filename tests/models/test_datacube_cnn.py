"""Datacube CNN (seed 003): EfficientNet scaling, MBConv/SE structure, sizes, the pattern task."""
import pytest
import torch

import models
from models import SeededGenerator, init_parameters
from models.datacube_cnn import (
    EFFICIENTNET_B0_STAGES,
    DatacubeCNN,
    DatacubeCNNConfig,
    MBConv,
    SqueezeExcite,
    make_pattern_cubes,
    round_channels,
    round_repeats,
)

TINY = "datacube_cnn_tiny"


def _build(seed=0):
    model = models.create_model(TINY)
    init_parameters(model, seed)
    return model


def test_efficientnet_scaling_rules_give_b5_widths_and_depths():
    # B5 (width 1.6, depth 2.2): stem 48, stages 24/40/64/128/176/304/512, head 2048.
    assert round_channels(32, 1.6) == 48 and round_channels(1280, 1.6) == 2048
    assert [round_channels(s[3], 1.6) for s in EFFICIENTNET_B0_STAGES] == [24, 40, 64, 128, 176, 304, 512]
    assert [round_repeats(s[4], 2.2) for s in EFFICIENTNET_B0_STAGES] == [3, 5, 5, 7, 7, 9, 3]
    assert round_channels(16, 1.0) == 16 and round_channels(3, 1.0) == 8


def test_base_builds_near_the_audit_size():
    count = sum(p.numel() for p in models.create_model("datacube_cnn_base").parameters())
    assert 25e6 < count < 32e6  # audit: ~30M


def test_mbconv_structure_residual_and_squeeze_excitation():
    block = MBConv(16, 16, expand=4, kernel=5, stride=1)
    assert block.residual and block.expand is not None
    depthwise = block.depthwise[0]
    assert depthwise.groups == depthwise.in_channels == 64 and depthwise.kernel_size == (5, 5)
    assert block.se.reduce.out_channels == 4  # SE width follows the block input (16 * 0.25)
    assert not MBConv(16, 16, expand=4, kernel=3, stride=2).residual
    assert not MBConv(16, 24, expand=4, kernel=3, stride=1).residual
    assert MBConv(8, 8, expand=1, kernel=3, stride=1).expand is None
    x = torch.randn(2, 16, 9, 9)
    assert block(x).shape == x.shape and MBConv(16, 24, 4, 3, 2)(x).shape == (2, 24, 5, 5)
    se = SqueezeExcite(6, 2)
    gate_input = torch.randn(1, 6, 4, 4)
    ratio = se(gate_input) / gate_input
    # One gate per channel, in (0, 1), the same at every pixel.
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio), atol=1e-5)
    assert ((ratio > 0) & (ratio < 1)).all()


def test_cube_levels_are_folded_into_channels():
    model = _build().eval()
    (cube,), labels = model.example_inputs(2, 32, SeededGenerator(0))
    assert cube.shape == (2, 2, 4, 32, 32) and labels.shape == (2,)
    assert model.stem[0].in_channels == 2 * 4
    with torch.no_grad():
        assert model(cube).shape == (2, 9)
    with pytest.raises(ValueError, match="b, 2, 4, h, w"):
        model(torch.zeros(2, 2, 5, 32, 32))
    with pytest.raises(ValueError, match="b, 2, 4, h, w"):
        model(torch.zeros(2, 8, 32, 32))


def test_size_rules_name_the_value_and_odd_sizes_work():
    config = models.get_spec(TINY).config
    assert DatacubeCNN.total_stride(config) == 8
    for size in (7, 15):
        reason = DatacubeCNN.size_error(config, size)
        assert reason is not None and str(size) in reason and "at least 16" in reason
    model = _build()
    with pytest.raises(ValueError, match="15"):
        model.example_inputs(1, 15, SeededGenerator(0))
    model.train()
    for size in (16, 17, 31):  # padded strided convs round up; batch 1 keeps >= 2x2 for batch norm
        assert DatacubeCNN.size_error(config, size) is None
        inputs, labels = model.example_inputs(1, size, SeededGenerator(size))
        loss = model.loss(model(*inputs), labels)
        assert torch.isfinite(loss)
    base = models.get_spec("datacube_cnn_base")
    assert "64" in base.size_error(63) and base.size_error(64) is None
    with pytest.raises(ValueError, match="num_classes"):
        DatacubeCNN(DatacubeCNNConfig(num_classes=10))


def test_non_square_grids_follow_the_rule_per_side_and_train():
    spec = models.get_spec(TINY)
    assert spec.model_cls.non_square and spec.size_error("32x16") is None
    reason = spec.size_error("32x15")
    assert reason is not None and "15" in reason and "32x15" in reason and "at least 16" in reason
    model = _build().train()
    (cube,), labels = model.example_inputs(2, "32x16", SeededGenerator(0))
    assert cube.shape == (2, 2, 4, 32, 16)
    (task_cube,), _ = model.task_batch(2, "16x40", SeededGenerator(0))
    assert task_cube.shape == (2, 2, 4, 16, 40)
    seen = []
    hook = model.head.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    out = model(cube)
    hook.remove()
    assert seen == [(2, 64, 4, 2)] and out.shape == (2, 9)  # the last map keeps the grid's aspect (stride 8)
    model.loss(out, labels).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_pattern_cubes_are_seeded_and_encode_pattern_times_profile():
    cubes, labels = make_pattern_cubes(64, 2, 6, 16, SeededGenerator(5), noise=0.0)
    again, labels2 = make_pattern_cubes(64, 2, 6, 16, SeededGenerator(5), noise=0.0)
    assert (cubes == again).all() and (labels == labels2).all()
    assert set(labels.tolist()) == set(range(9))
    for cube, label in zip(cubes, labels):
        spatial, spectral = divmod(int(label), 3)
        energy = (cube ** 2).mean(axis=(0, 2, 3))  # per level
        if spectral == 0:
            assert energy[-1] > energy[0]  # rising
        elif spectral == 1:
            assert energy[0] > energy[-1]  # falling
        else:
            assert energy[2] > max(energy[0], energy[-1])  # peaked
        if spatial == 0:
            assert abs(cube[0, 2] - cube[0, 2, :, :1]).max() < 1e-9  # rows are constant
        elif spatial == 1:
            assert abs(cube[0, 2] - cube[0, 2, :1, :]).max() < 1e-9  # columns are constant


def test_short_training_far_beats_chance():
    torch.manual_seed(0)
    model = _build()
    (eval_x,), eval_y = model.task_batch(64, 16, SeededGenerator(123))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = SeededGenerator(7)
    for _ in range(60):
        inputs, labels = model.task_batch(16, 16, gen)
        opt.zero_grad()
        model.loss(model(*inputs), labels).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        top1 = model.task_metric(model.infer(eval_x), eval_y)
    assert model.task_metric_name == "top1" and model.task_higher_is_better is True
    assert top1 > 0.5, "top-1 %.3f after 60 steps (chance is 1/9)" % top1
