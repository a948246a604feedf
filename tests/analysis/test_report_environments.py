"""``report.environments``: each environment's versions, the skipped ones, the reference."""
import json

import pytest

from harness.analysis.load import InputError, load_records
from harness.analysis.report import environments
from harness.analysis.report.frame import prepare_frame
from tests.analysis.test_report_support import record, write_jsonl


@pytest.fixture()
def folder(tmp_path):
    write_jsonl(str(tmp_path / "torch-2.1.jsonl"), [record(model="a"), record(model="b", status="error")])
    write_jsonl(str(tmp_path / "torch-1.10.jsonl"), [record(model="a", env="torch-1.10", torch_v="1.10.2",
                                                            status="crashed")])
    with open(str(tmp_path / "torch-1.9.env.json"), "w") as fh:
        json.dump({"env_label": "torch-1.9", "status": "skipped", "reason": "no Python 3.9",
                   "versions": {"torch": "1.9.1"}}, fh)
    with open(str(tmp_path / "bad.env.json"), "w") as fh:
        fh.write("[1, 2]")
    return tmp_path


def test_environment_table_joins_records_and_env_files(folder):
    paths = sorted(str(p) for p in folder.glob("*.jsonl"))
    df, notes = prepare_frame(load_records(paths)[0])
    infos, problems = environments.read_env_files(paths)
    assert [i["env_label"] for i in infos] == ["torch-1.9"]
    assert len(problems) == 1 and "bad.env.json: an environment file must be a JSON object" in problems[0]
    rows = environments.environment_table(df, notes["env_order"], infos)
    assert [(r["env"], r["state"]) for r in rows] == [("torch-1.10", "ran"), ("torch-2.1", "ran"),
                                                       ("torch-1.9", "skipped")]
    assert rows[1]["status_counts"] == {"ok": 1, "error": 1} and rows[1]["torch"] == "2.1.2"
    assert rows[2]["reason"] == "no Python 3.9" and rows[2]["torch"] == "1.9.1"


def test_reference_is_the_newest_torch_with_ok_records_unless_chosen(folder):
    paths = sorted(str(p) for p in folder.glob("*.jsonl"))
    df, notes = prepare_frame(load_records(paths)[0])
    assert environments.choose_reference(df, notes["env_order"], None) == "torch-2.1"
    assert environments.choose_reference(df, notes["env_order"], "torch-1.10") == "torch-1.10"
    with pytest.raises(InputError, match="reference environment 'x' is not among"):
        environments.choose_reference(df, notes["env_order"], "x")
