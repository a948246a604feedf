"""The harness flags each fault twin of the zoo, and passes its healthy model.

Runs scenarios/faults.toml (a subset, for time) through the real runner.
"""
import json
import subprocess
import sys

import pytest

from tests.runner.helpers import ROOT, read_jsonl, run_harness


@pytest.fixture(scope="module")
def fault_records(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults")
    proc = run_harness("run", "faults", "--out", str(out), "--env-label", "e",
                       "--only", "model=mswr_net*,attention_*,hsifusion*", "--only", "mode=train")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {(r["case"]["model"], r["case"]["precision"], r["case"]["checkpoint"], r["case"]["size"]): r
            for r in read_jsonl(out / "e.jsonl")}


def test_dropped_checkpoint_gradients_fail_fidelity(fault_records):
    twin = fault_records[("mswr_net_legacy_ckpt_tiny", "fp32", "reentrant", 32)]
    healthy = fault_records[("mswr_net_tiny", "fp32", "reentrant", 32)]
    assert twin["status"] == "ok" and not twin["accuracy"]["passed"]
    assert twin["accuracy"]["grads"]["missing"] > 0
    assert any("got no gradient" in f for f in twin["accuracy"]["failures"])
    assert healthy["status"] == "ok" and healthy["accuracy"]["passed"]
    # Without checkpointing the twin is the healthy model: only the checkpoint mode is at fault.
    assert fault_records[("mswr_net_legacy_ckpt_tiny", "fp32", "none", 32)]["accuracy"]["passed"]


def test_uncast_mask_breaks_bf16_but_the_healthy_variant_runs(fault_records):
    twin = fault_records[("attention_mask_dtype_fault_tiny", "bf16", "none", 32)]
    healthy = fault_records[("attention_gqa_tiny", "bf16", "none", 32)]
    assert twin["status"] == "error"
    assert "dtype" in twin["reason"].lower() or "scalar type" in twin["reason"]
    assert healthy["status"] in ("ok", "unsupported")
    if healthy["status"] == "ok":
        assert healthy["accuracy"]["passed"]


@pytest.mark.parametrize("size", [17, 31])
def test_prime_sides_break_the_legacy_factor_pair(fault_records, size):
    twin = fault_records[("hsifusion_prime_fault_tiny", "fp32", "none", size)]
    healthy = fault_records[("hsifusion_tiny", "fp32", "none", size)]
    assert twin["status"] == "error" and "RuntimeError" in twin["reason"]
    assert healthy["status"] == "ok" and healthy["accuracy"]["passed"]


CASE_AT_SIZE_0 = """
import json
from harness import scenario
from harness.runner import execute
settings = {"measure": scenario.MEASURE_DEFAULTS, "tolerance": scenario.TOLERANCE_DEFAULTS}
out = {}
for model in ("sharp_tiny", "sharp_assert_fault_tiny"):
    case = dict(model=model, mode="train", batch_size=1, size=0, precision="fp32", checkpoint="none", device="cpu")
    r = execute.run_case(case, settings)
    out[model] = [r["status"], r["reason"]]
print(json.dumps(out))
"""


def _size_0_results(optimize):
    cmd = [sys.executable] + (["-O"] if optimize else []) + ["-c", CASE_AT_SIZE_0]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_assert_validation_is_flagged_and_vanishes_under_O():
    plain, optimized = _size_0_results(False), _size_0_results(True)
    # The healthy model rejects size 0 with ValueError, with or without -O.
    for results in (plain, optimized):
        assert results["sharp_tiny"][0] == "error" and results["sharp_tiny"][1].startswith("ValueError")
    # The twin's rejection is an assert, which the record names as the fault ...
    assert "validation by assert" in plain["sharp_assert_fault_tiny"][1]
    # ... and which python -O removes: the bad input is no longer rejected that way.
    assert "validation by assert" not in (optimized["sharp_assert_fault_tiny"][1] or "")
