"""Quick checks of benchmarks/bench_gate.py's and bench_timing.py's pure helpers (the benchmarks take hours).

What each fault does to a real case, through the runner's fault hooks, is tested in
``tests/test_gate_faults.py``; here, how the gate is scored on it and that a fault commit
only adds files.
"""
import json
import os
import subprocess

import pytest

from harness.commands.ab import round_order
from harness.runner import fault_hooks
from harness.scenario import spec as scen
from harness.vocab import AGGREGATE_CASE_KEY
from tests.benchmarks import load_benchmark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


bg = load_benchmark("bench_gate")
bt = load_benchmark("bench_timing")

KEY = "model=mswr_net_tiny;mode=train;batch=2;size=32;precision=fp32;checkpoint=reentrant;device=cpu"
KEY2 = "model=cbam_classifier_tiny;mode=eval;batch=2;size=32;precision=amp_bf16;checkpoint=none;device=cpu"


def _v(key, kind, verdict, **extra):
    out = {"case_key": key, "kind": kind, "verdict": verdict}
    out.update(extra)
    return out


def test_parse_case_key():
    case = bg.parse_case_key(KEY)
    assert case["model"] == "mswr_net_tiny" and case["checkpoint"] == "reentrant" and case["batch"] == "2"


def test_aa_figures_count_false_alarms_per_kind_and_overall():
    verdicts = [
        _v(KEY, "status", "unchanged"), _v(KEY, "time", "regressed"), _v(KEY, "memory", "unchanged"),
        _v(KEY2, "status", "unchanged"), _v(KEY2, "time", "inconclusive"), _v(KEY2, "accuracy", "unchanged"),
        _v("model=x;mode=eval", "status", "new"), _v(AGGREGATE_CASE_KEY, "time", "unchanged"),
    ]
    fig = bg.aa_figures(verdicts)
    assert fig["cases"] == 2 and fig["cases_regressed"] == 1 and fig["regressed_share"] == 0.5
    # the run-wide verdict is reported apart, not counted as a third timed case
    assert fig["kinds"]["time"]["compared"] == 2 and fig["kinds"]["time"]["inconclusive"] == 1
    assert fig["aggregate"] == ["unchanged"]
    assert fig["kinds"]["memory"]["regressed_share"] == 0.0
    assert fig["kinds"]["status"]["compared"] == 2 and fig["not_compared"] == 1


def test_fault_figures_detection_false_alarms_and_other_kinds():
    fault = bg.FAULTS["ckpt"]
    verdicts = [
        _v(KEY, "status", "unchanged"), _v(KEY, "accuracy", "regressed"), _v(KEY, "time", "improved"),
        _v(KEY2, "status", "unchanged"), _v(KEY2, "time", "regressed"),
    ]
    fig = bg.fault_figures(verdicts, fault)
    assert (fig["targets"], fig["detected"], fig["detected_share"]) == (1, 1, 1.0)
    assert (fig["unaffected"], fig["false_alarms"]) == (1, 1)
    assert fig["false_alarm_cases"] == [KEY2]


def test_memory_target_needs_growth_above_the_floor():
    fault = bg.FAULTS["mem10"]
    big = [_v(KEY, "status", "unchanged"), _v(KEY, "memory", "regressed", baseline=300 * 2 ** 20)]
    small = [_v(KEY2, "status", "unchanged"), _v(KEY2, "memory", "unchanged", baseline=30 * 2 ** 20)]
    fig = bg.fault_figures(big + small, fault, {})
    assert (fig["targets"], fig["detected"]) == (1, 1)
    fig = bg.fault_figures(big + small, fault, {"memory_floor_bytes": 1024 * 1024})
    assert fig["targets"] == 2 and fig["detected"] == 1
    # judged on the tensor peak (both sides carry it): the held buffer is outside the step
    tensor = [_v(KEY, "status", "unchanged"), _v(KEY, "memory", "unchanged", baseline=300 * 2 ** 20,
                                                 measure="tensor_peak_bytes")]
    assert bg.fault_figures(tensor, fault, {})["targets"] == 0


