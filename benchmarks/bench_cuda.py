"""The runner's CUDA paths on a GPU machine, in one short script: prints figures, checks nothing silently.

What it proves, each stage with its own time limit so that one slow stage costs only itself:

1. ``full``: a slice of ``scenarios/full.toml`` (base-size zoo models, batch 16, train and eval, fp32 /
   amp_fp16 / amp_bf16 / bf16, all three checkpoint modes) through the real runner on ``cuda``: timing
   by CUDA events, peak memory by the caching allocator, accuracy against the fp32 reference.
2. ``faults``: the zoo's fault twins on ``cuda`` (the cswin clone through the allocator peak, the
   float32 attention mask under the low precisions, dropped gradients under reentrant checkpointing).
3. ``sdpa``: which attention kernel the zoo's ``attend`` reaches on this build (profiler kernel names),
   and scaled_dot_product_attention's math / flash / memory-efficient backends side by side
   (forward + backward time by CUDA events, allocator peak).

Usage: ``python benchmarks/bench_cuda.py --out DIR`` on a machine with a GPU (records and a log
land in DIR); on a machine without one every case is ``unsupported`` and the SDPA stage says so.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FULL_SLICE = ["--only", "model=attention_mha_base,llm_decoder_base,cbam_classifier_base,cswin_v2_base,mswr_net_base",
              "--only", "batch_size=16", "--only", "size=128,224,default",
              "--only", "precision=fp32,amp_fp16,amp_bf16,bf16"]

FAULTS_ON_CUDA = """
[scenario]
name = "faults-cuda"
description = "Fault twins on CUDA"

[matrix]
model = ["mswr_net_tiny", "mswr_net_legacy_ckpt_tiny"]
include_faults = true
mode = ["train"]
batch_size = [2]
size = ["default"]
precision = ["fp32"]
checkpoint = ["none", "reentrant"]
device = ["cuda"]

[[include]]
model = ["cswin_v2_tiny", "cswin_v2_clone_fault_tiny"]
mode = ["train", "eval"]
batch_size = [8, 32]
size = [32]
checkpoint = "none"

[[include]]
model = ["hsifusion_tiny", "hsifusion_half_norm_fault_tiny", "hsifusion_detached_fault_tiny"]
mode = ["train"]
precision = ["fp32", "amp_fp16", "amp_bf16", "fp16", "bf16"]
checkpoint = "none"

[[include]]
model = ["attention_gqa_tiny", "attention_mask_dtype_fault_tiny"]
mode = ["train"]
precision = ["fp32", "amp_fp16", "amp_bf16", "fp16", "bf16"]
checkpoint = "none"

[measure]
warmup_iters = 2
warmup_s = 0.05
min_sample_s = 0.02
samples = 7
case_budget_s = 5.0
timeout_s = 120.0
"""


def log(*parts):
    print(*parts, flush=True)


def run_harness(args, timeout_s):
    """The real CLI in a subprocess; a stage past its limit keeps the records written so far."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "harness", "run", *args], cwd=ROOT, timeout=timeout_s,
                              capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        tail = proc.stderr[-1500:]
        log("  exit %d after %.0f s" % (proc.returncode, time.perf_counter() - t0))
        if proc.returncode:
            log(tail)
    except subprocess.TimeoutExpired:
        log("  stopped at its %d s limit; the records written so far follow" % timeout_s)


