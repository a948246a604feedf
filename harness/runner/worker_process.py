"""A worker subprocess as the manager sees it: started, sent cases, read, killed.

The worker's side of the protocol is ``harness.runner.worker``. A counting worker (the
instruction pass) is the same process started under valgrind (``count_dir``).
"""
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

from harness.fileio import REPO_ROOT

WORKER_START_TIMEOUT_S = 600.0
#: A counting worker imports torch under valgrind: 30-140 s on an idle 2-core machine, several
#: times that on a loaded one.
COUNTING_START_TIMEOUT_S = 1800.0
class WorkerDied(Exception):
    pass


class WorkerUnsupported(Exception):
    """The worker cannot do what it was started for here (a counting worker without valgrind
    hooks); the message says why."""


def signal_name(returncode: int) -> str:
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return "signal %d" % -returncode
    return "exit status %d" % returncode


class Worker:
    """One worker subprocess and its result pipe."""

    def __init__(self, threads: int, backend: Dict, python: str = sys.executable, count_dir: Optional[str] = None,
                 optimize: int = sys.flags.optimize, root: str = REPO_ROOT, env: Optional[Dict[str, str]] = None):
        """``python`` runs the worker in the code tree ``root`` (its working folder, first on
        ``PYTHONPATH``), with ``env`` added to ours (a variant of ``harness.engine``)."""
        #: The worker's ``python -O`` level: the manager's own, or 1 for a ``python_optimized`` case.
        self.optimize = optimize
        self.log = tempfile.TemporaryFile(mode="w+b")
        read_fd, write_fd = os.pipe()
        cmd: List[str] = []
        if count_dir is not None:
            from harness.runner.instructions import command

            cmd += command(count_dir)
        cmd.append(python)
        if optimize:
            cmd.append("-" + "O" * optimize)
        cmd += ["-m", "harness.runner.worker", "--result-fd", str(write_fd), "--manager-pid", str(os.getpid()),
                "--threads", str(threads),
                "--backend", json.dumps(backend)]
        proc_env = dict(os.environ)
        proc_env.update(env or {})
        if count_dir is not None:
            cmd += ["--count-dir", count_dir]
            proc_env["PYTHONHASHSEED"] = "0"  # the same dict and set orders, so the same instructions
        # The worker runs in its code tree; the folder the user ran from stays importable (as for
        # `python -m`), so a model named by import path resolves there as it did in the manager.
        paths = [root, os.getcwd()] + ([proc_env["PYTHONPATH"]] if proc_env.get("PYTHONPATH") else [])
        proc_env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT,
                                     pass_fds=(write_fd,), start_new_session=True, env=proc_env, cwd=root)
        os.close(write_fd)
        self._rfile = os.fdopen(read_fd, "rb", buffering=0)
        self._buf = b""
        self.env: Dict = {}
        #: the protocol the worker speaks (``harness.runner.worker.PROTOCOL``; 1: a worker from before it said)
        self.protocol = 1
        self.partial: Optional[Dict] = None
        self.extra: Optional[str] = None
        self._extra_t0: Optional[float] = None
        self.start_timeout_s = COUNTING_START_TIMEOUT_S if count_dir is not None else WORKER_START_TIMEOUT_S

    def _read_line(self, timeout_s: float) -> Optional[Dict]:
        """The next result line, or None on timeout; WorkerDied if the pipe closes."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._rfile], [], [], left)
            if not ready:
                return None
            chunk = self._rfile.read(65536)
            if not chunk:
                raise WorkerDied()
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line.decode("utf-8"))

    def start(self) -> None:
        try:
            msg = self._read_line(self.start_timeout_s)
        except WorkerDied:
            msg = {"reason": "worker exited during start-up (%s)" % signal_name(self.proc.wait())}
        if msg is not None and msg.get("unsupported"):
            self.kill()
            raise WorkerUnsupported(msg.get("reason") or "unsupported")
        if msg is None or not msg.get("ready"):
            reason = (msg or {}).get("reason") or "no answer in %.0f s" % self.start_timeout_s
            self.kill()
            raise RuntimeError("worker failed to start: %s\n%s" % (reason, self.last_words()))
        self.env = msg["env"]
        self.protocol = int(msg.get("protocol") or 1)

    def run(self, case: Dict, settings: Dict, timeout_s: float, probe: Optional[Dict] = None,
            extra_timeout_s: Optional[float] = None) -> Optional[Dict]:
        """The case's result (``probe``: one probe of a largest-batch search, ``harness.runner.batch_probe``),
        None on timeout; WorkerDied if the worker died. ``timeout_s`` bounds the case up to its measurement;
        then each extra (``harness.runner.extras``) has ``extra_timeout_s`` (default ``timeout_s``) from its
        start. ``partial`` keeps the case's measurement once sent, ``extra`` the extra running and
        ``extra_s`` how long it has run, so a lost worker costs the extra, not the measurement."""
        self.partial = self.extra = self._extra_t0 = None
        message = {"case": case, "settings": settings}
        if probe is not None:
            message["probe"] = probe
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerDied() from None
        wait_s = timeout_s
        while True:
            msg = self._read_line(wait_s)
            if msg is None or not ("partial" in msg or "extra" in msg):
                return msg
            if "partial" in msg:
                self.partial = msg["partial"]
            else:
                self.extra, self._extra_t0 = msg["extra"], time.monotonic()
            wait_s = timeout_s if extra_timeout_s is None else extra_timeout_s

    @property
    def extra_s(self) -> Optional[float]:
        """Seconds the extra in progress (``extra``) has run, or None."""
        return None if self._extra_t0 is None else time.monotonic() - self._extra_t0

    def last_words(self, limit: int = 600) -> str:
        try:
            self.log.seek(0, os.SEEK_END)
            size = self.log.tell()
            self.log.seek(max(0, size - limit))
            return self.log.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._rfile.close()
        self.log.close()
