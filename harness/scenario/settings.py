"""A scenario's settings tables — ``[measure]``, ``[backend]``, ``[tolerance]``, ``[task]``,
``[checks]``, ``[max_batch]``, ``[profile]`` — with their defaults and the check of each value
(``harness.scenario.spec`` validates a scenario's tables with them).

Standard library only: the runner imports this on Python 3.9 + PyTorch 1.10.
"""
import math
from typing import Any, Dict, List

from harness import precisions

MEASURE_DEFAULTS = {
    "warmup_iters": 2,        # at least this many untimed iterations ...
    "warmup_s": 0.05,         # ... and at least this long
    "min_sample_s": 0.02,     # each sample runs enough iterations to last this long
    "samples": 7,             # samples per case (fewer only when the budget says so), shared by the rounds
    # Interleaved rounds (harness.engine): each a fresh worker per variant; the rounds share the samples
    # and the case budget. "auto": 3 where variants are compared (nox -s matrix, ab), 1 for a lone run.
    "rounds": "auto",
    "case_budget_s": 10.0,    # timed work per case; beyond it fewer samples are taken
    "timeout_s": 120.0,       # build, first step and timed samples past this: the worker is killed, 'timeout'
    "extra_timeout_s": 120.0,  # each extra after them (harness.runner.extras): past this the worker is killed,
                               # the case stays ok with its timing and that extra's failure
    "compile_warmup_s": 120.0,  # extra timeout for compile cases (first call compiles)
    "threads": 0,             # torch.set_num_threads; 0 keeps the build's default
    "speed_probe": True,      # CPU: time harness.runner.speed_probe after each sample (gate: time_basis)
    "flops": True,            # count each ok case's FLOPs on one extra step (harness.runner.flops)
    "roofline": True,         # measure the matmul peak once per run and device (harness.runner.roofline)
    "seed": 0,
    # Instruction counts (harness.runner.instructions): after each ok case, its step again in
    # one valgrind/callgrind worker per environment, one thread. Deterministic, ~50x slower.
    "instructions": False,
    "instructions_warmup_iters": 0,   # uncounted steps after the first (always uncounted: it allocates)
    "instructions_iters": 1,          # steps per counted repeat
    "instructions_repeats": 2,        # repeats: their spread is the count's own noise
    "instructions_timeout_s": 900.0,  # one case under valgrind; the worker's start-up has its own limit
    # Not counted (instructions "skipped"): a case whose timed step took longer than this. Under
    # valgrind a step runs 50-150x slower: a 0.3 s step (batch 48 of mswr_net_tiny) took 12 min to count.
    "instructions_max_step_s": 0.1,
}
BACKEND_DEFAULTS = {"allow_tf32": False, "cudnn_benchmark": False, "deterministic": False}
# Accuracy (docs/accuracy.md): by default each case's error against a float64 reference,
# in units of the error its precision is expected to make there, must stay within
# fp64_multiple. A number for a precision switches it to a fixed relative error against
# the fp32 reference instead (the override); so does a build with no float64 reference,
# with FALLBACK_TOLERANCE (each precision's own, from harness.precisions).
TOLERANCE_DEFAULTS: Dict[str, Any] = dict({name: None for name in precisions.NAMES}, fp64_multiple=10.0,
                                          fp16_range_factor=4.0, tensor_factor=10.0)
FALLBACK_TOLERANCE = {p.name: p.fallback_tolerance for p in precisions.TABLE}
TASK_DEFAULTS = {"enabled": False, "steps": 20, "batch_size": 8, "lr": 1e-3, "eval_batch_size": 16}
# The largest-batch search of a case with batch_size = "max" (harness.runner.batch_search): doubling from
# start, then bisection, never above limit; a probe fits when it runs and its memory stays within the cap.
MAX_BATCH_DEFAULTS = {"start": 1, "limit": 4096,
                      "cpu_cap_gib": 4.0,    # the CPU has no memory of its own to run out of: a cap is the limit
                      "cuda_cap_gib": 0.0}   # 0: the GPU's own memory (its out-of-memory error decides)
