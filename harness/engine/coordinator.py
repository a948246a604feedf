"""The coordinator: rounds over N variants, each case visiting the variants back to back.

A case that kills its worker (segfault, ``kill -9``, the kernel's OOM killer) or runs past its
timeout costs that case in that variant only: the record says ``crashed`` (with the signal and the
worker's last words) or ``timeout``, and a fresh worker takes the variant's next case. Records are
appended and fsynced as they come, each with its ``round`` part. A run of several rounds or variants
leaves the FLOPs and the tensor peak of its first round to a pass after all timed rounds, as many
workers at once as the machine has cores (``extras_after_rounds``). Ctrl-C stops every worker, keeps
every finished record and tells how to ``--resume`` (which runs the (case, round) pairs a variant's
file does not hold yet). A full disk stops the run with what was kept named. Standard library only.
"""
import contextlib
import errno
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from harness.engine import schedule
from harness.engine.variant import Variant
from harness.record.schema import SCHEMA_VERSION, Record, RecordError
from harness.record.store import CountsWriter, ExtrasWriter, RecordWriter, read_after_rounds, read_records
from harness.runner import extras as extras_modes
from harness.runner import profile as profiling
from harness.runner import roofline
from harness.runner.instruction_pass import InstructionPass
from harness.runner.manager import (
    RECORD_HEAD,
    DiskFull,
    ask_worker,
    case_words,
    optimize_level,
    progress_line,
    search_max_batch,
)
from harness.runner.worker_process import Worker
from harness.scenario.spec import Scenario, profiled
from harness.units import format_bytes, format_count, format_duration
from harness.vocab import MAX_BATCH, NOT_RUN_STATUSES


@dataclass
class Outcome:
    """What a run left: the records written per variant label, whether Ctrl-C stopped it, and the
    variants that dropped out (label -> why: a worker that could not start), whose other visits were
    not run."""

    written: Dict[str, List[Dict]]
    interrupted: bool
    dropped: Dict[str, str]


class _WorkerWontStart(Exception):
    """A variant's worker could not start (its interpreter or code is broken): the variant drops out."""


@dataclass
class _State:
    """What the coordinator holds for one variant during a run."""

    variant: Variant
    writer: RecordWriter
    held: Set[Tuple[str, int]]
    settings: Dict
    by_key: Dict[str, Tuple]
    worker: Optional[Worker] = None
    #: a ``python_optimized`` case runs in a worker started with -O; the other waits here, parked
    parked: Dict[int, Worker] = field(default_factory=dict)
    instruction_pass: Optional[InstructionPass] = None
    written: List[Dict] = field(default_factory=list)
    #: the environment of the last worker started, for records of cases that do not run
    env: Optional[Dict] = None
    roofline_done: bool = False
    #: why the variant dropped out (its worker could not start), or None
    dropped: Optional[str] = None
    #: cases this environment cannot run (a first round said unsupported or skipped): not visited again
    settled: Set[str] = field(default_factory=set)

    def visits(self, key: str, round_index: int) -> bool:
        """Whether the case ``key`` has a record in round ``round_index``: a case that does not run, a
        largest-batch search and a case the first round found it cannot run are recorded once (round 1);
        a measured case in every round."""
        case, not_run = self.by_key[key]
        return round_index == 1 or (_runnable(case, not_run) and key not in self.settled)

    def workers(self) -> List[Worker]:
        return [w for w in [self.worker] + list(self.parked.values()) if w is not None]

    def close_workers(self, kill: bool = False) -> None:
        for w in self.workers():
            if kill:
                w.kill()
            w.close()
        self.worker, self.parked = None, {}


def _runnable(case, not_run) -> bool:
    return not_run is None and case.batch_size != MAX_BATCH


def _not_run_keys(path: str) -> Set[str]:
    """Keys of the cases ``path``'s records say could not run (``vocab.NOT_RUN_STATUSES``): a fact of the
    environment, not a measure, that a later round would only repeat."""
    if not os.path.exists(path):
        return set()
    return {r["case_key"] for r in read_records(path) if r.get("status") in NOT_RUN_STATUSES and r.get("case_key")}


def held_rounds(records: Sequence[Dict]) -> Set[Tuple[str, int]]:
    """``(case key, round)`` of ``records`` (a record without a round part counts as round 1)."""
    return {(r["case_key"], int(((r.get("round") or {}).get("index")) or 1)) for r in records if r.get("case_key")}


