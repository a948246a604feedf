"""The parts of a result record (``harness.record.schema``): one dataclass per part, every field
once with its type, its meaning and (``column``) its flat column name. ``harness.record.schema``
assembles them into ``Record`` and derives the readers and writers from them.

Standard library only: the runner imports this on Python 3.9 + PyTorch 1.10.
"""
import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Union

from harness.vocab import CASE_AXES, MAX_BATCH


def _f(doc: str, column: Optional[str] = None, required: bool = False, prefix: str = "",
       report: bool = False, table: Optional[str] = None) -> Any:
    """A record field: ``doc`` says what it holds (units in the name), ``column`` names its
    flat column (None: not flattened), ``prefix`` prefixes a nested part's columns,
    ``report`` marks columns the HTML report reads, ``table`` (a heading) also shows the
    column in the report's table of every case, ``required`` fields must be present."""
    meta = {"doc": doc, "column": column, "required": required, "prefix": prefix, "report": report or bool(table),
            "table": table}
    return field(default=None, metadata=meta)


def _axis(doc: str, default: Any = dataclasses.MISSING) -> Any:
    """A case axis: required unless it has a default, its column named as the field."""
    return field(default=default, metadata={"doc": doc, "column": True, "report": True})


# --- the parts ------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One point of the matrix (``harness.vocab.CASE_AXES``)."""

    model: str = _axis("registered zoo name or import path")
    mode: str = _axis("train | eval")
    batch_size: Union[int, str] = _axis("samples per step, or 'max' (harness.vocab.MAX_BATCH): a search for the "
                                        "largest batch that fits, whose answer is the record's max_batch part")
    size: Any = _axis("the model's size axis: int or 'HxW'")
    precision: str = _axis("harness.vocab.PRECISIONS")
    checkpoint: str = _axis("harness.vocab.CHECKPOINTS")
    device: str = _axis("cpu | cuda")
    channels_last: bool = _axis("channels_last memory format", default=False)
    compile: bool = _axis("torch.compile", default=False)
    sdpa_backend: str = _axis("harness.vocab.SDPA_BACKENDS", default="default")
    python_optimized: bool = _axis("the worker runs under python -O", default=False)

    @property
    def key(self) -> str:
        """Stable text key: the same case in any environment or commit has the same key."""
        batch = self.batch_size if self.batch_size == MAX_BATCH else "%d" % self.batch_size
        parts = ["model=%s" % self.model, "mode=%s" % self.mode, "batch=%s" % batch,
                 "size=%s" % (self.size,), "precision=%s" % self.precision,
                 "checkpoint=%s" % self.checkpoint, "device=%s" % self.device]
        # Optional axes join the key only when set, so adding them changed no old key.
        if self.channels_last:
            parts.append("channels_last=1")
        if self.compile:
            parts.append("compile=1")
        if self.sdpa_backend != "default":
            parts.append("sdpa=%s" % self.sdpa_backend)
        if self.python_optimized:
            parts.append("python_O=1")
        return ";".join(parts)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


if tuple(f.name for f in dataclasses.fields(Case)) != CASE_AXES:  # one order for keys, tables and the scenario
    raise ImportError("harness.record.schema.Case fields differ from harness.vocab.CASE_AXES")


