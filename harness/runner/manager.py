"""The manager's part of one case: asking a worker, reading what it lost, the progress line.

The rounds over variants, the records and Ctrl-C are the coordinator's
(``harness.engine.coordinator``); this module holds what one case needs: ``ask_worker`` (a
crashed, killed or hung worker becomes the case's record, a worker lost in an extra keeps the
measurement), the largest-batch search's driver, the progress line and the summary table.
"""
import signal
import sys
from collections import Counter
from typing import Dict, List, Optional, Tuple

from harness.runner import batch_search, extras
from harness.runner.worker_process import Worker, WorkerDied, signal_name
from harness.scenario.spec import Case, Scenario
from harness.units import format_bytes, format_count, format_duration

#: The fields a record has before the worker's result is added.
RECORD_HEAD = ("schema_version", "run_id", "time_utc", "scenario", "env_label", "case_key", "case", "env", "shard",
               "round")


class DiskFull(Exception):
    """The record file could not be written for lack of space; the message says what was kept."""


def case_words(c: Case) -> str:
    """The case in a progress line's words: ``cbam_classifier_tiny train b2 s32 bf16 ckpt=none cpu``."""
    return "%s %s b%s s%s %s ckpt=%s %s%s%s" % (c.model, c.mode, c.batch_size, c.size, c.precision, c.checkpoint,
                                              c.device, " cl" if c.channels_last else "",
                                              " compiled" if c.compile else "")


def progress_line(index: int, total: int, case: Case, rec: Dict) -> str:
    """One line per case: what ran, its status, median, peak memory, accuracy."""
    what = case_words(case)
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
    timing_only = (rec.get("round") or {}).get("extras") is False  # the first round judged it
    tail = "median %-9s peak %-10s acc %s" % (
        format_duration(rec["timing"]["median_s"], "-"), format_bytes(rec["memory"].get("peak_bytes"), "-"),
        "in round 1" if timing_only else "n/a" if not acc else
        "not judged" if acc.get("passed") is None else "ok" if acc["passed"] else
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
    cases = len({r.get("case_key") for r in records})
    rounds = max([(r.get("round") or {}).get("index") or 1 for r in records] or [1])
    what = "%d cases" % cases if cases == len(records) else "%d records (%d cases, %d rounds)" % (
        len(records), cases, rounds)
    lines = ["", "== %s: %s: %s" % (env_label, what, ", ".join("%s %d" % (s, n) for s, n in counts.most_common()))]
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


def optimize_level(case: Case) -> int:
    """The ``python -O`` level of the case's worker."""
    return max(sys.flags.optimize, 1) if case.python_optimized else sys.flags.optimize


def search_max_batch(case: Case, settings: Dict, scenario: Scenario, new_worker,
                      print_fn) -> Tuple[Dict, Optional[Dict]]:
    """The result of a ``batch_size = "max"`` case (``harness.runner.batch_search``) and its environment."""
    cfg = scenario.max_batch
    cap = batch_search.cap_bytes(case.device, cfg)
    probe, seen = batch_search.probe_in_fresh_worker(lambda: new_worker(optimize_level(case)), ask_worker,
                                                     case.to_dict(), settings, scenario.measure["timeout_s"], cap)
    print_fn("    %s %s s%s %s ckpt=%s %s: searching for the largest batch that fits (cap %s)" % (
        case.model, case.mode, case.size, case.precision, case.checkpoint, case.device,
        format_bytes(cap) if cap else "the device's memory"))
    result = batch_search.search(probe, cfg["start"], cfg["limit"], cap, print_fn)
    return result, seen["env"]
