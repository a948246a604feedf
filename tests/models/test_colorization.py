"""Colorization (seed 002): the ab grids, Lab conversion, soft encoding, rebalancing, decoding, sizes, task."""
import numpy as np
import pytest
import torch

import models
from models import SeededGenerator, init_parameters
from models.colorization import (
    NUM_AB_BINS,
    PAPER_AB_BINS,
    ColorizationConfig,
    ColorizationNet,
    ab_bin_grid,
    ab_grid_axis,
    annealed_mean,
    rebalance_weights,
    soft_encode,
    soft_encode_sparse,
    srgb_to_lab,
    synthetic_ab_prior,
)

# assert_close arrived in 1.9 but only became the recommended API in 1.12.
assert_close = getattr(torch.testing, "assert_close", None) or torch.testing.assert_allclose
VARIANTS = ["colorization_papernet_tiny", "colorization_mobilelite_tiny"]
_SMALL = dict(widths=(8, 8, 8, 8, 8), convs_per_block=(1,) * 8)


def _build(name, seed=0):
    model = models.create_model(name)
    init_parameters(model, seed)
    return model


def _bins(q=NUM_AB_BINS):
    return torch.from_numpy(ab_bin_grid(q)).float()


def test_audit_grid_is_the_full_22_by_22_grid_of_10_spaced_centres():
    grid = ab_bin_grid()
    assert NUM_AB_BINS == 484 and grid.shape == (484, 2)
    assert len({tuple(p) for p in grid}) == 484
    assert np.all(grid % 10 == 0) and grid.min() == -110 and grid.max() == 100
    assert (grid == 0).all(axis=1).any()
    axis = ab_grid_axis(NUM_AB_BINS)
    assert np.array_equal(grid, np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2))  # a-major
    assert ab_grid_axis(PAPER_AB_BINS) is None


def test_paper_grid_is_313_symmetric_10_spaced_bins_in_disc_and_box():
    grid = ab_bin_grid(PAPER_AB_BINS)
    assert grid.shape == (313, 2)
    assert len({tuple(p) for p in grid}) == 313
    assert np.all(grid % 10 == 0)
    assert np.abs(grid).max() == 90
    assert np.hypot(grid[:, 0], grid[:, 1]).max() <= 102
    assert (grid == 0).all(axis=1).any()
    # Symmetric about the origin, so a flat distribution decodes to grey.
    assert {tuple(p) for p in grid} == {tuple(-p) for p in grid}
    assert np.array_equal(ab_bin_grid(PAPER_AB_BINS), grid)
    with pytest.raises(ValueError, match="num_bins"):
        ab_bin_grid(100)


def test_srgb_to_lab_matches_reference_values():
    rgb = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).reshape(4, 3, 1, 1)
    lab = srgb_to_lab(rgb)[:, :, 0, 0]
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.1)  # sRGB red
    np.testing.assert_allclose(lab[3], [32.30, 79.19, -107.86], atol=0.1)  # sRGB blue


@pytest.mark.parametrize("q", [NUM_AB_BINS, PAPER_AB_BINS])
def test_soft_encoding_weights_k_nearest_bins_and_sums_to_one(q):
    bins = _bins(q)
    ab = torch.tensor([[12.0, -3.0], [0.0, 0.0], [200.0, 200.0]]).reshape(1, 3, 2).permute(0, 2, 1)[..., None]
    target = soft_encode(ab, bins, k=5, sigma=5.0)  # (1, Q, 3, 1)
    assert target.shape == (1, q, 3, 1)
    assert_close(target.sum(dim=1), torch.ones(1, 3, 1))
    assert ((target > 0).sum(dim=1) <= 5).all()
    nearest = ((ab[0, :, :, 0].t()[:, None, :] - bins[None]) ** 2).sum(-1).argmin(dim=1)
    assert torch.equal(target[0, :, :, 0].argmax(dim=0), nearest)
    one_hot = soft_encode(ab, bins, k=1, sigma=5.0)
    assert torch.equal(one_hot[0, :, :, 0].argmax(dim=0), nearest)
    assert torch.equal(one_hot.sum(dim=1), torch.ones(1, 3, 1))
    # Far outside the grid every Gaussian weight underflows: still a finite distribution.
    assert torch.isfinite(target).all()


@pytest.mark.parametrize("k", [1, 5, 30])
def test_separable_search_of_the_product_grid_equals_the_full_search(k):
    bins = _bins()
    axis = torch.from_numpy(ab_grid_axis(NUM_AB_BINS)).float()
    gen = SeededGenerator(4)
    ab = torch.cat([gen.uniform((2, 2, 6, 6), -130.0, 130.0), gen.uniform((1, 2, 6, 6), -400.0, 400.0)])
    ab = ab + 0.37  # off the cell boundaries: no tied distances, so the indices must agree too
    idx_full, w_full = soft_encode_sparse(ab, bins, k, 5.0)
    idx_sep, w_sep = soft_encode_sparse(ab, bins, k, 5.0, axis)
    assert idx_sep.shape == idx_full.shape == (3, k, 6, 6)
    assert torch.equal(idx_sep, idx_full)
    assert_close(w_sep, w_full)


