"""``torchmatrix matrix SCENARIO --variant LABEL=PYTHON ...``: one scenario in several environments, interleaved.

The coordinator of ``nox -s matrix`` (``harness.engine``): each variant is a Python with its torch
(and optionally its own code tree); in each round every variant gets a fresh worker and every
case visits the variants back to back in a rotating order, so a difference between variants is
measured side by side in time, round after round. Records go to ``OUT/<label>.jsonl`` with their
``round`` part. Standard library only: it runs in nox's own interpreter.
"""
import os
import sys
import threading
import time
from typing import Dict, List

from harness.commands._options import add_case_options
from harness.engine import schedule
from harness.engine.variant import Variant, VariantError
from harness.record.store import OutputLock, OutputLocked, read_records, rotate_aside, write_env_json
from harness.scenario import models as scenario_models
from harness.scenario import requirements
from harness.scenario import spec as scen
from harness.vocab import ENV_LABEL_RE, ExitCode

NAME = "matrix"
HELP = "run a scenario in several environments at once, in interleaved rounds (what nox -s matrix calls)"
DESCRIPTION = ("Run every case of SCENARIO in each variant (a Python with its torch), in interleaved rounds: each "
               "round a fresh worker per variant, each case measured in every variant back to back, so "
               "differences between variants are paired in time. Records go to OUT/LABEL.jsonl. `nox -s matrix` "
               "builds the environments and calls this; call it yourself with --variant LABEL=PYTHON.")


def add_arguments(parser) -> None:
    parser.add_argument("scenario",
                        help="scenario file, or the name of one in scenarios/ (default, smoke, full, faults)")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL=PYTHON",
                        help="a variant: its label (the record file's name) and the Python that runs it "
                             "(an environment with torch); repeatable, at least one in all")
    parser.add_argument("--variant-file", action="append", default=[], metavar="FILE",
                        help='a variant as JSON: {"label", "python", "root"?: code tree, "env"?: {NAME: VALUE}} '
                             "(what nox -s matrix writes); repeatable")
    parser.add_argument("--rounds", type=int, default=None,
                        help='interleaved rounds (default: the scenario\'s [measure] rounds; "auto" there: 3 for '
                             "two or more variants, 1 for one). The rounds share the samples, they do not add any")
    parser.add_argument("--out", help="output folder (default: results/<scenario name>)")
    add_case_options(parser, "run only the (case, round) visits the record files do not hold yet")
    parser.add_argument("--dry-run", action="store_true", help="list each variant's cases and the plan, and exit")


def _variants(args) -> List:
    """The variants the arguments name; ``VariantError`` for a bad one."""
    variants = []
    for item in args.variant:
        label, sep, python = item.partition("=")
        if not sep or not label or not python:
            raise VariantError("--variant %r: expected LABEL=PYTHON" % item)
        variants.append(Variant(label, python))
    variants += [Variant.from_file(path) for path in args.variant_file]
    problems = []
    if not variants:
        problems.append("no variant: give --variant LABEL=PYTHON or --variant-file FILE (nox -s matrix does)")
    seen = set()
    for v in variants:
        if not ENV_LABEL_RE.match(v.label):
            problems.append("variant label %r: use letters, digits and . _ + - (it names the record file)" % v.label)
        if v.label in seen:
            problems.append("variant label %r given twice" % v.label)
        seen.add(v.label)
        if not (os.path.isfile(v.python) and os.access(v.python, os.X_OK)):
            problems.append("variant %s: %s is not an executable Python" % (v.label, v.python))
    if problems:
        raise VariantError(problems[0], problems)
    return variants


