"""Time verdicts (harness.analysis.gate.time_rules) through compare: the timing test, the
Benjamini-Hochberg correction over the run, rounds against samples, the speed probe."""
import numpy as np
import pytest

from harness.analysis.gate import bh_qvalues, compare
from tests.analysis.gate_records import SAMPLES, frames, lognormal, make_record, only, shared_machine_rounds


def test_clear_slowdown_is_regressed_with_ratio_and_q(tmp_path):
    rng = np.random.default_rng(1)
    b, c = frames([make_record(samples=lognormal(rng, 0.010, 30))],
                  [make_record(samples=lognormal(rng, 0.013, 30))], tmp_path)
    v = only(compare(b, c, SAMPLES), "time")
    assert v["verdict"] == "regressed"
    assert v["ratio"] == pytest.approx(1.3, rel=0.05)
    assert v["q_value"] < 1e-6 and v["test"] == "mannwhitneyu"
    assert v["n_baseline"] == 30 and v["n_candidate"] == 30
    assert "slower" in v["reason"]


def test_clear_speedup_is_improved(tmp_path):
    rng = np.random.default_rng(2)
    b, c = frames([make_record(samples=lognormal(rng, 0.010, 30))],
                  [make_record(samples=lognormal(rng, 0.007, 30))], tmp_path)
    assert only(compare(b, c, SAMPLES), "time")["verdict"] == "improved"


@pytest.mark.parametrize("cand_median", [0.013, 0.007])
def test_single_runs_cannot_fail_or_pass_on_time_by_default(tmp_path, cand_median):
    """auto: one round a side is tested, but a change beyond the factor is only inconclusive."""
    rng = np.random.default_rng(9)
    b, c = frames([make_record(samples=lognormal(rng, 0.010, 30))],
                  [make_record(samples=lognormal(rng, cand_median, 30))], tmp_path)
    v = only(compare(b, c, {}), "time")
    assert v["test"] == "mannwhitneyu" and v["q_value"] < 1e-6
    assert v["verdict"] == "inconclusive"
    assert "1 vs 1 rounds (3 a side needed)" in v["reason"] and 'time_test = "samples"' in v["reason"]
    same = only(compare(b, b, {}), "time")  # no change at all stays unchanged
    assert same["verdict"] == "unchanged"


def test_same_distribution_is_unchanged(tmp_path):
    rng = np.random.default_rng(3)
    b, c = frames([make_record(samples=lognormal(rng, 0.010, 30))],
                  [make_record(samples=lognormal(rng, 0.010, 30))], tmp_path)
    v = only(compare(b, c, {}), "time")
    assert v["verdict"] == "unchanged" and v["q_value"] > 0.05


def test_small_but_significant_change_stays_unchanged(tmp_path):
    rng = np.random.default_rng(4)
    b, c = frames([make_record(samples=lognormal(rng, 0.010, 40, spread=0.005))],
                  [make_record(samples=lognormal(rng, 0.0104, 40, spread=0.005))], tmp_path)
    v = only(compare(b, c, {}), "time")
    assert v["q_value"] < 0.01 and v["verdict"] == "unchanged" and "within" in v["reason"]


def test_too_few_samples_is_inconclusive_never_pass_or_fail(tmp_path):
    b, c = frames([make_record(samples=[0.010, 0.011, 0.012])], [make_record(samples=[0.030, 0.031, 0.032])],
                  tmp_path)
    v = only(compare(b, c, {}), "time")
    assert v["verdict"] == "inconclusive"
    assert "smallest achievable p = 0.1" in v["reason"] and v["q_value"] is None
    assert v["ratio"] == pytest.approx(0.031 / 0.011)


def test_large_ratio_within_noise_is_inconclusive(tmp_path):
    rng = np.random.default_rng(5)
    b, c = frames([make_record(samples=lognormal(rng, 0.010, 6, spread=0.6))],
                  [make_record(samples=lognormal(rng, 0.0125, 6, spread=0.6))], tmp_path)
    v = only(compare(b, c, {}), "time")
    assert v["ratio"] > 1.1
    assert v["verdict"] == "inconclusive" and "not significant" in v["reason"]


