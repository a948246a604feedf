"""Memory, accuracy and status verdicts (harness.analysis.gate.rules), through compare and
on a Comparison directly."""
import dataclasses

import pytest

from harness.analysis.gate import compare
from harness.analysis.gate.groups import group_records
from harness.analysis.gate.rules import Comparison, Verdict, memory_rule, status_rule, task_rule
from tests.analysis.gate_records import MIB, frames, make_record, only


@pytest.mark.parametrize("base_mib,cand_mib,verdict", [
    (200, 230, "regressed"),     # +15%, +30 MiB
    (20, 23, "unchanged"),       # +15% but only 3 MiB
    (2000, 2030, "unchanged"),   # +30 MiB but 1.5%
    (300, 200, "improved"),
])
def test_memory_needs_both_fraction_and_floor(tmp_path, base_mib, cand_mib, verdict):
    b, c = frames([make_record(peak_bytes=base_mib * MIB)], [make_record(peak_bytes=cand_mib * MIB)], tmp_path)
    v = only(compare(b, c, {}), "memory")
    assert v["verdict"] == verdict
    assert v["ratio"] == pytest.approx(cand_mib / base_mib)


def test_memory_measured_differently_is_not_comparable(tmp_path):
    b, c = frames([make_record(mem_method="linux_vmhwm")], [make_record(mem_method="ru_maxrss")], tmp_path)
    assert only(compare(b, c, {}), "memory")["verdict"] == "not_comparable"


def test_fidelity_pass_to_fail_regresses_and_fail_to_pass_improves(tmp_path):
    b, c = frames([make_record(passed=True, rel_err=1e-7)], [make_record(passed=False, rel_err=3e-5)], tmp_path)
    v = only(compare(b, c, {}), "accuracy", "fidelity")
    assert v["verdict"] == "regressed" and "now fails" in v["reason"]
    assert v["candidate"] == pytest.approx(3e-5)
    b, c = frames([make_record(passed=False, rel_err=3e-5)], [make_record(passed=True, rel_err=1e-7)], tmp_path)
    assert only(compare(b, c, {}), "accuracy", "fidelity")["verdict"] == "improved"


def test_error_growing_past_tolerance_regresses_even_if_flag_says_passed(tmp_path):
    b, c = frames([make_record(rel_err=1e-6)], [make_record(rel_err=1e-6, grad_rel_err=5e-5, passed=True)],
                  tmp_path)
    v = only(compare(b, c, {}), "accuracy", "fidelity")
    assert v["verdict"] == "regressed" and "tolerance" in v["reason"]


def test_fidelity_failing_in_one_of_three_rounds_regresses(tmp_path):
    b, c = frames([make_record()] * 3, [make_record(), make_record(passed=False), make_record()], tmp_path)
    v = only(compare(b, c, {}), "accuracy", "fidelity")
    assert v["verdict"] == "regressed" and "1 of 3" in v["reason"]


@pytest.mark.parametrize("metric,higher,base,cand,verdict", [
    ("top1", True, 0.80, 0.75, "regressed"),
    ("top1", True, 0.80, 0.79, "unchanged"),      # within 0.02
    ("top1", True, 0.80, 0.85, "improved"),
    ("psnr_db", True, 30.0, 29.9, "unchanged"),   # 0.1 dB > 0.02 but < 1% of 30
    ("psnr_db", True, 30.0, 29.0, "regressed"),
    ("angle_rmse_deg", False, 2.0, 2.5, "regressed"),
    ("angle_rmse_deg", False, 2.0, 1.5, "improved"),
])
def test_task_metric_drop(tmp_path, metric, higher, base, cand, verdict):
    def task(after):
        return {"metric": metric, "higher_is_better": higher, "before": 0.0, "after": after, "steps": 50}
    b, c = frames([make_record(task=task(base))], [make_record(task=task(cand))], tmp_path)
    assert only(compare(b, c, {}), "accuracy", "task")["verdict"] == verdict


