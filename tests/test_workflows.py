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



def test_the_cuda_job_runs_only_where_a_gpu_runner_is_named():
    """A job for a label no runner has waits in the queue forever: the repository variable names the
    runner and enables the job; the job fails where the GPU is missing instead of skipping its tests."""
    doc, _ = _load(CI_WORKFLOW)
    job = doc["jobs"]["cuda"]
    assert job["if"] == "${{ vars.TORCHMATRIX_GPU_RUNNER != '' }}"
    assert job["runs-on"] == "${{ vars.TORCHMATRIX_GPU_RUNNER }}"
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert runs[0].strip() == "nvidia-smi" and 'nox -s "tests(torch=latest)" -- -k cuda' in runs[1]


def test_codeowners_asks_review_for_every_path_that_decides_the_gate():
    from harness.commands.ab import GATE_TOOLING

    with open(os.path.join(ROOT, ".github", "CODEOWNERS"), encoding="utf-8") as fh:
        owned = {line.split()[0].lstrip("/") for line in fh if line.strip() and not line.startswith("#")}
    assert set(GATE_TOOLING) <= owned
    for path in owned:
        assert os.path.exists(os.path.join(ROOT, path)), path
