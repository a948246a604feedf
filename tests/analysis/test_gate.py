"""The regression gate: verdict rules, statistics, files in and exit codes out."""
import glob
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from harness import SCHEMA_VERSION
from harness.analysis import gate
from harness.analysis.gate import (
    EXIT_INPUT_ERROR,
    EXIT_INTERNAL_ERROR,
    EXIT_PASS,
    EXIT_REGRESSION,
    bh_qvalues,
    compare,
    min_exact_mannwhitney_p,
    run_gate,
)
from harness.analysis.gate_markdown import MARKER, render_markdown
from harness.analysis.load import load_records

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIB = 1024 * 1024


# ---------------------------------------------------------------- synthetic records

def make_record(model="cbam_classifier_tiny", mode="train", batch_size=8, size=64, precision="fp32",
                checkpoint="none", device="cpu", status="ok", samples=None, peak_bytes=200 * MIB,
                passed=True, rel_err=1e-7, grad_rel_err=2e-7, tolerance=1e-5, task=None, torch_v="2.1.2",
                python="3.11.7", label="torch-2.1", scenario="smoke", reason=None, mem_method="linux_vmhwm",
                run_id="run1", probe_samples=None, probe="conv probe"):
    """One record following harness.record's schema (``probe_samples``: speed-probe times)."""
    case = {"model": model, "mode": mode, "batch_size": batch_size, "size": size, "precision": precision,
            "checkpoint": checkpoint, "device": device, "channels_last": False, "compile": False}
    key = "model=%s;mode=%s;batch=%d;size=%s;precision=%s;checkpoint=%s;device=%s" % (
        model, mode, batch_size, size, precision, checkpoint, device)
    ident = "|".join([torch_v, python, device, "AMD EPYC", "None"])
    env = {"torch": torch_v, "python": python, "numpy": "1.26.4", "cuda": None, "cudnn": None, "device": device,
           "device_name": "AMD EPYC", "threads": 2, "git_commit": "abc123",
           "fingerprint": hashlib.sha1(ident.encode()).hexdigest()[:12]}
    rec = {"schema_version": SCHEMA_VERSION, "run_id": run_id, "time_utc": "2026-11-21T23:00:00Z",
           "scenario": scenario, "env_label": label, "case_key": key, "case": case, "env": env,
           "status": status, "reason": reason if status != "ok" else None, "duration_s": 1.0}
    if status == "ok":
        samples = list(samples if samples is not None else [0.01] * 10)
        q1, med, q3 = np.percentile(samples, [25, 50, 75])
        rec["timing"] = {"samples_s": [float(s) for s in samples], "iters_per_sample": 10, "warmup_iters": 3,
                         "warmup_s": 0.1, "median_s": float(med), "iqr_s": float(q3 - q1),
                         "throughput_per_s": batch_size / float(med), "reduced": None,
                         "probe_samples_s": None if probe_samples is None else [float(x) for x in probe_samples],
                         "probe": None if probe_samples is None else probe}
        rec["memory"] = {"peak_bytes": peak_bytes, "method": mem_method}
        acc = {"outputs": {"max_abs_err": rel_err, "rel_err": rel_err, "cosine": 1.0}, "tolerance": tolerance,
               "passed": passed, "failures": [] if passed else ["outputs.rel_err"],
               "output_probe": [0.1] * 32, "output_norm": 1.0}
        if mode == "train":
            acc["grads"] = {"max_abs_err": grad_rel_err, "rel_err": grad_rel_err, "cosine": 1.0}
        rec["accuracy"] = acc
        rec["task"] = task
    return rec


def write_jsonl(path, records):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
    return str(path)


def lognormal(rng, median, n, spread=0.05):
    return list(median * np.exp(rng.normal(0.0, spread, n)))


def frames(base_records, cand_records, tmp_path):
    b = write_jsonl(tmp_path / "base" / "b.jsonl", base_records)
    c = write_jsonl(tmp_path / "cand" / "c.jsonl", cand_records)
    return load_records([b])[0], load_records([c])[0]


def only(verdicts, kind, check=None):
    found = [v for v in verdicts if v["kind"] == kind and (check is None or v.get("check") == check)]
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------- statistics