def test_benjamini_hochberg_is_applied_across_all_cases(tmp_path):
    """A case that is significant alone is not once many null cases share the correction."""
    rng = np.random.default_rng(6)
    base, cand = [], []
    for i in range(40):
        base.append(make_record(batch_size=i + 1, samples=lognormal(rng, 0.010, 12, spread=0.2)))
        cand.append(make_record(batch_size=i + 1, samples=lognormal(rng, 0.010, 12, spread=0.2)))
    base.append(make_record(batch_size=100, samples=lognormal(rng, 0.010, 12, spread=0.2)))
    cand.append(make_record(batch_size=100, samples=lognormal(rng, 0.0135, 12, spread=0.2)))
    b, c = frames(base, cand, tmp_path)
    times = [v for v in compare(b, c, {}) if v["kind"] == "time" and not v.get("aggregate")]
    assert len(times) == 41
    ps = [v["p_value"] for v in times]
    assert [v["q_value"] for v in times] == pytest.approx(bh_qvalues(ps))
    target = [v for v in times if "batch=100;" in v["case_key"]][0]
    assert target["p_value"] < 0.05 < target["q_value"]
    assert target["verdict"] != "regressed"


def test_rounds_are_pooled_and_round_medians_tested_with_enough_rounds(tmp_path):
    """A/A with a per-process speed: raw samples look significant, round medians do not."""
    rng = np.random.default_rng(7)
    base = [make_record(samples=lognormal(rng, m, 20, spread=0.02)) for m in (0.020, 0.022, 0.030)]
    cand = [make_record(samples=lognormal(rng, m, 20, spread=0.02)) for m in (0.033, 0.024, 0.026)]
    b, c = frames(base, cand, tmp_path)
    auto = only(compare(b, c, {}), "time")
    assert auto["n_baseline"] == 60 and auto["rounds_baseline"] == 3 and auto["rounds_candidate"] == 3
    assert auto["test"] == "welch_t_log_round_medians"
    assert auto["verdict"] != "regressed" and auto["ratio"] > 1.1
    raw = only(compare(b, c, {"time_test": "samples"}), "time")
    assert raw["test"] == "mannwhitneyu" and raw["verdict"] == "regressed"  # the false alarm avoided above


def test_round_test_still_finds_a_real_slowdown(tmp_path):
    rng = np.random.default_rng(8)
    base = [make_record(samples=lognormal(rng, m, 10)) for m in (0.020, 0.021, 0.019, 0.020)]
    cand = [make_record(samples=lognormal(rng, m, 10)) for m in (0.026, 0.027, 0.025, 0.026)]
    b, c = frames(base, cand, tmp_path)
    v = only(compare(b, c, {}), "time")
    assert v["test"] == "welch_t_log_round_medians" and v["verdict"] == "regressed"


PROBE = {"time_factor": 1.05, "time_basis": "probe"}


def test_speed_probe_finds_a_slowdown_that_machine_speed_hides(tmp_path):
    rng = np.random.default_rng(11)
    b, c = frames(shared_machine_rounds(rng, 6, 0.010), shared_machine_rounds(rng, 6, 0.010, slowdown=1.10),
                  tmp_path)
    v = only(compare(b, c, PROBE), "time")
    assert v["relative_to"] == "conv probe" and v["verdict"] == "regressed"
    assert 1.07 < v["ratio"] < 1.13 and v["ratio"] == v["probe_ratio"]  # the slowdown, against the probe
    assert "relative to the speed probe" in v["reason"] and "step/probe" in v["how"]
    # the default basis, the step itself: the slowdown is lost in the machine's speed changes,
    # and the probe's view is reported, not used
    plain = only(compare(b, c, {"time_factor": 1.05}), "time")
    assert plain["relative_to"] is None and plain["verdict"] != "regressed"
    assert plain["ratio"] == plain["median_ratio"] and plain["probe_ratio"] == v["probe_ratio"]


def test_speed_probe_a_a_stays_quiet(tmp_path):
    rng = np.random.default_rng(12)
    flagged = 0
    for _ in range(20):
        b, c = frames(shared_machine_rounds(rng, 5, 0.010), shared_machine_rounds(rng, 5, 0.010), tmp_path)
        v = only(compare(b, c, PROBE), "time")
        assert v["relative_to"] == "conv probe"
        flagged += v["verdict"] in ("regressed", "improved")
    assert flagged <= 1


def test_probe_relative_change_against_the_plain_medians_is_inconclusive(tmp_path):
    """The code under test slowed the probe more than itself: 'faster' relative to the probe."""
    rng = np.random.default_rng(15)
    base = shared_machine_rounds(rng, 5, 0.010)
    cand = shared_machine_rounds(rng, 5, 0.010, slowdown=1.15)
    for rec in cand:
        rec["timing"]["probe_samples_s"] = [p * 1.5 for p in rec["timing"]["probe_samples_s"]]
    b, c = frames(base, cand, tmp_path)
    v = only(compare(b, c, PROBE), "time")
    assert v["probe_ratio"] < 0.9 and v["median_ratio"] > 1.0
    assert v["verdict"] == "inconclusive" and "moved the other way" in v["reason"]


