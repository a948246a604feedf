"""The worker process: runs cases sent by the manager, one at a time.

Protocol: the manager writes one JSON object per line to the worker's stdin
(``{"case": {...}, "settings": {...}}``); the worker answers on the file descriptor
given by ``--result-fd`` with one JSON line per case, after a first ``ready`` line
carrying the environment. Before a case's result line come its measurement
(``{"partial": ...}``) and the name of each extra as it starts (``{"extra": ...}``;
``harness.runner.extras``). A message with a ``probe`` key (``{"cap_bytes": ...}``) asks
for one probe of a largest-batch search instead (``harness.runner.batch_probe``). With
``--count-dir`` the worker is the instruction counter (the manager starts it under valgrind,
``harness.runner.instructions``) and answers each case with its instruction counts.
Results travel on their own pipe so anything a model prints on stdout cannot corrupt them.
The worker runs in its own session, so a Ctrl-C at the terminal reaches only the manager,
which decides what to do. If the manager itself dies (``kill -9``), the kernel ends the worker too (Linux
``PR_SET_PDEATHSIG``), so a worker stuck in a case is never left running alone.
"""
import argparse
import ctypes
import ctypes.util
import gc
import json
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1
#: The protocol this worker speaks, said in its ``ready`` line. 2: a case's ``settings`` may say
#: ``"extras": false`` (a timing-only round of ``harness.engine``: the measurement, no extras).
#: 3: also ``"extras": "defer"`` and ``"pass"`` (``harness.runner.extras``: the FLOPs and the tensor
#: peak in a pass after the timed rounds).
PROTOCOL = 3


def _die_with_the_manager(manager_pid: int) -> None:
    """Ask the kernel for SIGKILL when the manager goes (Linux; a no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != manager_pid:  # it died before the request was in place
        os._exit(1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="torchmatrix worker (started by the manager)")
    parser.add_argument("--result-fd", type=int, required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--backend", default="{}", help="backend flags as JSON")
    parser.add_argument("--manager-pid", type=int, default=0, help="die when this process dies (0: do not)")
    parser.add_argument("--count-dir", default=None,
                        help="count instructions (this worker runs under valgrind; callgrind dumps go here)")
    args = parser.parse_args(argv)
    if args.manager_pid:
        _die_with_the_manager(args.manager_pid)
    out = os.fdopen(args.result_fd, "w", encoding="utf-8")

    def send(obj):
        out.write(json.dumps(obj, allow_nan=True) + "\n")
        out.flush()

    try:
        import torch

        from harness.runner import envinfo, execute, fault_hooks

        if args.threads > 0:
            torch.set_num_threads(args.threads)
        envinfo.apply_backend_flags(json.loads(args.backend))
        import models

        models.list_models()  # import the zoo now, not inside the first case's time
        injected = fault_hooks.load_injected()  # only in a benchmark's fault commit (see fault_hooks)
        if injected:
            sys.stderr.write("torchmatrix worker: fault hooks installed: %s\n" % injected)
        # torch's import leaves a large heap; freezing it keeps the per-case gc.collect()
        # to the case's own objects (0.15 s -> a few ms per call).
        gc.collect()
        gc.freeze()
        if args.count_dir:
            from harness.runner.instructions import torch_problem

            problem = torch_problem()
            if problem:
                send({"ready": False, "unsupported": True, "reason": problem})
                return 1
        envs = {"cpu": envinfo.environment("cpu")}
        if torch.cuda.is_available():
            envs["cuda"] = envinfo.environment("cuda")
        send({"ready": True, "env": envs, "protocol": PROTOCOL})
    except Exception as exc:  # noqa: BLE001 - reported to the manager, which stops the run
        send({"ready": False, "reason": "%s: %s" % (type(exc).__name__, exc)})
        return 1

    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        if args.count_dir:
            send(execute.count_case(msg["case"], msg["settings"], args.count_dir))
        elif msg["case"].get("roofline"):  # once per run and device (harness.runner.roofline.measure_in)
            from harness.runner import roofline

            send(roofline.measure(msg["case"]["device"]))
        elif "probe" in msg:
            from harness.runner.batch_probe import probe_case

            send(probe_case(msg["case"], msg["settings"], msg["probe"].get("cap_bytes")))
        else:
            send(execute.run_case(msg["case"], msg["settings"], send))
    return 0


if __name__ == "__main__":
    sys.exit(main())
