"""SHARP: hierarchical, local and dense attention paths, any size ("HxW" too), validation, two fault twins.

The shared top-k key attention and window layout (``models._attention``) are tested in
test_layers.py.
"""
import dataclasses
import os
import subprocess
import sys

import pytest
import torch

import models
from models import SeededGenerator, init_parameters
from models._attention import merge_heads, split_heads
from models.sharp import SHARP, SHARPAssertFault, SHARPKeyCacheFault, SparseHierarchicalAttention

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


# --- the model -----------------------------------------------------------------

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


@pytest.mark.parametrize("size", ["32x16", "17x40"])
def test_sharp_non_square_sizes_train_and_give_a_non_square_cube(size):
    spec = models.get_spec("sharp_tiny")
    assert spec.model_cls.non_square and spec.size_error(size) is None
    h, w = models.image_hw(size)
    model = _build("sharp_tiny").train()
    inputs, target = model.example_inputs(2, size, SeededGenerator(0))
    out = model(*inputs)
    assert out.shape == target.shape == (2, 31, h, w)
    model.loss(out, target).backward()
    assert all(p.grad is not None for p in model.parameters())
    reason = spec.size_error("32x5000")
    assert reason is not None and "5000" in reason and "max_size" in reason


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


def _held_tensor_bytes(model):
    """Bytes of the tensors a model's modules hold outside parameters and buffers (lists, dicts, attributes)."""
    def size(obj):
        if isinstance(obj, torch.Tensor):
            return obj.numel() * obj.element_size()
        if isinstance(obj, (list, tuple)):
            return sum(size(o) for o in obj)
        if isinstance(obj, dict):
            return sum(size(o) for o in obj.values())
        return 0
    skip = ("_parameters", "_buffers", "_modules")
    return sum(size(v) for m in model.modules() for k, v in vars(m).items() if k not in skip)


def test_fault_key_cache_holds_more_memory_with_every_call():
    spec = models.get_spec("sharp_key_cache_fault_tiny")
    assert spec.fault and spec.model_cls is SHARPKeyCacheFault
    healthy, fault = _build("sharp_tiny"), _build("sharp_key_cache_fault_tiny")
    inputs, target = healthy.example_inputs(2, 32, SeededGenerator(0))
    held = {"healthy": [], "fault": []}
    for model, key in ((healthy, "healthy"), (fault, "fault")):
        model.train()
        for _ in range(2):  # train steps
            model.loss(model(*inputs), target).backward()
            held[key].append(_held_tensor_bytes(model))
        model.eval()
        with torch.no_grad():
            for _ in range(2):  # eval calls leak too
                model(*inputs)
                held[key].append(_held_tensor_bytes(model))
    assert held["healthy"] == [0, 0, 0, 0]
    per_call = held["fault"][0]
    assert per_call > 0 and held["fault"] == [per_call * n for n in (1, 2, 3, 4)]
    # The cache is the only difference: the outputs are the healthy model's.
    with torch.no_grad():
        assert torch.equal(fault(*inputs), healthy(*inputs))


def test_base_builds():
    count = sum(p.numel() for p in models.create_model("sharp_base").parameters())
    assert 1_000_000 < count < 10_000_000, count


# --- the task ------------------------------------------------------------------

def test_training_on_the_task_raises_psnr(train_on_task):
    torch.manual_seed(0)
    model = _build("sharp_tiny")
    assert model.task_metric_name == "psnr_db" and model.task_higher_is_better
    before, after = train_on_task(model)
    assert after > before + 6.0, (before, after)


def test_model_classes_are_the_registered_ones():
    assert models.get_spec("sharp_tiny").model_cls is SHARP
    assert models.get_spec("sharp_assert_fault_tiny").model_cls is SHARPAssertFault
    assert models.get_spec("sharp_key_cache_fault_tiny").model_cls is SHARPKeyCacheFault