@dataclass
class Env:
    """The environment that ran the case (``harness.runner.envinfo``)."""

    torch: Optional[str] = _f("torch.__version__", "torch", report=True)
    python: Optional[str] = _f("Python version", "python", report=True)
    numpy: Optional[str] = _f("numpy version", "numpy", report=True)
    cuda: Optional[str] = _f("CUDA runtime in use (None on the CPU)", "cuda", report=True)
    cuda_build: Optional[str] = _f("CUDA version torch was built with")
    cudnn: Optional[int] = _f("cuDNN version", "cudnn", report=True)
    device: Optional[str] = _f("cpu | cuda")
    device_name: Optional[str] = _f("GPU or CPU name with threads", "device_name", report=True)
    cpu: Optional[str] = _f("CPU model name")
    threads: Optional[int] = _f("torch.get_num_threads()")
    platform: Optional[str] = _f("platform.platform()")
    executable: Optional[str] = _f("sys.executable of the worker")
    optimize: Optional[int] = _f("sys.flags.optimize (python -O)")
    git_commit: Optional[str] = _f("the project's git commit", "git_commit", report=True)
    backend: Optional[Dict[str, Any]] = _f("backend flags pinned from the scenario (TF32, cudnn, deterministic)")
    extra_packages: Optional[Dict[str, str]] = _f("name -> version of what the scenario's [environment] and "
                                                  "--with installed beside torch (part of the fingerprint); "
                                                  "None without such requirements")
    extra_failed: Optional[List[str]] = _f("the requirements of [environment] and --with that could not be "
                                           "installed here")
    extra_chosen: Optional[Dict[str, Dict[str, str]]] = _f(
        "library -> {requirement, version, why}: for each of torchvision, timm and transformers the scenario "
        "named, what the installer was asked for in this environment and why (the per-torch table, a pin, "
        "or the environment as it came)")
    fingerprint: Optional[str] = _f("hash of what makes timings comparable", "env_fingerprint", report=True)


@dataclass
class Timing:
    """Wall-clock figures of the timed step (``harness.runner.timing``)."""

    samples_s: Optional[List[float]] = _f("every sample: mean seconds per iteration", "samples_s")
    iters_per_sample: Optional[int] = _f("iterations in each sample")
    warmup_iters: Optional[int] = _f("untimed iterations before the samples")
    warmup_s: Optional[float] = _f("seconds of warm-up")
    timed_s: Optional[float] = _f("seconds spent in timed samples")
    median_s: Optional[float] = _f("median of samples_s", "median_s", report=True)
    iqr_s: Optional[float] = _f("interquartile range of samples_s", "iqr_s", report=True)
    throughput_per_s: Optional[float] = _f("samples of the batch per second", "throughput_per_s", report=True)
    reduced: Optional[str] = _f("None, or why fewer samples than asked were taken", "timing_reduced")
    probe_samples_s: Optional[List[float]] = _f("speed probe's seconds after each sample (CPU)", "probe_samples_s")
    probe: Optional[str] = _f("what the speed probe runs", "probe")


@dataclass
class Memory:
    """Peak memory of the case (``harness.runner.memory``)."""

    peak_bytes: Optional[float] = _f("CUDA allocator peak, or the process high-water mark above the pre-case "
                                     "baseline on the CPU", "peak_mem_bytes", report=True)
    method: Optional[str] = _f("cuda_allocator | linux_vmhwm | ru_maxrss | none", "mem_method")
    baseline_bytes: Optional[float] = _f("memory in use before the case")
    cuda_reserved_peak_bytes: Optional[float] = _f("CUDA caching allocator's reserved peak")
    tensor_peak_bytes: Optional[int] = _f("CPU only: exact peak of tensor bytes allocated during one extra step "
                                          "(run under torch.profiler after the timed samples) and live at once; "
                                          "deterministic; None on CUDA or when the profiler failed",
                                          column="tensor_peak_bytes", table="tensor peak")
    tensor_peak_method: Optional[str] = _f("how tensor_peak_bytes was read: 'torch.profiler memory events' "
                                           "(raw allocation records) or 'torch.profiler self_cpu_memory_usage' "
                                           "(op-attributed fallback); None on CUDA or when it failed")
    tensor_peak_error: Optional[str] = _f("why the profiler gave no tensor peak, when it failed")