def test_min_exact_p_matches_scipy_on_fully_separated_samples():
    from scipy import stats
    for n1, n2 in ((3, 3), (4, 4), (5, 5), (3, 7), (2, 9)):
        p = stats.mannwhitneyu(range(n1), range(100, 100 + n2), method="exact").pvalue
        assert min_exact_mannwhitney_p(n1, n2) == pytest.approx(p)
    assert min_exact_mannwhitney_p(3, 3) == pytest.approx(0.1)
    assert min_exact_mannwhitney_p(1, 1) == 1.0


def test_bh_qvalues_by_hand():
    p = [0.01, 0.04, 0.03, 0.5]
    # sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.0533, 0.0533, 0.5
    assert bh_qvalues(p) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert bh_qvalues([]) == []


# ---------------------------------------------------------------- time verdicts

SAMPLES = {"time_test": "samples"}  # trust single runs' samples, as on a quiet dedicated machine


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
    times = [v for v in compare(b, c, {}) if v["kind"] == "time"]
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


def shared_machine_rounds(rng, rounds, step_s, slowdown=1.0, probe_s=0.001, n=20):
    """Records of rounds on a machine whose speed changes from round to round (a factor of
    0.8-1.6 applied to step and probe alike); the step is ``slowdown`` times slower."""
    out = []
    for _ in range(rounds):
        machine = float(np.exp(rng.uniform(np.log(0.8), np.log(1.6))))
        jitter = np.exp(rng.normal(0.0, 0.02, n))  # second-to-second speed, shared by step and probe
        steps = step_s * slowdown * machine * jitter * np.exp(rng.normal(0.0, 0.01, n))
        probes = probe_s * machine * jitter * np.exp(rng.normal(0.0, 0.01, n))
        out.append(make_record(samples=steps, probe_samples=probes))
    return out


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


# ---------------------------------------------------------------- memory, accuracy, status

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


def test_different_environments_are_not_comparable_never_compared(tmp_path):
    b, c = frames([make_record(torch_v="2.1.2", samples=[0.01] * 30)],
                  [make_record(torch_v="2.2.0", samples=[0.03] * 30)], tmp_path)
    verdicts = compare(b, c, {})
    assert len(verdicts) == 1
    v = verdicts[0]
    assert v["verdict"] == "not_comparable" and "torch 2.1.2 → 2.2.0" in v["reason"]
    assert gate.exit_code_for(verdicts) == EXIT_INPUT_ERROR


def test_matching_ignores_env_label_but_not_fingerprint(tmp_path):
    """A/B stores label their sides base/head: same environment, still compared."""
    b, c = frames([make_record(label="base")], [make_record(label="head")], tmp_path)
    v = only(compare(b, c, {}), "status")
    assert v["verdict"] == "unchanged" and v["env_label"] == "head" and v["baseline_env_label"] == "base"


def test_verdicts_have_the_documented_fields(tmp_path):
    b, c = frames([make_record()], [make_record()], tmp_path)
    for v in compare(b, c, {}):
        for field in ("case_key", "model", "env_fingerprint", "env_label", "kind", "verdict", "baseline",
                      "candidate", "ratio", "p_value", "q_value", "reason"):
            assert field in v
        assert v["kind"] in gate.KINDS and v["verdict"] in gate.VERDICTS


# ---------------------------------------------------------------- run_gate: files and exit codes

def _stores(tmp_path, base, cand):
    write_jsonl(tmp_path / "A" / "base.jsonl", base)
    write_jsonl(tmp_path / "B" / "head.jsonl", cand)
    return str(tmp_path / "A"), str(tmp_path / "B")


