"""Synthetic result records and stores for the gate's tests (``test_gate_*.py``)."""
import hashlib
import json
import os

import numpy as np

from harness.analysis.load import load_records
from harness.record.schema import SCHEMA_VERSION

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIB = 1024 * 1024
#: Trust single runs' samples, as on a quiet dedicated machine.
SAMPLES = {"time_test": "samples"}


def make_record(model="cbam_classifier_tiny", mode="train", batch_size=8, size=64, precision="fp32",
                checkpoint="none", device="cpu", status="ok", samples=None, peak_bytes=200 * MIB,
                passed=True, rel_err=1e-7, grad_rel_err=2e-7, tolerance=1e-5, task=None, torch_v="2.1.2",
                python="3.11.7", label="torch-2.1", scenario="smoke", reason=None, mem_method="linux_vmhwm",
                run_id="run1", probe_samples=None, probe="conv probe", instructions=None, instr_spread=0.001):
    """One record following harness.record.schema's schema (``probe_samples``: speed-probe times,
    ``instructions``: counted instructions per step, with ``instr_spread`` between repeats)."""
    case = {"model": model, "mode": mode, "batch_size": batch_size, "size": size, "precision": precision,
            "checkpoint": checkpoint, "device": device, "channels_last": False, "compile": False}
    key = "model=%s;mode=%s;batch=%d;size=%s;precision=%s;checkpoint=%s;device=%s" % (
        model, mode, batch_size, size, precision, checkpoint, device)
    ident = "|".join([torch_v, python, device, "AMD EPYC", "None"])
    env = {"torch": torch_v, "python": python, "numpy": "1.26.4", "cuda": None, "cudnn": None, "device": device,
           "device_name": "AMD EPYC", "threads": 2, "git_commit": "abc123",
           "fingerprint": hashlib.sha1(ident.encode()).hexdigest()[:12]}
    rec = {"schema_version": SCHEMA_VERSION, "run_id": run_id, "time_utc": "2026-11-21T23:00:00Z",
           "scenario": scenario, "env_label": label, "case_key": key, "case": case, "env": env,
           "status": status, "reason": reason if status != "ok" else None, "duration_s": 1.0}
    if status == "ok":
        samples = list(samples if samples is not None else [0.01] * 10)
        q1, med, q3 = np.percentile(samples, [25, 50, 75])
        rec["timing"] = {"samples_s": [float(s) for s in samples], "iters_per_sample": 10, "warmup_iters": 3,
                         "warmup_s": 0.1, "median_s": float(med), "iqr_s": float(q3 - q1),
                         "throughput_per_s": batch_size / float(med), "reduced": None,
                         "probe_samples_s": None if probe_samples is None else [float(x) for x in probe_samples],
                         "probe": None if probe_samples is None else probe}
        rec["memory"] = {"peak_bytes": peak_bytes, "method": mem_method}
        acc = {"outputs": {"max_abs_err": rel_err, "rel_err": rel_err, "cosine": 1.0}, "tolerance": tolerance,
               "passed": passed, "failures": [] if passed else ["outputs.rel_err"],
               "output_probe": [0.1] * 32, "output_norm": 1.0}
        if mode == "train":
            acc["grads"] = {"max_abs_err": grad_rel_err, "rel_err": grad_rel_err, "cosine": 1.0}
        rec["accuracy"] = acc
        rec["task"] = task
        if instructions is not None:
            repeats = [instructions * (1 - instr_spread / 2), instructions * (1 + instr_spread / 2)]
            rec["instructions"] = {"status": "ok", "reason": None, "per_iter": float(instructions),
                                   "repeats_per_iter": repeats, "iterations": 1, "warmup_iters": 1,
                                   "spread": instr_spread, "tool": "valgrind-3.19.0 callgrind", "threads": 1,
                                   "wall_s": 5.0}
    return rec


def write_jsonl(path, records):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
    return str(path)


def lognormal(rng, median, n, spread=0.05):
    return list(median * np.exp(rng.normal(0.0, spread, n)))


def frames(base_records, cand_records, tmp_path):
    """The two sides as ``load_records`` tables."""
    b = write_jsonl(tmp_path / "base" / "b.jsonl", base_records)
    c = write_jsonl(tmp_path / "cand" / "c.jsonl", cand_records)
    return load_records([b])[0], load_records([c])[0]


def stores(tmp_path, base, cand):
    """The two sides as store folders A/ and B/."""
    write_jsonl(tmp_path / "A" / "base.jsonl", base)
    write_jsonl(tmp_path / "B" / "head.jsonl", cand)
    return str(tmp_path / "A"), str(tmp_path / "B")


def only(verdicts, kind, check=None):
    found = [v for v in verdicts if v["kind"] == kind and (check is None or v.get("check") == check)]
    assert len(found) == 1, found
    return found[0]


def shared_machine_rounds(rng, rounds, step_s, slowdown=1.0, probe_s=0.001, n=20):
    """Records of rounds on a machine whose speed changes from round to round (a factor of
    0.8-1.6 applied to step and probe alike); the step is ``slowdown`` times slower."""
    out = []
    for _ in range(rounds):
        machine = float(np.exp(rng.uniform(np.log(0.8), np.log(1.6))))
        jitter = np.exp(rng.normal(0.0, 0.02, n))  # second-to-second speed, shared by step and probe
        steps = step_s * slowdown * machine * jitter * np.exp(rng.normal(0.0, 0.01, n))
        probes = probe_s * machine * jitter * np.exp(rng.normal(0.0, 0.01, n))
        out.append(make_record(samples=steps, probe_samples=probes))
    return out


def make_search(found=100, cap=4 << 30, status="ok", criterion="torch.profiler memory events", per_sample=MIB,
                device_name="AMD EPYC", **kw):
    """A largest-batch search record (``batch_size = "max"``) of ``make_record``'s case whose answer is
    ``found``: the probes a search from batch 1 would take when each sample costs ``per_sample`` bytes."""
    rec = make_record(status="unsupported" if status != "ok" else "ok", **kw)
    for part in ("timing", "memory", "accuracy", "task"):
        rec.pop(part, None)
    rec["status"], rec["reason"] = status, None if status == "ok" else "probe at batch 1: boom"
    rec["case"]["batch_size"] = "max"
    rec["case_key"] = rec["case_key"].replace(";batch=8;", ";batch=max;")
    rec["env"]["device_name"] = device_name
    probes = [{"batch_size": b, "status": "ok", "fits": b <= found, "peak_bytes": b * per_sample,
               "rss_peak_bytes": 2 * b * per_sample, "reason": None, "wall_s": 0.5}
              for b in (1, 2, 4, 8, 16, 32, 64, 128) if b <= 2 * found]
    rec["max_batch"] = {"batch_size": found, "limited_by": "cap", "first_unfit": found + 1, "cap_bytes": cap,
                        "criterion": criterion, "peak_bytes": found * per_sample, "start": 1, "limit": 4096,
                        "probes": probes, "search_s": 4.0}
    return rec
