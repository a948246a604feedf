"""One probe of a largest-batch search, in the worker: does the case fit at this batch size?

The manager (``harness.runner.batch_search``) starts a fresh worker for every probe, so a
probe that runs out of memory, or is killed for it, costs that probe only, and no probe's
figure depends on what an earlier one left behind.

A probe builds the case at the probe's batch size and takes two steps (the first makes
the optimizer's state; the second is the steady state). What it holds against the cap:

- CUDA: the caching allocator's peak (``torch.cuda.max_memory_allocated``) above the
  worker's baseline, as a case's ``memory.peak_bytes``;
- CPU: the exact peak of live tensor bytes from before the model is built to the end of
  the second step: the profiler's raw allocation records summed in order
  (``harness.runner.memory``), the same to the byte on every rerun, on 1.10 as on the newest.
  A CPU has no memory of its own to run out of, so the soft address-space limit of the
  probe's process is set a margin above the cap (``_limit_address_space``): a probe that would
  take far more than the cap fails there with an allocation error (``oom``) instead of taking
  the machine's memory.

The process high-water mark (``rss_peak_bytes``) is recorded beside, not judged: it counts
the allocator's caching and the libraries' own buffers, and moves from run to run.
"""
import resource
import time
from typing import Any, Dict, Optional

import torch

from harness.runner import execute, precision
from harness.runner.memory import PeakMemory, running_peak_of
from models import UnsupportedError

#: The address-space limit of a CPU probe: what the process had mapped before the probe, plus
#: this many times the cap, plus ``_SLACK_BYTES`` (threads' stacks, oneDNN's scratch buffers,
#: the allocator's free lists): a probe over the cap is judged by the tensor figure, this only
#: keeps one that runs away from taking the machine.
_CAP_MULTIPLE = 2
_SLACK_BYTES = 2 << 30
CUDA_CRITERION = "cuda allocator peak"


def _mapped_bytes() -> Optional[int]:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _limit_address_space(cap_bytes: int) -> Optional[int]:
    """Lower this process's soft RLIMIT_AS to what it maps now + 2 x cap + 2 GiB; the limit set, or
    None where it cannot be read or set (the tensor figure still decides the fit)."""
    mapped = _mapped_bytes()
    if mapped is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = mapped + _CAP_MULTIPLE * cap_bytes + _SLACK_BYTES
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft != resource.RLIM_INFINITY and soft <= limit:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):
        return None
    return limit


def _two_steps(case: Dict[str, Any], settings: Dict[str, Any]) -> None:
    seed = int(settings["measure"].get("seed", 0))
    model, inputs, target, step, _, _ = execute.case_step(case, seed, execute.model_options(case, settings))
    torch.manual_seed(seed)
    step()
    step()
    del model, inputs, target, step


def probe_case(case: Dict[str, Any], settings: Dict[str, Any], cap_bytes: Optional[int]) -> Dict[str, Any]:
    """Build ``case`` (its ``batch_size`` the probe's) and take two steps; return the probe's
    status and reason (as ``execute.classify`` says them), ``peak_bytes`` (the figure held
    against the cap), ``criterion``, ``rss_peak_bytes``, ``address_limit_bytes`` and ``wall_s``."""
    t0 = time.perf_counter()
    device = case["device"]
    out: Dict[str, Any] = {"status": "ok", "reason": None, "peak_bytes": None, "rss_peak_bytes": None,
                           "criterion": CUDA_CRITERION if device == "cuda" else None,
                           "address_limit_bytes": None}
    try:
        if device == "cuda" and not torch.cuda.is_available():
            raise UnsupportedError("device cuda: torch.cuda.is_available() is False (torch %s)" % torch.__version__)
        precision.check_autocast(device, case["precision"])
        rss = PeakMemory("cpu")
        if device == "cuda":
            allocator = PeakMemory("cuda")
            allocator.start()
            rss.start()
            _two_steps(case, settings)
            out["peak_bytes"] = int(allocator.result()["peak_bytes"])
        else:
            if cap_bytes:
                out["address_limit_bytes"] = _limit_address_space(cap_bytes)
            rss.start()
            out["peak_bytes"], out["criterion"] = running_peak_of(lambda: _two_steps(case, settings))
        out["rss_peak_bytes"] = int(rss.result()["peak_bytes"])
    except Exception as exc:  # noqa: BLE001 - every failure is the probe's answer
        out.update(execute.classify(exc))
        out.pop("traceback", None)
    out["wall_s"] = time.perf_counter() - t0
    return out
