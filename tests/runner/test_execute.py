"""One case in process: real small models, real measurements, classified failures."""
import pytest
import torch

import models
from harness.runner import execute, memory, speed_probe
from harness.scenario import spec as scenario
from tests.runner.helpers import read_jsonl, run_harness, write_scenario

SETTINGS = {
    "measure": dict(scenario.MEASURE_DEFAULTS, warmup_iters=1, warmup_s=0.0, min_sample_s=0.002, samples=3,
                    case_budget_s=60.0),  # generous: a loaded CI machine must not trim samples here
    "tolerance": dict(scenario.TOLERANCE_DEFAULTS),
    "task": dict(scenario.TASK_DEFAULTS),
}


MATRIX_ONE = """
model = ["%s"]
mode = ["%s"]
batch_size = [2]
size = [%d]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]
"""


def case(**kw):
    base = dict(model="cbam_classifier_tiny", mode="train", batch_size=2, size=16, precision="fp32",
                checkpoint="none", device="cpu", channels_last=False, compile=False)
    base.update(kw)
    return base


def test_fp32_train_case_measures_speed_memory_and_matches_reference():
    r = execute.run_case(case(), SETTINGS)
    assert r["status"] == "ok", r
    t = r["timing"]
    assert len(t["samples_s"]) == 3 and all(s > 0 for s in t["samples_s"])
    assert t["median_s"] > 0 and t["throughput_per_s"] == pytest.approx(2 / t["median_s"])
    # The exact tensor peak: the process high-water mark of so small a case can stay within memory an
    # earlier test freed but kept resident (it follows the workload: test_peak_memory_follows_the_workload...)
    assert r["memory"]["tensor_peak_bytes"] > 0 and r["memory"]["method"] in ("linux_vmhwm", "ru_maxrss")
    acc = r["accuracy"]
    # Same weights, same inputs, same arithmetic: the reference is reproduced exactly.
    assert acc["passed"] and acc["outputs"]["rel_err"] == 0.0 and acc["grads"]["rel_err"] == 0.0
    assert len(acc["output_probe"]) == 20  # every value of the (2, 10) logits: fewer than 32
    assert 0 <= r["overhead_s"] < r["duration_s"]
    # the speed probe ran once after each sample, and says which probe it was
    assert len(t["probe_samples_s"]) == 3 and all(p > 0 for p in t["probe_samples_s"])
    assert t["probe"] == speed_probe.DESCRIPTION


def test_peak_memory_follows_the_workload_and_names_its_method():
    if not memory._can_reset_hwm():
        r = execute.run_case(case(), SETTINGS)
        assert r["memory"]["method"] == "ru_maxrss"
        pytest.skip("no resettable high-water mark (/proc/self/clear_refs): ru_maxrss only shows growth")
    # Batch 16 of the same model and size holds 8x the activations of batch 2: at side 256, 176 MiB
    # against 27-30 MiB (torch 2.15; at side 64 before the model had its ResNet stem, 54-64 against
    # 8-11 MiB in 10 processes on 1.10 and 2.x); the CPU high-water mark moves by 1-3 MiB run to
    # run, and the weights, optimizer and probe are the same in both.
    settings = dict(SETTINGS, measure=dict(SETTINGS["measure"], samples=1))
    # The first train case of a process also counts one-time costs (code pages, allocator
    # pools: +27 MiB on 1.10, +190 MiB on 2.x): a small case first takes them out of the figures.
    execute.run_case(case(batch_size=2, size=16), settings)
    # small, big, small: the peak must rise with the workload and fall back with it (a peak
    # that is not reset between cases would carry the big one into the last).
    runs = [execute.run_case(case(batch_size=b, size=256), settings) for b in (2, 16, 2)]
    assert [r["status"] for r in runs] == ["ok"] * 3
    assert [r["memory"]["method"] for r in runs] == ["linux_vmhwm"] * 3
    small, big, again = (r["memory"]["peak_bytes"] / 2 ** 20 for r in runs)
    why = "peak %.1f MiB at batch 16 between %.1f and %.1f MiB at batch 2" % (big, small, again)
    assert big > 3 * max(small, again, 1.0) and big - max(small, again) > 32, why


