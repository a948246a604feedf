"""The regression gate: compare a candidate's records with a baseline's, give verdicts.

What a verdict means and how each kind is reached: docs/gate.md. Modules, in the
order data flows: ``io`` (stores and ``[gate]`` table in, verdicts JSON out),
``groups`` (records by case and environment), ``matching`` (pair the sides, ``compare``),
``rules`` and ``time_rules`` (one rule per verdict kind), ``stats``, ``markdown`` (the
pull-request summary). The command line: ``harness.commands.gate``.
"""
from typing import Optional, Sequence

from harness.analysis.gate.io import VERDICTS_SCHEMA, evaluate, load_gate_table, run_gate
from harness.analysis.gate.matching import compare, count_verdicts, exit_code_for
from harness.analysis.gate.stats import bh_qvalues, mannwhitney_p, min_exact_mannwhitney_p

__all__ = ["VERDICTS_SCHEMA", "bh_qvalues", "compare", "count_verdicts", "evaluate", "exit_code_for",
           "load_gate_table", "main", "mannwhitney_p", "min_exact_mannwhitney_p", "run_gate"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The gate command stand-alone (``python -m harness.analysis.gate``); see ``harness.commands.gate``."""
    from harness.commands.gate import main as command_main

    return command_main(argv)
