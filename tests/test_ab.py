"""A/B runner: worktrees per revision, interleaved rounds, each revision's own code, gate.

Most tests use a throw-away git repository whose ``harness`` package is a stand-in
runner (it writes schema records whose speed is set by the revision's code), so the
orchestration is tested in seconds. The ``real_project`` tests run the real runner on a
copy of this project: an A/A run of two tiny cases that must pass, and a head revision
whose ``harness run`` fails (about 20 s together on the 2-core machine).
"""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from harness.commands.ab import round_order, run_ab
from harness.record.schema import SCHEMA_VERSION

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOW = os.path.join(ROOT, ".github", "workflows", "ab-gate.yml")


def _has_analysis_deps():
    try:
        import pandas  # noqa: F401
        import scipy  # noqa: F401
    except ImportError:
        return False
    return True


#: The gate (pandas, scipy) runs at the end of an A/B run; the Python 3.9 + torch 1.10
#: test environment does not have it.
needs_gate = pytest.mark.skipif(not _has_analysis_deps(), reason="the gate needs pandas and scipy")

FAKE_MAIN = textwrap.dedent('''
    """Stand-in for ``python -m harness run SCENARIO --out OUT --env-label L --append``."""
    import hashlib
    import json
    import math
    import os
    import random
    import sys

    from harness.speed import MEDIAN_S

    args = sys.argv[1:]
    assert args[0] == "run", args
    scenario = args[1]
    out = args[args.index("--out") + 1]
    label = args[args.index("--env-label") + 1]
    assert "--append" in args
    with open(os.environ["AB_TEST_LOG"], "a") as fh:
        fh.write(json.dumps({{"label": label, "cwd": os.getcwd(), "scenario": os.path.abspath(scenario),
                             "code": os.path.abspath(__file__), "args": args,
                             "steps_from": os.environ.get("TORCHMATRIX_COUNT_STEPS_FROM")}}) + "\\n")
    if os.environ.get("AB_TEST_FAIL_LABEL") == label:
        sys.exit(1)
    if os.environ.get("AB_TEST_HANG_LABEL") == label:
        # a round that is still measuring, with a worker of its own (as the real runner has)
        import subprocess
        import time
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        with open(os.environ["AB_TEST_HANG_FILE"] + ".tmp", "w") as fh:
            fh.write("%d %d" % (os.getpid(), worker.pid))
        os.replace(os.environ["AB_TEST_HANG_FILE"] + ".tmp", os.environ["AB_TEST_HANG_FILE"])
        time.sleep(300)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, label + ".jsonl")
    round_index = sum(1 for _ in open(path)) if os.path.exists(path) else 0
    rng = random.Random("%s-%d" % (label, round_index))
    process_speed = math.exp(rng.gauss(0, 0.02))
    samples = [MEDIAN_S * process_speed * math.exp(rng.gauss(0, 0.03)) for _ in range(10)]
    ident = "torch|py|cpu"
    rec = {{"schema_version": {schema}, "run_id": "r%d" % round_index, "time_utc": "2026-11-21T00:00:00Z",
           "scenario": "tiny", "env_label": label,
           "case_key": "model=m;mode=eval;batch=1;size=8;precision=fp32;checkpoint=none;device=cpu",
           "case": {{"model": "m", "mode": "eval", "batch_size": 1, "size": 8, "precision": "fp32",
                    "checkpoint": "none", "device": "cpu", "channels_last": False, "compile": False}},
           "env": {{"torch": "2.1.2", "python": "3.11.7", "device": "cpu", "device_name": "cpu", "cuda": None,
                   "fingerprint": hashlib.sha1(ident.encode()).hexdigest()[:12]}},
           "status": "ok", "reason": None, "duration_s": 0.1,
           "timing": {{"samples_s": samples, "median_s": sorted(samples)[5], "iqr_s": 0.0, "iters_per_sample": 1,
                      "warmup_iters": 1, "warmup_s": 0.0, "throughput_per_s": 1.0, "reduced": None}},
           "memory": {{"peak_bytes": 1000000, "method": "linux_vmhwm"}}, "accuracy": None, "task": None}}
    if "--instructions" in args and os.environ.get("AB_TEST_COUNT_CRASH_LABEL") == label:
        rec["instructions"] = {{"status": "crashed", "reason": "counting worker died (SIGSEGV)"}}
    elif "--instructions" in args:  # counts that follow the code's work: 1e8 instructions per 10 ms
        count = 1e10 * MEDIAN_S
        rec["instructions"] = {{"status": "ok", "per_iter": count, "repeats_per_iter": [count, count],
                               "iterations": 1, "spread": 0.0, "tool": "fake callgrind"}}
    with open(path, "a") as fh:
        fh.write(json.dumps(rec) + "\\n")
''').format(schema=SCHEMA_VERSION)


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                           "-c", "commit.gpgsign=false"] + list(args), check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def fake_repo(tmp_path):
    """A repository with two commits: base (10 ms per sample) and head (13 ms)."""
    repo = tmp_path / "repo"
    (repo / "harness").mkdir(parents=True)
    (repo / "scenarios").mkdir()
    (repo / "harness" / "__init__.py").write_text("")
    (repo / "harness" / "__main__.py").write_text(FAKE_MAIN)
    (repo / "harness" / "speed.py").write_text("MEDIAN_S = 0.010\n")
    (repo / "scenarios" / "tiny.toml").write_text('[scenario]\nname = "tiny"\n\n[gate]\ntime_factor = 1.10\n')
    (repo / ".gitignore").write_text("results/\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    base = _git(repo, "rev-parse", "HEAD")
    (repo / "harness" / "speed.py").write_text("MEDIAN_S = 0.013\n")
    _git(repo, "commit", "-q", "-am", "slower")
    head = _git(repo, "rev-parse", "HEAD")
    return repo, base, head


@pytest.fixture
def log_path(tmp_path, monkeypatch):
    path = tmp_path / "rounds.log"
    monkeypatch.setenv("AB_TEST_LOG", str(path))
    return path


def _log(path):
    with open(str(path)) as fh:
        return [json.loads(line) for line in fh]


def test_round_order_abba_cancels_linear_drift():
    seq = round_order(4)
    assert "".join(seq) == "ABBAABBA"
    pos = {s: sum(i for i, x in enumerate(seq) if x == s) for s in "AB"}
    assert pos["A"] == pos["B"]
    assert "".join(round_order(3, "abab")) == "ABABAB"
    with pytest.raises(ValueError):
        round_order(2, "aabb")


@needs_gate
def test_instructions_are_counted_in_the_first_round_of_each_side_and_decide(fake_repo, log_path, tmp_path):
    repo, base, head = fake_repo
    out = tmp_path / "ab"
    code = run_ab(str(repo), base, head, str(repo / "scenarios" / "tiny.toml"), rounds=2, out_dir=str(out),
                  instructions=True, print_fn=lambda *a: None)
    assert code == 1
    rounds = _log(log_path)
    assert [(r["label"], "--instructions" in r["args"]) for r in rounds] == [
        ("base", True), ("head", True), ("head", False), ("base", False)]
    # the head's counting round is told the base's steps: they decide which cases both sides count
    assert [r["steps_from"] for r in rounds] == [None, str(out / "ab-base-steps.json"), None, None]
    steps = json.load(open(str(out / "ab-base-steps.json")))
    assert list(steps) == ["model=m;mode=eval;batch=1;size=8;precision=fp32;checkpoint=none;device=cpu"]
    assert steps[list(steps)[0]] == pytest.approx(0.010, rel=0.2)
    doc = json.load(open(str(out / "gate-verdicts.json")))
    time_v = [v for v in doc["verdicts"] if v["kind"] == "time"][0]
    assert time_v["basis"] == "instructions" and time_v["verdict"] == "regressed"
    assert time_v["ratio"] == pytest.approx(1.3) and time_v["counted_baseline"] == 1


RELAXED = '[scenario]\nname = "tiny"\n\n[gate]\ntime_factor = 10.0\ninstructions_frac = 0.9\naggregate_factor = 10.0\n'


def _relaxing_head(repo, base, gate_text=RELAXED, extra=None):
    """A head on ``base`` that adds 30% more work and, in the same commit, writes ``gate_text``."""
    _git(repo, "checkout", "-q", "--detach", base)
    (repo / "harness" / "speed.py").write_text("MEDIAN_S = 0.013\n")
    (repo / "scenarios").mkdir(exist_ok=True)
    (repo / "scenarios" / "tiny.toml").write_text(gate_text)
    for path, text in (extra or {}).items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "heavier, and relax the gate")
    return _git(repo, "rev-parse", "HEAD")


