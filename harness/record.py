"""The result record: the only thing that passes from the runner to the analysis side.

One JSON object per case, one line each, appended to ``<out>/<env_label>.jsonl``. The
schema is the dataclasses below: every field once, with its type, its meaning, and
(``column``) the name of its column in the flat table the analysis side reads. The
runner builds a ``Record`` and the writer serialises it; every reader flattens with
``flatten``, which is derived from the same fields. Adding a field is one edit here
(plus the code that measures it, and its tests).

The JSONL files themselves (append, read, resume) are ``harness.record_store``.

Standard library only: the runner imports this on Python 3.9 + PyTorch 1.10.
"""
import dataclasses
import functools
import json
import typing
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from harness.vocab import CASE_AXES, STATUSES

#: Version of the record written now. Bump on an incompatible change, add a line to
#: ``SCHEMA_HISTORY`` and an entry to ``_UPGRADES`` that lifts the previous version.
SCHEMA_VERSION = 2

#: What each version changed (as pyperf keeps its JSON format history).
SCHEMA_HISTORY = (
    (1, "2026-11: first version: case, env, status, timing (raw samples), memory, accuracy (fp32 reference, "
        "output probe), task; the speed probe's samples in timing; later, without a version change (new "
        "optional parts only): memory.tensor_peak_bytes, instructions"),
    (2, "2026-11: accuracy calibrated against a float64 reference: accuracy.rule/reference/limit/ratio/worst, "
        "per-side err64/fp32_err64/ratio/expected_err/worst/sketch/ref_missing, output sketches; "
        "accuracy.tolerance is None under the calibrated rule. Lifting 1 marks accuracy.rule "
        "'fixed tolerance', which is what version 1 judged by"),
)

#: ``version -> function`` turning a record of that version into one of ``version + 1``.
def _lift_1(obj: Dict) -> Dict:
    obj = dict(obj, schema_version=2)
    if isinstance(obj.get("accuracy"), dict) and obj["accuracy"].get("rule") is None:
        obj["accuracy"] = dict(obj["accuracy"], rule="fixed tolerance")
    return obj


_UPGRADES: Dict[int, Callable[[Dict], Dict]] = {1: _lift_1}


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
    batch_size: int = _axis("samples per step")
    size: Any = _axis("the model's size axis: int or 'HxW'")
    precision: str = _axis("harness.vocab.PRECISIONS")
    checkpoint: str = _axis("harness.vocab.CHECKPOINTS")
    device: str = _axis("cpu | cuda")
    channels_last: bool = _axis("channels_last memory format", default=False)
    compile: bool = _axis("torch.compile", default=False)

    @property
    def key(self) -> str:
        """Stable text key: the same case in any environment or commit has the same key."""
        parts = ["model=%s" % self.model, "mode=%s" % self.mode, "batch=%d" % self.batch_size,
                 "size=%s" % (self.size,), "precision=%s" % self.precision,
                 "checkpoint=%s" % self.checkpoint, "device=%s" % self.device]
        # Optional axes join the key only when set, so adding them changed no old key.
        if self.channels_last:
            parts.append("channels_last=1")
        if self.compile:
            parts.append("compile=1")
        return ";".join(parts)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


if tuple(f.name for f in dataclasses.fields(Case)) != CASE_AXES:  # one order for keys, tables and the scenario
    raise ImportError("harness.record.Case fields differ from harness.vocab.CASE_AXES")


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


@dataclass
class Task:
    """A short fixed-seed training run on the model's synthetic task (when the scenario asks)."""

    metric: Optional[str] = _f("the task's metric name", "task_metric", report=True)
    higher_is_better: Optional[bool] = _f("direction of the metric", "task_higher_is_better", report=True)
    before: Optional[float] = _f("metric before training", "task_before", report=True)
    after: Optional[float] = _f("metric after training", "task_after", report=True)
    steps: Optional[int] = _f("training steps")
    error: Optional[str] = _f("why the task run failed, when it did")


# --- the record -----------------------------------------------------------------------

