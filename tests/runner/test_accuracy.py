"""Fidelity figures: errors, missing gradients, non-finite outputs, the probe."""
import math

import torch

from harness.runner import accuracy


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
    verdict = accuracy.judge({"rel_err": 0.0}, figures, tolerance=1e-4)
    assert not verdict["passed"]
    assert any("got no gradient" in f for f in verdict["failures"])


def test_non_finite_and_shape_mismatch_fail():
    nan = accuracy.compare([t(float("nan"), 1.0)], [t(1.0, 1.0)])
    assert "non-finite" in nan["problem"]
    shape = accuracy.compare([t(1.0)], [t(1.0, 2.0)])
    assert "shape mismatch" in shape["problem"]
    assert not accuracy.judge(nan, None, 1.0)["passed"]


def test_probe_is_spread_over_all_outputs():
    ref = [torch.arange(100, dtype=torch.float64)]
    p = accuracy.probe(ref)
    assert len(p["output_probe"]) == 32 and p["output_probe"][0] == 0.0 and p["output_probe"][-1] == 99.0
