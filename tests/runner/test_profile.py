"""Profiler traces (``harness.runner.profile``; ``[profile]`` and ``run --profile``): a profiled case writes a
Chrome trace that parses as JSON under ``profiles/<env_label>/<case>/`` and its record carries the per-op
summary; a case not asked for has no profile part; bad ``[profile]`` / ``--profile`` input exits 2 with
nothing written; a profiler that fails leaves the case ok with the reason. Runs on torch 1.10 and the newest."""
import json
import os
from types import SimpleNamespace

import pytest

from harness.commands.run import run_scenario
from harness.record.schema import SCHEMA_VERSION, Record
from harness.record.store import rotate_aside as _rotate
from harness.runner import profile
from harness.scenario import spec as scenario
from harness.vocab import ExitCode
from tests.runner.helpers import read_jsonl, run_harness, write_scenario

TWO_CASES = """model = ["cbam_classifier_tiny", "attention_mha_tiny"]
mode = ["train"]
batch_size = [2]
size = ["default"]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]
"""
PROFILE_CBAM = """
[profile]
cases = [{model = "cbam*", mode = "train"}]
wait = 0
warmup = 1
active = 2
"""


def test_a_profiled_case_writes_a_chrome_trace_and_its_record_the_heaviest_ops(tmp_path):
    path = write_scenario(tmp_path, TWO_CASES, PROFILE_CBAM)
    out = tmp_path / "out"
    lines = []
    assert run_scenario(path, str(out), "envx", print_fn=lines.append) == ExitCode.OK
    records = {r["case"]["model"]: r for r in read_jsonl(str(out / "envx.jsonl"))}
    assert {r["status"] for r in records.values()} == {"ok"}
    assert records["attention_mha_tiny"]["profile"] is None  # not asked for
    prof = records["cbam_classifier_tiny"]["profile"]
    assert prof["error"] is None, prof["error"]
    key = records["cbam_classifier_tiny"]["case_key"]
    assert prof["trace_dir"] == "profiles/envx/" + key.replace(";", ",")
    assert prof["steps"] == 2 and prof["schedule"] == "wait=0 warmup=1 active=2" and prof["activities"] == ["cpu"]
    trace = out.joinpath(*prof["trace_dir"].split("/"), prof["trace_file"])
    with open(str(trace), encoding="utf-8") as fh:
        doc = json.load(fh)  # a Chrome trace: what Perfetto and the TensorBoard plugin read
    assert isinstance(doc["traceEvents"], list) and doc["traceEvents"]
    names = {e.get("name") for e in doc["traceEvents"]}
    assert any(str(n).startswith("aten::") for n in names)
    ops = prof["ops"]
    assert 1 <= len(ops) <= profile.TOP_OPS
    assert all(not o["name"].startswith("ProfilerStep") for o in ops)
    assert [o["self_cpu_s"] for o in ops] == sorted((o["self_cpu_s"] for o in ops), reverse=True)
    assert all(o["self_cpu_s"] > 0 and o["calls_per_step"] > 0 and o["self_cuda_s"] is None for o in ops)
    assert 0 < sum(o["self_cpu_s"] for o in ops) <= prof["self_cpu_total_s"] * (1 + 1e-9)
    convs = [o for o in ops if "conv" in o["name"]]
    # the shapes of each op's heaviest call: tensors of the batch (2) among them
    assert convs and all(any(len(s) == 4 and s[0] == 2 for s in o["input_shapes"]) for o in convs)
    Record.from_dict(records["cbam_classifier_tiny"], strict=True)  # the part is in the schema
    assert any("profiler traces of 1 cases" in line for line in lines)


def test_run_profile_names_cases_from_the_command_line(tmp_path):
    path = write_scenario(tmp_path, TWO_CASES)
    proc = run_harness("run", path, "--out", str(tmp_path / "out"), "--env-label", "e",
                       "--profile", "model=attention*;mode=train;batch_size=2")
    assert proc.returncode == 0, proc.stderr
    records = {r["case"]["model"]: r for r in read_jsonl(str(tmp_path / "out" / "e.jsonl"))}
    assert records["cbam_classifier_tiny"]["profile"] is None
    prof = records["attention_mha_tiny"]["profile"]
    assert prof["error"] is None and prof["steps"] == 3 and prof["ops"]
    assert (tmp_path / "out").joinpath(*prof["trace_dir"].split("/"), prof["trace_file"]).is_file()


