"""``torchmatrix env``: this environment's versions as JSON (what every record carries)."""
import json
import sys
from typing import Optional

from harness.fileio import atomic_write_text
from harness.vocab import ExitCode

NAME = "env"
HELP = "print this environment's versions as JSON"


def add_arguments(parser) -> None:
    parser.add_argument("--out", help="also write them to this file")


def run(args) -> int:
    return print_env(args.out)


def print_env(out: Optional[str], print_fn=print) -> int:
    """Print (and optionally save) this environment's versions."""
    import torch

    from harness.runner import envinfo

    info = envinfo.environment("cuda" if torch.cuda.is_available() else "cpu")
    text = json.dumps(info, indent=1, sort_keys=True)
    print_fn(text)
    if out:
        try:
            atomic_write_text(out, text + "\n")
        except OSError as exc:
            print("error: cannot write %s: %s" % (out, exc.strerror or exc), file=sys.stderr)
            return ExitCode.INPUT
    return ExitCode.OK
