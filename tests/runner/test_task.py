"""The short training run on a model's synthetic task records its metric before and after."""
from harness.runner import task
from harness.scenario import spec as scenario
from tests.runner.helpers import read_jsonl, run_harness, write_scenario

SETTINGS = {"measure": dict(scenario.MEASURE_DEFAULTS),
            "task": dict(scenario.TASK_DEFAULTS, steps=30, lr=3e-3, batch_size=8, eval_batch_size=32)}


def test_task_run_improves_the_classifier_top1():
    case = dict(model="cbam_classifier_tiny", mode="train", batch_size=2, size=24, precision="fp32",
                checkpoint="none", device="cpu")
    out = task.run_task(case, SETTINGS)
    assert out["metric"] == "top1" and out["higher_is_better"] and out["steps"] == 30
    assert 0.0 <= out["before"] <= 1.0 and 0.0 <= out["after"] <= 1.0
    assert out["after"] > out["before"]


def test_task_run_is_reproducible():
    case = dict(model="cbam_classifier_tiny", mode="train", batch_size=2, size=16, precision="fp32",
                checkpoint="none", device="cpu")
    settings = {"measure": SETTINGS["measure"], "task": dict(SETTINGS["task"], steps=3)}
    assert task.run_task(case, settings) == task.run_task(case, settings)


TASK_MATRIX = """
model = ["tests.fixtures.misbehaving:factory"]
mode = ["train", "eval"]
batch_size = [2]
size = [8, 7]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]
"""
# The fixture's task is a linear teacher its MLP learns in a few steps: MSE 2.8 -> 0.13 here.
TASK_ON = "\n[task]\nenabled = true\nsteps = 20\nlr = 0.05\nbatch_size = 8\neval_batch_size = 16\n"


def test_a_case_runs_the_task_when_the_scenario_asks_and_a_failing_task_is_reported(tmp_path):
    path = write_scenario(tmp_path, TASK_MATRIX, TASK_ON)
    proc = run_harness("run", path, "--out", str(tmp_path / "out"), "--env-label", "e")
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = {(r["case"]["mode"], r["case"]["size"]): r for r in read_jsonl(tmp_path / "out" / "e.jsonl")}
    assert sorted(recs) == [("eval", 7), ("eval", 8), ("train", 7), ("train", 8)]
    learnt = recs[("train", 8)]
    assert learnt["status"] == "ok" and learnt["accuracy"]["passed"]
    t = learnt.get("task")
    assert t, "the train case's record has no task: %r" % learnt
    assert (t["metric"], t["higher_is_better"], t["steps"]) == ("mse", False, 20) and t.get("error") is None
    assert t["after"] < t["before"] / 4, t  # it learnt, in the metric's own direction
    # The task's failure is the task's: the case itself is measured and ok, the error named.
    failed = recs[("train", 7)]
    assert failed["status"] == "ok" and failed["timing"]["samples_s"] and failed["accuracy"]["passed"]
    assert failed["task"]["error"] == "LookupError: deliberate task failure", failed["task"]
    assert failed["task"].get("after") is None
    # Eval cases have no training run.
    assert recs[("eval", 8)].get("task") is None and recs[("eval", 7)].get("task") is None


def test_no_task_unless_the_scenario_asks(tmp_path):
    path = write_scenario(tmp_path, TASK_MATRIX.replace("size = [8, 7]", "size = [8]").replace(
        'mode = ["train", "eval"]', 'mode = ["train"]'))
    proc = run_harness("run", path, "--out", str(tmp_path / "out"), "--env-label", "e")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (rec,) = read_jsonl(tmp_path / "out" / "e.jsonl")
    assert rec["status"] == "ok" and rec.get("task") is None