def test_slow10_targets_are_the_cases_judged_on_wall_time():
    fault = bg.FAULTS["slow10"]
    wall = [_v(KEY2, "status", "unchanged"), _v(KEY2, "time", "regressed", basis="wall time")]
    counted = [_v(KEY, "status", "unchanged"), _v(KEY, "time", "inconclusive", basis="instructions")]
    fig = bg.fault_figures(wall + counted, fault, {}, None)
    assert (fig["affected"], fig["targets"], fig["detected"]) == (2, 1, 1)


def test_round_counts():
    assert bg.round_counts(1) == [1]
    assert bg.round_counts(3) == [1, 2, 3]
    assert bg.round_counts(10) == [1, 2, 3, 5, 7, 10]


# ---------------------------------------------------------------- false improvements

def test_aa_figures_count_false_improvements_beside_false_alarms():
    key3 = KEY2.replace("eval", "train")
    verdicts = [
        _v(KEY, "status", "unchanged"), _v(KEY, "time", "improved"), _v(KEY, "memory", "unchanged"),
        _v(KEY2, "status", "unchanged"), _v(KEY2, "time", "regressed"), _v(KEY2, "memory", "improved"),
        _v(key3, "status", "unchanged"), _v(key3, "time", "unchanged"),
    ]
    fig = bg.aa_figures(verdicts)
    assert fig["cases"] == 3
    assert (fig["cases_regressed"], fig["regressed_cases"]) == (1, [KEY2])
    assert (fig["cases_improved"], fig["improved_cases"]) == (2, sorted([KEY, KEY2]))
    assert fig["improved_share"] == pytest.approx(2 / 3)
    assert (fig["cases_flagged"], fig["flagged_share"]) == (2, pytest.approx(2 / 3))
    assert fig["kinds"]["time"]["improved"] == 1 and fig["kinds"]["time"]["improved_share"] == pytest.approx(1 / 3)
    assert fig["kinds"]["memory"]["improved"] == 1


def test_fault_figures_count_false_improvements_on_unaffected_cases():
    fault = bg.FAULTS["slow10"]
    affected = KEY.replace("mswr_net_tiny", "cbam_classifier_tiny")
    unaffected = KEY2.replace("cbam_classifier_tiny", "attention_mha_tiny")
    verdicts = [
        _v(affected, "status", "unchanged"), _v(affected, "time", "regressed"),
        _v(unaffected, "status", "unchanged"), _v(unaffected, "time", "improved"),
    ]
    fig = bg.fault_figures(verdicts, fault, {}, bg.AFFECTED_MODELS)
    assert (fig["affected"], fig["targets"], fig["detected"]) == (1, 1, 1)
    assert (fig["unaffected"], fig["false_alarms"], fig["false_improved"]) == (1, 0, 1)
    assert fig["false_improved_cases"] == [unaffected] and fig["false_improved_share"] == 1.0
    # Injected into every model, the same verdicts leave no unaffected case, and the
    # improved one is a missed target.
    fig = bg.fault_figures(verdicts, fault, {}, None)
    assert (fig["unaffected"], fig["targets"], fig["detected"]) == (0, 2, 1)
    assert fig["missed_cases"] == [unaffected]


# ---------------------------------------------------------------- affected / unaffected

def _keys(name, only=()):
    sc = scen.load(scen.resolve_path(name))
    return [bg.parse_case_key(c.key) for c, _ in scen.expand(sc, scen.parse_only(list(only)))]


SCENARIOS = {
    "gate_bench": ("gate_bench", (), sorted(bg.FAULTS)),
    "quick": ("gate_bench", bg.QUICK_ONLY, sorted(bg.FAULTS)),
    "workflow": ("smoke", (), sorted(bg.WORKFLOW_FAULTS)),
}


