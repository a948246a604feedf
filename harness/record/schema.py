"""The result record: the only thing that passes from the runner to the analysis side.

One JSON object per case, one line each, appended to ``<out>/<env_label>.jsonl``. The
schema is ``Record`` below and its parts' dataclasses (``harness.record.parts``): every
field once, with its type, its meaning, and (``column``) the name of its column in the
flat table the analysis side reads. The runner builds a ``Record`` and the writer
serialises it; every reader flattens with ``flatten``, which is derived from the same
fields. Adding a field is one edit there (plus the code that measures it, and its tests).

The JSONL files themselves (append, read, resume) are ``harness.record.store``.

Standard library only: the runner imports this on Python 3.9 + PyTorch 1.10.
"""
import dataclasses
import functools
import json
import typing
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from harness.record.parts import (
    Accuracy,
    Case,
    Checks,
    Env,
    Extras,
    Flops,
    Instructions,
    MaxBatch,
    Memory,
    Profile,
    Roofline,
    Round,
    Shard,
    Task,
    Timing,
    _f,
)
from harness.vocab import MAX_BATCH, STATUSES

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
        "'fixed tolerance', which is what version 1 judged by; later, without a version change (new optional "
        "parts only): shard; max_batch (and a case's batch_size 'max'); profile; flops, roofline; extras, "
        "accuracy.reference_shared; round; accuracy.outputs/grads.zeroed; extras.deferred (with the extras "
        "file, <label>.extras)"),
)

#: ``version -> function`` turning a record of that version into one of ``version + 1``.
def _lift_1(obj: Dict) -> Dict:
    obj = dict(obj, schema_version=2)
    if isinstance(obj.get("accuracy"), dict) and obj["accuracy"].get("rule") is None:
        obj["accuracy"] = dict(obj["accuracy"], rule="fixed tolerance")
    return obj


_UPGRADES: Dict[int, Callable[[Dict], Dict]] = {1: _lift_1}


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
    optimizer: Optional[str] = _f("the train step's optimizer, clipping and loss scaling (train cases)",
                                  "optimizer", report=True)
    checks: Optional[Checks] = _f("behaviour checks (ok cases)")
    extras: Optional[Extras] = _f("what ran after the timed samples, how long each took and which failed (ok cases)")
    instructions: Optional[Instructions] = _f("instruction counts (when the scenario or --instructions asks; "
                                               "ok cases only)")
    shard: Optional[Shard] = _f("which shard of a split run wrote the record (run --shard K/N); None unsharded")
    round: Optional[Round] = _f("which round of an interleaved run wrote the record (harness.engine); None: "
                                "a record from before rounds (one round)")
    max_batch: Optional[MaxBatch] = _f("the largest batch that fits (a case with batch_size 'max'); None otherwise")
    profile: Optional[Profile] = _f("a torch.profiler trace and the heaviest ops (cases a scenario's [profile] or "
                                    "run --profile names; ok cases only)")
    flops: Optional[Flops] = _f("FLOPs per step, achieved FLOP/s and the share of the measured peak ([measure] "
                                "flops; ok cases only)")
    roofline: Optional[Roofline] = _f("the matmul peak per dtype measured once per environment run and device "
                                      "([measure] roofline)")

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
    batch = obj["case"].get("batch_size") if isinstance(obj.get("case"), dict) else None
    if batch is not None and batch != MAX_BATCH and not _is_kind(batch, "int"):
        return "case.batch_size: expected an integer or %r, got %s" % (MAX_BATCH, type(batch).__name__)
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