def test_speed_probe_can_be_switched_off():
    settings = dict(SETTINGS, measure=dict(SETTINGS["measure"], speed_probe=False))
    t = execute.run_case(case(mode="eval"), settings)["timing"]
    assert t["probe_samples_s"] is None and t["probe"] is None and len(t["samples_s"]) == 3


def test_eval_case_has_no_gradient_check():
    r = execute.run_case(case(mode="eval"), SETTINGS)
    assert r["status"] == "ok" and r["accuracy"]["grads"] is None and r["accuracy"]["passed"]


def test_reentrant_checkpointing_keeps_gradients_of_the_healthy_model():
    r = execute.run_case(case(checkpoint="reentrant"), SETTINGS)
    assert r["status"] == "ok" and r["accuracy"]["passed"], r["accuracy"]
    assert r["accuracy"]["grads"]["missing"] == 0


def _api_takes_use_reentrant():
    """The oracle, independent of the zoo's detector: does torch.utils.checkpoint take use_reentrant=False?"""
    import torch.utils.checkpoint

    x = torch.ones(2, requires_grad=True)
    try:
        torch.utils.checkpoint.checkpoint(torch.sin, x, use_reentrant=False).sum().backward()
    except (TypeError, ValueError):  # 1.10: "Unexpected keyword arguments: use_reentrant"
        return False
    return x.grad is not None


def test_non_reentrant_is_unsupported_exactly_where_the_api_lacks_it():
    r = execute.run_case(case(checkpoint="non_reentrant"), SETTINGS)
    assert models._base.HAS_NON_REENTRANT_CHECKPOINT == _api_takes_use_reentrant()
    if _api_takes_use_reentrant():
        assert r["status"] == "ok", r.get("reason")
    else:
        assert r["status"] == "unsupported" and "use_reentrant" in r["reason"]


def _autocast_lowers(prec):
    """The oracle, independent of the harness's detector: does this build's CPU autocast run a
    linear layer in the precision's low dtype? (``torch.autocast`` where it exists, else the CPU one.)"""
    dtype = {"amp_fp16": torch.float16, "amp_bf16": torch.bfloat16}[prec]
    try:
        ctx = torch.autocast("cpu", dtype=dtype) if hasattr(torch, "autocast") else torch.cpu.amp.autocast(
            dtype=dtype)
        with ctx:
            y = torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4))
        return y.dtype == dtype
    except Exception:  # noqa: BLE001 - any refusal means: no autocast to this dtype here
        return False


@pytest.mark.parametrize("prec", ["amp_fp16", "amp_bf16"])
def test_autocast_support_is_detected_not_guessed(prec):
    r = execute.run_case(case(precision=prec), SETTINGS)
    if not _autocast_lowers(prec):
        assert r["status"] == "unsupported" and "utocast" in r["reason"]
        return
    # Where this build's autocast works for the dtype, the case must run and really be in lower
    # precision: calling it unsupported (or silently running fp32) is a bug.
    assert r["status"] == "ok", r.get("reason")
    acc = r["accuracy"]
    outputs, grads = acc["outputs"], acc["grads"]
    assert outputs["rel_err"] > 0 and grads["rel_err"] > 0 and grads["missing"] == 0, acc
    # The accuracy verdict says what it can judge, on every machine: a pass only where the rule could
    # have failed a result carrying no information (limit x expected error < 100%) and the error is
    # within the limit; otherwise "not judged" with the figures, never a pass (docs/accuracy.md).
    limit = acc["limit"]
    judgeable = all(g["expected_err"] * limit < 1.0 for g in (outputs, grads))
    if acc["passed"] is True:
        assert judgeable and acc["failures"] == [] and all(g["ratio"] <= limit for g in (outputs, grads)), acc
    elif acc["passed"] is None:
        assert not judgeable and acc["failures"], acc
        assert all(f.startswith("not judged: this precision cannot compute these values here") for f in
                   acc["failures"]), acc
    else:
        assert acc["failures"] and (not judgeable or any(g["ratio"] > limit for g in (outputs, grads))
                                    or grads["missing"]), acc


