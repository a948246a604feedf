"""CBAM classifier (seed 001): the ResNet stem and strides, block kinds, cost, sizes, loss, task."""
import pytest
import torch
import torch.nn.functional as F

import models
from models import SeededGenerator, init_parameters
from models.classification import (
    CBAM,
    CBAMBasicBlock,
    CBAMBottleneck,
    CBAMClassifier,
    CBAMClassifierConfig,
    make_shapes,
)

# assert_close arrived in 1.9 but only became the recommended API in 1.12.
assert_close = getattr(torch.testing, "assert_close", None) or torch.testing.assert_allclose


def _build(name, seed=0):
    model = models.create_model(name)
    init_parameters(model, seed)
    return model


def _conv_linear_macs(model, images):
    """Multiply-accumulates of every conv and linear layer in one forward (hooks: works on torch 1.10)."""
    total = []

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            k = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
            total.append(output.numel() * k)
        else:
            total.append(output.numel() * module.in_features)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(images)
    for h in handles:
        h.remove()
    return sum(total)


def _stage_sides(model, images):
    sides = []
    handles = [s.register_forward_hook(lambda m, i, o: sides.append(tuple(o.shape[-2:]))) for s in model.stages]
    with torch.no_grad():
        model(images)
    for h in handles:
        h.remove()
    return sides


def test_stem_is_the_resnet_7x7_stride_2_conv_and_3x3_stride_2_max_pool():
    for name in ("cbam_classifier_tiny", "cbam_classifier_base"):
        stem = models.create_model(name).stem
        conv, pool = stem[0], stem[3]
        assert (conv.kernel_size, conv.stride, conv.padding) == ((7, 7), (2, 2), (3, 3))
        assert isinstance(stem[1], torch.nn.BatchNorm2d) and isinstance(stem[2], torch.nn.ReLU)
        assert isinstance(pool, torch.nn.MaxPool2d) and (pool.kernel_size, pool.stride, pool.padding) == (3, 2, 1)


def test_base_stages_run_at_56_28_14_7_and_cost_about_1_8_gmacs_at_224():
    model = _build("cbam_classifier_base").eval()
    images = torch.zeros(1, 3, 224, 224)
    assert _stage_sides(model, images) == [(56, 56), (28, 28), (14, 14), (7, 7)]
    macs = _conv_linear_macs(model, images)
    assert 1.75e9 < macs < 1.9e9, macs  # ResNet-18: 1.82 GMACs; CBAM adds under 1%


def test_depths_block_kinds_and_parameter_counts():
    expected = {  # name: (block, blocks, head width, parameters)
        "cbam_classifier_base": (CBAMBasicBlock, 8, 512, 11.27e6),  # ResNet-18 (11.18M at 1000 classes) + CBAM
        "cbam_classifier_r34": (CBAMBasicBlock, 16, 512, 21.45e6),
        "cbam_classifier_r50": (CBAMBottleneck, 16, 2048, 26.05e6),  # expansion 4: 512 * 4 features
    }
    for name, (block, n_blocks, head_in, params) in expected.items():
        model = models.create_model(name)
        blocks = [m for m in model.modules() if isinstance(m, (CBAMBasicBlock, CBAMBottleneck))]
        assert len(blocks) == n_blocks and all(isinstance(b, block) for b in blocks)
        assert len([m for m in model.modules() if isinstance(m, CBAM)]) == n_blocks  # CBAM in every block
        assert model.head.in_features == head_in
        assert sum(p.numel() for p in model.parameters()) == pytest.approx(params, rel=0.01)
    with pytest.raises(ValueError, match="block"):
        CBAMClassifier(CBAMClassifierConfig(block="dense"))
    with pytest.raises(ValueError, match="same non-zero length"):
        CBAMClassifier(CBAMClassifierConfig(depths=(1, 1)))


