"""The manager: drives the cases of one environment through worker subprocesses.

A case that kills its worker (segfault, ``kill -9``, the kernel's OOM killer) or
runs past its timeout costs that case only: the record says ``crashed`` (with the
signal and the worker's last words) or ``timeout``, and a fresh worker takes the
next case. Records are appended and fsynced as they come. Ctrl-C stops the worker,
keeps every finished record and tells how to ``--resume``.
"""
import errno
import signal
import sys
import time
import uuid
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

from harness.record.schema import SCHEMA_VERSION, Record, RecordError
from harness.record.store import RecordWriter
from harness.runner import batch_search, extras, roofline
from harness.runner import profile as profiling
from harness.runner.instruction_pass import InstructionPass
from harness.runner.worker_process import Worker, WorkerDied, signal_name
from harness.scenario.spec import Case, NotRun, Scenario, profiled
from harness.units import format_bytes, format_count, format_duration
from harness.vocab import MAX_BATCH

#: The fields a record has before the worker's result is added.
_RECORD_HEAD = ("schema_version", "run_id", "time_utc", "scenario", "env_label", "case_key", "case", "env", "shard")


class DiskFull(Exception):
    """The record file could not be written for lack of space; the message says what was kept."""


def progress_line(index: int, total: int, case: Case, rec: Dict) -> str:
    """One line per case: what ran, its status, median, peak memory, accuracy."""
    c = case
    what = "%s %s b%s s%s %s ckpt=%s %s%s%s" % (c.model, c.mode, c.batch_size, c.size, c.precision, c.checkpoint,
                                              c.device, " cl" if c.channels_last else "",
                                              " compiled" if c.compile else "")
    width = len(str(total))
    head = "[%*d/%d] %-72s %-11s" % (width, index, total, what, rec["status"])
    if rec["status"] != "ok":
        return head + " " + (rec.get("reason") or "")[:120]
    if rec.get("max_batch"):
        found = rec["max_batch"]
        return head + " largest batch %d (%s; %s at batch %s; %d probes)" % (
            found["batch_size"], format_bytes(found["peak_bytes"]), found["limited_by"],
            found["first_unfit"] if found["first_unfit"] is not None else found["batch_size"], len(found["probes"]))
    acc = rec.get("accuracy")
    tail = "median %-9s peak %-10s acc %s" % (
        format_duration(rec["timing"]["median_s"], "-"), format_bytes(rec["memory"].get("peak_bytes"), "-"),
        "n/a" if not acc else "not judged" if acc.get("passed") is None else "ok" if acc["passed"] else
        "FAIL (%s)" % "; ".join(acc.get("failures") or [])[:80])
    failed = (rec.get("extras") or {}).get("failed") or {}
    if failed:
        tail += "  [extras failed: %s]" % "; ".join("%s: %s" % (k, v[:60]) for k, v in sorted(failed.items()))
    if rec["timing"].get("reduced"):
        tail += "  [%s]" % rec["timing"]["reduced"]
    counted = rec.get("instructions")
    if counted:
        tail += "  instr %s" % (format_count(counted.get("per_iter")) if counted.get("status") == "ok" else
                                "%s (%s)" % (counted.get("status"), (counted.get("reason") or "")[:60]))
    return head + " " + tail


def summary_table(env_label: str, records: List[Dict]) -> str:
    """Counts by status and the most common reasons, for the end of an environment."""
    counts = Counter(r["status"] for r in records)
    lines = ["", "== %s: %d cases: %s" % (env_label, len(records),
                                           ", ".join("%s %d" % (s, n) for s, n in counts.most_common()))]
    reasons = Counter((r["status"], (r.get("reason") or "")[:100]) for r in records if r["status"] != "ok")
    for (status, reason), n in reasons.most_common(12):
        lines.append("   %4d  %-11s %s" % (n, status, reason))
    failed_acc = [r for r in records if r["status"] == "ok" and (r.get("accuracy") or {}).get("passed") is False]
    if failed_acc:
        lines.append("   %4d  ok but accuracy failed (see the records)" % len(failed_acc))
    return "\n".join(lines)


