"""``report.datasets``: which rows and columns the page's tables read, in which order."""
import json

import pandas as pd

from harness.analysis.load import load_records
from harness.analysis.report import datasets
from harness.analysis.report.compare import verdicts_frame
from harness.analysis.report.frame import prepare_frame
from tests.analysis.test_report_support import record, write_jsonl


def _decode(text, row, key):
    data = json.loads(text)
    col = next(c for c in data["columns"] if c["key"] == key)
    value = data["refs"]["case"][key][data["refidx"]["case"][row]] if col.get("ref") else data["data"][key][row]
    return data["dicts"][key][value] if col["kind"] in ("cat", "text") and value is not None and value >= 0 \
        else value


def test_records_dataset_holds_every_record(tmp_path):
    write_jsonl(str(tmp_path / "a.jsonl"), [record(model="a", median_s=0.0123456, peak=3 * 2 ** 20),
                                            record(model="b", status="oom", reason="out of memory")])
    df, notes = prepare_frame(load_records([str(tmp_path / "a.jsonl")])[0])
    text = datasets.records_json(df, notes)
    assert json.loads(text)["n"] == 2
    assert _decode(text, 0, "model") == "a" and _decode(text, 0, "median_ms") == 12.35
    assert _decode(text, 0, "peak_mib") == 3 and _decode(text, 1, "status") == "oom"
    assert _decode(text, 1, "reason") == "out of memory" and _decode(text, 1, "median_ms") is None
    envs = json.loads(datasets.envs_json(["t-1", "t-2"], ["#111111", "#222222"], "t-2"))
    assert envs == [{"name": "t-1", "color": "#111111", "ref": False}, {"name": "t-2", "color": "#222222",
                                                                        "ref": True}]


def test_verdicts_are_ranked_regressions_first_with_units():
    verdicts = verdicts_frame([
        {"case_key": "k1", "env_fingerprint": "f", "kind": "memory", "verdict": "unchanged", "baseline": 2 ** 20,
         "candidate": 2 ** 20, "ratio": 1.0},
        {"case_key": "k2", "env_fingerprint": "f", "kind": "time", "verdict": "regressed", "baseline": 0.01,
         "candidate": 0.02, "ratio": 2.0}])
    ranked = datasets.ranked_verdicts(verdicts)
    assert ranked["verdict"].tolist() == ["regressed", "unchanged"]
    text = datasets.verdicts_json(ranked)
    assert _decode(text, 0, "baseline") == "10 ms" and _decode(text, 1, "candidate") == "1 MiB"


def test_comparison_rows_are_capped(monkeypatch):
    frame = pd.DataFrame({"change": ["same", "status", "slower"], "time_ratio": [1.0, None, 1.5]})
    ranked = datasets.ranked_changes(frame)
    assert ranked["change"].tolist() == ["status", "slower", "same"]
    monkeypatch.setattr(datasets, "MAX_COMPARE_ROWS", 2)
    shown, total = datasets.cap_rows(ranked)
    assert len(shown) == 2 and total == 3


def test_display_orders_cover_the_vocabulary():
    from harness.vocab import VERDICTS

    assert sorted(datasets.VERDICT_RANK) == sorted(VERDICTS)


def test_instruction_counts_and_tensor_peaks_show_in_the_table_with_their_units(tmp_path):
    write_jsonl(str(tmp_path / "a.jsonl"), [
        record(model="a", instructions=118_533_695.0, tensor_peak=3 * 2 ** 20),
        record(model="b", instr_status="unsupported", instr_reason="valgrind is not installed"),
        record(model="c")])
    df, notes = prepare_frame(load_records([str(tmp_path / "a.jsonl")])[0])
    text = datasets.records_json(df, notes)
    columns = {c["key"]: c for c in json.loads(text)["columns"]}
    assert columns["instructions_per_iter"]["fmt"] == "count" and columns["tensor_peak_bytes"]["fmt"] == "bytes"
    assert _decode(text, 0, "instructions_per_iter") == 118_534_000  # six digits: the CSV keeps them
    assert _decode(text, 0, "tensor_peak_bytes") == 3 * 2 ** 20
    # no count is never a silent blank: the status and its reason stand right after the count
    keys = list(columns)
    assert keys[keys.index("instructions_per_iter") + 1] == "instr_note"
    assert _decode(text, 1, "instr_note") == "unsupported: valgrind is not installed"
    assert _decode(text, 0, "instr_note") == -1 and _decode(text, 2, "instr_note") == -1  # -1: no text


def test_no_note_column_when_every_pass_counted(tmp_path):
    write_jsonl(str(tmp_path / "a.jsonl"), [record(model="a", instructions=1e8), record(model="b")])
    df, notes = prepare_frame(load_records([str(tmp_path / "a.jsonl")])[0])
    assert "instr_note" not in [c["key"] for c in json.loads(datasets.records_json(df, notes))["columns"]]
