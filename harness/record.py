"""The result record: the only thing that passes from the runner to the analysis side.

One JSON object per case, one line each, appended to ``<out>/<env_label>.jsonl``:

``schema_version`` (int), ``run_id``, ``time_utc`` (ISO 8601), ``scenario`` (name),
``env_label`` (``torch-1.10``...), ``case_key`` (stable text, see ``harness.scenario``),
``case`` (the axes: model, mode, batch_size, size, precision, checkpoint, device,
channels_last, compile), ``env`` (see ``harness.envinfo``: versions, device, backend
flags and ``fingerprint``), ``status`` (one of ``STATUSES``), ``reason`` (why, for any
status but ok; None for ok), ``duration_s`` (wall time of the whole case), and for
``ok``:

* ``timing``: ``samples_s`` (every sample: mean seconds per iteration over
  ``iters_per_sample`` iterations), ``iters_per_sample``, ``warmup_iters``,
  ``warmup_s``, ``median_s``, ``iqr_s``, ``throughput_per_s`` (samples of the batch
  per second), ``reduced`` (None, or why fewer samples than asked were taken);
* ``memory``: ``peak_bytes`` (CUDA allocator peak, or process high-water mark above
  the pre-case baseline on CPU), ``method`` (``cuda_allocator`` | ``linux_vmhwm`` |
  ``ru_maxrss`` | ``none``), ``cuda_reserved_peak_bytes`` (CUDA only);
* ``accuracy``: ``outputs`` and ``grads`` (train mode), each ``{max_abs_err,
  rel_err, cosine}``; ``tolerance`` (relative error allowed for this precision),
  ``passed`` (bool), ``failures`` (which checks failed), ``output_probe`` (32
  floats of the fp32 reference output at fixed positions) and ``output_norm``: the
  same fp32 case gives the same probe in every environment, so drift across PyTorch
  versions can be read from it;
* ``task`` (None unless the scenario asks): ``metric``, ``higher_is_better``,
  ``before``, ``after``, ``steps``.

Writing is append-only, flushed and fsynced per line: a crash or kill loses at most
the case in flight. Reading tolerates a truncated last line.
"""
import json
import os
from typing import Dict, Iterator, List, Optional, Tuple

from harness import SCHEMA_VERSION

STATUSES = ("ok", "unsupported", "error", "crashed", "timeout", "oom", "skipped")


class RecordWriter:
    """Append records to a JSONL file, one fsynced line per record."""

    def __init__(self, path: str):
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")

    def append(self, record: Dict) -> None:
        if record.get("status") not in STATUSES:
            raise ValueError("record status must be one of %s, got %r" % (STATUSES, record.get("status")))
        self._fh.write(json.dumps(record, sort_keys=True, allow_nan=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def iter_records(path: str, loads=None) -> Iterator[Tuple[int, Optional[Dict], Optional[str]]]:
    """Yield ``(line_number, record, problem)`` for each non-blank line of ``path``.

    ``record`` is None and ``problem`` says why when a line is not a JSON object of
    this schema version (a truncated last line after a kill, say). ``loads`` is a
    faster parser to try first (the analysis side passes orjson's); lines it refuses,
    such as the NaN/Infinity that ``json`` writes, fall back to ``json.loads``.
    """
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = None
                if loads is not None:
                    try:
                        rec = loads(line)
                    except ValueError:
                        rec = None
                if rec is None:
                    rec = json.loads(line)
            except ValueError as exc:
                yield lineno, None, "not valid JSON (%s)" % exc
                continue
            if not isinstance(rec, dict):
                yield lineno, None, "not a JSON object"
            elif rec.get("schema_version") != SCHEMA_VERSION:
                yield lineno, None, "schema_version %r, this version reads %d" % (
                    rec.get("schema_version"), SCHEMA_VERSION)
            else:
                yield lineno, rec, None


def read_records(path: str) -> List[Dict]:
    """Every good record of ``path`` (bad lines are skipped; see ``iter_records``)."""
    return [rec for _, rec, _ in iter_records(path) if rec is not None]


def held_case_keys(path: str) -> set:
    """Case keys ``path`` already holds a record for (what ``--resume`` skips)."""
    if not os.path.exists(path):
        return set()
    return {rec["case_key"] for rec in read_records(path) if "case_key" in rec}
