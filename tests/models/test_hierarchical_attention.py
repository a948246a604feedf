"""Behaviour of the hierarchical space-time attention system (models/hierarchical_attention.py, seed 003).

Runs on torch 1.10 (matmul-softmax fallback) and 2.x (SDPA): shapes and size rules, the
advection-diffusion task (mass conserved, the skill metric), causality in time, periodic
translation equivariance of the transport-kernel attention, SDPA and the fallback agreeing,
low precision close to fp32, the task learnt, and the two fault twins: the uncast float32
bias breaks pure bf16/fp16, the missing scale changes the outputs wherever the fallback runs.
"""
import dataclasses

import pytest
import torch

import models
from harness.runner.precision import autocast
from models import SeededGenerator, init_parameters
from models._attention import HAS_SDPA
from models.hierarchical_attention import (
    HierarchicalAttentionSystem,
    advection_diffusion_batch,
    periodic_sq_distance,
    persistence_skill,
)

assert_close = getattr(torch.testing, "assert_close", None) or torch.testing.assert_allclose
TINY = "hierarchical_attention_tiny"
MASK_FAULT = "hierarchical_attention_mask_dtype_fault_tiny"
SCALE_FAULT = "hierarchical_attention_scale_fault_tiny"
BF16_ATOL = 0.1


def _build(name=TINY, seed=0, **changes):
    spec = models.get_spec(name)
    model = spec.model_cls(dataclasses.replace(spec.config, **changes)) if changes else spec.build()
    init_parameters(model, seed)
    return model.eval()


def _batch(size=16, batch=2, seed=0):
    (frames,), target = _build().task_batch(batch, size, SeededGenerator(seed))
    return frames, target


def _cpu_ops_failure(dtype):
    """None if this build has the healthy model's ops in ``dtype`` on the CPU, else why not (feature detection)."""
    try:
        with torch.no_grad():
            _build(attn_impl="math").to(dtype)(_batch(batch=1)[0].to(dtype))
        return None
    except RuntimeError as exc:
        return "%s: %s" % (type(exc).__name__, str(exc).split("\n")[0])


def test_registered_tiny_base_and_fault_twins():
    names = set(models.list_models("hierarchical_attention_*", include_faults=True))
    assert {TINY, "hierarchical_attention_base", MASK_FAULT, SCALE_FAULT} <= names
    for fault in (MASK_FAULT, SCALE_FAULT):
        assert models.get_spec(fault).fault and "fault" in fault
        assert fault not in models.list_models("hierarchical_attention_*")
    assert models.get_spec(TINY).model_cls is HierarchicalAttentionSystem


def test_shapes_and_the_prediction_is_frames_plus_increment():
    model = _build()
    c = model.config
    (frames,), target = model.task_batch(3, "16x24", SeededGenerator(0))
    assert frames.shape == target.shape == (3, c.frames, c.variables, 16, 24)
    assert torch.equal(frames[:, 1:], target[:, :-1])  # target is the input shifted by one frame
    prediction, increment = model(frames)
    assert prediction.shape == increment.shape == frames.shape
    assert_close(prediction, frames + increment)
    assert torch.isfinite(prediction).all()


def test_size_rules_name_the_value_and_raise_valueerror():
    spec = models.get_spec(TINY)  # patch 2, 3 scales: sides must be multiples of 8
    model = spec.build()
    for good in (8, 16, 24, "16x24", "8x32"):
        assert spec.size_error(good) is None, good
    for bad in (0, 12, 17, "16x20", "17x16"):
        reason = spec.size_error(bad)
        assert reason is not None and str(bad) in reason, (bad, reason)
        with pytest.raises(ValueError):
            model.example_inputs(1, bad, SeededGenerator(0))
    frames, _ = _batch()
    for wrong in (frames[:, :, :1], frames[..., :12], frames[0], torch.cat([frames, frames], dim=1)):
        with pytest.raises(ValueError, match="expected frames"):
            model(wrong)