def held_offset(records: Sequence[Dict]) -> int:
    """The highest round index of ``records`` (0 for none): an appended run numbers its rounds after it."""
    return max([int(((r.get("round") or {}).get("index")) or 1) for r in records] or [0])


def run_variants(scenario: Scenario, variants: Sequence[Variant], rounds: int,
                 held: Optional[Dict[str, Set[Tuple[str, int]]]] = None, print_fn: Callable = print,
                 shard: Optional[Dict[str, Dict]] = None,
                 round_offset: int = 0) -> Outcome:
    """Run every variant's cases in ``rounds`` interleaved rounds, appending records to each variant's
    ``out_path``, skipping the ``(case key, round)`` pairs in ``held[label]`` (``--resume``). ``shard``
    maps a case key to its record's ``shard`` part (``run --shard``; one variant).

    With instruction counts (``[measure] instructions``), after all timed rounds: ``count_after_rounds``
    (the first variant's step decides which cases every variant counts). ``round_offset``: rounds the
    record files already hold (``--append``): this run's rounds are numbered after them, so rounds
    appended run by run stay apart.

    A variant whose worker cannot start drops out (said at once, and in ``Outcome.dropped``); the others
    go on. Raises ``DiskFull`` when a record file cannot be written for lack of space (what was kept is
    named).
    """
    held = held or {}
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    labels = [v.label for v in variants]
    keys: List[str] = list(dict.fromkeys(c.key for v in variants for c, _ in v.cases))
    measure = scenario.measure
    states: List[_State] = []
    visits = [(r, key, i) for r in range(1, rounds + 1) for key in keys for i, v in enumerate(variants)]
    interrupted = False
    with contextlib.ExitStack() as stack:
        for v in variants:
            by_key = {c.key: (c, nr) for c, nr in v.cases}
            settings = {"measure": measure, "tolerance": scenario.tolerance, "task": scenario.task,
                        "checks": scenario.checks,
                        "model_options": {m: scenario.model_options(m) for m in dict.fromkeys(c.model for c, _ in
                                                                                              v.cases)}}
            writer = stack.enter_context(RecordWriter(v.out_path))
            if writer.set_aside:
                print_fn("note: %s ended with an unterminated line (%d bytes: a run killed mid-write or a full "
                         "disk); moved to %s" % (v.out_path, writer.set_aside[0], writer.set_aside[1]))
            state = _State(v, writer, set(held.get(v.label, ())), settings, by_key)
            if state.held:  # resuming: what the first round found it cannot run stays settled
                state.settled = _not_run_keys(v.out_path)
            states.append(state)
        pending = [(r, key, i) for r, key, i in visits if key in states[i].by_key
                   and states[i].visits(key, r) and (key, round_offset + r) not in states[i].held]
        total = len(pending)
        planned = sum(1 for r, key, i in visits if key in states[i].by_key and states[i].visits(key, r))
        if total < planned:
            if len(states) == 1 and rounds == 1:
                print_fn("resuming: %d of %d cases already recorded in %s" % (planned - total, planned,
                                                                              states[0].variant.out_path))
            else:
                print_fn("resuming: %d of %d (case, round) visits already recorded, %d to go" % (
                    planned - total, planned, total))
        done = 0
        t_run = time.perf_counter()
        r, phase = 1, "rounds"
        try:
            for r in range(1, rounds + 1):
                for s in states:  # a fresh worker per round and variant: the process is the unit of replication
                    s.close_workers()
                for ci, key in enumerate(keys):
                    having = [i for i, s in enumerate(states) if key in s.by_key]
                    order = schedule.visit_order(having, ci, r)
                    for position, i in enumerate(order):
                        s = states[i]
                        case, not_run = s.by_key[key]
                        if not s.visits(key, r) or (key, round_offset + r) in s.held or s.dropped:
                            continue
                        paired = len([j for j in having if states[j].visits(key, r)]) > 1
                        try:
                            record = _visit(s, scenario, case, not_run, (r, rounds, round_offset), labels, position,
                                            paired, run_id, shard, print_fn)
                        except _WorkerWontStart as exc:
                            s.dropped = str(exc)
                            s.close_workers(kill=True)
                            print_fn("%s: %s; its other cases are not run (the other variants go on)" % (
                                s.variant.label, s.dropped))
                            continue
                        done += 1
                        if record.get("status") in NOT_RUN_STATUSES and _runnable(case, not_run):
                            s.settled.add(key)  # its later rounds would say the same: not visited
                            total -= sum(1 for later in range(r + 1, rounds + 1)
                                         if (key, round_offset + later) not in s.held)
                        left_s = schedule.eta_s(done, total, time.perf_counter() - t_run)
                        where = "r%d/%d %s" % (r, rounds, s.variant.label) if (rounds > 1 or len(states) > 1) \
                            else ""
                        line = progress_line(done, total, case, record)
                        if where:
                            line = "%s  [%s, %s left]" % (line, where, format_duration(left_s, "?"))
                        print_fn(line)
            for s in states:  # the last round's workers: nothing is timed from here on
                s.close_workers()
            phase = "extras"
            extras_after_rounds(states, scenario, print_fn, round_offset + 1)
            if measure.get("instructions"):
                phase = "counting"
                count_after_rounds(states, scenario, print_fn, round_offset + 1)
        except KeyboardInterrupt:
            interrupted = True
            if phase == "extras":
                print_fn("\ninterrupted in the extras after the rounds: every record and the extras made are kept; "
                         "run again with --resume to run the rest")
            elif phase == "counting":
                print_fn("\ninterrupted while counting instructions: every record and the counts made are kept; "
                         "run again with --resume to count the rest")
            elif len(states) == 1 and rounds == 1:
                print_fn("\ninterrupted: %d cases recorded in %s, %d not run; run again with --resume to finish" % (
                    len(states[0].written), states[0].variant.out_path, total - done))
            else:
                print_fn("\ninterrupted in round %d of %d: %d records kept (%s), %d (case, round) visits not run; "
                         "run again with --resume to run only those" % (
                             r, rounds, sum(len(s.written) for s in states),
                             ", ".join("%s %d in %s" % (s.variant.label, len(s.written), s.variant.out_path)
                                       for s in states), total - done))
        finally:
            for s in states:
                s.close_workers(kill=interrupted)
                if s.instruction_pass is not None:
                    s.instruction_pass.close(kill=interrupted)
    return Outcome({s.variant.label: s.written for s in states}, interrupted,
                   {s.variant.label: s.dropped for s in states if s.dropped})


