"""Synthetic record stores for the report's tests and benchmark.

Writes ``<out>/<env_label>.jsonl`` files of records built and checked by the schema in
``harness.record.schema`` (several PyTorch environments, models with their own size axes,
precisions, checkpointing modes, every status, raw samples, output probes, task
metrics) and the ``<env_label>.env.json`` file the nox matrix writes per environment,
including a skipped one. On request, several rounds of the matrix (as ``run --append``
writes them, each round one process with its own speed) and CPU instruction counts (in
the first round, as ``ab --instructions`` counts them). Deterministic for a given seed.
Never imports torch.
"""
import hashlib
import itertools
import json
import math
import os
import random
from typing import Dict, List, Optional, Sequence

from harness.record.schema import SCHEMA_VERSION, Case, RecordError, check
from harness.vocab import CHECKPOINTS, MODES, PRECISIONS

#: (env_label, torch, python, numpy, cuda, speed factor): newer releases a little faster.
ENVS = (
    ("torch-1.10", "1.10.2+cu102", "3.9.18", "1.21.6", "10.2", 1.00),
    ("torch-1.11", "1.11.0+cu102", "3.10.13", "1.23.5", "10.2", 1.02),
    ("torch-1.12", "1.12.1+cu102", "3.10.13", "1.24.4", "10.2", 1.04),
    ("torch-1.13", "1.13.1+cu117", "3.11.7", "1.26.4", "11.7", 1.05),
    ("torch-2.0", "2.0.1+cu117", "3.10.13", "1.26.4", "11.7", 1.10),
    ("torch-2.1", "2.1.2+cu121", "3.11.7", "1.26.4", "12.1", 1.12),
    ("torch-latest", "2.13.0+cpu", "3.12.3", "1.26.4", None, 1.15),
)

#: (model, sizes, base seconds per sample at the first size, task metric or None)
MODELS = (
    ("cbam_classifier_tiny", (32, 64, 96, 128), 2e-4, ("top1", True)),
    ("cbam_classifier_base", (64, 128, 160, 224), 8e-4, ("top1", True)),
    ("mswr_net_v2", ("64x64", "96x96", "128x128", "128x256"), 1.5e-3, ("psnr_db", True)),
    ("colorization_paper", (64, 96, 128, 176), 1.1e-3, None),
    ("datacube_unet3d", (16, 24, 32, 48), 2.5e-3, None),
    ("graph_vae", (32, 64, 128, 256), 4e-4, None),
    ("decoder_llm_small", (64, 128, 256, 512), 6e-4, ("loss", False)),
    ("ris_localizer", (16, 32, 64, 128), 3e-4, ("angle_rmse_deg", False)),
    ("hsi_fusion_net", ("32x32", "64x64", "96x96", "128x128"), 1.8e-3, None),
    ("wavediff_unet", (32, 64, 96, 128), 2.2e-3, None),
    ("efficientnet_datacube", (16, 32, 48, 64), 9e-4, None),
    ("mqa_attention_block", (64, 128, 256, 512), 3.5e-4, None),
)

#: Made-up figures of each precision (``harness.precisions`` declares what a precision is; these
#: are only the synthetic machine's): time per sample and memory against fp32, and the fixed
#: tolerance its records are judged by.
PRECISION_FIGURES = {"fp32": (1.0, 1.0, 1e-5), "amp_fp16": (0.7, 0.8, 1e-2), "amp_bf16": (0.75, 0.8, 3e-2),
                     "fp16": (0.6, 0.55, 1e-2), "bf16": (0.65, 0.55, 5e-2)}
BATCHES = (1, 4, 8, 16, 32)
#: Instructions a step executes per second of its (noise-free) time: a made-up machine.
INSTRUCTIONS_PER_S = 3e9
#: Relative spread of the instruction count between repeats (made up, inside the at most 0.4% measured
#: between repeats in one process: docs/gate.md, "Instruction counts").
INSTRUCTION_NOISE = 1.5e-4
#: A planted change of the exact tensor peak: (model, environment label, factor).
TENSOR_PEAK_CHANGE = ("cbam_classifier_base", "torch-2.0", 1.03)
#: Planted instruction passes that gave no count: (environment label or model, status, reason).
INSTRUCTION_FAILURES = (
    ("torch-1.11", "unsupported", "torch 1.11.0 says valgrind is not supported on this platform"),
    ("datacube_unet3d", "timeout", "no count in 900 s under valgrind; counting worker killed"),
)