def test_status_rules(tmp_path):
    base = [make_record(model="a"), make_record(model="b", status="error", reason="RuntimeError: x"),
            make_record(model="c", status="unsupported", reason="no op"),
            make_record(model="d"), make_record(model="d"), make_record(model="d"),
            make_record(model="gone")]
    cand = [make_record(model="a", status="oom", reason="CUDA out of memory"), make_record(model="b"),
            make_record(model="c", status="unsupported", reason="no op"),
            make_record(model="d"), make_record(model="d", status="crashed", reason="signal 11"),
            make_record(model="d"), make_record(model="fresh")]
    b, c = frames(base, cand, tmp_path)
    verdicts = compare(b, c, {})
    status = {v["model"]: v for v in verdicts if v["kind"] == "status"}
    assert status["a"]["verdict"] == "regressed" and "new failure" in status["a"]["reason"]
    assert "oom" in status["a"]["reason"] and "CUDA out of memory" in status["a"]["reason"]
    assert status["b"]["verdict"] == "improved"
    assert status["c"]["verdict"] == "unchanged"
    assert status["d"]["verdict"] == "regressed" and "1 of 3" in status["d"]["reason"]
    assert status["gone"]["verdict"] == "vanished"
    assert status["fresh"]["verdict"] == "new"
    # no timing verdict for a case that has no ok record on one side
    assert not [v for v in verdicts if v["model"] in ("a", "b", "c") and v["kind"] == "time"]
    assert [v for v in verdicts if v["model"] == "d" and v["kind"] == "time"][0]["n_candidate"] == 20


def _comparison(tmp_path, base, cand, table=None):
    b, c = frames(base, cand, tmp_path)
    (key, fp), gb = next(iter(group_records(b).items()))
    return Comparison.of(key, fp, gb, group_records(c)[(key, fp)], table)


def test_a_rule_reads_one_comparison_and_returns_a_typed_verdict(tmp_path):
    cmp = _comparison(tmp_path, [make_record(peak_bytes=200 * MIB)], [make_record(peak_bytes=260 * MIB)],
                      {"memory_frac": 0.5})
    assert cmp.thresholds["memory_frac"] == 0.5 and cmp.shared["rounds_baseline"] == 1
    v = memory_rule(cmp)
    assert isinstance(v, Verdict) and (v.kind, v.verdict) == ("memory", "unchanged")  # +30%, within 50%
    d = v.as_dict()
    assert d["threshold"] == {"memory_frac": 0.5, "memory_floor_bytes": 16 * MIB}
    assert d["baseline_env_fingerprint"] == cmp.env_fingerprint and d["ratio"] == pytest.approx(1.3)
    assert status_rule(cmp).verdict == "unchanged"
    assert task_rule(cmp) is None  # no task run on either side: nothing to compare
    with pytest.raises(dataclasses.FrozenInstanceError):
        cmp.model = "other"


def _with_tensor_peak(rec, tensor_peak):
    rec["memory"]["tensor_peak_bytes"] = tensor_peak
    rec["memory"]["tensor_peak_method"] = "torch.profiler memory events"
    return rec


def test_memory_judges_the_tensor_peak_when_both_sides_carry_it(tmp_path):
    # +10% tensor peak (1 MiB): regressed, while the noisy process peak did not move
    base = [_with_tensor_peak(make_record(peak_bytes=200 * MIB), 10 * MIB)]
    cand = [_with_tensor_peak(make_record(peak_bytes=200 * MIB), 11 * MIB)]
    v = only(compare(*frames(base, cand, tmp_path), {}), "memory")
    assert v["verdict"] == "regressed" and v["measure"] == "tensor_peak_bytes" and "tensor peak" in v["reason"]
    assert v["ratio"] == pytest.approx(1.1)
    assert v["threshold"] == {"memory_frac": 0.05, "tensor_memory_floor_bytes": 64 * 1024}
    # below the tensor floor: unchanged even though above 5%
    base = [_with_tensor_peak(make_record(), 100 * 1024)]
    cand = [_with_tensor_peak(make_record(), 150 * 1024)]
    assert only(compare(*frames(base, cand, tmp_path), {}), "memory")["verdict"] == "unchanged"