def test_cuda_case_without_cuda_is_unsupported_with_reason():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = execute.run_case(case(device="cuda"), SETTINGS)
    assert r["status"] == "unsupported" and "torch.cuda.is_available() is False" in r["reason"]


def _sin2(x):
    return (x * 2).sin()


def _compile_failure():
    """Feature detection: None if torch.compile's default backend builds a CPU kernel here, else why not."""
    try:
        torch.compile(_sin2)(torch.ones(3))  # a pointwise kernel: inductor generates and compiles C++
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means this build/machine cannot compile
        return str(exc).strip().split("\n")[0]


def _graphs_compiled():
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def test_compile_without_torch_compile_is_unsupported_naming_it():
    if hasattr(torch, "compile"):
        pytest.skip("torch %s has torch.compile (test_compile_is_feature_detected covers it)" % torch.__version__)
    r = execute.run_case(case(mode="eval", compile=True), SETTINGS)
    assert r["status"] == "unsupported" and "torch.compile" in r["reason"], r


@pytest.mark.skipif(not hasattr(torch, "compile"), reason="torch %s has no torch.compile "
                    "(test_compile_without_torch_compile_is_unsupported_naming_it covers it)" % torch.__version__)
def test_compile_is_feature_detected():
    torch._dynamo.reset()
    cannot = _compile_failure()
    graphs = _graphs_compiled()
    r = execute.run_case(case(mode="eval", compile=True), SETTINGS)
    if cannot is None:
        assert r["status"] == "ok", r.get("reason")
        assert r["accuracy"]["passed"], r["accuracy"]["failures"]
        assert _graphs_compiled() > graphs, "the case never went through torch.compile"
    else:  # e.g. no C++ compiler for inductor: the runner names the same cause
        assert r["status"] == "unsupported" and cannot in r["reason"], (cannot, r)


@pytest.mark.skipif(not hasattr(torch, "compile"), reason="torch %s has no torch.compile" % torch.__version__)
def test_compile_without_a_cxx_compiler_is_unsupported_naming_it():
    from torch._inductor import config as inductor_config

    torch._dynamo.reset()
    try:
        # No FX graph cache: a cached kernel from an earlier compile would skip the compiler.
        with inductor_config.patch({"cpp.cxx": (None, "torchmatrix-no-such-cxx"), "fx_graph_cache": False}):
            r = execute.run_case(case(mode="eval", compile=True, size=24), SETTINGS)
    finally:
        torch._dynamo.reset()
    assert r["status"] == "unsupported", r
    assert "No working C++ compiler" in r["reason"] and "torchmatrix-no-such-cxx" in r["reason"], r["reason"]


def _conv_input_formats(monkeypatch):
    """Spy on every model the runner builds: the memory format of its first conv's input."""
    seen = []
    create = models.create_model

    def spying_create(name, *args, **kwargs):
        model = create(name, *args, **kwargs)
        formats = set()
        seen.append(formats)
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_pre_hook(lambda mod, args: formats.add(
            "channels_last" if args[0].is_contiguous(memory_format=torch.channels_last)
            and not args[0].is_contiguous() else "contiguous"))
        return model

    monkeypatch.setattr(models, "create_model", spying_create)
    return seen


def test_channels_last_case_runs_in_channels_last_and_matches_reference(monkeypatch):
    seen = _conv_input_formats(monkeypatch)
    r = execute.run_case(case(mode="train", channels_last=True), SETTINGS)
    assert r["status"] == "ok", r.get("reason")
    assert r["accuracy"]["passed"], r["accuracy"]["failures"]
    assert r["accuracy"]["grads"]["missing"] == 0
    # The case's model saw channels_last activations; its fp32 and float64 references the default layout.
    assert seen == [{"channels_last"}, {"contiguous"}, {"contiguous"}], seen
    assert r["accuracy"]["reference"] == "float64" and r["accuracy"]["rule"] == "fp64-calibrated"


