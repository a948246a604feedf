"""Helpers the report's tests share (no tests here): hand-made records and small synthetic stores."""
import json
import os

from harness.analysis.report_synth import MODELS, write_synthetic_store
from harness.record import SCHEMA_VERSION

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: A small synthetic matrix: 6 models x 2 modes x 3 precisions x 3 checkpoint modes x 3 batch sizes x 2 sizes.
SMALL = dict(models=MODELS[:6], modes=("train", "eval"), precisions=("fp32", "amp_bf16", "fp16"),
             checkpoints=("none", "reentrant", "non_reentrant"), devices=("cpu",), batches=(1, 8, 32), n_sizes=2)


def small_store(folder: str, **kwargs):
    """Write the ``SMALL`` synthetic store (6% failures) under ``folder``; return its JSONL paths."""
    return write_synthetic_store(folder, **dict(dict(SMALL, failure_rate=0.06), **kwargs))


def record(model="m", env="torch-2.1", torch_v="2.1.2", status="ok", median_s=0.01, peak=1000, precision="fp32",
           checkpoint="none", mode="train", batch=8, size=32, reason=None, probe=None, passed=True, rel_err=1e-7,
           fingerprint=None, time_utc="2026-01-01T00:00:00Z", tol=1e-5, tensor_peak=None, instructions=None,
           instr_status="ok", instr_reason=None, instr_spread=1e-4):
    """One result record as the runner writes it; ``instructions`` (per step) or an ``instr_status`` other
    than ok adds the instruction part, ``tensor_peak`` the exact tensor peak (bytes)."""
    case = {"model": model, "mode": mode, "batch_size": batch, "size": size, "precision": precision,
            "checkpoint": checkpoint, "device": "cpu", "channels_last": False, "compile": False}
    rec = {"schema_version": SCHEMA_VERSION, "run_id": "r1", "time_utc": time_utc, "scenario": "unit",
           "env_label": env, "case_key": "%s|%s|%d|%s|%s|%s|cpu" % (model, mode, batch, size, precision, checkpoint),
           "case": case, "env": {"torch": torch_v, "python": "3.11.7", "numpy": "1.26.4", "cuda": None,
                                 "fingerprint": fingerprint or "fp-" + env, "git_commit": "abc"},
           "status": status, "reason": reason, "duration_s": 1.0}
    if status == "ok":
        rec["timing"] = {"samples_s": [median_s] * 5, "median_s": median_s, "iqr_s": median_s * 0.1,
                         "throughput_per_s": batch / median_s}
        rec["memory"] = {"peak_bytes": peak, "method": "linux_vmhwm", "tensor_peak_bytes": tensor_peak}
        if instructions is not None or instr_status != "ok":
            counted = instr_status == "ok"
            rec["instructions"] = {"status": instr_status, "reason": instr_reason,
                                   "per_iter": instructions if counted else None,
                                   "repeats_per_iter": [instructions] * 3 if counted else None,
                                   "spread": instr_spread if counted else None, "tool": "valgrind-3.19.0 callgrind"}
        rec["accuracy"] = {"outputs": {"rel_err": rel_err, "max_abs_err": rel_err, "cosine": 1.0}, "grads": None,
                           "tolerance": tol, "passed": passed, "failures": [] if passed else ["outputs"],
                           "output_probe": probe}
    return rec


def write_jsonl(path, records, extra_lines=()):
    """Write ``records`` (and raw ``extra_lines``) as a JSONL file; return its path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
        for line in extra_lines:
            fh.write(line)
    return path
