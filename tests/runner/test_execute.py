"""One case in process: real small models, real measurements, classified failures."""
import pytest
import torch

import models
from harness import scenario
from harness.runner import execute, precision, speed_probe
from tests.runner.helpers import read_jsonl, run_harness, write_scenario

SETTINGS = {
    "measure": dict(scenario.MEASURE_DEFAULTS, warmup_iters=1, warmup_s=0.0, min_sample_s=0.002, samples=3,
                    case_budget_s=60.0),  # generous: a loaded CI machine must not trim samples here
    "tolerance": dict(scenario.TOLERANCE_DEFAULTS),
    "task": dict(scenario.TASK_DEFAULTS),
}


def case(**kw):
    base = dict(model="cbam_classifier_tiny", mode="train", batch_size=2, size=16, precision="fp32",
                checkpoint="none", device="cpu", channels_last=False, compile=False)
    base.update(kw)
    return base


def test_fp32_train_case_measures_speed_memory_and_matches_reference():
    r = execute.run_case(case(), SETTINGS)
    assert r["status"] == "ok", r
    t = r["timing"]
    assert len(t["samples_s"]) == 3 and all(s > 0 for s in t["samples_s"])
    assert t["median_s"] > 0 and t["throughput_per_s"] == pytest.approx(2 / t["median_s"])
    assert r["memory"]["peak_bytes"] > 0
    acc = r["accuracy"]
    # Same weights, same inputs, same arithmetic: the reference is reproduced exactly.
    assert acc["passed"] and acc["outputs"]["rel_err"] == 0.0 and acc["grads"]["rel_err"] == 0.0
    assert len(acc["output_probe"]) == 20  # every value of the (2, 10) logits: fewer than 32
    assert 0 <= r["overhead_s"] < r["duration_s"]
    # the speed probe ran once after each sample, and says which probe it was
    assert len(t["probe_samples_s"]) == 3 and all(p > 0 for p in t["probe_samples_s"])
    assert t["probe"] == speed_probe.DESCRIPTION


def test_speed_probe_can_be_switched_off():
    settings = dict(SETTINGS, measure=dict(SETTINGS["measure"], speed_probe=False))
    t = execute.run_case(case(mode="eval"), settings)["timing"]
    assert t["probe_samples_s"] is None and t["probe"] is None and len(t["samples_s"]) == 3


def test_eval_case_has_no_gradient_check():
    r = execute.run_case(case(mode="eval"), SETTINGS)
    assert r["status"] == "ok" and r["accuracy"]["grads"] is None and r["accuracy"]["passed"]


def test_reentrant_checkpointing_keeps_gradients_of_the_healthy_model():
    r = execute.run_case(case(checkpoint="reentrant"), SETTINGS)
    assert r["status"] == "ok" and r["accuracy"]["passed"], r["accuracy"]
    assert r["accuracy"]["grads"]["missing"] == 0


def test_non_reentrant_is_unsupported_exactly_where_the_api_lacks_it():
    r = execute.run_case(case(checkpoint="non_reentrant"), SETTINGS)
    if models._base.HAS_NON_REENTRANT_CHECKPOINT:
        assert r["status"] == "ok"
    else:
        assert r["status"] == "unsupported" and "use_reentrant" in r["reason"]


def _autocast_works(dtype):
    try:
        precision.check_autocast("cpu", dtype)
        return True
    except Exception:
        return False


@pytest.mark.parametrize("prec", ["amp_fp16", "amp_bf16"])
def test_autocast_support_is_detected_not_guessed(prec):
    r = execute.run_case(case(precision=prec), SETTINGS)
    if _autocast_works(prec):
        assert r["status"] in ("ok", "unsupported")
        if r["status"] == "ok":
            assert r["accuracy"]["outputs"]["rel_err"] > 0  # it really ran in lower precision
    else:
        assert r["status"] == "unsupported" and "utocast" in r["reason"]


def test_cuda_case_without_cuda_is_unsupported_with_reason():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = execute.run_case(case(device="cuda"), SETTINGS)
    assert r["status"] == "unsupported" and "torch.cuda.is_available() is False" in r["reason"]


def test_compile_is_feature_detected():
    r = execute.run_case(case(mode="eval", compile=True), SETTINGS) if not hasattr(torch, "compile") else None
    if r is not None:
        assert r["status"] == "unsupported" and "torch.compile" in r["reason"]


@pytest.mark.parametrize("exc, status", [
    (RuntimeError("\"addmm_impl_cpu_\" not implemented for 'Half'"), "unsupported"),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom"),
    (models.UnsupportedError("non-reentrant checkpointing"), "unsupported"),
    (KeyError("x"), "error"),
])
def test_classify(exc, status):
    out = execute.classify(exc)
    assert out["status"] == status
    if status == "error":
        assert "KeyError" in out["reason"] and "traceback" in out


def test_python_O_gives_the_same_statuses(tmp_path):
    matrix = '''
model = ["cbam_classifier_tiny"]
mode = ["train", "eval"]
batch_size = [2]
size = [16, 7]
precision = ["fp32", "amp_fp16", "bf16"]
checkpoint = ["none"]
device = ["cpu"]
'''
    path = write_scenario(tmp_path, matrix)
    results = {}
    for opt in (False, True):
        out = tmp_path / ("O" if opt else "plain")
        proc = run_harness("run", path, "--out", str(out), "--env-label", "e", optimize=opt)
        assert proc.returncode == 0, proc.stderr[-2000:]
        recs = read_jsonl(out / "e.jsonl")
        assert all(r["env"]["optimize"] == (1 if opt else 0) for r in recs if r["env"])
        results[opt] = {r["case_key"]: (r["status"], (r.get("accuracy") or {}).get("passed")) for r in recs}
    assert results[False] == results[True]
    assert ("skipped", None) in results[True].values()
