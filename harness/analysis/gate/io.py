"""The gate's files: the two record stores and the scenario's ``[gate]`` table in, the
verdicts JSON and the Markdown summary out; ``evaluate`` and ``run_gate`` tie them to
``compare``.

Every bad input is an ``InputError`` naming the file (exit code 2); what the exit codes
mean: docs/gate.md.
"""
import json
import math
import os
import sys
import traceback
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from harness.analysis.gate.markdown import render_markdown
from harness.analysis.gate.matching import compare, count_verdicts, exit_code_for
from harness.analysis.load import InputError, load_records
from harness.fileio import atomic_write_text, load_toml
from harness.scenario.gate_config import apply_overrides, thresholds_for, validate_gate_table
from harness.vocab import ExitCode

#: Version of the verdicts JSON written by ``run_gate``.
VERDICTS_SCHEMA = "torchmatrix-gate/1"


def _read_scenario(path: str) -> Dict:
    try:
        return load_toml(path)
    except FileNotFoundError:
        raise InputError("%s: scenario file not found" % path) from None
    except (OSError, ValueError) as exc:
        raise InputError("%s: cannot read the scenario file (%s)" % (path, exc)) from None


def load_gate_table(scenario_path: Optional[str], overrides: Optional[Dict] = None) -> Dict:
    """The validated ``[gate]`` table of ``scenario_path`` (empty without one), overrides applied.

    Raises ``InputError`` naming the file and every bad key.
    """
    table: Dict = {}
    if scenario_path:
        table = _read_scenario(scenario_path).get("gate") or {}
        errors = validate_gate_table(table, "%s [gate]" % scenario_path)
        if errors:
            raise InputError("invalid [gate] table: " + "; ".join(errors))
    try:
        return apply_overrides(table, overrides)
    except ValueError as exc:
        raise InputError("invalid gate override: %s" % exc) from None


def _load_side(paths: Sequence[str], side: str) -> Tuple[pd.DataFrame, List[str]]:
    """The records of one side and its warnings; records of another schema version are an error."""
    try:
        df, problems = load_records(paths)
    except InputError as exc:
        raise InputError("%s: %s" % (side, exc)) from None
    schema = [p for p in problems if "schema_version" in p]
    if schema:
        raise InputError("%s: records of another schema version (re-run with this version of the runner): %s" % (
            side, "; ".join(schema[:5])))
    return df, ["%s: %s" % (side, p) for p in problems]


def _scenarios(df: pd.DataFrame) -> List[str]:
    return sorted({str(s) for s in df["scenario"].tolist() if isinstance(s, str)})


def _scenario_sources(df: pd.DataFrame) -> str:
    """'scenario in file, file' for each scenario of a side."""
    parts = []
    for name, sub in df[df["scenario"].notna()].groupby("scenario"):
        parts.append("%r in %s" % (name, ", ".join(sorted({str(s) for s in sub["source"]}))))
    return "; ".join(parts)


def _check_scenarios(df_b: pd.DataFrame, df_c: pd.DataFrame, scenario_path: Optional[str]) -> pd.DataFrame:
    """Baseline restricted to the candidate's scenarios; InputError when they do not meet."""
    sb, sc = _scenarios(df_b), _scenarios(df_c)
    if sb and sc and not set(sb) & set(sc):
        raise InputError("baseline and candidate come from different scenarios: baseline %s; candidate %s" % (
            _scenario_sources(df_b), _scenario_sources(df_c)))
    if scenario_path and sc:
        data = _read_scenario(scenario_path)
        names = {os.path.splitext(os.path.basename(scenario_path))[0]}
        for holder in (data, data.get("scenario") if isinstance(data.get("scenario"), dict) else {}):
            if isinstance(holder.get("name"), str):
                names.add(holder["name"])
        if not names & set(sc):
            raise InputError("%s: scenario %s, but the candidate's records come from %s" % (
                scenario_path, sorted(names), sc))
    if sc:
        df_b = df_b[df_b["scenario"].isin(sc) | df_b["scenario"].isna()]
    return df_b


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars as Python ones and non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _side(paths: List[str], df: pd.DataFrame) -> Dict:
    return {"paths": paths, "records": int(len(df)), "scenarios": _scenarios(df),
            "env_labels": sorted({str(x) for x in df["env_label"].dropna()})}


