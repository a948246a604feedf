"""Run one case in this process: build, step once for accuracy, time, compare.

The order keeps each figure honest:

1. memory baseline, then the model is built with version-stable seeded weights and
   moved/cast for the case (precision, checkpoint mode, channels_last, compile);
2. the first step's outputs (and gradients in train mode) are kept for fidelity;
3. warm-up and timed samples, with the memory peak tracked from the start of warm-up:
   with the build and the first step, the measurement, the only part that can fail the
   case; it goes to the manager before anything else runs;
4. the extras (``harness.runner.extras``), each on its own, none able to fail the case:
   the FLOPs, counted on one step that on the CPU is also the first of the tensor peak's two
   profiled steps (``harness.runner.memory.tensor_peak_bytes``), then the exact tensor peak;
   the behaviour checks; the references, the model rebuilt in fp32 without checkpointing
   (same weights and inputs) and once more cast to float64, which the accuracy verdict is
   calibrated against (docs/accuracy.md), made once per model, mode, batch and size and
   shared by the cases that follow (``harness.runner.references``).

Failures are classified by what they say, not by version: ``unsupported`` (an op
missing for a dtype on this build, a feature this torch lacks), ``oom``, or
``error`` with a short traceback.
"""
import gc
import re
import time
import traceback
from typing import Any, Callable, Dict, Optional

import torch

import harness.sources  # noqa: F401 - registers the model sources (SOURCE:NAME, package.module:fn) with the zoo
import models
from harness.runner import (
    accuracy,
    checks,
    fault_hooks,
    flops,
    instructions,
    optim,
    precision,
    references,
    sdpa,
    speed_probe,
    timing,
)
from harness.runner import extras as extras_modes
from harness.runner.extras import CHECKS, FLOPS, PROFILE, REFERENCES, TASK, TENSOR_PEAK, Extras
from harness.runner.memory import PeakMemory, tensor_peak_bytes
from harness.runner.profile import profile_step
from harness.scenario import settings as scenario_settings
from models import UnsupportedError

_UNSUPPORTED_PATTERNS = re.compile(
    r"not implemented for|Could not run '|not supported|does not support|unsupported|only support|"
    r"no kernel|No available kernel|No viable backend|No operator found|is not available|not compiled with|Unsupported|"
    r"could not create a descriptor for|"  # oneDNN has no primitive for this dtype/shape on this CPU
    r"No working C\+\+ compiler",  # torch.compile's inductor needs one on the CPU; this machine has none
    re.IGNORECASE)
_OOM_PATTERNS = re.compile(r"out of memory|can't allocate memory|CUDA error: out of memory|"
                           r"DefaultCPUAllocator: not enough memory", re.IGNORECASE)


def classify(exc: BaseException) -> Dict[str, str]:
    """Map an exception to (status, reason)."""
    message = str(exc).strip().split("\n")[0][:500] or type(exc).__name__
    if isinstance(exc, UnsupportedError):
        return {"status": "unsupported", "reason": message}
    if isinstance(exc, MemoryError) or _OOM_PATTERNS.search(str(exc)) or type(exc).__name__ == "OutOfMemoryError":
        return {"status": "oom", "reason": "%s: %s" % (type(exc).__name__, message)}
    if isinstance(exc, (RuntimeError, NotImplementedError, TypeError)) and _UNSUPPORTED_PATTERNS.search(message):
        return {"status": "unsupported", "reason": "%s: %s" % (type(exc).__name__, message)}
    if isinstance(exc, AssertionError):
        # Validation by assert is itself a fault: python -O removes it.
        message = "validation by assert (gone under python -O): %s" % message
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
    short = "".join(frames[-4:])[-1500:]
    return {"status": "error", "reason": "%s: %s" % (type(exc).__name__, message), "traceback": short}


def model_options(case: Dict, settings: Dict) -> Optional[Dict[str, Any]]:
    """The scenario's ``[config]``/``[inputs]`` tables of the case's model (sources only)."""
    return (settings.get("model_options") or {}).get(case["model"])


def _build(case: Dict, seed: int, use_case_config: bool, options: Optional[Dict[str, Any]] = None):
    model = models.create_model(case["model"], case["size"], options)
    model = fault_hooks.wrap(fault_hooks.MODEL_BUILT, case, model)
    models.init_parameters(model, seed)
    inputs, target = model.example_inputs(case["batch_size"], case["size"], models.SeededGenerator(seed))
    if not use_case_config:
        return precision.prepare(model, inputs, target, "fp32", case["device"])
    model, inputs, target = precision.prepare(model, inputs, target, case["precision"], case["device"],
                                              case.get("channels_last", False))
    if case["mode"] == "train":
        model.set_grad_checkpointing(case["checkpoint"])
    return model, inputs, target


