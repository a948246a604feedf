"""The record schema: typed fields, checks, the flat columns, version upgrades, the case key."""
import dataclasses
import json

import pytest

from harness.record import schema as record
from harness.record.schema import (
    COLUMN_NAMES,
    REPORT_COLUMNS,
    SCHEMA_VERSION,
    Case,
    Record,
    check,
    flatten,
)
from harness.vocab import CASE_AXES

CASE = {"model": "m", "mode": "train", "batch_size": 2, "size": 16, "precision": "fp32", "checkpoint": "none",
        "device": "cpu", "channels_last": False, "compile": False, "sdpa_backend": "default",
        "python_optimized": False}


def _rec(key, **kw):
    rec = {"schema_version": SCHEMA_VERSION, "case_key": key, "status": "ok", "case": dict(CASE),
           "env_label": "torch-x", "scenario": "s"}
    rec.update(kw)
    return rec


@pytest.mark.parametrize("bad, problem", [
    ("[1, 2]", "not a JSON object"),
    ('{"schema_version": %d}' % SCHEMA_VERSION, "status: missing"),
    (json.dumps(_rec("k", case="m")), "case: expected an object, got str"),
    (json.dumps(_rec("k", timing=[1.0])), "timing: expected an object, got list"),
    (json.dumps(_rec("k", env=3)), "env: expected an object, got int"),
    (json.dumps(_rec("k", status="weird")), "status 'weird' is not one of"),
    (json.dumps(_rec("k", case=dict(CASE, batch_size="2"))), "case.batch_size: expected an integer or 'max', got str"),
    (json.dumps(_rec("k", case={"model": "m"})), "case.mode: missing"),
    (json.dumps(_rec("k", memory={"peak_bytes": True})), "memory.peak_bytes: expected a number, got bool"),
])
def test_a_bad_record_is_a_problem_naming_the_field(bad, problem):
    got = check(json.loads(bad))
    assert got is not None and problem in got


def test_round_trip_through_the_dataclasses():
    obj = _rec("k", timing={"samples_s": [0.1, 0.2], "median_s": 0.15}, memory={"peak_bytes": 1024},
               accuracy={"outputs": {"rel_err": 1e-6, "cosine": 1.0}, "passed": True, "output_probe": [1.0]},
               env={"torch": "2.1.2", "fingerprint": "abc"})
    rec = Record.from_dict(obj)
    assert isinstance(rec.case, Case) and rec.timing.median_s == 0.15 and rec.accuracy.outputs.rel_err == 1e-6
    back = json.loads(rec.to_json())
    assert back["timing"]["samples_s"] == [0.1, 0.2] and back["case"] == CASE and back["task"] is None
    assert Record.from_dict(back) == rec


def test_flatten_names_every_column_from_the_schema():
    obj = _rec("k", timing={"median_s": 0.5, "reduced": "budget"}, memory={"peak_bytes": 7, "method": "x"},
               accuracy={"outputs": {"rel_err": 0.1}, "grads": {"rel_err": 0.2}, "passed": False},
               env={"fingerprint": "f", "torch": "1.10.2"}, task={"metric": "psnr_db", "after": 30.0})
    row = flatten(obj)
    assert set(row) == set(COLUMN_NAMES) - {"source", "line"}
    assert row["median_s"] == 0.5 and row["timing_reduced"] == "budget" and row["peak_mem_bytes"] == 7
    assert row["out_rel_err"] == 0.1 and row["grad_rel_err"] == 0.2 and row["acc_passed"] is False
    assert row["env_fingerprint"] == "f" and row["torch"] == "1.10.2" and row["task_after"] == 30.0
    assert all(row[axis] == CASE[axis] for axis in CASE_AXES)
    # a record of another writer without a case key gets the runner's key
    no_key = dict(obj)
    del no_key["case_key"]
    assert flatten(no_key)["case_key"] == Case(**CASE).key


def test_columns_are_unique_and_the_report_columns_among_them():
    assert len(COLUMN_NAMES) == len(set(COLUMN_NAMES))
    assert set(REPORT_COLUMNS) <= set(COLUMN_NAMES)
    assert {"median_s", "peak_mem_bytes", "status", "model", "env_fingerprint"} <= set(REPORT_COLUMNS)
    assert "samples_s" not in REPORT_COLUMNS  # the raw samples are the gate's business


def test_every_field_is_documented():
    docs = record.field_docs()
    assert ("timing.median_s", "median of samples_s") in docs
    assert all(doc for name, doc in docs), [name for name, doc in docs if not doc]


def test_older_versions_are_lifted_by_their_upgrade(monkeypatch):
    # The mechanism a schema bump uses: version N-1 records are read through _UPGRADES[N-1].
    def lift(obj):
        obj = dict(obj, schema_version=SCHEMA_VERSION)
        obj["status"] = {"fine": "ok"}.get(obj["status"], obj["status"])
        return obj

    monkeypatch.setitem(record._UPGRADES, SCHEMA_VERSION - 1, lift)
    old = _rec("k", schema_version=SCHEMA_VERSION - 1, status="fine")
    assert check(old) is None and flatten(old)["status"] == "ok"
    assert check(dict(old, schema_version=SCHEMA_VERSION - 2)) is not None


def test_the_case_key_is_stable_text():
    assert Case(**CASE).key == ("model=m;mode=train;batch=2;size=16;precision=fp32;checkpoint=none;device=cpu")
    assert Case(**dict(CASE, channels_last=True, compile=True)).key.endswith(";channels_last=1;compile=1")
    assert tuple(f.name for f in dataclasses.fields(Case)) == CASE_AXES


def test_a_case_written_before_the_newer_axes_reads_with_their_defaults_and_the_same_key():
    old_case = {k: v for k, v in CASE.items() if k not in ("sdpa_backend", "python_optimized")}
    rec = Record.from_dict(_rec("k", case=old_case))
    assert rec.case.sdpa_backend == "default" and rec.case.python_optimized is False
    assert rec.case.key == Case(**old_case).key
    assert "sdpa" not in rec.case.key and "python_O" not in rec.case.key
    flash_O = Case(**dict(CASE, sdpa_backend="flash", python_optimized=True))
    assert flash_O.key.endswith(";sdpa=flash;python_O=1")
