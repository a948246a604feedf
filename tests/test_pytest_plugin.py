"""harness.pytest_plugin: a scenario file run by pytest, its cases as pytest-benchmark tests,
in real pytest subprocesses (the cases in the harness's worker subprocesses)."""
import json
import os
import subprocess
import sys

import pytest

from harness import pytest_plugin
from harness.record.schema import Case, Record

pytest.importorskip("pytest_benchmark")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Healthy (size 8), raises (5), segfaults (2): tests/fixtures/misbehaving.py; a zoo model at a size
# it declares invalid (skipped). A small [measure] budget: the healthy case takes well under a second.
SCENARIO = """
[scenario]
name = "pb_tiny"
[matrix]
model = ["tests.fixtures.misbehaving:factory"]
mode = ["eval"]
batch_size = [2]
size = [8, 5, 2]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]
[[include]]
model = "cbam_classifier_tiny"
size = [3]
[measure]
warmup_iters = 1
warmup_s = 0.0
min_sample_s = 0.002
samples = 5
case_budget_s = 1.0
threads = 1
speed_probe = false
"""
HEALTHY = "case[tests.fixtures.misbehaving:factory-eval-b2-s8-fp32-none-cpu]"


def _pytest(cwd, *args):
    """pytest with the plugin in a fresh interpreter, as a user runs it."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "harness.pytest_plugin", "-p", "no:cacheprovider",
                           "-rA"] + list(args), cwd=str(cwd), env=env, capture_output=True, text=True, timeout=600)


def _records(where):
    """The records the harness wrote (--torchmatrix-out records)."""
    (path,) = list((where / "records").glob("*.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One run of the whole scenario: JSON, autosave and the harness's records kept."""
    where = tmp_path_factory.mktemp("pb")
    (where / "pb_tiny.toml").write_text(SCENARIO)
    proc = _pytest(where, "pb_tiny.toml", "--benchmark-json=run.json", "--benchmark-autosave",
                   "--benchmark-storage=file://%s" % (where / "store"), "--torchmatrix-out", "records")
    return where, proc


def test_each_status_shows_as_pytest_users_expect(first_run):
    where, proc = first_run
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr  # failures, not a crash of pytest
    assert "PASSED pb_tiny.toml::%s" % HEALTHY in out
    assert "FAILED pb_tiny.toml::case[tests.fixtures.misbehaving:factory-eval-b2-s5-fp32-none-cpu]" in out
    assert "error: KeyError: 'deliberate failure'" in out
    assert "FAILED pb_tiny.toml::case[tests.fixtures.misbehaving:factory-eval-b2-s2-fp32-none-cpu]" in out
    assert "crashed: worker died (SIGSEGV)" in out
    assert "skipped: invalid size" in out and "1 skipped" in out
    assert "Benchmark fixture was not used" not in out + proc.stderr
    # the harness's own progress lines, and every case in the worker's record file
    assert "[1/4] tests.fixtures.misbehaving:factory eval b2 s8" in out
    assert [r["status"] for r in _records(where)] == ["ok", "error", "crashed", "skipped"]


def test_the_harness_samples_are_the_benchmark_rounds(first_run):
    where, _ = first_run
    doc = json.loads((where / "run.json").read_text())
    (bench,) = doc["benchmarks"]  # the ok case only: pytest-benchmark saves nothing for the others
    (record,) = [r for r in _records(where) if r["status"] == "ok"]
    samples = record["timing"]["samples_s"]
    assert bench["name"] == HEALTHY and bench["group"] == "pb_tiny"
    assert bench["stats"]["rounds"] == len(samples) == 5
    assert bench["stats"]["iterations"] == record["timing"]["iters_per_sample"]
    assert bench["stats"]["data"] == pytest.approx(samples, rel=1e-9)
    assert bench["stats"]["median"] == pytest.approx(record["timing"]["median_s"], rel=1e-9)
    assert bench["options"]["timer"] == "harness_worker_samples"
    info = bench["extra_info"]
    assert info["torchmatrix_record"] == record
    assert info["case_key"] == record["case_key"] and info["peak_bytes"] == record["memory"]["peak_bytes"]
    assert info["tensor_peak_bytes"] == record["memory"]["tensor_peak_bytes"]
    assert info["accuracy_passed"] is True
    Record.from_dict(info["torchmatrix_record"], strict=True)