@needs_gate
def test_the_head_cannot_relax_the_thresholds_it_is_judged_by(fake_repo, log_path, tmp_path, capsys):
    """+30% work and a relaxed [gate] in one commit: the base's thresholds judge it (exit 1), the
    summary names each ignored change; --trust-head-config applies them (exit 0) and says so."""
    repo, base, _ = fake_repo
    head = _relaxing_head(repo, base, extra={"noxfile.py": "# changed\n"})
    out = tmp_path / "ab"
    assert run_ab(str(repo), base, head, str(repo / "scenarios" / "tiny.toml"), out_dir=str(out), rounds=1,
                  instructions=True) == 1
    summary = (out / "gate-summary.md").read_text()
    assert "this pull request changes time_factor 1.1 → 10.0; not applied" in summary
    assert "| instructions_frac | 0.02 | 0.9 | not applied |" in summary
    assert "Thresholds from the base revision's scenario." in summary and "`noxfile.py`" in summary
    doc = json.load(open(str(out / "gate-verdicts.json")))
    assert doc["thresholds"]["time_factor"] == 1.10 and doc["policy"]["applied"] is False
    assert [c["key"] for c in doc["policy"]["changes"]] == ["aggregate_factor", "instructions_frac", "time_factor"]
    assert doc["policy"]["tooling_changes"] == ["noxfile.py"]
    assert "ab: this revision changes time_factor 1.1 → 10.0; not applied" in capsys.readouterr().out
    # a maintainer's opt-in
    assert run_ab(str(repo), base, head, str(repo / "scenarios" / "tiny.toml"), out_dir=str(out), rounds=1,
                  instructions=True, trust_head_config=True) == 0
    summary = (out / "gate-summary.md").read_text()
    assert "this pull request changes time_factor 1.1 → 10.0; applied" in summary
    assert "a maintainer opted in" in summary
    # the same head without the threshold change fails too; the base against itself passes
    plain = _relaxing_head(repo, base, gate_text=(repo / "scenarios" / "tiny.toml").read_text().replace(
        "time_factor = 10.0\ninstructions_frac = 0.9\naggregate_factor = 10.0\n", "time_factor = 1.10\n"))
    assert run_ab(str(repo), base, plain, str(repo / "scenarios" / "tiny.toml"), out_dir=str(out), rounds=1,
                  instructions=True) == 1
    assert "this pull request changes" not in (out / "gate-summary.md").read_text()
    assert run_ab(str(repo), base, base, str(repo / "scenarios" / "tiny.toml"), out_dir=str(out), rounds=1,
                  instructions=True) == 0