@dataclass
class Record:
    """One case in one environment. ``status`` is one of ``harness.vocab.STATUSES``;
    ``timing``, ``memory``, ``accuracy`` are set for ``ok`` only."""

    schema_version: int = _f("version of this schema (SCHEMA_VERSION)", required=True)
    status: str = _f("harness.vocab.STATUSES", "status", required=True, report=True)
    case: Case = _f("the case's axes", required=True)
    case_key: Optional[str] = _f("stable text key of the case (Case.key)", "case_key", report=True)
    run_id: Optional[str] = _f("one run of one environment", "run_id", report=True)
    time_utc: Optional[str] = _f("when the record was written, ISO 8601", "time_utc", report=True)
    scenario: Optional[str] = _f("scenario name", "scenario", report=True)
    env_label: Optional[str] = _f("environment label (torch-1.10, ...)", "env_label", report=True)
    env: Optional[Env] = _f("the environment")
    reason: Optional[str] = _f("why, for any status but ok", "reason", report=True)
    traceback: Optional[str] = _f("short traceback, for error")
    duration_s: Optional[float] = _f("wall time of the whole case in the worker", "duration_s")
    wall_s: Optional[float] = _f("wall time of the case as the manager saw it (the round trip to the worker; "
                                 "a fresh worker's start-up for the first case and after a crash or timeout)")
    overhead_s: Optional[float] = _f("duration_s less warm-up and timed samples")
    timing: Optional[Timing] = _f("wall-clock figures (ok)")
    memory: Optional[Memory] = _f("peak memory (ok)")
    accuracy: Optional[Accuracy] = _f("numerical fidelity (ok)")
    task: Optional[Task] = _f("task accuracy (when the scenario asks)")
    instructions: Optional[Instructions] = _f("instruction counts (when the scenario or --instructions asks; "
                                               "ok cases only)")

    def to_dict(self) -> Dict[str, Any]:
        """The JSON object written for this record (absent parts as null)."""
        return asdict(self)

    def to_json(self) -> str:
        """One line of JSON (NaN and Infinity as ``json`` writes them)."""
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=True)

    @classmethod
    def from_dict(cls, obj: Dict[str, Any], strict: bool = False) -> "Record":
        """A record from its JSON object; ``RecordError`` names the first bad field.

        ``strict`` (the runner's writer) also refuses keys the schema does not know, so
        a misspelt field fails a test instead of vanishing from every reader.
        """
        problem = check(obj, strict=strict)
        if problem:
            raise RecordError(problem)
        return _build(cls, upgrade(obj))


class RecordError(ValueError):
    """A JSON object that is not a record of this schema; the message says which field and why."""


# --- derived from the dataclasses: types, columns, checks ------------------------------

@functools.lru_cache(maxsize=None)
def _hints(cls: Any) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap(tp: Any) -> Any:
    """``Optional[X]`` -> ``X``."""
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else Any
    return tp


_KIND_NAMES = {"str": "a string", "num": "a number", "int": "an integer", "bool": "true or false",
               "list": "a list", "dict": "an object", "any": "a value"}


def _kind(tp: Any) -> str:
    tp = _unwrap(tp)
    if dataclasses.is_dataclass(tp):
        return "dict"
    origin = typing.get_origin(tp) or tp
    return {str: "str", float: "num", int: "int", bool: "bool", list: "list", dict: "dict"}.get(origin, "any")


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "num":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "dict":
        return isinstance(value, dict)
    return True


@dataclass(frozen=True)
class Column:
    """A column of the flat table: its name, where it sits in the record, its meaning."""

    name: str
    path: Tuple[str, ...]
    kind: str
    doc: str
    report: bool
    table: Optional[str] = None


def _columns(cls: Any, path: Tuple[str, ...] = (), prefix: str = "") -> List[Column]:
    cols: List[Column] = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = _unwrap(hints[f.name])
        if dataclasses.is_dataclass(tp):
            cols.extend(_columns(tp, path + (f.name,), prefix + f.metadata.get("prefix", "")))
        elif f.metadata.get("column"):
            name = f.name if f.metadata["column"] is True else f.metadata["column"]
            cols.append(Column(prefix + name, path + (f.name,), _kind(tp),
                               f.metadata.get("doc", ""), bool(f.metadata.get("report")), f.metadata.get("table")))
    return cols


#: Every column ``flatten`` makes, in order; ``source`` and ``line`` are added by the loader.
COLUMNS: Tuple[Column, ...] = tuple(_columns(Record)) + (
    Column("source", (), "str", "the record file", True),
    Column("line", (), "int", "line number in the record file", True),
)
COLUMN_NAMES: Tuple[str, ...] = tuple(c.name for c in COLUMNS)
#: Columns the HTML report reads; the rest (raw samples, ...) are the gate's business.
REPORT_COLUMNS: Tuple[str, ...] = tuple(c.name for c in COLUMNS if c.report)
#: Columns shown as they are in the report's table of every case (fields declared with ``table=``).
TABLE_COLUMNS: Tuple[Column, ...] = tuple(c for c in COLUMNS if c.table)

# The flattening plan, grouped by the record part each column comes from.
_PLAN: Dict[Tuple[str, ...], List[Tuple[str, str, str]]] = {}
for _c in COLUMNS[:-2]:
    _PLAN.setdefault(_c.path[:-1], []).append((_c.name, _c.path[-1], _c.kind))


