"""The extras of a case: what the worker measures after the timed samples, each on its own.

A case's measurement is its build, its first step and its timed samples; only those can
make it fail. Everything after them is an extra (``NAMES``): the FLOPs, the tensor peak,
a profiler trace, the behaviour checks, the references the accuracy is judged against,
the task run. Before the first extra the worker sends the measurement to the manager
(``{"partial": ...}``), and before each extra its name (``{"extra": name}``): the manager
gives each extra its own time budget (``[measure] extra_timeout_s``) and, if the worker
dies or overruns in one, writes the case ``ok`` with its timing and that extra's failure
(``harness.runner.manager.ask_worker``). An extra that raises is recorded the same way and
the next one runs. The record's ``extras`` part says how long each took and which failed.
"""
import contextlib
import time
from typing import Any, Callable, Dict, List, Optional

from harness.vocab import EXTRA_NAMES

#: Every extra, in the order a case runs them (``harness.vocab.EXTRA_NAMES``).
NAMES = EXTRA_NAMES
FLOPS, TENSOR_PEAK, PROFILE, CHECKS, REFERENCES, TASK = NAMES

#: The extras a run of several rounds or variants leaves to the pass after its timed rounds
#: (``harness.engine.coordinator.extras_after_rounds``): they need only the case's model and step,
#: not its timed worker, so they run two or more at once where the timed rounds run one case at a time.
AFTER_ROUNDS = (FLOPS, TENSOR_PEAK)

# What a worker runs of a case's extras: ``settings["extras"]``. True (or absent) and False are the
# older protocol's words, kept so that a worker of an older tree (``ab``'s base) still understands them.
ALL = True  #: every extra, right after the timed samples (a run of one round of one variant)
NONE = False  #: timing only: the rounds after the first
DEFER = "defer"  #: the first round of several: every extra but ``AFTER_ROUNDS``, which the pass runs
PASS = "pass"  #: the pass after the rounds: build, one first step, then ``AFTER_ROUNDS`` only; nothing timed


class Extras:
    """Runs the extras of one case: ``with extras.run(name):`` around each, after ``measured``.

    ``send`` is the worker's message channel (None in-process: nothing is sent);
    ``describe`` turns an exception into the one-line reason the record keeps.
    """

    def __init__(self, send: Optional[Callable[[Dict[str, Any]], None]], describe: Callable[[BaseException], str]):
        self._send = send
        self._describe = describe
        self.seconds: Dict[str, float] = {}
        self.failed: Dict[str, str] = {}
        self.deferred: List[str] = []

    def measured(self, partial: Dict[str, Any]) -> None:
        """The case's measurement, sent before any extra runs: whatever an extra does, it is kept."""
        if self._send is not None:
            self._send({"partial": partial})

    @contextlib.contextmanager
    def run(self, name: str):
        """Time the extra ``name``; an exception in it is its failure, never the case's."""
        if name not in NAMES:
            raise ValueError("unknown extra %r (harness.runner.extras.NAMES: %s)" % (name, ", ".join(NAMES)))
        if self._send is not None:
            self._send({"extra": name})
        t0 = time.perf_counter()
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - an extra's failure is recorded; the case stays ok
            self.failed[name] = self._describe(exc)
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 6)

    def fail(self, name: str, reason: str) -> None:
        """Record ``name``'s failure that its own part reports without raising (a failed count, trace or
        task run keeps its reason in its part too)."""
        self.failed.setdefault(name, reason)

    def defer(self, names) -> None:
        """Leave ``names`` to the pass after the timed rounds (``DEFER``): the record says so."""
        self.deferred = list(names)

    def part(self) -> Dict[str, Any]:
        """The record's ``extras`` part."""
        part: Dict[str, Any] = {"seconds": dict(self.seconds), "failed": dict(self.failed)}
        if self.deferred:
            part["deferred"] = list(self.deferred)
        return part


def lost_in(partial: Dict[str, Any], extra: Optional[str], reason: str, seconds: Optional[float]) -> Dict[str, Any]:
    """The record's measured part of a case whose worker was lost in ``extra`` (None: before the first
    extra began, after the measurement): the measurement, with that extra failed for ``reason``."""
    result = dict(partial)
    name = extra or "extras"  # lost after the measurement, before the first extra said its name
    part = dict(result.get("extras") or {"seconds": {}, "failed": {}})
    part["failed"] = dict(part.get("failed") or {}, **{name: reason})
    if seconds is not None and extra is not None:
        part["seconds"] = dict(part.get("seconds") or {}, **{extra: round(seconds, 6)})
    result["extras"] = part
    return result