def test_memory_falls_back_to_the_process_peak_when_one_side_lacks_the_tensor_peak(tmp_path):
    base = [make_record(peak_bytes=200 * MIB)]
    cand = [_with_tensor_peak(make_record(peak_bytes=200 * MIB), 11 * MIB)]
    v = only(compare(*frames(base, cand, tmp_path), {}), "memory")
    assert v["verdict"] == "unchanged" and v["measure"] == "peak_mem_bytes"
    assert v["threshold"] == {"memory_frac": 0.05, "memory_floor_bytes": 16 * MIB}


def test_a_tensor_peak_that_disappears_on_the_head_is_lost_and_fails(tmp_path):
    """The base carries the exact tensor peak, the head does not: 'lost' (exit 1), never a quiet fall
    back to the coarse process peak, which a head that breaks the exact measure would pass."""
    from harness.analysis.gate import exit_code_for

    base = [_with_tensor_peak(make_record(peak_bytes=200 * MIB), 10 * MIB)]
    cand = [make_record(peak_bytes=200 * MIB)]
    verdicts = compare(*frames(base, cand, tmp_path), {})
    v = only(verdicts, "memory")
    assert v["verdict"] == "lost" and v["measure"] == "tensor_peak_bytes" and v["baseline"] == 10 * MIB
    assert v["reason"].startswith("tensor peak lost on the head: no tensor peak in 1 of the candidate's 1 ok")
    assert exit_code_for(verdicts) == 1


def _calibrated(rec, ratio=1.0, passed=True, sketch=None, grad_sketch=None, err64=1e-7, limit=10.0):
    """``rec`` judged by the float64-calibrated rule (schema 2), with sketches of its tensors."""
    acc = rec["accuracy"]
    acc.update(rule="fp64-calibrated", reference="float64", tolerance=None, limit=limit, ratio=ratio,
               worst="grads: w", passed=passed, failures=[] if passed else ["grads: error past the limit"])
    acc["outputs"].update(err64=err64, sketch=list(sketch or [1.0, -2.0, 3.0, 0.5]))
    if "grads" in acc:
        acc["grads"].update(err64=err64, sketch=list(grad_sketch or [0.3, 0.1, -0.2, 0.4]))
    return rec


def test_a_candidate_the_runner_could_not_judge_is_inconclusive_never_a_pass(tmp_path):
    from harness.vocab import ACCURACY_NOT_JUDGED

    note = ACCURACY_NOT_JUDGED + " (grads): expected error 1.95 against float64; its error 1.17"
    base = [_calibrated(make_record(), ratio=0.5)]
    cand = _calibrated(make_record(), ratio=0.6)
    cand["accuracy"].update(passed=None, failures=[note])
    v = [v for v in compare(*frames(base, [cand], tmp_path), {}) if v.get("check") == "fidelity"][0]
    assert v["verdict"] == "inconclusive" and v["not_judged"] is True
    assert v["reason"].startswith(ACCURACY_NOT_JUDGED + " (grads)") and v["reason"].endswith("baseline: judged)")


def test_a_candidate_that_passes_far_off_float64_carries_a_warning_to_the_summary(tmp_path):
    from harness.analysis.gate.io import evaluate
    from tests.analysis.gate_records import stores

    near = [_calibrated(make_record(), ratio=3.0, err64=0.01)]
    base = near + [_calibrated(make_record(precision="amp_bf16"), ratio=3.3, err64=0.27)]
    head = near + [_calibrated(make_record(precision="amp_bf16"), ratio=3.4, err64=0.28)]  # cbam amp_bf16 on 1.11
    doc = evaluate(*stores(tmp_path, base, head))
    fidelity = [v for v in doc["verdicts"] if v.get("check") == "fidelity"]
    assert len(fidelity) == 2 and all(v["verdict"] == "unchanged" for v in fidelity)  # a warning, not a verdict
    warned = [v for v in fidelity if v.get("large_error") is not None]
    assert len(warned) == 1 and warned[0]["large_error"] == pytest.approx(0.28) and "amp_bf16" in warned[0]["case_key"]
    assert doc["exit_code"] == 0
    assert "⚠️ Passed with a large error (1): more than 25% off float64 on the candidate" in doc["markdown"]
    assert "28% off float64" in doc["markdown"]


