"""One module per subcommand of ``torchmatrix`` / ``python -m harness``.

Each module defines ``NAME`` (the subcommand), ``HELP`` (one line for the command
list), ``add_arguments(parser)`` and ``run(args) -> int`` (an ``ExitCode``). Building
the parser imports every command module, so they import nothing heavy at the top:
pandas, scipy and torch are imported inside ``run``. ``harness.cli`` assembles them.
"""

#: Command modules in the order ``--help`` lists them.
COMMAND_MODULES = ("run", "matrix", "merge", "list_models", "env", "report", "gate", "ab")