@pytest.mark.parametrize("where", sorted(SCENARIOS))
def test_every_fault_has_affected_and_unaffected_cases(where):
    name, only, faults = SCENARIOS[where]
    cases = _keys(name, only)
    for fault_name in faults:
        fault = bg.FAULTS[fault_name]
        affected = [c for c in cases if bg.is_affected(fault, c, bg.AFFECTED_MODELS)]
        unaffected = [c for c in cases if not bg.is_affected(fault, c, bg.AFFECTED_MODELS)]
        assert affected and unaffected, (where, fault_name, len(affected), len(unaffected))
        assert all(c["model"] in bg.AFFECTED_MODELS or not fault.scoped for c in affected)
        if fault.scoped:  # models outside the scope are unaffected, whatever the fault touches
            assert any(c["model"] not in bg.AFFECTED_MODELS for c in unaffected)


def test_the_split_of_gate_bench():
    cases = _keys("gate_bench")
    models = {c["model"] for c in cases}
    assert len(models & set(bg.AFFECTED_MODELS)) == 7 and len(models - set(bg.AFFECTED_MODELS)) == 7
    slow = bg.FAULTS["slow10"]
    assert sum(bg.is_affected(slow, c, bg.AFFECTED_MODELS) for c in cases) == 39  # 7 x 4, mswr's 8, 3 big
    assert all(bg.is_affected(slow, c, None) for c in cases)  # --fault-models all: every case
    big = [c for c in cases if c["batch"] == "48"]
    assert sorted(c["model"] for c in big if bg.is_affected(bg.FAULTS["mem10"], c, bg.AFFECTED_MODELS)) == \
        ["mswr_net_tiny", "mswr_net_tiny", "sharp_tiny"]
    assert [c["model"] for c in big if not bg.is_affected(bg.FAULTS["mem10"], c, bg.AFFECTED_MODELS)] == \
        ["hsifusion_tiny"]
    drift = bg.FAULTS["drift"]
    assert not any(bg.is_affected(drift, c, None) for c in cases if c["precision"] != "fp32")
    ckpt = bg.FAULTS["ckpt"]
    hit = [c for c in cases if bg.is_affected(ckpt, c, ())]  # not scoped: the models given do not matter
    assert len(hit) == 6 and {c["model"] for c in hit} == {"mswr_net_tiny"}
    work = [c for c in cases if bg.is_affected(bg.FAULTS["work10"], c, bg.AFFECTED_MODELS)]
    assert work == [c for c in cases if bg.is_affected(slow, c, bg.AFFECTED_MODELS)]  # the same 39
    # --fault-models all: every model work10 is calibrated for, AFFECTED_MODELS
    assert work == [c for c in cases if bg.is_affected(bg.FAULTS["work10"], c, None)]
    tmem = [c for c in cases if bg.is_affected(bg.FAULTS["tmem10"], c, bg.AFFECTED_MODELS)]
    assert len(tmem) == 15 and {c["mode"] for c in tmem} == {"train"}  # 2 x 2, mswr's 8, 3 big
    assert {c["model"] for c in tmem} == set(bg.gf.TMEM10_SITES)


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo)] + list(args), capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_fault_commit_only_adds_the_activation_and_the_fault_module(tmp_path):
    clone = tmp_path / "clone"
    (clone / "harness" / "runner").mkdir(parents=True)
    (clone / "harness" / "runner" / "fault_hooks.py").write_text("# the runner's hooks\n")
    _git(tmp_path, "init", "--quiet", str(clone))
    _git(clone, "add", ".")
    _git(clone, *bg.COMMIT_ID, "commit", "--quiet", "-m", "base")
    base = _git(clone, "rev-parse", "HEAD")
    faults = [bg.FAULTS["slow10"].injected(bg.AFFECTED_MODELS), bg.FAULTS["ckpt"].injected(bg.AFFECTED_MODELS)]
    head = bg.fault_commit(str(clone), base, faults, "inject")
    assert _git(clone, "rev-parse", "HEAD") == base  # the clone is back on the base side
    changed = _git(clone, "diff", "--name-status", base, head).splitlines()
    assert sorted(changed) == sorted(["A\t" + fault_hooks.ACTIVATION,
                                      "A\t%s/gate_faults.py" % fault_hooks.ACTIVATION_DIR])
    doc = json.loads(_git(clone, "show", "%s:%s" % (head, fault_hooks.ACTIVATION)))
    # slow10 into the models given, ckpt picks its own model
    assert doc["faults"] == [["slow10", sorted(bg.AFFECTED_MODELS)], ["ckpt", None]]
    assert _git(clone, "show", "%s:%s/gate_faults.py" % (head, fault_hooks.ACTIVATION_DIR)) == \
        open(os.path.join(ROOT, "benchmarks", "gate_faults.py"), encoding="utf-8").read().rstrip("\n")
    # a revision without the runner's hooks would run every fault unfaulted: refused
    _git(clone, "rm", "--quiet", "harness/runner/fault_hooks.py")
    _git(clone, *bg.COMMIT_ID, "commit", "--quiet", "-m", "older")
    with pytest.raises(bg.BenchError, match="fault_hooks.py is missing"):
        bg.fault_commit(str(clone), _git(clone, "rev-parse", "HEAD"), faults, "inject")