def _expand_all(variants, scenario_path: str, only: List[str]) -> Dict:
    """Each variant's own cases, asked in parallel (each imports its torch); answers by label."""
    answers: Dict = {}

    def ask(v):
        try:
            answers[v.label] = v.expand(scenario_path, only)
        except VariantError as exc:
            answers[v.label] = exc

    threads = [threading.Thread(target=ask, args=(v,)) for v in variants]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def run(args) -> int:
    from harness.engine.coordinator import out_path_of

    path = scen.resolve_path(args.scenario)
    try:
        sc = scen.load(path)
        scen.parse_only(args.only)
        variants = _variants(args)
    except scen.ScenarioError as exc:
        for problem in exc.problems:
            print("error: %s" % problem, file=sys.stderr)
        return ExitCode.INPUT
    except VariantError as exc:
        for problem in exc.problems or [str(exc)]:
            print("error: %s" % problem, file=sys.stderr)
        return ExitCode.INPUT
    from harness.shard import split as sharding

    try:
        shard_spec = sharding.parse_spec(args.shard) if args.shard is not None else None
        if args.shard_durations is not None and shard_spec is None:
            raise sharding.ShardError("--shard-durations %s: needs --shard K/N" % args.shard_durations)
    except sharding.ShardError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return ExitCode.INPUT
    if args.rounds is not None and not 1 <= args.rounds <= 100:
        print("error: --rounds %d: expected an integer in [1, 100]" % args.rounds, file=sys.stderr)
        return ExitCode.INPUT
    answers = _expand_all(variants, path, args.only)
    failed = [(label, a) for label, a in answers.items() if isinstance(a, Exception)]
    for label, exc in failed:
        for problem in getattr(exc, "problems", None) or [str(exc)]:
            print("error: %s: %s" % (label, problem) if not problem.startswith(label) else "error: %s" % problem,
                  file=sys.stderr)
    if failed:
        return ExitCode.INPUT
    for v in variants:
        doc = answers[v.label]
        if doc.get("note") and v.env.get(scenario_models.NAMES_CHECKED_ENV_VAR) != "1":
            print("%s: %s" % (v.label, doc["note"]))
        if doc.get("library_versions") and not v.env.get(requirements.REPORT_ENV_VAR):
            v.env[requirements.LIBRARY_VERSIONS_ENV_VAR] = doc["library_versions"]
    try:
        scen.add_profile_rules(sc, args.profile, [pair for v in variants for pair in v.cases])
    except scen.ScenarioError as exc:
        for problem in exc.problems:
            print("error: %s" % problem, file=sys.stderr)
        return ExitCode.INPUT
    selection = None
    if shard_spec is not None:  # one split for every variant: their case keys are the scenario's
        try:
            durations = sharding.read_durations(args.shard_durations) if args.shard_durations else None
            selection = sharding.select(variants[0].cases, shard_spec[0], shard_spec[1], sharding.scenario_hash(path),
                                        durations, args.shard_durations or "")
        except sharding.ShardError as exc:
            print("error: %s" % exc, file=sys.stderr)
            return ExitCode.INPUT
        keep = {case.key for case, _ in selection.cases}
        for v in variants:
            v.cases = [(case, not_run) for case, not_run in v.cases if case.key in keep]
    if args.instructions:
        sc.measure["instructions"] = True
    rounds = args.rounds or schedule.resolve_rounds(sc.measure.get("rounds"), len(variants))
    out_dir = args.out or os.path.join("results", sc.name)
    plan = "torchmatrix: scenario %s (%s), %d variants (%s), %d round%s%s; records in %s" % (
        sc.name, path, len(variants), ", ".join("%s %d cases" % (v.label, len(v.cases)) for v in variants), rounds,
        "s" if rounds != 1 else "", ", interleaved" if len(variants) > 1 else "", out_dir)
    if args.dry_run:
        for v in variants:
            for case, not_run in v.cases:
                print("%s  %s%s" % (v.label, case.key, "   [%s: %s]" % (not_run.status, not_run.reason)
                                    if not_run else ""))
        print(plan)
        if selection is not None:
            print(selection.summary())
        return ExitCode.OK
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        print("error: --out %s is a file, not a folder for record files" % out_dir, file=sys.stderr)
        return ExitCode.INPUT
    locks = []
    try:
        for v in variants:
            v.out_path = out_path_of(out_dir, v.label)
            lock = OutputLock(v.out_path)
            lock.acquire()
            locks.append(lock)
    except OutputLocked as exc:
        print("error: %s" % exc, file=sys.stderr)
        return ExitCode.INPUT
    except OSError as exc:
        print("error: cannot write records to %s: %s" % (out_dir, exc.strerror or exc), file=sys.stderr)
        return ExitCode.INPUT
    finally:
        if len(locks) < len(variants):
            for lock in locks:
                lock.release()
    try:
        return _run_locked(sc, variants, rounds, out_dir, plan, args, selection)
    finally:
        for lock in locks:
            lock.release()


def _run_locked(sc, variants, rounds: int, out_dir: str, plan: str, args, selection=None) -> int:
    """The run proper, every variant's record file locked: rotate or resume, rounds, summaries."""
    from harness.engine.coordinator import held_offset, held_rounds, run_variants
    from harness.runner.manager import DiskFull, summary_table

    held, offset = {}, 0
    for v in variants:
        if args.append and os.path.exists(v.out_path):  # pairing is by round index: one offset for all
            offset = max(offset, held_offset(read_records(v.out_path)))
        if args.resume:
            held[v.label] = held_rounds(read_records(v.out_path)) if os.path.exists(v.out_path) else set()
        elif not args.append:
            moved = rotate_aside(v.out_path)
            if moved:
                print("earlier records moved to %s" % moved)
    print(plan)
    if selection is not None:
        print(selection.summary())
    t0 = time.perf_counter()
    try:
        outcome = run_variants(sc, variants, rounds, held, print, round_offset=offset,
                               shard=selection.fields if selection else None)
        written = outcome.written
    except DiskFull as exc:
        print("error: %s" % exc, file=sys.stderr)
        return ExitCode.FAILURE
    except RuntimeError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return ExitCode.FAILURE
    for v in variants:
        envs = [r["env"] for r in written[v.label] if r.get("env")]
        if envs:
            write_env_json(out_dir, v.label, envs[0])
        print(summary_table(v.label, written[v.label]))
    print("   %.1f s; %d rounds over %d variants; records in %s" % (time.perf_counter() - t0, rounds, len(variants),
                                                                   out_dir))
    for label, why in outcome.dropped.items():
        print("error: %s dropped out: %s" % (label, why), file=sys.stderr)
    if outcome.interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.FAILURE if outcome.dropped else ExitCode.OK
