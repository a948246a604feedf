"""The instruction pass (harness.runner.instruction_pass, .instructions): counts under valgrind,
and whatever goes wrong with counting costs the count only, never the case."""
import os
import shutil
import stat
import subprocess

import pytest

from harness.record.store import read_records
from tests.runner.helpers import ROOT, harness_cmd, read_jsonl, write_scenario

MATRIX = '''
model = [%s]
mode = ["%s"]
batch_size = [2]
size = [%s]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]
'''
#: Stands in for valgrind where a test needs the counting worker to misbehave and nothing to be
#: counted: it drops valgrind's options and runs the worker natively.
FAKE_VALGRIND = '''#!/bin/sh
if [ "$1" = "--version" ]; then echo valgrind-fake; exit 0; fi
while [ "${1#--}" != "$1" ]; do shift; done
exec "$@"
'''


def _run(tmp_path, scenario, path_dirs=None, extra_env=None, timeout=2400):
    env = dict(os.environ, PYTHONPATH=ROOT)
    if path_dirs is not None:
        env["PATH"] = os.pathsep.join(path_dirs)
    env.update(extra_env or {})
    out = tmp_path / "out"
    proc = subprocess.run(harness_cmd("run", scenario, "--out", str(out), "--env-label", "e", "--instructions"),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    # the counts come after the timed rounds, into e.counts beside e.jsonl: reading merges them
    return proc, (read_records(str(out / "e.jsonl")) if (out / "e.jsonl").exists() else [])


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind (Debian: apt-get install valgrind)")
def test_counts_of_a_zoo_model_under_valgrind(tmp_path):
    """Real valgrind, one counting worker for every case: counts per step, their repeats, the tool."""
    path = write_scenario(tmp_path, MATRIX % ('"attention_mha_tiny", "tests.fixtures.misbehaving:factory"', "eval",
                                              "8"), extra="instructions_repeats = 3\n", timeout=60)
    proc, recs = _run(tmp_path, path)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    assert [r["status"] for r in recs] == ["ok", "ok"]
    for rec in recs:
        counted = rec["instructions"]
        assert counted["status"] == "ok", counted
        assert counted["per_iter"] > 1e4 and len(counted["repeats_per_iter"]) == 3
        assert counted["iterations"] == 1 and counted["threads"] == 1
        # The same step counted three times in one process. These steps are tiny (1e5-1e6 instructions),
        # where a few thousand instructions of Python-level variation are 2.7% (measured on torch 2.15);
        # the smoke cases' steps (2.8 M instructions and up) repeat to 0.4% at most (docs/gate.md,
        # "Instruction counts").
        assert counted["spread"] < 0.05
        assert counted["tool"].startswith("valgrind-") and counted["tool"].endswith(" callgrind")
    assert proc.stdout.count("starting the counting worker") == 1  # one worker, reused
    assert "instructions/step" in proc.stdout  # the pass's progress line, after the timed cases


def test_without_valgrind_the_count_is_unsupported_and_the_case_stands(tmp_path):
    empty = tmp_path / "bin"  # a PATH without valgrind; the worker runs sys.executable by its full path
    empty.mkdir()
    path = write_scenario(tmp_path, MATRIX % ('"tests.fixtures.misbehaving:factory"', "train", "8"))
    proc, recs = _run(tmp_path, path, path_dirs=[str(empty)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert recs[0]["status"] == "ok" and recs[0]["timing"]["samples_s"]
    assert recs[0]["instructions"]["status"] == "unsupported"
    assert "valgrind is not installed" in recs[0]["instructions"]["reason"]


def test_a_count_that_crashes_or_hangs_costs_the_count_only(tmp_path):
    """Size 9 segfaults and size 10 hangs in the counting worker only: both cases keep their
    timed figures, their counts say crashed and timeout, and a fresh counting worker takes the
    next case (here the fake valgrind counts nothing, so that one says why)."""
    fake_dir = tmp_path / "fakebin"
    fake_dir.mkdir()
    fake = fake_dir / "valgrind"
    fake.write_text(FAKE_VALGRIND)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    path = write_scenario(tmp_path, MATRIX % ('"tests.fixtures.misbehaving:factory"', "train", "9, 10, 8"),
                          extra="instructions_timeout_s = 5.0\n")
    proc, recs = _run(tmp_path, path, path_dirs=[str(fake_dir)] + os.environ["PATH"].split(os.pathsep))
    assert proc.returncode == 0, proc.stderr[-2000:]
    by_size = {r["case"]["size"]: r for r in recs}
    assert all(r["status"] == "ok" and r["timing"]["samples_s"] for r in recs)
    assert by_size[9]["instructions"]["status"] == "crashed"
    assert "SIGSEGV" in by_size[9]["instructions"]["reason"]
    assert by_size[10]["instructions"]["status"] == "timeout"
    assert "5 s" in by_size[10]["instructions"]["reason"]
    assert by_size[8]["instructions"]["status"] == "error"
    assert "callgrind dump" in by_size[8]["instructions"]["reason"]
    assert by_size[8]["instructions"]["tool"] == "valgrind-fake callgrind"
    # the timed records were written before any count: the file holds them without, e.counts the counts
    assert [r["instructions"] for r in read_jsonl(tmp_path / "out" / "e.jsonl")] == [None, None, None]
    assert len(read_jsonl(tmp_path / "out" / "e.counts")) == 3
    assert proc.stdout.index("[3/3]") < proc.stdout.index("[count 1/3]")


def test_a_step_too_long_to_count_is_skipped_with_the_reason(tmp_path):
    """Under valgrind a step runs 50-150x slower: a case beyond instructions_max_step_s is not
    counted, and says so (checked before any valgrind work: none is on this PATH)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    path = write_scenario(tmp_path, MATRIX % ('"tests.fixtures.misbehaving:factory"', "train", "8"),
                          extra="instructions_max_step_s = 1e-9\n")
    proc, recs = _run(tmp_path, path, path_dirs=[str(empty)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert recs[0]["status"] == "ok"
    assert recs[0]["instructions"]["status"] == "skipped"
    assert "instructions_max_step_s 1e-09 s" in recs[0]["instructions"]["reason"]


def test_the_base_steps_decide_which_cases_are_counted(tmp_path):
    """With the base's steps given (as ab gives them to the head's run), the base's step decides, not
    this run's own: a case whose own step is beyond the limit is still counted (here: unsupported, no
    valgrind on this PATH), and one the base found too long is skipped, naming the base's step."""
    import json

    from harness.record.parts import Case
    from harness.vocab import COUNT_STEPS_FROM_ENV

    empty = tmp_path / "bin"
    empty.mkdir()
    key = Case("tests.fixtures.misbehaving:factory", "train", 2, 8, "fp32", "none", "cpu").key
    steps = tmp_path / "base-steps.json"
    path = write_scenario(tmp_path, MATRIX % ('"tests.fixtures.misbehaving:factory"', "train", "8"),
                          extra="instructions_max_step_s = 1e-9\n")
    steps.write_text(json.dumps({key: 1e-12}))
    proc, recs = _run(tmp_path, path, path_dirs=[str(empty)], extra_env={COUNT_STEPS_FROM_ENV: str(steps)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert recs[0]["case_key"] == key and recs[0]["instructions"]["status"] == "unsupported"
    steps.write_text(json.dumps({key: 5.0}))
    path = write_scenario(tmp_path, MATRIX % ('"tests.fixtures.misbehaving:factory"', "train", "8"))
    shutil.rmtree(str(tmp_path / "out"))
    proc, recs = _run(tmp_path, path, path_dirs=[str(empty)], extra_env={COUNT_STEPS_FROM_ENV: str(steps)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert recs[0]["instructions"]["status"] == "skipped"
    assert "step 5 s (the base's step, which decides for both sides) > instructions_max_step_s" in \
        recs[0]["instructions"]["reason"]