def test_tmem10_targets_need_the_models_growth_above_both_floors():
    fault = bg.FAULTS["tmem10"]
    key = KEY.replace("checkpoint=reentrant", "checkpoint=none")  # mswr_net_tiny train: affected
    eval_key = key.replace("mode=train", "mode=eval")
    frac = bg.gf.TMEM10_GROWTH["mswr_net_tiny"]
    big, small = int(2 * 65536 / frac), int(0.5 * 65536 / frac)
    verdicts = [_v(key, "status", "unchanged"), _v(eval_key, "status", "unchanged"),
                _v(key, "memory", "regressed", measure="tensor_peak_bytes", baseline=big),
                _v(eval_key, "memory", "unchanged", measure="tensor_peak_bytes", baseline=big)]
    fig = bg.fault_figures(verdicts, fault, {}, bg.AFFECTED_MODELS)
    assert (fig["affected"], fig["targets"], fig["detected"], fig["unaffected"]) == (1, 1, 1, 1)
    verdicts[2] = _v(key, "memory", "unchanged", measure="tensor_peak_bytes", baseline=small)
    assert bg.fault_figures(verdicts, fault, {}, bg.AFFECTED_MODELS)["targets"] == 0
    verdicts[2] = _v(key, "memory", "unchanged", measure="peak_mem_bytes", baseline=big)  # no tensor peak
    assert bg.fault_figures(verdicts, fault, {}, bg.AFFECTED_MODELS)["targets"] == 0
    verdicts[2] = _v(key, "memory", "regressed", measure="tensor_peak_bytes", baseline=small)
    fig = bg.fault_figures(verdicts, fault, {"tensor_memory_floor_bytes": 1024}, bg.AFFECTED_MODELS)
    assert (fig["targets"], fig["detected"]) == (1, 1)


# ---------------------------------------------------------------- what the workflow runs

def test_workflow_run_reads_the_pull_request_workflows_scenario_and_rounds(tmp_path):
    wf = bg.workflow_run()
    assert wf["scenario"] == os.path.join(ROOT, "scenarios", "smoke.toml")
    # it counts instructions and passes no --rounds: ab's one round a side
    assert wf["instructions"] and wf["rounds"] == 1 and not wf["rounds_given"] and "nox -s ab --" in wf["command"]
    other = tmp_path / "wf.yml"
    other.write_text("steps:\n  - name: ab\n    run: >-\n      nox -s ab --\n"
                     "      --base ${{ x }} --head '${{ y }}' --rounds 5\n"
                     "      default\n\n  - name: next\n    run: echo scenarios/other.toml\n")
    wf = bg.workflow_run(str(other))
    assert (wf["scenario"], wf["rounds"]) == (os.path.join(ROOT, "scenarios", "default.toml"), 5)
    assert wf["rounds_given"] and not wf["instructions"]
    other.write_text("run: nox -s ab -- --base X smoke\n")  # no --head: ab would refuse it
    with pytest.raises(bg.BenchError, match="cannot read"):
        bg.workflow_run(str(other))
    other.write_text("steps: []\n")
    with pytest.raises(bg.BenchError, match="no `nox -s ab --`"):
        bg.workflow_run(str(other))


