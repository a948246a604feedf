"""``report.frame``: the prepared frame, torch version order, the words taken from ``harness.vocab``."""
import pytest

from harness.analysis.load import load_records
from harness.analysis.report import frame as fr
from harness.vocab import CASE_AXES, NOT_RUN_STATUSES, STATUSES
from tests.analysis.test_report_support import calibrated, record, write_jsonl


def test_parse_torch_version_orders_releases():
    order = ["garbage", "1.9.1", "1.10.2+cu102", "1.13.1", "2.0.1+cu117", "2.1.0a0+git1234", "2.1.0", "2.1.2",
             "2.13.0+cpu"]
    assert sorted(order, key=fr.parse_torch_version) == order
    assert fr.parse_torch_version(None) == (-1,)
    assert fr.parse_torch_version("2.2.0.dev20231010+cpu") < fr.parse_torch_version("2.2.0")


def test_status_order_is_every_status_of_the_vocabulary_best_first():
    assert sorted(fr.STATUS_ORDER) == sorted(STATUSES)
    assert fr.STATUS_ORDER[0] == "ok" and fr.STATUS_ORDER[1:1 + len(NOT_RUN_STATUSES)] == tuple(NOT_RUN_STATUSES)
    assert fr.STATUS_ORDER[-1] == "crashed"


def test_case_columns_follow_the_case_axes():
    assert fr.CASE_COLUMNS == ("model", "mode", "batch_size", "size_label", "precision", "checkpoint", "device",
                               "opts")
    assert len(CASE_AXES) == len(fr.CASE_COLUMNS) + 3  # the four optional axes share ``opts``
    assert "precision" not in fr.PROBE_COLUMNS and "checkpoint" not in fr.PROBE_COLUMNS
    assert set(fr.PROBE_COLUMNS) < set(fr.CASE_COLUMNS) <= set(fr.KEEP_COLUMNS)


def test_latest_record_per_case_and_env_wins_and_two_machines_stay_apart(tmp_path):
    recs = [record(median_s=0.5, time_utc="2026-01-01T00:00:00Z"),
            record(median_s=0.1, time_utc="2026-01-02T00:00:00Z")]
    write_jsonl(str(tmp_path / "a.jsonl"), recs)
    raw, _ = load_records([str(tmp_path / "a.jsonl")])
    df, notes = fr.prepare_frame(raw)
    assert len(df) == 1 and notes["superseded"] == 1 and df["median_s"].iloc[0] == 0.1
    # the same label and case from two machines (fingerprints) are two environments
    write_jsonl(str(tmp_path / "b.jsonl"), [record(median_s=0.2, fingerprint="machine-b")])
    raw, _ = load_records([str(tmp_path / "b.jsonl"), str(tmp_path / "a.jsonl")])
    df, notes = fr.prepare_frame(raw)
    assert len(notes["env_order"]) == 2
    assert all(e.startswith("torch-2.1 @") for e in notes["env_order"])


def test_prepared_columns_orders_and_labels(tmp_path):
    recs = [record(model="a", env="torch-2.1", torch_v="2.1.2", precision="bf16", size=[64, 32]),
            record(model="a", env="torch-1.10", torch_v="1.10.2", precision="fp32", mode="eval", rel_err=3e-6),
            record(model="b", env="torch-1.10", torch_v="1.10.2", status="error",
                   reason="Traceback (most recent call last):\n  File \"x\"\nValueError: bad shape")]
    write_jsonl(str(tmp_path / "a.jsonl"), recs)
    df, notes = fr.prepare_frame(load_records([str(tmp_path / "a.jsonl")])[0])
    assert notes["env_order"] == ["torch-1.10", "torch-2.1"]
    assert notes["precision_order"] == ["fp32", "bf16"] and notes["mode_order"] == ["train", "eval"]
    assert set(df["size_label"]) == {"64x32", "32"} and set(df["opts"]) == {"-"}
    assert df.loc[df["model"] == "b", "reason_short"].iloc[0] == "ValueError: bad shape"
    # a non-square size written as the scenario spells it is labelled so
    assert fr.prepare_frame(load_records([write_jsonl(str(tmp_path / "b.jsonl"), [
        record(size="48x32")])])[0])[0]["size_label"].tolist() == ["48x32"]
    assert df.loc[df["mode"] == "eval", "err_over_tol"].iloc[0] == pytest.approx(0.3)
    assert list(df.columns[:len(fr.KEEP_COLUMNS) - 2]) == [c for c in fr.KEEP_COLUMNS if c in df.columns][
        :len(fr.KEEP_COLUMNS) - 2]


