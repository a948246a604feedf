"""pytest-benchmark JSON files (``--benchmark-json``, ``--benchmark-autosave``, ``--benchmark-save``)
read as records (``harness.record.schema.Record``), so ``report`` and ``gate`` work on saved
pytest-benchmark runs.

How one benchmark entry becomes one record (ours, from ``extra_info["torchmatrix_record"]``; any
other, from what pytest-benchmark knows): docs/pytest-benchmark.md, "pytest-benchmark JSON as
records". A file that is not pytest-benchmark JSON is a ``BenchmarkFileError`` naming it (the
loader turns it into an input error: exit 2); a bad entry is a problem of that entry, the rest
are read. No pandas, no torch.
"""
import datetime
import glob
import hashlib
import json
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple

from harness.record.schema import SCHEMA_VERSION, Case, check, upgrade
from harness.vocab import PYTEST_BENCHMARK_RECORD_KEY as RECORD_KEY

#: The scenario name of records made from plain benchmarks.
SCENARIO = "pytest-benchmark"
#: The fixed axes of a plain benchmark's case (pytest-benchmark has no such axes).
PLAIN_AXES = {"mode": "eval", "batch_size": 1, "precision": "fp32", "checkpoint": "none", "device": "cpu"}
#: ``machine_info`` fields that make two runs' timings comparable (the fingerprint).
MACHINE_FIELDS = ("node", "machine", "system", "python_implementation", "python_version")
NO_SAMPLES = ("pytest-benchmark saved no raw samples (save with --benchmark-save-data, or use --benchmark-json): "
              "%s rounds summarised only")


class BenchmarkFileError(ValueError):
    """Not a pytest-benchmark JSON file; the message names the file and why."""


def is_benchmark_file(path: str) -> bool:
    """True for the files read as pytest-benchmark JSON: ``*.json`` (record files are ``*.jsonl``)."""
    return path.endswith(".json")


def read_benchmark_file(path: str) -> Dict[str, Any]:
    """The parsed file; ``BenchmarkFileError`` when it is not JSON with a ``benchmarks`` list."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BenchmarkFileError("%s: not a pytest-benchmark JSON file (%s)" % (path, exc)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise BenchmarkFileError("%s: not a pytest-benchmark JSON file (expected an object with a \"benchmarks\" "
                                 "list, as --benchmark-json and --benchmark-autosave write)" % path)
    return doc


def _machine(doc: Dict[str, Any]) -> Dict[str, Any]:
    machine = doc.get("machine_info")
    return machine if isinstance(machine, dict) else {}


def env_label(doc: Dict[str, Any]) -> str:
    """``pytest-Linux-CPython-3.13``: pytest-benchmark's machine id, less the bits it does not save."""
    m = _machine(doc)
    version = ".".join(str(m.get("python_version") or "?").split(".")[:2])
    return "pytest-%s-%s-%s" % (m.get("system") or "?", m.get("python_implementation") or "?", version)


