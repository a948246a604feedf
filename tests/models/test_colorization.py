"""Colorization (seed 002): the ab grid, Lab conversion, soft encoding, decoding, sizes, task."""
import numpy as np
import pytest
import torch

import models
from models import SeededGenerator, init_parameters
from models.colorization import (
    NUM_AB_BINS,
    ColorizationConfig,
    ColorizationNet,
    ab_bin_grid,
    annealed_mean,
    soft_encode,
    srgb_to_lab,
)

# assert_close arrived in 1.9 but only became the recommended API in 1.12.
assert_close = getattr(torch.testing, "assert_close", None) or torch.testing.assert_allclose
VARIANTS = ["colorization_papernet_tiny", "colorization_mobilelite_tiny"]


def _build(name, seed=0):
    model = models.create_model(name)
    init_parameters(model, seed)
    return model


def test_ab_grid_is_313_symmetric_10_spaced_bins_in_disc_and_box():
    grid = ab_bin_grid()
    assert grid.shape == (NUM_AB_BINS, 2) == (313, 2)
    assert len({tuple(p) for p in grid}) == 313
    assert np.all(grid % 10 == 0)
    assert np.abs(grid).max() == 90
    assert np.hypot(grid[:, 0], grid[:, 1]).max() <= 102
    assert (grid == 0).all(axis=1).any()
    # Symmetric about the origin, so a flat distribution decodes to grey.
    assert {tuple(p) for p in grid} == {tuple(-p) for p in grid}
    assert np.array_equal(ab_bin_grid(), grid)


def test_srgb_to_lab_matches_reference_values():
    rgb = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).reshape(4, 3, 1, 1)
    lab = srgb_to_lab(rgb)[:, :, 0, 0]
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.1)  # sRGB red
    np.testing.assert_allclose(lab[3], [32.30, 79.19, -107.86], atol=0.1)  # sRGB blue


def test_soft_encoding_weights_k_nearest_bins_and_sums_to_one():
    bins = torch.from_numpy(ab_bin_grid()).float()
    ab = torch.tensor([[12.0, -3.0], [0.0, 0.0], [200.0, 200.0]]).reshape(1, 3, 2).permute(0, 2, 1)[..., None]
    target = soft_encode(ab, bins, k=5, sigma=5.0)  # (1, Q, 3, 1)
    assert target.shape == (1, NUM_AB_BINS, 3, 1)
    assert_close(target.sum(dim=1), torch.ones(1, 3, 1))
    assert ((target > 0).sum(dim=1) <= 5).all()
    nearest = ((ab[0, :, :, 0].t()[:, None, :] - bins[None]) ** 2).sum(-1).argmin(dim=1)
    assert torch.equal(target[0, :, :, 0].argmax(dim=0), nearest)
    one_hot = soft_encode(ab, bins, k=1, sigma=5.0)
    assert torch.equal(one_hot[0, :, :, 0].argmax(dim=0), nearest)
    assert torch.equal(one_hot.sum(dim=1), torch.ones(1, 3, 1))
    # Far outside the grid every Gaussian weight underflows: still a finite distribution.
    assert torch.isfinite(target).all()


def test_annealed_mean_interpolates_between_mode_and_mean():
    bins = torch.from_numpy(ab_bin_grid()).float()
    flat = torch.zeros(1, NUM_AB_BINS, 2, 2)
    assert annealed_mean(flat, bins, 0.38).abs().max().item() < 1e-4  # symmetric grid -> grey
    peaked = torch.zeros(1, NUM_AB_BINS, 1, 1)
    peaked[0, 17] = 10.0
    mode = annealed_mean(peaked, bins, 0.01)[0, :, 0, 0]
    assert_close(mode, bins[17])
    # Lower temperature moves the decode from the mean towards the mode.
    dist = [float((annealed_mean(peaked * 0.3, bins, t)[0, :, 0, 0] - bins[17]).norm()) for t in (1.0, 0.38, 0.1)]
    assert dist[0] > dist[1] > dist[2]


@pytest.mark.parametrize("name", VARIANTS)
def test_shapes_logits_quarter_resolution_and_infer_full_resolution(name):
    model = _build(name).eval()
    (lightness,), ab = model.example_inputs(2, 32, SeededGenerator(0))
    assert lightness.shape == (2, 1, 32, 32) and ab.shape == (2, 2, 32, 32)
    with torch.no_grad():
        logits = model(lightness)
        decoded = model.infer(lightness)
    assert logits.shape == (2, NUM_AB_BINS, 8, 8)
    assert decoded.shape == (2, 2, 32, 32)
    assert decoded.abs().max().item() <= 90.0 + 1e-3  # a convex combination of bin centres
    assert model.task_metric(logits, ab) == pytest.approx(model.task_metric(decoded, ab), rel=1e-6)


