"""Warm-up, calibration and the per-case budget, with a fake clock."""
import pytest

from harness.runner import timing


class FakeClock:
    """A clock that only moves when the fake step runs."""

    def __init__(self, step_s):
        self.now = 0.0
        self.step_s = step_s

    def __call__(self):
        return self.now

    def step(self):
        self.now += self.step_s


def test_iterations_per_sample_reach_min_sample_time():
    clock = FakeClock(0.001)
    out = timing.time_step(clock.step, warmup_iters=2, warmup_s=0.01, min_sample_s=0.02, samples=5,
                           budget_s=10, clock=clock)
    assert out["iters_per_sample"] == 20
    assert len(out["samples_s"]) == 5 and out["reduced"] is None
    assert out["samples_s"] == pytest.approx([0.001] * 5)
    assert out["warmup_iters"] >= 10  # warm-up lasts at least warmup_s


def test_slow_step_takes_fewer_samples_and_says_so():
    clock = FakeClock(3.0)
    out = timing.time_step(clock.step, warmup_iters=1, warmup_s=0.0, min_sample_s=0.01, samples=7,
                           budget_s=10, clock=clock)
    assert len(out["samples_s"]) == 3
    assert out["reduced"].startswith("budget: 3 of 7 samples")


def test_step_slower_than_budget_still_gets_one_sample():
    clock = FakeClock(30.0)
    out = timing.time_step(clock.step, warmup_iters=3, warmup_s=0.0, min_sample_s=0.01, samples=7,
                           budget_s=10, clock=clock)
    assert len(out["samples_s"]) == 1 and out["warmup_iters"] == 1
    assert "1 of 7" in out["reduced"]


def test_summarize_median_iqr_throughput():
    s = timing.summarize([0.4, 0.1, 0.2, 0.3], batch_size=8)
    assert s["median_s"] == pytest.approx(0.25)
    assert s["iqr_s"] == pytest.approx(0.325 - 0.175)
    assert s["throughput_per_s"] == pytest.approx(32.0)


def test_probe_runs_once_after_each_sample_and_is_kept_apart():
    clock = FakeClock(0.001)
    probe_calls = []

    def probe():
        probe_calls.append(clock.now)
        clock.now += 0.002  # untimed warm-up and timing of its own
        return 0.0005 * len(probe_calls)  # the machine slows down: each probe measures longer

    out = timing.time_step(clock.step, warmup_iters=2, warmup_s=0.0, min_sample_s=0.004, samples=3,
                           budget_s=10, clock=clock, probe=probe, probe_description="fake probe")
    assert len(probe_calls) == 3
    assert out["probe_samples_s"] == pytest.approx([0.0005, 0.001, 0.0015])
    assert out["probe"] == "fake probe"
    assert out["samples_s"] == pytest.approx([0.001] * 3)  # the probe's time is not in the samples
    assert out["timed_s"] == pytest.approx(3 * 0.004)


def test_no_probe_no_probe_fields():
    clock = FakeClock(0.001)
    out = timing.time_step(clock.step, warmup_iters=1, warmup_s=0.0, min_sample_s=0.001, samples=2, clock=clock)
    assert out["probe_samples_s"] is None and out["probe"] is None
