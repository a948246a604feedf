"""torch.profiler traces of chosen cases, and the per-op summary their records carry.

What runs and when, where the trace goes and what the record's ``profile`` part
(``harness.record.parts.Profile``) holds: docs/profiling.md, "What runs, and when" and "The
record's ``profile`` part". The cases are named by ``harness.scenario.spec.profiled``; the
manager adds a ``profile`` request to the settings it sends (``case_settings``) and the
worker runs ``profile_step``. Importing this module does not import torch (the manager uses
it too).
"""
import hashlib
import os
import re
import time
from typing import Any, Callable, Dict, List, Optional

#: Where the traces of one run go, below its record store.
PROFILES_DIR = "profiles"
#: How many ops the record keeps, heaviest first (by self CPU time; on a GPU also by self CUDA time).
TOP_OPS = 15
#: Events that are not ops: the schedule's step markers and the memory-only events.
_NOT_OPS = re.compile(r"^(ProfilerStep\b.*|\[memory\]|\[OutOfMemory\])$")
_UNSAFE = re.compile(r"[^A-Za-z0-9.,=+_-]")


def case_folder(case_key: str) -> str:
    """The folder name of a case's traces: its key with ';' as ',' (readable, the same in every
    environment); a key holding other characters a path should not (``timm:resnet18``) has them as
    '_' and a short hash of the key appended, so two keys never share a folder."""
    text = case_key.replace(";", ",")
    safe = _UNSAFE.sub("_", text)
    if safe != text:
        safe += "~" + hashlib.sha1(case_key.encode("utf-8")).hexdigest()[:8]
    return safe


def trace_dir(env_label: str, case_key: str) -> str:
    """A case's trace folder relative to the record store: ``profiles/<env_label>/<case folder>``."""
    return "/".join((PROFILES_DIR, env_label, case_folder(case_key)))


def case_settings(settings: Dict[str, Any], profile: Dict[str, Any], wanted: bool, out_path: str,
                  env_label: str, case_key: str) -> Dict[str, Any]:
    """The settings sent to the worker for one case: ``settings`` as they are, or, when the case is
    ``wanted``, a copy with the ``profile`` request: the schedule of the scenario's ``[profile]`` table,
    and where to write (below the folder of the record file ``out_path``)."""
    if not wanted:
        return settings
    request = {"store": os.path.dirname(os.path.abspath(out_path)), "trace_dir": trace_dir(env_label, case_key),
               "worker_name": env_label, "wait": int(profile.get("wait", 1)),
               "warmup": int(profile.get("warmup", 1)), "active": int(profile.get("active", 3))}
    return dict(settings, profile=request)


# --- the worker's side ---------------------------------------------------------------------------

def _self_device_us(evt) -> float:
    """An averaged event's self time on the GPU in microseconds: ``self_device_time_total`` where the
    build has it as an attribute (newer releases, where ``self_cuda_time_total`` is a deprecated alias),
    else ``self_cuda_time_total`` (1.10)."""
    own = getattr(evt, "__dict__", {})
    if "self_device_time_total" in own:
        return float(own["self_device_time_total"] or 0)
    return float(getattr(evt, "self_cuda_time_total", 0) or 0)


def _shapes(value) -> Optional[List[Any]]:
    if not value or not any(value):  # no shapes recorded, or only non-tensor arguments
        return None
    return [list(s) if isinstance(s, (list, tuple)) else s for s in value]