@dataclass
class Instructions:
    """CPU instructions of the case's step counted under valgrind's callgrind
    (``harness.runner.instructions``): deterministic where wall time is noise."""

    status: Optional[str] = _f("ok | unsupported (valgrind missing or refusing) | skipped (the step is longer "
                               "than instructions_max_step_s) | error | timeout | crashed",
                               "instr_status", report=True)
    reason: Optional[str] = _f("why there is no count, for any status but ok", "instr_reason", report=True)
    per_iter: Optional[float] = _f("instructions per step: the median of repeats_per_iter",
                                   column="instructions_per_iter", table="instructions")
    repeats_per_iter: Optional[List[float]] = _f("each repeat's count divided by its iterations",
                                                 "instructions_repeats")
    iterations: Optional[int] = _f("steps counted in each repeat (after warm-up)")
    warmup_iters: Optional[int] = _f("uncounted steps before the first repeat, besides the case's first step "
                                     "(never counted: it allocates)")
    spread: Optional[float] = _f("(max - min) / median of repeats_per_iter", "instructions_spread", report=True)
    tool: Optional[str] = _f("the counting tool and its version, e.g. 'valgrind-3.19.0 callgrind'", "instr_tool")
    threads: Optional[int] = _f("torch threads in the counting worker (1: one deterministic thread)")
    wall_s: Optional[float] = _f("seconds the instruction pass took for this case (under valgrind)")


@dataclass
class ErrorStats:
    """Error of the case's tensors against the fp32 reference's and, calibrated, against the
    float64 reference's (``harness.runner.accuracy``; the rule: docs/accuracy.md)."""

    max_abs_err: Optional[float] = _f("largest absolute difference from fp32", "max_abs_err")
    rel_err: Optional[float] = _f("||got - fp32|| / ||fp32||", "rel_err", report=True)
    cosine: Optional[float] = _f("cosine similarity with fp32", "cosine")
    problem: Optional[str] = _f("shape mismatch or non-finite values, when any")
    missing: Optional[int] = _f("parameters that got no gradient (grads only)")
    missing_names: Optional[List[str]] = _f("the first few of them")
    err64: Optional[float] = _f("||got - fp64|| / ||fp64|| over all tensors", "err64", report=True)
    fp32_err64: Optional[float] = _f("the same for the fp32 reference: fp32's own error", "fp32_err64", report=True)
    ratio: Optional[float] = _f("err64 / expected_err: what the calibrated rule judges", "ratio", report=True)
    expected_err: Optional[float] = _f("max(fp32_err64 x u / u_fp32, u), u the precision's unit roundoff",
                                       "expected_err", report=True)
    worst: Optional[str] = _f("the tensor with the largest ratio alone: 'output', 'output[i]' or a parameter",
                              "worst", report=True)
    worst_ratio: Optional[float] = _f("that tensor's own ratio (judged against the per-tensor limit)",
                                      "worst_ratio", report=True)
    worst_err64: Optional[float] = _f("that tensor's error against fp64", "worst_err64")
    sketch: Optional[List[float]] = _f("64 signed sums of the case's own tensors (accuracy.sketch): compared "
                                       "between revisions in one environment", "sketch", report=True)
    zeroed: Optional[int] = _f("tensors exactly zero in the case, not in fp32, above the group's floor in float64 "
                               "(accuracy.zeroed): always a failure", "zeroed")
    zeroed_names: Optional[List[str]] = _f("the first few of them")
    ref_missing: Optional[int] = _f("trainable parameters with no gradient in the fp32 reference (grads only)",
                                    "ref_missing", report=True)
    ref_missing_names: Optional[List[str]] = _f("the first few of them")