def test_channels_last_record_says_so(tmp_path):
    matrix = MATRIX_ONE % ("cbam_classifier_tiny", "train", 16) + "channels_last = [true]\n"
    path = write_scenario(tmp_path, matrix)
    proc = run_harness("run", path, "--out", str(tmp_path / "out"), "--env-label", "e")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (rec,) = read_jsonl(tmp_path / "out" / "e.jsonl")
    assert rec["status"] == "ok" and rec["accuracy"]["passed"], rec
    assert rec["case"]["channels_last"] is True and rec["case"]["compile"] is False
    assert rec["case_key"] == ("model=cbam_classifier_tiny;mode=train;batch=2;size=16;precision=fp32;"
                               "checkpoint=none;device=cpu;channels_last=1")
    assert " cl " in proc.stdout  # the progress line names the layout


@pytest.mark.parametrize("exc, status", [
    (RuntimeError("\"addmm_impl_cpu_\" not implemented for 'Half'"), "unsupported"),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom"),
    (models.UnsupportedError("non-reentrant checkpointing"), "unsupported"),
    (RuntimeError("InvalidCxxCompiler: No working C++ compiler found in torch._inductor.config.cpp.cxx: "
                  "(None, 'g++')"), "unsupported"),  # torch.compile on a machine without one
    (KeyError("x"), "error"),
])
def test_classify(exc, status):
    out = execute.classify(exc)
    assert out["status"] == status
    if status == "error":
        assert "KeyError" in out["reason"] and "traceback" in out


def test_python_O_gives_the_same_statuses(tmp_path):
    matrix = '''
model = ["cbam_classifier_tiny"]
mode = ["train", "eval"]
batch_size = [2]
size = [16, 7]
precision = ["fp32", "amp_fp16", "bf16"]
checkpoint = ["none"]
device = ["cpu"]
'''
    path = write_scenario(tmp_path, matrix)
    results = {}
    for opt in (False, True):
        out = tmp_path / ("O" if opt else "plain")
        proc = run_harness("run", path, "--out", str(out), "--env-label", "e", optimize=opt)
        assert proc.returncode == 0, proc.stderr[-2000:]
        recs = read_jsonl(out / "e.jsonl")
        assert all(r["env"]["optimize"] == (1 if opt else 0) for r in recs if r["env"])
        results[opt] = {r["case_key"]: (r["status"], (r.get("accuracy") or {}).get("passed")) for r in recs}
    assert results[False] == results[True]
    assert ("skipped", None) in results[True].values()


def test_a_fixed_tolerance_overrides_the_calibrated_rule_for_its_precision_only():
    settings = dict(SETTINGS, tolerance=dict(scenario.TOLERANCE_DEFAULTS, bf16=0.5))
    r = execute.run_case(case(model="attention_gqa_tiny", size=32, precision="bf16"), settings)
    if r["status"] != "ok":  # feature detection: bf16 on this build's CPU
        pytest.skip("bf16 does not run here: %s" % r["reason"])
    fixed = r["accuracy"]
    assert fixed["rule"] == "fixed tolerance" and fixed["tolerance"] == 0.5 and fixed["limit"] is None
    assert fixed["passed"] and fixed["grads"]["ratio"] is not None  # the float64 figures are still recorded
    calibrated = execute.run_case(case(precision="fp32"), settings)["accuracy"]
    assert calibrated["rule"] == "fp64-calibrated" and calibrated["tolerance"] is None
    assert calibrated["limit"] == 10.0 and calibrated["ratio"] <= 10.0
    assert len(calibrated["output_sketch"]) == len(calibrated["output_sketch64"]) == 64