@needs_gate
def test_a_base_without_the_scenario_is_judged_by_the_defaults(fake_repo, log_path, tmp_path):
    repo, base, _ = fake_repo
    _git(repo, "checkout", "-q", "--detach", base)
    _git(repo, "rm", "-q", "scenarios/tiny.toml")
    _git(repo, "commit", "-q", "-m", "no scenario")
    bare = _git(repo, "rev-parse", "HEAD")
    head = _relaxing_head(repo, bare)
    out = tmp_path / "ab"
    assert run_ab(str(repo), bare, head, str(repo / "scenarios" / "tiny.toml"), out_dir=str(out), rounds=1,
                  instructions=True) == 1
    doc = json.load(open(str(out / "gate-verdicts.json")))
    assert doc["policy"]["source"].startswith("the defaults") and doc["thresholds"]["time_factor"] == 1.10


@needs_gate
def test_a_head_whose_counting_crashes_fails_with_the_count_lost(fake_repo, log_path, tmp_path, monkeypatch):
    repo, base, _ = fake_repo
    monkeypatch.setenv("AB_TEST_COUNT_CRASH_LABEL", "head")
    out = tmp_path / "ab"
    assert run_ab(str(repo), base, base, str(repo / "scenarios" / "tiny.toml"), out_dir=str(out), rounds=1,
                  instructions=True) == 1
    summary = (out / "gate-summary.md").read_text()
    assert "instruction count lost on the head: crashed: counting worker died (SIGSEGV)" in summary
    assert summary.splitlines()[3] == "Thresholds from the base revision's scenario."


