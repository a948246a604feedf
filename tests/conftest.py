import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _no_shared_references():
    """Each test makes its own references: the worker's shared pair (``harness.runner.references``)
    would otherwise carry one test's references into the next test's case of the same key."""
    execute = sys.modules.get("harness.runner.execute")
    if execute is not None:
        execute.SHARED_REFERENCES.clear()
    yield
