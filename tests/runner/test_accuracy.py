"""Fidelity figures: errors, missing gradients, non-finite outputs, the probe."""
import math

import pytest
import torch

from harness.runner import accuracy
from harness.sketches import relative_change


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_identical_outputs_have_zero_error():
    out = accuracy.compare([t(1.0, 2.0)], [t(1.0, 2.0)])
    assert out["rel_err"] == 0.0 and out["max_abs_err"] == 0.0
    assert math.isclose(out["cosine"], 1.0, rel_tol=1e-12)


def test_relative_error_and_cosine():
    out = accuracy.compare([t(3.0, 4.0)], [t(3.0, 0.0)])
    assert out["max_abs_err"] == 4.0
    assert math.isclose(out["rel_err"], 4.0 / 3.0)
    assert math.isclose(out["cosine"], 0.6)


def test_missing_gradients_count_as_zeros_and_fail():
    ref = {"a": t(1.0, 1.0), "b": t(2.0)}
    got = {"a": t(1.0, 1.0), "b": None}
    figures = accuracy.compare_grads(got, ref)
    assert figures["missing"] == 1 and figures["rel_err"] > 0.5
    verdict = accuracy.judge({"rel_err": 0.0}, figures, tolerance=1e-4, limit=(10.0, 100.0))
    assert not verdict["passed"]
    assert any("got no gradient" in f for f in verdict["failures"])


def test_non_finite_and_shape_mismatch_fail():
    nan = accuracy.compare([t(float("nan"), 1.0)], [t(1.0, 1.0)])
    assert "non-finite" in nan["problem"]
    shape = accuracy.compare([t(1.0)], [t(1.0, 2.0)])
    assert "shape mismatch" in shape["problem"]
    assert not accuracy.judge(nan, None, 1.0, (10.0, 100.0))["passed"]


def test_probe_is_spread_over_all_outputs():
    ref = [torch.arange(100, dtype=torch.float64)]
    p = accuracy.probe(ref)
    assert len(p["output_probe"]) == 32 and p["output_probe"][0] == 0.0 and p["output_probe"][-1] == 99.0


def test_calibrated_ratio_is_the_error_in_units_of_fp32s_scaled_by_unit_roundoffs():
    ref = {"w": t(1.0, 0.0, 0.0, 0.0)}
    fp32 = {"w": t(1.0 + 1e-7, 0.0, 0.0, 0.0)}              # fp32's own error: 1e-7
    got = {"w": t(1.0 + 1e-7 * 65536 * 3, 0.0, 0.0, 0.0)}   # three times that, scaled to bf16
    figures = accuracy.calibrate(got, fp32, ref, "bf16")
    assert figures["fp32_err64"] == pytest.approx(1e-7, rel=1e-6)
    assert figures["expected_err"] == pytest.approx(1e-7 * 65536, rel=1e-6)
    assert figures["ratio"] == pytest.approx(3.0, rel=1e-6) and figures["worst"] == "w"
    # Never below one unit roundoff: an exact fp32 reference expects one bf16 rounding.
    exact = accuracy.calibrate(got, ref, ref, "bf16")
    assert exact["expected_err"] == 2.0 ** -8


def test_a_nearly_zero_tensor_is_judged_against_its_groups_scale():
    # b is zero in exact arithmetic; fp32 leaves 1e-9 of noise, bf16 1e-4: relative to b itself
    # that is an unbounded error, relative to the group's size it is rounding.
    ref = {"a": t(1.0, -1.0), "b": t(0.0, 0.0)}
    fp32 = {"a": t(1.0, -1.0), "b": t(1e-9, 0.0)}
    got = {"a": t(1.0, -1.0), "b": t(1e-4, 0.0)}
    figures = accuracy.calibrate(got, fp32, ref, "bf16")
    assert figures["worst"] == "b" and figures["worst_ratio"] < 2.0  # rounding, far below any limit


def test_a_tensor_all_zero_in_the_case_alone_fails_whatever_the_ratios():
    # fp16 overflow that divides every logit to 0 leaves the temperature an all-zero gradient: a
    # small tensor, so the group's ratio can stay within its limit; the exact zeros cannot.
    ref = {"w": t(1.0, -2.0, 3.0, 1.0), "temperature": t(0.05)}
    fp32 = {"w": t(1.0, -2.0, 3.0, 1.0), "temperature": t(0.05)}
    got = {"w": t(1.0, -2.0, 3.0, 1.0), "temperature": t(0.0)}
    figures = accuracy.calibrate(got, fp32, ref, "fp16")
    assert figures["zeroed"] == 1 and figures["zeroed_names"] == ["temperature"]
    verdict = accuracy.judge({"ratio": None, "rel_err": 0.0}, figures, None, (1e9, 1e10))  # no ratio can fail it
    assert verdict["passed"] is False
    assert any("1 tensors are all zero here" in f and "temperature" in f for f in verdict["failures"])