def test_identical_outputs_stay_silent_and_a_change_beyond_arithmetic_regresses(tmp_path):
    same = frames([_calibrated(make_record())], [_calibrated(make_record())], tmp_path)
    v = only(compare(*same, {}), "accuracy", "outputs")
    assert v["verdict"] == "unchanged" and v["candidate"] == 0.0
    # A stray bfloat16 round trip moves the outputs by ~1e-3: far beyond 2 x err64 (2e-7).
    moved = [1.0 + 1e-3, -2.0, 3.0, 0.5]
    changed = frames([_calibrated(make_record())], [_calibrated(make_record(), sketch=moved)], tmp_path)
    v = only(compare(*changed, {}), "accuracy", "outputs")
    assert v["verdict"] == "regressed" and "outputs changed: rel" in v["reason"]
    assert v["threshold"]["bound"] == pytest.approx(2e-7)
    # The same move on a bf16 case whose own error against float64 is 1e-2 is rounding.
    bf16 = frames([_calibrated(make_record(precision="bf16"), err64=1e-2)],
                  [_calibrated(make_record(precision="bf16"), sketch=moved, err64=1e-2)], tmp_path)
    assert only(compare(*bf16, {}), "accuracy", "outputs")["verdict"] == "unchanged"


def test_changed_gradients_alone_regress(tmp_path):
    b, c = frames([_calibrated(make_record())], [_calibrated(make_record(), grad_sketch=[0.3, 0.1, -0.2, 0.5])],
                  tmp_path)
    v = only(compare(b, c, {}), "accuracy", "outputs")
    assert v["verdict"] == "regressed" and "gradients changed" in v["reason"] and "outputs changed" not in v["reason"]


def test_calibrated_fidelity_reads_ratios_and_a_failing_ratio_that_grew(tmp_path):
    b, c = frames([_calibrated(make_record(), ratio=2.0)], [_calibrated(make_record(), ratio=31.0, passed=False)],
                  tmp_path)
    v = only(compare(b, c, {}), "accuracy", "fidelity")
    assert v["verdict"] == "regressed" and "ratio to expected 2 → 31, limit 10" in v["reason"]
    assert v["unit"] == "ratio to expected error"
    grew = frames([_calibrated(make_record(), ratio=12.0, passed=False)],
                  [_calibrated(make_record(), ratio=40.0, passed=False)], tmp_path)
    v = only(compare(*grew, {}), "accuracy", "fidelity")
    assert v["verdict"] == "regressed" and "grew 3.33x" in v["reason"]
    steady = frames([_calibrated(make_record(), ratio=12.0, passed=False)],
                    [_calibrated(make_record(), ratio=15.0, passed=False)], tmp_path)
    assert only(compare(*steady, {}), "accuracy", "fidelity")["verdict"] == "unchanged"


def test_the_bound_is_the_baselines_error_not_the_changed_candidates(tmp_path):
    # Rounding the outputs through bf16 moves them by ~1e-3 and moves their own error against float64
    # by as much: a bound from the candidate's error would hide the change it measures.
    moved = [1.0 + 1e-3, -2.0, 3.0, 0.5]
    b, c = frames([_calibrated(make_record())], [_calibrated(make_record(), sketch=moved, err64=1e-3)], tmp_path)
    v = only(compare(b, c, {}), "accuracy", "outputs")
    assert v["verdict"] == "regressed" and v["threshold"]["bound"] == pytest.approx(2e-7)


def _checked(failed=(), ran=("params_updated",), leak_bytes=0.0):
    rec = make_record()
    rec["checks"] = {"ran": list(ran), "failed": list(failed), "reasons": ["%s: what it found" % f for f in failed],
                     "not_judged": [], "leak_bytes_per_step": leak_bytes}
    return rec


