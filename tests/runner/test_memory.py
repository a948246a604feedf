"""The CPU tensor peak (harness.runner.memory.tensor_peak_bytes) and its place in a case's record."""
import pytest
import torch

from harness.runner import execute, memory
from harness.scenario import spec as scenario

SETTINGS = {
    "measure": dict(scenario.MEASURE_DEFAULTS, warmup_iters=1, warmup_s=0.0, min_sample_s=0.002, samples=2,
                    case_budget_s=60.0),
    "tolerance": dict(scenario.TOLERANCE_DEFAULTS),
    "task": dict(scenario.TASK_DEFAULTS),
}
CLONE_BYTES = 8 * 8 * 64 * 64 * 4  # one float32 8x8x64x64 tensor: 1,048,576 bytes


def case(**kw):
    base = dict(model="cbam_classifier_tiny", mode="train", batch_size=2, size=16, precision="fp32",
                checkpoint="none", device="cpu", channels_last=False, compile=False)
    base.update(kw)
    return base


def _step(extra_clone: bool):
    def step():
        x = torch.randn(8, 8, 64, 64)
        y = torch.relu(x * 2.0)
        kept = y.clone() if extra_clone else None  # alive until the step returns
        z = (y + 1.0).sum() + y.mean()
        return z, kept
    return step


def test_tensor_peak_is_exact_and_sees_one_kept_clone():
    plain = [memory.tensor_peak_bytes(_step(False)) for _ in range(3)]
    cloned = [memory.tensor_peak_bytes(_step(True)) for _ in range(3)]
    assert len(set(plain)) == 1 and len(set(cloned)) == 1, (plain, cloned)
    (base, method), (more, _) = plain[0], cloned[0]
    assert method == memory.TENSOR_PEAK_METHOD  # the raw records are reachable on 1.10 and the newest
    assert base >= 2 * CLONE_BYTES  # x and y live at once
    assert more - base == CLONE_BYTES


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_every_cpu_case_records_a_repeatable_tensor_peak(mode):
    runs = [execute.run_case(case(mode=mode), SETTINGS) for _ in range(3)]
    assert [r["status"] for r in runs] == ["ok"] * 3
    peaks = [r["memory"]["tensor_peak_bytes"] for r in runs]
    assert all(isinstance(p, int) and p > 0 for p in peaks) and len(set(peaks)) == 1, peaks
    assert {r["memory"]["tensor_peak_method"] for r in runs} == {memory.TENSOR_PEAK_METHOD}
    assert "tensor_peak_error" not in runs[0]["memory"]


def test_a_failing_profiler_leaves_the_case_ok(monkeypatch):
    def broken(step, seen=False):
        raise RuntimeError("profiler busy\nsecond line")
    monkeypatch.setattr(execute, "tensor_peak_bytes", broken)
    r = execute.run_case(case(mode="eval"), SETTINGS)
    assert r["status"] == "ok" and r["memory"]["tensor_peak_bytes"] is None
    assert r["memory"]["tensor_peak_error"] == "RuntimeError: profiler busy"
    assert r["memory"]["peak_bytes"] is not None


def test_cuda_keeps_the_allocator_peak_only():
    def never():
        raise AssertionError("the step must not run under the profiler on CUDA")
    assert execute._tensor_peak(never, "cuda") == {"tensor_peak_bytes": None, "tensor_peak_method": None}
