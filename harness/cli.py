"""The command line: ``torchmatrix`` / ``python -m harness``.

Commands take plain arguments and call plain functions (``run_scenario``...), so
tests drive them without a command line. Exit codes: 0 done, 1 failure (a
regression for ``gate``), 2 bad input (nothing written), 3 internal error, 130
interrupted.
"""
import argparse
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def resolve_scenario(name: str) -> str:
    """A scenario path, or the name of one shipped in scenarios/ (``smoke``)."""
    if os.path.exists(name) or os.sep in name or name.endswith(".toml"):
        return name
    return os.path.join(ROOT, "scenarios", name + ".toml")


def default_env_label() -> str:
    import platform

    import torch

    return "torch-%s-py%s" % (torch.__version__.split("+")[0], ".".join(platform.python_version_tuple()[:2]))


def _rotate(path: str) -> Optional[str]:
    """Move an earlier run's records aside (never delete them); return the new place."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(os.path.getmtime(path)))
    dest_dir = os.path.join(os.path.dirname(path), "previous", stamp)
    os.makedirs(dest_dir, exist_ok=True)
    dest = os.path.join(dest_dir, os.path.basename(path))
    os.replace(path, dest)
    env_json = path[: -len(".jsonl")] + ".env.json"
    if os.path.exists(env_json):
        os.replace(env_json, os.path.join(dest_dir, os.path.basename(env_json)))
    return dest


def run_scenario(scenario_path: str, out_dir: Optional[str] = None, env_label: Optional[str] = None,
                 resume: bool = False, append: bool = False, only: Sequence[str] = (), dry_run: bool = False,
                 print_fn=print) -> int:
    """Run a scenario in this environment; records go to ``out_dir/env_label.jsonl``."""
    from harness import scenario as scen
    from harness.manager import run_cases, summary_table
    from harness.record import held_case_keys

    path = resolve_scenario(scenario_path)
    try:
        sc = scen.load(path)
        cases = scen.expand(sc, scen.parse_only(only))
    except scen.ScenarioError as exc:
        print("error: scenario not usable, nothing was run:\n  " + "\n  ".join(exc.problems), file=sys.stderr)
        return EXIT_INPUT
    if dry_run:
        for case, reason in cases:
            print_fn(case.key + ("   [skipped: %s]" % reason if reason else ""))
        print_fn("%d cases" % len(cases))
        return EXIT_OK
    label = env_label or default_env_label()
    out_dir = out_dir or os.path.join("results", sc.name)
    out_path = os.path.join(out_dir, label + ".jsonl")
    held = held_case_keys(out_path) if resume else set()
    if not resume and not append:
        moved = _rotate(out_path)
        if moved:
            print_fn("earlier records moved to %s" % moved)
    print_fn("torchmatrix: scenario %s (%s), %d cases, environment %s -> %s" % (
        sc.name, path, len(cases), label, out_path))
    t0 = time.perf_counter()
    try:
        written, interrupted = run_cases(sc, cases, out_path, label, held=held, print_fn=print_fn)
    except RuntimeError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return EXIT_FAIL
    envs = [r["env"] for r in written if r.get("env")]
    if envs:
        _write_env_json(out_dir, label, envs[0])
    print_fn(summary_table(label, written))
    print_fn("   %.1f s; records in %s" % (time.perf_counter() - t0, out_path))
    return EXIT_INTERRUPTED if interrupted else EXIT_OK


def _write_env_json(out_dir: str, label: str, env: Dict, status: str = "ok", reason: Optional[str] = None) -> None:
    path = os.path.join(out_dir, label + ".env.json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"env_label": label, "status": status, "reason": reason, "versions": env}, fh, indent=1,
                  sort_keys=True)
    os.replace(tmp, path)


def list_models_cmd(patterns: Sequence[str], include_faults: bool, print_fn=print) -> int:
    """Print the zoo: name, family, parameters are not built here (cheap)."""
    import models

    names = models.list_models(patterns or ["*"], include_faults=include_faults)
    if not names:
        print("no model matches %s" % " ".join(patterns), file=sys.stderr)
        return EXIT_INPUT
    for name in names:
        spec = models.get_spec(name)
        print_fn("%-40s %-16s %-6s sizes=%-14s %s" % (
            name, spec.family, "FAULT" if spec.fault else "", ",".join(str(s) for s in spec.default_sizes),
            spec.description))
    return EXIT_OK


def env_cmd(out: Optional[str], print_fn=print) -> int:
    """Print (and optionally save) this environment's versions."""
    import torch

    from harness import envinfo

    info = envinfo.environment("cuda" if torch.cuda.is_available() else "cpu")
    text = json.dumps(info, indent=1, sort_keys=True)
    print_fn(text)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchmatrix",
        description="Benchmark and regression-test PyTorch models across PyTorch releases, precisions "
                    "and gradient-checkpointing modes. Run `nox -s matrix` for all environments, or "
                    "`torchmatrix run SCENARIO` inside one.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run a scenario in this environment (records to results/)",
                       description="Run every case of SCENARIO in this Python environment, each in a worker "
                                   "subprocess, appending one JSON record per case to OUT/ENV_LABEL.jsonl.")
    p.add_argument("scenario", help="scenario file, or the name of one in scenarios/ (default, smoke, full, faults)")
    p.add_argument("--out", help="output folder (default: results/<scenario name>)")
    p.add_argument("--env-label", help="name of this environment's record file (default: torch-<ver>-py<ver>)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="run only the cases the output does not hold yet")
    mode.add_argument("--append", action="store_true",
                      help="append to the output as is (A/B rounds); default moves earlier records to previous/")
    p.add_argument("--only", action="append", default=[], metavar="AXIS=V1,V2",
                   help="keep cases whose AXIS matches one of the values (globs allowed); repeatable")
    p.add_argument("--dry-run", action="store_true", help="list the cases and exit")

    p = sub.add_parser("list-models", help="list the model zoo")
    p.add_argument("patterns", nargs="*", help="globs over model names (default: all)")
    p.add_argument("--faults", action="store_true", help="include the fault twins")

    p = sub.add_parser("env", help="print this environment's versions as JSON")
    p.add_argument("--out", help="also write them to this file")

    p = sub.add_parser("report", help="build the HTML report from record files (analysis side)")
    p.add_argument("results", nargs="+", help="record files or folders of them")
    p.add_argument("--out", default=os.path.join("results", "report", "index.html"))
    p.add_argument("--baseline", nargs="+", help="baseline record files or folders, for the comparison section")
    p.add_argument("--reference-env", help="environment label speeds are relative to (default: newest torch)")
    p.add_argument("--verdicts", help="the gate's verdicts JSON (torchmatrix gate --json), for the comparison section")

    p = sub.add_parser("gate", add_help=False,
                       help="compare candidate records to a baseline; exit 1 on regression "
                            "(torchmatrix gate --help for its options)")

    p = sub.add_parser("ab", help="measure two git revisions interleaved (A B A B), then gate")
    p.add_argument("scenario")
    p.add_argument("--base", required=True, help="baseline revision")
    p.add_argument("--head", required=True, help="candidate revision")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=os.path.join("results", "ab"))
    p.add_argument("--repo", default=".")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "gate":
        parser.error("unrecognized arguments: %s" % " ".join(extra))
    if args.command is None:
        build_parser().print_help()
        return EXIT_INPUT
    try:
        if args.command == "run":
            return run_scenario(args.scenario, args.out, args.env_label, args.resume, args.append, args.only,
                                args.dry_run)
        if args.command == "list-models":
            return list_models_cmd(args.patterns, args.faults)
        if args.command == "env":
            return env_cmd(args.out)
        if args.command == "report":
            return _report(args)
        if args.command == "gate":
            # One parser for the gate: its own module's (ab.py runs it stand-alone too).
            from harness.analysis import gate

            return gate.main(extra)
        if args.command == "ab":
            from harness.ab import run_ab

            return run_ab(args.repo, args.base, args.head, resolve_scenario(args.scenario), rounds=args.rounds,
                          out_dir=args.out)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_INPUT


def _report(args) -> int:
    from harness.analysis.load import InputError
    from harness.analysis.report import build_report

    try:
        verdicts = None
        if args.verdicts:
            try:
                with open(args.verdicts, encoding="utf-8") as fh:
                    doc = json.load(fh)
            except (OSError, ValueError) as exc:
                raise InputError("%s: cannot read the verdicts JSON (%s)" % (args.verdicts, exc)) from None
            verdicts = doc.get("verdicts") if isinstance(doc, dict) else doc
        info = build_report(args.results, args.out, baseline_paths=args.baseline, reference_env=args.reference_env,
                            verdicts=verdicts)
    except InputError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return EXIT_INPUT
    for problem in info.get("problems", []):
        print("warning: %s" % problem, file=sys.stderr)
    print("report: %s (%d records, %.1f s)" % (info["out_path"], info["records"], info["seconds"]))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
