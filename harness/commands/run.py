"""``torchmatrix run SCENARIO``: run a scenario's cases in this environment."""
import os
import sys
import time
from typing import Optional, Sequence

from harness.commands._options import add_case_options
from harness.record.store import OutputLock, OutputLocked, read_records, rotate_aside, write_env_json
from harness.vocab import ENV_LABEL_RE, ExitCode

NAME = "run"
HELP = "run a scenario in this environment (records to results/)"
DESCRIPTION = ("Run every case of SCENARIO in this Python environment, each in a worker subprocess, appending "
               "one JSON record per case to OUT/ENV_LABEL.jsonl.")


def add_arguments(parser) -> None:
    parser.add_argument("scenario",
                        help="scenario file, or the name of one in scenarios/ (default, smoke, full, faults)")
    parser.add_argument("--out", help="output folder (default: results/<scenario name>)")
    parser.add_argument("--env-label", help="name of this environment's record file (default: torch-<ver>-py<ver>)")
    add_case_options(parser, "run only the cases the output does not hold yet")
    parser.add_argument("--dry-run", action="store_true", help="list the cases (of the shard, with --shard) and exit")




def run(args) -> int:
    return run_scenario(args.scenario, args.out, args.env_label, args.resume, args.append, args.only, args.dry_run,
                        instructions=args.instructions, shard=args.shard, shard_durations=args.shard_durations,
                        profile=args.profile)


def default_env_label() -> str:
    import platform

    import torch

    return "torch-%s-py%s" % (torch.__version__.split("+")[0], ".".join(platform.python_version_tuple()[:2]))


def run_scenario(scenario_path: str, out_dir: Optional[str] = None, env_label: Optional[str] = None,
                 resume: bool = False, append: bool = False, only: Sequence[str] = (), dry_run: bool = False,
                 print_fn=print, instructions: bool = False, shard: Optional[str] = None,
                 shard_durations: Optional[str] = None, profile: Sequence[str] = ()) -> int:
    """Run a scenario in this environment; records go to ``out_dir/env_label.jsonl``.
    ``instructions`` switches the instruction pass on (``[measure] instructions``); ``shard``
    (``"K/N"``) runs shard K of N only, balanced by ``shard_durations`` (a record store) when
    given, else by the cost model (``harness.shard.split``); ``profile``: ``--profile`` rules, cases whose
    profiler traces are recorded (``harness.scenario.spec.add_profile_rules``)."""
    from harness.scenario import spec as scen
    from harness.shard import split as sharding

    try:
        shard_spec = sharding.parse_spec(shard) if shard is not None else None
        if shard_durations is not None and shard_spec is None:
            raise sharding.ShardError("--shard-durations %s: needs --shard K/N" % shard_durations)
    except sharding.ShardError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return ExitCode.INPUT
    path = scen.resolve_path(scenario_path)
    try:
        sc = scen.load(path)
        cases = scen.expand(sc, scen.parse_only(only))
        scen.add_profile_rules(sc, profile, cases)
    except scen.ScenarioError as exc:
        # one line per problem, each naming the file, the key, the value and what is allowed
        for problem in exc.problems:
            print("error: %s" % problem, file=sys.stderr)
        return ExitCode.INPUT
    selection = None
    if shard_spec is not None:
        try:
            durations = sharding.read_durations(shard_durations) if shard_durations is not None else None
            selection = sharding.select(cases, shard_spec[0], shard_spec[1], sharding.scenario_hash(path),
                                        durations, shard_durations or "")
        except sharding.ShardError as exc:
            print("error: %s" % exc, file=sys.stderr)
            return ExitCode.INPUT
        cases = selection.cases
    if instructions:
        sc.measure["instructions"] = True
    from harness.scenario import models as scenario_models  # names a release lacks; library versions (#27)

    scenario_models.before_run(cases, dry_run, print_fn)
    if dry_run:
        for case, not_run in cases:
            print_fn(case.key + ("   [%s: %s]" % (not_run.status, not_run.reason) if not_run else "") +
                     ("   [profile]" if not_run is None and scen.profiled(sc, case) else ""))
        print_fn(selection.summary() if selection else "%d cases" % len(cases))
        return ExitCode.OK
    if env_label is not None and not ENV_LABEL_RE.match(env_label):
        print("error: --env-label %r: use letters, digits and . _ + - (it names the record file)" % env_label,
              file=sys.stderr)
        return ExitCode.INPUT
    label = env_label or default_env_label()
    out_dir = out_dir or os.path.join("results", sc.name)
    out_path = os.path.join(out_dir, label + ".jsonl")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        print("error: --out %s is a file, not a folder for record files" % out_dir, file=sys.stderr)
        return ExitCode.INPUT
    lock = OutputLock(out_path)
    try:
        lock.acquire()
    except OutputLocked as exc:
        print("error: %s" % exc, file=sys.stderr)
        return ExitCode.INPUT
    except OSError as exc:  # --out under a missing or read-only mount, or naming a file
        print("error: cannot write records to %s: %s" % (out_dir, exc.strerror or exc), file=sys.stderr)
        return ExitCode.INPUT
    try:
        return _run_locked(sc, path, cases, out_dir, out_path, label, resume, append, print_fn, selection)
    finally:
        lock.release()


def _run_locked(sc, path: str, cases, out_dir: str, out_path: str, label: str, resume: bool, append: bool,
                print_fn, selection=None) -> int:
    """The run proper, with the output's lock held; ``selection``: the shard (``harness.shard.split.Selection``)."""
    from harness.engine import schedule
    from harness.engine.coordinator import held_offset, held_rounds, run_variants
    from harness.engine.variant import Variant
    from harness.runner.manager import DiskFull, summary_table

    held = held_rounds(read_records(out_path)) if resume and os.path.exists(out_path) else set()
    if not resume and not append:
        moved = rotate_aside(out_path)
        if moved:
            print_fn("earlier records moved to %s" % moved)
    print_fn("torchmatrix: scenario %s (%s), %d cases, environment %s -> %s" % (
        sc.name, path, len(cases), label, out_path))
    if selection is not None:
        print_fn(selection.summary())
    t0 = time.perf_counter()
    try:
        rounds = schedule.resolve_rounds(sc.measure.get("rounds"), 1)
        variant = Variant(label, out_path=out_path, cases=list(cases))
        offset = held_offset(read_records(out_path)) if append and os.path.exists(out_path) else 0
        outcome = run_variants(sc, [variant], rounds, {label: held}, print_fn,
                               shard=selection.fields if selection else None, round_offset=offset)
        written, interrupted = outcome.written[label], outcome.interrupted
    except DiskFull as exc:
        print("error: %s" % exc, file=sys.stderr)
        return ExitCode.FAILURE
    except RuntimeError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return ExitCode.FAILURE
    envs = [r["env"] for r in written if r.get("env")]
    if envs:
        write_env_json(out_dir, label, envs[0])
    print_fn(summary_table(label, written))
    traced = sum(1 for r in written if (r.get("profile") or {}).get("trace_file"))
    if traced:
        print_fn("   profiler traces of %d cases in %s (nox -s tensorboard, or Perfetto)" % (
            traced, os.path.join(out_dir, "profiles", label)))
    print_fn("   %.1f s; records in %s" % (time.perf_counter() - t0, out_path))
    if outcome.dropped:
        print("error: %s" % outcome.dropped[label], file=sys.stderr)
        return ExitCode.FAILURE
    return ExitCode.INTERRUPTED if interrupted else ExitCode.OK