def test_ab_rounds_default_to_one_with_instructions_else_three():
    from harness.cli import build_parser
    from harness.commands.ab import default_rounds

    assert build_parser().parse_args(["ab", "--base", "a", "--head", "b", "s.toml"]).rounds is None
    assert default_rounds(instructions=True) == 1 and default_rounds(instructions=False) == 3


@needs_gate
def test_ab_finds_the_head_slowdown_with_each_revision_own_code(fake_repo, log_path, tmp_path, capsys):
    repo, base, head = fake_repo
    out = tmp_path / "ab"
    code = run_ab(str(repo), base, head, str(repo / "scenarios" / "tiny.toml"), rounds=4, out_dir=str(out),
                  extra_args=("--only", "model=m"))
    assert code == 1
    rounds = _log(log_path)
    assert [r["label"] for r in rounds] == ["base", "head", "head", "base", "base", "head", "head", "base"]
    for r in rounds:
        tree = os.path.join(str(out), "worktrees", r["label"])
        assert r["cwd"] == tree and r["code"].startswith(tree + os.sep)   # the revision's own code ran
        assert r["scenario"] == os.path.join(tree, "scenarios", "tiny.toml")
        assert r["args"][-2:] == ["--only", "model=m"]
    assert len(open(str(out / "A" / "base.jsonl")).readlines()) == 4
    assert len(open(str(out / "B" / "head.jsonl")).readlines()) == 4
    doc = json.load(open(str(out / "gate-verdicts.json")))
    time_v = [v for v in doc["verdicts"] if v["kind"] == "time"][0]
    assert time_v["verdict"] == "regressed" and time_v["test"] == "welch_t_log_round_medians"
    assert time_v["ratio"] == pytest.approx(1.3, rel=0.05)
    assert "regression" in open(str(out / "gate-summary.md")).read()
    assert "regression" in capsys.readouterr().out
    log = json.load(open(str(out / "ab-rounds.json")))
    assert log["order"] == "ABBAABBA" and log["gate_exit_code"] == 1 and len(log["rounds"]) == 8
    # worktrees removed, and unregistered from the repository
    assert not (out / "worktrees").exists()
    assert _git(repo, "worktree", "list").count("\n") == 0


@needs_gate
def test_same_revision_twice_passes_and_old_results_are_moved_aside(fake_repo, log_path, tmp_path):
    repo, base, _ = fake_repo
    out = tmp_path / "ab"
    assert run_ab(str(repo), base, base, str(repo / "scenarios" / "tiny.toml"), rounds=3, out_dir=str(out)) == 0
    assert run_ab(str(repo), base, base, str(repo / "scenarios" / "tiny.toml"), rounds=3, out_dir=str(out)) == 0
    assert len(open(str(out / "A" / "base.jsonl")).readlines()) == 3   # not pooled with the first run
    assert len(os.listdir(str(out / "previous"))) >= 1
    # this stand-in runner has no engine (harness/engine/cases.py): whole rounds, as for an old base
    assert json.load(open(str(out / "ab-rounds.json")))["engine"] is False


