"""Shared helpers for runner tests: write a scenario, run the CLI in a subprocess."""
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FAST_MEASURE = """
[measure]
warmup_iters = 1
warmup_s = 0.0
min_sample_s = 0.002
samples = 3
case_budget_s = 2.0
timeout_s = %(timeout)s
"""

#: A matrix of ``tests.fixtures.misbehaving:factory`` (train, batch 2, fp32, CPU) at the sizes given by
#: ``%`` (each size is a behaviour: 8 healthy, 3 hangs, ...; see the fixture).
MISBEHAVING = '''
model = ["tests.fixtures.misbehaving:factory"]
mode = ["train"]
batch_size = [2]
size = [%s]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]
'''


def write_scenario(tmp_path, matrix: str, extra: str = "", timeout: float = 60.0, name: str = "t") -> str:
    path = os.path.join(str(tmp_path), name + ".toml")
    with open(path, "w") as fh:
        fh.write('[scenario]\nname = "%s"\n\n[matrix]\n%s\n%s\n%s' % (
            name, matrix, FAST_MEASURE % {"timeout": timeout}, extra))
    return path


def harness_cmd(*args, optimize: bool = False):
    cmd = [sys.executable] + (["-O"] if optimize else []) + ["-m", "harness"] + list(args)
    return cmd


def run_harness(*args, optimize: bool = False, timeout: float = 600):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(harness_cmd(*args, optimize=optimize), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def read_jsonl(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def wait_for(condition, timeout=240):
    """Poll ``condition`` until it holds; AssertionError after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for %s" % condition)
        time.sleep(0.05)


def sigint_default():
    """A shell starts background jobs with SIGINT ignored, and Python then installs no KeyboardInterrupt
    handler: restore the default so the command sees Ctrl-C however the test process was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ctrl_c_when_in_flight(cmd, env, marker, before=None):
    """Start ``cmd`` (argv) in its own session, as a terminal's foreground job; once ``before`` (if given) and
    then ``marker.exists`` hold, send SIGINT to its process group; (its exit status, its output)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=sigint_default)
    try:
        if before is not None:
            before()
        wait_for(marker.exists)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, stdout
