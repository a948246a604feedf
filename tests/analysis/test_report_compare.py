"""``report.compare``: candidate records against baseline records, and the gate's verdicts."""
import pytest

from harness.analysis.load import InputError, load_records
from harness.analysis.report import compare
from harness.analysis.report.frame import prepare_frame
from tests.analysis.test_report_support import record, write_jsonl


def _prepared(path, recs):
    write_jsonl(path, recs)
    return prepare_frame(load_records([path])[0])[0]


def test_baseline_comparison_gives_ratios_and_status_changes(tmp_path):
    bdf = _prepared(str(tmp_path / "base" / "torch-2.1.jsonl"), [
        record(model="a", median_s=0.010), record(model="b", median_s=0.010), record(model="c", median_s=0.010),
        record(model="gone")])
    cdf = _prepared(str(tmp_path / "cand" / "torch-2.1.jsonl"), [
        record(model="a", median_s=0.015, peak=2000), record(model="b", median_s=0.010),
        record(model="c", status="error", reason="boom"), record(model="new")])
    comp = compare.compare_with_baseline(cdf, bdf)
    by_model = comp.set_index("model")
    assert by_model.loc["a", "time_ratio"] == pytest.approx(1.5) and by_model.loc["a", "mem_ratio"] == 2.0
    assert by_model.loc["a", "change"] == "slower" and by_model.loc["b", "change"] == "same"
    assert by_model.loc["c", "change"] == "status"
    assert by_model.loc["gone", "change"] == "vanished" and by_model.loc["new", "change"] == "new"
    (summary,) = compare.baseline_summary(comp, ["torch-2.1"])
    assert summary["env"] == "torch-2.1" and summary["timed"] == 2 and summary["slower"] == 1
    assert summary["broke"] == 1 and summary["new"] == 1 and summary["vanished"] == 1
    assert summary["time"] == pytest.approx(1.5 ** 0.5)


def test_verdicts_are_validated_and_named(tmp_path):
    cdf = _prepared(str(tmp_path / "torch-2.1.jsonl"), [record(model="a")])
    rec = cdf.iloc[0]
    verdicts = [{"case_key": rec["case_key"], "env_fingerprint": rec["env_fingerprint"], "kind": "time",
                 "verdict": "regressed", "baseline": 0.01, "candidate": 0.02, "ratio": 2.0},
                {"case_key": "x", "env_fingerprint": "y", "kind": "status", "verdict": "vanished",
                 "baseline": "ok", "candidate": None}]
    frame = compare.verdicts_frame(verdicts, cdf)
    assert frame.loc[0, "model"] == "a" and frame.loc[0, "env_label"] == "torch-2.1"
    assert frame.loc[1, "env_label"] == "y" and frame.loc[1, "model"] == "?"
    counts = compare.verdict_counts(frame)
    assert list(counts.index) == ["status", "time"]  # the vocabulary's order of kinds
    assert counts.loc["time", "regressed"] == 1 and counts.loc["status", "vanished"] == 1
    with pytest.raises(InputError, match="verdict 1 has no kind"):
        compare.verdicts_frame([verdicts[0], {"case_key": "x", "env_fingerprint": "y", "verdict": "new"}])
    with pytest.raises(InputError, match="verdict 0: verdict 'worse' is not one of"):
        compare.verdicts_frame([dict(verdicts[0], verdict="worse")])
    with pytest.raises(InputError, match="must be a list"):
        compare.verdicts_frame({"a": 1})