def _under(context, arg, fn):
    """``fn`` called inside ``context(arg)`` (entered anew each call: the contexts are not reentrant)."""
    context(arg)  # raises UnsupportedError now, before any timing, where the build cannot

    def call(*args):
        with context(arg):
            return fn(*args)
    return call


def _make_step(model, inputs, target, case: Dict, use_case_config: bool):
    """The step timed for this case, a function doing it once while keeping results, and the
    train step's optimizer in words (None in eval)."""
    device = case["device"]
    prec = case["precision"] if use_case_config else "fp32"
    forward, infer = model, model.infer
    if use_case_config and case.get("compile"):
        if not hasattr(torch, "compile"):
            raise UnsupportedError("torch.compile: not in torch %s" % torch.__version__)
        forward, infer = torch.compile(model), torch.compile(model.infer)
    backend = case.get("sdpa_backend", "default") if use_case_config else "default"
    if backend != "default":
        forward, infer = _under(sdpa.backend_context, backend, forward), _under(sdpa.backend_context, backend, infer)
    if use_case_config:  # the case's own calls; the references stay as they are
        forward = fault_hooks.wrap(fault_hooks.MODEL_CALL, case, forward)
        infer = fault_hooks.wrap(fault_hooks.MODEL_CALL, case, infer)
    if case["mode"] == "train":
        model.train()
        train = optim.TrainStep(model, forward, inputs, target, device, prec, precision.autocast)

        def step_keep():
            return train.run(keep=lambda out: (accuracy.snapshot(out), accuracy.grads_snapshot(model)))

        def step():
            train.run()

        return step, step_keep, train.description
    else:
        model.eval()

        def step_keep():
            with torch.no_grad(), precision.autocast(device, prec):
                return accuracy.snapshot(infer(*inputs)), None

        def step():
            with torch.no_grad(), precision.autocast(device, prec):
                infer(*inputs)
    return step, step_keep, None


def case_step(case: Dict, seed: int, options: Optional[Dict[str, Any]] = None):
    """The case's model, inputs and target as the case configures them, and its step: the
    one the timed pass times and the instruction pass counts."""
    model, inputs, target = _build(case, seed, True, options)
    step, step_keep, optimizer = _make_step(model, inputs, target, case, use_case_config=True)
    return model, inputs, target, step, step_keep, optimizer


def _release():
    # The young generations hold what this case made; a full collection of the torch
    # heap would cost ~0.1 s per case for nothing (the worker freezes its start-up heap).
    gc.collect(1)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _tensor_peak(step, device: str, seen: bool = False) -> Dict[str, Any]:
    """The CPU tensor peak of one extra step run under the profiler (after the timed
    samples, never during them; ``seen``: the FLOPs count's step was its first profiled
    session); on CUDA the allocator's peak already says it. Raises when the profiler gives
    none (the extra's failure, ``harness.runner.extras``)."""
    if device != "cpu":
        return {"tensor_peak_bytes": None, "tensor_peak_method": None}
    peak, method = tensor_peak_bytes(step, seen)
    return {"tensor_peak_bytes": peak, "tensor_peak_method": method}


def _reference(case: Dict, seed: int, wide: bool, options: Optional[Dict[str, Any]] = None):
    """Outputs and gradients of the case's reference: its model in fp32 without
    checkpointing, same weights and inputs; ``wide``: the same, cast to float64 (tensors
    the model makes itself follow through the default dtype)."""
    model, inputs, target = _build(case, seed, False, options)
    default_dtype = torch.get_default_dtype()
    try:
        if wide:
            model, inputs, target = precision.to_float64(model, inputs, target, case["device"])
            torch.set_default_dtype(torch.float64)
        _, keep, _ = _make_step(model, inputs, target, case, use_case_config=False)
        torch.manual_seed(seed)
        return keep()
    finally:
        torch.set_default_dtype(default_dtype)
        del model, inputs, target
        _release()


#: The references this worker made last, shared with the next case of the same key.
SHARED_REFERENCES = references.SharedReferences()


