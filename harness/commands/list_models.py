"""``torchmatrix list-models [PATTERN...]``: the model zoo, one line per model."""
import sys
from typing import Sequence

from harness.vocab import ExitCode

NAME = "list-models"
HELP = "list the model zoo"


def add_arguments(parser) -> None:
    parser.add_argument("patterns", nargs="*", help="globs over model names (default: all)")
    parser.add_argument("--faults", action="store_true", help="include the fault twins")


def run(args) -> int:
    return list_models(args.patterns, args.faults)


def list_models(patterns: Sequence[str], include_faults: bool, print_fn=print) -> int:
    """Print name, family, fault flag, default sizes and description (models are not built)."""
    import models

    names = models.list_models(patterns or ["*"], include_faults=include_faults)
    if not names:
        print("error: no model matches %s (`torchmatrix list-models` lists them all; --faults adds the fault "
              "twins)" % " ".join(patterns), file=sys.stderr)
        return ExitCode.INPUT
    for name in names:
        spec = models.get_spec(name)
        print_fn("%-40s %-16s %-6s sizes=%-14s %s" % (
            name, spec.family, "FAULT" if spec.fault else "", ",".join(str(s) for s in spec.default_sizes),
            spec.description))
    return ExitCode.OK
