"""HSIFusionNet and SHARP: windows, top-k key attention, size and config rules, and both fault twins."""
import dataclasses
import os
import subprocess
import sys

import pytest
import torch

import models
from models import SeededGenerator, init_parameters
from models.hsifusion import (
    SHARP,
    HSIFusionNet,
    SHARPAssertFault,
    SparseHierarchicalAttention,
    factor_pair,
    legacy_factor_pair,
    merge_heads,
    split_heads,
    topk_key_attention,
    window_merge,
    window_partition,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _build(name, seed=0, **overrides):
    spec = models.get_spec(name)
    model = spec.model_cls(dataclasses.replace(spec.config, **overrides)) if overrides else spec.build()
    init_parameters(model, seed)
    return model


def _run_O(code):
    proc = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()


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


def test_window_partition_round_trips():
    x = SeededGenerator(0).normal((2, 6, 8, 3))
    windows = window_partition(x, 3, 4)
    assert windows.shape == (2 * 2 * 2, 12, 3)
    assert torch.equal(windows[0].reshape(3, 4, 3), x[0, :3, :4])
    assert torch.equal(window_merge(windows, 2, 6, 8, 3, 4), x)


def test_topk_key_attention_attends_to_the_most_relevant_keys_only():
    gen = SeededGenerator(1)
    q, k, v = gen.normal((2, 2, 5, 4)), gen.normal((2, 2, 9, 4)), gen.normal((2, 2, 9, 4))
    dense = torch.softmax((q * 0.5) @ k.transpose(-2, -1), dim=-1) @ v
    assert torch.allclose(topk_key_attention(q, k, v, 9, 0.5), dense, atol=1e-6)
    # With keep=3: the same as dense attention over the 3 keys of highest mean score.
    relevance = (q.mean(dim=-2, keepdim=True) @ k.transpose(-2, -1)).squeeze(-2)  # (2, 2, 9)
    idx = relevance.topk(3, dim=-1).indices.unsqueeze(-1).expand(2, 2, 3, 4)
    ks, vs = k.gather(2, idx), v.gather(2, idx)
    expected = torch.softmax((q * 0.5) @ ks.transpose(-2, -1), dim=-1) @ vs
    assert torch.allclose(topk_key_attention(q, k, v, 3, 0.5), expected, atol=1e-6)
    # Masked keys never contribute, chosen or not.
    mask = torch.zeros(1, 1, 1, 9, dtype=torch.bool)
    mask[..., 4:] = True
    v_poisoned = v.clone()
    v_poisoned[..., 4:, :] = 1e6
    for keep in (3, 9):
        out = topk_key_attention(q, k, v_poisoned, keep, 0.5, mask)
        assert out.abs().max() < 1e3


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


# --- SHARP ---------------------------------------------------------------------

def test_sharp_switches_between_hierarchical_local_and_dense_attention():
    model = _build("sharp_tiny").eval()
    first, second = model.encoders[0][0].attn, model.encoders[1][0].attn
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))  # 32 and 16 are multiples of the 8-pixel window
        assert first.last_mode == "hierarchical" and second.last_mode == "hierarchical"
        model(torch.zeros(1, 3, 31, 31))  # 31 and 16
        assert first.last_mode == "local" and second.last_mode == "hierarchical"
        model(torch.zeros(1, 3, 24, 12))  # 24 x 12, then 12 x 6 where the window shrinks to 6
        assert first.last_mode == "local" and second.last_mode == "hierarchical"
    # 64 window tokens + 16 summaries > k_cap 32: top-k active; a large cap disables it.
    dense = _build("sharp_tiny", k_cap=1000).eval()
    with torch.no_grad():
        dense(torch.zeros(1, 3, 32, 32))
    assert dense.encoders[0][0].attn.last_mode == "hierarchical+dense"


def test_sharp_local_fallback_masks_the_padding_and_hierarchy_links_windows():
    attn = SparseHierarchicalAttention(8, 2, 4, 1000)
    init_parameters(attn, 0)
    gen = SeededGenerator(0)
    with torch.no_grad():
        x = gen.normal((1, 6, 6, 8))  # 4 does not divide 6: local windows over a zero-padded 8x8 map
        out = attn(x)
        assert attn.last_mode == "local+dense" and out.shape == (1, 6, 6, 8)
        # The 2x2 corner window attends to its 4 real tokens only, not to the 12 padded ones.
        q, k, v = (split_heads(t, 2) for t in attn.qkv(x[:, 4:, 4:].reshape(1, 4, 8)).chunk(3, dim=-1))
        ref = attn.proj(merge_heads(torch.softmax((q * attn.scale) @ k.transpose(-2, -1), dim=-1) @ v))
        assert torch.allclose(out[:, 4:, 4:], ref.reshape(1, 2, 2, 8), atol=1e-6)
        # Local windows are independent ...
        x2 = x.clone()
        x2[:, 5, 5] += 10.0
        assert torch.allclose(attn(x2)[:, :4, :4], out[:, :4, :4])
        # ... hierarchical ones see the other windows through their summaries.
        y = gen.normal((1, 8, 8, 8))
        y2 = y.clone()
        y2[:, 7, 7] += 10.0
        a, b = attn(y), attn(y2)
        assert attn.last_mode == "hierarchical+dense"
        assert not torch.allclose(a[:, :4, :4], b[:, :4, :4])