@dataclass
class Accuracy:
    """Numerical fidelity against fp32 and float64 un-checkpointed references of the same weights
    and inputs."""

    outputs: Optional[ErrorStats] = _f("outputs against the references", prefix="out_")
    grads: Optional[ErrorStats] = _f("gradients against the references (train mode)", prefix="grad_")
    reference: Optional[str] = _f("'float64', or 'float32 (no float64 reference: why)'", "acc_reference",
                                  report=True)
    rule: Optional[str] = _f("'fp64-calibrated' or 'fixed tolerance' (scenario override, or no float64)",
                             "acc_rule", report=True)
    tolerance: Optional[float] = _f("fixed relative error against fp32 allowed (rule 'fixed tolerance')",
                                    "acc_tolerance", report=True)
    limit: Optional[float] = _f("largest ratio to the expected error allowed (rule 'fp64-calibrated')",
                                "acc_limit", report=True)
    ratio: Optional[float] = _f("worst ratio to the expected error of outputs and gradients", "acc_ratio",
                                report=True)
    worst: Optional[str] = _f("where: 'outputs: output' or 'grads: <parameter>'", "acc_worst", report=True)
    passed: Optional[bool] = _f("every check within its rule", "acc_passed", report=True)
    failures: Optional[List[str]] = _f("which checks failed", "acc_failures")
    output_probe: Optional[List[float]] = _f("32 values of the fp32 reference output at fixed positions: "
                                             "the same in every environment unless numerics drift",
                                             "output_probe", report=True)
    output_norm: Optional[float] = _f("L2 norm of the fp32 reference output", "output_norm")
    output_sketch: Optional[List[float]] = _f("sketch of the fp32 reference output (accuracy.sketch): the same "
                                              "in every environment unless numerics drift", "output_sketch",
                                              report=True)
    output_sketch64: Optional[List[float]] = _f("sketch of the float64 reference output: what drift is "
                                                "measured against", "output_sketch64", report=True)
    reference_shared: Optional[bool] = _f("the references were made for an earlier case of the same model, mode, "
                                          "batch size, size, seed and options in this worker and reused "
                                          "(harness.runner.references)")


@dataclass
class Task:
    """A short fixed-seed training run on the model's synthetic task (when the scenario asks)."""

    metric: Optional[str] = _f("the task's metric name", "task_metric", report=True)
    higher_is_better: Optional[bool] = _f("direction of the metric", "task_higher_is_better", report=True)
    before: Optional[float] = _f("metric before training", "task_before", report=True)
    after: Optional[float] = _f("metric after training", "task_after", report=True)
    steps: Optional[int] = _f("training steps")
    error: Optional[str] = _f("why the task run failed, when it did")


@dataclass
class Extras:
    """What ran after the timed samples (``harness.runner.extras``): none of it can fail the case."""

    seconds: Optional[Dict[str, float]] = _f("seconds each extra took (tensor_peak, flops, profile, checks, "
                                             "references, task)")
    failed: Optional[Dict[str, str]] = _f("extra -> why it failed, or why it was lost with its worker (killed past "
                                          "extra_timeout_s, crashed); the case keeps its measurement")
    deferred: Optional[List[str]] = _f("the extras this first round left to the pass after the timed rounds (a "
                                       "run of several rounds or variants: flops, tensor_peak); their figures, "
                                       "seconds and failures come from the record file's extras file, merged on "
                                       "read (harness.record.store)")


@dataclass
class Checks:
    """Behaviour checks of the case (``harness.runner.checks``; names: ``harness.vocab.CHECKS``)."""

    ran: Optional[List[str]] = _f("the checks run on this case", "checks_ran")
    failed: Optional[List[str]] = _f("the checks that failed (empty: none)", "checks_failed", report=True)
    reasons: Optional[List[str]] = _f("one line per failed check, naming what it found", "check_reasons",
                                      report=True)
    not_judged: Optional[List[str]] = _f("'check: why' for a check that ran but could not judge here")
    stale_params: Optional[List[str]] = _f("parameters the timed steps' optimizer left unchanged, and frozen ones")
    mutated_buffers: Optional[List[str]] = _f("buffers an eval call changed")
    nondeterministic: Optional[str] = _f("the first tensor that differed between two runs from the same seed")
    leak_bytes_per_step: Optional[float] = _f("tensor bytes still live per step: (live after 2n steps - after n) / n",
                                              column="leak_bytes_per_step", table="leak B/step")
    leak_steps: Optional[int] = _f("steps of the leak check's longer window (2n)")