def test_run_gate_regression_writes_json_and_markdown(tmp_path, capsys):
    rng = np.random.default_rng(10)
    a, b = _stores(tmp_path, [make_record(model="m%d" % i, samples=lognormal(rng, 0.01, 30)) for i in range(3)],
                   [make_record(model="m0", samples=lognormal(rng, 0.02, 30)),
                    make_record(model="m1", samples=lognormal(rng, 0.01, 30)),
                    make_record(model="m2", status="timeout", reason="over 600 s")])
    json_out, md_out = str(tmp_path / "out" / "v.json"), str(tmp_path / "out" / "s.md")
    code = run_gate([a], [b], json_out=json_out, markdown_out=md_out, overrides=SAMPLES)
    assert code == EXIT_REGRESSION
    stdout = capsys.readouterr().out
    assert "2 regressions" in stdout and MARKER in stdout
    with open(md_out, encoding="utf-8") as fh:
        assert fh.read().strip() == stdout.strip()
    with open(json_out, encoding="utf-8") as fh:
        doc = json.load(fh)
    assert doc["exit_code"] == 1 and doc["schema"] == gate.VERDICTS_SCHEMA
    assert doc["counts"]["time"]["regressed"] == 1 and doc["counts"]["status"]["regressed"] == 1
    assert sorted(os.listdir(str(tmp_path / "out"))) == ["s.md", "v.json"]  # no temp files left


def test_run_gate_pass_with_scenario_thresholds(tmp_path, capsys):
    rng = np.random.default_rng(11)
    a, b = _stores(tmp_path, [make_record(samples=lognormal(rng, 0.010, 30))],
                   [make_record(samples=lognormal(rng, 0.012, 30))])
    scen = tmp_path / "smoke.toml"
    scen.write_text('[scenario]\nname = "smoke"\n\n[gate]\ntime_factor = 1.5\n')
    assert run_gate([a], [b], scenario_path=str(scen)) == EXIT_PASS
    assert "no regression" in capsys.readouterr().out
    assert run_gate([a], [b], scenario_path=str(scen), overrides={"time_factor": 1.1}) == EXIT_PASS  # one round
    assert run_gate([a], [b], scenario_path=str(scen), overrides=dict(SAMPLES, time_factor=1.1)) == EXIT_REGRESSION


@pytest.mark.parametrize("problem", ["missing", "empty", "schema", "scenarios", "bad_gate", "bad_override",
                                     "scenario_file", "not_comparable"])
def test_run_gate_input_errors_exit_2_naming_the_file(tmp_path, capsys, problem):
    a, b = _stores(tmp_path, [make_record()], [make_record()])
    scenario, overrides, named = None, None, None
    if problem == "missing":
        a, named = str(tmp_path / "nope"), "nope"
    elif problem == "empty":
        write_jsonl(tmp_path / "E" / "x.jsonl", [])
        b, named = str(tmp_path / "E"), "x.jsonl"
    elif problem == "schema":
        rec = make_record()
        rec["schema_version"] = SCHEMA_VERSION + 1
        write_jsonl(tmp_path / "B" / "other.jsonl", [rec])
        named = "other.jsonl"
    elif problem == "scenarios":
        write_jsonl(tmp_path / "B" / "head.jsonl", [make_record(scenario="full")])
        named = "head.jsonl"
    elif problem == "bad_gate":
        scen = tmp_path / "s.toml"
        scen.write_text("[gate]\ntime_factor = 0.5\n")
        scenario, named = str(scen), "time_factor"
    elif problem == "bad_override":
        overrides, named = {"q": 7}, "overrides.q"
    elif problem == "scenario_file":
        scenario, named = str(tmp_path / "absent.toml"), "absent.toml"
    elif problem == "not_comparable":
        write_jsonl(tmp_path / "B" / "head.jsonl", [make_record(python="3.12.1")])
        named = "compared"
    code = run_gate([a], [b], scenario_path=scenario, overrides=overrides, json_out=str(tmp_path / "v.json"))
    err = capsys.readouterr().err
    assert code == EXIT_INPUT_ERROR
    assert "input error" in err and named in err
    if problem != "not_comparable":
        assert not os.path.exists(str(tmp_path / "v.json"))


def test_run_gate_internal_error_exit_3(tmp_path, capsys, monkeypatch):
    a, b = _stores(tmp_path, [make_record()], [make_record()])

    def boom(*args, **kwargs):
        raise ZeroDivisionError("bug")
    monkeypatch.setattr(gate, "compare", boom)
    assert run_gate([a], [b]) == EXIT_INTERNAL_ERROR
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_truncated_last_line_is_a_warning_not_an_error(tmp_path, capsys):
    a, b = _stores(tmp_path, [make_record()], [make_record()])
    with open(os.path.join(b, "head.jsonl"), "a", encoding="utf-8") as fh:
        fh.write('{"schema_version": 1, "case_k')
    assert run_gate([a], [b]) == EXIT_PASS
    assert "warning" in capsys.readouterr().err