# Behaviour checks asked for (harness.runner.checks); params_updated and eval_buffers always run.
CHECKS_DEFAULTS = {"deterministic": False, "leak_steps": 0}
# torch.profiler traces (harness.runner.profile) of the cases matching one of ``cases`` (axis tables matched as
# [[exclude]]'s: model globs, other values exact), after their timed samples: the profiler's schedule in steps.
PROFILE_DEFAULTS: Dict[str, Any] = {"cases": [], "wait": 1, "warmup": 1, "active": 3}


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v) -> bool:
    # finite: `inf` and `1e400` (which TOML reads as inf) would only fail later, inside the run
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_settings(table: Any, defaults: Dict[str, Any], where: str, problems: List[str],
                   check) -> Dict[str, Any]:
    """``defaults`` updated by ``table`` (a scenario's settings table); each unknown key or value that
    ``check(key, value, default)`` refuses is added to ``problems`` (naming ``where``) and left out."""
    merged = dict(defaults)
    if table is None:
        return merged
    if not isinstance(table, dict):
        problems.append("%s: must be a table, got %r" % (where, table))
        return merged
    for key, value in table.items():
        if key not in defaults:
            problems.append("%s.%s: unknown key; allowed: %s" % (where, key, ", ".join(defaults)))
            continue
        problem = check(key, value, defaults[key])
        if problem:
            problems.append("%s.%s: value %r is not allowed; expected %s" % (where, key, value, problem))
        else:
            merged[key] = value
    return merged


def measure_check(key, value, default):
    if key in ("speed_probe", "instructions", "flops", "roofline"):
        return bool_check(key, value, default)
    if key in ("instructions_iters", "instructions_repeats"):
        return None if is_int(value) and value >= 1 else "an integer >= 1"
    if key in ("warmup_iters", "threads", "seed", "instructions_warmup_iters"):
        return None if is_int(value) and value >= 0 else "an integer >= 0"
    if key == "samples":
        return None if is_int(value) and value >= 1 else "an integer >= 1"
    if key == "rounds":
        return None if value == "auto" or (is_int(value) and 1 <= value <= 100) else '"auto" or an integer in [1, 100]'
    if key == "warmup_s":
        return None if is_num(value) and value >= 0 else "a finite number of seconds >= 0"
    return None if is_num(value) and value > 0 else "a finite number of seconds > 0"


def bool_check(key, value, default):
    return None if isinstance(value, bool) else "true or false"


def tolerance_check(key, value, default):
    if key in ("fp64_multiple", "fp16_range_factor", "tensor_factor"):
        return None if is_num(value) and 1 <= value <= 1e6 else "a multiple in [1, 1e6]"
    return None if is_num(value) and 0 < value <= 10 else "a relative error in (0, 10]"


def checks_check(key, value, default):
    if key == "deterministic":
        return bool_check(key, value, default)
    return None if is_int(value) and 0 <= value <= 1000 else "an integer in [0, 1000] (0: no leak check)"


def max_batch_check(key, value, default):
    if key in ("start", "limit"):
        return None if is_int(value) and 1 <= value <= 2 ** 24 else "an integer in [1, 16777216]"
    if key == "cuda_cap_gib":
        return None if is_num(value) and value >= 0 else "GiB >= 0 (0: the GPU's own memory)"
    return None if is_num(value) and value > 0 else "GiB > 0"


def profile_check(key, value, default):
    if key == "cases":
        return (None if isinstance(value, list) and all(isinstance(t, dict) for t in value) else
                "a list of axis tables, e.g. [{model = \"cbam*\", precision = \"bf16\"}] ({} matches every case)")
    if key == "active":
        return None if is_int(value) and 1 <= value <= 100 else "an integer in [1, 100]"
    return None if is_int(value) and 0 <= value <= 100 else "an integer in [0, 100]"


def task_check(key, value, default):
    if key == "enabled":
        return bool_check(key, value, default)
    if key == "lr":
        return None if is_num(value) and value > 0 else "a learning rate > 0"
    return None if is_int(value) and value >= 1 else "an integer >= 1"