#: Failures planted over a span of releases (``planted_spans``): (precision, checkpoint, device, per
#: environment how many models fail (the first ones of ``MODELS``), reason). Models at an odd place of
#: ``MODELS`` carry the reason re-raised ("RuntimeError: RuntimeError: ..."): one cause, once normalised.
PLANTED_SPANS = (
    ("amp_bf16", "non_reentrant", "cuda", {"torch-1.11": 11, "torch-1.12": 12, "torch-1.13": 3},
     "RuntimeError: expected scalar type BFloat16 but found Float"),
)
#: A span with a gap (``planted_spans``): (model, precision, checkpoint, environments where it fails, reason).
PLANTED_GAP = ("graph_vae", "amp_fp16", "reentrant", ("torch-1.11", "torch-1.13"),
               "RuntimeError: Function 'CheckpointFunctionBackward' returned nan values in its 0th output.")


def _planted(model: str, label: str, case: Dict):
    """The planted span failure of a case in an environment, or None."""
    names = [m[0] for m in MODELS]
    place = names.index(model) if model in names else len(MODELS)
    for precision, ckpt, device, failing, reason in PLANTED_SPANS:
        if (case["precision"], case["checkpoint"], case["device"]) == (precision, ckpt, device) and \
                place < failing.get(label, 0):
            return "error", ("RuntimeError: " + reason) if place % 2 else reason
    gap_model, precision, ckpt, labels, reason = PLANTED_GAP
    if (model, case["precision"], case["checkpoint"]) == (gap_model, precision, ckpt) and label in labels:
        return "error", reason
    return None


def _size_pixels(size) -> float:
    if isinstance(size, str) and "x" in size:
        h, w = size.split("x")
        return float(h) * float(w)
    return float(size) ** 2


def _env_dict(env: Sequence, device: str, commit: str) -> Dict:
    label, torch_v, py, np_v, cuda, _ = env
    return {
        "torch": torch_v, "python": py, "numpy": np_v, "cuda": cuda if device == "cuda" else None,
        "cudnn": 8902 if device == "cuda" else None, "device": device,
        "device_name": "NVIDIA H100 80GB HBM3" if device == "cuda" else "AMD EPYC 7B13 (2 threads)",
        "cpu": "AMD EPYC 7B13", "threads": 2, "platform": "Linux-6.1.0-x86_64",
        "git_commit": commit, "backend": {"tf32_matmul": False, "tf32_cudnn": False,
                                          "cudnn_benchmark": False, "deterministic": True},
        "fingerprint": hashlib.sha1(label.encode()).hexdigest()[:16],
    }


def _status_for(rng: random.Random, env_index: int, model: str, case: Dict, failure_rate: float,
                planted: bool = False):
    torch_minor = ENVS[env_index][1]
    if case["checkpoint"] == "non_reentrant" and torch_minor.startswith("1.10"):
        return "unsupported", ("non-reentrant checkpointing: torch.utils.checkpoint.checkpoint has no "
                               "use_reentrant parameter in torch %s" % torch_minor)
    if case["precision"] == "amp_bf16" and torch_minor.startswith(("1.10", "1.11")) and case["device"] == "cpu":
        return "unsupported", "autocast to bfloat16 on cpu needs torch >= 1.12 (this is %s)" % torch_minor
    if case["precision"] == "fp16" and case["device"] == "cpu" and model.startswith("datacube"):
        return "error", ('Traceback (most recent call last):\n'
                         '  File "harness/runner/execute.py", line 88, in run_case\n'
                         '    out = model(*inputs)\nRuntimeError: "slow_conv3d_cpu" not implemented for \'Half\'')
    roll = rng.random()
    planted_failure = _planted(model, ENVS[env_index][0], case) if planted else None
    if planted_failure:
        return planted_failure
    if roll < failure_rate * 0.25:
        return "crashed", "worker died: signal 11 (SIGSEGV)"
    if roll < failure_rate * 0.45:
        return "timeout", "case exceeded its %d s budget" % rng.choice((300, 600))
    if roll < failure_rate * 0.7:
        return "oom", "CUDA out of memory. Tried to allocate %.2f GiB" % rng.uniform(0.5, 8)
    if roll < failure_rate:
        return "skipped", "size %s is not valid for %s: not divisible by the patch size 4" % (case["size"], model)
    return "ok", None


