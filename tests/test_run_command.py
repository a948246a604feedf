"""``torchmatrix run``: one run per output, nothing lost on a full disk or a cut line, a clear
line for a bad output path, Ctrl-C honoured however the process was started."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.runner.helpers import ROOT, harness_cmd, read_jsonl, run_harness, write_scenario

HANG_THEN_OK = '''
model = ["tests.fixtures.misbehaving:factory"]
mode = ["eval"]
batch_size = [2]
size = [8, 3, 9]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]
'''
TWO_OK = HANG_THEN_OK.replace("size = [8, 3, 9]", "size = [8, 9]")


def _start(args, marker, ignore_sigint=False):
    """A run in the background with SIGINT's disposition set explicitly (default, or ignored as a
    background job of a shell script inherits it), in its own session so signals reach it alone."""
    def preexec():
        signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_sigint else signal.SIG_DFL)

    env = dict(os.environ, PYTHONPATH=ROOT, MISBEHAVING_HANG_MARKER=str(marker))
    return subprocess.Popen(harness_cmd(*args), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=preexec, start_new_session=True)


def _wait_for(path, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(str(path)):
        assert time.monotonic() < deadline, "the hanging case never started"
        time.sleep(0.1)


def test_a_second_run_on_the_same_output_is_refused_naming_the_first(tmp_path):
    scenario = write_scenario(tmp_path, HANG_THEN_OK, timeout=120)
    out = tmp_path / "out"
    first = _start(["run", scenario, "--out", str(out), "--env-label", "e"], tmp_path / "hanging")
    try:
        _wait_for(tmp_path / "hanging")
        for extra in ([], ["--resume"]):
            second = run_harness("run", scenario, "--out", str(out), "--env-label", "e", *extra)
            assert second.returncode == 2
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1 and "is being written by another run (pid %d on " % first.pid in lines[0], lines
        assert not (out / "previous").exists()  # the first run's live file was not moved away
    finally:
        os.killpg(first.pid, signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130
    records = read_jsonl(out / "e.jsonl")
    assert [r["case"]["size"] for r in records] == [8]  # one writer only: no duplicates


def test_ctrl_c_stops_a_run_started_with_sigint_ignored(tmp_path):
    scenario = write_scenario(tmp_path, HANG_THEN_OK, timeout=120)
    out = tmp_path / "out"
    run = _start(["run", scenario, "--out", str(out), "--env-label", "e"], tmp_path / "hanging", ignore_sigint=True)
    _wait_for(tmp_path / "hanging")
    os.killpg(run.pid, signal.SIGINT)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr[-2000:]
    assert "run again with --resume" in stdout
    assert [r["case"]["size"] for r in read_jsonl(out / "e.jsonl")] == [8]


def test_resume_after_a_cut_last_line_sets_it_aside_and_loses_nothing(tmp_path):
    scenario = write_scenario(tmp_path, TWO_OK)
    out = tmp_path / "out"
    assert run_harness("run", scenario, "--out", str(out), "--env-label", "e", "--only", "size=8").returncode == 0
    fragment = json.dumps(read_jsonl(out / "e.jsonl")[0])[:70]  # the next record, cut by a kill or a full disk
    with open(str(out / "e.jsonl"), "a") as fh:
        fh.write(fragment)
    proc = run_harness("run", scenario, "--out", str(out), "--env-label", "e", "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ended with an unterminated line (70 bytes" in proc.stdout
    assert sorted(r["case"]["size"] for r in read_jsonl(out / "e.jsonl")) == [8, 9]
    assert (out / "e.jsonl.partial").read_text() == fragment + "\n"
    again = run_harness("run", scenario, "--out", str(out), "--env-label", "e", "--resume")
    assert again.returncode == 0 and "2 of 2 cases already recorded" in again.stdout
    assert len(read_jsonl(out / "e.jsonl")) == 2


@pytest.mark.parametrize("target, what", [
    ("a-file", "is a file, not a folder for record files"),
    ("/proc/torchmatrix-out", "cannot write records to /proc/torchmatrix-out: "),  # procfs: no new folders
    ("/proc/no-such-mount/out", "cannot write records to /proc/no-such-mount/out: "),
])
def test_an_unusable_output_path_is_one_line_and_exit_2(tmp_path, target, what):
    scenario = write_scenario(tmp_path, TWO_OK)
    if target == "a-file":
        target = tmp_path / "a-file"
        target.write_text("not a folder")
    proc = run_harness("run", scenario, "--out", str(target), "--env-label", "e")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and what in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def _as_root():
    """The command prefix that runs a command as root: none for root, ``sudo -n`` where passwordless sudo
    works (hosted CI runners), else None."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def _mount_tmpfs(path, size):
    """Mount a tmpfs of ``size`` at ``path``, writable by this user; (root prefix, why not)."""
    root = _as_root()
    if root is None:
        return None, "neither root nor passwordless sudo: cannot mount a small tmpfs to fill"
    os.makedirs(str(path), exist_ok=True)
    options = "size=%s,uid=%d,gid=%d,mode=0755" % (size, os.getuid(), os.getgid())
    proc = subprocess.run(root + ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                          text=True)
    return root, (None if proc.returncode == 0 else "mount -t tmpfs failed: %s" % proc.stderr.strip())


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_every_record(tmp_path):
    disk = tmp_path / "disk"
    root, why = _mount_tmpfs(disk, "12k")
    if why:
        if os.environ.get("CI") == "true":  # CI has root or sudo: a skip there would hide this test for good
            pytest.fail("CI=true, and the full-disk test cannot run: %s" % why)
        pytest.skip(why)
    try:
        matrix = TWO_OK.replace("size = [8, 9]", "size = [8, 9, 10, 11, 12, 13, 14, 15]")
        scenario = write_scenario(tmp_path, matrix)
        proc = run_harness("run", scenario, "--out", str(disk), "--env-label", "e")
        assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: disk full writing %s/e.jsonl: " % disk), lines
        kept = int(lines[0].split(": ")[2].split()[0])
        good = [json.loads(line) for line in (disk / "e.jsonl").read_text().splitlines() if line.endswith("}")]
        assert 0 < kept == len(good) < 8
        subprocess.run(root + ["mount", "-o", "remount,size=2m", str(disk)], check=True)
        again = run_harness("run", scenario, "--out", str(disk), "--env-label", "e", "--resume")
        assert again.returncode == 0, again.stderr[-2000:]
        assert sorted(r["case"]["size"] for r in read_jsonl(disk / "e.jsonl")) == list(range(8, 16))
    finally:
        subprocess.run((root or []) + ["umount", "-l", str(disk)], capture_output=True)


def _pids_with_env(entry):
    """Processes whose environment holds ``entry`` (KEY=VALUE)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/environ" % pid, "rb") as fh:
                if entry.encode() in fh.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_a_worker_does_not_outlive_a_killed_manager(tmp_path):
    scenario = write_scenario(tmp_path, HANG_THEN_OK, timeout=600)
    marker = tmp_path / "hanging"
    run = _start(["run", scenario, "--out", str(tmp_path / "out"), "--env-label", "e"], marker)
    _wait_for(marker)
    workers = [p for p in _pids_with_env("MISBEHAVING_HANG_MARKER=%s" % marker) if p != run.pid]
    assert len(workers) == 1  # the worker, stuck in its case
    os.kill(run.pid, signal.SIGKILL)  # the manager only: the worker has its own session
    run.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while _pids_with_env("MISBEHAVING_HANG_MARKER=%s" % marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _pids_with_env("MISBEHAVING_HANG_MARKER=%s" % marker)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "the worker outlived its manager"
