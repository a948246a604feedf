"""Matching the sides (harness.analysis.gate.matching): environments, fields, counts, exit codes."""
from harness.analysis.gate import compare, count_verdicts, exit_code_for
from harness.vocab import VERDICT_KINDS, VERDICTS, ExitCode
from tests.analysis.gate_records import frames, make_record, only


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
    for v in compare(b, c, {}):
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
    assert exit_code_for([v("status", "new"), v("status", "vanished")]) == ExitCode.INPUT  # nothing compared
