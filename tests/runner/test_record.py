"""The record store: append-only JSONL, tolerant reading, resume keys."""
import json
import math

import pytest

from harness import SCHEMA_VERSION
from harness.record import RecordWriter, held_case_keys, iter_records


def _rec(key, **kw):
    rec = {"schema_version": SCHEMA_VERSION, "case_key": key, "status": "ok"}
    rec.update(kw)
    return rec


def test_append_then_read_back_with_truncated_tail_and_other_schema(tmp_path):
    path = str(tmp_path / "e.jsonl")
    with RecordWriter(path) as w:
        w.append(_rec("a", rel_err=float("inf")))
        w.append(_rec("b"))
    with open(path, "a") as fh:
        fh.write(json.dumps(dict(_rec("c"), schema_version=99)) + "\n")
        fh.write('{"schema_version": 1, "case_key": "d", "sta')  # a kill mid-write
    got = list(iter_records(path))
    assert [r["case_key"] for _, r, _ in got if r] == ["a", "b"]
    problems = {n: p for n, _, p in got if p}
    assert "schema_version 99" in problems[3] and "not valid JSON" in problems[4]
    assert held_case_keys(path) == {"a", "b"}


def test_writer_rejects_unknown_status(tmp_path):
    with RecordWriter(str(tmp_path / "e.jsonl")) as w, pytest.raises(ValueError, match="status must be one of"):
        w.append(_rec("a", status="fine"))


def test_a_strict_fast_parser_falls_back_for_nan_and_infinity(tmp_path):
    path = str(tmp_path / "e.jsonl")
    with RecordWriter(path) as w:
        w.append(_rec("a", rel_err=float("nan")))
        w.append(_rec("b", rel_err=1.0))

    def strict(text):  # like orjson: NaN/Infinity are not JSON
        def reject(name):
            raise ValueError("no " + name)
        return json.loads(text, parse_constant=reject)

    got = [r for _, r, _ in iter_records(path, loads=strict)]
    assert math.isnan(got[0]["rel_err"]) and got[1]["rel_err"] == 1.0
