"""A/B runs: measure two git revisions in interleaved rounds, then run the gate.

``run_ab(repo, base_rev, head_rev, scenario)`` checks each revision out in its own
git worktree under ``<out_dir>/worktrees/`` (removed afterwards, also after an
error or Ctrl-C), then runs both as the two variants of one interleaved run
(``harness.engine``): in each of ``rounds`` rounds each case is measured by the base and the
head back to back, each side in a fresh worker running its own revision's code (the
worktree is its working folder and first on ``PYTHONPATH``); records go to
``<out_dir>/A/base.jsonl`` and ``<out_dir>/B/head.jsonl``. A revision from before the engine
(no ``ENGINE_MARK``) runs whole rounds instead, each a fresh ``python -m harness run SCENARIO
--out <out_dir>/<A|B> --env-label <base|head> --append``, in ``order``. Finally it calls the gate on ``<out_dir>/A``
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
is used as is by both.

Policy from the base. The gate's thresholds come from the BASE revision's copy of the
scenario (the defaults where the base lacks it): a pull request cannot relax the rules it is
judged by. The head's changes to the ``[gate]`` table are shown in the summary as a table,
"not applied", unless ``trust_head_config`` (``--trust-head-config``; in CI a maintainer's
label, ``TRUST_LABEL``) says to apply them, which the summary says too. Changes the head makes
to the gate's own tooling (``GATE_TOOLING``) are named in the summary for review; the workflow
runs the base's tooling (.github/workflows/ab-gate.yml). The note is written to
``<out_dir>/ab-policy.json`` and given to the gate (``gate --policy``).

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
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from harness.fileio import REPO_ROOT, atomic_write_text, load_toml
from harness.scenario.gate_config import diff_gate_tables
from harness.scenario.spec import resolve_path
from harness.vocab import COUNT_STEPS_FROM_ENV, ExitCode

NAME = "ab"
HELP = "measure two git revisions in interleaved rounds (A B B A ...), then gate"

#: The pull-request label that makes the workflow pass ``--trust-head-config`` (a maintainer's opt-in).
TRUST_LABEL = "gate:trust-head-config"
#: Paths whose change by the head changes how the gate judges (named in the summary for review;
#: .github/CODEOWNERS asks a maintainer's review of the same paths).
GATE_TOOLING = (".github/", "noxfile.py", "harness/analysis/gate/", "harness/commands/ab.py",
                "harness/commands/gate.py", "harness/scenario/gate_config.py", "harness/measures.py",
                "harness/vocab.py")

#: The base's step times written for the head's counting round (``harness.runner.instruction_pass``).
BASE_STEPS = "ab-base-steps.json"

#: A revision that has this file speaks the engine's protocol (``harness.engine``): ``ab`` runs both sides as
#: variants of one interleaved run; an older one runs whole rounds, one ``harness run`` per side and round.
ENGINE_MARK = os.path.join("harness", "engine", "cases.py")

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
    base, n = stamp, 1
    while os.path.exists(os.path.join(out_dir, "previous", stamp)):  # two runs within one second
        n += 1
        stamp = "%s-%d" % (base, n)
    for name in ("A", "B", "gate-verdicts.json", "gate-summary.md", "ab-rounds.json", "ab-policy.json",
                 BASE_STEPS):
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


def base_steps(folder: str) -> Dict[str, float]:
    """``{case key: median step seconds}`` of the ok records in ``folder`` (the base's first round):
    they decide which cases the head's instruction pass counts. Unreadable lines are skipped (the
    gate reports them)."""
    steps: Dict[str, float] = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if not name.endswith(".jsonl"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                median_s = (rec.get("timing") or {}).get("median_s") if isinstance(rec, dict) else None
                if rec.get("status") == "ok" and isinstance(median_s, (int, float)) and rec.get("case_key"):
                    steps.setdefault(str(rec["case_key"]), float(median_s))
    return steps


def _write_json(path: str, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def _gate_table(path: Optional[str]) -> Tuple[Optional[Dict], Optional[str]]:
    """(the ``[gate]`` table of a scenario file, or None without one; a problem reading it, or None)."""
    if not path or not os.path.exists(path):
        return None, None
    try:
        table = load_toml(path).get("gate")
    except (OSError, ValueError) as exc:
        return None, "%s: %s" % (path, exc)
    return (table if isinstance(table, dict) else None), None


def tooling_changes(repo: str, base: str, head: str) -> List[str]:
    """The files under ``GATE_TOOLING`` that differ between the two commits."""
    proc = _git(repo, "diff", "--name-only", base, head, "--", *GATE_TOOLING, check=False)
    return sorted(line for line in proc.stdout.splitlines() if line.strip()) if proc.returncode == 0 else []


def policy_note(base_scenario: Optional[str], head_scenario: str, trust_head_config: bool,
                tooling: Sequence[str] = ()) -> Tuple[Dict, Optional[str]]:
    """(the policy note, the scenario file whose ``[gate]`` table the gate applies, None for the
    defaults): the base's table unless ``trust_head_config``; the head's changes listed either way."""
    base_table, base_problem = _gate_table(base_scenario)
    head_table, head_problem = _gate_table(head_scenario)
    changes = diff_gate_tables(base_table, head_table) if not head_problem else []
    if trust_head_config:
        source, path = "the head revision's scenario (--trust-head-config: a maintainer opted in)", head_scenario
    elif base_scenario:
        source, path = "the base revision's scenario", base_scenario
    else:
        source, path = "the defaults (the base revision has no copy of the scenario)", None
    note = {"source": source, "applied": bool(trust_head_config and changes), "changes": changes,
            "tooling_changes": list(tooling), "label": TRUST_LABEL,
            "problems": [p for p in (base_problem, head_problem) if p]}
    return note, path


def _run_gate(out_dir: str, scenario_path: Optional[str], gate_python: Optional[str],
              policy: Optional[Dict] = None) -> int:
    base, head = os.path.join(out_dir, "A"), os.path.join(out_dir, "B")
    json_out, md_out = os.path.join(out_dir, "gate-verdicts.json"), os.path.join(out_dir, "gate-summary.md")
    if gate_python:
        cmd = [gate_python, "-m", "harness", "gate", "--baseline", base, "--candidate", head,
               "--json", json_out, "--markdown", md_out]
        if policy is not None:
            policy_path = os.path.join(out_dir, "ab-policy.json")
            _write_json(policy_path, policy)
            cmd += ["--policy", policy_path]
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
    if policy is not None:
        _write_json(os.path.join(out_dir, "ab-policy.json"), policy)
    return run_gate([base], [head], scenario_path=scenario_path, json_out=json_out, markdown_out=md_out,
                    policy=policy)


def run_ab(repo: str, base_rev: str, head_rev: str, scenario: str, rounds: int = 3,
           out_dir: str = os.path.join("results", "ab"), python: str = sys.executable,
           extra_args: Sequence[str] = (), order: str = "abba", timeout_s: Optional[float] = None,
           gate_python: Optional[str] = None, instructions: bool = False, trust_head_config: bool = False,
           print_fn: Callable = print) -> int:
    """Measure ``base_rev`` (A) and ``head_rev`` (B) of ``repo`` in interleaved rounds; gate.

    ``python`` runs the rounds (an environment with torch); ``extra_args`` are added
    to every ``harness run`` command (``--only model=cbam*``...); ``timeout_s`` limits
    one round (its process group is killed). ``instructions`` adds the instruction pass
    (``run --instructions``) to the first round of each side: counts are deterministic, so one
    pass a side is enough, and the gate judges time on them. ``trust_head_config`` applies the head's
    ``[gate]`` table instead of the base's (see the module docstring). Returns the gate's exit code, or 2 for a
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
        # the base's own copy (inside its worktree), or one outside the repository that both sides use
        base_own = scen["A"] if scen["A"] != scen["B"] or not scen["B"].startswith(trees["B"] + os.sep) else None
        if not os.path.exists(scen["B"]):
            raise ABError("scenario %s not found (looked in the head revision and as given)" % scenario)
        if speaks_engine(trees["A"]) and speaks_engine(trees["B"]):
            log["engine"] = True
            print_fn("ab: %s (A, %s) vs %s (B, %s), %d interleaved rounds (each case: base and head back to back)" % (
                base_rev, commits["A"][:10], head_rev, commits["B"][:10], rounds))
            _run_engine(trees, scen, base_own, out_dir, python, extra_args, rounds, instructions, log, print_fn)
        else:
            log["engine"] = False
            print_fn("ab: the %s revision predates the engine (no %s): whole rounds, one `harness run` per side and "
                     "round, order %s" % ("base" if not speaks_engine(trees["A"]) else "head", ENGINE_MARK,
                                          "".join(seq)))
            _run_whole_rounds(seq, trees, scen, commits, out_dir, python, extra_args, instructions, timeout_s,
                              log, print_fn)
        policy, gate_scenario = policy_note(base_own, scen["B"], trust_head_config,
                                            tooling_changes(toplevel, commits["A"], commits["B"]))
        for change in policy["changes"]:
            print_fn("ab: this revision changes %s %s → %s; %s" % (
                change["key"], change["base"], change["head"], "applied" if policy["applied"] else "not applied"))
        log["policy"] = policy
        code = _run_gate(out_dir, gate_scenario, gate_python, policy)
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


