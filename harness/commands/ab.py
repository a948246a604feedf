"""A/B runs: measure two git revisions in interleaved rounds, then run the gate.

``run_ab(repo, base_rev, head_rev, scenario)`` checks each revision out in its own
git worktree under ``<out_dir>/worktrees/`` (removed afterwards, also after an
error or Ctrl-C), then runs the scenario ``rounds`` times per revision, each round a
fresh ``python -m harness run SCENARIO --out <out_dir>/<A|B> --env-label <base|head>
--append`` with the worktree as working directory and first on ``PYTHONPATH``, so each
revision's own code is measured. Finally it calls the gate on ``<out_dir>/A``
(baseline) and ``<out_dir>/B`` (candidate), which writes ``gate-verdicts.json`` and
``gate-summary.md`` into ``out_dir``; its exit code is returned.

Why rounds, interleaved. On a shared machine the speed drifts and every fresh process has
its own speed, so the gate's unit of replication is the process, not the sample
(docs/gate.md, "Time": "The test", and its figures). Interleaving spreads drift over both
sides, and several rounds per side let the gate test round medians (``time_test = "auto"``
with ``min_rounds``). The default order is ``"abba"`` (A B B A A B ...): each pair swaps
who goes first, so a drift that is linear in time cancels exactly; plain ``"abab"`` leaves
B half a round later on average.

Scenario: a path inside the repository (relative to the current directory, or
absolute) is read from each revision's own worktree, so each revision runs its own
scenario file; a revision that lacks it uses the head's. A path outside the repository
is used as is by both. The gate's thresholds come from the head's copy.

Standard library only; the gate (pandas, scipy) is imported only at the end, in this
process, or run with ``gate_python`` when given. Exit codes (``harness.vocab.ExitCode``):
the gate's (OK, FAILURE for a regression, INPUT, INTERNAL); INPUT also for a bad
repository, revision or scenario before anything ran; INTERRUPTED on Ctrl-C.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

from harness.fileio import REPO_ROOT, atomic_write_text
from harness.scenario.spec import resolve_path
from harness.vocab import ExitCode

NAME = "ab"
HELP = "measure two git revisions in interleaved rounds (A B B A ...), then gate"

#: (folder under out_dir, env label) of each side.
SIDES = {"A": ("A", "base"), "B": ("B", "head")}
ORDERS = ("abba", "abab")


class ABError(Exception):
    """A problem found before or around the rounds (repository, revision, scenario)."""


def round_order(rounds: int, order: str = "abba") -> List[str]:
    """The sequence of sides for ``rounds`` rounds each: ``abba`` gives A B B A A B ..."""
    if order not in ORDERS:
        raise ValueError("order must be one of %s, got %r" % (ORDERS, order))
    seq: List[str] = []
    for r in range(rounds):
        seq.extend(("B", "A") if order == "abba" and r % 2 else ("A", "B"))
    return seq


def _git(repo: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", "-C", repo] + list(args), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise ABError("git %s failed in %s: %s" % (" ".join(args), repo, (proc.stderr or proc.stdout).strip()))
    return proc


def resolve_revision(repo: str, rev: str) -> str:
    """The full commit id of ``rev`` in ``repo``; ``ABError`` when it is not a commit there."""
    proc = _git(repo, "rev-parse", "--verify", "--quiet", rev + "^{commit}", check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ABError("%s: %r is not a commit in this repository" % (repo, rev))
    return proc.stdout.strip()


def _remove_worktree(repo: str, path: str) -> None:
    _git(repo, "worktree", "remove", "--force", path, check=False)
    if os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)
    _git(repo, "worktree", "prune", check=False)


def _add_worktree(repo: str, path: str, commit: str) -> None:
    if os.path.exists(path):  # left over by a killed run
        _remove_worktree(repo, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _git(repo, "worktree", "add", "--detach", path, commit)


def _scenario_for(scenario: str, toplevel: str, worktree: str, fallback: Optional[str]) -> str:
    """The scenario file a worktree runs (see the module docstring)."""
    path = os.path.realpath(os.path.abspath(scenario))
    rel = os.path.relpath(path, os.path.realpath(toplevel))
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return path
    inside = os.path.join(worktree, rel)
    if os.path.exists(inside):
        return inside
    return fallback or path


def _move_aside(out_dir: str, print_fn: Callable) -> None:
    """Earlier A/B records would be pooled by ``--append``: move them to previous/<time>/."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for name in ("A", "B", "gate-verdicts.json", "gate-summary.md", "ab-rounds.json"):
        src = os.path.join(out_dir, name)
        if os.path.exists(src):
            dest = os.path.join(out_dir, "previous", stamp)
            os.makedirs(dest, exist_ok=True)
            os.replace(src, os.path.join(dest, name))
            print_fn("ab: earlier %s moved to %s" % (name, dest))


def _run_round(cmd: Sequence[str], cwd: str, env: Dict[str, str], timeout_s: Optional[float]) -> int:
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, start_new_session=True)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return -signal.SIGKILL
    except BaseException:  # Ctrl-C: take the round's whole process group down with us
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        raise