def test_compare_fail_judges_the_harness_samples(first_run):
    """--benchmark-compare-fail=median:10% against the autosaved run, made 10x faster (fails) and
    10x slower (passes): the verdict rests on the samples the worker measured."""
    where, _ = first_run
    (saved,) = list((where / "store").rglob("0001_*.json"))
    doc = json.loads(saved.read_text())
    for factor, name in ((0.1, "0002_faster.json"), (10.0, "0003_slower.json")):
        changed = json.loads(json.dumps(doc))
        for bench in changed["benchmarks"]:
            stats = bench["stats"]
            for key in ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3", "ld15iqr", "hd15iqr", "total"):
                stats[key] *= factor
        (saved.parent / name).write_text(json.dumps(changed))
    common = ["pb_tiny.toml", "--torchmatrix-only", "size=8", "--benchmark-storage=file://%s" % (where / "store"),
              "--benchmark-compare-fail=median:10%"]
    worse = _pytest(where, *common, "--benchmark-compare=0002")
    assert worse.returncode != 0, worse.stdout
    assert "Performance has regressed" in worse.stdout + worse.stderr
    assert "median" in worse.stdout and "0002_faster" in worse.stdout  # the comparison table
    better = _pytest(where, *common, "--benchmark-compare=0003")
    assert better.returncode == 0, better.stdout + better.stderr
    assert "1 passed" in better.stdout and "Performance has regressed" not in better.stdout


def test_a_bad_scenario_is_a_collection_error_naming_the_file(tmp_path):
    (tmp_path / "bad.toml").write_text(SCENARIO.replace("tests.fixtures.misbehaving:factory", "no_such_model"))
    proc = _pytest(tmp_path, "bad.toml")
    assert proc.returncode == 2, proc.stdout
    assert "bad.toml" in proc.stdout and "no_such_model" in proc.stdout
    assert "Traceback" not in proc.stdout
    bad_only = _pytest(tmp_path, "bad.toml", "--torchmatrix-only", "colour=red")
    assert bad_only.returncode == 2 and "--only 'colour=red'" in bad_only.stdout


def test_other_toml_files_are_not_collected(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.x]\n")
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    proc = _pytest(tmp_path, ".")
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout


def test_case_ids_name_the_axes():
    case = Case(model="cbam_classifier_tiny", mode="train", batch_size=2, size="48x32", precision="amp_bf16",
                checkpoint="reentrant", device="cpu", channels_last=True)
    assert pytest_plugin.case_id(case) == "cbam_classifier_tiny-train-b2-s48x32-amp_bf16-reentrant-cpu-channels_last"


def test_an_ok_case_with_failed_accuracy_or_checks_fails():
    assert pytest_plugin.verdict({"accuracy": {"passed": True}, "checks": {"failed": []}}) is None
    why = pytest_plugin.verdict({"accuracy": {"passed": False, "failures": ["outputs.ratio"]},
                                 "checks": {"failed": ["eval_buffers"], "reasons": ["eval_buffers: bn.count"]}})
    assert why == "accuracy failed: outputs.ratio; checks failed: eval_buffers: bn.count"


def test_a_largest_batch_search_is_a_skip_that_gives_its_answer(tmp_path):
    (tmp_path / "search.toml").write_text("""
[scenario]
name = "search"
[matrix]
model = ["cbam_classifier_tiny"]
mode = ["train"]
batch_size = ["max"]
size = ["default"]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]
[max_batch]
limit = 2
""")
    proc = _pytest(tmp_path, "search.toml", "--benchmark-json=run.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "a largest-batch search, not a benchmark: batch 2 fits (limit)" in proc.stdout
    assert "1 skipped" in proc.stdout
    # no benchmark to save: pytest-benchmark 5.3 writes no file, 5.2 an empty one
    saved = (tmp_path / "run.json").read_text() if (tmp_path / "run.json").exists() else ""
    assert not saved.strip() or json.loads(saved)["benchmarks"] == []