def test_workflow_run_reads_instructions_and_abs_round_default_with_them(tmp_path):
    other = tmp_path / "wf.yml"
    other.write_text("run: >-\n  nox -s ab --\n  --base ${{ x }} --head ${{ y }}\n  scenarios/smoke.toml\n")
    wf = bg.workflow_run(str(other))
    assert (wf["instructions"], wf["rounds"], wf["rounds_given"]) == (False, 3, False)
    other.write_text("run: >-\n  nox -s ab --\n  --base ${{ x }} --head ${{ y }}\n"
                     "  --instructions scenarios/smoke.toml\n")
    wf = bg.workflow_run(str(other))
    assert (wf["instructions"], wf["rounds"], wf["rounds_given"]) == (True, 1, False)
    other.write_text("run: nox -s ab -- --base X --head Y --instructions --rounds 2 smoke\n")
    assert (bg.workflow_run(str(other))["rounds"], bg.workflow_run(str(other))["instructions"]) == (2, True)
    assert [bg.ab_default_rounds(i) for i in (False, True)] == [3, 1]


def _plan(*argv, workflow=bg.WORKFLOW):
    return bg.make_plan(bg.build_parser().parse_args(list(argv)), workflow)


def test_plans_with_instructions(tmp_path):
    plan = _plan()
    assert plan["instructions"] is False and plan["rounds"] == 10
    plan = _plan("--instructions")
    assert plan["instructions"] is True and plan["rounds"] == 1  # one round a side decides
    assert _plan("--instructions", "--quick")["rounds"] == 1
    assert _plan("--instructions", "--rounds", "4")["rounds"] == 4
    # a workflow without --instructions: ab's 3 rounds, or its 1 when --instructions is added here
    wf = tmp_path / "wf.yml"
    wf.write_text("run: nox -s ab -- --base ${{ a }} --head ${{ b }} scenarios/smoke.toml\n")
    plan = _plan("--workflow", workflow=str(wf))
    assert (plan["instructions"], plan["rounds"]) == (False, 3)
    plan = _plan("--workflow", "--instructions", workflow=str(wf))
    assert (plan["instructions"], plan["rounds"]) == (True, 1) and plan["what"].endswith("--instructions added")
    # one that passes --instructions and no --rounds (as ab-gate.yml): instructions on, 1 round
    wf.write_text("run: nox -s ab -- --base ${{ a }} --head ${{ b }} --instructions scenarios/smoke.toml\n")
    plan = _plan("--workflow", workflow=str(wf))
    assert (plan["instructions"], plan["rounds"]) == (True, 1) and "added" not in plan["what"]
    assert _plan("--workflow", "--rounds", "3", workflow=str(wf))["rounds"] == 3
    wf.write_text("run: nox -s ab -- --base ${{ a }} --head ${{ b }} --rounds 5 scenarios/smoke.toml\n")
    assert _plan("--workflow", "--instructions", workflow=str(wf))["rounds"] == 5  # the workflow's own count
    assert "1 with --instructions" in " ".join(bg.build_parser().format_help().split())


def test_plans():
    plan = _plan("--workflow")
    assert plan["scenario"].endswith(os.path.join("scenarios", "smoke.toml")) and plan["rounds"] == 1
    assert plan["instructions"]  # ab-gate.yml counts instructions
    assert plan["faults"] == list(bg.WORKFLOW_FAULTS) and plan["extra"] == []
    assert "ab-gate.yml" in plan["what"]
    assert _plan("--workflow", "--rounds", "5", "--faults", "slow10")["rounds"] == 5
    plan = _plan()
    assert plan["scenario"] == bg.DEFAULT_SCENARIO and plan["rounds"] == 10 and plan["faults"] == list(bg.FAULTS)
    assert plan["models"] == bg.AFFECTED_MODELS
    plan = _plan("--quick", "--fault-models", "all", "--only-aa")
    assert plan["rounds"] == bg.QUICK_ROUNDS and plan["models"] is None and plan["faults"] == []
    assert plan["extra"] == ["--only", bg.QUICK_ONLY[0]]
    assert _plan("--scenario", "smoke")["scenario"] == os.path.join(ROOT, "scenarios", "smoke.toml")
    for argv, message in ((["--workflow", "--quick"], "pick one"), (["--workflow", "--scenario", "smoke"], "leave"),
                          (["--faults", "slow10,nope"], "unknown"), (["--rounds", "0"], ">= 1"),
                          (["--scenario", "no_such_scenario"], "no such file"), (["--fault-models", ","], "at least")):
        with pytest.raises(bg.BenchError, match=message):
            _plan(*argv)