def test_speed_probe_used_only_when_both_sides_have_the_same_probe(tmp_path):
    rng = np.random.default_rng(13)
    base = shared_machine_rounds(rng, 4, 0.010)
    cand = shared_machine_rounds(rng, 4, 0.010)
    b, c = frames(base, cand, tmp_path)
    assert only(compare(b, c, PROBE), "time")["relative_to"] == "conv probe"
    cand[2]["timing"]["probe"] = "another probe"
    b, c = frames(base, cand, tmp_path)
    assert only(compare(b, c, PROBE), "time")["relative_to"] is None
    cand[2]["timing"]["probe"] = "conv probe"
    cand[1]["timing"]["probe_samples_s"] = cand[1]["timing"]["probe_samples_s"][:-1]  # not aligned
    b, c = frames(base, cand, tmp_path)
    v = only(compare(b, c, PROBE), "time")
    assert v["relative_to"] is None and v["probe_ratio"] is None
    cand[1]["timing"]["probe_samples_s"] = None  # a record from before the probe
    b, c = frames(base, cand, tmp_path)
    assert only(compare(b, c, PROBE), "time")["relative_to"] is None


def test_per_model_threshold_applies(tmp_path):
    rng = np.random.default_rng(9)
    base = [make_record(model=m, samples=lognormal(rng, 0.010, 30)) for m in ("cbam_tiny", "graph_vae")]
    cand = [make_record(model=m, samples=lognormal(rng, 0.012, 30)) for m in ("cbam_tiny", "graph_vae")]
    b, c = frames(base, cand, tmp_path)
    table = {"time_factor": 1.1, "time_test": "samples", "per_model": {"cbam_*": {"time_factor": 1.25}}}
    times = {v["model"]: v for v in compare(b, c, table) if v["kind"] == "time"}
    assert times["graph_vae"]["verdict"] == "regressed"
    assert times["cbam_tiny"]["verdict"] == "unchanged"
    assert times["cbam_tiny"]["threshold"]["time_factor"] == 1.25


# --- instruction counts ---------------------------------------------------------------------

def test_counts_decide_with_one_round_a_side_whatever_the_wall_time_says(tmp_path):
    """+10% instructions: regressed on one round, though the wall samples are pure noise."""
    rng = np.random.default_rng(21)
    b, c = frames([make_record(samples=lognormal(rng, 0.010, 30, spread=0.3), instructions=50e6)],
                  [make_record(samples=lognormal(rng, 0.010, 30, spread=0.3), instructions=55e6)], tmp_path)
    v = only(compare(b, c, {}), "time")
    assert v["basis"] == "instructions" and v["unit"] == "instructions"
    assert v["verdict"] == "regressed"
    assert v["baseline"] == 50e6 and v["candidate"] == 55e6 and v["ratio"] == pytest.approx(1.10)
    assert v["wall_baseline_s"] == pytest.approx(0.010, rel=0.2) and v["wall_test"] == "mannwhitneyu"
    assert "instructions +10.0%" in v["reason"]
    # it rests on the counts, not on a test: no q of its own; the wall-time test stands beside it
    assert v["p_value"] is None and v["q_value"] is None and v["test"] == "instructions"
    assert v["how"].startswith("instructions +10.0% (50 M → 55 M per step; spread 0.1%, limit 2.0%); wall time ")
    assert v["wall_how"] == "Mann-Whitney U, 30 vs 30 samples" and v["wall_how"] in v["how"]
    assert 0.0 < v["wall_p_value"] <= 1.0 and v["wall_q_value"] == pytest.approx(v["wall_p_value"])
    faster = only(compare(c, b, {}), "time")
    assert faster["verdict"] == "improved"


def test_a_count_change_within_the_limit_or_the_spread_is_unchanged(tmp_path):
    b, c = frames([make_record(instructions=50e6, instr_spread=0.001)],
                  [make_record(instructions=50.5e6, instr_spread=0.001)], tmp_path)
    assert only(compare(b, c, {}), "time")["verdict"] == "unchanged"  # +1% < 2%
    # +4% is beyond instructions_frac, but not 5x the counts' own 1% spread
    b, c = frames([make_record(instructions=50e6, instr_spread=0.01)],
                  [make_record(instructions=52e6, instr_spread=0.001)], tmp_path)
    v = only(compare(b, c, {}), "time")
    assert v["verdict"] == "unchanged" and v["instructions_spread"] == pytest.approx(0.01)
    assert only(compare(b, c, {"instructions_spread_factor": 2.0}), "time")["verdict"] == "regressed"