def summarize(averages, steps: int, on_gpu: bool, top: int = TOP_OPS) -> Dict[str, Any]:
    """The per-op part of the record from ``prof.key_averages(group_by_input_shape=True)``: per op name
    (over every shape group) its calls and self CPU (and CUDA) seconds per step, the input shapes of
    its heaviest group; the ``top`` heaviest by self CPU time, and on a GPU by self CUDA time too."""
    ops: Dict[str, Dict[str, Any]] = {}
    for evt in averages:
        name = str(evt.key)
        if _NOT_OPS.match(name):
            continue
        cpu_us = float(evt.self_cpu_time_total or 0)
        gpu_us = _self_device_us(evt) if on_gpu else 0.0
        op = ops.setdefault(name, {"name": name, "calls": 0, "cpu_us": 0.0, "gpu_us": 0.0, "heaviest": -1.0,
                                   "input_shapes": None})
        op["calls"] += int(evt.count)
        op["cpu_us"] += cpu_us
        op["gpu_us"] += gpu_us
        weight = gpu_us if on_gpu and gpu_us > 0 else cpu_us
        if weight > op["heaviest"]:
            op["heaviest"], op["input_shapes"] = weight, _shapes(getattr(evt, "input_shapes", None))
    chosen = sorted(ops.values(), key=lambda o: -o["cpu_us"])[:top]
    if on_gpu:
        names = {o["name"] for o in chosen}
        chosen += [o for o in sorted(ops.values(), key=lambda o: -o["gpu_us"])[:top]
                   if o["gpu_us"] > 0 and o["name"] not in names]
        chosen.sort(key=lambda o: (-o["gpu_us"], -o["cpu_us"]))
    per_step = 1e-6 / max(steps, 1)
    out = [{"name": o["name"], "calls_per_step": o["calls"] / max(steps, 1), "self_cpu_s": o["cpu_us"] * per_step,
            "self_cuda_s": o["gpu_us"] * per_step if on_gpu else None, "input_shapes": o["input_shapes"]}
           for o in chosen]
    return {"ops": out, "self_cpu_total_s": sum(o["cpu_us"] for o in ops.values()) * per_step,
            "self_cuda_total_s": sum(o["gpu_us"] for o in ops.values()) * per_step if on_gpu else None}


def _trace_files(folder: str) -> set:
    return {n for n in os.listdir(folder) if n.endswith((".pt.trace.json", ".pt.trace.json.gz"))}


def profile_step(step: Callable[[], Any], device: str, request: Dict[str, Any]) -> Dict[str, Any]:
    """Run ``step`` ``wait + warmup + active`` times under ``torch.profiler`` (the request's schedule)
    and write its trace; return the record's ``profile`` part. Never raises: a failure is the part's
    ``error`` (the case's own figures stand)."""
    t0 = time.perf_counter()
    wait, warmup, active = int(request["wait"]), int(request["warmup"]), int(request["active"])
    out: Dict[str, Any] = {"trace_dir": request["trace_dir"], "steps": active,
                           "schedule": "wait=%d warmup=%d active=%d" % (wait, warmup, active)}
    try:
        import torch
        from torch import profiler as tprof

        on_gpu = device == "cuda"
        activities = [tprof.ProfilerActivity.CPU] + ([tprof.ProfilerActivity.CUDA] if on_gpu else [])
        out["activities"] = ["cpu"] + (["cuda"] if on_gpu else [])
        out["tool"] = "torch.profiler (torch %s)" % torch.__version__
        folder = os.path.join(request["store"], *request["trace_dir"].split("/"))
        os.makedirs(folder, exist_ok=True)
        before = _trace_files(folder)
        sync = torch.cuda.synchronize if on_gpu else (lambda: None)
        with tprof.profile(activities=activities,
                           schedule=tprof.schedule(wait=wait, warmup=warmup, active=active, repeat=1),
                           on_trace_ready=tprof.tensorboard_trace_handler(folder, worker_name=request["worker_name"]),
                           record_shapes=True, profile_memory=True) as prof:
            for _ in range(wait + warmup + active):
                step()
                sync()
                prof.step()
        out.update(summarize(prof.key_averages(group_by_input_shape=True), active, on_gpu))
        written = sorted(_trace_files(folder) - before)
        if not written:
            raise RuntimeError("tensorboard_trace_handler wrote no trace file in %s" % folder)
        out["trace_file"] = written[-1]
    except Exception as exc:  # noqa: BLE001 - a failed profile is reported, the case stays ok
        out["error"] = "%s: %s" % (type(exc).__name__, (str(exc).strip().split("\n")[0][:300]))
    out["wall_s"] = time.perf_counter() - t0
    return out
