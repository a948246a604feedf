"""The run-wide time verdict (harness.analysis.gate.aggregate): the geometric mean of every
case's time ratio, tested across cases or rounds."""
import numpy as np
import pytest

from harness.analysis.gate import compare, exit_code_for
from harness.vocab import AGGREGATE_CASE_KEY, ExitCode
from tests.analysis.gate_records import frames, lognormal, make_record


def _aggregate(verdicts):
    found = [v for v in verdicts if v.get("aggregate")]
    assert len(found) == 1 and found[0]["case_key"] == AGGREGATE_CASE_KEY and found[0]["kind"] == "time"
    return found[0]


def _store(rng, n_cases, factor, rounds=1, spread=0.15, round_spread=0.0, instructions=None):
    """``n_cases`` cases; each round has its own machine speed (``round_spread``), each case its
    own noise (``spread``) around a case median scaled by ``factor``."""
    out = []
    for r in range(rounds):
        machine = float(np.exp(rng.normal(0.0, round_spread)))
        for i in range(n_cases):
            median = 0.005 * (1 + i % 7) * factor * machine * float(np.exp(rng.normal(0.0, spread)))
            out.append(make_record(batch_size=i + 1, samples=lognormal(rng, median, 15, spread=0.02),
                                   run_id="r%d" % r,
                                   instructions=None if instructions is None else 1e7 * (1 + i) * instructions))
    return out


def test_every_case_slower_by_half_fails_with_one_run_a_side(tmp_path):
    """Today's blind spot: one round a side, every time 1.5x: each case is at most inconclusive,
    the run-wide verdict is regressed and the gate exits 1."""
    rng = np.random.default_rng(31)
    b, c = frames(_store(rng, 30, 1.0), _store(rng, 30, 1.5), tmp_path)
    verdicts = compare(b, c, {})
    per_case = [v for v in verdicts if v["kind"] == "time" and not v.get("aggregate")]
    assert not any(v["verdict"] == "regressed" for v in per_case)
    agg = _aggregate(verdicts)
    assert agg["verdict"] == "regressed" and agg["ratio"] == pytest.approx(1.5, rel=0.1)
    assert agg["basis"] == "wall time" and agg["n_cases"] == 30 and agg["p_value"] < 1e-6
    assert exit_code_for(verdicts) == ExitCode.FAILURE


@pytest.mark.parametrize("seed", range(5))
def test_a_a_stays_silent(tmp_path, seed):
    """Same code, case noise 15% and a process-wide speed shift of up to ~10%: no run-wide verdict."""
    rng = np.random.default_rng(100 + seed)
    b, c = frames(_store(rng, 40, 1.0, round_spread=0.05), _store(rng, 40, 1.0, round_spread=0.05), tmp_path)
    agg = _aggregate(compare(b, c, {}))
    assert agg["verdict"] in ("unchanged", "inconclusive")


def test_with_rounds_the_round_geomeans_are_tested(tmp_path):
    """3 rounds a side whose machine speed varies 20% between rounds: a 1.25x geometric mean
    is beyond the factor but not beyond the rounds' spread, so not regressed; a steady 1.5x is."""
    rng = np.random.default_rng(32)
    noisy_b = _store(rng, 20, 1.0, rounds=3, round_spread=0.3)
    noisy_c = _store(rng, 20, 1.25, rounds=3, round_spread=0.3)
    b, c = frames(noisy_b, noisy_c, tmp_path)
    agg = _aggregate(compare(b, c, {}))
    assert agg["test"].startswith("welch_t_log_round_geomeans (3 vs 3")
    steady_b = _store(rng, 20, 1.0, rounds=3, round_spread=0.02)
    steady_c = _store(rng, 20, 1.5, rounds=3, round_spread=0.02)
    b, c = frames(steady_b, steady_c, tmp_path)
    assert _aggregate(compare(b, c, {}))["verdict"] == "regressed"


def test_on_instruction_counts_when_every_case_carries_them(tmp_path):
    """+1.5% instructions in every case: the run-wide verdict is on the counts (the geometric mean,
    exact), judged by instructions_frac (here 1%); the same store against itself is unchanged."""
    rng = np.random.default_rng(33)
    b, c = frames(_store(rng, 10, 1.0, instructions=1.0), _store(rng, 10, 1.0, instructions=1.015), tmp_path)
    verdicts = compare(b, c, {"instructions_frac": 0.01})
    agg = _aggregate(verdicts)
    assert agg["basis"] == "instructions" and agg["ratio"] == pytest.approx(1.015)
    assert agg["verdict"] == "regressed"
    assert _aggregate(compare(b, b, {}))["verdict"] == "unchanged"


def test_too_few_cases_give_no_run_wide_verdict(tmp_path):
    rng = np.random.default_rng(34)
    b, c = frames(_store(rng, 4, 1.0), _store(rng, 4, 2.0), tmp_path)
    verdicts = compare(b, c, {})
    assert len([v for v in verdicts if v["kind"] == "time"]) == 4  # four cases compared, each its own verdict
    assert not [v for v in verdicts if v.get("aggregate")]
    # one case more reaches MIN_CASES: then there is one (the empty result above is the rule, not an accident)
    b, c = frames(_store(rng, 5, 1.0), _store(rng, 5, 2.0), tmp_path)
    assert len([v for v in compare(b, c, {}) if v.get("aggregate")]) == 1


def test_cases_without_counts_are_left_out_of_a_counted_run_wide_verdict(tmp_path):
    """Two of ten cases too long to count: the run-wide verdict stays on the eight counted ones."""
    rng = np.random.default_rng(35)
    base, cand = _store(rng, 10, 1.0, instructions=1.0), _store(rng, 10, 1.0, instructions=1.05)
    for rec in base[:2] + cand[:2]:
        rec["instructions"] = {"status": "skipped", "reason": "step too long"}
    b, c = frames(base, cand, tmp_path)
    agg = _aggregate(compare(b, c, {}))
    assert agg["basis"] == "instructions" and agg["n_cases"] == 8 and agg["verdict"] == "regressed"
    assert "2 cases without counts on both sides left out" in agg["reason"]