def speaks_engine(tree: str) -> bool:
    """Whether the revision checked out at ``tree`` has the engine's worker side (``ENGINE_MARK``)."""
    return os.path.exists(os.path.join(tree, ENGINE_MARK))


def _only_args(extra_args: Sequence[str]) -> List[str]:
    """The ``--only`` values of ``extra_args`` (the one ``harness run`` option the engine path takes)."""
    only, args = [], list(extra_args)
    while args:
        arg = args.pop(0)
        if arg == "--only" and args:
            only.append(args.pop(0))
        elif arg.startswith("--only="):
            only.append(arg[len("--only="):])
        else:
            raise ABError("extra argument %r: with the engine only --only AXIS=V,... is passed on" % arg)
    return only


def _run_engine(trees: Dict[str, str], scen: Dict[str, str], base_own: Optional[str], out_dir: str, python: str,
                extra_args: Sequence[str], rounds: int, instructions: bool, log: Dict, print_fn: Callable) -> None:
    """Both revisions as variants of one interleaved run (``harness.engine``): each case measured by the base
    and the head back to back, in a fresh worker per side and round, each side's worker running its own
    code and expanding its own scenario; the measure settings are the base's (the head's where the base
    lacks the scenario). A side whose code cannot list its cases takes no part (the gate then says so)."""
    from harness.engine.coordinator import run_variants
    from harness.engine.variant import Variant, VariantError
    from harness.scenario import spec as scenario_spec

    only = _only_args(extra_args)
    try:
        settings_from = scenario_spec.load(base_own or scen["B"])
    except scenario_spec.ScenarioError as exc:
        raise ABError("scenario %s: %s" % (base_own or scen["B"], "; ".join(exc.problems))) from None
    if instructions:
        settings_from.measure["instructions"] = True
    variants = []
    for side in ("A", "B"):
        folder, label = SIDES[side]
        variant = Variant(label, python, trees[side], out_path=os.path.join(out_dir, folder, label + ".jsonl"))
        try:
            variant.expand(scen[side], only)
        except VariantError as exc:
            print("ab: %s (%s) takes no part: %s" % (label, side, exc), file=sys.stderr)
            log["rounds"].append({"side": side, "label": label, "rc": ExitCode.FAILURE, "reason": str(exc)})
            continue
        os.makedirs(os.path.dirname(variant.out_path), exist_ok=True)
        variants.append(variant)
    _write_json(os.path.join(out_dir, "ab-rounds.json"), log)
    if not variants:
        return
    t0 = time.time()
    outcome = run_variants(settings_from, variants, rounds, print_fn=print_fn)
    for v in variants:
        side = "A" if v.label == SIDES["A"][1] else "B"
        dropped = outcome.dropped.get(v.label)
        if dropped:
            print("ab: %s (%s) dropped out: %s" % (v.label, side, dropped), file=sys.stderr)
        log["rounds"].append({"side": side, "label": v.label, "reason": dropped,
                              "records": len(outcome.written[v.label]),
                              "rc": ExitCode.INTERRUPTED if outcome.interrupted else ExitCode.FAILURE if dropped else 0,
                              "rounds": rounds, "seconds": round(time.time() - t0, 3)})
    _write_json(os.path.join(out_dir, "ab-rounds.json"), log)
    if outcome.interrupted:
        raise KeyboardInterrupt