def test_a_behaviour_check_that_starts_failing_regresses_and_one_that_stops_improves(tmp_path):
    b, c = frames([_checked()], [_checked(["params_updated"])], tmp_path)
    v = only(compare(b, c, {}), "accuracy", "behaviour")
    assert v["verdict"] == "regressed" and v["reason"] == "params_updated: what it found"
    assert (v["baseline"], v["candidate"]) == ("passed", "params_updated")
    b, c = frames([_checked(["params_updated"])], [_checked()], tmp_path)
    assert only(compare(b, c, {}), "accuracy", "behaviour")["verdict"] == "improved"
    b, c = frames([_checked(["params_updated"])], [_checked(["params_updated"])], tmp_path)
    assert only(compare(b, c, {}), "accuracy", "behaviour")["verdict"] == "unchanged"


def test_a_leak_is_a_memory_verdict_and_only_where_both_sides_checked_for_one(tmp_path):
    ran = ("params_updated", "leak")
    b, c = frames([_checked(ran=ran)], [_checked(["leak"], ran=ran, leak_bytes=4096.0)], tmp_path)
    verdicts = compare(b, c, {})
    assert only(verdicts, "memory", "leak")["verdict"] == "regressed"
    assert only(verdicts, "accuracy", "behaviour")["verdict"] == "unchanged"
    b, c = frames([_checked()], [_checked()], tmp_path)  # no leak check ran: no leak verdict
    assert [v for v in compare(b, c, {}) if v.get("check") == "leak"] == []
    b, c = frames([make_record()], [_checked(["params_updated"])], tmp_path)  # records from before the checks
    assert [v for v in compare(b, c, {}) if v.get("check") == "behaviour"] == []


# ------------------------------------------------------------------ the engine's rounds


def _engine_rounds(tensor_peak=11 * MIB, first_round_peak=True, rounds=3):
    """One case measured in ``rounds`` interleaved rounds: only the first ran the extras (tensor peak,
    accuracy, instruction counts); the others carry timing, the process peak and their status."""
    out = []
    for index in range(1, rounds + 1):
        rec = make_record(peak_bytes=200 * MIB, instructions=1e8 if index == 1 else None)
        if index == 1 and first_round_peak:
            _with_tensor_peak(rec, tensor_peak)
        if index > 1:
            rec["accuracy"] = None
        rec["round"] = {"index": index, "of": rounds, "variants": ["torch-2.1", "other"], "position": index % 2,
                        "paired": True, "extras": index == 1}
        out.append(rec)
    return out


def test_timing_only_rounds_lose_no_extra(tmp_path):
    """Rounds 2..R never measure the tensor peak, the accuracy or the counts: not 'lost', not 'not judged'."""
    base = [_with_tensor_peak(make_record(peak_bytes=200 * MIB, instructions=1e8), 10 * MIB)]  # before rounds
    verdicts = compare(*frames(base, _engine_rounds(), tmp_path), {})
    memory = only(verdicts, "memory")
    assert memory["verdict"] == "regressed" and memory["measure"] == "tensor_peak_bytes"  # +1 MiB: 10%
    assert memory["n_candidate"] == 1 and memory["rounds_candidate"] == 3
    accuracy = [v for v in verdicts if v["kind"] == "accuracy" and v.get("check") == "fidelity"]
    assert [v["verdict"] for v in accuracy] == ["unchanged"] and accuracy[0]["n_candidate"] == 1
    time = only(verdicts, "time")
    assert time["basis"] == "instructions" and "missing" not in time["reason"]


def test_an_extras_round_without_the_tensor_peak_still_loses_it(tmp_path):
    base = [_with_tensor_peak(make_record(peak_bytes=200 * MIB), 10 * MIB)]
    v = only(compare(*frames(base, _engine_rounds(first_round_peak=False), tmp_path), {}), "memory")
    assert v["verdict"] == "lost" and "1 of the candidate's 1 ok records that ran the extras" in v["reason"]
