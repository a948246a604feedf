"""Matching the sides (harness.analysis.gate.matching): environments, fields, counts, exit codes."""
from harness.analysis.gate import compare, count_verdicts, exit_code_for
from harness.vocab import VERDICT_KINDS, VERDICTS, ExitCode
from tests.analysis.gate_records import SAMPLES, frames, make_record, only


def test_different_environments_are_not_comparable_never_compared(tmp_path):
    b, c = frames([make_record(torch_v="2.1.2", samples=[0.01] * 30)],
                  [make_record(torch_v="2.2.0", samples=[0.03] * 30)], tmp_path)
    verdicts = compare(b, c, {})
    assert len(verdicts) == 1
    v = verdicts[0]
    assert v["verdict"] == "not_comparable" and "torch 2.1.2 → 2.2.0" in v["reason"]
    assert exit_code_for(verdicts) == ExitCode.INPUT


def test_matching_ignores_env_label_but_not_fingerprint(tmp_path):
    """A/B stores label their sides base/head: same environment, still compared."""
    b, c = frames([make_record(label="base")], [make_record(label="head")], tmp_path)
    v = only(compare(b, c, {}), "status")
    assert v["verdict"] == "unchanged" and v["env_label"] == "head" and v["baseline_env_label"] == "base"


def test_verdicts_have_the_documented_fields(tmp_path):
    b, c = frames([make_record()], [make_record()], tmp_path)
    verdicts = compare(b, c, {})
    # one verdict of every kind a plain pair gets: never an empty loop
    assert {v["kind"] for v in verdicts} == set(VERDICT_KINDS)
    for v in verdicts:
        for field in ("case_key", "model", "env_fingerprint", "env_label", "kind", "verdict", "baseline",
                      "candidate", "ratio", "p_value", "q_value", "reason"):
            assert field in v
        assert v["kind"] in VERDICT_KINDS and v["verdict"] in VERDICTS


def test_counts_and_exit_code():
    def v(kind, verdict):
        return {"kind": kind, "verdict": verdict}
    verdicts = [v("status", "unchanged"), v("time", "improved"), v("memory", "unchanged")]
    counts = count_verdicts(verdicts)
    assert set(counts) == set(VERDICT_KINDS) and all(set(c) == set(VERDICTS) for c in counts.values())
    assert counts["time"]["improved"] == 1 and counts["accuracy"]["regressed"] == 0
    assert exit_code_for(verdicts) == ExitCode.OK
    assert exit_code_for(verdicts + [v("accuracy", "regressed")]) == ExitCode.FAILURE
    assert exit_code_for(verdicts + [v("time", "lost")]) == ExitCode.FAILURE  # evidence lost fails too
    assert exit_code_for([v("status", "new"), v("status", "vanished")]) == ExitCode.INPUT  # nothing compared


def test_nan_or_infinity_makes_that_kind_not_comparable_and_says_where(tmp_path):
    nan_samples = make_record(batch_size=1)
    nan_samples["timing"]["samples_s"][3] = float("nan")
    inf_peak = make_record(batch_size=2, peak_bytes=float("inf"))
    nan_median = make_record(batch_size=3)
    nan_median["timing"]["median_s"] = float("nan")
    base = [make_record(batch_size=i) for i in (1, 2, 3)]
    b, c = frames(base, [nan_samples, inf_peak, nan_median], tmp_path)
    verdicts = compare(b, c, SAMPLES)
    bad = {(v["case_key"].split(";")[2], v["kind"]): v for v in verdicts if v["verdict"] == "not_comparable"}
    assert set(bad) == {("batch=1", "time"), ("batch=2", "memory"), ("batch=3", "time")}
    assert bad[("batch=1", "time")]["reason"].startswith("candidate holds NaN or Infinity: samples_s at ")
    assert bad[("batch=1", "time")]["reason"].endswith("c.jsonl:1")
    assert "peak_mem_bytes" in bad[("batch=2", "memory")]["reason"]
    # the other kinds of those cases are still judged, and the count says it
    assert {v["kind"] for v in verdicts if v["case_key"].endswith("batch=2") or ";batch=2;" in v["case_key"]} >= {
        "status", "time", "memory"}
    assert count_verdicts(verdicts)["time"]["not_comparable"] == 2