def test_rebalancing_weights_have_unit_mean_under_the_prior_and_favour_rare_colours():
    grid = ab_bin_grid()
    prior = synthetic_ab_prior(grid, 25.0)
    assert prior.sum() == pytest.approx(1.0) and prior.argmax() == np.flatnonzero((grid == 0).all(axis=1))[0]
    w = rebalance_weights(grid, prior, sigma=5.0, lam=0.5)
    d2 = ((grid[:, None] - grid[None]) ** 2).sum(-1)
    smoothed = np.exp(-d2 / 50.0) @ prior
    smoothed /= smoothed.sum()
    assert (smoothed * w).sum() == pytest.approx(1.0)
    radius = np.hypot(grid[:, 0], grid[:, 1])
    assert w[radius.argmin()] < 1.0 < w[radius.argmax()]  # grey is common: down-weighted
    assert w.max() / w.min() < 1.0 / 0.5 * len(grid)  # lambda bounds the ratio
    np.testing.assert_allclose(rebalance_weights(grid, prior, sigma=5.0, lam=1.0), np.ones(len(grid)))


def test_annealed_mean_interpolates_between_mode_and_mean():
    bins = _bins(PAPER_AB_BINS)
    flat = torch.zeros(1, PAPER_AB_BINS, 2, 2)
    assert annealed_mean(flat, bins, 0.38).abs().max().item() < 1e-4  # symmetric grid -> grey
    # The 484 grid runs -110..100: a flat distribution decodes to (-5, -5).
    assert_close(annealed_mean(torch.zeros(1, NUM_AB_BINS, 1, 1), _bins(), 0.38)[0, :, 0, 0],
                 torch.tensor([-5.0, -5.0]))
    peaked = torch.zeros(1, PAPER_AB_BINS, 1, 1)
    peaked[0, 17] = 10.0
    mode = annealed_mean(peaked, bins, 0.01)[0, :, 0, 0]
    assert_close(mode, bins[17])
    # Lower temperature moves the decode from the mean towards the mode.
    dist = [float((annealed_mean(peaked * 0.3, bins, t)[0, :, 0, 0] - bins[17]).norm()) for t in (1.0, 0.38, 0.1)]
    assert dist[0] > dist[1] > dist[2]


@pytest.mark.parametrize("name", VARIANTS)
def test_logits_are_484_bins_at_full_resolution_and_infer_decodes_them(name):
    model = _build(name).eval()
    (lightness,), ab = model.example_inputs(2, 32, SeededGenerator(0))
    assert lightness.shape == (2, 1, 32, 32) and ab.shape == (2, 2, 32, 32)
    with torch.no_grad():
        logits = model(lightness)
        decoded = model.infer(lightness)
    assert logits.shape == (2, NUM_AB_BINS, 32, 32)
    assert decoded.shape == (2, 2, 32, 32)
    assert decoded.abs().max().item() <= 110.0 + 1e-3  # a convex combination of bin centres
    assert model.task_metric(logits, ab) == pytest.approx(model.task_metric(decoded, ab), rel=1e-6)


def test_paper_variant_has_313_bins_at_quarter_resolution():
    spec = models.get_spec("colorization_papernet_q313")
    assert (spec.config.num_bins, spec.config.full_resolution) == (313, False)
    model = ColorizationNet(ColorizationConfig(num_bins=PAPER_AB_BINS, full_resolution=False, **_SMALL)).eval()
    init_parameters(model, 0)
    (lightness,), ab = model.example_inputs(1, 32, SeededGenerator(0))
    with torch.no_grad():
        logits = model(lightness)
        assert logits.shape == (1, PAPER_AB_BINS, 8, 8)
        assert model.infer(lightness).shape == (1, 2, 32, 32)
    model.train()
    assert torch.isfinite(model.loss(model(lightness), ab))


def test_mobilelite_is_narrower_with_separable_outer_blocks_and_papernet_is_not():
    def depthwise(m):
        return [c for c in m.modules() if isinstance(c, torch.nn.Conv2d) and c.groups > 1]

    paper = models.get_spec("colorization_papernet_base").config
    mobile = models.get_spec("colorization_mobilelite_base").config
    assert all(2 * m == p for m, p in zip(mobile.widths, paper.widths))  # the audit: "fewer channels"
    assert mobile.convs_per_block == paper.convs_per_block
    assert mobile.separable and mobile.trunk_separable is False
    tiny = _build("colorization_mobilelite_tiny")
    assert all(depthwise(tiny.blocks[i]) for i in (1, 2)) and depthwise(tiny.up)  # conv1's input has one channel
    assert not any(depthwise(tiny.blocks[i]) for i in range(3, 7))  # the 1/8 trunk: full 3x3 convs
    assert not any(isinstance(c, torch.nn.ConvTranspose2d) for c in tiny.modules())  # nearest upsampling
    all_separable = ColorizationNet(ColorizationConfig(separable=True, **_SMALL))  # trunk_separable None: follows
    assert all(depthwise(all_separable.blocks[i]) for i in range(1, 7))
    assert not depthwise(_build("colorization_papernet_tiny"))
    assert any(isinstance(c, torch.nn.ConvTranspose2d) for c in _build("colorization_papernet_tiny").modules())


