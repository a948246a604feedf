"""``torchmatrix gate``: compare a candidate's records with a baseline's; exit 1 on a regression.

The options and exit codes are documented in docs/gate.md. Building the parser imports
nothing heavy: pandas and scipy are imported inside ``run``.
"""
import argparse
import json
import sys
from typing import Any, Optional, Sequence, Tuple

from harness.vocab import ExitCode

NAME = "gate"
HELP = "compare a candidate's records with a baseline's; exit 1 on a regression"
DESCRIPTION = ("Compare a candidate's records with a baseline's, case by case and environment by environment, "
               "print a Markdown summary and optionally write the verdicts JSON. Exit status: 0 no regression, "
               "1 a regression, 2 bad input (a file, the [gate] table, --set, or nothing comparable), 3 internal "
               "error. What each verdict means: docs/gate.md.")


def parse_override(text: str) -> Tuple[str, Any]:
    """``KEY=VALUE`` with the value read as JSON where it parses (``q=0.01``), else as text."""
    if "=" not in text:
        raise argparse.ArgumentTypeError("expected KEY=VALUE, got %r" % text)
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", nargs="+", required=True, help="record files or folders of the baseline")
    parser.add_argument("--candidate", nargs="+", required=True, help="record files or folders of the candidate")
    parser.add_argument("--scenario", help="scenario TOML whose [gate] table sets the thresholds")
    parser.add_argument("--json", dest="json_out", help="write the verdicts JSON here")
    parser.add_argument("--markdown", dest="markdown_out", help="write the Markdown summary here")
    parser.add_argument("--set", dest="overrides", action="append", type=parse_override, default=[],
                        metavar="KEY=VALUE", help="override a [gate] key for every model, e.g. --set time_factor=1.2")
    parser.add_argument("--policy", help="a policy note written by ab (where the thresholds came from, what the "
                        "head changed): shown at the top of the summary")


def run(args: argparse.Namespace) -> int:
    try:
        from harness.analysis.gate.io import load_policy, run_gate
        from harness.analysis.load import InputError
    except ImportError as exc:
        print("gate: needs the analysis dependencies (pip install '.[analysis]'): %s" % exc, file=sys.stderr)
        return ExitCode.INPUT
    try:
        policy = load_policy(getattr(args, "policy", None))
    except InputError as exc:
        print("gate: input error: %s" % exc, file=sys.stderr)
        return ExitCode.INPUT
    return run_gate(args.baseline, args.candidate, args.scenario, args.json_out, args.markdown_out,
                    dict(args.overrides) or None, policy)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Stand-alone: ``python -m harness.analysis.gate --baseline A --candidate B [...]``."""
    parser = argparse.ArgumentParser(prog="python -m harness.analysis.gate", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