def read_records(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mib(x):
    return "-" if x is None else "%.1f" % (x / 2**20)


def case_table(records):
    log("  %-34s %-5s %-3s %-8s %-13s %-11s %9s %10s %12s %9s  %s" % (
        "model", "mode", "b", "prec", "ckpt", "status", "median_ms", "items/s", "peak_B", "resv_MiB", "accuracy"))
    for r in records:
        c, t, m, a = r["case"], r.get("timing") or {}, r.get("memory") or {}, r.get("accuracy") or {}
        ratio = "" if a.get("ratio") is None else " (ratio %.3g)" % a["ratio"]
        acc = ("pass%s" % ratio if a.get("passed") else "FAIL %s" % "; ".join(a.get("failures") or [])[:110]) \
            if a else (r.get("reason") or "")[:60]
        med = t.get("median_s")
        log("  %-34s %-5s %-3s %-8s %-13s %-11s %9s %10s %12s %9s  %s" % (
            c["model"], c["mode"], c["batch_size"], c["precision"], c["checkpoint"], r["status"],
            "-" if med is None else "%.3f" % (med * 1e3), "-" if med is None else "%.0f" % t["throughput_per_s"],
            "-" if m.get("peak_bytes") is None else "%d" % m["peak_bytes"], mib(m.get("cuda_reserved_peak_bytes")),
            acc))


def path_checks(records):
    """What the CUDA paths must show on every ok record; each line prints its count."""
    ok = [r for r in records if r["status"] == "ok"]
    by_status = {}
    for r in records:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    log("  statuses: %s" % by_status)
    if not ok:
        return
    log("  env: torch %s, CUDA %s, cuDNN %s, %s" % tuple(ok[0]["env"].get(k) for k in
                                                       ("torch", "cuda", "cudnn", "device_name")))
    on_cuda = sum(r["env"].get("device") == "cuda" for r in ok)
    allocator = sum((r.get("memory") or {}).get("method") == "cuda_allocator" for r in ok)
    positive = sum(((r.get("memory") or {}).get("peak_bytes") or 0) > 0 for r in ok)
    no_tensor_peak = sum((r.get("memory") or {}).get("tensor_peak_bytes") is None for r in ok)
    no_probe = sum((r.get("timing") or {}).get("probe_samples_s") is None for r in ok)
    timed = sum(len((r.get("timing") or {}).get("samples_s") or []) > 0 for r in ok)
    log("  of %d ok: env.device cuda %d; memory.method cuda_allocator %d, peak > 0 %d, no CPU tensor peak %d; "
        "samples %d, no CPU speed probe %d" % (len(ok), on_cuda, allocator, positive, no_tensor_peak, timed, no_probe))
    for precision in ("amp_fp16", "amp_bf16", "bf16", "fp16"):
        sub = [r for r in ok if r["case"]["precision"] == precision]
        if sub:
            worst = max(sub, key=lambda r: ((r["accuracy"].get("grads") or r["accuracy"]["outputs"] or {})
                                            .get("rel_err") or 0))
            log("  %s: %d ok, %d accuracy passed; worst rel_err against fp32 %s (%s %s)" % (
                precision, len(sub), sum(bool(r["accuracy"].get("passed")) for r in sub),
                (worst["accuracy"].get("grads") or worst["accuracy"]["outputs"] or {}).get("rel_err"),
                worst["case"]["model"], worst["case"]["mode"]))
            ratios = [r for r in sub if r["accuracy"].get("ratio") is not None]
            if ratios:
                top = max(ratios, key=lambda r: r["accuracy"]["ratio"])
                log("  %s: worst ratio to the expected error %.3g (limit %s): %s %s, %s" % (
                    precision, top["accuracy"]["ratio"], top["accuracy"].get("limit"), top["case"]["model"],
                    top["case"]["mode"], top["accuracy"].get("worst")))
    # Checkpointing's trade-off on the allocator peak: train, same model and precision.
    key = lambda r: (r["case"]["model"], r["case"]["precision"])  # noqa: E731
    none = {key(r): r for r in ok if r["case"]["mode"] == "train" and r["case"]["checkpoint"] == "none"}
    for r in ok:
        base = none.get(key(r))
        if r["case"]["mode"] == "train" and r["case"]["checkpoint"] != "none" and base:
            log("  checkpoint %-13s %-26s %-8s peak x%.2f  time x%.2f" % (
                r["case"]["checkpoint"], r["case"]["model"], r["case"]["precision"],
                r["memory"]["peak_bytes"] / base["memory"]["peak_bytes"],
                r["timing"]["median_s"] / base["timing"]["median_s"]))


def sdpa_stage():
    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    from harness.runner import execute

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if cuda:
        log("  torch %s on %s (capability %s)" % (torch.__version__, torch.cuda.get_device_name(),
                                                  torch.cuda.get_device_capability()))
    else:
        log("  no CUDA: the kernel names below are the CPU's, and the backend comparison is skipped")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    # Which kernel the zoo's attention reaches: profile one training step of two attention models.
    for name, precision in (("attention_mha_base", "amp_bf16"), ("llm_decoder_base", "amp_bf16"),
                            ("attention_mha_base", "fp32")):
        case = dict(model=name, mode="train", batch_size=4 if cuda else 1, size=256 if cuda else 16,
                    precision=precision, checkpoint="none", device=device)
        try:
            step = execute.case_step(case, 0)[3]
            step()
            sync()
            with profile(activities=activities) as prof:
                step()
                sync()
        except Exception as exc:  # the stage reports, never stops the script
            log("  %s %s: no profile (%s: %s)" % (name, precision, type(exc).__name__, str(exc)[:200]))
            continue
        kernels = sorted({e.key for e in prof.key_averages()
                          if any(s in e.key.lower() for s in ("flash", "fmha", "efficient", "attention", "softmax"))})
        log("  %s %s: attention ops and kernels %s" % (name, precision, kernels[:8]))
    if not cuda:
        return

    # The three SDPA backends side by side on one causal shape (the audit's "flash: 2x speed, 60% memory").
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        log("  torch.nn.attention.sdpa_kernel missing: backend comparison skipped")
        return
    b, h, t, d = 8, 16, 4096, 64
    for dtype in (torch.bfloat16, torch.float16):
        q, k, v = (torch.randn(b, h, t, d, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
        grad = torch.randn(b, h, t, d, device="cuda", dtype=dtype)
        figures = {}
        for backend in (SDPBackend.MATH, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.FLASH_ATTENTION):
            try:
                with sdpa_kernel(backend):
                    def fwd_bwd(q=q, k=k, v=v, grad=grad):
                        F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(grad)
                    for _ in range(3):
                        fwd_bwd()
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    for _ in range(10):
                        fwd_bwd()
                    end.record()
                    end.synchronize()
                    figures[backend.name] = (start.elapsed_time(end) / 10, torch.cuda.max_memory_allocated() - base)
            except RuntimeError as exc:
                log("  %s %s: %s" % (backend.name, dtype, str(exc).splitlines()[0][:100]))
        for name, (ms, peak) in figures.items():
            log("  sdpa causal (b %d, h %d, t %d, d %d) %s %-19s fwd+bwd %.3f ms, peak above inputs %s MiB" % (
                b, h, t, d, str(dtype).replace("torch.", ""), name, ms, mib(peak)))
        if "MATH" in figures and "FLASH_ATTENTION" in figures:
            (m_ms, m_peak), (f_ms, f_peak) = figures["MATH"], figures["FLASH_ATTENTION"]
            log("  flash against math: %.1fx speed, %.1f%% of the memory" % (m_ms / f_ms, 100 * f_peak / m_peak))
        torch.cuda.empty_cache()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for records and the scenario written here")
    parser.add_argument("--full-limit-s", type=int, default=240, help="time limit of the full.toml slice")
    parser.add_argument("--faults-limit-s", type=int, default=90, help="time limit of the fault twins")
    parser.add_argument("--no-sdpa", action="store_true", help="leave out the SDPA stage")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    log("== full: scenarios/full.toml slice on cuda")
    run_harness(["full", "--out", str(out / "full"), "--env-label", "gpu", *FULL_SLICE], args.full_limit_s)
    records = read_records(out / "full" / "gpu.jsonl")
    case_table(records)
    path_checks(records)

    log("== faults: the fault twins on cuda")
    scenario = out / "faults-cuda.toml"
    scenario.write_text(FAULTS_ON_CUDA)
    run_harness([str(scenario), "--out", str(out / "faults"), "--env-label", "gpu"], args.faults_limit_s)
    faults = read_records(out / "faults" / "gpu.jsonl")
    case_table(faults)
    path_checks(faults)

    if not args.no_sdpa:
        log("== sdpa: attention kernels and backends")
        sdpa_stage()
    return 0


if __name__ == "__main__":
    sys.exit(main())
