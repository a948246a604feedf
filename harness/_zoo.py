"""Make ``import models`` mean the zoo beside ``harness``, whatever the current folder holds.

``python -m harness`` puts the current folder first on ``sys.path``; in a user's project
that has its own top-level ``models`` package, ``import models`` would find theirs and
the zoo would vanish. A meta-path finder resolves the top-level name ``models`` to the
folder that holds this ``harness`` package (a checkout or site-packages); submodules
follow the package's own ``__path__``. The module source takes it out while it imports a
user's ``models.x:factory`` (``harness.sources.module_source._import_beside_the_zoo``).
"""
import importlib.abc
import importlib.machinery
import os
import sys

ZOO_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ZooFinder(importlib.abc.MetaPathFinder):
    """Finds the top-level ``models`` package in ``ZOO_PARENT`` only."""

    #: What the module source looks for to take the finder out for a while.
    torchmatrix_zoo_finder = True

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "models":
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [ZOO_PARENT])


def install() -> None:
    """Put one ``ZooFinder`` first on ``sys.meta_path`` (idempotent)."""
    if not any(getattr(f, "torchmatrix_zoo_finder", False) for f in sys.meta_path):
        sys.meta_path.insert(0, ZooFinder())