def test_mobilelite_is_depthwise_separable_and_papernet_is_not():
    def depthwise(m):
        return [c for c in m.modules() if isinstance(c, torch.nn.Conv2d) and c.groups > 1]

    assert depthwise(_build("colorization_mobilelite_tiny"))
    assert not depthwise(_build("colorization_papernet_tiny"))
    assert any(isinstance(c, torch.nn.ConvTranspose2d) for c in _build("colorization_papernet_tiny").modules())


def test_base_parameter_counts_match_the_audit():
    counts = {n: sum(p.numel() for p in models.create_model(n).parameters())
              for n in ("colorization_papernet_base", "colorization_mobilelite_base")}
    assert 31e6 < counts["colorization_papernet_base"] < 36e6  # audit: ~34M
    assert 7e6 < counts["colorization_mobilelite_base"] < 9e6  # audit: ~8M


def test_size_rules_name_the_value_and_reject_before_building():
    config = models.get_spec("colorization_papernet_tiny").config
    assert ColorizationNet.size_error(config, 32) is None
    assert ColorizationNet.size_error(config, 40) is None
    for size, words in ((30, "multiple of 8"), (17, "multiple of 8"), (8, "at least 16"), (0, "positive")):
        reason = ColorizationNet.size_error(config, size)
        assert reason is not None and str(size) in reason and words in reason
    model = _build("colorization_papernet_tiny")
    with pytest.raises(ValueError, match="30"):
        model.example_inputs(1, 30, SeededGenerator(0))
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.zeros(1, 1, 32, 20))
    with pytest.raises(ValueError, match="b, 1, h, w"):
        model(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="num_bins"):
        ColorizationNet(ColorizationConfig(num_bins=484))


def test_rectangular_images_work():
    model = _build("colorization_mobilelite_tiny").eval()
    with torch.no_grad():
        out = model.infer(torch.full((1, 1, 16, 48), 50.0))
    assert out.shape == (1, 2, 16, 48)


def test_loss_is_float32_for_half_logits_and_matches_cross_entropy_for_one_hot():
    model = _build("colorization_papernet_tiny")
    logits = torch.randn(1, NUM_AB_BINS, 2, 2)
    ab = torch.tensor([10.0, -20.0]).reshape(1, 2, 1, 1).expand(1, 2, 8, 8).contiguous()  # exactly bin (10, -20)
    loss = model.loss(logits.half(), ab)
    assert loss.dtype == torch.float32
    nearest = int(((torch.from_numpy(ab_bin_grid()).float() - torch.tensor([10.0, -20.0])) ** 2).sum(1).argmin())
    one_hot_ce = torch.nn.functional.cross_entropy(logits, torch.full((1, 2, 2), nearest, dtype=torch.long))
    hard = ColorizationNet(ColorizationConfig(widths=(8, 8, 8, 8, 8), convs_per_block=(1,) * 8, soft_k=1))
    assert hard.loss(logits, ab).item() == pytest.approx(one_hot_ce.item(), rel=1e-5)


def test_task_batch_is_seeded_lab_and_colour_depends_on_lightness():
    model = _build("colorization_papernet_tiny")
    (l1,), ab1 = model.task_batch(4, 32, SeededGenerator(11))
    (l2,), ab2 = model.task_batch(4, 32, SeededGenerator(11))
    assert torch.equal(l1, l2) and torch.equal(ab1, ab2)
    assert l1.shape == (4, 1, 32, 32) and ab1.shape == (4, 2, 32, 32)
    assert 0.0 <= l1.min().item() and l1.max().item() <= 100.0
    assert ab1.abs().max().item() < 100.0
    assert ab1.abs().mean().item() > 20.0  # colourful: grey is a poor guess


@pytest.mark.parametrize("name", VARIANTS)
def test_short_training_beats_the_grey_baseline(name):
    torch.manual_seed(0)
    model = _build(name)
    (eval_l,), eval_ab = model.task_batch(8, 32, SeededGenerator(123))
    grey = eval_ab.abs().mean().item()  # error of predicting a = b = 0
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = SeededGenerator(7)
    for _ in range(40):
        inputs, target = model.task_batch(8, 32, gen)
        opt.zero_grad()
        model.loss(model(*inputs), target).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        err = model.task_metric(model.infer(eval_l), eval_ab)
    assert model.task_higher_is_better is False and model.task_metric_name == "ab_mae"
    assert err < 0.7 * grey, "ab MAE %.2f vs grey baseline %.2f" % (err, grey)
