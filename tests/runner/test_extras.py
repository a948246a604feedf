"""Extras never cost a measurement: an extra that hangs, crashes or raises after the timed samples
leaves the case ok with its timing and that extra's failure; references are made once per
model, mode, batch and size, and shared."""
import pytest

from harness.record.schema import Record
from harness.runner import execute, extras
from tests.runner.helpers import MISBEHAVING, read_jsonl, run_harness, write_scenario


def test_an_extra_that_hangs_or_crashes_keeps_the_measurement_and_records_its_failure(tmp_path):
    # 11 hangs under the profiler (the FLOPs count's step, the tensor peak's first profiled session), 12
    # segfaults there; 8 is healthy
    path = write_scenario(tmp_path, MISBEHAVING % "11, 12, 8", timeout=60,
                          extra="extra_timeout_s = 6\n")
    out = tmp_path / "out"
    proc = run_harness("run", path, "--out", str(out), "--env-label", "e")
    assert proc.returncode == 0, proc.stderr[-2000:]
    by_size = {r["case"]["size"]: r for r in read_jsonl(out / "e.jsonl")}
    for size in (11, 12, 8):
        rec = by_size[size]
        assert rec["status"] == "ok", rec
        assert len(rec["timing"]["samples_s"]) == 3 and rec["timing"]["median_s"] > 0
        assert rec["memory"]["peak_bytes"] is not None
        Record.from_dict(rec, strict=True)
    hung = by_size[11]["extras"]["failed"]
    assert list(hung) == [extras.FLOPS] and "overran its 6 s" in hung[extras.FLOPS], hung
    crashed = by_size[12]["extras"]["failed"]
    assert list(crashed) == [extras.FLOPS] and "SIGSEGV" in crashed[extras.FLOPS], crashed
    for size in (11, 12):  # nothing after the lost extra: no tensor peak, no accuracy, no FLOPs
        rec = by_size[size]
        assert rec.get("accuracy") is None and rec.get("flops") is None
        assert rec["memory"].get("tensor_peak_bytes") is None
    healthy = by_size[8]
    assert healthy["extras"]["failed"] == {} and healthy["accuracy"]["passed"] is True
    assert set(healthy["extras"]["seconds"]) >= {extras.FLOPS, extras.TENSOR_PEAK, extras.CHECKS, extras.REFERENCES}
    assert healthy["flops"]["per_iter"] > 0 and healthy["memory"]["tensor_peak_bytes"] > 0
    assert "extras failed: flops: overran its 6 s" in proc.stdout
    assert "ok 3" in proc.stdout  # the summary counts all three as ok


CASE = dict(model="cbam_classifier_tiny", mode="train", batch_size=2, size=17, precision="fp32",
            checkpoint="none", device="cpu")
SETTINGS = {"measure": {"warmup_iters": 1, "warmup_s": 0.0, "min_sample_s": 0.002, "samples": 2,
                        "case_budget_s": 1.0, "seed": 0, "speed_probe": False, "flops": False},
            "tolerance": {"fp64_multiple": 10.0, "fp16_range_factor": 4.0, "tensor_factor": 10.0}}


def test_references_are_shared_by_the_cases_of_one_key_and_the_verdict_does_not_move():
    execute.SHARED_REFERENCES.clear()
    alone = execute.run_case(dict(CASE, checkpoint="reentrant"), SETTINGS)
    assert alone["status"] == "ok" and alone["accuracy"]["reference_shared"] is False
    execute.SHARED_REFERENCES.clear()
    first = execute.run_case(dict(CASE), SETTINGS)
    shared = execute.run_case(dict(CASE, checkpoint="reentrant"), SETTINGS)
    other_batch = execute.run_case(dict(CASE, batch_size=3), SETTINGS)
    assert first["accuracy"]["reference_shared"] is False
    assert shared["accuracy"]["reference_shared"] is True
    assert other_batch["accuracy"]["reference_shared"] is False  # another key: made anew
    # the shared references judge exactly as the case's own did (the same accuracy part to the bit)
    same = {k: v for k, v in shared["accuracy"].items() if k != "reference_shared"}
    assert same == {k: v for k, v in alone["accuracy"].items() if k != "reference_shared"}
    assert shared["extras"]["seconds"][extras.REFERENCES] < first["extras"]["seconds"][extras.REFERENCES]


def test_an_extra_that_raises_is_its_failure_and_the_next_one_runs():
    seen = []

    def send(msg):
        seen.append(msg)

    ran = extras.Extras(send, lambda exc: "%s: %s" % (type(exc).__name__, exc))
    ran.measured({"status": "ok"})
    with ran.run(extras.FLOPS):
        raise ValueError("no counter")
    with ran.run(extras.CHECKS):
        pass
    assert ran.part()["failed"] == {extras.FLOPS: "ValueError: no counter"}
    assert set(ran.part()["seconds"]) == {extras.FLOPS, extras.CHECKS}
    assert seen == [{"partial": {"status": "ok"}}, {"extra": extras.FLOPS}, {"extra": extras.CHECKS}]
    with pytest.raises(ValueError, match="unknown extra"):
        with ran.run("coffee"):
            pass