def test_base_parameter_counts_match_the_audit():
    counts = {n: sum(p.numel() for p in models.create_model(n).parameters())
              for n in ("colorization_papernet_base", "colorization_mobilelite_base")}
    assert 31e6 < counts["colorization_papernet_base"] < 36e6  # audit: ~34M
    assert 6.5e6 < counts["colorization_mobilelite_base"] < 9e6  # audit: ~8M (ours: 7.0M)


def test_adam_with_the_audits_betas_and_weight_decay():
    opt = _build("colorization_papernet_tiny").make_optimizer()
    assert isinstance(opt, torch.optim.Adam)
    group = opt.param_groups[0]
    assert tuple(group["betas"]) == (0.9, 0.99) and group["weight_decay"] == 1e-3


def test_size_rules_name_the_value_and_reject_before_building():
    config = models.get_spec("colorization_papernet_tiny").config
    assert ColorizationNet.non_square
    for size in (32, 40, "16x48", "48x16"):
        assert ColorizationNet.size_error(config, size) is None
    for size, words in ((30, "multiples of 8"), (17, "multiples of 8"), (8, "at least 16"), (0, "positive"),
                        ("16x44", "multiples of 8"), ("8x32", "at least 16")):
        reason = ColorizationNet.size_error(config, size)
        assert reason is not None and str(size) in reason and words in reason
    model = _build("colorization_papernet_tiny")
    with pytest.raises(ValueError, match="30"):
        model.example_inputs(1, 30, SeededGenerator(0))
    with pytest.raises(ValueError, match="16x44"):
        model.task_batch(1, "16x44", SeededGenerator(0))
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.zeros(1, 1, 32, 20))
    with pytest.raises(ValueError, match="b, 1, h, w"):
        model(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="num_bins"):
        ColorizationNet(ColorizationConfig(num_bins=400))


@pytest.mark.parametrize("name", VARIANTS)
def test_non_square_sizes_train_and_infer_at_full_resolution(name):
    model = _build(name)
    inputs, target = model.example_inputs(2, "16x48", SeededGenerator(0))
    assert inputs[0].shape == (2, 1, 16, 48) and target.shape == (2, 2, 16, 48)
    logits = model(*inputs)
    assert logits.shape == (2, NUM_AB_BINS, 16, 48)
    model.loss(logits, target).backward()
    (lightness,), ab = model.task_batch(1, "24x40", SeededGenerator(0))
    assert lightness.shape == (1, 1, 24, 40) and ab.shape == (1, 2, 24, 40)
    with torch.no_grad():
        assert model.eval().infer(lightness).shape == (1, 2, 24, 40)


def test_loss_is_float32_for_half_logits_and_is_the_rebalanced_cross_entropy():
    model = _build("colorization_papernet_tiny")
    logits = torch.randn(1, NUM_AB_BINS, 8, 8)
    ab = torch.tensor([10.0, -20.0]).reshape(1, 2, 1, 1).expand(1, 2, 8, 8).contiguous()  # exactly bin (10, -20)
    assert model.loss(logits.half(), ab).dtype == torch.float32
    nearest = int(((_bins() - torch.tensor([10.0, -20.0])) ** 2).sum(1).argmin())
    labels = torch.full((1, 8, 8), nearest, dtype=torch.long)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    plain = ColorizationNet(ColorizationConfig(soft_k=1, rebalance_lambda=1.0, **_SMALL))
    assert plain.loss(logits, ab).item() == pytest.approx(ce.item(), rel=1e-5)
    hard = ColorizationNet(ColorizationConfig(soft_k=1, **_SMALL))
    assert hard.loss(logits, ab).item() == pytest.approx(hard.class_weights[nearest].item() * ce.item(), rel=1e-5)
    # Soft targets: the weighted sum of the k nearest bins' log-probabilities.
    idx, w = soft_encode_sparse(ab, _bins(), 5, 5.0)
    logp = torch.log_softmax(logits, dim=1).gather(1, idx)
    expected = -(model.class_weights[idx[:, 0]] * (w * logp).sum(1)).mean()
    assert model.loss(logits, ab).item() == pytest.approx(expected.item(), rel=1e-5)


def test_float64_loss_stays_float64():
    model = _build("colorization_mobilelite_tiny").double()
    inputs, target = model.example_inputs(1, 16, SeededGenerator(0))
    loss = model.loss(model(inputs[0].double()), target.double())
    assert loss.dtype == torch.float64 and torch.isfinite(loss)


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