@pytest.mark.parametrize("size", [1, 17, 31, 33])
def test_sharp_any_size_gives_a_full_cube(size):
    model = _build("sharp_tiny").eval()
    inputs, _ = model.example_inputs(1, size, SeededGenerator(0))
    with torch.no_grad():
        out = model(*inputs)
    assert out.shape == (1, 31, size, size) and torch.isfinite(out).all()


def test_sharp_validation_raises_valueerror():
    for bad in (0, -2):
        with pytest.raises(ValueError, match="k_cap"):
            _build("sharp_tiny", k_cap=bad)
    with pytest.raises(ValueError, match="0"):
        models.create_model("sharp_tiny").example_inputs(1, 0, SeededGenerator(0))
    with pytest.raises(ValueError, match="shape"):
        models.create_model("sharp_tiny")(torch.zeros(1, 3, 0, 8))


def test_fault_sharp_asserts_raise_the_wrong_exception():
    spec = models.get_spec("sharp_assert_fault_tiny")
    assert spec.fault and spec.model_cls is SHARPAssertFault
    if not __debug__:
        pytest.skip("asserts are off in this interpreter")
    with pytest.raises(AssertionError):
        _build("sharp_assert_fault_tiny", k_cap=0)
    with pytest.raises(AssertionError):
        models.create_model("sharp_assert_fault_tiny").example_inputs(1, 0, SeededGenerator(0))


def test_fault_sharp_validation_vanishes_under_python_O():
    code = (
        "import dataclasses, torch, models\n"
        "from models import SeededGenerator\n"
        "spec = models.get_spec('sharp_assert_fault_tiny')\n"
        "m = spec.build()\n"
        "(x,), y = m.example_inputs(1, 0, SeededGenerator(0))\n"
        "print('size0', tuple(x.shape), tuple(y.shape))\n"
        "bad = spec.model_cls(dataclasses.replace(spec.config, k_cap=0)).eval()\n"
        "attn = bad.encoders[0][0].attn\n"
        "t = torch.randn(1, 16, 16, 16)\n"
        "with torch.no_grad():\n"
        "    out = attn(t)\n"
        "    full = bad(torch.rand(1, 3, 16, 16))\n"
        "print('kcap0', bool(torch.allclose(out, attn.proj.bias.expand_as(out))), bool(torch.isfinite(full).all()))\n"
        "for overrides, size in (({}, 0), ({'k_cap': 0}, 16)):\n"
        "    try:\n"
        "        h = models.get_spec('sharp_tiny').model_cls(dataclasses.replace(spec.config, **overrides))\n"
        "        h.example_inputs(1, size, SeededGenerator(0))\n"
        "        print('healthy', 'accepted')\n"
        "    except ValueError as exc:\n"
        "        print('healthy', 'ValueError', exc)\n"
    )
    lines = _run_O(code)
    assert lines[0] == "size0 (1, 3, 0, 0) (1, 31, 0, 0)"  # no ValueError: the bug
    assert lines[1] == "kcap0 True True"  # k_cap=0 built; attention silently reduced to its bias
    assert lines[2].startswith("healthy ValueError") and "0" in lines[2]
    assert lines[3].startswith("healthy ValueError") and "k_cap" in lines[3]


def test_base_variants_build():
    counts = {}
    for name in ("hsifusion_base", "sharp_base"):
        counts[name] = sum(p.numel() for p in models.create_model(name).parameters())
    assert 100_000 < counts["hsifusion_base"] < 2_000_000, counts
    assert 1_000_000 < counts["sharp_base"] < 10_000_000, counts


# --- the task ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["hsifusion_tiny", "sharp_tiny"])
def test_training_on_the_task_raises_psnr(name):
    torch.manual_seed(0)
    model = _build(name)
    assert model.task_metric_name == "psnr_db" and model.task_higher_is_better
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


def test_model_classes_are_the_registered_ones():
    assert models.get_spec("hsifusion_tiny").model_cls is HSIFusionNet
    assert models.get_spec("sharp_tiny").model_cls is SHARP