def test_bottleneck_strides_its_3x3_and_expands_four_times():
    block = CBAMBottleneck(64, 32, 2, reduction=4, kernel_size=7)
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2) and block.conv3.out_channels == 128
    assert block(torch.zeros(2, 64, 8, 8)).shape == (2, 128, 4, 4)


def test_tiny_keeps_the_stem_and_is_fast_to_train():
    model = _build("cbam_classifier_tiny")
    spec = models.get_spec("cbam_classifier_tiny")
    assert spec.default_sizes == [32]
    inputs, labels = model.example_inputs(2, 32, SeededGenerator(0))
    assert _stage_sides(model.eval(), inputs[0]) == [(8, 8), (4, 4), (2, 2)]
    model.train()
    loss = model.loss(model(*inputs), labels)
    loss.backward()
    assert torch.isfinite(loss).item()


def test_non_square_sizes_and_size_rules():
    assert CBAMClassifier.non_square
    config = models.get_spec("cbam_classifier_tiny").config
    for size in (16, 32, 17, "48x32", "16x64"):
        assert CBAMClassifier.size_error(config, size) is None
    for size in (8, 0, "8x32", "32x15"):
        reason = CBAMClassifier.size_error(config, size)
        assert reason is not None and str(size) in reason
    assert "at least 16" in CBAMClassifier.size_error(config, "32x15")
    assert "at least 32" in CBAMClassifier.size_error(models.get_spec("cbam_classifier_base").config, 31)
    model = _build("cbam_classifier_tiny")
    (images,), labels = model.example_inputs(2, "48x32", SeededGenerator(0))
    assert images.shape == (2, 3, 48, 32) and labels.shape == (2,)
    assert model(images).shape == (2, 10)
    (images,), labels = model.task_batch(3, "24x40", SeededGenerator(0))
    assert images.shape == (3, 3, 24, 40)
    with pytest.raises(ValueError, match="8x32"):
        model.example_inputs(1, "8x32", SeededGenerator(0))
    with pytest.raises(ValueError, match="b, 3, h, w"):
        model(torch.zeros(1, 1, 32, 32))


def test_loss_is_class_weighted_cross_entropy_in_float32():
    model = _build("cbam_classifier_tiny")
    logits = torch.randn(6, 10)
    labels = torch.tensor([0, 1, 2, 9, 5, 5])
    expected = F.cross_entropy(logits, labels, weight=torch.linspace(0.5, 1.5, 10))
    assert_close(model.loss(logits, labels), expected)
    assert model.loss(logits.half(), labels).dtype == torch.float32
    assert model.optimizer_name == "adam"  # the audited loop's optimizer


def test_shapes_task_is_seeded_and_square_sizes_are_unchanged_by_hw():
    a = make_shapes(4, 24, 10, SeededGenerator(3))
    b = make_shapes(4, "24x24", 10, SeededGenerator(3))
    assert torch.equal(a[0][0], b[0][0]) and torch.equal(a[1], b[1])
    assert set(a[1].tolist()) <= {0, 1, 2}


def test_short_training_beats_chance():
    torch.manual_seed(0)
    model = _build("cbam_classifier_tiny")
    (eval_x,), eval_y = model.task_batch(64, 32, SeededGenerator(123))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = SeededGenerator(7)
    losses = []
    for _ in range(80):
        inputs, labels = model.task_batch(8, 32, gen)
        opt.zero_grad()
        loss = model.loss(model(*inputs), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # Judged with batch statistics: after 80 steps the running ones still lag the weights
    # (eval-mode top1 swings between 0.3 and 0.8 from one checkpoint to the next).
    with torch.no_grad():
        top1 = model.task_metric(model(eval_x), eval_y)
    assert model.task_metric_name == "top1" and model.task_higher_is_better
    assert sum(losses[-10:]) < 0.6 * sum(losses[:10]), losses
    assert top1 > 0.6, top1  # three shapes: chance is 1/3