def _probe(model: str, mode: str, batch: int, size) -> List[float]:
    rng = random.Random("%s|%s|%s|%s" % (model, mode, batch, size))
    return [rng.gauss(0.0, 1.0) for _ in range(32)]


def _instructions(seed: int, case_key: str, model: str, label: str, step_s: float) -> Dict:
    """The instruction part of a CPU case whose noise-free step takes ``step_s`` seconds: three
    repeats a few 1e-4 apart, or a planted failure (``INSTRUCTION_FAILURES``)."""
    for who, status, reason in INSTRUCTION_FAILURES:
        if who in (label, model):
            return {"status": status, "reason": reason, "tool": "valgrind-3.19.0 callgrind", "threads": 1}
    rng = random.Random("%s|instructions|%s|%s" % (seed, case_key, label))
    repeats = sorted(step_s * INSTRUCTIONS_PER_S * (1.0 + rng.gauss(0.0, INSTRUCTION_NOISE)) for _ in range(3))
    return {"status": "ok", "reason": None, "per_iter": repeats[1], "repeats_per_iter": repeats, "iterations": 3,
            "warmup_iters": 2, "spread": (repeats[-1] - repeats[0]) / repeats[1],
            "tool": "valgrind-3.19.0 callgrind", "threads": 1, "wall_s": round(step_s * 400 + 2.0, 3)}


