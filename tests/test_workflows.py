"""The GitHub workflows: CI runs the same script as local CI, on pushes and pull requests."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CI_WORKFLOW = os.path.join(ROOT, ".github", "workflows", "ci.yml")


def _load(path):
    yaml = pytest.importorskip("yaml", reason="PyYAML reads the workflow (the tests session installs it)")
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    return doc, doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as True


def test_ci_runs_the_local_ci_script_on_pushes_and_pull_requests():
    doc, on = _load(CI_WORKFLOW)
    assert "push" in on and "pull_request" in on
    steps = doc["jobs"]["tests"]["steps"]
    runs = [s["run"].strip() for s in steps if "run" in s]
    assert runs == ["bash .ci/run"]  # nothing else: local and hosted CI cannot drift
    pythons = [s for s in steps if s.get("uses", "").startswith("actions/setup-python")][0]["with"]["python-version"]
    assert pythons.split() == ["3.9", "3.13"]  # the two ends the tests session runs
    cache = [s for s in steps if s.get("uses", "").startswith("actions/cache")][0]["with"]
    assert cache["path"] == "~/.cache/uv" and "noxfile.py" in cache["key"]
    assert doc["jobs"]["tests"]["timeout-minutes"] <= 90


def test_the_local_ci_script_lints_and_tests_and_fails_on_missing_tools_under_ci():
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as fh:
        text = fh.read()
    assert "set -euo pipefail" in text
    assert text.rstrip().endswith("nox -s lint\nnox -s tests")
    assert '"${CI:-}" = "true"' in text and "exit 1" in text
    for tool in ("chromium", "valgrind", "nodejs", "check-jsonschema"):
        assert tool in text