def load_policy(path: Optional[str]) -> Optional[Dict]:
    """The policy note ``ab`` writes (``harness.commands.ab.policy_note``): where the thresholds came
    from and what the head changed; None without a path. Raises ``InputError`` naming the file."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            policy = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InputError("%s: cannot read the policy note (%s)" % (path, exc)) from None
    if not isinstance(policy, dict) or not isinstance(policy.get("changes", []), list):
        raise InputError("%s: the policy note must be an object with a list 'changes', got %r" % (
            path, type(policy).__name__))
    return policy


def evaluate(baseline_paths, candidate_paths, scenario_path: Optional[str] = None,
             overrides: Optional[Dict] = None, policy: Optional[Dict] = None) -> Dict:
    """Load, compare and summarise; returns the verdicts document (what the JSON holds)
    with ``markdown`` added. ``policy``: where the thresholds came from (``ab``'s note), shown
    in the summary. Raises ``InputError`` for bad input."""
    if isinstance(baseline_paths, str):
        baseline_paths = [baseline_paths]
    if isinstance(candidate_paths, str):
        candidate_paths = [candidate_paths]
    baseline_paths, candidate_paths = [str(p) for p in baseline_paths], [str(p) for p in candidate_paths]
    table = load_gate_table(scenario_path, overrides)
    df_b, problems_b = _load_side(baseline_paths, "baseline")
    df_c, problems_c = _load_side(candidate_paths, "candidate")
    df_b = _check_scenarios(df_b, df_c, scenario_path)
    verdicts = compare(df_b, df_c, table)
    code = exit_code_for(verdicts)
    doc = _jsonable({
        "schema": VERDICTS_SCHEMA, "exit_code": code, "passed": code == ExitCode.OK,
        "baseline": _side(baseline_paths, df_b), "candidate": _side(candidate_paths, df_c),
        "thresholds": thresholds_for("", table), "gate_table": table, "counts": count_verdicts(verdicts),
        "problems": problems_b + problems_c, "verdicts": verdicts, "policy": policy,
    })
    doc["markdown"] = render_markdown(doc)
    return doc


def run_gate(baseline_paths, candidate_paths, scenario_path: Optional[str] = None, json_out: Optional[str] = None,
             markdown_out: Optional[str] = None, overrides: Optional[Dict] = None,
             policy: Optional[Dict] = None) -> int:
    """Run the gate on record files or folders; return the exit code (``harness.vocab.ExitCode``).

    Prints the Markdown summary to stdout, writes it to ``markdown_out`` and the
    verdicts document to ``json_out`` (each atomically) when given. ``overrides`` is a
    dict of ``[gate]`` keys that win over the scenario's values for every model.
    Input errors go to stderr, naming the file, and return ``ExitCode.INPUT``.
    """
    for flag, path in (("--json", json_out), ("--markdown", markdown_out)):
        if path and os.path.isdir(path):  # checked first: nothing is written when an output is unusable
            print("gate: input error: %s %s is a folder: name the file to write" % (flag, path), file=sys.stderr)
            return ExitCode.INPUT
    try:
        doc = evaluate(baseline_paths, candidate_paths, scenario_path, overrides, policy)
    except InputError as exc:
        print("gate: input error: %s" % exc, file=sys.stderr)
        return ExitCode.INPUT
    except Exception:  # noqa: BLE001 - the contract is exit code 3, with the traceback
        print("gate: internal error:\n%s" % traceback.format_exc(), file=sys.stderr)
        return ExitCode.INTERNAL
    target = None
    try:
        markdown = doc.pop("markdown")
        if json_out:
            target = json_out
            atomic_write_text(json_out, json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n")
        if markdown_out:
            target = markdown_out
            atomic_write_text(markdown_out, markdown)
        print(markdown)
        for problem in doc["problems"]:
            print("gate: warning: %s" % problem, file=sys.stderr)
        if doc["exit_code"] == ExitCode.INPUT:
            print("gate: input error: no case of the candidate could be compared with the baseline "
                  "(see not comparable / new / vanished above)", file=sys.stderr)
    except OSError as exc:
        print("gate: error: cannot write %s: %s" % (target or "the summary", exc.strerror or exc), file=sys.stderr)
        return ExitCode.INPUT
    except Exception:  # noqa: BLE001
        print("gate: internal error:\n%s" % traceback.format_exc(), file=sys.stderr)
        return ExitCode.INTERNAL
    return ExitCode(doc["exit_code"])