def test_dry_run_marks_the_profiled_cases(tmp_path):
    path = write_scenario(tmp_path, TWO_CASES, PROFILE_CBAM)
    lines = []
    assert run_scenario(path, str(tmp_path / "out"), dry_run=True, print_fn=lines.append) == ExitCode.OK
    marked = [line for line in lines if line.endswith("[profile]")]
    assert len(marked) == 1 and "model=cbam_classifier_tiny" in marked[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("table, words", [
    ("[profile]\ncases = [{model = \"cbam*\", precision = \"bf17\"}]\n", "profile.cases[0].precision: value 'bf17'"),
    ("[profile]\ncases = [{modle = \"cbam*\"}]\n", "profile.cases[0].modle: unknown key"),
    ("[profile]\ncases = \"cbam*\"\n", "profile.cases: value 'cbam*' is not allowed; expected a list of axis tables"),
    ("[profile]\nactive = 0\n", "profile.active: value 0 is not allowed; expected an integer in [1, 100]"),
    ("[profile]\nwarmup = -1\n", "profile.warmup: value -1 is not allowed"),
    ("[profile]\nrepeat = 2\n", "profile.repeat: unknown key; allowed: cases, wait, warmup, active"),
])
def test_a_bad_profile_table_is_bad_input(tmp_path, capsys, table, words):
    path = write_scenario(tmp_path, TWO_CASES, table)
    assert run_scenario(path, str(tmp_path / "out")) == ExitCode.INPUT
    err = capsys.readouterr().err
    assert words in err and path in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("item, words", [
    ("cbam*", "--profile 'cbam*': expected AXIS=VALUE[,VALUE...] parts joined by ';'"),
    ("model=cbam*;precision=bf17", "--profile.precision: value 'bf17' is not allowed; expected one of fp32"),
    ("modle=cbam*", "--profile.modle: unknown key"),
    ("model=cbam*;mode=eval", "--profile 'model=cbam*;mode=eval': matches none of the 2 cases that run"),
    ("model=", "expected AXIS=VALUE"),
])
def test_a_bad_profile_option_is_bad_input(tmp_path, capsys, item, words):
    path = write_scenario(tmp_path, TWO_CASES)
    assert run_scenario(path, str(tmp_path / "out"), profile=[item]) == ExitCode.INPUT
    err = capsys.readouterr().err
    assert words in err, err
    assert not (tmp_path / "out").exists()


def test_the_command_line_exits_2_on_a_bad_profile_option(tmp_path):
    path = write_scenario(tmp_path, TWO_CASES)
    proc = run_harness("run", path, "--out", str(tmp_path / "out"), "--profile", "precision=fp64")
    assert proc.returncode == 2 and "--profile.precision: value 'fp64' is not allowed" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_profile_rules_match_as_exclude_tables_do(tmp_path):
    sc = scenario.load(write_scenario(tmp_path, TWO_CASES, PROFILE_CBAM))
    cases = scenario.expand(sc)
    assert [c.model for c, _ in cases if scenario.profiled(sc, c)] == ["cbam_classifier_tiny"]
    with pytest.raises(scenario.ScenarioError, match="matches none"):
        scenario.add_profile_rules(sc, ["model=ATTENTION*"], cases)  # model globs match as [[exclude]]'s do
    scenario.add_profile_rules(sc, ["model=attention_mha_tiny;size=32;channels_last=false"], cases)
    assert [c.model for c, _ in cases if scenario.profiled(sc, c)] == ["cbam_classifier_tiny", "attention_mha_tiny"]


def test_a_failing_profiler_is_reported_and_never_raises(tmp_path):
    blocker = tmp_path / "store"
    blocker.write_text("a file where the trace folder should go")
    request = {"store": str(blocker), "trace_dir": "profiles/e/c", "worker_name": "e", "wait": 0, "warmup": 0,
               "active": 1}
    calls = []
    out = profile.profile_step(lambda: calls.append(1), "cpu", request)
    assert out["error"] and out["error"].split(":")[0] in ("FileExistsError", "NotADirectoryError")
    assert out["trace_dir"] == "profiles/e/c" and out["wall_s"] >= 0 and "ops" not in out
    case = {"model": "m", "mode": "train", "batch_size": 1, "size": 8, "precision": "fp32", "checkpoint": "none",
            "device": "cpu"}
    Record.from_dict({"schema_version": SCHEMA_VERSION, "status": "ok", "case": case, "profile": out}, strict=True)

    def boom():
        raise RuntimeError("the step broke under the profiler")

    request["store"] = str(tmp_path / "ok")
    out = profile.profile_step(boom, "cpu", request)
    assert out["error"] == "RuntimeError: the step broke under the profiler"


def test_summarize_sums_shape_groups_and_reads_either_gpu_attribute():
    def evt(key, count, cpu_us, shapes, **gpu):
        e = SimpleNamespace(key=key, count=count, self_cpu_time_total=cpu_us, input_shapes=shapes)
        e.__dict__.update(gpu)
        return e

    events = [evt("aten::conv2d", 4, 400.0, [[2, 3, 8, 8], [4, 3, 3, 3]], self_device_time_total=10.0),
              evt("aten::conv2d", 2, 600.0, [[2, 3, 16, 16], [4, 3, 3, 3]], self_device_time_total=30.0),
              evt("ProfilerStep*", 2, 900.0, []), evt("[memory]", 9, 0.0, []),
              evt("aten::add", 8, 100.0, [[], []], self_cuda_time_total=50.0)]
    out = profile.summarize(events, steps=2, on_gpu=False)
    assert [o["name"] for o in out["ops"]] == ["aten::conv2d", "aten::add"]
    conv = out["ops"][0]
    assert conv["calls_per_step"] == 3 and conv["self_cpu_s"] == pytest.approx(500e-6)
    assert conv["input_shapes"] == [[2, 3, 16, 16], [4, 3, 3, 3]] and conv["self_cuda_s"] is None
    assert out["ops"][1]["input_shapes"] is None  # only non-tensor arguments
    assert out["self_cpu_total_s"] == pytest.approx(550e-6) and out["self_cuda_total_s"] is None
    gpu = profile.summarize(events, steps=2, on_gpu=True)
    assert [o["name"] for o in gpu["ops"]] == ["aten::add", "aten::conv2d"]  # by self CUDA time
    assert gpu["ops"][0]["self_cuda_s"] == pytest.approx(25e-6) and gpu["ops"][1]["self_cuda_s"] == pytest.approx(20e-6)
    assert profile.summarize(events, steps=2, on_gpu=False, top=1)["ops"][0]["name"] == "aten::conv2d"


def test_case_folders_are_readable_and_never_shared():
    key = "model=cbam_classifier_tiny;mode=train;batch=2;size=32;precision=bf16;checkpoint=none;device=cpu"
    assert profile.case_folder(key) == key.replace(";", ",")
    odd = profile.case_folder("model=timm:resnet18;mode=eval")
    assert odd.startswith("model=timm_resnet18,mode=eval~") and "/" not in odd and ":" not in odd
    assert odd != profile.case_folder("model=timm_resnet18;mode=eval")
    assert profile.trace_dir("torch-1.11", key) == "profiles/torch-1.11/" + key.replace(";", ",")
    settings = {"measure": {}}
    assert profile.case_settings(settings, {"wait": 1}, False, "/x/r/e.jsonl", "e", key) is settings
    asked = profile.case_settings(settings, {"wait": 2, "warmup": 0, "active": 4}, True, "/x/r/e.jsonl", "e", key)
    assert asked["profile"] == {"store": os.path.abspath("/x/r"), "trace_dir": profile.trace_dir("e", key),
                                "worker_name": "e", "wait": 2, "warmup": 0, "active": 4}
    assert "profile" not in settings


def test_a_rerun_moves_the_traces_with_their_records(tmp_path):
    store = tmp_path / "r"
    traces = store / "profiles" / "e" / "case"
    traces.mkdir(parents=True)
    (traces / "e.1.pt.trace.json").write_text("{}")
    (store / "e.jsonl").write_text('{"x": 1}\n')
    moved = _rotate(str(store / "e.jsonl"))
    dest = os.path.dirname(moved)
    assert os.path.isfile(os.path.join(dest, "profiles", "e", "case", "e.1.pt.trace.json"))
    assert not (store / "profiles" / "e").exists()