_PartKinds = Dict[Tuple[str, ...], Tuple[str, Dict[str, str], Tuple[str, ...]]]


def _part_kinds(cls: Any, path: Tuple[str, ...] = ()) -> _PartKinds:
    """``path -> (class name, {field: kind}, required fields)`` for every part of the record."""
    hints = _hints(cls)
    fields = {f.name: _kind(hints[f.name]) for f in dataclasses.fields(cls)}
    required = tuple(f.name for f in dataclasses.fields(cls)
                     if f.metadata.get("required") or (f.default is dataclasses.MISSING and
                                                       f.default_factory is dataclasses.MISSING))
    out = {path: (cls.__name__, fields, required)}
    for f in dataclasses.fields(cls):
        tp = _unwrap(hints[f.name])
        if dataclasses.is_dataclass(tp):
            out.update(_part_kinds(tp, path + (f.name,)))
    return out


_PARTS_KINDS = _part_kinds(Record)


def upgrade(obj: Dict[str, Any]) -> Dict[str, Any]:
    """``obj`` lifted to ``SCHEMA_VERSION`` through ``_UPGRADES`` (unchanged when current)."""
    version = obj.get("schema_version")
    while isinstance(version, int) and version < SCHEMA_VERSION and version in _UPGRADES:
        obj = _UPGRADES[version](obj)
        version = obj["schema_version"]
    return obj


def readable_version(version: Any) -> bool:
    """True for this version and every older one ``upgrade`` can lift."""
    if version == SCHEMA_VERSION:
        return True
    while isinstance(version, int) and not isinstance(version, bool) and version in _UPGRADES:
        version += 1
        if version == SCHEMA_VERSION:
            return True
    return False


def check(obj: Any, strict: bool = False) -> Optional[str]:
    """None when ``obj`` is a record of a readable version, else what is wrong with it."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    if not readable_version(obj.get("schema_version")):
        return "schema_version %r, this version reads %d%s" % (
            obj.get("schema_version"), SCHEMA_VERSION, "".join(" and %d" % v for v in sorted(_UPGRADES)))
    obj = upgrade(obj)
    for path, (name, kinds, required) in _PARTS_KINDS.items():
        part: Any = obj
        for key in path:
            part = part.get(key) if isinstance(part, dict) else None
        where = ".".join(path)
        if part is None:
            continue
        if not isinstance(part, dict):
            return "%s: expected an object, got %s" % (where, type(part).__name__)
        for key in required:
            if part.get(key) is None:
                return "%s: missing" % (where + "." + key if where else key)
        for key, value in part.items():
            kind = kinds.get(key)
            if kind is None:
                if strict:
                    return "%s: not a field of %s" % (where + "." + key if where else key, name)
                continue
            if value is not None and not _is_kind(value, kind):
                return "%s: expected %s, got %s" % (where + "." + key if where else key, _KIND_NAMES[kind],
                                                    type(value).__name__)
    if obj["status"] not in STATUSES:
        return "status %r is not one of %s" % (obj["status"], ", ".join(STATUSES))
    return None


def flatten(obj: Dict[str, Any]) -> Dict[str, Any]:
    """The flat row of a checked record (``check`` first): one value per ``COLUMNS`` name
    but ``source`` and ``line``. A missing case key is made from the case."""
    obj = upgrade(obj)
    row: Dict[str, Any] = {}
    for path, entries in _PLAN.items():
        part: Any = obj
        for key in path:
            part = part.get(key) if part else None
        if part:
            for column, key, _ in entries:
                row[column] = part.get(key)
        else:
            for column, _, _ in entries:
                row[column] = None
    if row.get("case_key") is None and isinstance(obj.get("case"), dict):
        try:
            row["case_key"] = _build(Case, obj["case"]).key
        except (TypeError, ValueError):
            pass
    return row


def _build(cls: Any, obj: Dict[str, Any]) -> Any:
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in obj:
            continue
        value = obj[f.name]
        tp = _unwrap(hints[f.name])
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            value = _build(tp, value)
        kwargs[f.name] = value
    return cls(**kwargs)


def field_docs() -> List[Tuple[str, str]]:
    """``(dotted field, doc)`` for every field of the record, for docs and ``--help``."""
    out: List[Tuple[str, str]] = []

    def walk(cls: Any, path: str) -> None:
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            name = path + f.name
            out.append((name, f.metadata.get("doc", "")))
            tp = _unwrap(hints[f.name])
            if dataclasses.is_dataclass(tp):
                walk(tp, name + ".")

    walk(Record, "")
    return out