def test_threshold_tables_skip_the_defaults_twice():
    assert list(bg.threshold_tables({})) == ["defaults", "defaults +probe", "defaults +samples"]
    tables = bg.threshold_tables({"time_factor": 1.05})
    assert tables["scenario +probe"] == {"time_factor": 1.05, "time_basis": "probe"} and tables["defaults"] == {}
    assert tables["scenario +samples"] == {"time_factor": 1.05, "time_test": "samples"}


def test_round_spread_from_records():
    import math

    def rec(key, samples, probes, status="ok"):
        return {"case_key": key, "status": status, "timing": {"samples_s": samples, "probe_samples_s": probes}}

    rows = [rec(KEY, [0.010, 0.010, 0.011], [0.001] * 3), rec(KEY, [0.020, 0.020, 0.021], [0.002] * 3),
            rec(KEY2, [0.005], None), rec(KEY2, [0.006], None), rec(KEY2, [0.1], None, status="error"),
            rec("model=once", [0.001], [0.001])]
    per_case = bg.round_medians(rows)
    assert per_case[KEY] == [(0.010, 10.0), (0.020, 10.0)] and per_case[KEY2] == [(0.005, None), (0.006, None)]
    fig = bg.round_spread(per_case)
    sd_key, sd_key2 = math.log(2) / math.sqrt(2), math.log(1.2) / math.sqrt(2)  # sample sd of two values
    assert fig["cases"] == 2 and fig["step_sd_log"] == pytest.approx((sd_key + sd_key2) / 2)
    assert fig["probe_cases"] == 1 and fig["probe_sd_log"] == pytest.approx(0.0)  # the probe slowed alike
    assert fig["widest"] == (KEY, 0.010, 0.020, 2)
    assert bg.round_spread({})["step_sd_log"] is None


# ---------------------------------------------------------------- bench_timing

def test_bench_timing_alternates_a_b_b_a_as_the_ab_runner():
    calls = []

    def measure(side):
        calls.append(side)
        return float(len(calls))

    ours, theirs, order = bt.interleave(3, measure)
    assert "".join(calls) == order == "ABBAAB" == "".join(round_order(3))
    # round i is (A[i], B[i]), measured back to back: the 1st and 2nd calls, the 4th and 3rd, ...
    assert ours == [1.0, 4.0, 5.0] and theirs == [2.0, 3.0, 6.0]
    assert bt.SIDES == {"A": "harness", "B": "blocked_autorange"}


def test_bench_timing_overhead_parts():
    rec = {"wall_s": 1.0, "timing": {"warmup_s": 0.2, "timed_s": 0.5, "probe_samples_s": [0.01, 0.02, 0.03]}}
    parts = bt.overhead_parts(rec, 2.0)
    assert parts["overhead_s"] == pytest.approx(0.3)
    assert parts["probe_s"] == pytest.approx(0.12) and parts["rest_s"] == pytest.approx(0.18)
    rec["timing"]["probe_samples_s"] = None  # no probe (CUDA, or speed_probe = false)
    assert bt.overhead_parts(rec, 2.0)["probe_s"] == 0.0
    assert bt.run_fixed_cost(5.0, [{"wall_s": 1.0}, {"wall_s": 2.5}]) == pytest.approx(1.5)
