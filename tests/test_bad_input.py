"""Bad input, as a hostile new user gives it: exit 2, the problem on stderr naming the file and
what is wrong, no traceback, nothing written. One real subprocess per input."""
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD_MATRIX = textwrap.dedent('''
    [scenario]
    name = "t"
    [matrix]
    model = ["%s"]
    mode = ["eval"]
    batch_size = [2]
    size = [16]
    precision = ["fp32"]
    checkpoint = ["none"]
    device = ["cpu"]
    [measure]
    samples = 3
    %s
    ''')
USER_MODULES = {
    "raises_at_import.py": 'raise RuntimeError("boom at import")\n',
    "factories.py": "import torch\n\n\ndef raises():\n    raise ValueError('nope')\n\n\ndef not_a_module():\n"
                    "    return 3\n\n\ndef a_module():\n    return torch.nn.Linear(3, 2)\n",
}


def _scenario(tmp_path, model="cbam_classifier_tiny", measure_extra=""):
    return (GOOD_MATRIX % (model, measure_extra)).encode()


# (id, scenario bytes or None, what stderr must say)
SCENARIOS = [
    ("binary file", bytes(range(128, 256)), "not a TOML text file: byte 0 is not UTF-8"),
    ("timeout inf", lambda p: _scenario(p, measure_extra="timeout_s = inf"),
     "measure.timeout_s: value inf is not allowed; expected a finite number of seconds > 0"),
    ("timeout 1e400", lambda p: _scenario(p, measure_extra="timeout_s = 1e400"),
     "measure.timeout_s: value inf is not allowed"),
    ("module raises at import", lambda p: _scenario(p, model="raises_at_import:f"),
     "model 'raises_at_import:f': importing it raised RuntimeError: boom at import"),
    ("factory raises", lambda p: _scenario(p, model="factories:raises"),
     "model 'factories:raises': building it raised ValueError: nope"),
    ("factory returns a non-module", lambda p: _scenario(p, model="factories:not_a_module"),
     "model 'factories:not_a_module': factories:not_a_module returned int, not a torch.nn.Module"),
    # model sources (#15): an unknown source, an [inputs] table with a bad shape. A library name or
    # config field the installed release lacks is not bad input in a run of one environment (#27:
    # tests/scenario/test_models.py); a zoo name no release has is, with close names
    ("unknown source", lambda p: _scenario(p, model="tim:resnet18"),
     "cannot import module 'tim' for model 'tim:resnet18': No module named 'tim' (the sources are timm:"),
    ("misspelt zoo name", lambda p: _scenario(p, model="cbam_clasifier_tiny"),
     "model 'cbam_clasifier_tiny' matches no registered model (did you mean cbam_classifier_tiny"),
    ("inputs with a bad shape", lambda p: _scenario(p, model="factories:a_module",
                                                    measure_extra='[inputs."factories:a_module"]\n'
                                                                  'x = { shape = ["batch", -3] }'),
     "inputs.'factories:a_module'.x: value {'shape': ['batch', -3]} is not allowed; expected a shape of integers"),
    ("a folder", "folder", "a folder, not a scenario file"),
    ("missing", None, "no such scenario file"),
    ("unknown key", lambda p: _scenario(p, measure_extra="sampels = 3"), "measure.sampels"),
]


