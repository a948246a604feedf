"""``harness.precisions``: one table of what each precision is, and what reads it derives from it
(the axis's words, the scenario's tolerance defaults) with the values they had as literals."""
import pytest

from harness import precisions, vocab
from harness.scenario import settings


def test_the_axis_words_are_the_tables_names_in_their_order():
    assert vocab.PRECISIONS is precisions.NAMES
    assert precisions.NAMES == ("fp32", "amp_fp16", "amp_bf16", "fp16", "bf16")
    assert vocab.UNIT_ROUNDOFF == precisions.UNIT_ROUNDOFF


def test_each_precision_either_casts_the_model_or_autocasts_or_runs_as_built():
    for p in precisions.TABLE:
        assert p.dtype_name in precisions.DTYPE, p
        if p.autocast_dtype_name is not None:  # amp: fp32 weights, the products in autocast's dtype
            assert not p.casts_model and p.autocast_dtype_name == p.dtype_name, p
        elif not p.casts_model:  # as built: the reference's arithmetic
            assert p.name == precisions.REFERENCE and p.dtype_name == "float32", p


def test_devices_are_the_vocabularys_and_loss_scaling_is_amp_fp16_on_cuda_only():
    for p in precisions.TABLE:
        assert set(p.devices) <= set(vocab.DEVICES) and set(p.loss_scaling_devices) <= set(p.devices), p
    assert [(p.name, d) for p in precisions.TABLE for d in p.loss_scaling_devices] == [("amp_fp16", "cuda")]


def test_compute_dtypes_are_exactly_the_dtypes_the_precisions_run_in():
    assert sorted(precisions.COMPUTE_DTYPES) == sorted({p.dtype_name for p in precisions.TABLE})
    assert precisions.COMPUTE_DTYPES == ("float32", "bfloat16", "float16")  # the roofline's and report's order


def test_roundoffs_and_range_follow_the_dtype():
    assert precisions.UNIT_ROUNDOFF == {"fp32": 2.0 ** -24, "amp_fp16": 2.0 ** -11, "fp16": 2.0 ** -11,
                                        "amp_bf16": 2.0 ** -8, "bf16": 2.0 ** -8}
    assert [p.name for p in precisions.TABLE if p.narrow_range] == ["amp_fp16", "fp16"]


def test_the_scenarios_tolerance_tables_derive_from_it_unchanged():
    assert list(settings.TOLERANCE_DEFAULTS) == list(precisions.NAMES) + [
        "fp64_multiple", "fp16_range_factor", "tensor_factor"]
    assert all(settings.TOLERANCE_DEFAULTS[name] is None for name in precisions.NAMES)
    assert settings.FALLBACK_TOLERANCE == {"fp32": 1e-4, "amp_fp16": 2e-2, "amp_bf16": 1e-1, "fp16": 2e-2,
                                           "bf16": 1e-1}


def test_an_unknown_precision_is_a_key_error_naming_the_known_ones():
    with pytest.raises(KeyError, match="unknown precision 'fp8'; known: fp32, amp_fp16"):
        precisions.get("fp8")
