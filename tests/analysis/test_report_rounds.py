"""``report.rounds``: what several rounds (records, one process each) of a case show together."""
import math
import statistics

import pandas as pd
import pytest

from harness.analysis.load import load_records
from harness.analysis.report.frame import prepare_frame
from tests.analysis.test_report_support import record, write_jsonl


def _prepared(tmp_path, recs):
    path = write_jsonl(str(tmp_path / "rounds.jsonl"), recs)
    return prepare_frame(load_records([path])[0])


def _day(d):
    return "2026-01-%02dT00:00:00Z" % d


def test_rounds_give_their_count_median_and_spread(tmp_path):
    medians = [0.010, 0.013, 0.011]
    df, notes = _prepared(tmp_path, [record(median_s=m, time_utc=_day(i + 1)) for i, m in enumerate(medians)] +
                          [record(model="single", median_s=0.02)])
    assert notes["superseded"] == 2
    row = df.set_index("model").loc["m"]
    assert row["median_s"] == 0.011  # the latest round is the record shown ...
    assert row["rounds"] == 3 and row["median_rounds_s"] == pytest.approx(0.011)  # ... its rounds' median beside it
    assert row["round_sd_log"] == pytest.approx(statistics.stdev(math.log(m) for m in medians))
    single = df.set_index("model").loc["single"]
    assert single["rounds"] == 1 and single["median_rounds_s"] == 0.02 and math.isnan(single["round_sd_log"])


def test_failed_rounds_are_no_rounds(tmp_path):
    df, _ = _prepared(tmp_path, [record(median_s=0.010, time_utc=_day(1)),
                                 record(status="crashed", reason="signal 11", time_utc=_day(2)),
                                 record(median_s=0.020, time_utc=_day(3))])
    row = df.iloc[0]
    assert row["rounds"] == 2 and row["median_rounds_s"] == pytest.approx(0.015)
    assert row["round_sd_log"] == pytest.approx(statistics.stdev([math.log(0.010), math.log(0.020)]))


def test_instruction_counts_of_the_first_round_reach_the_latest(tmp_path):
    # ``ab --instructions`` counts in the first round only; the report shows the latest round
    df, _ = _prepared(tmp_path, [record(model="a", instructions=1.185e8, time_utc=_day(1)),
                                 record(model="a", time_utc=_day(2)), record(model="a", time_utc=_day(3)),
                                 record(model="b", instr_status="unsupported", instr_reason="no valgrind",
                                        time_utc=_day(1)),
                                 record(model="b", time_utc=_day(2))])
    rows = df.set_index("model")
    assert rows.loc["a", "instr_status"] == "ok" and rows.loc["a", "instructions_per_iter"] == 1.185e8
    assert rows.loc["a", "instructions_spread"] == 1e-4
    assert rows.loc["b", "instr_status"] == "unsupported" and rows.loc["b", "instr_reason"] == "no valgrind"
    assert math.isnan(rows.loc["b", "instructions_per_iter"])


def test_a_round_keeps_its_own_instruction_pass_and_failures_take_none(tmp_path):
    df, _ = _prepared(tmp_path, [record(model="a", instructions=1e8, time_utc=_day(1)),
                                 record(model="a", instr_status="error", instr_reason="dump missing",
                                        time_utc=_day(2)),
                                 record(model="c", instructions=1e8, time_utc=_day(1)),
                                 record(model="c", status="crashed", reason="signal 11", time_utc=_day(2))])
    rows = df.set_index("model")
    # the latest pass failed: its status and reason stand, not the count of an earlier pass
    assert rows.loc["a", "instr_status"] == "error" and math.isnan(rows.loc["a", "instructions_per_iter"])
    # a crashed round has no step, so no count either
    assert rows.loc["c", "status"] == "crashed" and pd.isna(rows.loc["c", "instr_status"])


def test_timing_only_rounds_show_the_extras_of_the_round_that_ran_them(tmp_path):
    """The engine's rounds 2..R carry no accuracy, tensor peak or counts: the row shown (the latest round)
    takes them from round 1, and the other rounds are combined, not superseded."""
    from tests.analysis.report_synth import ENVS, write_synthetic_store

    paths = write_synthetic_store(str(tmp_path / "s"), envs=ENVS[-2:], devices=("cpu",), batches=(4,), n_sizes=1,
                                  checkpoints=("none",), rounds=3, engine=True, instructions=True, tensor_peaks=True,
                                  skipped_envs=(), failure_rate=0.0)
    raw = load_records(paths)[0]
    later = raw[raw["round"] > 1]
    assert later["acc_passed"].isna().all() and later["tensor_peak_bytes"].isna().all()  # as the engine writes them
    df, notes = prepare_frame(raw)
    assert notes["superseded"] == 0 and len(df) == len(raw) // 3
    ok = df[df["status"] == "ok"]
    assert (ok["round"] == 3).all() and not ok["round_extras"].astype(bool).any()
    assert ok["acc_passed"].notna().all() and ok["tensor_peak_bytes"].notna().all()
    counted = ok[ok["instr_status"] == "ok"]
    assert len(counted) and counted["instructions_per_iter"].notna().all()
    assert all(sorted(m) == [1, 2, 3] for m in ok["round_medians_s"])


def test_a_round_recorded_twice_is_superseded(tmp_path):
    def engine(median, index, day):
        rec = record(median_s=median, time_utc=_day(day))
        rec["round"] = {"index": index, "of": 2, "variants": ["a", "b"], "position": 0, "paired": True,
                        "extras": index == 1}
        return rec

    df, notes = _prepared(tmp_path, [engine(0.010, 1, 1), engine(0.012, 2, 2), engine(0.011, 2, 3)])
    assert notes["superseded"] == 1  # round 2 again (a resumed run): the later one stands
    assert df.iloc[0]["round_medians_s"] == {1: 0.010, 2: 0.011} and df.iloc[0]["rounds"] == 3
