"""``report.heatmap``: the measure each relative-heatmap cell rests on, and when its change is within noise.

Real records (the runner's JSON, through the loader and ``prepare_frame``), not mocks: a few hand-made
ones where the rule is the point, and a synthetic store where the generator's planted effects are.
"""
import math

import pytest

from harness.analysis.load import load_records
from harness.analysis.report import heatmap
from harness.analysis.report.compare import verdicts_frame
from harness.analysis.report.frame import prepare_frame
from harness.measures import ASSUMED_ROUND_SD_LOG, COUNT_SPREAD_CAP, ROUND_NOISE_MULTIPLE
from harness.scenario.gate_config import DEFAULTS
from tests.analysis.report_synth import ENVS, INSTRUCTION_FAILURES, MODELS, TENSOR_PEAK_CHANGE, write_synthetic_store
from tests.analysis.test_report_support import record, write_jsonl

REF = "torch-latest"


def here(**kw):
    return record(env="torch-2.1", torch_v="2.1.2", **kw)


def ref(**kw):
    return record(env=REF, torch_v="2.13.0", **kw)


def _day(d):
    return "2026-01-%02dT00:00:00Z" % d


def _frame(tmp_path, recs):
    path = write_jsonl(str(tmp_path / "records.jsonl"), recs)
    df, _ = prepare_frame(load_records([path])[0])
    return df


def _cell(tmp_path, recs, kind=heatmap.TIME, reference=REF, verdicts=None):
    df = _frame(tmp_path, recs)
    cells = heatmap.cells(df, reference, kind, verdicts_frame(verdicts, df) if verdicts else None)
    assert len(cells) == 1, cells
    return cells.iloc[0]


# ------------------------------------------------------------------ which measure


def test_instruction_counts_decide_time_when_every_case_has_them_on_both_sides(tmp_path):
    # wall time says 3x slower (noise, say); the counts say 10% more work: the counts win
    cell = _cell(tmp_path, [here(median_s=0.030, instructions=1.1e8), ref(median_s=0.010, instructions=1.0e8),
                            here(batch=16, median_s=0.030, instructions=2.2e8),
                            ref(batch=16, median_s=0.010, instructions=2.0e8)])
    assert cell["basis"] == "instructions" and cell["ratio"] == pytest.approx(1.1)
    assert cell["n"] == 2 and cell["n_preferred"] == 2
    assert cell["band_source"] == "instruction repeats" and not cell["within"]


@pytest.mark.parametrize("ref_side", [dict(), dict(instr_status="error", instr_reason="dump missing"),
                                      dict(instr_status="unsupported", instr_reason="no valgrind")])
def test_a_case_without_an_ok_count_on_one_side_sends_the_cell_to_wall_time(tmp_path, ref_side):
    cell = _cell(tmp_path, [here(median_s=0.030, instructions=1.1e8), ref(median_s=0.010, instructions=1.0e8),
                            here(batch=16, median_s=0.030, instructions=2.2e8),
                            ref(batch=16, median_s=0.010, **ref_side)])
    # one measure per cell, never a mix: both cases on wall time
    assert cell["basis"] == "wall time" and cell["ratio"] == pytest.approx(3.0)
    assert cell["n"] == 2 and cell["n_preferred"] == 1


def test_tensor_peaks_decide_memory_when_both_sides_carry_them(tmp_path):
    both = _cell(tmp_path, [here(peak=9000, tensor_peak=1100), ref(peak=1000, tensor_peak=1000)], heatmap.MEMORY)
    assert both["basis"] == "tensor peak" and both["ratio"] == pytest.approx(1.1)
    one = _cell(tmp_path, [here(peak=9000, tensor_peak=1100), ref(peak=1000)], heatmap.MEMORY)
    assert one["basis"] == "process peak" and one["ratio"] == pytest.approx(9.0) and one["n_preferred"] == 0
    assert not one["within"] and one["band_source"] == ""  # memory has no noise band of its own


def test_the_ratio_is_here_over_the_reference_and_the_mean_is_geometric(tmp_path):
    cell = _cell(tmp_path, [here(median_s=0.02), ref(median_s=0.01), here(batch=16, median_s=0.005),
                            ref(batch=16, median_s=0.01)])
    assert cell["ratio"] == pytest.approx(1.0) and cell["lo"] == pytest.approx(0.5) and cell["hi"] == 2.0


# ------------------------------------------------------------------ within noise


