"""The runner's declared fault hooks: every point is called by a real case, nothing registered
costs nothing, and only an activation in the runner's own tree with the variable set installs."""
import os
import timeit

import pytest

from harness.runner import execute, fault_hooks
from harness.scenario import spec as scenario

SETTINGS = {
    "measure": dict(scenario.MEASURE_DEFAULTS, warmup_iters=1, warmup_s=0.0, min_sample_s=0.0, samples=3,
                    case_budget_s=60.0, speed_probe=False, flops=False),
    "tolerance": dict(scenario.TOLERANCE_DEFAULTS),
    "task": dict(scenario.TASK_DEFAULTS, enabled=True, steps=1, batch_size=2, eval_batch_size=2),
}
CASE = dict(model="cbam_classifier_tiny", mode="train", batch_size=2, size=16, precision="fp32",
            checkpoint="none", device="cpu", channels_last=False, compile=False)


def test_every_declared_point_is_called_by_a_real_case_and_what_it_returns_is_used():
    calls = {point: [] for point in fault_hooks.POINTS}
    used = {"forward": 0, "step": 0}
    returned = {}

    def built(case, model):
        calls[fault_hooks.MODEL_BUILT].append(type(model).__name__)
        return model

    def call(case, fn):
        calls[fault_hooks.MODEL_CALL].append(fn)

        def counted(*args):
            used["forward"] += 1
            return fn(*args)
        return counted

    def timed(case, step):
        calls[fault_hooks.TIMED_STEP].append(step)

        def counted():
            used["step"] += 1
            step()
        returned["step"] = counted
        return counted

    hooks = {fault_hooks.MODEL_BUILT: built, fault_hooks.MODEL_CALL: call, fault_hooks.TIMED_STEP: timed,
             fault_hooks.PEAK_RESET: lambda case, step, mem: calls[fault_hooks.PEAK_RESET].append((step, mem)),
             fault_hooks.PEAK_READ: lambda case, memory: calls[fault_hooks.PEAK_READ].append(memory)}
    # every declared point has a function here: a point added without one fails this line
    assert set(hooks) == set(fault_hooks.POINTS)
    with fault_hooks.registered(hooks):
        result = execute.run_case(dict(CASE), SETTINGS)
    assert result["status"] == "ok", result.get("reason")
    missing = [point for point, seen in calls.items() if not seen]
    assert not missing, "harness/runner no longer calls the fault hook point(s) %s" % missing
    # the case's model, its fp32 and float64 references, and the task run's model
    assert calls[fault_hooks.MODEL_BUILT] == ["CBAMClassifier"] * 4
    assert len(calls[fault_hooks.MODEL_CALL]) == 2  # forward and infer, of the case only
    assert len(calls[fault_hooks.TIMED_STEP]) == 1 and len(calls[fault_hooks.PEAK_RESET]) == 1
    # the step the hook returned is the one timed (and told to the peak reset), the forward it
    # returned the one the steps call; the peak read is the record's memory part itself
    assert calls[fault_hooks.PEAK_RESET][0][0] is returned["step"]
    assert used["step"] >= 1 + SETTINGS["measure"]["samples"] and used["forward"] > used["step"]
    assert calls[fault_hooks.PEAK_READ] == [result["memory"]] and result["memory"]["peak_bytes"] >= 0
    assert result["task"]["steps"] == 1


def test_nothing_registered_returns_the_value_itself_at_negligible_cost():
    fault_hooks.clear()
    step = lambda: None
    assert fault_hooks.wrap(fault_hooks.TIMED_STEP, CASE, step) is step  # the timed loop is untouched
    assert fault_hooks.notify(fault_hooks.PEAK_READ, CASE, {}) is None
    n = 100000
    per_call_s = min(timeit.repeat(lambda: fault_hooks.wrap(fault_hooks.TIMED_STEP, CASE, step), number=n,
                                   repeat=3)) / n
    assert per_call_s < 5e-6, per_call_s  # ~0.1 us; a case calls the points a handful of times


def test_register_knows_only_the_declared_points_and_registered_restores():
    with pytest.raises(ValueError, match="unknown fault hook point"):
        fault_hooks.register("timed_loop", lambda case, step: step)
    with fault_hooks.registered({fault_hooks.TIMED_STEP: lambda case, step: "outer"}):
        with fault_hooks.registered({fault_hooks.TIMED_STEP: lambda case, step: step + "+inner"}):
            assert fault_hooks.wrap(fault_hooks.TIMED_STEP, CASE, "x") == "outer+inner"  # in order registered
        assert fault_hooks.wrap(fault_hooks.TIMED_STEP, CASE, "x") == "outer"
    assert fault_hooks.wrap(fault_hooks.TIMED_STEP, CASE, "x") == "x"


FAULT_MODULE = '''
from harness.runner import fault_hooks


def install(faults):
    for name, models in faults:
        fault_hooks.register(fault_hooks.TIMED_STEP, lambda case, step, name=name, models=models: (name, models, step))
'''


def test_only_an_activation_in_the_tree_with_the_variable_set_installs(tmp_path):
    module = tmp_path / "my_faults.py"
    module.write_text(FAULT_MODULE)
    tree = tmp_path / "tree"
    tree.mkdir()
    added = fault_hooks.write_activation(str(tree), str(module), [("slow", ["b", "a"]), ("own", None)])
    assert added == [fault_hooks.ACTIVATION, fault_hooks.ACTIVATION_DIR + "/my_faults.py"]
    assert all(os.path.isfile(os.path.join(str(tree), rel)) for rel in added)
    try:
        # the file without the variable (a user who checks the fault commit out), or the variable
        # without the file (the base side of the benchmark's A/B run): nothing
        assert fault_hooks.load_injected(str(tree), {}) is None
        assert fault_hooks.load_injected(str(tree), {fault_hooks.ENV: "yes"}) is None
        assert fault_hooks.load_injected(str(tmp_path), {fault_hooks.ENV: "1"}) is None
        assert fault_hooks.wrap(fault_hooks.TIMED_STEP, CASE, "step") == "step"
        said = fault_hooks.load_injected(str(tree), {fault_hooks.ENV: "1"})
        assert said == "slow (a, b), own (its own models) from injected-faults/my_faults.py"
        assert fault_hooks.wrap(fault_hooks.TIMED_STEP, CASE, "step") == ("own", None, ("slow", ("a", "b"), "step"))
    finally:
        fault_hooks.clear()


def test_the_activation_names_a_module_of_its_own_folder_only(tmp_path):
    (tmp_path / fault_hooks.ACTIVATION_DIR).mkdir()
    (tmp_path / "elsewhere.py").write_text(FAULT_MODULE)
    (tmp_path / fault_hooks.ACTIVATION).write_text('{"module": "elsewhere.py", "faults": []}')
    with pytest.raises(ValueError, match="must be a file of injected-faults/"):
        fault_hooks.load_injected(str(tmp_path), {fault_hooks.ENV: "1"})
