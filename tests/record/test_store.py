"""The record files: append-only JSONL, tolerant reading, resume keys."""
import json
import math
import os
import subprocess
import sys

import pytest

from harness.record.schema import RecordError
from harness.record.store import (
    ExtrasWriter,
    OutputLock,
    OutputLocked,
    RecordWriter,
    extras_path,
    held_case_keys,
    iter_records,
    read_records,
    rotate_aside,
)
from tests.record.test_schema import _rec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def test_the_extras_file_completes_the_first_round_records_that_deferred_them_and_no_other(tmp_path):
    path = str(tmp_path / "e.jsonl")
    deferred = {"seconds": {"references": 0.01}, "failed": {}, "deferred": ["flops", "tensor_peak"]}
    first = dict(round={"index": 1, "of": 2, "variants": ["e", "f"], "paired": True},
                 memory={"peak_bytes": 4096}, extras=deferred)
    with RecordWriter(path) as w:
        w.append(_rec("a", **first))
        w.append(_rec("b", **first))
        w.append(_rec("a", round={"index": 2, "of": 2, "variants": ["e", "f"], "paired": True},
                      memory={"peak_bytes": 4096}))
        w.append(_rec("c", memory={"peak_bytes": 4096}, extras={"seconds": {}, "failed": {}}))  # ran them inline
    with ExtrasWriter(path) as w:
        for key in ("a", "c"):
            w.append({"case_key": key, "round": 1, "flops": {"per_iter": 1000, "tool": "t"},
                      "memory": {"tensor_peak_bytes": 2048, "tensor_peak_method": "m"},
                      "extras": {"seconds": {"flops": 0.5, "tensor_peak": 0.25}, "failed": {}}})
        w.append({"case_key": "b", "round": 1, "flops": None, "memory": {},
                  "extras": {"seconds": {"flops": 6.0}, "failed": {"flops": "overran its 6 s"}}})
    with open(extras_path(path), "a") as fh:
        fh.write('{"case_key": "a", "rou')  # a kill mid-write: that entry is made again on --resume
    got = {(r["case_key"], (r.get("round") or {}).get("index", 1)): r for r in read_records(path)}
    a = got[("a", 1)]
    assert a["flops"]["per_iter"] == 1000 and a["flops"]["tool"] == "t"
    assert (a["memory"]["peak_bytes"], a["memory"]["tensor_peak_bytes"], a["memory"]["tensor_peak_method"]) == (
        4096, 2048, "m")
    assert a["extras"] == {"seconds": {"references": 0.01, "flops": 0.5, "tensor_peak": 0.25}, "failed": {},
                           "deferred": ["flops", "tensor_peak"]}
    b = got[("b", 1)]
    assert b["flops"] is None and b["memory"].get("tensor_peak_bytes") is None
    assert b["extras"]["failed"] == {"flops": "overran its 6 s"} and b["status"] == "ok"
    # a later round and a record that ran its extras inline take nothing from the file
    assert got[("a", 2)].get("flops") is None and got[("c", 1)].get("flops") is None
    moved = rotate_aside(path)  # the extras file moves with its records
    assert not os.path.exists(extras_path(path)) and os.path.exists(extras_path(moved))


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


def test_an_unterminated_last_line_is_set_aside_before_appending(tmp_path):
    path = str(tmp_path / "e.jsonl")
    with RecordWriter(path) as w:
        w.append(_rec("a"))
    with open(path, "a") as fh:
        fh.write('{"schema_version": 1, "case_key": "b", "sta')  # a kill (or a full disk) mid-write
    with RecordWriter(path) as w:
        assert w.set_aside == (len('{"schema_version": 1, "case_key": "b", "sta'), path + ".partial")
        w.append(_rec("c"))
    got = list(iter_records(path))
    assert [(n, r["case_key"], p) for n, r, p in got] == [(1, "a", None), (2, "c", None)]
    assert open(path + ".partial").read() == '{"schema_version": 1, "case_key": "b", "sta\n'
    with RecordWriter(path) as w:  # a clean file is left alone
        assert w.set_aside is None


def test_a_line_with_an_invalid_utf8_byte_is_a_problem_and_the_rest_is_read(tmp_path):
    path = tmp_path / "e.jsonl"
    bad = json.dumps(_rec("bX")).encode().replace(b"bX", b"b\xe9")  # a Latin-1 byte in a UTF-8 file
    lines = [json.dumps(_rec("a")).encode(), bad, json.dumps(_rec("c")).encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    got = list(iter_records(str(path)))
    assert [r["case_key"] for _, r, _ in got if r] == ["a", "c"]
    assert "not UTF-8" in got[1][2] and got[1][0] == 2


def test_the_output_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    path = str(tmp_path / "e.jsonl")
    first = OutputLock(path)
    first.acquire()
    try:
        with pytest.raises(OutputLocked, match=r"e.jsonl is being written by another run \(pid %d on " % os.getpid()):
            OutputLock(path).acquire()
    finally:
        first.release()
    with OutputLock(path):  # free again
        pass


def test_a_lock_left_by_a_killed_run_is_stale_and_taken_over(tmp_path):
    path = str(tmp_path / "e.jsonl")
    code = ("import os, sys; from harness.record.store import OutputLock; OutputLock(sys.argv[1]).acquire(); "
            "os.kill(os.getpid(), 9)")
    proc = subprocess.run([sys.executable, "-c", code, path], env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == -9 and "pid" in open(path + ".lock").read()  # its lock file is left behind
    with OutputLock(path):
        pass