def test_markdown_orders_worst_first_and_stays_small(tmp_path):
    rng = np.random.default_rng(12)
    base, cand = [], []
    for i in range(300):
        base.append(make_record(batch_size=i + 1, samples=lognormal(rng, 0.01, 20), peak_bytes=100 * MIB))
        cand.append(make_record(batch_size=i + 1, samples=lognormal(rng, 0.01 * (1.2 + i / 100.0), 20),
                                peak_bytes=100 * MIB, status="ok" if i % 50 else "error",
                                reason="RuntimeError: a | b\nline two"))
    b, c = frames(base, cand, tmp_path)
    verdicts = compare(b, c, SAMPLES)
    doc = {"verdicts": verdicts, "counts": gate.count_verdicts(verdicts), "thresholds": gate.thresholds_for("", {}),
           "baseline": {"env_labels": ["base"], "records": 300}, "candidate": {"env_labels": ["head"], "records": 300,
                                                                               "scenarios": ["smoke"]},
           "exit_code": gate.exit_code_for(verdicts)}
    text = render_markdown(doc)
    assert len(text) < 65536
    assert text.startswith(MARKER)
    assert "and %d more" % (300 - 25) in text
    table = [line for line in text.splitlines() if line.startswith("| cbam_classifier_tiny train")]
    assert "status" in table[0] and "a \\| b line two" in table[0]  # status first, pipes escaped
    time_rows = [line for line in table[:25] if "| time |" in line]
    ratios = [float(line.split("|")[5].strip().rstrip("×")) for line in time_rows]
    assert ratios == sorted(ratios, reverse=True) and ratios[0] > 3.5


def test_module_cli_and_no_torch_import(tmp_path):
    a, b = _stores(tmp_path, [make_record()], [make_record()])
    code = ("import sys, runpy; sys.argv = ['gate', '--baseline', %r, '--candidate', %r, '--set', 'q=0.01']; "
            "import harness.analysis.gate as g; rc = g.main(); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)" % (a, b))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "no regression" in proc.stdout
    assert not glob.glob(str(tmp_path / "**" / "*.tmp"), recursive=True)


def test_mannwhitney_p_matches_scipy():
    from scipy import stats
    rng = np.random.default_rng(13)
    for n1, n2, rounding in ((5, 5, None), (4, 12, None), (30, 25, None), (12, 12, 3), (40, 9, 2), (7, 7, 2)):
        for _ in range(5):
            x, y = rng.lognormal(0, 0.3, n1), rng.lognormal(0.1, 0.3, n2)
            if rounding:
                x, y = np.round(x, rounding - 2), np.round(y, rounding - 2)
            expected = stats.mannwhitneyu(x, y, alternative="two-sided").pvalue
            assert gate.mannwhitney_p(x, y) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert gate.mannwhitney_p([1.0] * 10, [1.0] * 10) == 1.0


def test_short_case_labels_and_single_run_caveat(tmp_path):
    from harness.analysis.gate_markdown import short_case
    assert short_case("model=m;mode=eval;batch=2;size=32;precision=fp32;checkpoint=none;device=cpu;"
                      "channels_last=1") == "m eval b2 32 fp32 ckpt=none cpu channels_last"
    assert short_case("odd key") == "odd key"
    rng = np.random.default_rng(14)
    b, c = frames([make_record(samples=lognormal(rng, 0.01, 20))], [make_record(samples=lognormal(rng, 0.01, 20))],
                  tmp_path)
    verdicts = compare(b, c, {})
    doc = {"verdicts": verdicts, "counts": gate.count_verdicts(verdicts), "thresholds": gate.thresholds_for("", {}),
           "exit_code": 0}
    assert "1 timing verdict rests on fewer than 3 rounds a side" in render_markdown(doc)
    b, c = frames([make_record(samples=lognormal(rng, 0.01, 5)) for _ in range(3)],
                  [make_record(samples=lognormal(rng, 0.01, 5)) for _ in range(3)], tmp_path)
    verdicts = compare(b, c, {})
    doc["verdicts"], doc["counts"] = verdicts, gate.count_verdicts(verdicts)
    assert "fewer than 3 rounds" not in render_markdown(doc)
