"""``runner.sdpa``: the SDPA backend axis selects a kernel where the build can, else says why."""
import pytest
import torch
import torch.nn.functional as F

from harness.runner import execute, sdpa
from harness.scenario import spec as scenario
from models import UnsupportedError

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")
SETTINGS = {
    "measure": dict(scenario.MEASURE_DEFAULTS, warmup_iters=1, warmup_s=0.0, min_sample_s=0.002, samples=2,
                    case_budget_s=60.0, speed_probe=False),
    "tolerance": dict(scenario.TOLERANCE_DEFAULTS), "task": dict(scenario.TASK_DEFAULTS),
    "checks": dict(scenario.CHECKS_DEFAULTS),
}


def _case(backend, mode="train"):
    return dict(model="attention_mha_tiny", mode=mode, batch_size=2, size=32, precision="fp32", checkpoint="none",
                device="cpu", channels_last=False, compile=False, sdpa_backend=backend)


def _backend_flags():
    """Which SDPA backends torch allows now (the flags a backend context flips), where the build has them."""
    names = ("flash_sdp_enabled", "mem_efficient_sdp_enabled", "math_sdp_enabled", "cudnn_sdp_enabled")
    return {n: getattr(torch.backends.cuda, n)() for n in names if hasattr(torch.backends.cuda, n)}


def test_default_is_a_no_op_everywhere():
    """``default`` pins nothing: no backend flag moves inside or after it, and SDPA (where the build has
    it) gives bit-identical results inside and outside."""
    flags = _backend_flags()
    q = torch.randn(1, 2, 8, 4)
    with sdpa.backend_context("default"):
        assert _backend_flags() == flags
        inside = F.scaled_dot_product_attention(q, q, q) if HAS_SDPA else None
    assert _backend_flags() == flags
    if HAS_SDPA:
        assert torch.equal(inside, F.scaled_dot_product_attention(q, q, q))


@pytest.mark.skipif(HAS_SDPA, reason="this build has scaled_dot_product_attention")
def test_without_sdpa_a_backend_case_is_unsupported_naming_it():
    with pytest.raises(UnsupportedError, match="has no scaled_dot_product_attention"):
        sdpa.backend_context("math")
    rec = execute.run_case(_case("flash"), SETTINGS)
    assert rec["status"] == "unsupported" and "sdpa_backend flash" in rec["reason"]


@pytest.mark.skipif(not HAS_SDPA, reason="this build has no scaled_dot_product_attention")
def test_the_math_backend_runs_and_matches_the_reference_and_a_missing_kernel_is_unsupported():
    rec = execute.run_case(_case("math"), SETTINGS)
    assert rec["status"] == "ok" and rec["accuracy"]["passed"], rec.get("reason")
    q = torch.randn(1, 2, 8, 4)
    with sdpa.backend_context("math"):
        expected = F.scaled_dot_product_attention(q, q, q, is_causal=True)
    torch.testing.assert_close(F.scaled_dot_product_attention(q, q, q, is_causal=True), expected)
    # the CPU has no memory-efficient kernel: SDPA refuses, and the case says so
    cpu_efficient = execute.run_case(_case("efficient", "eval"), SETTINGS)
    assert cpu_efficient["status"] == "unsupported", cpu_efficient.get("reason")
    assert "No viable backend" in cpu_efficient["reason"] or "No available kernel" in cpu_efficient["reason"]
