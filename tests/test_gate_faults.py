"""benchmarks/gate_faults.py: each fault, through the runner's hooks, does to a real tiny case what
bench_gate says it does, and reaches a real run only through the fault commit's activation."""
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

import models
from harness.record.schema import SCHEMA_VERSION, Record
from harness.runner import execute, fault_hooks
from harness.runner.memory import tensor_peak_bytes
from harness.scenario import spec as scen
from tests.benchmarks import load_benchmark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


bg = load_benchmark("bench_gate")
gf = bg.gf  # the module bench_gate activates
AFFECTED, UNAFFECTED = "cbam_classifier_tiny", "attention_mha_tiny"


@contextlib.contextmanager
def injected(*faults):
    """``(name, models)`` faults installed for the block, as a worker installs an activation."""
    fault_hooks.clear()
    try:
        gf.install(list(faults))
        yield
    finally:
        fault_hooks.clear()


def _case(model, mode="eval", precision="fp32", **kw):
    case = dict(model=model, mode=mode, batch_size=2, size=models.get_spec(model).default_sizes[0],
                precision=precision, checkpoint="none", device="cpu", channels_last=False, compile=False)
    case.update(kw)
    return case


def test_every_fault_of_the_benchmarks_has_an_installer_and_unknown_ones_are_refused():
    assert set(bg.FAULTS) | {"cswin"} == set(gf.INSTALLERS)
    with pytest.raises(ValueError, match="unknown fault"):
        gf.install([("slow11", None)])


def test_slow10_busy_waits_a_tenth_of_each_real_step_in_the_affected_models_only():
    case = _case(AFFECTED)
    step = execute.case_step(case, 0)[3]
    own = []

    def timed():
        t0 = time.perf_counter()
        step()
        own.append(time.perf_counter() - t0)

    with injected(("slow10", [AFFECTED])):
        assert fault_hooks.wrap(fault_hooks.TIMED_STEP, _case(UNAFFECTED), timed) is timed
        slowed = fault_hooks.wrap(fault_hooks.TIMED_STEP, case, timed)
        for _ in range(3):
            t0 = time.perf_counter()
            slowed()
            assert time.perf_counter() - t0 >= 1.10 * own[-1]


def _run_smoke_case(model):
    """One tiny eval fp32 case of smoke.toml through run_case, as cheaply as it goes; the result
    must make a record the runner's strict writer accepts (as the manager builds it)."""
    sc = scen.load(scen.resolve_path("smoke"))
    case = [c for c, _ in scen.expand(sc, scen.parse_only(["model=" + model, "mode=eval", "precision=fp32"]))][0]
    measure = dict(sc.measure, warmup_iters=1, warmup_s=0.0, min_sample_s=0.0, samples=1, case_budget_s=1.0,
                   speed_probe=False, flops=False)
    result = execute.run_case(case.to_dict(), {"measure": measure, "tolerance": sc.tolerance, "task": sc.task})
    assert result["status"] == "ok", result.get("reason")
    record = {"schema_version": SCHEMA_VERSION, "run_id": "r", "time_utc": "2024-01-01T00:00:00Z",
              "scenario": sc.name, "env_label": "bench", "case_key": case.key, "case": case.to_dict(), "env": None}
    record.update(result)
    record.setdefault("reason", None)
    record["wall_s"] = 1.0
    Record.from_dict(record, strict=True)  # RecordError: a hook added what the record cannot hold
    return result


def test_mem10_holds_a_tenth_of_the_affected_cases_peak_and_notes_it(tmp_path, monkeypatch):
    notes = tmp_path / "held.jsonl"
    monkeypatch.setenv(gf.MEM_LOG_ENV, str(notes))
    with injected(("mem10", [AFFECTED])):
        peak = _run_smoke_case(AFFECTED)["memory"]["peak_bytes"]
        _run_smoke_case(UNAFFECTED)
        held = gf.held_bytes(str(notes))
        assert list(held) == [k for k in held if "model=%s;" % AFFECTED in k] and len(held) == 1
        assert 0 < list(held.values())[0][0] <= peak
        monkeypatch.delenv(gf.MEM_LOG_ENV)
        _run_smoke_case(AFFECTED)  # no variable, no note
    assert sum(map(len, gf.held_bytes(str(notes)).values())) == 1