def iter_synthetic_records(n_records: Optional[int] = None, seed: int = 0, envs: Sequence = ENVS,
                           models: Sequence = MODELS, devices: Sequence[str] = ("cpu", "cuda"),
                           failure_rate: float = 0.04, n_samples: int = 15, run_id: str = "run-synthetic",
                           commit: str = "0123abcd4567", scenario: str = "synthetic-matrix",
                           modes: Sequence[str] = MODES, precisions: Sequence[str] = PRECISIONS,
                           checkpoints: Sequence[str] = CHECKPOINTS, batches: Sequence[int] = BATCHES,
                           n_sizes: int = 4, speed_factors: Optional[Dict[str, float]] = None,
                           rounds: int = 1, round_spread: float = 0.0, instructions: bool = False,
                           tensor_peaks: bool = False, planted_spans: bool = False, engine: bool = False,
                           paired: bool = True, case_round_spread: float = 0.0):
    """Yield ``(env_label, record)`` pairs, round-major, then case-major and environment-minor.

    ``n_records`` caps the count (the matrix is cut evenly across environments);
    ``speed_factors`` multiplies the speed of the named environments (a baseline or a
    regression to detect). ``rounds``: the matrix that many times, a day apart, each round
    one process per environment whose speed is the environment's times exp(N(0,
    ``round_spread``)), the same for all its cases (a fresh process's own speed).
    ``instructions``: CPU ok cases of the first round carry instruction counts, proportional
    to the step's noise-free time (so they show the same regressions, without the noise),
    and the planted ``INSTRUCTION_FAILURES`` carry a status and reason instead.
    ``tensor_peaks``: CPU ok cases carry the exact tensor peak, the same in every round and
    environment but the planted ``TENSOR_PEAK_CHANGE``. ``planted_spans``: the failures of
    ``PLANTED_SPANS`` and ``PLANTED_GAP`` over spans of releases.
    ``engine``: the rounds as the interleaved engine writes them: every record carries the ``round`` part
    (its index, the planned rounds, the variants, its place in the case's rotating visit order,
    ``paired``: False as a CI job matrix writes them, one environment per job), and only the first round
    runs the extras, so later rounds' ok records have timing, the process peak and their status, with
    accuracy, task, tensor peak and instruction counts null. ``case_round_spread``: each case's round
    median also moves by exp(N(0, it)), drawn per case, environment and round (a fresh worker's own speed).
    """
    rng = random.Random(seed)
    count = 0
    # an environment not of ``ENVS`` (a second variant of one release) behaves as the release of its torch
    env_indices = [ENVS.index(e) if e in ENVS else next((i for i, known in enumerate(ENVS) if known[1] == e[1]), 0)
                   for e in envs]
    case_rng = random.Random("%s|case-round" % seed)  # apart from ``rng``: statuses stay those of the seed
    labels = [e[0] for e in envs]
    for round_i in range(rounds):
        # a process's own speed, drawn apart from ``rng``: statuses, errors and the rest stay those of the seed
        process_rng = random.Random("%s|round|%d" % (seed, round_i))
        process = {e[0]: math.exp(process_rng.gauss(0.0, round_spread)) if round_spread > 0 else 1.0 for e in envs}
        round_run_id = run_id if round_i == 0 else "%s-round%d" % (run_id, round_i + 1)
        day = 21 + round_i
        combos = itertools.product(models, modes, precisions, checkpoints, devices, batches, range(n_sizes))
        for (model, sizes, base_s, task), mode, precision, ckpt, device, batch, size_i in combos:
            size = sizes[size_i]
            case = {"model": model, "mode": mode, "batch_size": batch, "size": size, "precision": precision,
                    "checkpoint": ckpt, "device": device, "channels_last": False, "compile": False}
            case_key = Case(**case).key
            probe = _probe(model, mode, batch, size)
            for place, (env, env_index) in enumerate(zip(envs, env_indices)):
                if n_records is not None and count >= n_records:
                    return
                label = env[0]
                status, reason = _status_for(rng, env_index, model, case, failure_rate, planted_spans)
                rec = {
                    "schema_version": SCHEMA_VERSION, "run_id": round_run_id,
                    "time_utc": "2026-11-%02dT10:%02d:%02dZ" % (day, count // 60 % 60, count % 60),
                    "scenario": scenario, "env_label": label, "case_key": case_key, "case": dict(case),
                    "env": _env_dict(env, device, commit), "status": status, "reason": reason,
                    "duration_s": round(rng.uniform(0.5, 20.0), 3),
                }
                if status == "ok":
                    per_sample = base_s * _size_pixels(size) / _size_pixels(sizes[0])
                    time_factor, mem_factor, tol = PRECISION_FIGURES[precision]
                    per_sample *= time_factor
                    per_sample *= 3.0 if mode == "train" else 1.0
                    per_sample *= 0.05 if device == "cuda" else 1.0
                    mem = 20e6 + 4.0 * per_sample * 1e9 * batch * (1.0 if mode == "train" else 0.3)
                    per_sample *= {"none": 1.0, "reentrant": 1.35, "non_reentrant": 1.28}[ckpt]
                    speed = env[5] * (speed_factors or {}).get(label, 1.0)
                    if model == "graph_vae" and label == "torch-2.1":
                        speed *= 0.7  # a regression the report must show
                    batch_eff = 1.0 / (0.5 + 0.5 * min(batch, 16) / 16.0)  # small batches are less efficient
                    step_s = per_sample * batch * batch_eff / speed  # without the process's own speed
                    median = step_s / process[label]
                    if case_round_spread > 0:
                        median *= math.exp(case_rng.gauss(0.0, case_round_spread))
                    samples = [median * math.exp(rng.gauss(0.0, 0.05)) for _ in range(n_samples)]
                    srt = sorted(samples)
                    med = srt[len(srt) // 2]
                    iqr = srt[(3 * len(srt)) // 4] - srt[len(srt) // 4]
                    mem *= {"none": 1.0, "reentrant": 0.45, "non_reentrant": 0.5}[ckpt]
                    mem *= mem_factor
                    err = tol * math.exp(rng.gauss(math.log(0.08), 0.9))
                    if precision == "fp16" and model == "colorization_paper":
                        err = tol * rng.uniform(1.5, 4.0)  # lost accuracy the report must show
                    drift = 1e-7 if label != "torch-2.1" or model != "mswr_net_v2" else 3e-3
                    env_probe = [round(v * (1.0 + drift * math.sin(i + env_index)), 9) for i, v in enumerate(probe)]
                    outputs = {"max_abs_err": err * 3, "rel_err": err, "cosine": 1.0 - err * err}
                    grads = dict(outputs, rel_err=err * 1.5) if mode == "train" else None
                    failures = [] if err <= tol else ["outputs"]
                    if grads is not None and grads["rel_err"] > tol:
                        failures.append("grads")
                    rec["timing"] = {"samples_s": [round(s, 9) for s in samples], "iters_per_sample": 3,
                                     "warmup_iters": 5, "warmup_s": round(median * 5, 6), "median_s": med,
                                     "iqr_s": iqr, "throughput_per_s": batch / med, "reduced": None}
                    rec["memory"] = {"peak_bytes": int(mem),
                                     "method": "cuda_allocator" if device == "cuda" else "linux_vmhwm",
                                     "cuda_reserved_peak_bytes": int(mem * 1.2) if device == "cuda" else None}
                    if tensor_peaks and device == "cpu":
                        grown = TENSOR_PEAK_CHANGE[2] if (model, label) == TENSOR_PEAK_CHANGE[:2] else 1.0
                        rec["memory"]["tensor_peak_bytes"] = int(mem * 0.6 * grown) // 512 * 512
                        rec["memory"]["tensor_peak_method"] = "torch.profiler memory events"
                    rec["accuracy"] = {"outputs": outputs, "grads": grads, "tolerance": tol,
                                       "passed": not failures, "failures": failures, "output_probe": env_probe,
                                       "output_norm": round(sum(v * v for v in env_probe) ** 0.5, 6)}
                    rec["task"] = None
                    if task and mode == "train" and precision == "fp32" and ckpt == "none" and batch == 8:
                        before = 10.0 if task[1] else 5.0
                        after = (before * (2.5 + 0.02 * env_index)) if task[1] else before / (3.0 + 0.05 * env_index)
                        rec["task"] = {"metric": task[0], "higher_is_better": task[1], "before": before,
                                       "after": round(after, 4), "steps": 50}
                    if instructions and device == "cpu" and round_i == 0:
                        rec["instructions"] = _instructions(seed, case_key, model, label, step_s)
                    if engine and round_i > 0:  # a timing-only round: the extras ran in the first
                        rec["accuracy"] = rec["task"] = None
                        rec["memory"]["tensor_peak_bytes"] = None
                        rec["memory"].pop("tensor_peak_method", None)
                if engine:
                    rec["round"] = {"index": round_i + 1, "of": rounds, "variants": labels,
                                    "position": (place - round_i) % len(labels), "paired": paired and len(labels) > 1,
                                    "extras": round_i == 0}
                count += 1
                yield label, rec


def write_synthetic_store(out_dir: str, n_records: Optional[int] = None, seed: int = 0,
                          envs: Sequence = ENVS, models: Sequence = MODELS, devices: Sequence[str] = ("cpu", "cuda"),
                          skipped_envs: Sequence[str] = ("torch-1.9",), **kwargs) -> List[str]:
    """Write a synthetic store under ``out_dir``; return the JSONL paths written.

    Each environment gets ``<label>.jsonl`` and ``<label>.env.json``; each label of
    ``skipped_envs`` gets only an env.json with status ``skipped``.
    """
    os.makedirs(out_dir, exist_ok=True)
    handles = {}
    try:
        for label, rec in iter_synthetic_records(n_records, seed=seed, envs=envs, models=models,
                                                 devices=devices, **kwargs):
            fh = handles.get(label)
            if fh is None:
                fh = handles[label] = open(os.path.join(out_dir, label + ".jsonl"), "w", encoding="utf-8")
            problem = check(rec, strict=True)
            if problem:
                raise RecordError("synthetic record of %s breaks the schema: %s" % (label, problem))
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
    finally:
        for fh in handles.values():
            fh.close()
    for env in envs:
        info = {"env_label": env[0], "status": "ok", "reason": None,
                "versions": {"torch": env[1], "python": env[2], "numpy": env[3]}}
        with open(os.path.join(out_dir, env[0] + ".env.json"), "w", encoding="utf-8") as fh:
            json.dump(info, fh)
    for label in skipped_envs:
        info = {"env_label": label, "status": "skipped",
                "reason": "no Python 3.9 interpreter with torch 1.9 wheels found (looked in pyenv, PATH, uv)",
                "versions": {"torch": "1.9.1"}}
        with open(os.path.join(out_dir, label + ".env.json"), "w", encoding="utf-8") as fh:
            json.dump(info, fh)
    return [os.path.join(out_dir, e[0] + ".jsonl") for e in envs if e[0] in handles]