def ask_worker(worker: Worker, case: Dict, settings: Dict, timeout_s: float,
               probe: Optional[Dict] = None, extra_timeout_s: Optional[float] = None) -> Tuple[Dict, bool]:
    """``worker``'s result for ``case`` (or one probe of it) and whether the worker can take another:
    a timeout (the worker killed) or a dead worker is the result, with the signal and its last words.
    Lost after the case's measurement, in an extra: the case is ok with its measurement, and that
    extra failed for that reason (``harness.runner.extras``)."""
    try:
        result = worker.run(case, settings, timeout_s, probe, extra_timeout_s)
    except WorkerDied:
        code = worker.proc.wait()
        words = worker.last_words(300).replace("\n", " | ")
        reason = "worker died (%s)%s" % (signal_name(code), ": " + words if words else "")
        if code == -signal.SIGKILL:
            reason += " (SIGKILL: killed from outside or by the kernel's OOM killer)"
        worker.close()
        if worker.partial is not None:
            return extras.lost_in(worker.partial, worker.extra, reason, worker.extra_s), False
        return {"status": "crashed", "reason": reason}, False
    if result is None:
        extra_s = worker.extra_s
        worker.kill()
        worker.close()
        if worker.partial is not None:
            budget = timeout_s if extra_timeout_s is None else extra_timeout_s
            return extras.lost_in(worker.partial, worker.extra, "overran its %.0f s (extra_timeout_s); worker "
                                  "killed" % budget, extra_s), False
        return {"status": "timeout", "reason": "no result in %.0f s; worker killed" % timeout_s}, False
    return result, True


def _optimize_level(case: Case) -> int:
    """The ``python -O`` level of the case's worker."""
    return max(sys.flags.optimize, 1) if case.python_optimized else sys.flags.optimize


def _search_max_batch(case: Case, settings: Dict, scenario: Scenario, new_worker,
                      print_fn) -> Tuple[Dict, Optional[Dict]]:
    """The result of a ``batch_size = "max"`` case (``harness.runner.batch_search``) and its environment."""
    cfg = scenario.max_batch
    cap = batch_search.cap_bytes(case.device, cfg)
    probe, seen = batch_search.probe_in_fresh_worker(lambda: new_worker(_optimize_level(case)), ask_worker,
                                                     case.to_dict(), settings, scenario.measure["timeout_s"], cap)
    print_fn("    %s %s s%s %s ckpt=%s %s: searching for the largest batch that fits (cap %s)" % (
        case.model, case.mode, case.size, case.precision, case.checkpoint, case.device,
        format_bytes(cap) if cap else "the device's memory"))
    result = batch_search.search(probe, cfg["start"], cfg["limit"], cap, print_fn)
    return result, seen["env"]


