"""Interpreter discovery and the skip of an environment whose Python is missing.

Runs nox for real in a subprocess with an environment where no interpreter can be
found (empty PATH apart from nox's own Python, no pyenv, no uv install allowed).
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
nox = pytest.importorskip("nox", reason="nox is installed by the nox test sessions and .ci/run")


def _load_noxfile():
    sys.path.insert(0, ROOT)
    try:
        import noxfile
    finally:
        sys.path.remove(ROOT)
    return noxfile


def test_find_python_reports_why_it_failed(monkeypatch):
    noxfile = _load_noxfile()
    monkeypatch.setenv("TORCHMATRIX_NO_PYTHON_INSTALL", "1")
    path, why = noxfile.find_python("3.99")
    assert path is None and "3.99" in why
    here = "%d.%d" % sys.version_info[:2]
    assert noxfile._version_of(sys.executable) == here


def test_run_args_split_scenario_and_options():
    noxfile = _load_noxfile()
    assert noxfile._run_args([]) == ("default", [])
    assert noxfile._run_args(["smoke", "--resume"]) == ("smoke", ["--resume"])
    assert noxfile._run_args(["--only", "model=x", "full"]) == ("full", ["--only", "model=x"])


def test_missing_interpreter_skips_the_environment_with_a_reason(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(sys.executable, str(bindir / "python"))
    env = {
        "PATH": str(bindir),
        "HOME": str(tmp_path),
        "PYENV_ROOT": str(tmp_path / "no-pyenv"),
        "TORCHMATRIX_NO_PYTHON_INSTALL": "1",
        "PYTHONPATH": ROOT,
    }
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "nox", "-f", os.path.join(ROOT, "noxfile.py"),
                           "-s", "matrix(torch=1.10)", "--", "smoke", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "Traceback" not in text
    assert "skipped" in text and "Python 3.9 not found" in text
    info = json.loads((out / "torch-1.10.env.json").read_text())
    assert info["status"] == "skipped" and "Python 3.9 not found" in info["reason"]