@dataclass
class Round:
    """Which round of an interleaved run wrote the record (``harness.engine``): every variant (an
    environment of ``nox -s matrix``, a revision of ``ab``) measures each case once per round, in a
    fresh worker per round and variant, the variants of one case one after another in a rotating
    order, so the records of one case and round are paired in time across variants."""

    index: Optional[int] = _f("this round, counted from 1", "round", required=True, report=True)
    of: Optional[int] = _f("how many rounds the run planned ([measure] rounds)", "round_of", required=True,
                           report=True)
    variants: Optional[List[str]] = _f("the labels of the variants the run measured, in its fixed order",
                                       required=True)
    position: Optional[int] = _f("this variant's place in this case's visit order in this round, from 0",
                                 "round_position", report=True)
    paired: Optional[bool] = _f("another variant measured the same case in the same round beside it (False: "
                                "one variant, or a job that held one environment: nothing to pair with)",
                                "round_paired", required=True, report=True)
    extras: Optional[bool] = _f("this round ran the case's extras (tensor peak, FLOPs, references, checks, "
                                "counts): the first round does, later rounds time only (extras.deferred: "
                                "those the pass after the rounds ran for it)", "round_extras",
                                report=True)


@dataclass
class Shard:
    """Which shard of a split run wrote the record (``run --shard K/N``; ``harness.shard.split``):
    what ``torchmatrix merge`` checks before it joins the shards' records."""

    index: Optional[int] = _f("K: this shard, counted from 1", required=True)
    count: Optional[int] = _f("N: how many shards the cases were split into", required=True)
    cases: Optional[int] = _f("how many cases this shard holds (a complete shard has a record of each)",
                              required=True)
    position: Optional[int] = _f("the case's place in the unsharded case list, from 0 (the merged order)",
                                 required=True)
    scenario_hash: Optional[str] = _f("hash of the scenario file's parsed content (harness.shard.split.scenario_hash)",
                                      required=True)
    split_hash: Optional[str] = _f("hash of the whole split, every case key and its shard: the shards of one "
                                   "split agree on it", required=True)


@dataclass
class MaxBatch:
    """The answer of a largest-batch search (a case with ``batch_size = "max"``;
    ``harness.runner.batch_search``): doubling from ``start``, then bisection, each probe
    (the case built at one batch size, two steps) in a fresh worker."""

    batch_size: Optional[int] = _f("the largest batch size that fitted (0: not even the first probe)",
                                   "max_batch_size", required=True, table="largest batch")
    limited_by: Optional[str] = _f("harness.vocab.MAX_BATCH_LIMITS: what stopped the search above batch_size",
                                   "max_batch_limited_by", required=True, report=True)
    first_unfit: Optional[int] = _f("the smallest batch size probed that did not fit (None when the limit fitted)",
                                    "max_batch_first_unfit", report=True)
    cap_bytes: Optional[int] = _f("the memory a probe may use: [max_batch] cpu_cap_gib / cuda_cap_gib in bytes; "
                                  "None: the device's own memory (its out-of-memory error decides)",
                                  "max_batch_cap_bytes", report=True)
    criterion: Optional[str] = _f("what is held against the cap: the exact peak of live tensor bytes of the probe "
                                  "(CPU, torch.profiler memory events from before the model is built) or the CUDA "
                                  "allocator's peak", "max_batch_criterion", report=True)
    peak_bytes: Optional[int] = _f("the criterion's peak at batch_size", "max_batch_peak_bytes", report=True)
    start: Optional[int] = _f("the first batch size probed ([max_batch] start)")
    limit: Optional[int] = _f("the largest batch size the search may probe ([max_batch] limit)")
    probes: Optional[List[Dict[str, Any]]] = _f("every probe in the order taken: batch_size, status, fits, "
                                                "peak_bytes, rss_peak_bytes (process high-water mark above the "
                                                "worker's baseline), reason, wall_s", "max_batch_probes",
                                                report=True)
    search_s: Optional[float] = _f("wall time of the whole search, workers' start-up included")