def _references(case: Dict, seed: int, options: Optional[Dict[str, Any]]):
    """(fp32 outputs, fp32 gradients, float64 outputs, float64 gradients, why there is no float64
    reference or None) of the case's references."""
    ref_out, ref_grads = _reference(case, seed, False, options)
    try:
        out64, grads64 = _reference(case, seed, True, options)
        return ref_out, ref_grads, out64, grads64, None
    except Exception as exc:  # noqa: BLE001 - no float64 kernel on this build: fp32 judges, said so
        return ref_out, ref_grads, None, None, classify(exc)["reason"]


def _accuracy(case: Dict, tolerance: Dict, got_out, got_grads, ref_out, ref_grads, out64, grads64,
              no_fp64) -> Dict[str, Any]:
    """The accuracy part of the record: errors against fp32, calibrated against float64."""
    prec = case["precision"]
    outputs = accuracy.compare(got_out, ref_out)
    grads = accuracy.compare_grads(got_grads, ref_grads) if ref_grads is not None else None
    outputs["sketch"] = accuracy.sketch(got_out)
    if grads is not None:
        grads["sketch"] = accuracy.sketch(list(got_grads.values()))
        ref_missing = [n for n, g in ref_grads.items() if g is None]
        grads["ref_missing"] = len(ref_missing)
        if ref_missing:
            grads["ref_missing_names"] = ref_missing[:5]
    fixed = tolerance.get(prec)
    if no_fp64 is None:
        outputs.update(accuracy.calibrate(accuracy.named_outputs(got_out), accuracy.named_outputs(ref_out),
                                          accuracy.named_outputs(out64), prec))
        if grads is not None:
            grads.update(accuracy.calibrate(got_grads, ref_grads, grads64, prec))
    elif fixed is None:
        fixed = scenario_settings.FALLBACK_TOLERANCE[prec]
    acc = {"outputs": outputs, "grads": grads,
           "reference": "float64" if no_fp64 is None else "float32 (no float64 reference: %s)" % no_fp64,
           "rule": "fp64-calibrated" if fixed is None else "fixed tolerance"}
    acc.update(accuracy.judge(outputs, grads, fixed, accuracy.limits(prec, tolerance)))
    acc.update(accuracy.probe(ref_out))
    acc["output_sketch"] = accuracy.sketch(ref_out)
    acc["output_sketch64"] = accuracy.sketch(out64) if out64 is not None else None
    return acc


def _nonfinite_first_step(got_out, got_grads) -> Optional[str]:
    """'the first step's gradients held N non-finite values' (or outputs), else None."""
    for what, tensors in (("outputs", checks.tensors_of(got_out)),
                          ("gradients", [g for g in (got_grads or {}).values() if g is not None])):
        bad = sum(int((~torch.isfinite(t)).sum()) for t in tensors if t.is_floating_point() or t.is_complex())
        if bad:
            return "the first step's %s held %d non-finite values" % (what, bad)
    return None


def _optional_checks(case: Dict, asked: Dict, seed: int, step, first, options) -> Dict[str, Any]:
    """The checks a scenario's ``[checks]`` table asks for; one that cannot run here says why
    (not judged) and costs the case nothing."""
    found: Dict[str, Any] = {}
    if asked.get("leak_steps"):
        try:
            found["leak"] = checks.leak(step, case["device"], int(asked["leak_steps"]))
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is reported, the case stays ok
            found["leak"] = {"not_judged": "leak: could not measure: %s" % classify(exc)["reason"]}
    if asked.get("deterministic"):
        try:
            _, _, _, _, again_keep, _ = case_step(case, seed, options)
            torch.manual_seed(seed)
            found["deterministic"] = checks.deterministic(first, again_keep())
            del again_keep
        except Exception as exc:  # noqa: BLE001 - as above
            found["deterministic"] = {"not_judged": "deterministic: the second run raised %s"
                                                    % classify(exc)["reason"]}
    return found