def test_single_rounds_get_the_assumed_band(tmp_path):
    band = math.exp(ROUND_NOISE_MULTIPLE * math.sqrt(2) * ASSUMED_ROUND_SD_LOG)
    inside = _cell(tmp_path, [here(median_s=0.015), ref(median_s=0.010)])
    assert inside["basis"] == "wall time" and inside["band_source"] == "assumed"
    assert inside["band"] == pytest.approx(band) and inside["within"]
    outside = _cell(tmp_path, [here(median_s=0.020), ref(median_s=0.010)])
    assert outside["band"] == pytest.approx(band) and not outside["within"]


def _rounds(side, medians, **kw):
    return [side(median_s=m, time_utc=_day(i + 1), **kw) for i, m in enumerate(medians)]


def test_the_gate_s_min_rounds_measure_the_spread_fewer_are_assumed(tmp_path):
    """Two rounds a side, as few as the gate's rule (``min_rounds`` = 3) distrusts: the band is assumed, as
    the gate's verdict on them would be at most inconclusive; with ``min_rounds`` = 2, measured."""
    recs = _rounds(here, [0.0110, 0.0111]) + _rounds(ref, [0.0100, 0.0101])
    cell = _cell(tmp_path, recs)
    assert DEFAULTS["min_rounds"] == 3 and cell["band_source"] == "assumed" and cell["within"]
    df = _frame(tmp_path, recs)
    two = heatmap.cells(df, REF, heatmap.TIME, thresholds=dict(DEFAULTS, min_rounds=2)).iloc[0]
    assert two["band_source"] == "measured" and not two["within"]


def test_measured_between_round_spread_sets_the_band(tmp_path):
    steady = _cell(tmp_path, _rounds(here, [0.0110, 0.0111, 0.0109]) + _rounds(ref, [0.0100, 0.0101, 0.0099]))
    # 10% slower with rounds 1% apart: beyond the measured noise (the assumed band would have hidden it)
    assert steady["band_source"] == "measured" and steady["rounds_lo"] == 3
    assert steady["ratio"] == pytest.approx(1.1, rel=1e-3) and steady["band"] < 1.05 and not steady["within"]
    noisy = _cell(tmp_path, _rounds(here, [0.013, 0.026, 0.0195]) + _rounds(ref, [0.010, 0.020, 0.015]))
    assert noisy["band_source"] == "measured" and noisy["ratio"] == pytest.approx(1.3, rel=1e-3)
    assert noisy["within"]  # 30% slower, but the rounds of each side are 2x apart


def test_one_round_on_one_side_is_partly_assumed(tmp_path):
    cell = _cell(tmp_path, _rounds(here, [0.0110, 0.0111, 0.0109]) + [ref(median_s=0.010)])
    expected = math.exp(ROUND_NOISE_MULTIPLE * math.hypot(cell_sd([0.0110, 0.0111, 0.0109]), ASSUMED_ROUND_SD_LOG))
    assert cell["band_source"] == "partly assumed" and cell["band"] == pytest.approx(expected)
    assert cell["within"] and cell["rounds_lo"] == 1 and cell["rounds_hi"] == 3


def cell_sd(medians):
    logs = [math.log(m) for m in medians]
    mean = sum(logs) / len(logs)
    return math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))


@pytest.mark.parametrize("ratio, spread, within", [(1.015, 1e-4, True), (1.025, 1e-4, False), (1.04, 0.02, True),
                                                   (1.06, 0.02, False), (0.97, 1e-4, False), (1.05, 0.002, False)])
def test_instruction_counts_are_unchanged_within_the_gate_s_limit(tmp_path, ratio, spread, within):
    """The gate's rule: a change within ``instructions_frac`` (2%), or within ``instructions_spread_factor``
    (5) times the larger repeat spread of the two sides, is unchanged."""
    cell = _cell(tmp_path, [here(median_s=0.010, instructions=1e8 * ratio, instr_spread=spread),
                            ref(median_s=0.010, instructions=1e8, instr_spread=spread / 2)])
    assert cell["basis"] == "instructions" and bool(cell["within"]) is within
    assert cell["band"] == pytest.approx(1.0 + max(DEFAULTS["instructions_frac"], min(
        DEFAULTS["instructions_spread_factor"] * spread, COUNT_SPREAD_CAP)))


# ------------------------------------------------------------------ the gate's verdicts


def _ab(label, **kw):
    """A record of an ``ab`` run: the two sides share the environment, the labels tell them apart."""
    return record(env=label, torch_v="2.1.2", fingerprint="fp-ab", **kw)


