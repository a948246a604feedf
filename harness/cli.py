"""The command line: ``torchmatrix`` / ``python -m harness``.

Each subcommand is a module of ``harness.commands`` (``NAME``, ``HELP``,
``add_arguments``, ``run``); this module only assembles them. Exit codes are
``harness.vocab.ExitCode``: 0 done, 1 failure (a regression for ``gate``), 2 bad input
(nothing written), 3 internal error, 130 interrupted.
"""
import argparse
import importlib
import signal
import sys
from typing import List, Optional

from harness.commands import COMMAND_MODULES
from harness.vocab import ExitCode


def _commands():
    return [importlib.import_module("harness.commands." + name) for name in COMMAND_MODULES]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command module."""
    parser = argparse.ArgumentParser(
        prog="torchmatrix",
        description="Benchmark and regression-test PyTorch models across PyTorch releases, precisions "
                    "and gradient-checkpointing modes. Run `nox -s matrix` for all environments, or "
                    "`torchmatrix run SCENARIO` inside one.",
        epilog="Exit status: 0 done, 1 failure or regression, 2 bad input (nothing written), 3 internal error, "
               "130 interrupted.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _commands():
        p = sub.add_parser(module.NAME, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return ExitCode.INPUT
    # Ctrl-C stops cleanly even when this process inherited SIGINT ignored (a background job of
    # a shell script, as some CI runners start it): the handler is installed, not assumed.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