def test_zeros_the_references_share_or_that_are_nearly_zero_in_float64_are_not_lost_values():
    ref = {"w": t(1.0, -2.0, 3.0, 1.0), "bias": t(1e-6, -1e-6), "unused": t(0.0)}
    fp32 = {"w": t(1.0, -2.0, 3.0, 1.0), "bias": t(1e-6, -1e-6), "unused": t(0.0)}
    got = {"w": t(1.0, -2.0, 3.0, 1.0), "bias": t(0.0, 0.0), "unused": t(0.0)}
    # bias: below 1% of the group's typical size in float64 (underflow of a value that small is
    # fp16's range, judged by the ratios); unused: zero in the references as well.
    assert accuracy.zeroed(got, fp32, ref) == []
    assert accuracy.calibrate(got, fp32, ref, "fp16")["zeroed"] == 0
    fp32_zero = dict(fp32, w=t(0.0, 0.0, 0.0, 0.0))
    assert accuracy.zeroed(dict(got, w=t(0.0, 0.0, 0.0, 0.0)), fp32_zero, ref) == []


def test_non_finite_case_tensors_give_an_infinite_ratio():
    figures = accuracy.calibrate({"w": t(math.inf, 1.0)}, {"w": t(1.0, 1.0)}, {"w": t(1.0, 1.0)}, "fp16")
    assert figures["ratio"] == math.inf


def test_judge_limits_missing_reference_gradients_and_the_fixed_override():
    outputs = {"rel_err": 1e-3, "ratio": 3.0, "worst_ratio": 5.0, "err64": 1e-3, "expected_err": 3e-4,
               "worst": "output", "worst_err64": 1e-3}
    assert accuracy.judge(dict(outputs), None, None, (10.0, 100.0))["passed"]
    failed = accuracy.judge(dict(outputs, ratio=12.0), None, None, (10.0, 100.0))
    assert not failed["passed"] and "12x the expected" in failed["failures"][0]
    alone = accuracy.judge(dict(outputs, worst_ratio=150.0), None, None, (10.0, 100.0))
    assert not alone["passed"] and "output alone" in alone["failures"][0]
    grads = dict(outputs, ref_missing=1, ref_missing_names=["blocks.0.temperature"])
    detached = accuracy.judge(dict(outputs), grads, None, (10.0, 100.0))
    assert not detached["passed"] and "no gradient in the fp32 reference" in detached["failures"][0]
    # A scenario's fixed tolerance judges the error against fp32 instead of the ratio.
    fixed = accuracy.judge(dict(outputs, ratio=12.0), None, 1e-2, (10.0, 100.0))
    assert fixed["passed"] and fixed["tolerance"] == 1e-2 and fixed["limit"] is None


def test_sketch_sees_a_change_anywhere_at_about_its_size():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(10000, generator=gen, dtype=torch.float64)
    base = accuracy.sketch([x])
    assert accuracy.sketch([x.clone()]) == base and len(base) == accuracy.SKETCH_SIZE
    for where in (0, 4321, 9999):   # one element moved by 1% of the whole tensor's norm
        y = x.clone()
        y[where] += 0.01 * float(x.norm())
        change = relative_change(accuracy.sketch([y]), base)
        assert 0.003 < change < 0.03, (where, change)


def test_named_outputs():
    assert list(accuracy.named_outputs([t(1.0)])) == ["output"]
    assert list(accuracy.named_outputs([t(1.0), t(2.0)])) == ["output[0]", "output[1]"]


def test_a_precision_whose_expected_error_is_too_large_is_not_judged_never_passed():
    """Expected 195% (fp32's own 0.3% x 65,536 for bf16): limit x expected is past 100%, so even an
    all-zero result would pass: the case is not judged (passed None) with its figures; a real failure
    elsewhere still fails it; at 10x the limit the bound is an expected error of 10%."""
    outputs = {"rel_err": 1e-3, "ratio": 0.5, "worst_ratio": 0.5, "err64": 1e-3, "expected_err": 2e-3,
               "worst": "output", "worst_err64": 1e-3, "cosine": 1.0}
    grads = {"rel_err": 1.17, "ratio": 0.6, "worst_ratio": 0.6, "err64": 1.17, "expected_err": 1.95,
             "fp32_err64": 2.98e-5, "worst": "w", "worst_err64": 1.17, "cosine": 0.23}
    verdict = accuracy.judge(dict(outputs), dict(grads), None, (10.0, 100.0))
    assert verdict["passed"] is None and len(verdict["failures"]) == 1
    note = verdict["failures"][0]
    assert note.startswith(accuracy.NOT_JUDGED + " (grads): expected error 1.95 against float64")
    assert "its error 1.17, cosine with fp32 0.23" in note
    broken = accuracy.judge(dict(outputs, problem="3 non-finite values"), dict(grads), None, (10.0, 100.0))
    assert broken["passed"] is False and broken["failures"] == ["outputs: 3 non-finite values"]
    assert accuracy.judgeable(0.099, 10.0) and not accuracy.judgeable(0.10, 10.0)
    assert accuracy.judge(dict(outputs), dict(grads, expected_err=0.05), None, (10.0, 100.0))["passed"] is True
    # a fixed tolerance judges against fp32, not the calibrated ratio: no bound applies
    assert accuracy.judge(dict(outputs), dict(grads), 2.0, (10.0, 100.0))["passed"] is True