def test_invalid_configs_raise_valueerror():
    with pytest.raises(ValueError, match="divisible"):
        _build(heads=3)
    with pytest.raises(ValueError, match="at least 1"):
        _build(scales=0)
    with pytest.raises(ValueError, match="init_length"):
        _build(init_length=0.0)
    with pytest.raises(ValueError, match="attn_impl"):
        _build(attn_impl="flash")


def test_periodic_distance_finds_parents_and_wraps_around():
    same = periodic_sq_distance((4, 4), (4, 4), torch.float64, None)
    assert torch.equal(same, same.t()) and torch.equal(torch.diagonal(same), torch.zeros(16, dtype=torch.float64))
    assert same[0, 3].item() == 1.0 and same[0, 12].item() == 1.0  # cell (0, 0) is next to (0, 3) and (3, 0)
    assert same.max().item() == 8.0  # two cells away on each axis, the farthest on a 4x4 torus
    cross = periodic_sq_distance((4, 6), (2, 3), torch.float64, None)  # fine (4, 6) -> coarse (2, 3)
    parents = cross.argmin(dim=1).view(4, 6)
    expected = torch.tensor([[i // 2 * 3 + j // 2 for j in range(6)] for i in range(4)])
    assert torch.equal(parents, expected)
    assert_close(cross.min(dim=1).values, torch.full((24,), 0.125, dtype=torch.float64))  # 2 * 0.25^2


def test_the_task_conserves_mass_and_the_skill_metric_is_relative_to_persistence():
    fields = advection_diffusion_batch(SeededGenerator(4), 3, 6, 2, 16, 24)
    assert fields.shape == (3, 6, 2, 16, 24) and fields.dtype == torch.float32
    mass = fields.double().mean(dim=(-2, -1))  # (b, t, v)
    assert (mass - mass[:, :1]).abs().max().item() < 1e-6
    assert (fields[:, 1:] - fields[:, :-1]).abs().mean().item() > 1e-2  # the fields do move
    frames, target = _batch()
    assert persistence_skill(target, target - frames, target) == 1.0
    assert persistence_skill(frames, torch.zeros_like(frames), target) == 0.0
    # The same draws for a square size and its "HxW" spelling.
    assert torch.equal(_batch(16)[0], _build().task_batch(2, "16x16", SeededGenerator(0))[0][0])


def test_later_frames_do_not_change_earlier_predictions():
    model = _build()
    frames, _ = _batch()
    changed = frames.clone()
    changed[:, 2:] += 1.0
    base, moved = model(frames)[0], model(changed)[0]
    assert_close(moved[:, :2], base[:, :2], rtol=1e-5, atol=1e-5)
    assert (moved[:, 2:] - base[:, 2:]).abs().max().item() > 1e-3


def test_shifting_the_fields_by_a_coarsest_cell_shifts_the_prediction():
    # Patch embedding, pooling and the periodic kernel bias are all translation equivariant.
    model = _build()
    frames, _ = _batch()
    shift = model.multiple(model.config)  # one cell of the coarsest grid
    rolled = model(frames.roll(shifts=(shift, 2 * shift), dims=(-2, -1)))[0]
    assert_close(rolled, model(frames)[0].roll(shifts=(shift, 2 * shift), dims=(-2, -1)), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not HAS_SDPA, reason="no scaled_dot_product_attention in this torch")
def test_sdpa_and_matmul_fallback_agree():
    frames, _ = _batch()
    assert _build().attn_impl == "sdpa"
    assert_close(_build(attn_impl="sdpa")(frames)[0], _build(attn_impl="math")(frames)[0], rtol=1e-4, atol=1e-5)


def test_every_attention_module_defines_its_scale():
    model = _build()
    scaled = [m for m in model.modules() if hasattr(m, "scaling")]
    assert len(scaled) == 3 * 2 + 2 * 2  # (temporal, spatial) per block, (wrapper, attention) per cross step
    assert all(m.scaling == (model.config.dim // model.config.heads) ** -0.5 for m in scaled)


def test_loss_adds_the_conservation_penalty():
    model = _build(conservation_weight=2.0)
    frames, target = _batch()
    increment = torch.full_like(frames, 0.5)  # creates mass 0.5 everywhere
    loss = model.loss((target.clone(), increment), target)
    assert_close(loss, torch.tensor(2.0 * 0.25))
    assert model.loss((target, increment - 0.5), target).item() == 0.0


def test_bf16_and_autocast_stay_close_to_fp32():
    cannot = _cpu_ops_failure(torch.bfloat16)
    if cannot is not None:
        pytest.skip("this build cannot run bf16 on the CPU: %s" % cannot)
    frames, _ = _batch()
    with torch.no_grad():
        ref = _build()(frames)[0]
        got = _build().to(torch.bfloat16)(frames.to(torch.bfloat16))[0]
        with autocast("cpu", "amp_bf16"):
            amp = _build()(frames)[0]
    assert got.dtype == torch.bfloat16
    assert (got.float() - ref).abs().max().item() < BF16_ATOL
    assert (amp.float() - ref).abs().max().item() < BF16_ATOL


def test_training_on_the_task_beats_persistence(train_on_task):
    torch.manual_seed(0)
    model = _build()
    assert model.task_metric_name == "persistence_skill" and model.task_higher_is_better
    before, after = train_on_task(model)
    assert before < -1.0, before  # the untrained increments are larger than the true change
    assert after > 0.05, after  # better than "no change" after 20 steps


def test_base_builds():
    count = sum(p.numel() for p in models.create_model("hierarchical_attention_base").parameters())
    assert 5_000_000 < count < 12_000_000, count


# --- the fault twins -----------------------------------------------------------------


def test_mask_fault_equals_healthy_in_fp32_and_builds_a_float32_bias():
    frames, _ = _batch()
    assert_close(_build(MASK_FAULT)(frames)[0], _build()(frames)[0], rtol=1e-4, atol=1e-5)
    attn = _build(MASK_FAULT).to(torch.bfloat16).stages[0][0].spatial
    assert attn.kernel_bias((2, 2), (2, 2), torch.bfloat16, None).dtype == torch.float32
    healthy = _build().to(torch.bfloat16).stages[0][0].spatial
    assert healthy.kernel_bias((2, 2), (2, 2), torch.bfloat16, None).dtype == torch.bfloat16


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mask_fault_fails_with_a_dtype_error_in_pure_low_precision(dtype):
    cannot = _cpu_ops_failure(dtype)
    if cannot is not None:
        pytest.skip("this build cannot run %s on the CPU: %s" % (dtype, cannot))
    frames, _ = _batch()
    faulty = _build(MASK_FAULT).to(dtype)
    with pytest.raises(RuntimeError, match="(?i)dtype|scalar type"):
        with torch.no_grad():
            faulty(frames.to(dtype))


def test_mask_fault_is_hidden_by_cpu_autocast():
    # Documented behaviour: autocast re-casts the matmul inputs, so the float32 bias runs silently.
    frames, _ = _batch()
    with torch.no_grad():
        ref = _build(MASK_FAULT)(frames)[0]
        with autocast("cpu", "amp_bf16"):
            amp = _build(MASK_FAULT)(frames)[0]
    assert (amp.float() - ref).abs().max().item() < BF16_ATOL


def test_scale_fault_changes_the_outputs_where_the_fallback_runs():
    frames, _ = _batch()
    healthy = _build(attn_impl="math")(frames)[0]
    faulty = _build(SCALE_FAULT, attn_impl="math")(frames)[0]
    assert (faulty - healthy).abs().max().item() > 0.05  # softmax over unscaled scores
    if HAS_SDPA:  # SDPA's implicit default is the right scale: there the twin hides
        assert torch.equal(_build(SCALE_FAULT)(frames)[0], _build()(frames)[0])
    else:  # 1.x: the default path is the fallback
        assert torch.equal(_build(SCALE_FAULT)(frames)[0], faulty)
