"""Helpers the report's tests share (no tests here): hand-made records and small synthetic stores."""
import json
import os

from harness.analysis.load import load_records
from harness.analysis.report.frame import prepare_frame
from harness.record.schema import SCHEMA_VERSION
from tests.analysis.report_synth import MODELS, write_synthetic_store

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
           instr_status="ok", instr_reason=None, instr_spread=1e-4, accuracy=None, schema=SCHEMA_VERSION):
    """One result record as the runner writes it; ``instructions`` (per step) or an ``instr_status`` other
    than ok adds the instruction part, ``tensor_peak`` the exact tensor peak (bytes); ``accuracy`` (a dict)
    adds to or replaces fields of the accuracy part (``calibrated`` makes the fields of the fp64 rule);
    ``schema`` is the record's schema_version (1: an old record, lifted on reading)."""
    case = {"model": model, "mode": mode, "batch_size": batch, "size": size, "precision": precision,
            "checkpoint": checkpoint, "device": "cpu", "channels_last": False, "compile": False}
    rec = {"schema_version": schema, "run_id": "r1", "time_utc": time_utc, "scenario": "unit",
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
        rec["accuracy"].update(accuracy or {})
    return rec


def calibrated(ratio, limit=10.0, worst="outputs: output", sketch=None, sketch64=None, probe=None):
    """The accuracy fields of a record judged by the fp64-calibrated rule (for ``record(accuracy=...)``):
    ``passed`` follows ``ratio <= limit``; ``sketch``/``sketch64`` are the fp32 and float64 output sketches."""
    side = worst.split(":")[0]
    return {"rule": "fp64-calibrated", "reference": "float64", "tolerance": None, "limit": limit, "ratio": ratio,
            "worst": worst, "passed": ratio <= limit, "failures": [] if ratio <= limit else [side],
            "output_sketch": sketch, "output_sketch64": sketch64, "output_probe": probe}


def fidelity_records():
    """torch-2.1 under the fp64-calibrated rule (one bf16 case 31x expected, failing; one under a scenario's
    fixed tolerance), torch-1.10 as schema-1 records (lifted to the fixed tolerance)."""
    new = dict(env="torch-2.1", torch_v="2.1.2")
    old = dict(env="torch-1.10", torch_v="1.10.2", schema=1)
    return [record(model="a", precision="fp32", accuracy=calibrated(1.2), **new),
            record(model="a", precision="bf16", checkpoint="reentrant",
                   accuracy=calibrated(31.0, worst="grads: stem.1.weight"), **new),
            record(model="b", precision="bf16", mode="eval", accuracy=calibrated(2.0), **new),
            record(model="c", precision="bf16", rel_err=1e-3, tol=1e-2, accuracy={"rule": "fixed tolerance"}, **new),
            record(model="a", precision="fp32", rel_err=5e-6, tol=1e-5, **old),
            record(model="a", precision="bf16", rel_err=2e-2, tol=1e-2, passed=False, **old)]


#: Output sketches of 64 values: the float64 sketch of every case below has norm 4.
BASE = [0.5] * 64


def _bump(values, index, delta):
    out = list(values)
    out[index] += delta
    return out


def drift_records():
    """Against torch-2.1: a case drifting by rounding only, one whose float64 output changed, one whose fp32
    outputs are exact (expected drift floored), one of an old record without sketches, one with sketches
    only on the other side."""
    ref, env = dict(env="torch-2.1", torch_v="2.1.2"), dict(env="torch-2.0", torch_v="2.0.1")
    scaled = [v * (1 + 1e-3) for v in BASE]
    tiny = _bump(BASE, 0, 4e-12)
    return [
        # a: each fp32 output 1e-7 from its float64 one, in opposite directions: drift 2e-7, expected 2e-7
        record(model="a", accuracy=calibrated(1.0, sketch=_bump(BASE, 0, 4e-7), sketch64=BASE), **ref),
        record(model="a", accuracy=calibrated(1.0, sketch=_bump(BASE, 0, -4e-7), sketch64=BASE), **env),
        record(model="a", precision="bf16", accuracy=calibrated(1.0, sketch=_bump(BASE, 0, -4e-7), sketch64=BASE),
               **env),  # the same fp32 reference output: one comparison per case and environment
        # b: the float64 output moved by 1e-3: the computation changed
        record(model="b", accuracy=calibrated(1.0, sketch=BASE, sketch64=BASE), **ref),
        record(model="b", accuracy=calibrated(1.0, sketch=scaled, sketch64=scaled), **env),
        # c: exact fp32 outputs, float64 outputs 1e-12 apart: expected drift is one unit roundoff
        record(model="c", accuracy=calibrated(1.0, sketch=BASE, sketch64=BASE), **ref),
        record(model="c", accuracy=calibrated(1.0, sketch=tiny, sketch64=tiny), **env),
        # d: an old record (schema 1, probe only) against a new one: the probe figure
        record(model="d", accuracy=calibrated(1.0, sketch=BASE, sketch64=BASE, probe=[1.0, 2.0]), **ref),
        record(model="d", probe=[1.0, 2.2], schema=1, **env),
        # e: sketches on this side only: the probe figure too
        record(model="e", probe=[1.0, 2.0], **ref),
        record(model="e", accuracy=calibrated(1.0, sketch=BASE, sketch64=BASE, probe=[1.0, 2.0]), **env),
    ]


def write_jsonl(path, records, extra_lines=()):
    """Write ``records`` (and raw ``extra_lines``) as a JSONL file; return its path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
        for line in extra_lines:
            fh.write(line)
    return path


def prepared_small_store(folder):
    """``prepare_frame`` of the ``small_store`` written into ``folder``: (frame, notes)."""
    small_store(folder)
    raw, _ = load_records([folder])
    return prepare_frame(raw)


def prepared_records(tmp_path, recs):
    """The prepared frame of ``recs``, written to ``tmp_path/a.jsonl`` and read back."""
    write_jsonl(str(tmp_path / "a.jsonl"), recs)
    return prepare_frame(load_records([str(tmp_path / "a.jsonl")])[0])[0]