def run_case(case: Dict, settings: Dict, send: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """Measure ``case``; return the record's measured part (status, timing, memory, ...).

    The build, the first step and the timed samples are the measurement: only they can make the
    case fail. The extras after them (``harness.runner.extras``) never can; ``send`` (the worker's
    channel) gets the measurement before the first extra and each extra's name before it runs."""
    if settings.get("extras") == extras_modes.PASS:
        return run_after_rounds(case, settings, send)
    t_start = time.perf_counter()
    measure = settings["measure"]
    seed = int(measure.get("seed", 0))
    options = model_options(case, settings)
    result: Dict[str, Any] = {"status": "ok", "reason": None}
    got_out = got_grads = None
    try:
        if case["device"] == "cuda" and not torch.cuda.is_available():
            raise UnsupportedError("device cuda: torch.cuda.is_available() is False (torch %s, CUDA build %s)" % (
                torch.__version__, torch.version.cuda))
        precision.check_autocast(case["device"], case["precision"])
        # Built (once per worker) before the peak tracker starts: not the case's memory.
        probe = speed_probe.make_probe(case["device"]) if measure.get("speed_probe", True) else None
        mem = PeakMemory(case["device"])
        mem.start()
        model, inputs, target, step, step_keep, result["optimizer"] = case_step(case, seed, options)
        buffers_before = checks.fingerprints(checks.buffers(model)) if case["mode"] == "eval" else None
        torch.manual_seed(seed)
        got_out, got_grads = step_keep()
        found = {"eval_buffers": checks.eval_buffers(buffers_before, model) if buffers_before is not None else None}
        params_after_first = checks.fingerprints(checks.trainable(model)) if case["mode"] == "train" else None
        step = fault_hooks.wrap(fault_hooks.TIMED_STEP, case, step)  # once, before timing: the loop is untouched
        mem.reset_peak()
        fault_hooks.notify(fault_hooks.PEAK_RESET, case, step, mem)
        timed = timing.time_step(step, device=case["device"], warmup_iters=measure["warmup_iters"],
                                 warmup_s=measure["warmup_s"], min_sample_s=measure["min_sample_s"],
                                 samples=measure["samples"], budget_s=measure["case_budget_s"], done_iters=1,
                                 probe=probe, probe_description=speed_probe.DESCRIPTION if probe else None)
        result["memory"] = mem.result()
        fault_hooks.notify(fault_hooks.PEAK_READ, case, result["memory"])
    except Exception as exc:  # noqa: BLE001 - every failure becomes a record
        result.update(classify(exc))
        first = _nonfinite_first_step(got_out, got_grads)
        if first:  # the later failure is the consequence: say what started it
            result["reason"] = "%s, then %s" % (first, result["reason"])
        result["duration_s"] = time.perf_counter() - t_start
        _release()
        return result

    timing_out = dict(timed)
    timing_out.update(timing.summarize(timed["samples_s"], case["batch_size"]))
    result["timing"] = timing_out
    result["checks"] = checks.merge(found)
    _finish(result, t_start, timed)
    mode = settings.get("extras", extras_modes.ALL)
    if mode is extras_modes.NONE:  # a timing-only round (harness.engine): the first round ran them
        del model, inputs, target, step, step_keep
        _release()
        return result
    extras = Extras(send, lambda exc: classify(exc)["reason"])
    extras.measured(result)

    counted = None
    if mode == extras_modes.DEFER:  # the pass after the rounds runs them (run_after_rounds)
        extras.defer(extras_modes.AFTER_ROUNDS)
    else:
        counted = _profiled_extras(case, measure, model, step, extras, result["memory"])
    if settings.get("profile"):  # after the timed samples and the tensor peak's step, never among them
        with extras.run(PROFILE):
            result["profile"] = profile_step(step, case["device"], settings["profile"])
        if (result.get("profile") or {}).get("error"):
            extras.fail(PROFILE, result["profile"]["error"])
    with extras.run(CHECKS):
        if params_after_first is not None:
            found["params_updated"] = checks.params_updated(params_after_first, model, case["precision"])
        found.update(_optional_checks(case, settings.get("checks", {}), seed, step, (got_out, got_grads), options))
    result["checks"] = checks.merge(found)
    del model, inputs, target, step, step_keep
    _release()

    with extras.run(REFERENCES):
        refs, shared = SHARED_REFERENCES.get(references.reference_key(case, seed, options),
                                              lambda: _references(case, seed, options))
        result["accuracy"] = _accuracy(case, settings["tolerance"], got_out, got_grads, *refs)
        result["accuracy"]["reference_shared"] = shared
    if mode != extras_modes.DEFER:
        result["flops"] = flops.record_part(counted, timing_out.get("median_s"), case["precision"], case["device"],
                                            settings.get("roofline"))
    if settings.get("task", {}).get("enabled") and case["mode"] == "train":
        with extras.run(TASK):
            from harness.runner.task import run_task

            result["task"] = run_task(case, settings)
        if TASK in extras.failed:
            result["task"] = {"error": extras.failed[TASK]}
    result["extras"] = extras.part()
    _finish(result, t_start, timed)
    return result


def _profiled_extras(case: Dict, measure: Dict, model, step, extras: Extras, memory: Dict[str, Any]):
    """The FLOPs count (returned: ``flops.count_step``'s, or None where ``[measure] flops`` is off) and the
    tensor peak (into ``memory``) of ``step``, each an extra (``extras.AFTER_ROUNDS``). On the CPU the FLOPs
    step runs in a memory session too, so it is the tensor peak's first profiled session."""
    counted = None
    if measure.get("flops", True):
        with extras.run(FLOPS):  # on the CPU also the tensor peak's first profiled session
            counted = flops.count_step(step, model, profile_memory=case["device"] == "cpu")
        if counted is not None and counted.get("error"):
            extras.fail(FLOPS, counted["error"])
    with extras.run(TENSOR_PEAK):
        seen = FLOPS not in extras.failed and counted is not None
        memory.update(_tensor_peak(step, case["device"], seen))
    if TENSOR_PEAK in extras.failed:
        memory.update(tensor_peak_bytes=None, tensor_peak_method=None, tensor_peak_error=extras.failed[TENSOR_PEAK])
    return counted


def _built_and_stepped(case: Dict, settings: Dict):
    """(model, inputs, target, step, step_keep) of ``case`` built as ``run_case`` builds it, after its first
    step (uncounted, untimed: it allocates, makes the optimizer's state and any first-call work)."""
    seed = int(settings["measure"].get("seed", 0))
    precision.check_autocast(case["device"], case["precision"])
    model, inputs, target, step, step_keep, _ = case_step(case, seed, model_options(case, settings))
    torch.manual_seed(seed)
    step()
    return model, inputs, target, step, step_keep


def run_after_rounds(case: Dict, settings: Dict, send: Optional[Callable[[Dict[str, Any]], None]] = None
                     ) -> Dict[str, Any]:
    """The pass after the timed rounds for one case whose first round deferred ``extras.AFTER_ROUNDS``
    (``settings["extras"] == "pass"``): build the case as ``run_case`` does, take its first step
    (uncounted: a model may do first-call work), then the FLOPs and the tensor peak, each an extra.
    Nothing is timed. ``settings["median_s"]`` (the first round's timed median) gives the achieved
    FLOP/s. Returns ``{"status": "ok", "memory": ..., "flops": ..., "extras": ...}``; a case that no
    longer builds or steps here returns its ``classify``'d failure, which the pass records as both
    extras' failure."""
    measure = settings["measure"]
    try:
        model, inputs, target, step, step_keep = _built_and_stepped(case, settings)
        step = fault_hooks.wrap(fault_hooks.TIMED_STEP, case, step)  # the step the timed samples ran
    except Exception as exc:  # noqa: BLE001 - the pass's failure, recorded as the extras'
        _release()
        return classify(exc)
    extras = Extras(send, lambda exc: classify(exc)["reason"])
    result: Dict[str, Any] = {"status": "ok", "reason": None, "memory": {}}
    extras.measured(result)
    counted = _profiled_extras(case, measure, model, step, extras, result["memory"])
    del model, inputs, target, step, step_keep
    _release()
    result["flops"] = flops.record_part(counted, settings.get("median_s"), case["precision"], case["device"],
                                        settings.get("roofline"))
    result["extras"] = extras.part()
    return result


def _finish(result: Dict[str, Any], t_start: float, timed: Dict[str, Any]) -> None:
    """The case's duration so far and its overhead: what was not warm-up or timed samples."""
    result["duration_s"] = time.perf_counter() - t_start
    result["overhead_s"] = max(result["duration_s"] - timed["warmup_s"] - timed["timed_s"], 0.0)


def count_case(case: Dict, settings: Dict, dump_dir: str) -> Dict[str, Any]:
    """The instruction pass of one case (in the valgrind worker): build it as ``run_case`` does,
    take its first step (which allocates, and makes the optimizer's state) and
    ``instructions_warmup_iters`` more uncounted, then count ``instructions_repeats`` repeats of
    ``instructions_iters`` steps. Returns the record's ``instructions`` part."""
    t_start = time.perf_counter()
    measure = settings["measure"]
    try:
        model, inputs, target, step, step_keep = _built_and_stepped(case, settings)
        out = instructions.count_steps(step, warmup_iters=measure["instructions_warmup_iters"],
                                       iters=measure["instructions_iters"], repeats=measure["instructions_repeats"],
                                       dump_dir=dump_dir)
        del model, inputs, target, step, step_keep
    except Exception as exc:  # noqa: BLE001 - a failed count is reported; the case's own record stands
        out = {"status": "error", "reason": classify(exc)["reason"]}
    _release()
    out["wall_s"] = time.perf_counter() - t_start
    return out