@needs_gate
def test_relative_scenario_and_abab_order(fake_repo, log_path, tmp_path, monkeypatch):
    repo, base, head = fake_repo
    monkeypatch.chdir(str(repo))
    # the default layout: out_dir inside the repository (ignored by git), worktrees under it
    # 2 rounds a side: the raw-sample test sees the clear slowdown, but auto calls it inconclusive
    assert run_ab(".", base, head, "scenarios/tiny.toml", rounds=2, order="abab", print_fn=lambda *a: None) == 0
    doc = json.load(open(str(repo / "results" / "ab" / "gate-verdicts.json")))
    time_v = [v for v in doc["verdicts"] if v["kind"] == "time"][0]
    assert time_v["verdict"] == "inconclusive" and "2 vs 2 rounds (3 a side needed)" in time_v["reason"]
    assert [r["label"] for r in _log(log_path)] == ["base", "head", "base", "head"]
    assert (repo / "results" / "ab" / "gate-summary.md").exists()
    assert not (repo / "results" / "ab" / "worktrees").exists()
    assert _git(repo, "status", "--porcelain") == ""


def test_bad_revision_is_an_input_error_and_creates_nothing(fake_repo, log_path, tmp_path, capsys):
    repo, base, _ = fake_repo
    out = tmp_path / "ab"
    assert run_ab(str(repo), base, "no-such-branch", "scenarios/tiny.toml", out_dir=str(out)) == 2
    assert "no-such-branch" in capsys.readouterr().err
    assert not out.exists() and not log_path.exists()
    assert run_ab(str(tmp_path), base, base, "x.toml", out_dir=str(out)) == 2   # not a repository


def test_missing_scenario_is_an_input_error(fake_repo, log_path, tmp_path, capsys):
    repo, base, head = fake_repo
    assert run_ab(str(repo), base, head, str(repo / "scenarios" / "nope.toml"), out_dir=str(tmp_path / "ab")) == 2
    assert "nope.toml" in capsys.readouterr().err
    assert _git(repo, "worktree", "list").count("\n") == 0


@needs_gate
def test_a_side_whose_rounds_all_fail_makes_the_gate_an_input_error(fake_repo, log_path, tmp_path, monkeypatch,
                                                                    capsys):
    repo, base, head = fake_repo
    monkeypatch.setenv("AB_TEST_FAIL_LABEL", "base")
    assert run_ab(str(repo), base, head, str(repo / "scenarios" / "tiny.toml"), rounds=1,
                  out_dir=str(tmp_path / "ab")) == 2
    err = capsys.readouterr().err
    assert "exited with 1" in err and "input error" in err