def _write_json(path: str, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def _run_gate(out_dir: str, scenario_path: Optional[str], gate_python: Optional[str]) -> int:
    base, head = os.path.join(out_dir, "A"), os.path.join(out_dir, "B")
    json_out, md_out = os.path.join(out_dir, "gate-verdicts.json"), os.path.join(out_dir, "gate-summary.md")
    if gate_python:
        cmd = [gate_python, "-m", "harness", "gate", "--baseline", base, "--candidate", head,
               "--json", json_out, "--markdown", md_out]
        if scenario_path:
            cmd += ["--scenario", scenario_path]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        return subprocess.run(cmd, cwd=REPO_ROOT, env=env).returncode
    try:
        from harness.analysis.gate import run_gate
    except ImportError as exc:
        print("ab: the gate needs the analysis dependencies (pip install '.[analysis]'), or pass gate_python: %s"
              % exc, file=sys.stderr)
        return ExitCode.INPUT
    return run_gate([base], [head], scenario_path=scenario_path, json_out=json_out, markdown_out=md_out)


def run_ab(repo: str, base_rev: str, head_rev: str, scenario: str, rounds: int = 3,
           out_dir: str = os.path.join("results", "ab"), python: str = sys.executable,
           extra_args: Sequence[str] = (), order: str = "abba", timeout_s: Optional[float] = None,
           gate_python: Optional[str] = None, instructions: bool = False, print_fn: Callable = print) -> int:
    """Measure ``base_rev`` (A) and ``head_rev`` (B) of ``repo`` in interleaved rounds; gate.

    ``python`` runs the rounds (an environment with torch); ``extra_args`` are added
    to every ``harness run`` command (``--only model=cbam*``...); ``timeout_s`` limits
    one round (its process group is killed). ``instructions`` adds the instruction pass
    (``run --instructions``) to the first round of each side: counts are deterministic, so one
    pass a side is enough, and the gate judges time on them. Returns the gate's exit code, or 2 for a
    bad repository, revision or scenario, 130 when interrupted. See the module docstring.
    """
    if rounds < 1:
        print("ab: rounds must be >= 1, got %r" % rounds, file=sys.stderr)
        return ExitCode.INPUT
    try:
        seq = round_order(rounds, order)
        toplevel = _git(os.path.abspath(repo), "rev-parse", "--show-toplevel").stdout.strip()
        commits = {"A": resolve_revision(toplevel, base_rev), "B": resolve_revision(toplevel, head_rev)}
    except (ABError, ValueError) as exc:
        print("ab: %s" % exc, file=sys.stderr)
        return ExitCode.INPUT
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    _move_aside(out_dir, print_fn)
    trees = {side: os.path.join(out_dir, "worktrees", SIDES[side][1]) for side in SIDES}
    log: Dict = {"repo": toplevel, "base": {"rev": base_rev, "commit": commits["A"]},
                 "head": {"rev": head_rev, "commit": commits["B"]}, "order": "".join(seq), "rounds": []}
    try:
        for side in ("B", "A"):
            _add_worktree(toplevel, trees[side], commits[side])
        scen = {"B": _scenario_for(scenario, toplevel, trees["B"], None)}
        scen["A"] = _scenario_for(scenario, toplevel, trees["A"], scen["B"])
        if not os.path.exists(scen["B"]):
            raise ABError("scenario %s not found (looked in the head revision and as given)" % scenario)
        print_fn("ab: %s (A, %s) vs %s (B, %s), %d rounds each, order %s" % (
            base_rev, commits["A"][:10], head_rev, commits["B"][:10], rounds, "".join(seq)))
        for i, side in enumerate(seq):
            folder, label = SIDES[side]
            cmd = [python, "-m", "harness", "run", scen[side], "--out", os.path.join(out_dir, folder),
                   "--env-label", label, "--append"] + list(extra_args)
            if instructions and side not in seq[:i]:
                cmd.append("--instructions")
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([trees[side]] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
            print_fn("ab: round %d/%d: %s (%s)" % (i + 1, len(seq), label, commits[side][:10]))
            t0 = time.time()
            rc = _run_round(cmd, trees[side], env, timeout_s)
            log["rounds"].append({"index": i, "side": side, "label": label, "rc": rc,
                                  "seconds": round(time.time() - t0, 3)})
            _write_json(os.path.join(out_dir, "ab-rounds.json"), log)
            if rc == ExitCode.INTERRUPTED:
                raise KeyboardInterrupt
            if rc != 0:
                print("ab: round %d (%s) exited with %d" % (i + 1, label, rc), file=sys.stderr)
        code = _run_gate(out_dir, scen["B"], gate_python)
        log["gate_exit_code"] = code
        _write_json(os.path.join(out_dir, "ab-rounds.json"), log)
        return code
    except ABError as exc:
        print("ab: %s" % exc, file=sys.stderr)
        return ExitCode.INPUT
    except KeyboardInterrupt:
        print("ab: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    finally:
        for path in trees.values():
            _remove_worktree(toplevel, path)
        try:
            os.rmdir(os.path.join(out_dir, "worktrees"))
        except OSError:
            pass


def add_arguments(parser) -> None:
    parser.add_argument("scenario", help="scenario file, or the name of one in scenarios/")
    parser.add_argument("--base", required=True, help="baseline revision (A)")
    parser.add_argument("--head", required=True, help="candidate revision (B)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per revision (default 1 with --instructions, where the counts decide time, "
                             "else 3: wall-time verdicts need 3)")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under valgrind in the first round of each side; the gate's time "
                             "verdicts then rest on the counts, so one round a side decides")
    parser.add_argument("--out", default=os.path.join("results", "ab"),
                        help="output folder: A/, B/, gate-verdicts.json, gate-summary.md (default results/ab)")
    parser.add_argument("--repo", default=".", help="the git repository (default: the current folder)")


def default_rounds(instructions: bool) -> int:
    """Rounds a side when ``--rounds`` is not given: the counts are deterministic, so one round
    decides with ``--instructions``; wall-time verdicts need ``min_rounds`` (3)."""
    return 1 if instructions else 3


def run(args) -> int:
    rounds = args.rounds if args.rounds is not None else default_rounds(args.instructions)
    return run_ab(args.repo, args.base, args.head, resolve_path(args.scenario), rounds=rounds, out_dir=args.out,
                  instructions=args.instructions)