@dataclass
class Profile:
    """A torch.profiler trace of the case and its heaviest ops (a scenario's ``[profile]`` table or
    ``run --profile``; ``harness.runner.profile``): steps run after the timed samples, never among them."""

    trace_dir: Optional[str] = _f("the trace folder relative to the record store: profiles/<env_label>/<case "
                                  "folder> (a TensorBoard run of the torch-tb-profiler plugin)", "profile_trace_dir",
                                  required=True, report=True)
    trace_file: Optional[str] = _f("the Chrome trace JSON file in trace_dir (Perfetto, chrome://tracing); None when "
                                   "the profiler failed", "profile_trace_file", report=True)
    schedule: Optional[str] = _f("the profiler's schedule: 'wait=W warmup=U active=A' steps ([profile] table)")
    steps: Optional[int] = _f("steps recorded (active): what the per-step figures divide by", "profile_steps",
                              report=True)
    activities: Optional[List[str]] = _f("what was recorded: ['cpu'] or ['cpu', 'cuda']")
    ops: Optional[List[Dict[str, Any]]] = _f("the heaviest ops (by self CPU time; on a GPU also by self CUDA time), "
                                             "heaviest first: name, calls_per_step, self_cpu_s and self_cuda_s "
                                             "(seconds per step; self_cuda_s None on the CPU), input_shapes (of the "
                                             "op's heaviest shape group)", "profile_ops", report=True)
    self_cpu_total_s: Optional[float] = _f("self CPU seconds per step of every op recorded (the ops' share of it "
                                           "says how much the list covers)", "profile_self_cpu_s", report=True)
    self_cuda_total_s: Optional[float] = _f("self CUDA seconds per step of every op (None on the CPU)",
                                            "profile_self_cuda_s", report=True)
    tool: Optional[str] = _f("the profiler and its torch version")
    error: Optional[str] = _f("why there is no trace or summary, when the profiler failed (the case stays ok)",
                              "profile_error", report=True)
    wall_s: Optional[float] = _f("seconds the profiled steps and the trace's writing took")


@dataclass
class Flops:
    """FLOPs of the case's step, counted on one extra step after the timed samples, and how close the
    step came to the machine's measured matmul peak (``harness.runner.flops``; docs/flops.md)."""

    per_iter: Optional[int] = _f("FLOPs of one step (train: forward + backward, recomputation included, the "
                                 "optimizer's elementwise update not counted; eval: forward): matmuls, "
                                 "convolutions and fused attention, 2 per multiply-add",
                                 column="flops_per_iter", table="FLOPs")
    tool: Optional[str] = _f("the counter: 'torch.utils.flop_counter.FlopCounterMode' where the build has it, "
                             "else 'torch.profiler shapes (torchmatrix)'", "flops_tool", report=True)
    covers: Optional[str] = _f("what the count holds, in words")
    uncounted: Optional[List[str]] = _f("'op xN': ops of a counted kind the profiler counter could not size "
                                        "(a functional convolution no module hook saw)", "flops_uncounted",
                                        report=True)
    achieved_per_s: Optional[float] = _f("per_iter / timing.median_s", column="flops_per_s", table="FLOP/s")
    peak_dtype: Optional[str] = _f("the dtype whose measured matmul peak the case is held against (amp: its "
                                   "low dtype)", "flops_peak_dtype", report=True)
    peak_per_s: Optional[float] = _f("that peak: roofline.matmul[peak_dtype].flops_per_s", "flops_peak_per_s",
                                     report=True)
    peak_pct: Optional[float] = _f("100 x achieved_per_s / peak_per_s", column="flops_peak_pct",
                                   table="% of peak")
    error: Optional[str] = _f("why there is no count, when the counter failed (the case stays ok)",
                              "flops_error", report=True)
    wall_s: Optional[float] = _f("seconds the counted step took, counter included")


@dataclass
class Roofline:
    """The machine's measured matmul peak per dtype, measured once per environment run and device
    (``harness.runner.roofline``), in the workers' thread setting; every record of the run carries it."""

    device: Optional[str] = _f("cpu | cuda", required=True)
    threads: Optional[int] = _f("torch.get_num_threads() while measuring", "roofline_threads", report=True)
    method: Optional[str] = _f("how the peak was measured")
    matmul: Optional[Dict[str, Dict[str, Any]]] = _f("dtype name -> {flops_per_s, n, repeats, seconds}, or "
                                                     "{error, seconds} where this build cannot multiply it",
                                                     "roofline_matmul", report=True)
    wall_s: Optional[float] = _f("seconds the whole measurement took")
    error: Optional[str] = _f("why there is no measurement, when it failed", "roofline_error", report=True)
