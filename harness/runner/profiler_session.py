"""One CPU profiler session whose records are read raw, without torch's Python post-processing.

The extras of a CPU case (the tensor peak and, where this torch has no FlopCounterMode, the FLOPs
count) need only two things from a profiled step: its allocation records, and its ops' names,
input shapes, threads and times. ``torch.profiler``'s exit builds a ``FunctionEvent`` tree in
Python before anything can be read (up to 2.x; the newest builds it lazily), and that tree costs
far more than the step it describes: on torch 1.10, for the default scenario's cases (median step
6 ms), 0.10 s with memory recorded and 0.18 s with shapes too, against 16 ms for the profiled step
itself (docs/engine.md, "The profiled step"). This session starts the profiler as
``torch.autograd.profiler.profile`` does, stops it with torch's own stop call and keeps its raw
records (``_KinetoEvent``), which ``Recording`` reads in one pass each.

The records are the same the profiler's own tree is built from, so every figure read from them is
the figure read before; ``harness.runner.flops`` rebuilds the little of the tree it needs
(``flops.parents``), as torch builds it.
"""
import contextlib
from typing import Any, Dict, List, NamedTuple, Optional

import torch

#: The name of an allocation record among the raw events.
MEMORY_EVENT = "[memory]"
#: Utility ops torch's own parse leaves out of its events (``torch.autograd.profiler_util._filter_name``).
_UTILITY_OPS = frozenset(("[OutOfMemory]", "profiler::_record_function_enter", "profiler::_record_function_enter_new",
                          "profiler::_record_function_exit", "aten::is_leaf", "aten::output_nr", "aten::_version"))


class Op(NamedTuple):
    """One op of a profiled step, as torch's parse sees it (times on the profiler's clock, in ns:
    microseconds times 1,000 up to 2.x, which record microseconds)."""

    name: str
    start_ns: int
    end_ns: int
    thread: int
    is_async: bool
    event: Any  # the raw event: its input shapes are read only for the ops a caller needs them of

    def shapes(self) -> List[List[int]]:
        """The op's input shapes (empty lists for non-tensor inputs); recorded with ``record_shapes``."""
        return [list(s) if isinstance(s, (list, tuple)) else [] for s in (self.event.shapes() or [])]


class Recording:
    """The raw records of one session, read after it ended."""

    def __init__(self):
        self.events: Optional[list] = None

    def memory_deltas(self) -> List[int]:
        """The CPU allocation records in the order they were made: +bytes allocated, -bytes freed.
        Raises ``RuntimeError`` where this torch's raw records carry no sizes."""
        deltas: List[int] = []
        records = [ev for ev in self.events if ev.name() == MEMORY_EVENT]
        if records and (not hasattr(records[0], "nbytes") or not hasattr(records[0], "device_type")):
            raise RuntimeError("torch %s's profiler records carry no allocation sizes" % torch.__version__)
        on_cpu: Dict[Any, bool] = {}  # device type -> is it the CPU (naming an enum value costs 2 us)
        for ev in records:
            device = ev.device_type()
            if device not in on_cpu:
                on_cpu[device] = "CPU" in str(device)
            if on_cpu[device]:
                deltas.append(int(ev.nbytes()))
        return deltas

    def ops(self) -> List[Op]:
        """The ops of the step in the order the profiler recorded them, utility ops and allocation
        records left out as torch's parse leaves them out (a CPU-only session records CPU ops only)."""
        out: List[Op] = []
        if not self.events:
            return out
        with_async_flag = hasattr(self.events[0], "is_async")
        in_ns = hasattr(self.events[0], "start_ns")
        for ev in self.events:
            name = ev.name()
            if name == MEMORY_EVENT or name in _UTILITY_OPS:
                continue
            if in_ns:
                start_ns, duration_ns = ev.start_ns(), ev.duration_ns()
            else:
                start_ns, duration_ns = ev.start_us() * 1000, ev.duration_us() * 1000
            thread = ev.start_thread_id()
            is_async = thread != ev.end_thread_id() or (with_async_flag and ev.is_async())
            out.append(Op(name, start_ns, start_ns + duration_ns, thread, is_async, ev))
        return out


def _stop(prof) -> list:
    """Stop the session and return its raw events. Where torch's exit parses eagerly, only its
    stop call is made (the parse is what this module exists to skip); where it parses lazily
    (the newest), its exit is the stop."""
    from torch.autograd import profiler as autograd_profiler

    if hasattr(prof, "_ensure_function_events") or not hasattr(autograd_profiler, "_disable_profiler"):
        prof.__exit__(None, None, None)
        results = prof.kineto_results
    else:
        results = autograd_profiler._disable_profiler()
    if results is None or not hasattr(results, "events"):
        raise RuntimeError("torch %s's profiler gives no raw records" % torch.__version__)
    return list(results.events())


@contextlib.contextmanager
def session(record_shapes: bool = False, profile_memory: bool = True):
    """Profile the CPU ops (and, by default, the allocations) of the block; yields a ``Recording``
    whose records are there once the block ends. The profiler is stopped whatever the block
    raises. Raises ``RuntimeError`` where this torch has no such profiler."""
    from torch.autograd import profiler as autograd_profiler

    if not hasattr(autograd_profiler.profile, "_prepare_trace"):
        raise RuntimeError("torch %s has no kineto profiler" % torch.__version__)
    prof = autograd_profiler.profile(record_shapes=record_shapes, profile_memory=profile_memory, use_kineto=True)
    recording = Recording()
    prof.__enter__()
    try:
        yield recording
    finally:
        recording.events = _stop(prof)
