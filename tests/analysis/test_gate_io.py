"""run_gate (harness.analysis.gate.io): files in, verdicts JSON and Markdown out, exit codes."""
import json
import os

import numpy as np
import pytest

from harness.analysis.gate import VERDICTS_SCHEMA, run_gate
from harness.analysis.gate import io as gate_io
from harness.analysis.gate.markdown import MARKER
from harness.record.schema import SCHEMA_VERSION
from harness.vocab import ExitCode
from tests.analysis.gate_records import SAMPLES, lognormal, make_record, stores, write_jsonl


def test_run_gate_regression_writes_json_and_markdown(tmp_path, capsys):
    rng = np.random.default_rng(10)
    a, b = stores(tmp_path, [make_record(model="m%d" % i, samples=lognormal(rng, 0.01, 30)) for i in range(3)],
                   [make_record(model="m0", samples=lognormal(rng, 0.02, 30)),
                    make_record(model="m1", samples=lognormal(rng, 0.01, 30)),
                    make_record(model="m2", status="timeout", reason="over 600 s")])
    json_out, md_out = str(tmp_path / "out" / "v.json"), str(tmp_path / "out" / "s.md")
    code = run_gate([a], [b], json_out=json_out, markdown_out=md_out, overrides=SAMPLES)
    assert code == ExitCode.FAILURE
    stdout = capsys.readouterr().out
    assert "2 regressions" in stdout and MARKER in stdout
    with open(md_out, encoding="utf-8") as fh:
        assert fh.read().strip() == stdout.strip()
    with open(json_out, encoding="utf-8") as fh:
        doc = json.load(fh)
    assert doc["exit_code"] == 1 and doc["schema"] == VERDICTS_SCHEMA
    assert doc["counts"]["time"]["regressed"] == 1 and doc["counts"]["status"]["regressed"] == 1
    assert sorted(os.listdir(str(tmp_path / "out"))) == ["s.md", "v.json"]  # no temp files left


def test_run_gate_pass_with_scenario_thresholds(tmp_path, capsys):
    rng = np.random.default_rng(11)
    a, b = stores(tmp_path, [make_record(samples=lognormal(rng, 0.010, 30))],
                   [make_record(samples=lognormal(rng, 0.012, 30))])
    scen = tmp_path / "smoke.toml"
    scen.write_text('[scenario]\nname = "smoke"\n\n[gate]\ntime_factor = 1.5\n')
    assert run_gate([a], [b], scenario_path=str(scen)) == ExitCode.OK
    assert "no regression" in capsys.readouterr().out
    assert run_gate([a], [b], scenario_path=str(scen), overrides={"time_factor": 1.1}) == ExitCode.OK  # one round
    assert run_gate([a], [b], scenario_path=str(scen), overrides=dict(SAMPLES, time_factor=1.1)) == ExitCode.FAILURE


@pytest.mark.parametrize("problem", ["missing", "empty", "schema", "scenarios", "bad_gate", "bad_override",
                                     "scenario_file", "not_comparable"])
def test_run_gate_input_errors_exit_2_naming_the_file(tmp_path, capsys, problem):
    a, b = stores(tmp_path, [make_record()], [make_record()])
    scenario, overrides, named = None, None, None
    if problem == "missing":
        a, named = str(tmp_path / "nope"), "nope"
    elif problem == "empty":
        write_jsonl(tmp_path / "E" / "x.jsonl", [])
        b, named = str(tmp_path / "E"), "x.jsonl"
    elif problem == "schema":
        rec = make_record()
        rec["schema_version"] = SCHEMA_VERSION + 1
        write_jsonl(tmp_path / "B" / "other.jsonl", [rec])
        named = "other.jsonl"
    elif problem == "scenarios":
        write_jsonl(tmp_path / "B" / "head.jsonl", [make_record(scenario="full")])
        named = "head.jsonl"
    elif problem == "bad_gate":
        scen = tmp_path / "s.toml"
        scen.write_text("[gate]\ntime_factor = 0.5\n")
        scenario, named = str(scen), "time_factor"
    elif problem == "bad_override":
        overrides, named = {"q": 7}, "overrides.q"
    elif problem == "scenario_file":
        scenario, named = str(tmp_path / "absent.toml"), "absent.toml"
    elif problem == "not_comparable":
        write_jsonl(tmp_path / "B" / "head.jsonl", [make_record(python="3.12.1")])
        named = "compared"
    code = run_gate([a], [b], scenario_path=scenario, overrides=overrides, json_out=str(tmp_path / "v.json"))
    err = capsys.readouterr().err
    assert code == ExitCode.INPUT
    assert "input error" in err and named in err
    if problem != "not_comparable":
        assert not os.path.exists(str(tmp_path / "v.json"))


def test_run_gate_internal_error_exit_3(tmp_path, capsys, monkeypatch):
    a, b = stores(tmp_path, [make_record()], [make_record()])

    def boom(*args, **kwargs):
        raise ZeroDivisionError("bug")
    monkeypatch.setattr(gate_io, "compare", boom)
    assert run_gate([a], [b]) == ExitCode.INTERNAL
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_truncated_last_line_is_a_warning_not_an_error(tmp_path, capsys):
    a, b = stores(tmp_path, [make_record()], [make_record()])
    with open(os.path.join(b, "head.jsonl"), "a", encoding="utf-8") as fh:
        fh.write('{"schema_version": 1, "case_k')
    assert run_gate([a], [b]) == ExitCode.OK
    assert "warning" in capsys.readouterr().err


def test_load_gate_table_validates_and_applies_overrides(tmp_path):
    scen = tmp_path / "s.toml"
    scen.write_text('[gate]\ntime_factor = 1.2\n\n[gate.per_model."cbam_*"]\ntime_factor = 1.5\n')
    assert gate_io.load_gate_table(str(scen)) == {"time_factor": 1.2, "per_model": {"cbam_*": {"time_factor": 1.5}}}
    assert gate_io.load_gate_table(str(scen), {"time_factor": 1.3}) == {"time_factor": 1.3, "per_model": {"cbam_*": {}}}
    assert gate_io.load_gate_table(None) == {}
    scen.write_text("[gate\n")
    with pytest.raises(gate_io.InputError, match="s.toml: cannot read the scenario file"):
        gate_io.load_gate_table(str(scen))