def test_wall_time_moving_alone_is_reported_as_such(tmp_path):
    """Same counts, wall time 1.5x in 3 rounds a side: not regressed (the work did not change),
    inconclusive with the 'wall time only' reason; one round a side: unchanged with the note."""
    rng = np.random.default_rng(22)
    base = [make_record(samples=lognormal(rng, 0.010, 20, spread=0.02), instructions=50e6 if i == 0 else None)
            for i in range(3)]
    cand = [make_record(samples=lognormal(rng, 0.015, 20, spread=0.02), instructions=50e6 if i == 0 else None)
            for i in range(3)]
    b, c = frames(base, cand, tmp_path)
    v = only(compare(b, c, {}), "time")
    assert v["basis"] == "instructions" and v["counted_baseline"] == 1 and v["rounds_baseline"] == 3
    assert v["wall_verdict"] == "regressed" and v["verdict"] == "inconclusive" and v["wall_time_only"]
    assert "wall time only" in v["reason"] and "confirm with rounds" in v["reason"]
    b, c = frames(base[:1], cand[:1], tmp_path)
    one = only(compare(b, c, {}), "time")
    assert one["verdict"] == "unchanged" and one["wall_time_only"] and "wall time only" in one["reason"]


def test_a_count_lost_on_the_head_fails_with_its_reason_listed_first(tmp_path):
    """Counted on the base, the head's count crashed: its own failing verdict ('lost'), whatever the
    wall time says (here: unchanged), listed first in the summary; exit code 1."""
    from harness.analysis.gate import exit_code_for
    from harness.analysis.gate.markdown import render_markdown

    rng = np.random.default_rng(23)
    head = make_record(samples=lognormal(rng, 0.010, 30))
    head["instructions"] = {"status": "crashed", "reason": "counting worker died (SIGSEGV)"}
    b, c = frames([make_record(samples=lognormal(rng, 0.010, 30), instructions=50e6)], [head], tmp_path)
    verdicts = compare(b, c, {})
    v = only(verdicts, "time")
    assert v["verdict"] == "lost" and v["count_missing_on"] == "candidate" and v["basis"] == "wall time"
    assert v["reason"].startswith("instruction count lost on the head: crashed: counting worker died (SIGSEGV)")
    assert v["wall_verdict"] == "unchanged" and exit_code_for(verdicts) == 1
    doc = {"verdicts": verdicts, "counts": {}, "exit_code": 1}
    md = render_markdown(doc)
    lines = md.splitlines()
    assert "evidence lost on the head" in lines[1]
    assert lines[3] == "#### Evidence lost on the head (fails the gate)"
    assert "instruction count lost on the head: crashed" in lines[5]


def test_a_count_missing_on_the_base_only_is_not_comparable(tmp_path):
    rng = np.random.default_rng(23)
    b, c = frames([make_record(samples=lognormal(rng, 0.010, 30))],
                  [make_record(samples=lognormal(rng, 0.010, 30), instructions=50e6)], tmp_path)
    v = only(compare(b, c, SAMPLES), "time")
    assert v["verdict"] == "not_comparable" and v["count_missing_on"] == "baseline"
    assert v["reason"].startswith("instruction count missing on the base: not counted")


def test_a_wall_time_regression_with_the_base_uncounted_still_fails(tmp_path):
    """The base's missing count cannot hide what the wall time shows."""
    rng = np.random.default_rng(23)
    b, c = frames([make_record(samples=lognormal(rng, 0.010, 30))],
                  [make_record(samples=lognormal(rng, 0.013, 30), instructions=50e6)], tmp_path)
    v = only(compare(b, c, SAMPLES), "time")
    assert v["basis"] == "wall time" and v["verdict"] == "regressed" and v["unit"] == "s"
    assert "instruction count missing on the base" in v["reason"]


def test_a_noisy_repeat_cannot_inflate_the_count_limit(tmp_path):
    """A tiny step whose repeats spread 2.7% (limit 5 x 2.7% = 13.5% uncapped) made 10% heavier:
    regressed, the verdict saying the spread's part was capped at 5%."""
    b, c = frames([make_record(instructions=1.0e6, instr_spread=0.027)],
                  [make_record(instructions=1.1e6, instr_spread=0.027)], tmp_path)
    v = only(compare(b, c, {}), "time")
    assert v["verdict"] == "regressed" and v["instructions_spread"] == pytest.approx(0.027)
    assert "limit 5.0%, the spread's part capped at 5%" in v["reason"]
    b, c = frames([make_record(instructions=1.0e6, instr_spread=0.027)],
                  [make_record(instructions=1.04e6, instr_spread=0.027)], tmp_path)
    assert only(compare(b, c, {}), "time")["verdict"] == "unchanged"  # +4%: within the capped 5%
