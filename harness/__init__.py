"""torchmatrix: benchmark and regression-test PyTorch models across releases.

``runner/`` runs inside every PyTorch environment (Python 3.9 + torch 1.10 and up) and
imports only the standard library, torch, numpy and tomli. ``analysis/`` (report,
gate) runs in one modern environment with pandas, matplotlib and scipy, never torch.
``commands/`` has one module per subcommand. ``sources/`` builds the models a scenario names
outside the zoo (timm, torchvision, transformers, a user's package) and registers itself
with the zoo's registry, which imports no harness module. Shared by the runner and the
analysis side, standard library only:
``record/`` (the record schema and its files, the only contract between the sides),
``scenario/`` (a scenario file and its tables), ``shard/`` (split and merge),
``environments`` (the matrix's environments, for the noxfile), ``vocab`` (the shared
words and exit codes), ``precisions`` (what each precision is), ``fileio`` and ``units``.
"""
__version__ = "0.1.0"

from harness import _zoo

_zoo.install()
