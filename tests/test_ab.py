"""A/B runner: worktrees per revision, interleaved rounds, each revision's own code, gate.

Most tests use a throw-away git repository whose ``harness`` package is a stand-in
runner (it writes schema records whose speed is set by the revision's code), so the
orchestration is tested in seconds. ``test_real_runner_ab`` runs the real runner on a
copy of this project (about a minute per round on the 2-core machine): set
``TORCHMATRIX_SLOW_TESTS=1`` to run it.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from harness.commands.ab import round_order, run_ab
from harness.record import SCHEMA_VERSION

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
                             "code": os.path.abspath(__file__), "args": args}}) + "\\n")
    if os.environ.get("AB_TEST_FAIL_LABEL") == label:
        sys.exit(1)
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


@needs_gate
@pytest.mark.skipif(os.environ.get("TORCHMATRIX_SLOW_TESTS") != "1", reason="slow: set TORCHMATRIX_SLOW_TESTS=1")
def test_real_runner_ab(tmp_path):
    """The real runner on a copy of this project: A/A on one tiny case, then the gate."""
    pytest.importorskip("torch")
    repo = tmp_path / "proj"
    shutil.copytree(ROOT, str(repo), ignore=shutil.ignore_patterns(".git", "results", ".nox", "__pycache__",
                                                                   ".pytest_cache", ".ruff_cache", ".venv*"))
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "snapshot")
    out = tmp_path / "ab"
    code = run_ab(str(repo), "HEAD", "HEAD", str(repo / "scenarios" / "smoke.toml"), rounds=1, out_dir=str(out),
                  extra_args=("--only", "model=cbam_classifier_tiny", "--only", "mode=eval",
                              "--only", "precision=fp32"))
    doc = json.load(open(str(out / "gate-verdicts.json")))
    assert code in (0, 1), code
    kinds = {v["kind"] for v in doc["verdicts"]}
    assert {"status", "time", "memory", "accuracy"} <= kinds
    assert all(v["verdict"] != "not_comparable" for v in doc["verdicts"])


def test_workflow_runs_the_ab_session_and_posts_the_summary():
    pytest.importorskip("pandas", reason="the gate package (its comment marker) is the analysis side's")
    from harness.analysis.gate.markdown import MARKER

    with open(WORKFLOW, encoding="utf-8") as fh:
        text = fh.read()
    assert "\t" not in text
    assert "nox -s ab --" in text and "${{ github.event.pull_request.base.sha }}" in text
    assert "${{ github.sha }}" in text and "scenarios/smoke.toml" in text
    assert MARKER in text and "results/ab/gate-summary.md" in text
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(text)
    on = doc.get("on", doc.get(True))   # YAML 1.1 reads a bare `on` as True
    assert "pull_request" in on
    steps = doc["jobs"]["ab"]["steps"]
    ab = [s for s in steps if s.get("id") == "ab"][0]
    assert ab["run"].split() == ["nox", "-s", "ab", "--", "--base", "${{", "github.event.pull_request.base.sha",
                                 "}}", "--head", "${{", "github.sha", "}}", "scenarios/smoke.toml"]
    assert ab["continue-on-error"] is True and steps[-1]["if"] == "steps.ab.outcome == 'failure'"
    assert doc["permissions"]["pull-requests"] == "write"
