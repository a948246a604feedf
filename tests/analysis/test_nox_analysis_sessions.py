"""``nox -s report`` and ``nox -s gate`` for real, on a copy of the noxfile and ``harness``.

Each run makes the session's own environment (an analysis Python with pandas, scipy,
matplotlib, installed by uv from its cache: a few seconds once the test sessions have
filled it). The copy keeps the runs out of this checkout: nox runs a session in the
noxfile's folder, so ``report`` writes ``results/report/index.html`` there.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.analysis.gate_records import make_record, write_jsonl
from tests.analysis.report_synth import write_synthetic_store

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytest.importorskip("nox", reason="nox is installed by the nox test sessions and .ci/run")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("nox") / "proj")
    os.makedirs(path)
    shutil.copy(os.path.join(ROOT, "noxfile.py"), path)
    shutil.copytree(os.path.join(ROOT, "harness"), os.path.join(path, "harness"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    return path


def _nox(project, *args):
    env = dict(os.environ, TORCHMATRIX_NO_PYTHON_INSTALL="1", NO_COLOR="1")
    proc = subprocess.run([sys.executable, "-m", "nox", "-f", os.path.join(project, "noxfile.py")] + list(args),
                          cwd=project, env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def _analysis_python_used(log):
    sys.path.insert(0, ROOT)
    try:
        import noxfile
    finally:
        sys.path.remove(ROOT)
    match = re.search(r"Creating virtual environment \(\w+\) using python(3\.\d+)", log)
    assert match, log[-3000:]
    assert match.group(1) in noxfile.ANALYSIS_PYTHONS


def test_report_session_builds_the_report_from_the_default_folder_and_from_posargs(project, tmp_path):
    write_synthetic_store(os.path.join(project, "results", "default"), n_records=60)
    code, log = _nox(project, "-s", "report")
    assert code == 0, log[-4000:]
    _analysis_python_used(log)
    assert "report: results/report/index.html (60 records" in log
    out = os.path.join(project, "results", "report", "index.html")
    with open(out, encoding="utf-8") as fh:
        first = fh.read()
    assert 'id="glance"' in first and "synthetic-matrix" in first

    other = str(tmp_path / "other")
    write_synthetic_store(other, n_records=30, scenario="other-store")
    code, log = _nox(project, "-r", "-s", "report", "--", other)
    assert code == 0, log[-4000:]
    assert "report: results/report/index.html (30 records" in log
    with open(out, encoding="utf-8") as fh:
        text = fh.read()
    assert "other-store" in text and "synthetic-matrix" not in text


def test_gate_session_passes_an_a_a_comparison_and_fails_on_a_regression(project, tmp_path):
    store = str(tmp_path / "store")
    write_synthetic_store(store, n_records=40, devices=("cpu",))
    verdicts = str(tmp_path / "same.json")
    code, log = _nox(project, "-s", "gate", "--", "--baseline", store, "--candidate", store, "--json", verdicts)
    assert code == 0, log[-4000:]
    _analysis_python_used(log)
    with open(verdicts) as fh:
        doc = json.load(fh)
    assert len([v for v in doc["verdicts"] if v["kind"] == "status"]) == 40
    assert not [v for v in doc["verdicts"] if v["verdict"] == "regressed"]

    # a case that crashes in the candidate: the gate exits 1 and the session fails with it
    base = write_jsonl(tmp_path / "A" / "base.jsonl", [make_record(), make_record(model="attention_mha_tiny")])
    cand = write_jsonl(tmp_path / "B" / "head.jsonl", [make_record(), make_record(
        model="attention_mha_tiny", status="crashed", reason="signal 11 (SIGSEGV)")])
    verdicts = str(tmp_path / "crash.json")
    code, log = _nox(project, "-r", "-s", "gate", "--", "--baseline", os.path.dirname(base), "--candidate",
                     os.path.dirname(cand), "--json", verdicts)
    assert code != 0 and "failed with exit code 1" in log, log[-4000:]
    with open(verdicts) as fh:
        doc = json.load(fh)
    regressed = [v for v in doc["verdicts"] if v["verdict"] == "regressed"]
    assert [(v["kind"], v["model"]) for v in regressed] == [("status", "attention_mha_tiny")], regressed
