"""The analysis commands end to end: gate -> verdicts JSON -> report comparison section."""
import json
import os
import subprocess
import sys

from tests.analysis.report_synth import write_synthetic_store

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "harness"] + list(args), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_gate_verdicts_feed_the_report(tmp_path):
    store = str(tmp_path / "store")
    write_synthetic_store(store, n_records=300)
    verdicts = tmp_path / "verdicts.json"
    gate = _cli("gate", "--baseline", store, "--candidate", store, "--json", str(verdicts))
    assert gate.returncode == 0, gate.stdout[-2000:] + gate.stderr[-2000:]
    doc = json.loads(verdicts.read_text())
    assert doc["verdicts"] and all(v["verdict"] != "regressed" for v in doc["verdicts"])
    out = tmp_path / "report" / "index.html"
    rep = _cli("report", store, "--baseline", store, "--verdicts", str(verdicts), "--out", str(out))
    assert rep.returncode == 0, rep.stderr[-2000:]
    html = out.read_text()
    assert 'id="compare"' in html and "Comparison with the baseline" in html


def test_report_rejects_an_unreadable_verdicts_file_and_writes_nothing(tmp_path):
    store = str(tmp_path / "store")
    write_synthetic_store(store, n_records=50)
    out = tmp_path / "report" / "index.html"
    rep = _cli("report", store, "--verdicts", str(tmp_path / "missing.json"), "--out", str(out))
    assert rep.returncode == 2 and "missing.json" in rep.stderr
    assert not out.exists()