def _run_whole_rounds(seq: List[str], trees: Dict[str, str], scen: Dict[str, str], commits: Dict[str, str],
                      out_dir: str, python: str, extra_args: Sequence[str], instructions: bool,
                      timeout_s: Optional[float], log: Dict, print_fn: Callable) -> None:
    """A revision from before the engine: each round one ``harness run`` of one side, in ``seq`` order."""
    for i, side in enumerate(seq):
        folder, label = SIDES[side]
        cmd = [python, "-m", "harness", "run", scen[side], "--out", os.path.join(out_dir, folder),
               "--env-label", label, "--append"] + list(extra_args)
        env = dict(os.environ)
        if instructions and side not in seq[:i]:
            cmd.append("--instructions")
            if side == "B" and "A" in seq[:i]:  # the base's steps decide which cases both sides count
                steps_path = os.path.join(out_dir, BASE_STEPS)
                _write_json(steps_path, base_steps(os.path.join(out_dir, SIDES["A"][0])))
                env[COUNT_STEPS_FROM_ENV] = steps_path
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
    parser.add_argument("--trust-head-config", action="store_true",
                        help="apply the head's [gate] thresholds (default: the base's; the head's changes are "
                             "listed in the summary, not applied)")


def default_rounds(instructions: bool) -> int:
    """Rounds a side when ``--rounds`` is not given: the counts are deterministic, so one round
    decides with ``--instructions``; wall-time verdicts need ``min_rounds`` (3)."""
    return 1 if instructions else 3


def run(args) -> int:
    rounds = args.rounds if args.rounds is not None else default_rounds(args.instructions)
    return run_ab(args.repo, args.base, args.head, resolve_path(args.scenario), rounds=rounds, out_dir=args.out,
                  instructions=args.instructions, trust_head_config=args.trust_head_config)
