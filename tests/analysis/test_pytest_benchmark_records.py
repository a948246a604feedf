"""harness.analysis.pytest_benchmark: pytest-benchmark JSON files read as records, by the loader,
the gate and the report; one file written by plain pytest-benchmark for ordinary functions (a real
pytest subprocess), others shaped as harness.pytest_plugin writes them."""
import json
import os
import subprocess
import sys

import pytest

from harness.analysis import pytest_benchmark as pb
from harness.analysis.load import InputError, load_records
from harness.record.schema import Record
from tests.analysis.gate_records import make_record

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PLAIN_TESTS = """
import pytest

@pytest.mark.parametrize("n", [100, 1000])
def test_sort(benchmark, n):
    benchmark(sorted, list(range(n, 0, -1)))

def test_join(benchmark):
    benchmark(",".join, ["x"] * 100)
"""


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "harness"] + list(args), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A plain pytest-benchmark run: --benchmark-json (raw data) and --benchmark-autosave (none)."""
    pytest.importorskip("pytest_benchmark")
    where = tmp_path_factory.mktemp("plain")
    (where / "test_plain.py").write_text(PLAIN_TESTS)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_plain.py",
                           "--benchmark-json=plain.json", "--benchmark-autosave", "--benchmark-max-time=0.02",
                           "--benchmark-min-rounds=3", "--benchmark-storage=file://%s" % (where / "store")],
                          cwd=str(where), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (folder,) = [p for p in (where / "store").iterdir() if p.is_dir()]  # .benchmarks/<machine id>/
    return where, where / "plain.json", folder


def _bench_doc(records, machine=None):
    """A pytest-benchmark document whose benchmarks carry records as harness.pytest_plugin saves them."""
    benches = []
    for rec in records:
        samples = rec["timing"]["samples_s"]
        benches.append({"group": rec["scenario"], "name": "case[x]", "fullname": "s.toml::case[x]", "params": None,
                        "param": None, "extra_info": {pb.RECORD_KEY: rec, "case_key": rec["case_key"]},
                        "options": {"timer": "harness_worker_samples"},
                        "stats": {"data": samples, "median": sorted(samples)[len(samples) // 2], "iterations": 10,
                                  "rounds": len(samples)}})
    return {"machine_info": machine or {"node": "vm", "python_version": "3.13.0"}, "commit_info": {"id": "abc"},
            "benchmarks": benches, "datetime": "2026-11-28T01:00:00+00:00", "version": "5.3.1"}


def test_plain_benchmarks_become_valid_records(plain):
    _, path, _ = plain
    out = list(pb.iter_benchmark_records(str(path)))
    assert [problem for _, _, problem in out] == [None, None, None]
    records = {rec["case"]["model"] + "|" + str(rec["case"]["size"]): rec for _, rec, _ in out}
    assert sorted(records) == ["test_plain.py::test_join|default", "test_plain.py::test_sort|100",
                               "test_plain.py::test_sort|1000"]
    rec = records["test_plain.py::test_sort|100"]
    Record.from_dict(rec, strict=True)
    doc = json.loads(path.read_text())
    bench = next(b for b in doc["benchmarks"] if b["param"] == "100")
    assert rec["timing"]["samples_s"] == bench["stats"]["data"] and rec["timing"]["reduced"] is None
    assert rec["timing"]["iters_per_sample"] == bench["stats"]["iterations"]
    assert rec["timing"]["median_s"] == bench["stats"]["median"]
    assert rec["scenario"] == "pytest-benchmark" and rec["status"] == "ok"
    assert rec["case_key"].startswith("model=test_plain.py::test_sort;mode=eval;batch=1;size=100;")
    assert rec["time_utc"].endswith("Z") and rec["time_utc"][:19] == doc["datetime"][:19]
    assert rec["env"]["python"] == doc["machine_info"]["python_version"]
    assert rec["env"]["fingerprint"].startswith("pytest-benchmark:")
    assert rec["env_label"] == "pytest-%s-%s-%s" % (doc["machine_info"]["system"],
                                                   doc["machine_info"]["python_implementation"],
                                                   ".".join(doc["machine_info"]["python_version"].split(".")[:2]))


def test_a_storage_folder_loads_and_says_what_it_lacks(plain):
    _, path, folder = plain
    df, problems = load_records([str(folder)])
    assert problems == [] and len(df) == 3
    assert df["samples_s"].isna().all()  # autosave without --benchmark-save-data keeps no raw data
    assert df["timing_reduced"].str.contains("--benchmark-save-data").all()
    assert df["median_s"].notna().all()
    both, _ = load_records([str(path), str(folder)])
    assert both["env_fingerprint"].nunique() == 1  # one machine: the two files' cases match


def test_plugin_records_come_back_as_the_harness_wrote_them(tmp_path):
    recs = [make_record(samples=[0.01, 0.011, 0.012]), make_record(mode="eval", samples=[0.02] * 3)]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_bench_doc(recs)))
    out = list(pb.iter_benchmark_records(str(path)))
    assert [rec for _, rec, _ in out] == recs
    broken = dict(recs[0], status="fine")
    path.write_text(json.dumps(_bench_doc([broken, recs[1]])))
    df, problems = load_records([str(path)])
    assert len(df) == 1 and problems == ["%s:1: torchmatrix_record: status 'fine' is not one of " % path
                                         + "ok, unsupported, error, crashed, timeout, oom, skipped"]


def _rounds(tmp_path, name, doc, factor):
    """Three saved runs of ``doc`` with its data times ``factor`` (and a 1% step between runs)."""
    paths = []
    for i in range(3):
        copy = json.loads(json.dumps(doc))
        for bench in copy["benchmarks"]:
            bench["stats"]["data"] = [x * factor * (1 + 0.01 * i) for x in bench["stats"]["data"]]
            bench["stats"]["median"] *= factor * (1 + 0.01 * i)
        path = tmp_path / ("%s_%d.json" % (name, i))
        path.write_text(json.dumps(copy))
        paths.append(str(path))
    return paths


def test_the_gate_judges_saved_pytest_benchmark_runs(plain, tmp_path):
    _, path, _ = plain
    doc = json.loads(path.read_text())
    base = _rounds(tmp_path, "base", doc, 1.0)
    same = _cli("gate", "--baseline", *base, "--candidate", *_rounds(tmp_path, "same", doc, 1.0))
    assert same.returncode == 0, same.stdout + same.stderr
    assert "pytest-benchmark" in same.stdout and "regressed" in same.stdout
    slower = _cli("gate", "--baseline", *base, "--candidate", *_rounds(tmp_path, "slow", doc, 3.0),
                  "--json", str(tmp_path / "verdicts.json"))
    assert slower.returncode == 1, slower.stdout + slower.stderr
    verdicts = json.loads((tmp_path / "verdicts.json").read_text())["verdicts"]
    time = {v["case_key"]: v["verdict"] for v in verdicts if v["kind"] == "time" and "(all" not in v["case_key"]}
    assert len(time) == 3 and set(time.values()) == {"regressed"}


def test_the_report_reads_plain_and_plugin_runs(plain, tmp_path):
    _, path, folder = plain
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(_bench_doc([make_record(samples=[0.01, 0.011, 0.012])])))
    out = tmp_path / "report" / "index.html"
    proc = _cli("report", str(path), str(folder), str(mine), "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.exists() and "report: " in proc.stdout
    html = out.read_text()
    assert "test_plain.py::test_sort" in html and "cbam_classifier_tiny" in html

    # plain benchmarks carry no accuracy figures: never "all passed"
    alone = tmp_path / "alone" / "index.html"
    assert _cli("report", str(path), "--out", str(alone)).returncode == 0
    assert "<span>accuracy</span><span>not checked</span>" in alone.read_text()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"benchmarks": "none"}'])
def test_a_file_that_is_not_pytest_benchmark_json_is_one_line_exit_2(tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(InputError, match="bad.json: not a pytest-benchmark JSON file"):
        load_records([str(bad)])
    out = tmp_path / "r" / "index.html"
    report = _cli("report", str(bad), "--out", str(out))
    gate = _cli("gate", "--baseline", str(bad), "--candidate", str(bad))
    for proc in (report, gate):
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "bad.json: not a pytest-benchmark" in proc.stderr
    assert not out.exists()


def test_an_empty_folder_names_both_kinds_of_files(tmp_path):
    with pytest.raises(InputError, match="no \\*.jsonl record files \\(nor pytest-benchmark's saved"):
        load_records([str(tmp_path)])