def test_reason_group_ignores_numbers():
    assert fr.reason_group("Tried to allocate 2.00 GiB") == fr.reason_group("Tried to allocate 4.5 GiB")
    assert fr.short_reason("first line\nsecond") == "first line"


def test_records_of_another_scenario_are_kept_apart_not_superseded(tmp_path):
    older = record(median_s=0.5, time_utc="2026-01-01T00:00:00Z")
    other = dict(record(median_s=0.1, time_utc="2026-01-02T00:00:00Z"), scenario="other")
    write_jsonl(str(tmp_path / "a.jsonl"), [older, other])
    raw, _ = load_records([str(tmp_path / "a.jsonl")])
    df, notes = fr.prepare_frame(raw)
    assert len(df) == 2 and notes["superseded"] == 0 and notes["scenarios"] == ["other", "unit"]
    assert sorted(notes["env_order"]) == ["torch-2.1 \u00b7 other", "torch-2.1 \u00b7 unit"]


def test_the_report_says_on_the_terminal_when_scenarios_differ(tmp_path):
    from harness.analysis.report import build_report

    write_jsonl(str(tmp_path / "a.jsonl"), [record(), dict(record(), scenario="other")])
    info = build_report([str(tmp_path / "a.jsonl")], str(tmp_path / "r" / "index.html"))
    assert info["records"] == 2 and info["superseded"] == 0
    assert any("records of 2 scenarios (other, unit)" in p for p in info["problems"])


def test_accuracy_rule_and_score_per_record(tmp_path):
    """The score is the error as a fraction of what the record's rule allows: ratio / limit under the
    fp64-calibrated rule, error / tolerance under a fixed one (old records are lifted to it)."""
    recs = [record(model="new", accuracy=calibrated(3.0, limit=10.0)),
            record(model="old", schema=1, rel_err=5e-6, tol=1e-5),
            record(model="unnamed", rel_err=2e-6, tol=1e-5),  # schema 2 naming no rule, no ratio: fixed
            record(model="bad", status="error", reason="boom")]
    write_jsonl(str(tmp_path / "a.jsonl"), recs)
    df = fr.prepare_frame(load_records([str(tmp_path / "a.jsonl")])[0])[0].set_index("model")
    assert df.loc["new", "acc_rule"] == fr.RULE_CALIBRATED and df.loc["new", "acc_score"] == pytest.approx(0.3)
    assert df.loc["old", "acc_rule"] == fr.RULE_FIXED and df.loc["old", "acc_score"] == pytest.approx(0.5)
    assert df.loc["unnamed", "acc_rule"] == fr.RULE_FIXED and df.loc["unnamed", "acc_score"] == pytest.approx(0.2)
    assert df.loc["bad", "acc_rule"] is None and df.loc["bad", "acc_score"] != df.loc["bad", "acc_score"]


def test_the_optional_axes_label_opts_and_old_records_show_a_dash(tmp_path):
    flash_O, cl, old = record(model="a"), record(model="b"), record(model="c")
    flash_O["case"].update(sdpa_backend="flash", python_optimized=True)
    cl["case"].update(channels_last=True, sdpa_backend="default", python_optimized=False)
    write_jsonl(str(tmp_path / "a.jsonl"), [flash_O, cl, old])
    df, _ = fr.prepare_frame(load_records([str(tmp_path / "a.jsonl")])[0])
    assert dict(zip(df["model"], df["opts"])) == {"a": "sdpa=flash+python -O", "b": "channels_last", "c": "-"}
