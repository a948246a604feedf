"""The manager survives crashes, hangs and Ctrl-C, losing at most the case in flight."""
import os
import signal
import subprocess
import time

from tests.runner.helpers import ROOT, harness_cmd, read_jsonl, run_harness, write_scenario

MISBEHAVING = '''
model = ["tests.fixtures.misbehaving:factory"]
mode = ["train"]
batch_size = [2]
size = [%s]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]
'''


def test_segfault_sigkill_hang_and_error_each_cost_one_case(tmp_path):
    path = write_scenario(tmp_path, MISBEHAVING % "8, 2, 4, 3, 5", timeout=8)
    out = tmp_path / "out"
    proc = run_harness("run", path, "--out", str(out), "--env-label", "e")
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = read_jsonl(out / "e.jsonl")
    by_size = {r["case"]["size"]: r for r in recs}
    assert sorted(by_size) == [2, 3, 4, 5, 8]
    assert by_size[8]["status"] == "ok" and by_size[8]["timing"]["samples_s"]
    assert by_size[2]["status"] == "crashed" and "SIGSEGV" in by_size[2]["reason"]
    assert by_size[4]["status"] == "crashed" and "SIGKILL" in by_size[4]["reason"]
    assert by_size[3]["status"] == "timeout" and "8 s" in by_size[3]["reason"]
    assert by_size[5]["status"] == "error" and "deliberate failure" in by_size[5]["reason"]
    # Every record carries the environment even when its worker died.
    assert all(r["env"] and r["env"]["fingerprint"] for r in recs)
    assert "crashed 2" in proc.stdout and "timeout 1" in proc.stdout


def test_external_sigkill_of_the_worker_mid_case(tmp_path):
    # A hang that we cut short from outside with kill -9 on the worker process.
    path = write_scenario(tmp_path, MISBEHAVING % "3, 8", timeout=120)
    out = tmp_path / "out"
    marker = tmp_path / "hanging"
    env = dict(os.environ, PYTHONPATH=ROOT, MISBEHAVING_HANG_MARKER=str(marker))
    proc = subprocess.Popen(harness_cmd("run", path, "--out", str(out), "--env-label", "e"), cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker_pid = _wait_for_worker(proc.pid)
    _wait_for(marker.exists)
    os.kill(worker_pid, signal.SIGKILL)
    stdout, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, stdout[-2000:]
    recs = read_jsonl(out / "e.jsonl")
    assert [r["status"] for r in recs] == ["crashed", "ok"], stdout[-2000:]
    assert "SIGKILL" in recs[0]["reason"]


def test_ctrl_c_then_resume_runs_only_missing_cases(tmp_path):
    path = write_scenario(tmp_path, MISBEHAVING % "8, 9, 10, 3, 11, 12", timeout=120)
    out = tmp_path / "out"
    marker = tmp_path / "hanging"
    env = dict(os.environ, PYTHONPATH=ROOT, MISBEHAVING_HANG_MARKER=str(marker))
    proc = subprocess.Popen(harness_cmd("run", path, "--out", str(out), "--env-label", "e"), cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Size 3 hangs, so the run is surely mid-case when we interrupt it.
    _wait_for(marker.exists)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout[-2000:]
    assert "--resume" in stdout
    first = read_jsonl(out / "e.jsonl")
    assert [r["case"]["size"] for r in first] == [8, 9, 10]
    # The hang is not a record: it was in flight. Resume finishes the rest, no duplicates.
    path2 = write_scenario(tmp_path, MISBEHAVING % "8, 9, 10, 11, 12")
    proc2 = run_harness("run", path2, "--out", str(out), "--env-label", "e", "--resume")
    assert proc2.returncode == 0, proc2.stderr[-2000:]
    assert "3 of 5 cases already recorded" in proc2.stdout
    sizes = [r["case"]["size"] for r in read_jsonl(out / "e.jsonl")]
    assert sizes == [8, 9, 10, 11, 12]


def test_rerun_moves_earlier_records_aside(tmp_path):
    path = write_scenario(tmp_path, MISBEHAVING % "8")
    out = tmp_path / "out"
    for _ in range(2):
        proc = run_harness("run", path, "--out", str(out), "--env-label", "e")
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(read_jsonl(out / "e.jsonl")) == 1
    previous = list((out / "previous").glob("*/e.jsonl"))
    assert len(previous) == 1 and len(read_jsonl(previous[0])) == 1


def _wait_for(condition, timeout=240):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for %s" % condition)
        time.sleep(0.1)


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _wait_for_worker(manager_pid, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for child in _children(manager_pid):
            try:
                with open("/proc/%d/cmdline" % child) as fh:
                    if "harness.runner.worker" in fh.read():
                        return child
            except OSError:
                pass
        time.sleep(0.1)
    raise AssertionError("no worker process appeared")