def _verdict(verdict, kind="time", cand="head", base="base", fp="fp-ab", key="m|train|8|32|fp32|none|cpu"):
    return {"case_key": key, "env_fingerprint": fp, "env_label": cand, "baseline_env_label": base, "kind": kind,
            "verdict": verdict, "reason": "from the gate"}


def test_a_verdict_judges_the_cell_of_the_two_environments_it_compared(tmp_path):
    recs = [_ab("base", median_s=0.030, peak=3000), _ab("head", median_s=0.010, peak=1000)]
    # 3x apart (beyond the assumed band), but the gate, with its rounds and test, found no change
    cell = _cell(tmp_path, recs, reference="head", verdicts=[_verdict("unchanged")])
    assert cell["band_source"] == "gate" and cell["within"] and cell["gate"] == {"unchanged": 1}
    assert cell["gate_pair"] == "head against base"
    # and a change inside the assumed band that the gate calls a regression is drawn as a change
    near = [_ab("base", median_s=0.012), _ab("head", median_s=0.010)]
    assert _cell(tmp_path, near, reference="head")["within"]
    assert not _cell(tmp_path, near, reference="head", verdicts=[_verdict("regressed")])["within"]
    # either way round: with base as the reference the same verdict judges the head column
    assert not _cell(tmp_path, near, reference="base", verdicts=[_verdict("regressed")])["within"]


@pytest.mark.parametrize("verdict", [_verdict("unchanged", kind="memory"), _verdict("unchanged", fp="other"),
                                     _verdict("unchanged", base="head"), _verdict("unchanged", key="another")])
def test_verdicts_of_another_kind_environment_or_case_do_not_judge_the_cell(tmp_path, verdict):
    cell = _cell(tmp_path, [_ab("base", median_s=0.030), _ab("head", median_s=0.010)], reference="head",
                 verdicts=[verdict])
    assert cell["band_source"] == "assumed" and not cell["within"] and cell["gate"] is None


def test_memory_cells_take_the_memory_verdicts(tmp_path):
    recs = [_ab("base", peak=3000), _ab("head", peak=1000)]
    cell = _cell(tmp_path, recs, heatmap.MEMORY, reference="head", verdicts=[_verdict("unchanged", kind="memory")])
    assert cell["within"] and cell["band_source"] == "gate"


# ------------------------------------------------------------------ a synthetic store


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("synth"))
    write_synthetic_store(folder, models=MODELS[:6], modes=("train", "eval"), precisions=("fp32",),
                          checkpoints=("none",), devices=("cpu",), batches=(1, 8), n_sizes=1, failure_rate=0.0,
                          rounds=2, round_spread=0.1, instructions=True, tensor_peaks=True)
    df, _ = prepare_frame(load_records([folder])[0])
    return df


def test_synthetic_counts_find_the_planted_regression_beyond_noise(synthetic):
    cells = heatmap.cells(synthetic, REF, heatmap.TIME).set_index(["model", "env"])
    speed = dict((e[0], e[5]) for e in ENVS)
    regression = cells.loc[("graph_vae", "torch-2.1")]
    assert regression["basis"] == "instructions" and not regression["within"]
    assert regression["ratio"] == pytest.approx(speed[REF] / (speed["torch-2.1"] * 0.7), rel=1e-3)
    same = cells.loc[("cbam_classifier_tiny", "torch-2.0")]
    assert same["basis"] == "instructions" and same["ratio"] == pytest.approx(speed[REF] / speed["torch-2.0"],
                                                                               rel=1e-3)
    # the planted passes without a count: their cells fall back to wall time, whose spread two rounds a side
    # do not measure by the gate's rule (min_rounds = 3): assumed
    failed_env, failed_model = INSTRUCTION_FAILURES[0][0], INSTRUCTION_FAILURES[1][0]
    fallback = cells[(cells.index.get_level_values("env") == failed_env) |
                     (cells.index.get_level_values("model") == failed_model)]
    assert len(fallback) and set(fallback["basis"]) == {"wall time"} and set(fallback["band_source"]) == {"assumed"}
    assert set(cells.drop(fallback.index)["basis"]) == {"instructions"}


def test_synthetic_tensor_peaks_find_the_planted_growth(synthetic):
    cells = heatmap.cells(synthetic, REF, heatmap.MEMORY).set_index(["model", "env"])
    assert set(cells["basis"]) == {"tensor peak"}
    model, env, factor = TENSOR_PEAK_CHANGE
    assert cells.loc[(model, env), "ratio"] == pytest.approx(factor, rel=1e-3)
    assert cells.drop((model, env))["ratio"].tolist() == pytest.approx([1.0] * (len(cells) - 1), rel=1e-3)