def run_cases(scenario: Scenario, cases: Sequence[Tuple[Case, Optional[NotRun]]], out_path: str, env_label: str,
              held: Optional[set] = None, print_fn=print,
              shard: Optional[Dict[str, Dict]] = None) -> Tuple[List[Dict], bool]:
    """Run ``cases`` (skipping keys in ``held``), appending records to ``out_path``.
    ``shard`` maps a case key to its record's ``shard`` part (``run --shard``; ``harness.shard.split``).

    Returns the records written and whether the run was interrupted.
    """
    held = held or set()
    todo = [(c, r) for c, r in cases if c.key not in held]
    settings = {"measure": scenario.measure, "tolerance": scenario.tolerance, "task": scenario.task,
                "checks": scenario.checks,
                "model_options": {m: scenario.model_options(m) for m in dict.fromkeys(c.model for c, _ in todo)}}
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    written: List[Dict] = []
    if held:
        print_fn("resuming: %d of %d cases already recorded in %s" % (len(cases) - len(todo), len(cases), out_path))
    worker: Optional[Worker] = None
    interrupted = False
    measure = scenario.measure

    def new_worker(optimize: int = sys.flags.optimize) -> Worker:
        w = Worker(measure["threads"], scenario.backend, optimize=optimize)
        w.start()
        return w

    # A python_optimized case runs in a worker started with -O; the other worker waits, parked.
    parked: Dict[int, Worker] = {}

    instruction_pass = InstructionPass(measure, scenario.backend, print_fn) if measure.get("instructions") else None
    with RecordWriter(out_path) as writer:
        if writer.set_aside:
            print_fn("note: %s ended with an unterminated line (%d bytes: a run killed mid-write or a full disk); "
                     "moved to %s" % (out_path, writer.set_aside[0], writer.set_aside[1]))
        try:
            if instruction_pass is not None and any(not_run is None for _, not_run in todo):
                instruction_pass.start()  # before any timing: its start-up would load the CPU beside it
            if any(not_run is None and c.batch_size != MAX_BATCH for c, not_run in todo):
                worker = new_worker()  # before the first record, so every record carries the environment
                if measure.get("roofline", True) and measure.get("flops", True):  # once per run, not per worker
                    devices = {c.device for c, not_run in todo if not_run is None} & set(worker.env)
                    settings["roofline"], usable = roofline.measure_in(worker, ask_worker, devices, print_fn)
                    worker = worker if usable else None
            for index, (case, not_run) in enumerate(todo, 1):
                t0 = time.perf_counter()
                if not_run is not None:
                    result = {"status": not_run.status, "reason": not_run.reason}
                    env = (worker.env.get(case.device) or worker.env.get("cpu")) if worker else None
                elif case.batch_size == MAX_BATCH:
                    result, env = _search_max_batch(case, settings, scenario, new_worker, print_fn)
                else:
                    wanted = _optimize_level(case)
                    if worker is not None and worker.optimize != wanted:
                        parked[worker.optimize], worker = worker, parked.pop(wanted, None)
                    if worker is None:
                        worker = new_worker(wanted)
                    timeout_s = measure["timeout_s"] + (measure["compile_warmup_s"] if case.compile else 0.0)
                    env = worker.env.get(case.device) or worker.env.get("cpu")
                    case_settings = profiling.case_settings(settings, scenario.profile, profiled(scenario, case),
                                                            out_path, env_label, case.key)
                    result, usable = ask_worker(worker, case.to_dict(), case_settings, timeout_s,
                                                extra_timeout_s=measure.get("extra_timeout_s"))
                    if not usable:
                        worker = None
                record = {
                    "schema_version": SCHEMA_VERSION, "run_id": run_id,
                    "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "scenario": scenario.name, "env_label": env_label, "case_key": case.key,
                    "case": case.to_dict(), "env": env, "shard": shard[case.key] if shard else None,
                }
                record.update(result)
                if (settings.get("roofline") or {}).get(case.device):
                    record["roofline"] = settings["roofline"][case.device]
                record.setdefault("reason", None)
                record.setdefault("duration_s", time.perf_counter() - t0)
                record["wall_s"] = time.perf_counter() - t0
                if instruction_pass is not None and record["status"] == "ok" and record.get("timing"):
                    record["instructions"] = instruction_pass.count(case.to_dict(), settings,
                                                                    record["timing"].get("median_s"))
                try:
                    try:
                        writer.append(Record.from_dict(record, strict=True))
                    except RecordError as exc:  # a runner bug: keep the case, say why its figures are gone
                        record = {k: record[k] for k in _RECORD_HEAD}
                        record.update(status="error", reason="harness bug: record failed the schema check: %s" % exc,
                                      wall_s=time.perf_counter() - t0)
                        writer.append(Record.from_dict(record, strict=True))
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    raise DiskFull("disk full writing %s: %d records kept, run again with --resume when there is "
                                   "space" % (out_path, len(held) + len(written))) from None
                written.append(record)
                print_fn(progress_line(index, len(todo), case, record))
        except KeyboardInterrupt:
            interrupted = True
            print_fn("\ninterrupted: %d cases recorded in %s, %d not run; run again with --resume to finish" % (
                len(written), out_path, len(todo) - len(written)))
        finally:
            for w in [worker] + list(parked.values()):
                if w is not None:
                    if interrupted:
                        w.kill()
                    w.close()
            if instruction_pass is not None:
                instruction_pass.close(kill=interrupted)
    return written, interrupted
