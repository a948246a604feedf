"""The instruction pass, as the manager drives it: one counting worker per environment.

After a case's timed pass is ok, ``InstructionPass.count`` sends the same case to a worker
running under valgrind (``harness.runner.instructions``), which answers with the case's
instruction counts. The counting worker is started once, before the first case is timed
(its start-up, ``import torch`` under valgrind, takes 30-140 s and would otherwise load the
CPU beside the timed pass), and reused for every case. Whatever goes wrong with it costs
the count only, never the case: valgrind missing or refusing makes every count
``unsupported`` with the reason; a case whose step is too long to count in reasonable time
(``instructions_max_step_s``) is ``skipped``; a count that crashes or times out is recorded as such and
a fresh counting worker takes the next case.

Which cases to count, in an A/B run: ``ab`` gives the head's run the base's step times
(``harness.vocab.COUNT_STEPS_FROM_ENV``), and the decision to count a case is taken from the
base's step for both sides; otherwise a case whose step sits near the limit would be counted on one side only, its
noisy median deciding, and the gate would lose its count (docs/gate.md).
"""
import json
import os
import shutil
import signal
import tempfile
from typing import Dict, Optional

from harness.record.parts import Case
from harness.runner.instructions import valgrind_problem, valgrind_version
from harness.runner.worker_process import Worker, WorkerDied, WorkerUnsupported, signal_name
from harness.vocab import COUNT_STEPS_FROM_ENV


def deciding_steps(path: Optional[str]) -> Dict[str, float]:
    """``{case key: step seconds}`` of the JSON file at ``path`` (``harness.vocab.COUNT_STEPS_FROM_ENV``);
    empty without one. Raises ``OSError``/``ValueError`` for a file that cannot be read: counting on
    the head's own steps instead would be the very asymmetry the file is there to prevent."""
    if not path:
        return {}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError("%s: expected an object {case key: step seconds}, got %s" % (path, type(data).__name__))
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class InstructionPass:
    """Counts the instructions of ok cases; ``close()`` at the end of the environment."""

    def __init__(self, measure: Dict, backend: Dict, print_fn=print, python: Optional[str] = None,
                 root: Optional[str] = None, env: Optional[Dict[str, str]] = None):
        """``python``, ``root``, ``env``: the variant whose cases are counted (``harness.engine``); this
        interpreter and repository by default."""
        self.where = {k: v for k, v in (("python", python), ("root", root), ("env", env)) if v is not None}
        self.measure = measure
        self.backend = backend
        self.print_fn = print_fn
        self.unsupported: Optional[str] = valgrind_problem()
        self.tool = None if self.unsupported else valgrind_version()
        self.dump_dir: Optional[str] = None
        self.worker: Optional[Worker] = None
        #: why the counting worker could not start: every later count is an error with it (no retry
        #: per case: a start costs up to minutes)
        self.start_failed: Optional[str] = None
        #: the steps that decide which cases are counted, where given (``COUNT_STEPS_FROM_ENV``)
        self.deciding_steps: Dict[str, float] = {}
        try:
            self.deciding_steps = deciding_steps((env or {}).get(COUNT_STEPS_FROM_ENV) or
                                                 os.environ.get(COUNT_STEPS_FROM_ENV))
        except (OSError, ValueError) as exc:  # no count at all rather than counts the base did not decide
            self.start_failed = "%s: %s" % (COUNT_STEPS_FROM_ENV, exc)

    def start(self) -> None:
        """Start the counting worker now (no-op when counting is unsupported, failed to start or runs)."""
        if self.unsupported or self.start_failed or self.worker is not None:
            return
        self.print_fn("instruction pass: starting the counting worker under valgrind (import torch under "
                      "valgrind takes about 30-140 s)")
        if self.dump_dir is None:
            self.dump_dir = tempfile.mkdtemp(prefix="torchmatrix-callgrind-")
        # One thread: valgrind runs threads one at a time anyway, and one thread is one order of work.
        worker = Worker(1, self.backend, count_dir=self.dump_dir, **self.where)
        try:
            worker.start()
        except WorkerUnsupported as exc:
            self.unsupported = str(exc)
            self.print_fn("instruction pass: unsupported here: %s" % exc)
            return
        except RuntimeError as exc:
            self.start_failed = " ".join(str(exc).split())[:400]
            self.print_fn("instruction pass: %s" % self.start_failed)
            return
        self.worker = worker

    def _drop_worker(self, kill: bool) -> None:
        if self.worker is not None:
            if kill:
                self.worker.kill()
            self.worker.close()
            self.worker = None

    def count(self, case: Dict, settings: Dict, step_s: Optional[float] = None) -> Dict:
        """The record's ``instructions`` part for ``case``, whose timed pass was ok with a median
        step of ``step_s`` seconds: ``skipped`` beyond ``instructions_max_step_s``."""
        limit_s = float(self.measure["instructions_max_step_s"])
        whose = ""
        key = Case(**case).key
        if key in self.deciding_steps:
            step_s, whose = self.deciding_steps[key], " (the base's step, which decides for both sides)"
        if step_s is not None and step_s > limit_s:
            return {"status": "skipped", "reason": "step %.3g s%s > instructions_max_step_s %.3g s: under valgrind "
                    "(50-150x slower) counting it would take minutes; raise the limit to count it" % (
                        step_s, whose, limit_s)}
        self.start()
        if self.unsupported:
            return {"status": "unsupported", "reason": self.unsupported}
        if self.start_failed:
            return {"status": "error", "reason": "counting worker: %s" % self.start_failed, "tool": self.tool}
        timeout_s = float(self.measure["instructions_timeout_s"])
        try:
            out = self.worker.run(case, settings, timeout_s)
        except WorkerDied:
            code = self.worker.proc.wait()
            words = self.worker.last_words(300).replace("\n", " | ")
            self._drop_worker(kill=False)
            reason = "counting worker died (%s)%s" % (signal_name(code), ": " + words if words else "")
            if code == -signal.SIGKILL:
                reason += " (SIGKILL: killed from outside or by the kernel's OOM killer)"
            return {"status": "crashed", "reason": reason, "tool": self.tool}
        if out is None:
            self._drop_worker(kill=True)
            return {"status": "timeout", "reason": "no count in %.0f s under valgrind; counting worker killed "
                    "([measure] instructions_timeout_s)" % timeout_s, "tool": self.tool}
        out["tool"] = self.tool
        return out

    def close(self, kill: bool = False) -> None:
        """Stop the counting worker and remove its dump folder."""
        self._drop_worker(kill)
        if self.dump_dir is not None:
            shutil.rmtree(self.dump_dir, ignore_errors=True)