def test_drift_rounds_the_fp32_outputs_of_the_affected_models_through_bf16():
    case = _case(AFFECTED)
    torch.manual_seed(0)
    clean = execute.case_step(case, 0)[4]()[0]
    with injected(("drift", [AFFECTED])):
        torch.manual_seed(0)
        drifted = execute.case_step(case, 0)[4]()[0]
        fn = lambda x: x  # noqa: E731 - a call the hook would wrap
        assert fault_hooks.wrap(fault_hooks.MODEL_CALL, _case(AFFECTED, precision="amp_bf16"), fn) is fn
        assert fault_hooks.wrap(fault_hooks.MODEL_CALL, _case(UNAFFECTED), fn) is fn
    for a, b in zip(clean, drifted):
        assert not torch.equal(a, b)
        assert torch.equal(b, b.to(torch.bfloat16).to(b.dtype))  # bf16 values, held wider
        assert float((a - b).abs().max() / a.abs().max()) < 1e-2


@pytest.mark.parametrize("fault", ["ckpt", "cswin"])
def test_twin_faults_build_the_registered_twin_with_the_same_weights(fault):
    healthy, twin = gf.TWINS[fault]
    case = _case(healthy, mode="train")
    model = execute._build(case, 0, True)[0]
    with injected((fault, [UNAFFECTED])):  # one model, whatever the models given
        swapped = execute._build(case, 0, True)[0]
        other = execute._build(_case(AFFECTED), 0, True)[0]
    assert type(swapped) is models.get_spec(twin).model_cls and swapped.config == models.get_spec(twin).config
    assert type(other).__name__ == "CBAMClassifier"
    assert swapped.config != model.config or type(swapped) is not type(model)
    want, got = model.state_dict(), swapped.state_dict()
    assert list(want) == list(got) and all(torch.equal(want[k], got[k]) for k in want)


# ---------------------------------------------------------------- model-side faults (work10, tmem10)

#: Two affected models (sharp_tiny in both tables) and one outside bench_gate's AFFECTED_MODELS.
ZOO_CASES = [(m, mode) for m in ("sharp_tiny", "llm_decoder_tiny", UNAFFECTED) for mode in ("train", "eval")]