def count_after_rounds(states: List[_State], scenario: Scenario, print_fn, first_round: int = 1) -> None:
    """The instruction counts of every variant's first-round ok cases that have none yet (in its record file
    with its counts file; so ``--resume`` counts what an interrupted pass left), after all timed rounds:
    one counting worker per variant under valgrind, as many at once as the machine has cores, each count
    appended to the variant's counts file as it comes (``harness.record.store.CountsWriter``).

    The first variant's step decides which cases every variant counts
    (``instructions_max_step_s``), so a step near the limit is counted on every side or on none.
    ``first_round``: the index of the run's first round (the one that ran the extras)."""
    todo: List[Tuple[_State, List[Dict]]] = []
    deciding: Dict[str, float] = {}
    for n, s in enumerate(states):
        first = [r for r in read_records(s.variant.out_path)
                 if r.get("status") == "ok" and r.get("timing")
                 and ((r.get("round") or {}).get("index") or 1) == first_round]
        if n == 0:
            deciding = {r["case_key"]: r["timing"].get("median_s") for r in first}
        missing = [r for r in first if not r.get("instructions")]
        if missing:
            todo.append((s, missing))
    if not todo:
        return
    total = sum(len(m) for _, m in todo)
    slots = max(1, min(len(todo), os.cpu_count() or 1))
    print_fn("instruction pass: %d cases in %d variants, %d counting worker%s at once under valgrind" % (
        total, len(todo), slots, "s" if slots != 1 else ""))
    done = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def count_variant(s: _State, missing: List[Dict]) -> None:
        v = s.variant
        s.instruction_pass = InstructionPass(scenario.measure, scenario.backend, print_fn, python=v.python,
                                             root=v.root, env=v.env)
        with CountsWriter(v.out_path) as writer:
            for rec in missing:
                if stop.is_set():
                    return
                step_s = deciding.get(rec["case_key"], rec["timing"].get("median_s"))
                part = s.instruction_pass.count(rec["case"], s.settings, step_s)
                if stop.is_set():  # killed by Ctrl-C: not a count
                    return
                writer.append({"case_key": rec["case_key"], "round": first_round, "instructions": part})
                with lock:
                    done[0] += 1
                    print_fn("[count %d/%d] %-14s %s  %s" % (done[0], total, v.label, rec["case_key"], (
                        "%s instructions/step" % format_count(part.get("per_iter")) if part.get("status") == "ok"
                        else "%s (%s)" % (part.get("status"), (part.get("reason") or "")[:80]))))
        s.instruction_pass.close()
        s.instruction_pass = None

    queue = list(todo)
    running: List[threading.Thread] = []
    try:
        while queue or running:
            running = [t for t in running if t.is_alive()]
            while queue and len(running) < slots:
                t = threading.Thread(target=count_variant, args=queue.pop(0), daemon=True)
                t.start()
                running.append(t)
            time.sleep(0.05)
    except KeyboardInterrupt:
        stop.set()
        for s, _ in todo:
            if s.instruction_pass is not None:
                s.instruction_pass.close(kill=True)
        raise


