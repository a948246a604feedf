"""Instruction counts of a step under valgrind's callgrind: the deterministic speed figure.

The manager starts one worker per environment under ``valgrind --tool=callgrind
--collect-atstart=no`` (``command``), so ``import torch`` under valgrind (30-140 s) is paid
once, not per case. Inside it, ``count_steps`` switches collection on around the counted
steps only (``torch._C._valgrind_toggle``, the switch ``Timer.collect_callgrind`` uses, present
from PyTorch 1.10 to the newest) and has callgrind dump its totals after each repeat; the
dump's ``summary:`` line is the repeat's instruction count. Python's cyclic collector is off
while counting, and the worker runs one torch thread with a fixed hash seed, so the same step
gives nearly the same count in every process (how near, measured: docs/gate.md, "Instruction
counts" and "The figures").
"""
import gc
import os
import shutil
import statistics
import subprocess
from typing import Any, Callable, Dict, List, Optional

# torch is imported inside the functions the counting worker calls: the manager imports this
# module for ``command`` and ``valgrind_problem`` and need not load torch for them.

TOOL = "callgrind"


def valgrind_problem() -> Optional[str]:
    """None when valgrind is on PATH, else why counting is unsupported (for the manager,
    which starts the counting worker; the worker checks torch's side, ``torch_problem``)."""
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (Debian: apt-get install valgrind)"
    return None


def torch_problem() -> Optional[str]:
    """None when this torch can switch callgrind's collection, else why not."""
    import torch

    supported = getattr(torch._C, "_valgrind_supported_platform", None)
    if supported is None or not hasattr(torch._C, "_valgrind_toggle_and_dump_stats"):
        return "torch %s has no valgrind hooks (torch._C._valgrind_toggle_and_dump_stats)" % torch.__version__
    if not supported():
        return "torch %s says valgrind is not supported on this platform" % torch.__version__
    return None


def valgrind_version() -> str:
    """``valgrind-3.19.0 callgrind``: the tool named in every record."""
    try:
        out = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = "valgrind"
    return "%s %s" % (out or "valgrind", TOOL)


def command(dump_dir: str) -> List[str]:
    """The valgrind prefix of the counting worker's command line; dumps go to ``dump_dir``."""
    return ["valgrind", "--tool=%s" % TOOL, "--collect-atstart=no", "--quiet",
            "--callgrind-out-file=%s" % os.path.join(dump_dir, "callgrind.out.%p")]


def _dumps(dump_dir: str) -> set:
    return {name for name in os.listdir(dump_dir) if name.startswith("callgrind.out.")}


def read_summary(path: str) -> int:
    """The total instruction count of one callgrind dump (its ``summary:`` or ``totals:`` line)."""
    totals = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("summary:"):
                return int(line.split()[1])
            if line.startswith("totals:"):
                totals = int(line.split()[1])
    if totals is None:
        raise RuntimeError("callgrind dump %s has no summary line" % path)
    return totals


def _count_once(step: Callable[[], Any], iters: int, dump_dir: str) -> int:
    import torch

    before = _dumps(dump_dir)
    torch._C._valgrind_toggle()
    for _ in range(iters):
        step()
    torch._C._valgrind_toggle_and_dump_stats()
    new = sorted(_dumps(dump_dir) - before)
    if len(new) != 1:
        raise RuntimeError("expected one new callgrind dump in %s, found %d (is this worker under valgrind?)" % (
            dump_dir, len(new)))
    path = os.path.join(dump_dir, new[0])
    try:
        return read_summary(path)
    finally:
        os.unlink(path)


def count_steps(step: Callable[[], Any], warmup_iters: int, iters: int, repeats: int, dump_dir: str) -> Dict:
    """Run ``step`` ``warmup_iters`` times uncounted, then ``repeats`` times ``iters`` counted
    steps; the record's ``instructions`` part (status ok). Only inside the counting worker."""
    import torch

    for _ in range(warmup_iters):
        step()
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a repeat would count work that is not the step's
    try:
        per_iter = [_count_once(step, iters, dump_dir) / float(iters) for _ in range(repeats)]
    finally:
        if gc_was_enabled:
            gc.enable()
    middle = statistics.median(per_iter)
    return {"status": "ok", "reason": None, "per_iter": middle, "repeats_per_iter": per_iter, "iterations": iters,
            "warmup_iters": warmup_iters, "spread": (max(per_iter) - min(per_iter)) / middle if middle else 0.0,
            "threads": torch.get_num_threads()}