def _zoo_probe():
    """Per (model, mode), one fp32 step of the runner's own step: a digest of its outputs and
    gradients, its op counts under the profiler and its exact tensor peak."""
    out = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, mode in ZOO_CASES:
            _, _, _, step, step_keep, _ = execute.case_step(_case(name, mode), 0)
            torch.manual_seed(0)
            outputs, grads = step_keep()
            digest = hashlib.sha256()
            for t in list(outputs) + [g for _, g in sorted((grads or {}).items()) if g is not None]:
                digest.update((t.detach().double() + 0.0).numpy().tobytes())  # + 0.0: -0.0 and 0.0 alike
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                step()
            ops = {e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::")}
            out["%s/%s" % (name, mode)] = {"digest": digest.hexdigest(), "ops": sum(ops.values()),
                                           "new_ones": ops.get("aten::new_ones", 0),
                                           "peak": tensor_peak_bytes(step)[0]}
    finally:
        torch.set_num_threads(threads)
    return out


def _same(new, base):
    """Probes alike but for the op total, which torch 1.10's profiler moves by a few ops from
    run to run (without any fault too)."""
    return {k: v for k, v in new.items() if k != "ops"} == {k: v for k, v in base.items() if k != "ops"}


@pytest.fixture(scope="module")
def zoo_baseline():
    fault_hooks.clear()
    return _zoo_probe()


def test_zoo_fault_sites_exist():
    assert set(gf.WORK10_SITES) == set(bg.AFFECTED_MODELS)
    assert set(gf.TMEM10_SITES) == set(gf.TMEM10_GROWTH) < set(bg.AFFECTED_MODELS)
    for table in (gf.WORK10_SITES, gf.TMEM10_SITES):
        for name, sites in table.items():
            modules = dict(models.create_model(name).named_modules())
            assert all(path in modules and times >= 1 for path, times in sites), name
    assert gf.sites(gf.TMEM10_SITES, ["sharp_tiny", UNAFFECTED]) == {"sharp_tiny": gf.TMEM10_SITES["sharp_tiny"]}
    assert gf.sites(gf.TMEM10_SITES, None) == gf.TMEM10_SITES


def test_work10_repeats_work_in_the_affected_models_only_and_changes_no_value(zoo_baseline):
    with injected(("work10", bg.AFFECTED_MODELS)):
        got = _zoo_probe()
    for key, base in zoo_baseline.items():
        new = got[key]
        assert new["digest"] == base["digest"], key  # outputs and gradients, value for value
        if key.startswith(UNAFFECTED + "/"):
            assert _same(new, base), key
        else:  # each hooked call adds its module's op, a mul and an add at least (4: 1.10's jitter)
            hooks = sum(times for _, times in gf.WORK10_SITES[key.split("/")[0]])
            assert new["ops"] - base["ops"] > 3 * hooks + 4, (key, base["ops"], new["ops"])


def test_tmem10_raises_the_tensor_peak_of_affected_train_steps_only(zoo_baseline):
    with injected(("tmem10", bg.AFFECTED_MODELS)):
        got = _zoo_probe()
    for key, base in zoo_baseline.items():
        new = got[key]
        assert new["digest"] == base["digest"], key
        name, mode = key.split("/")
        if name not in gf.TMEM10_SITES or mode == "eval":  # llm_decoder_tiny: in AFFECTED_MODELS, not here
            assert _same(new, base), key
            continue
        assert new["new_ones"] - base["new_ones"] == sum(times for _, times in gf.TMEM10_SITES[name]), key
        # above the gate's 5% on 1.10 too (the calibrated growths, TMEM10_GROWTH, are 2.15's)
        assert new["peak"] > 1.05 * base["peak"], (key, base["peak"], new["peak"])


# ---------------------------------------------------------------- the activation, end to end

SCENARIO = """[scenario]
name = "drift"

[matrix]
model = ["%s", "%s"]
mode = ["eval"]
batch_size = [2]
size = ["default"]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]

[measure]
warmup_iters = 1
warmup_s = 0.0
min_sample_s = 0.001
samples = 1
case_budget_s = 2.0
speed_probe = false
flops = false
""" % (AFFECTED, UNAFFECTED)


def test_a_fault_commits_files_reach_a_real_run_through_the_worker(tmp_path):
    """What the fault commit adds (bench_gate.apply_faults) to a copy of this checkout's runner and
    zoo makes a real `harness run`, with the variable set, fail the affected case's accuracy only."""
    tree = tmp_path / "tree"
    for package in ("harness", "models"):
        shutil.copytree(os.path.join(ROOT, package), str(tree / package), ignore=shutil.ignore_patterns("__pycache__"))
    added = bg.apply_faults(str(tree), [bg.FAULTS["drift"].injected([AFFECTED])])
    assert sorted(added) == sorted([fault_hooks.ACTIVATION, fault_hooks.ACTIVATION_DIR + "/gate_faults.py"])
    scenario = tmp_path / "drift.toml"
    scenario.write_text(SCENARIO)
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    env[fault_hooks.ENV] = "1"
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(scenario), "--out", str(out), "--env-label",
                           "b"], cwd=str(tree), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(str(out / "b.jsonl"), encoding="utf-8") as fh:
        records = {r["case"]["model"]: r for r in (json.loads(line) for line in fh if line.strip())}
    assert records[AFFECTED]["status"] == "ok" and records[AFFECTED]["accuracy"]["passed"] is False
    assert records[UNAFFECTED]["accuracy"]["passed"] is True
