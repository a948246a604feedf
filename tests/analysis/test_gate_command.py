"""The gate command (harness.commands.gate): its options, its parser without pandas, its entry points."""
import argparse
import glob
import subprocess
import sys

import pytest

from harness.commands import gate as command
from harness.vocab import ExitCode
from tests.analysis.gate_records import ROOT, make_record, stores

OPTIONS = ("--baseline", "--candidate", "--scenario", "--json", "--markdown", "--set")


def _parser():
    parser = argparse.ArgumentParser(prog="gate")
    command.add_arguments(parser)
    return parser


def test_help_exits_0_and_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        command.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(option in out for option in OPTIONS) and "docs/gate.md" in out
    assert command.NAME == "gate" and command.HELP


def test_defaults_and_overrides():
    args = _parser().parse_args(["--baseline", "a", "b", "--candidate", "c"])
    assert (args.baseline, args.candidate) == (["a", "b"], ["c"])
    assert args.scenario is None and args.json_out is None and args.markdown_out is None and args.overrides == []
    args = _parser().parse_args(["--baseline", "a", "--candidate", "c", "--set", "q=0.01", "--set",
                                 " time_test =samples"])
    assert args.overrides == [("q", 0.01), ("time_test", "samples")]


def test_a_bad_set_is_exit_2(tmp_path, capsys):
    a, b = stores(tmp_path, [make_record()], [make_record()])
    with pytest.raises(SystemExit) as exc:  # not KEY=VALUE: argparse's usage error
        command.main(["--baseline", a, "--candidate", b, "--set", "q"])
    assert exc.value.code == ExitCode.INPUT and "expected KEY=VALUE" in capsys.readouterr().err
    assert command.main(["--baseline", a, "--candidate", b, "--set", "q=7"]) == ExitCode.INPUT  # a bad value
    assert "overrides.q" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # --candidate missing
        command.main(["--baseline", a])
    assert exc.value.code == ExitCode.INPUT


def test_the_parser_is_built_without_pandas_or_scipy():
    code = ("import argparse, sys; from harness.commands import gate; p = argparse.ArgumentParser(); "
            "gate.add_arguments(p); p.parse_args(['--baseline', 'a', '--candidate', 'b']); "
            "bad = [m for m in ('pandas', 'scipy', 'numpy', 'torch') if m in sys.modules]; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_module_cli_and_no_torch_import(tmp_path):
    a, b = stores(tmp_path, [make_record()], [make_record()])
    code = ("import sys, runpy; sys.argv = ['gate', '--baseline', %r, '--candidate', %r, '--set', 'q=0.01']; "
            "import harness.analysis.gate as g; rc = g.main(); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)" % (a, b))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "no regression" in proc.stdout
    assert not glob.glob(str(tmp_path / "**" / "*.tmp"), recursive=True)


@pytest.mark.parametrize("entry", [["-m", "harness.analysis.gate"], ["-m", "harness", "gate"]])
def test_entry_points_run_the_same_command(tmp_path, entry):
    a, b = stores(tmp_path, [make_record()], [make_record(status="error", reason="RuntimeError: boom")])
    proc = subprocess.run([sys.executable] + entry + ["--baseline", a, "--candidate", b, "--json",
                                                      str(tmp_path / "v.json")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == ExitCode.FAILURE, proc.stderr
    assert "1 regression" in proc.stdout and (tmp_path / "v.json").exists()
