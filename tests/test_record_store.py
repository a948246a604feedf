"""The record files: append-only JSONL, tolerant reading, resume keys."""
import json
import math

import pytest

from harness.record import RecordError
from harness.record_store import RecordWriter, held_case_keys, iter_records
from tests.test_record import _rec


def test_append_then_read_back_with_truncated_tail_and_other_schema(tmp_path):
    path = str(tmp_path / "e.jsonl")
    with RecordWriter(path) as w:
        w.append(_rec("a", accuracy={"outputs": {"rel_err": float("inf")}}))
        w.append(_rec("b"))
    with open(path, "a") as fh:
        fh.write(json.dumps(dict(_rec("c"), schema_version=99)) + "\n")
        fh.write('{"schema_version": 1, "case_key": "d", "sta')  # a kill mid-write
    got = list(iter_records(path))
    assert [r["case_key"] for _, r, _ in got if r] == ["a", "b"]
    problems = {n: p for n, _, p in got if p}
    assert "schema_version 99" in problems[3] and "not valid JSON" in problems[4]
    assert held_case_keys(path) == {"a", "b"}


def test_writer_rejects_unknown_status_and_unknown_fields(tmp_path):
    with RecordWriter(str(tmp_path / "e.jsonl")) as w:
        with pytest.raises(ValueError, match="status 'fine' is not one of ok, unsupported"):
            w.append(_rec("a", status="fine"))
        with pytest.raises(RecordError, match=r"timing.median_ms: not a field of Timing"):
            w.append(_rec("a", timing={"median_ms": 1.0}))
    assert (tmp_path / "e.jsonl").read_text() == ""


def test_a_strict_fast_parser_falls_back_for_nan_and_infinity(tmp_path):
    path = str(tmp_path / "e.jsonl")
    with RecordWriter(path) as w:
        w.append(_rec("a", memory={"peak_bytes": float("nan")}))
        w.append(_rec("b", memory={"peak_bytes": 1.0}))

    def strict(text):  # like orjson: NaN/Infinity are not JSON
        def reject(name):
            raise ValueError("no " + name)
        return json.loads(text, parse_constant=reject)

    got = [r for _, r, _ in iter_records(path, loads=strict)]
    assert math.isnan(got[0]["memory"]["peak_bytes"]) and got[1]["memory"]["peak_bytes"] == 1.0
