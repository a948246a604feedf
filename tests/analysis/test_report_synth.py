"""``report_synth``: rounds with a process speed each, instruction counts and tensor peaks on request."""
import math
import statistics

import pytest

from harness.record.schema import check
from tests.analysis.report_synth import (
    ENVS,
    INSTRUCTION_FAILURES,
    INSTRUCTIONS_PER_S,
    MODELS,
    iter_synthetic_records,
)

SMALL = dict(models=MODELS[:6], modes=("train",), precisions=("fp32",), checkpoints=("none",), devices=("cpu", "cuda"),
             batches=(1, 8), n_sizes=1, failure_rate=0.0)


def _records(**kwargs):
    return list(iter_synthetic_records(**dict(SMALL, **kwargs)))


def test_the_first_round_is_the_store_of_one_round():
    one = _records()
    three = _records(rounds=3)
    assert len(three) == 3 * len(one) and three[:len(one)] == one
    # a process speed of its own changes the times only: the statuses, errors... stay those of the seed
    spread = _records(rounds=3, round_spread=0.2)
    assert [(label, r["status"], r["accuracy"]) for label, r in spread] == [
        (label, r["status"], r["accuracy"]) for label, r in three]
    assert [r["timing"]["median_s"] for _, r in spread] != [r["timing"]["median_s"] for _, r in three]
    assert {r["run_id"] for _, r in three} == {"run-synthetic", "run-synthetic-round2", "run-synthetic-round3"}
    # later rounds are later: the report keeps the latest record per case
    assert max(r["time_utc"] for _, r in one) < min(r["time_utc"] for _, r in three[len(one):])


def test_each_round_is_one_process_with_its_own_speed_for_every_case():
    recs = _records(rounds=2, round_spread=0.2, devices=("cpu",))
    first = {(label, r["case_key"]): r["timing"]["median_s"] for label, r in recs[:len(recs) // 2]}
    second = {(label, r["case_key"]): r["timing"]["median_s"] for label, r in recs[len(recs) // 2:]}
    for env in ENVS:
        logs = [math.log(second[k] / first[k]) for k in first if k[0] == env[0]]
        # one factor for all the cases of a round (up to the samples' own noise), not one per case
        assert statistics.pstdev(logs) < 0.06


def test_instruction_counts_in_the_first_round_of_cpu_cases_only():
    recs = _records(rounds=2, instructions=True)
    first, later = recs[:len(recs) // 2], recs[len(recs) // 2:]
    assert all(r.get("instructions") is None for _, r in later)
    assert all(r.get("instructions") is None for _, r in first if r["case"]["device"] == "cuda")
    cpu = [(label, r) for label, r in first if r["case"]["device"] == "cpu"]
    failures = {who: (status, reason) for who, status, reason in INSTRUCTION_FAILURES}
    for label, r in cpu:
        assert check(r, strict=True) is None
        part = r["instructions"]
        planted = failures.get(label) or failures.get(r["case"]["model"])
        if planted:
            assert (part["status"], part["reason"]) == planted and part.get("per_iter") is None
        else:
            assert part["status"] == "ok" and part["spread"] < 1e-3 and len(part["repeats_per_iter"]) == 3
            # proportional to the step's noise-free time: the median sample is within its 5% noise
            assert part["per_iter"] / INSTRUCTIONS_PER_S == pytest.approx(r["timing"]["median_s"], rel=0.1)
    assert {p["status"] for p in (r["instructions"] for _, r in cpu)} == {"ok", "unsupported", "timeout"}


def test_tensor_peaks_are_exact_and_on_cpu_cases_only():
    recs = _records(rounds=2, tensor_peaks=True)
    peaks = {}
    for label, r in recs:
        peak = r["memory"].get("tensor_peak_bytes")
        assert (peak is None) == (r["case"]["device"] == "cuda")
        if peak is not None:
            assert peak % 512 == 0 and peaks.setdefault((label, r["case_key"]), peak) == peak  # same every round
