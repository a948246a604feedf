"""HSIFusionNet: window factoring, size and config rules, sparsity, and the prime-side fault twin.

The shared top-k key attention and window layout (``models._attention``) are tested in
test_layers.py, SHARP in test_sharp.py.
"""
import dataclasses

import pytest
import torch

import models
from models import SeededGenerator, init_parameters
from models.hsifusion import HSIFusionNet, factor_pair, legacy_factor_pair


def _build(name, seed=0, **overrides):
    spec = models.get_spec(name)
    model = spec.model_cls(dataclasses.replace(spec.config, **overrides)) if overrides else spec.build()
    init_parameters(model, seed)
    return model


# --- helpers -------------------------------------------------------------------

def test_factor_pair_tiles_every_side_and_primes_fall_back_to_one_window():
    for n in range(1, 200):
        a, b = factor_pair(n)
        assert a * b == n and 1 <= a <= b
    assert factor_pair(32) == (4, 8) and factor_pair(33) == (3, 11) and factor_pair(36) == (6, 6)
    assert factor_pair(17) == (1, 17) and factor_pair(31) == (1, 31)


def test_legacy_factor_pair_breaks_exactly_on_primes():
    assert legacy_factor_pair(32) == factor_pair(32)
    assert legacy_factor_pair(17) == (4, 4) and legacy_factor_pair(31) == (5, 5)
    broken = [n for n in range(2, 60) if legacy_factor_pair(n)[0] * legacy_factor_pair(n)[1] != n]
    assert broken == [n for n in range(2, 60) if factor_pair(n)[0] == 1]


# --- HSIFusionNet --------------------------------------------------------------

def test_hsifusion_sizes_and_windows():
    spec = models.get_spec("hsifusion_tiny")
    for size in (1, 2, 17, 31, 32, 33):
        assert spec.size_error(size) is None, size
    model = _build("hsifusion_tiny")
    assert model.window(32, 32) == (8, 8) and model.window(17, 31) == (17, 31)
    # A prime side needs one window of side**2 tokens: above max_window_tokens it is refused.
    reason = spec.size_error(37)
    assert reason is not None and "37" in reason and "max_window_tokens" in reason
    assert spec.size_error(62) is None and spec.size_error(74) is not None  # 2 x 31 and 2 x 37 windows
    reason = spec.size_error(5000)
    assert reason is not None and "5000" in reason
    for size in (17, 31):
        inputs, _ = model.example_inputs(1, size, SeededGenerator(0))
        with torch.no_grad():
            out = model.eval()(*inputs)
        assert out.shape == (1, 31, size, size) and torch.isfinite(out).all()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 6, 10)).shape == (1, 31, 6, 10)


def test_hsifusion_non_square_sizes_factor_each_side_and_train():
    spec = models.get_spec("hsifusion_tiny")
    assert spec.model_cls.non_square
    for size in ("32x16", "17x31", "37x8"):
        assert spec.size_error(size) is None, size
    # The window is factor_pair(h)[1] x factor_pair(w)[1] tokens: 37 x 31 is above 1024.
    reason = spec.size_error("37x31")
    assert reason is not None and "37x31" in reason and "max_window_tokens" in reason
    reason = spec.size_error("5000x32")
    assert reason is not None and "5000" in reason and "max_size" in reason
    model = _build("hsifusion_tiny")
    inputs, target = model.example_inputs(2, "32x16", SeededGenerator(0))
    assert inputs[0].shape == (2, 3, 32, 16) and target.shape == (2, 31, 32, 16)
    model.train()
    out = model(*inputs)
    assert out.shape == (2, 31, 32, 16)
    model.loss(out, target).backward()
    assert all(p.grad is not None for p in model.parameters())
    # The prime-side fault twin breaks on a prime side of a non-square size too.
    fault = _build("hsifusion_prime_fault_tiny")
    assert models.get_spec("hsifusion_prime_fault_tiny").size_error("32x17") is None
    inputs, _ = fault.example_inputs(1, "32x17", SeededGenerator(0))
    with torch.no_grad(), pytest.raises(RuntimeError):
        fault(*inputs)


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5])
def test_hsifusion_sparsity_ratio_is_validated_with_valueerror(ratio):
    with pytest.raises(ValueError, match="sparsity_ratio") as info:
        _build("hsifusion_tiny", sparsity_ratio=ratio)
    assert repr(ratio) in str(info.value)


def test_hsifusion_sparsity_changes_the_output_and_zero_sparsity_is_dense():
    inputs, _ = models.create_model("hsifusion_tiny").example_inputs(1, 16, SeededGenerator(3))
    outs = {}
    for ratio in (0.0, 0.5, 0.9):
        model = _build("hsifusion_tiny", sparsity_ratio=ratio).eval()
        with torch.no_grad():
            outs[ratio] = model(*inputs)
    assert not torch.allclose(outs[0.0], outs[0.5]) and not torch.allclose(outs[0.5], outs[0.9])
    # Zero sparsity is dense: the spatial attention at ratio 0 equals plain softmax attention over every
    # key of the window, computed here without the top-k path.
    from models._attention import merge_heads, split_heads, window_merge, window_partition
    from models.hsifusion import TopKWindowAttention

    torch.manual_seed(0)
    block = TopKWindowAttention(16, 2, 0.0).eval()
    x = torch.randn(1, 8, 8, 16)
    with torch.no_grad():
        q, k, v = (split_heads(t, 2) for t in window_partition(block.qkv(x), 4, 4).chunk(3, dim=-1))
        dense = torch.softmax((q * block.scale) @ k.transpose(-2, -1), dim=-1) @ v
        expected = block.proj(window_merge(merge_heads(dense), 1, 8, 8, 4, 4))
        torch.testing.assert_close(block(x, 4, 4), expected)
        block.sparsity_ratio = 0.5  # the same weights, half the keys: no longer the dense result
        assert not torch.allclose(block(x, 4, 4), expected)


def test_fault_prime_factor_pair_accepts_prime_sizes_then_fails():
    healthy, fault = _build("hsifusion_tiny"), _build("hsifusion_prime_fault_tiny")
    assert models.get_spec("hsifusion_prime_fault_tiny").fault
    # Same weights, same output where the legacy factor_pair is right.
    inputs, _ = healthy.example_inputs(1, 32, SeededGenerator(0))
    with torch.no_grad():
        assert torch.equal(healthy.eval()(*inputs), fault.eval()(*inputs))
    for size in (17, 31):
        assert models.get_spec("hsifusion_prime_fault_tiny").size_error(size) is None  # claims support
        inputs, _ = fault.example_inputs(1, size, SeededGenerator(0))
        with torch.no_grad():
            with pytest.raises(RuntimeError):
                fault(*inputs)
            assert healthy(*inputs).shape == (1, 31, size, size)


def test_base_builds():
    count = sum(p.numel() for p in models.create_model("hsifusion_base").parameters())
    assert 100_000 < count < 2_000_000, count


# --- the task ------------------------------------------------------------------

def test_training_on_the_task_raises_psnr(train_on_task):
    torch.manual_seed(0)
    model = _build("hsifusion_tiny")
    assert model.task_metric_name == "psnr_db" and model.task_higher_is_better
    before, after = train_on_task(model)
    assert after > before + 6.0, (before, after)


def test_model_classes_are_the_registered_ones():
    assert models.get_spec("hsifusion_tiny").model_cls is HSIFusionNet
