"""``report.drift``: fp32 output drift across environments, judged against float64 where records carry sketches."""
import math

import numpy as np
import pytest

from harness.analysis.report import drift as dr
from tests.analysis.test_report_support import (
    drift_records,
    prepared_records,
    prepared_small_store,
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepared_small_store(str(tmp_path_factory.mktemp("store")))


_frame = prepared_records


def test_drift_compares_fp32_probes_with_the_reference(prepared):
    df, _ = prepared
    drift = dr.drift_table(df, "torch-latest")
    worst = drift.groupby(["model", "env"], observed=True)["drift"].max()
    assert worst[("mswr_net_v2", "torch-2.1")] > 1e-3  # planted
    assert worst[("mswr_net_v2", "torch-1.13")] < 1e-6
    assert worst[("cbam_classifier_tiny", "torch-latest")] == 0.0


def test_drift_summary_per_model_and_environment(prepared):
    df, _ = prepared
    summary = dr.drift_summary(dr.drift_table(df, "torch-latest")).set_index(["model", "env"])
    row = summary.loc[("mswr_net_v2", "torch-2.1")]
    assert row["max"] > 1e-3 and row["n"] > 1 and row["mode"] in ("train", "eval")
    assert str(row["batch_size"]) in ("1", "8", "32")
    assert summary.loc[("cbam_classifier_tiny", "torch-latest"), "max"] == 0.0


def test_probe_drift_definition():
    assert dr.probe_drift([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert dr.probe_drift([1.0, 2.2], [1.0, 2.0]) == pytest.approx(0.1)
    assert dr.probe_drift([1.0], [1.0, 2.0]) == math.inf
    assert dr.probe_drift([float("nan"), 1.0], [1.0, 1.0]) == math.inf


def test_drift_is_judged_against_the_float64_outputs_where_both_records_carry_sketches(tmp_path):
    drift = dr.drift_table(_frame(tmp_path, drift_records()), "torch-2.1")
    other = drift[drift["env"] == "torch-2.0"].set_index("model")
    assert len(other) == 5  # one row per case and environment, whatever its precisions
    a = other.loc["a"]
    assert a["basis"] == "sketch"
    assert a["drift"] == pytest.approx(2e-7, rel=1e-6) and a["expected"] == pytest.approx(2e-7, rel=1e-6)
    assert a["ratio"] == pytest.approx(1.0, rel=1e-6) and a["fp64_diff"] == 0.0
    b = other.loc["b"]
    assert b["fp64_diff"] == pytest.approx(1e-3, rel=1e-6) and b["fp64_diff"] > dr.FP64_CHANGED
    assert b["expected"] == dr.FP32_UNIT_ROUNDOFF and b["ratio"] == pytest.approx(1e-3 * 2 ** 24, rel=1e-6)
    c = other.loc["c"]
    assert c["drift"] == pytest.approx(1e-12, rel=1e-3) and c["expected"] == 2.0 ** -24
    assert c["ratio"] == pytest.approx(1e-12 * 2 ** 24, rel=1e-3) and c["fp64_diff"] < dr.FP64_CHANGED
    for model in ("d", "e"):
        row = other.loc[model]
        assert row["basis"] == "probe" and row["drift"] == pytest.approx(0.1 if model == "d" else 0.0)
        assert math.isnan(row["ratio"]) and math.isnan(row["expected"]) and math.isnan(row["fp64_diff"])
    own = drift[drift["env"] == "torch-2.1"].set_index("model")
    assert own.loc["a", "ratio"] == 0.0 and own.loc["a", "expected"] == pytest.approx(2e-7, rel=1e-6)


def test_sketch_drift_by_hand():
    s64_ref, s64 = np.array([[3.0, 4.0]]), np.array([[3.0, 4.0]])  # norm 5
    s32_ref, s32 = np.array([[3.0, 4.0 + 5e-6]]), np.array([[3.0 + 1.5e-5, 4.0 - 2e-5]])
    d, e, ratio, fp64 = dr.sketch_drift(s32, s64, s32_ref, s64_ref)
    # |s32 - s32_ref| = |(1.5e-5, -2.5e-5)| = 2.9155e-5; own errors 2.5e-5/5 and 5e-6/5
    assert d[0] == pytest.approx(math.hypot(1.5e-5, 2.5e-5) / 5)
    assert e[0] == pytest.approx(5e-6 + 1e-6) and ratio[0] == pytest.approx(d[0] / 6e-6) and fp64[0] == 0.0


def test_drift_summary_judges_sketches_by_their_ratio_and_probes_by_their_difference(tmp_path):
    drift = dr.drift_table(_frame(tmp_path, drift_records()), "torch-2.1")
    summary = dr.drift_summary(drift)
    assert list(summary["basis"]).index("probe") > max(i for i, b in enumerate(summary["basis"]) if b == "sketch")
    rows = summary.set_index(["model", "env"])
    b = rows.loc[("b", "torch-2.0")]
    assert b["basis"] == "sketch" and b["max"] == pytest.approx(1e-3 * 2 ** 24, rel=1e-6) and b["n"] == 1
    assert b["worst_drift"] == pytest.approx(1e-3, rel=1e-6) and b["worst_expected"] == 2.0 ** -24
    assert b["worst_fp64"] == pytest.approx(1e-3, rel=1e-6) and b["fp64_max"] == b["worst_fp64"]
    d = rows.loc[("d", "torch-2.0")]
    assert d["basis"] == "probe" and d["max"] == pytest.approx(0.1) and math.isnan(d["fp64_max"])
