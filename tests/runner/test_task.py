"""The short training run on a model's synthetic task records its metric before and after."""
from harness import scenario
from harness.runner import task

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
