"""``report.aggregate``: the numbers the sections and figures show, on a synthetic store with planted effects."""

import pandas as pd
import pytest

from harness.analysis.report import aggregate as agg
from harness.analysis.report import drift as dr
from tests.analysis.test_report_support import (
    fidelity_records,
    prepared_records,
    prepared_small_store,
    record,
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepared_small_store(str(tmp_path_factory.mktemp("store")))


_frame = prepared_records


def test_status_counts_and_reasons_per_model_and_env(tmp_path):
    df = _frame(tmp_path, [record(model="a"), record(model="a", batch=16),
                           record(model="a", batch=32, status="unsupported", reason="no bf16 here"),
                           record(model="a", env="torch-1.10", torch_v="1.10.2", status="crashed",
                                  reason="signal 11")])
    counts = agg.status_counts(df, ["model", "env"])
    assert counts.loc[("a", "torch-2.1"), "ok"] == 2
    assert counts.loc[("a", "torch-2.1"), "unsupported"] == 1
    assert counts.loc[("a", "torch-1.10"), "crashed"] == 1
    reasons = agg.top_reasons(df, ["model", "env"])
    assert reasons[("a", "torch-2.1")] == [("unsupported", "no bf16 here", 1)]
    why = agg.reasons_by_model(df, ["torch-1.10", "torch-2.1"])
    assert why["a"][0] == {"status": "unsupported", "n": 1, "envs": ["torch-2.1"], "reason_short": "no bf16 here"}


def test_speed_relative_to_reference_finds_the_planted_regression(prepared):
    df, _ = prepared
    ratios = agg.ratios_vs_reference(df, "torch-latest")
    table = agg.geomean_table(ratios, "speed_ratio", ["model", "env"])
    # graph_vae runs at 0.7 x on torch-2.1; torch-2.1 is 1.12 and latest 1.15 as fast otherwise
    assert table.loc[("graph_vae", "torch-2.1"), "geomean"] == pytest.approx(0.7 * 1.12 / 1.15, rel=0.04)
    assert table.loc[("cbam_classifier_tiny", "torch-2.1"), "geomean"] == pytest.approx(1.12 / 1.15, rel=0.04)
    assert table.loc[("graph_vae", "torch-latest"), "geomean"] == pytest.approx(1.0)
    mem = agg.geomean_table(ratios, "mem_ratio", ["env"])
    assert mem["geomean"].tolist() == pytest.approx([1.0] * len(mem))


def test_env_summary_per_environment(prepared):
    df, notes = prepared
    summary = agg.env_summary(df, notes["env_order"], agg.ratios_vs_reference(df, "torch-latest"),
                              dr.drift_table(df, "torch-latest"))
    assert list(summary) == notes["env_order"]
    assert summary["torch-2.1"]["speed"][0] == pytest.approx(1.12 / 1.15 * 0.7 ** (1 / 6), rel=0.03)  # graph_vae
    assert summary["torch-2.1"]["drift_max"] > 1e-3  # planted on mswr_net_v2
    assert summary["torch-latest"]["drift_max"] == 0.0
    assert sum(summary["torch-1.10"]["counts"].values()) == len(df[df["env"] == "torch-1.10"])


def test_checkpoint_tradeoff_pairs_each_case_with_its_unchekpointed_twin(prepared):
    df, _ = prepared
    trade = agg.checkpoint_tradeoff(df).set_index(["model", "checkpoint"])
    # synthetic: reentrant keeps 45% of memory at 1.35x time, non-reentrant 50% at 1.28x
    row = trade.loc[("graph_vae", "reentrant")]
    assert row["mem_saved"] == pytest.approx(0.55, abs=0.01)
    assert row["time_cost"] == pytest.approx(0.35, abs=0.05)
    assert trade.loc[("graph_vae", "non_reentrant"), "mem_saved"] == pytest.approx(0.5, abs=0.01)
    assert "torch-1.10" not in trade.loc[("graph_vae", "non_reentrant"), "by_env"]  # unsupported on 1.10


def test_task_results_name_the_case(prepared):
    df, _ = prepared
    tasks = agg.task_results(df)
    assert len(tasks) and (tasks["status"] == "ok").all() and tasks["task_metric"].notna().all()
    assert tasks["case"].str.fullmatch(r"train fp32 bs 8 size \S+ ckpt none").all()


def test_fidelity_counts_failures_against_tolerance(prepared):
    df, _ = prepared
    fid = agg.fidelity_table(df, ["precision", "model"]).set_index(["precision", "model"])
    assert fid.loc[("fp16", "colorization_paper"), "failed"] > 0  # planted: error 1.5-4x tolerance
    assert fid.loc[("fp16", "colorization_paper"), "worst"] > 1.5
    assert fid.loc[("fp32", "graph_vae"), "worst"] < fid.loc[("fp16", "colorization_paper"), "worst"]


def test_failure_groups_ignore_numbers_and_order_by_severity(tmp_path):
    recs = [record(model="a", batch=b, status="oom", reason="CUDA out of memory. Tried to allocate %.2f GiB" % g)
            for b, g in ((1, 2.0), (2, 4.5), (4, 1.25))]
    recs += [record(model="b", status="crashed", reason="worker died: signal 11 (SIGSEGV)"),
             record(model="c", status="error", reason='Traceback (most recent call last):\n  File "x", line 1\n'
                                                      "ValueError: shapes differ"),
             record(model="d", passed=False, rel_err=1e-3),
             record(model="e", status="unsupported", reason="no")]
    leaky = record(model="f")
    leaky["checks"] = {"ran": ["leak"], "failed": ["leak"], "reasons": ["leak: 8 tensor bytes more live"]}
    recs.append(leaky)
    groups = agg.failure_groups(_frame(tmp_path, recs))
    assert [g["status"] for g in groups] == ["crashed", "error", "oom", "accuracy", "check", "unsupported"]
    assert groups[4]["reason"] == "leak: 8 tensor bytes more live" and groups[4]["models"] == ["f"]
    assert groups[2]["count"] == 3 and groups[2]["models"] == ["a"]
    assert groups[1]["reason"] == "ValueError: shapes differ"  # the exception line of the traceback
    assert "Traceback" in groups[1]["full"]
    assert "100x" in groups[3]["reason"]
    assert agg.FAILURE_SEVERITY == ("crashed", "error", "oom", "timeout", "accuracy", "check", "unsupported",
                                    "skipped")


def test_default_slice_and_x_axis(prepared, tmp_path):
    df, _ = prepared
    assert agg.default_slice(df) == {"mode": "train", "precision": "fp32", "checkpoint": "none", "device": "cpu",
                                     "opts": "-"}
    assert agg.default_x_axis(df) == "batch_size"
    # one batch size and one size per model (today's default scenario): the charts start across environments
    one = _frame(tmp_path, [record(model="a", size=32), record(model="b", size=64),
                            record(model="a", size=32, env="torch-1.10", torch_v="1.10.2")])
    assert agg.default_x_axis(one) == "env"


def test_release_series_picks_one_case_per_model(prepared):
    df, notes = prepared
    series = agg.release_series(df, agg.default_slice(df))
    assert sorted(series["model"].unique()) == sorted(df["model"].unique())
    per_model = series.groupby("model")[["batch_size", "size_label"]].nunique()
    assert (per_model == 1).all().all()  # one case per model
    assert list(series["env"].cat.categories) == notes["env_order"]
    graph = series[series["model"] == "graph_vae"].set_index("env")["median_s"]
    assert graph["torch-2.1"] / graph["torch-latest"] == pytest.approx(1.15 / (1.12 * 0.7), rel=0.1)
    assert agg.release_series(df, dict(agg.default_slice(df), precision="nope")).empty


def test_checkpoint_tradeoff_rests_on_tensor_peaks_and_counts_where_both_twins_have_them(tmp_path):
    """The process peaks say checkpointing saves nothing (both 1000 bytes, MiB-granular noise on
    the CPU); the exact tensor peaks say 40%, the counts +25% work: those are what the row shows."""
    df = _frame(tmp_path, [
        record(model="a", checkpoint="none", peak=1000, tensor_peak=10_000, instructions=8e6, median_s=0.01),
        record(model="a", checkpoint="reentrant", peak=1000, tensor_peak=6_000, instructions=10e6, median_s=0.02),
        record(model="b", checkpoint="none", peak=1000, median_s=0.01),
        record(model="b", checkpoint="reentrant", peak=800, median_s=0.02)])
    trade = agg.checkpoint_tradeoff(df).set_index(["model", "checkpoint"])
    exact = trade.loc[("a", "reentrant")]
    assert exact["mem_saved"] == pytest.approx(0.4) and exact["time_cost"] == pytest.approx(0.25)
    assert exact["mem_basis"] == "tensor peak" and exact["time_basis"] == "instructions"
    plain = trade.loc[("b", "reentrant")]
    assert plain["mem_saved"] == pytest.approx(0.2) and plain["time_cost"] == pytest.approx(1.0)
    assert plain["mem_basis"] == "process peak" and plain["time_basis"] == "wall time"


def test_fidelity_reports_the_ratio_to_the_expected_error_and_the_fixed_tolerance_apart(tmp_path):
    fid = agg.fidelity_table(_frame(tmp_path, fidelity_records()), ["precision", "env"])
    fid = fid.assign(env=fid["env"].astype(str)).set_index(["precision", "env", "rule"])
    cal = fid.loc[("bf16", "torch-2.1", "fp64-calibrated")]
    assert (cal["n"], cal["failed"]) == (2, 1)  # failures counted as before: acc_passed false
    assert cal["worst"] == 31.0 and cal["limit"] == 10.0 and cal["score"] == pytest.approx(3.1)
    assert cal["median"] == pytest.approx(16.5)
    assert (cal["worst_model"], cal["worst_mode"], cal["worst_checkpoint"], cal["worst_where"]) == (
        "a", "train", "reentrant", "grads: stem.1.weight")
    override = fid.loc[("bf16", "torch-2.1", "fixed tolerance")]  # a scenario's fixed tolerance, same cell
    assert override["n"] == 1 and override["worst"] == pytest.approx(0.1) and override["limit"] == 1.0
    assert fid.loc[("fp32", "torch-2.1", "fp64-calibrated"), "worst"] == pytest.approx(1.2)
    lifted = fid.loc[("fp32", "torch-1.10", "fixed tolerance")]
    assert lifted["worst"] == pytest.approx(0.5) and lifted["score"] == pytest.approx(0.5)
    assert lifted["tolerance"] == 1e-5 and lifted["worst_where"] == ""
    failing = fid.loc[("bf16", "torch-1.10", "fixed tolerance")]
    assert failing["failed"] == 1 and failing["worst"] == pytest.approx(2.0)
    assert len(fid) == 5


def test_failure_groups_word_an_accuracy_failure_by_its_rule(tmp_path):
    groups = agg.failure_groups(_frame(tmp_path, fidelity_records()))
    reasons = sorted(g["reason"] for g in groups if g["status"] == "accuracy")
    assert reasons == ["accuracy failed: error up to 31x expected (limit 10x) in grads at bf16",
                       "accuracy failed: error/tolerance up to 2x at bf16 (fixed tolerance)"]


def test_release_series_draws_memory_on_the_tensor_peak_where_every_release_carries_it(tmp_path):
    old = dict(env="torch-1.10", torch_v="1.10.2")
    df = _frame(tmp_path, [record(model="a", peak=50 * 2 ** 20, tensor_peak=4000),
                           record(model="a", peak=60 * 2 ** 20, tensor_peak=5000, **old),
                           record(model="b", peak=70 * 2 ** 20, tensor_peak=3000),
                           record(model="b", peak=80 * 2 ** 20, **old)])
    series = agg.release_series(df, agg.default_slice(df)).set_index(["model", "env"])
    assert series.loc["a", "mem_basis"].tolist() == ["tensor peak"] * 2
    assert series.loc[("a", "torch-1.10"), "mem_value"] == 5000
    assert series.loc[("a", "torch-1.10"), "peak_mem_bytes"] == 60 * 2 ** 20  # the process peak beside it
    assert series.loc["b", "mem_basis"].tolist() == ["process peak"] * 2  # one release lacks the tensor peak
    assert series.loc[("b", "torch-1.10"), "mem_value"] == 80 * 2 ** 20


def test_release_series_times_over_rounds_with_an_interval_else_one_run(tmp_path):
    rounds = [record(model="a", median_s=m, time_utc="2026-01-0%dT00:00:00Z" % (k + 1))
              for k, m in enumerate((0.010, 0.012, 0.011))]
    df = _frame(tmp_path, rounds + [record(model="b", median_s=0.02)])
    series = agg.release_series(df, agg.default_slice(df)).set_index("model")
    a, b = series.loc["a"], series.loc["b"]
    assert a["time_s"] == pytest.approx(0.011) and a["time_lo_s"] < 0.011 < a["time_hi_s"]
    assert b["time_s"] == 0.02 and b[["time_lo_s", "time_hi_s"]].isna().all()  # one run: no interval


def test_accuracy_apart_lists_the_unjudged_and_the_passes_with_a_large_error():
    from harness.analysis.report.frame import RULE_CALIBRATED, RULE_FIXED
    from harness.measures import LARGE_ERROR_FRAC

    rows = [  # (case_key, status, rule, passed, out_err64, grad_err64)
        ("unjudged", "ok", RULE_CALIBRATED, None, 0.02, 0.42),
        ("warned", "ok", RULE_CALIBRATED, True, 0.03, 0.28),
        ("warned_outputs", "ok", RULE_CALIBRATED, True, 0.6, None),  # eval: no gradients
        ("at_the_bound", "ok", RULE_CALIBRATED, True, 0.01, LARGE_ERROR_FRAC),
        ("close", "ok", RULE_CALIBRATED, True, 0.001, 0.01),
        ("failed", "ok", RULE_CALIBRATED, False, 0.9, 0.9),  # a failure, listed with the failures instead
        ("fixed", "ok", RULE_FIXED, True, 0.9, 0.9),  # no float64 reference under the fixed rule
        ("crashed", "error", None, None, None, None),
    ]
    df = pd.DataFrame([{"case_key": k, "status": s, "acc_rule": rule, "acc_passed": passed, "out_err64": o,
                        "grad_err64": g, "env": "torch-x", "model": "m", "precision": "bf16", "mode": "train",
                        "checkpoint": "none", "out_expected_err": 0.01, "grad_expected_err": 0.3, "acc_ratio": 1.0,
                        "acc_limit": 10.0} for k, s, rule, passed, o, g in rows])
    not_judged, large = agg.accuracy_apart(df)
    assert list(not_judged["case_key"]) == ["unjudged"]
    assert list(large["case_key"]) == ["warned_outputs", "warned"]  # largest error first
    assert list(large["err64"]) == [0.6, 0.28]