def _run(args, cwd, pythonpath=ROOT):
    env = dict(os.environ, PYTHONPATH=pythonpath)
    return subprocess.run([sys.executable, "-m", "harness"] + list(args), cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name, content, says", SCENARIOS, ids=[s[0] for s in SCENARIOS])
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_a_bad_scenario_is_exit_2_naming_the_problem_and_writes_nothing(tmp_path, name, content, says, dry_run):
    for module, text in USER_MODULES.items():
        (tmp_path / module).write_text(text)
    path = tmp_path / "s.toml"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content(tmp_path) if callable(content) else content)
    out = tmp_path / "out"
    proc = _run(["run", str(path), "--out", str(out), "--env-label", "e"] + (["--dry-run"] if dry_run else []),
                cwd=tmp_path, pythonpath=os.pathsep.join([ROOT, str(tmp_path)]))
    assert proc.returncode == 2, proc.stdout[-1000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and says in proc.stderr, proc.stderr
    assert str(path) in proc.stderr or "s.toml" in proc.stderr
    assert not out.exists()


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + _scenario(tmp_path))
    proc = _run(["run", str(path), "--dry-run"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("1 cases")


needs_pandas = pytest.mark.skipif(importlib.util.find_spec("pandas") is None,
                                  reason="report and gate are the analysis side (pandas): tested on the newest env")


@needs_pandas
@pytest.mark.parametrize("args, says", [
    (["report", "STORE", "--out", "FOLDER"], "is a folder: name the HTML file to write"),
    (["report", "STORE", "--out", "/proc/no-such/index.html"], "cannot write the report to /proc/no-such/index.html"),
    (["report", "MISSING"], "no such file or folder"),
    (["report", "EMPTYSTORE"], "folder holds no *.jsonl record files"),
    (["report", "BADSTORE"], "no good records in"),
    (["report", "STORE", "--verdicts", "GARBAGE"], "garbage.json: not a verdicts JSON of `torchmatrix gate --json`"),
    (["gate", "--baseline", "STORE", "--candidate", "STORE", "--json", "FOLDER"], "is a folder: name the file"),
    (["gate", "--baseline", "STORE", "--candidate", "STORE", "--markdown", "/proc/no-such/m.md"],
     "cannot write /proc/no-such/m.md: No such file or directory"),
    (["gate", "--baseline", "STORE", "--candidate", "BADSTORE"], "no good records in"),
    (["gate", "--baseline", "STORE", "--candidate", "STORE", "--set", "q"], "--set"),
])
def test_bad_analysis_input_is_exit_2_and_one_line(tmp_path, args, says):
    from tests.analysis.report_synth import write_synthetic_store

    store = tmp_path / "store"
    write_synthetic_store(str(store), n_records=20)
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jsonl").write_text('{"schema_version": 1}\n["not", "a", "record"]\n{"case": "x"\n')
    names = {"STORE": store, "FOLDER": tmp_path / "folder", "MISSING": tmp_path / "missing",
             "EMPTYSTORE": tmp_path / "empty", "BADSTORE": tmp_path / "bad", "GARBAGE": tmp_path / "garbage.json"}
    (tmp_path / "garbage.json").write_text("[1, 2, 3]")
    proc = _run([str(names.get(a, a)) for a in args], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    # one line says what is wrong (argparse's usage lines may come before it; warnings name bad records)
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and says in errors[0] and "Traceback" not in proc.stderr, proc.stderr
    assert os.listdir(str(tmp_path / "folder")) == []


@pytest.mark.parametrize("args, says", [
    (["run", "GOOD", "--env-label", "../../escape"], "--env-label '../../escape': use letters, digits"),
    (["run", "GOOD", "--env-label", ""], "--env-label '': use letters, digits"),
    (["run", "GOOD", "--only", "colour=red"], "--only 'colour=red': expected AXIS=VALUE"),
    (["run", "GOOD", "--only", "precision=fp8"], "expands to no case after the filters"),
    (["run", "nosuchname"], "nosuchname.toml: no such scenario file"),
    (["env", "--out", "/proc/no-such/env.json"], "cannot write /proc/no-such/env.json: No such file or directory"),
    (["list-models", "nosuch*"], "no model matches nosuch*"),
    (["ab", "GOOD", "--base", "HEAD", "--head", "HEAD", "--rounds", "0"], "rounds must be >= 1"),
    (["ab", "GOOD", "--base", "no-such-rev", "--head", "HEAD", "--repo", ROOT], "'no-such-rev' is not a commit"),
])
def test_bad_command_line_input_is_exit_2_one_line_and_writes_nothing(tmp_path, args, says):
    good = tmp_path / "good.toml"
    good.write_bytes(_scenario(tmp_path))
    out = tmp_path / "out"
    argv = [str(good) if a == "GOOD" else a for a in args]
    if argv[0] in ("run", "ab"):
        argv += ["--out", str(out)]
    proc = _run(argv, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-1000:] + proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists()
