"""The manager survives crashes, hangs and Ctrl-C, losing at most the case in flight."""
import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from tests.runner.helpers import (
    MISBEHAVING,
    ROOT,
    ctrl_c_when_in_flight,
    harness_cmd,
    read_jsonl,
    run_harness,
    wait_for,
    write_scenario,
)


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
    wait_for(marker.exists)
    os.kill(worker_pid, signal.SIGKILL)
    stdout, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, stdout[-2000:]
    recs = read_jsonl(out / "e.jsonl")
    assert [r["status"] for r in recs] == ["crashed", "ok"], stdout[-2000:]
    assert "SIGKILL" in recs[0]["reason"]


def test_ctrl_c_mid_case_then_resume_reruns_the_interrupted_case_once(tmp_path):
    # Size 6 is healthy but sleeps MISBEHAVING_SLOW_S in every forward: in the first run it is
    # surely in flight when Ctrl-C comes; resumed without the delay, the same case finishes.
    path = write_scenario(tmp_path, MISBEHAVING % "8, 9, 6, 10", timeout=120)
    out = tmp_path / "out"
    marker = tmp_path / "in_flight"
    env = dict(os.environ, PYTHONPATH=ROOT, MISBEHAVING_HANG_MARKER=str(marker), MISBEHAVING_SLOW_S="3600")
    # Its own session, as a terminal's foreground job: Ctrl-C goes to its process group
    # (the worker runs in a session of its own and is not in it).
    code, stdout = ctrl_c_when_in_flight(harness_cmd("run", path, "--out", str(out), "--env-label", "e"), env, marker)
    assert code == 130, stdout[-2000:]
    assert "2 cases recorded" in stdout and "2 not run" in stdout and "--resume" in stdout, stdout[-2000:]
    first = read_jsonl(out / "e.jsonl")
    assert [r["case"]["size"] for r in first] == [8, 9]  # the case in flight left no record

    env = dict(os.environ, PYTHONPATH=ROOT)  # no delay now: the interrupted case can finish
    proc2 = subprocess.run(harness_cmd("run", path, "--out", str(out), "--env-label", "e", "--resume"), cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=600)
    assert proc2.returncode == 0, proc2.stderr[-2000:]
    records = read_jsonl(out / "e.jsonl")
    assert [r["case"]["size"] for r in records] == [8, 9, 6, 10]  # the interrupted case once, finished
    assert [r["status"] for r in records] == ["ok"] * 4
    # The finished cases were not run again: their records are the first run's, untouched.
    assert records[:2] == first
    assert records[2]["run_id"] == records[3]["run_id"] != first[0]["run_id"]
    # Only the two missing cases were run (progress lines count over the cases to do).
    assert "2 of 4 cases already recorded" in proc2.stdout
    assert "[1/2] tests.fixtures.misbehaving:factory train b2 s6" in proc2.stdout
    assert "[2/2] tests.fixtures.misbehaving:factory train b2 s10" in proc2.stdout


# The worker's address space after importing torch and running a small case (what the
# cap must leave room for): 1.9 GB with torch 1.10, 3.6 GB with the newest CUDA build.
VM_PEAK_AFTER_A_SMALL_CASE = """
from harness.scenario import spec as scenario
from harness.runner import execute
settings = {"measure": dict(scenario.MEASURE_DEFAULTS, warmup_iters=1, warmup_s=0.0, min_sample_s=0.002, samples=3),
            "tolerance": scenario.TOLERANCE_DEFAULTS, "task": scenario.TASK_DEFAULTS}
case = dict(model="tests.fixtures.misbehaving:factory", mode="train", batch_size=2, size=8, precision="fp32",
            checkpoint="none", device="cpu", channels_last=False, compile=False)
assert execute.run_case(case, settings)["status"] == "ok"
with open("/proc/self/status") as fh:
    print([int(line.split()[1]) * 1024 for line in fh if line.startswith("VmPeak:")][0])
"""

OOM_MATRIX = MISBEHAVING % "8" + """
[[include]]
model = "colorization_papernet_tiny"
batch_size = 4
size = 512

[[include]]
model = "tests.fixtures.misbehaving:factory"
size = 9
"""


def test_out_of_memory_under_an_address_space_cap_costs_one_case(tmp_path):
    # A real cap: RLIMIT_AS set on the manager, inherited by its worker, 1 GiB above what a
    # small case needs. colorization_papernet_tiny at batch 4, side 512 makes 2 GiB of logits alone
    # (484 bins at full resolution) from 8 MiB of inputs, so its allocations fail inside torch's CPU
    # allocator; the worker survives and goes on.
    env = dict(os.environ, PYTHONPATH=ROOT)
    probe = subprocess.run([sys.executable, "-c", VM_PEAK_AFTER_A_SMALL_CASE], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-2000:]
    cap = int(probe.stdout.split()[-1]) + 2 ** 30
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY and hard < cap:
        pytest.skip("the hard RLIMIT_AS (%d bytes) is below the cap this test needs (%d)" % (hard, cap))

    def cap_address_space():
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))

    path = write_scenario(tmp_path, OOM_MATRIX, timeout=120)
    out = tmp_path / "out"
    proc = subprocess.run(harness_cmd("run", path, "--out", str(out), "--env-label", "e"), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, preexec_fn=cap_address_space)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    recs = read_jsonl(out / "e.jsonl")
    assert [(r["case"]["model"], r["status"]) for r in recs] == [
        ("tests.fixtures.misbehaving:factory", "ok"), ("colorization_papernet_tiny", "oom"),
        ("tests.fixtures.misbehaving:factory", "ok")], proc.stdout[-2000:]
    assert "DefaultCPUAllocator: can't allocate memory" in recs[1]["reason"], recs[1]["reason"]
    assert "oom 1" in proc.stdout


def test_rerun_moves_earlier_records_aside(tmp_path):
    path = write_scenario(tmp_path, MISBEHAVING % "8")
    out = tmp_path / "out"
    for _ in range(2):
        proc = run_harness("run", path, "--out", str(out), "--env-label", "e")
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(read_jsonl(out / "e.jsonl")) == 1
    previous = list((out / "previous").glob("*/e.jsonl"))
    assert len(previous) == 1 and len(read_jsonl(previous[0])) == 1


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