def test_ab_module_is_stdlib_only():
    code = ("import sys, harness.commands.ab; "
            "bad = [m for m in ('pandas', 'scipy', 'numpy', 'torch') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def _alive(pid):
    """Whether ``pid`` is a process that has not exited (a zombie waiting for its parent counts as exited)."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not os.path.isdir("/proc")  # /proc exists but has no entry: gone


def _default_sigint():
    # A job started in the background inherits SIGINT ignored, and Python then keeps ignoring it:
    # give the ab process the disposition an interactive shell gives it, whatever runs this test.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _worktrees_left(repo, out):
    listed = _git(repo, "worktree", "list", "--porcelain")
    return [line for line in listed.splitlines() if line.startswith("worktree ")][1:], (out / "worktrees").exists()


def test_ctrl_c_during_a_round_stops_it_and_removes_the_worktrees(fake_repo, log_path, tmp_path):
    """SIGINT to a running ``python -m harness ab``: exit 130, the round's processes and the worktrees gone."""
    repo, base, head = fake_repo
    out = tmp_path / "ab"
    hang_file = tmp_path / "round.pids"
    env = dict(os.environ, PYTHONPATH=ROOT, AB_TEST_HANG_LABEL="head", AB_TEST_HANG_FILE=str(hang_file))
    cmd = [sys.executable, "-m", "harness", "ab", "--repo", str(repo), "--base", base, "--head", head,
           "--rounds", "1", "--out", str(out), str(repo / "scenarios" / "tiny.toml")]
    proc = subprocess.Popen(cmd, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_sigint)
    pids = []
    try:
        deadline = time.time() + 60
        while not hang_file.exists():
            assert proc.poll() is None, "ab exited with %s before the head round started:\n%s" % (
                proc.returncode, proc.communicate()[1][-3000:])
            assert time.time() < deadline, "the head round did not start within 60 s"
            time.sleep(0.05)
        pids = [int(p) for p in hang_file.read_text().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        assert (out / "worktrees" / "head").is_dir()
        os.kill(proc.pid, signal.SIGINT)   # Ctrl-C: the terminal signals ab (the round has its own session)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("ab did not exit within 60 s of SIGINT")
        assert proc.returncode == 130, (proc.returncode, stderr[-3000:])
        assert "ab: interrupted" in stderr
        # the round and its worker are killed with it, not left measuring
        deadline = time.time() + 10
        while any(_alive(p) for p in pids) and time.time() < deadline:
            time.sleep(0.05)
        assert not [p for p in pids if _alive(p)], "round processes left running after Ctrl-C"
        assert _worktrees_left(repo, out) == ([], False)
        assert _git(repo, "status", "--porcelain") == ""
        # the base round finished and is kept; no gate ran on half the rounds
        assert len((out / "A" / "base.jsonl").read_text().splitlines()) == 1
        assert not (out / "gate-verdicts.json").exists()
        assert [r["label"] for r in json.loads((out / "ab-rounds.json").read_text())["rounds"]] == ["base"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# --- the real runner, on a copy of this project -----------------------------------------------------------

#: Two tiny cases of smoke.toml (eval excludes reentrant checkpointing): a small A/B that CI runs.
TWO_CASES = ("--only", "model=cbam_classifier_tiny,attention_mha_tiny", "--only", "mode=eval",
             "--only", "precision=fp32")
#: Appended to the head revision's run command: ``harness run`` then fails before measuring anything.
#: Put first in the head's worker (harness/runner/worker.py): its workers die on start-up.
BROKEN_WORKER = 'raise RuntimeError("this revision is broken on purpose")\n'


@pytest.fixture(scope="module")
def real_project(tmp_path_factory):
    """A git copy of this project: commit ``good`` (as checked out here) and ``broken`` on top of it."""
    pytest.importorskip("torch", reason="the real runner needs torch (every test environment has it)")
    repo = tmp_path_factory.mktemp("real") / "proj"
    shutil.copytree(ROOT, str(repo), ignore=shutil.ignore_patterns(".git", "results", ".nox", "__pycache__",
                                                                   ".pytest_cache", ".ruff_cache", ".venv*"))
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "snapshot")
    good = _git(repo, "rev-parse", "HEAD")
    worker = repo / "harness" / "runner" / "worker.py"
    worker.write_text(BROKEN_WORKER + worker.read_text())
    _git(repo, "commit", "-q", "-am", "broken")
    return repo, good, _git(repo, "rev-parse", "HEAD")


@needs_gate
def test_real_runner_a_a_passes(real_project, tmp_path, capsys):
    """The real runner, the same revision on both sides, 1 round a side: the gate must pass (exit 0)."""
    repo, good, _ = real_project
    out = tmp_path / "ab"
    code = run_ab(str(repo), good, good, str(repo / "scenarios" / "smoke.toml"), rounds=1, out_dir=str(out),
                  extra_args=TWO_CASES)
    captured = capsys.readouterr()
    assert code == 0, "an A/A run exited %d:\n%s" % (code, (captured.out + captured.err)[-4000:])
    doc = json.load(open(str(out / "gate-verdicts.json")))
    assert not [v for v in doc["verdicts"] if v["verdict"] == "regressed"]
    log = json.load(open(str(out / "ab-rounds.json")))
    assert log["engine"] is True  # both revisions have the engine: one interleaved run
    assert [(r["label"], r["rc"]) for r in log["rounds"]] == [("base", 0), ("head", 0)]
    assert log["gate_exit_code"] == 0
    for folder, label in (("A", "base"), ("B", "head")):
        recs = [json.loads(line) for line in open(str(out / folder / (label + ".jsonl")))]
        assert sorted(r["case"]["model"] for r in recs) == ["attention_mha_tiny", "cbam_classifier_tiny"]
        assert all(r["status"] == "ok" and r["env_label"] == label for r in recs), recs
        assert all(r["round"]["index"] == 1 and r["round"]["paired"] and r["round"]["variants"] == ["base", "head"]
                   for r in recs)
    by_kind = {}
    for v in doc["verdicts"]:
        by_kind.setdefault(v["kind"], []).append(v["verdict"])
    # Accuracy: the fidelity, outputs-changed and behaviour checks of each case (eval: eval_buffers).
    assert {k: len(v) for k, v in by_kind.items()} == {"status": 2, "time": 2, "memory": 2, "accuracy": 6}
    assert sorted(v["check"] for v in doc["verdicts"] if v["kind"] == "accuracy") == [
        "behaviour", "behaviour", "fidelity", "fidelity", "outputs", "outputs"]
    assert by_kind["status"] == ["unchanged"] * 2 and by_kind["accuracy"] == ["unchanged"] * 6
    # one round a side: time changes are at most inconclusive (the gate needs 3 rounds a side for them)
    assert set(by_kind["time"]) <= {"unchanged", "inconclusive"}
    assert _worktrees_left(repo, out) == ([], False)


def test_a_failed_round_is_reported_and_the_worktrees_are_removed(real_project, tmp_path, capsys):
    """A head revision whose workers cannot start: the head drops out, the base's cases still run, ab says so
    and cleans up; the gate's exit is 2 (no candidate records)."""
    repo, good, broken = real_project
    out = tmp_path / "ab"
    code = run_ab(str(repo), good, broken, str(repo / "scenarios" / "smoke.toml"), rounds=1, out_dir=str(out),
                  extra_args=TWO_CASES)
    err = capsys.readouterr().err
    # the candidate has no records: an input error of the gate (or its missing dependencies: also 2)
    assert code == 2, err[-3000:]
    assert "ab: head (B) dropped out: worker failed to start" in err and "broken on purpose" in err
    log = json.load(open(str(out / "ab-rounds.json")))
    assert log["engine"] is True
    assert [(r["label"], r["rc"]) for r in log["rounds"]] == [("base", 0), ("head", 1)]
    assert len(open(str(out / "A" / "base.jsonl")).readlines()) == 2
    head = out / "B" / "head.jsonl"
    assert not head.exists() or head.read_text() == ""  # no head record
    assert _worktrees_left(repo, out) == ([], False)
    assert _git(repo, "status", "--porcelain") == ""


# --- the pull-request workflow ------------------------------------------------------------------------------

def _workflow():
    import yaml  # the test sessions install PyYAML (noxfile.py)

    with open(WORKFLOW, encoding="utf-8") as fh:
        text = fh.read()
    return text, yaml.safe_load(text)


def test_workflow_runs_the_ab_session_on_the_pull_request_revisions():
    from harness.cli import build_parser
    from harness.commands import ab as ab_command

    text, doc = _workflow()
    assert "\t" not in text
    on = doc.get("on", doc.get(True))   # YAML 1.1 reads a bare `on` as True
    assert "pull_request" in on
    assert doc["permissions"]["pull-requests"] == "write"
    job = doc["jobs"]["ab"]
    steps = job["steps"]
    checkout = [s for s in steps if str(s.get("uses", "")).startswith("actions/checkout@")][0]
    assert checkout["with"]["fetch-depth"] == 0   # the base revision's worktree needs the history
    ab = [s for s in steps if s.get("id") == "ab"][0]
    # the base's tooling runs it: its noxfile and harness, from a worktree of the merge commit's first parent
    assert ab["working-directory"] == "tooling" and checkout["with"]["path"] == "pr"
    tooling = [s for s in steps if "worktree add" in str(s.get("run", ""))][0]
    assert '"$GITHUB_WORKSPACE/tooling" "${{ steps.revs.outputs.base }}"' in tooling["run"]
    # GitHub substitutes the ${{ }} expressions before the shell reads the line: do the same, with a value
    for flag in ("", ab_command.TRUST_LABEL):
        line = re.sub(r"\$\{\{\s*(.*?)\s*\}\}", lambda m: "<%s>" % m.group(1), ab["run"])
        argv = shlex.split(line.replace("$TRUST_FLAG", "--trust-head-config" if flag else ""))
        assert argv[:4] == ["nox", "-s", "ab", "--"]
        # what the session passes on to `python -m harness ab` parses, with the pull request's two revisions
        args = build_parser().parse_args(["ab"] + argv[4:])
        assert args.command == "ab" and args.run is ab_command.run and args.trust_head_config == bool(flag)
    assert args.base == "<steps.revs.outputs.base>" and args.head == "<steps.revs.outputs.head>"
    assert args.repo == "../pr"
    # the label the maintainer adds is the one the workflow reads
    assert "contains(github.event.pull_request.labels.*.name, '%s')" % ab_command.TRUST_LABEL in job["env"][
        "TRUST_FLAG"]
    assert {"labeled", "unlabeled", "synchronize"} <= set(on["pull_request"]["types"])
    # one round a side with the instruction pass: the counts decide time (ab's default rounds with --instructions)
    # the scenario lies inside the measured repository: each side runs its own copy; the base's [gate] applies
    assert args.scenario == "../pr/scenarios/smoke.toml" and args.instructions and args.rounds is None
    installs = [s["run"] for s in steps if "apt-get install" in str(s.get("run", ""))]
    assert installs and "valgrind" in installs[0] and steps.index(ab) > steps.index(
        [s for s in steps if s.get("run") == installs[0]][0])
    # the summary the later steps post is the one ab writes (its default output folder)
    assert os.path.normpath(job["env"]["SUMMARY"]) == os.path.join("tooling", args.out, "gate-summary.md")
    upload = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")][0]
    kept = upload["with"]["path"].split()
    assert {os.path.join("tooling", args.out, name) for name in (
        "A", "B", "gate-verdicts.json", "gate-summary.md", "ab-rounds.json", "ab-policy.json")} == {
            os.path.normpath(p) for p in kept}
    # a regression fails the job, but only after the summary and the comment are posted
    assert ab["continue-on-error"] is True
    assert steps[-1]["if"] == "steps.ab.outcome == 'failure'" and "exit 1" in steps[-1]["run"]
    later = steps[steps.index(ab) + 1:-1]
    assert later and all(s["if"] == "always()" for s in later)


def test_workflow_measures_the_merge_commit_against_its_first_parent(tmp_path):
    """A throw-away repository where the base branch moved after the pull request's payload was
    taken: the workflow's revisions step (run as written) picks the merge commit's first parent, so
    the head side carries the pull request's change only, not the base branch's newer commits."""
    _, doc = _workflow()
    step = [s for s in doc["jobs"]["ab"]["steps"] if s.get("id") == "revs"][0]
    repo = tmp_path / "pr"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "a.txt").write_text("a\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "payload base")
    payload_base = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "-b", "feature")
    (repo / "pr.txt").write_text("the pull request\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "the pull request")
    _git(repo, "checkout", "-q", "main")
    (repo / "other.txt").write_text("someone else's commit\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "the base branch moved")
    moved = _git(repo, "rev-parse", "HEAD")
    _git(repo, "merge", "-q", "--no-ff", "--no-edit", "feature")   # what refs/pull/N/merge holds
    merge = _git(repo, "rev-parse", "HEAD")
    out = tmp_path / "github_output"
    subprocess.run(["bash", "-e", "-c", step["run"]], cwd=str(repo / step["working-directory"].replace("pr", ".")),
                   env=dict(os.environ, GITHUB_OUTPUT=str(out)), check=True)
    revs = dict(line.split("=", 1) for line in out.read_text().split())
    assert revs == {"base": moved, "head": merge} and revs["base"] != payload_base
    assert _git(repo, "diff", "--name-only", revs["base"], revs["head"]) == "pr.txt"
    assert sorted(_git(repo, "diff", "--name-only", payload_base, revs["head"]).split()) == ["other.txt", "pr.txt"]


def test_workflow_comment_carries_the_gate_marker():
    pytest.importorskip("pandas", reason="the gate package (its comment marker) is the analysis side's")
    from harness.analysis.gate.markdown import MARKER

    _, doc = _workflow()
    post = [s for s in doc["jobs"]["ab"]["steps"] if str(s.get("uses", "")).startswith("actions/github-script@")]
    script = post[0]["with"]["script"]
    assert "const marker = '%s';" % MARKER in script and "process.env.SUMMARY" in script