#: The worker protocol (``harness.runner.worker.PROTOCOL``) from which a worker defers extras to the pass
#: after the rounds; an older one (``ab``'s base) runs them all in its first round, and the pass skips them.
DEFER_PROTOCOL = 3


def extras_after_rounds(states: List[_State], scenario: Scenario, print_fn, first_round: int = 1) -> None:
    """The extras that the first round deferred (``harness.runner.extras.AFTER_ROUNDS``: the FLOPs and the
    tensor peak) of every variant's first-round ok cases that have none yet in the extras file (so
    ``--resume`` runs what an interrupted pass left), after all timed rounds: as many workers at once as
    the machine has cores (one where a case runs on a GPU), each variant's cases split among them where
    there are fewer variants than cores. Each case is built anew and stepped once in a worker of its variant
    (``harness.runner.execute.run_after_rounds``); each extra keeps its own budget (``[measure]
    extra_timeout_s``), and a case the pass loses (a crash, an overrun) is recorded as those extras'
    failure, its timing untouched. Entries are appended to the variant's extras file as they come."""
    todo: List[Tuple[_State, List[Dict]]] = []
    for s in states:
        if s.dropped or not os.path.exists(s.variant.out_path):
            continue
        made = read_after_rounds(s.variant.out_path)
        missing = [r for r in read_records(s.variant.out_path)
                   if r.get("status") == "ok" and (r.get("extras") or {}).get("deferred")
                   and int((r.get("round") or {}).get("index") or 1) == first_round
                   and r["case_key"] in s.by_key and (r["case_key"], first_round) not in made]
        if missing:
            todo.append((s, missing))
    if not todo:
        return
    total = sum(len(m) for _, m in todo)
    on_cpu = all(r["case"].get("device") == "cpu" for _, m in todo for r in m)
    # one at a time where a case uses a GPU: two processes' steps on one device could run it out of memory
    slots = max(1, min(total, os.cpu_count() or 1)) if on_cpu else 1
    per_variant = max(1, -(-slots // len(todo)))  # ceil: every core busy even with one variant
    jobs = []
    for s, missing in todo:
        n = min(per_variant, len(missing))
        jobs += [(s, missing[i::n]) for i in range(n)]
    jobs.sort(key=lambda job: -len(job[1]))  # the longest first: the pass ends when its longest job does
    print_fn("extras after the rounds (%s): %d cases in %d variants, %d workers at once" % (
        ", ".join(extras_modes.AFTER_ROUNDS), total, len(todo), min(slots, len(jobs))))
    done = [0]
    lock = threading.Lock()
    stop = threading.Event()
    live: List[Worker] = []
    failures: List[BaseException] = []  # a job's error, raised here once every job has stopped
    writers = {id(s): ExtrasWriter(s.variant.out_path) for s, _ in todo}

    def run_job(s: _State, records: List[Dict]) -> None:
        workers: Dict[int, Worker] = {}
        try:
            for rec in records:
                if stop.is_set():
                    return
                entry = _after_rounds_entry(s, scenario, rec, workers, live, lock, first_round)
                if stop.is_set():  # killed by Ctrl-C: not a result
                    return
                with lock:
                    writers[id(s)].append(entry)
                    done[0] += 1
                    print_fn("[extras %*d/%d] %-72s %s  [%s]" % (
                        len(str(total)), done[0], total, case_words(s.by_key[rec["case_key"]][0]),
                        _after_rounds_line(entry), s.variant.label))
        except Exception as exc:  # noqa: BLE001 - stops the pass; raised in the coordinator's thread
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                exc = DiskFull("disk full writing %s: every record is kept, %d extras made; run again with "
                               "--resume when there is space" % (writers[id(s)].path, done[0]))
            failures.append(exc)
            stop.set()
        finally:
            for w in workers.values():
                w.close()
                with lock:
                    if w in live:
                        live.remove(w)

    queue = list(jobs)
    running: List[threading.Thread] = []
    try:
        while queue or running:
            running = [t for t in running if t.is_alive()]
            while queue and len(running) < slots and not stop.is_set():
                t = threading.Thread(target=run_job, args=queue.pop(0), daemon=True)
                t.start()
                running.append(t)
            if stop.is_set():
                queue = []
            time.sleep(0.02)
    except KeyboardInterrupt:
        stop.set()
        with lock:
            for w in live:
                w.kill()
        raise
    finally:
        for w in writers.values():
            w.close()
    if failures:
        raise failures[0]


def _after_rounds_entry(s: _State, scenario: Scenario, rec: Dict, workers: Dict[int, Worker], live: List[Worker],
                        lock: threading.Lock, first_round: int) -> Dict:
    """The extras file's entry for the first-round record ``rec``: its deferred extras run in a worker of its
    variant (``workers``: this job's, by ``python -O`` level; a lost one is replaced for the next case)."""
    measure = scenario.measure
    case, _ = s.by_key[rec["case_key"]]
    wanted = optimize_level(case)
    entry: Dict = {"case_key": rec["case_key"], "round": first_round, "flops": None, "memory": {},
                   "extras": {"seconds": {}, "failed": {}}}
    deferred = list((rec.get("extras") or {}).get("deferred") or [])
    try:
        if wanted not in workers:
            workers[wanted] = _new_worker(s, scenario, wanted)
            with lock:
                live.append(workers[wanted])
    except _WorkerWontStart as exc:
        entry["extras"]["failed"] = {name: "the pass after the rounds: worker could not start: %s" % exc
                                     for name in deferred}
        return entry
    rooflines = {case.device: rec["roofline"]} if rec.get("roofline") else s.settings.get("roofline")
    settings = dict(s.settings, measure=measure, extras=extras_modes.PASS,
                    median_s=(rec.get("timing") or {}).get("median_s"), roofline=rooflines)
    timeout_s = measure["timeout_s"] + (measure["compile_warmup_s"] if case.compile else 0.0)
    result, usable = ask_worker(workers[wanted], case.to_dict(), settings, timeout_s,
                                extra_timeout_s=measure.get("extra_timeout_s"))
    if not usable:
        with lock:
            if workers[wanted] in live:
                live.remove(workers[wanted])
        del workers[wanted]
    if result.get("status") != "ok":  # lost before its first extra began, or the case no longer builds here
        why = "the pass after the rounds: %s: %s" % (result.get("status"), result.get("reason"))
        entry["extras"]["failed"] = {name: why for name in deferred}
        return entry
    entry["flops"] = result.get("flops")
    entry["memory"] = {k: v for k, v in (result.get("memory") or {}).items() if k.startswith("tensor_peak")}
    part = result.get("extras") or {}
    entry["extras"] = {"seconds": dict(part.get("seconds") or {}), "failed": dict(part.get("failed") or {})}
    return entry


def _after_rounds_line(entry: Dict) -> str:
    """One progress line's figures for an extras-file entry."""
    failed = entry["extras"]["failed"]
    parts = []
    if (entry.get("flops") or {}).get("per_iter") is not None:
        parts.append("%s FLOPs/step" % format_count(entry["flops"]["per_iter"]))
    if entry["memory"].get("tensor_peak_bytes") is not None:
        parts.append("tensor peak %s" % format_bytes(entry["memory"]["tensor_peak_bytes"]))
    parts += ["%s failed (%s)" % (name, why[:80]) for name, why in sorted(failed.items())]
    return ", ".join(parts) or "nothing to run"


def _new_worker(s: _State, scenario: Scenario, optimize: int = sys.flags.optimize) -> Worker:
    v = s.variant
    try:
        w = Worker(scenario.measure["threads"], scenario.backend, python=v.python, optimize=optimize, root=v.root,
                   env=v.env)
        w.start()
    except (RuntimeError, OSError) as exc:
        raise _WorkerWontStart(" ".join(str(exc).split())[:600]) from None
    s.env = w.env
    return w


def _visit(s: _State, scenario: Scenario, case, not_run, when: Tuple[int, int, int], labels: List[str],
           position: int, paired: bool, run_id: str, shard, print_fn) -> Dict:
    """Run ``case`` in variant ``s`` and append its record; the record. ``when``: (this run's round ``r``,
    its rounds, the rounds the files held before it)."""
    r, rounds, offset = when
    t0 = time.perf_counter()
    measure = scenario.measure
    if not_run is not None:
        if s.env is None and any(_runnable(c, nr) for c, nr in s.variant.cases):
            s.worker = _new_worker(s, scenario)  # so that every record carries the environment
        result = {"status": not_run.status, "reason": not_run.reason}
        env = (s.env.get(case.device) or s.env.get("cpu")) if s.env else None
    elif case.batch_size == MAX_BATCH:
        result, env = search_max_batch(case, s.settings, scenario, lambda o: _new_worker(s, scenario, o), print_fn)
    else:
        wanted = optimize_level(case)
        if s.worker is not None and s.worker.optimize != wanted:
            s.parked[s.worker.optimize], s.worker = s.worker, s.parked.pop(wanted, None)
        if s.worker is None:
            s.worker = _new_worker(s, scenario, wanted)
        if not s.roofline_done:  # once per run and variant, not per worker
            s.roofline_done = True
            if measure.get("roofline", True) and measure.get("flops", True):
                devices = {c.device for c, nr in s.variant.cases if nr is None} & set(s.worker.env)
                s.settings["roofline"], usable = roofline.measure_in(s.worker, ask_worker, devices, print_fn)
                if not usable:
                    s.worker = _new_worker(s, scenario, wanted)
        timeout_s = measure["timeout_s"] + (measure["compile_warmup_s"] if case.compile else 0.0)
        env = s.worker.env.get(case.device) or s.worker.env.get("cpu")
        settings = dict(s.settings, measure=schedule.round_measure(measure, r, rounds))
        if rounds > 1 or len(labels) > 1:  # the first round's profiled extras wait for the pass after the rounds
            defer = extras_modes.DEFER if s.worker.protocol >= DEFER_PROTOCOL else extras_modes.ALL
            settings["extras"] = defer if r == 1 else extras_modes.NONE
        settings = profiling.case_settings(settings, scenario.profile, r == 1 and profiled(scenario, case),
                                           s.variant.out_path, s.variant.label, case.key)
        result, usable = ask_worker(s.worker, case.to_dict(), settings, timeout_s,
                                    extra_timeout_s=measure.get("extra_timeout_s"))
        if not usable:
            s.worker = None
    record = {
        "schema_version": SCHEMA_VERSION, "run_id": run_id,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scenario": scenario.name, "env_label": s.variant.label, "case_key": case.key,
        "case": case.to_dict(), "env": env, "shard": shard[case.key] if shard else None,
        "round": {"index": offset + r, "of": offset + rounds, "variants": labels, "position": position,
                  "paired": paired, "extras": r == 1},
    }
    record.update(result)
    if (s.settings.get("roofline") or {}).get(case.device):
        record["roofline"] = s.settings["roofline"][case.device]
    record.setdefault("reason", None)
    record.setdefault("duration_s", time.perf_counter() - t0)
    record["wall_s"] = time.perf_counter() - t0
    _append(s, record, t0)
    return record


def _append(s: _State, record: Dict, t0: float) -> None:
    try:
        try:
            s.writer.append(Record.from_dict(record, strict=True))
        except RecordError as exc:  # a runner bug: keep the case, say why its figures are gone
            kept = {k: record[k] for k in RECORD_HEAD}
            kept.update(status="error", reason="harness bug: record failed the schema check: %s" % exc,
                        wall_s=time.perf_counter() - t0)
            record.clear()
            record.update(kept)
            s.writer.append(Record.from_dict(record, strict=True))
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DiskFull("disk full writing %s: %d records kept, run again with --resume when there is space" % (
            s.variant.out_path, len(s.held) + len(s.written))) from None
    s.written.append(record)


def out_path_of(out_dir: str, label: str) -> str:
    """A variant's record file."""
    return os.path.join(out_dir, label + ".jsonl")
