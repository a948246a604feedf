"""``runner.checks``: each behaviour check fails on a small module that has its fault and stays
silent on the same module without it; ``execute.run_case`` records them."""
import itertools

import pytest
import torch
from torch import nn

from harness.runner import checks, execute
from harness.scenario import spec as scenario
from models import ZooModel

SETTINGS = {
    "measure": dict(scenario.MEASURE_DEFAULTS, warmup_iters=1, warmup_s=0.0, min_sample_s=0.002, samples=2,
                    case_budget_s=60.0, speed_probe=False),
    "tolerance": dict(scenario.TOLERANCE_DEFAULTS),
    "task": dict(scenario.TASK_DEFAULTS),
}
_CALLS = itertools.count()


class Small(ZooModel):
    """An MLP with switchable faults: a counter buffer read in forward, a head rebuilt on the first
    forward (after the optimizer was made), an unbounded cache, or a process-wide call count
    added to the output (a different answer on every build)."""

    size_axis = "features"

    def __init__(self, fault: str = ""):
        super().__init__()
        self.fault = fault
        self.body = nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))  # an integer counter, as audited
        self.cache = []
        self._rebuilt = False

    def forward(self, x):
        if self.fault == "stale" and not self._rebuilt:
            self.head = nn.Linear(8, 2)  # "rebuilt when the input is first seen": the optimizer holds the old one
            self._rebuilt = True
        h = torch.relu(self.body(x))
        if self.fault == "buffer":
            self.calls += 1
            h = h * (1.0 + 0.1 * self.calls.to(h.dtype))
        if self.fault == "leak":
            self.cache.append(h.detach().clone())
        out = self.head(h)
        if self.fault == "nondeterministic":
            out = out + float(next(_CALLS))
        return out

    def example_inputs(self, batch_size, size, gen):
        return (gen.normal((batch_size, 8)),), gen.normal((batch_size, 2))

    def loss(self, out, target):
        return ((out - target) ** 2).mean()


def small(fault=""):
    return Small(fault)


def stale():
    return Small("stale")


def buffer():
    return Small("buffer")


def leak():
    return Small("leak")


def nondeterministic():
    return Small("nondeterministic")


def _case(model, mode):
    return dict(model="tests.runner.test_checks:%s" % model, mode=mode, batch_size=2, size=8, precision="fp32",
                checkpoint="none", device="cpu", channels_last=False, compile=False)


def _run(model, mode, **asked):
    settings = dict(SETTINGS, checks=dict(scenario.CHECKS_DEFAULTS, **asked))
    rec = execute.run_case(_case(model, mode), settings)
    assert rec["status"] == "ok", rec.get("reason")
    return rec["checks"]


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_healthy_model_passes_every_check(mode):
    found = _run("small", mode, deterministic=True, leak_steps=3)
    expected = {"train": "params_updated", "eval": "eval_buffers"}[mode]
    assert found["ran"] == [expected, "leak", "deterministic"] and found["failed"] == [], found
    assert found["leak_bytes_per_step"] == 0.0 and found["leak_steps"] == 6


def test_a_stale_optimizer_leaves_the_rebuilt_parameters_unchanged():
    found = _run("stale", "train")
    assert found["failed"] == ["params_updated"]
    assert "head.weight" in found["reasons"][0] and "head.bias" in found["reasons"][0]
    assert "body.weight" not in found["stale_params"]


def test_a_buffer_mutated_in_eval_is_named():
    found = _run("buffer", "eval")
    assert found["failed"] == ["eval_buffers"] and found["mutated_buffers"] == ["calls"]


def test_an_unbounded_cache_is_a_leak_of_its_bytes_per_step():
    found = _run("leak", "train", leak_steps=2)
    assert found["failed"] == ["leak"]
    assert found["leak_bytes_per_step"] == 2 * 8 * 4  # one (2, 8) float32 activation kept per step


def test_a_different_answer_from_the_same_seed_is_nondeterministic():
    found = _run("nondeterministic", "eval", deterministic=True)
    assert found["failed"] == ["deterministic"] and found["nondeterministic"] == "output[0]"


def test_nans_at_the_same_places_are_not_nondeterminism_but_any_other_difference_is():
    nan = float("nan")
    same = checks.deterministic(([torch.tensor([1.0, nan])], {"w": torch.tensor([nan])}),
                                ([torch.tensor([1.0, nan])], {"w": torch.tensor([nan])}))
    assert same == {}
    moved = checks.deterministic(([torch.tensor([1.0, nan])], None), ([torch.tensor([nan, 1.0])], None))
    assert moved["nondeterministic"] == "output[0]"
    changed = checks.deterministic(([torch.tensor([1.0, nan])], None), ([torch.tensor([1.5, nan])], None))
    assert "max abs diff 0.5" in changed["failure"]


def test_frozen_parameters_fail_and_half_precision_weights_are_not_judged():
    model = Small()
    model.body.weight.requires_grad_(False)
    before = checks.fingerprints(checks.trainable(model))
    with torch.no_grad():
        for p in checks.trainable(model).values():
            p.add_(1.0)
    found = checks.params_updated(before, model, "fp32")
    assert found["stale_params"] == ["body.weight"] and "frozen" in found["failure"]
    assert checks.params_updated(before, model, "bf16").get("failure") is None


def test_merge_lists_what_ran_failed_and_could_not_judge():
    merged = checks.merge({"params_updated": {"not_judged": "params_updated: bf16", "stale_params": []},
                           "eval_buffers": None, "leak": {"failure": "leak: 8 bytes", "leak_bytes_per_step": 8.0}})
    assert merged["ran"] == ["params_updated", "leak"] and merged["failed"] == ["leak"]
    assert merged["not_judged"] == ["params_updated: bf16"] and merged["leak_bytes_per_step"] == 8.0