def env_of(doc: Dict[str, Any]) -> Dict[str, Any]:
    """The ``env`` part of a plain benchmark's record, from ``machine_info`` and ``commit_info``."""
    m = _machine(doc)
    commit = doc.get("commit_info") if isinstance(doc.get("commit_info"), dict) else {}
    cpu = m.get("cpu") if isinstance(m.get("cpu"), dict) else {}
    brand = cpu.get("brand_raw") or m.get("processor") or None
    count = cpu.get("count")
    named = {f: m.get(f) for f in MACHINE_FIELDS}
    named["cpu"] = brand
    fingerprint = hashlib.sha256(json.dumps(named, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]
    commit_id = commit.get("id")
    return {
        "python": m.get("python_version"), "device": "cpu",
        "device_name": ("%s (%s threads)" % (brand, count) if brand and isinstance(count, int) else brand),
        "cpu": brand, "platform": "-".join(str(m[f]) for f in ("system", "release", "machine") if m.get(f)) or None,
        "git_commit": (commit_id + ("+dirty" if commit.get("dirty") else "")) if isinstance(commit_id, str) else None,
        "fingerprint": "pytest-benchmark:" + fingerprint,
    }


def _case(bench: Dict[str, Any]) -> Dict[str, Any]:
    fullname = bench.get("fullname") or bench.get("name")
    if not isinstance(fullname, str) or not fullname:
        raise ValueError("no fullname or name")
    param = bench.get("param")
    model, size = fullname, "default"
    if isinstance(param, str) and param and fullname.endswith("[%s]" % param):
        model, size = fullname[: -len("[%s]" % param)], param
    return dict(PLAIN_AXES, model=model, size=size)


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _timing(stats: Dict[str, Any]) -> Dict[str, Any]:
    data = stats.get("data")
    samples = [float(x) for x in data] if isinstance(data, list) and data and all(
        _number(x) is not None for x in data) else None
    median = _number(stats.get("median"))
    iterations = stats.get("iterations")
    return {
        "samples_s": samples,
        "iters_per_sample": iterations if isinstance(iterations, int) and not isinstance(iterations, bool) else None,
        "median_s": median, "iqr_s": _number(stats.get("iqr")),
        "throughput_per_s": 1.0 / median if median else None,
        "timed_s": (_number(stats.get("total")) or 0.0) * (iterations if isinstance(iterations, int) else 1) or None,
        "reduced": None if samples else NO_SAMPLES % stats.get("rounds", "its"),
    }


def _utc(text: Any) -> Optional[str]:
    """pytest-benchmark's ``datetime`` (ISO 8601 with an offset) as the records write time: ``...Z``."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def plain_record(bench: Dict[str, Any], doc: Dict[str, Any]) -> Dict[str, Any]:
    """The record of a benchmark entry not written by ``harness.pytest_plugin``."""
    stats = bench.get("stats")
    if not isinstance(stats, dict):
        raise ValueError("no stats object")
    when = _utc(doc.get("datetime"))
    commit = doc.get("commit_info") if isinstance(doc.get("commit_info"), dict) else {}
    case = _case(bench)
    return {
        "schema_version": SCHEMA_VERSION, "status": "ok", "case": case, "case_key": Case(**case).key,
        "run_id": "pytest-benchmark-%s-%s" % ((when or "?").replace("-", "").replace(":", "").rstrip("Z"),
                                              str(commit.get("id") or "?")[:12]),
        "time_utc": when, "scenario": SCENARIO, "env_label": env_label(doc), "env": env_of(doc),
        "reason": None, "timing": _timing(stats),
    }


def to_record(bench: Any, doc: Dict[str, Any]) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """``(record, None)`` for a benchmark entry, or ``(None, problem)``."""
    if not isinstance(bench, dict):
        return None, "not a benchmark object"
    extra = bench.get("extra_info")
    saved = extra.get(RECORD_KEY) if isinstance(extra, dict) else None
    if saved is not None:
        problem = check(saved)
        return (None, "%s: %s" % (RECORD_KEY, problem)) if problem else (upgrade(saved), None)
    try:
        record = plain_record(bench, doc)
    except ValueError as exc:
        return None, "benchmark %r: %s" % (bench.get("fullname") or bench.get("name"), exc)
    problem = check(record)
    return (None, problem) if problem else (record, None)


def iter_benchmark_records(path: str, loads: Any = None) -> Iterator[Tuple[int, Optional[Dict], Optional[str]]]:
    """``(n, record, problem)`` for the n-th benchmark of ``path`` (from 1), as
    ``harness.record.store.iter_records`` yields lines; ``BenchmarkFileError`` for a bad file.
    ``loads`` is accepted for that signature and unused (one JSON document)."""
    doc = read_benchmark_file(path)
    for n, bench in enumerate(doc["benchmarks"], 1):
        record, problem = to_record(bench, doc)
        yield n, record, problem


def storage_files(folder: str) -> List[str]:
    """The runs pytest-benchmark saved in ``folder`` (``--benchmark-autosave``: ``NNNN_<commit>_<time>.json``
    in ``.benchmarks/<machine id>/``), sorted."""
    return sorted(glob.glob(os.path.join(folder, "[0-9][0-9][0-9][0-9]_*.json")))
