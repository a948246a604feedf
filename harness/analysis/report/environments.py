"""The environments of a report: their versions, machines and dates, skipped ones, the reference.

``environment_table`` joins what the records say about each environment with the
``<env_label>.env.json`` files the nox matrix writes beside them (``read_env_files``),
including environments that were skipped and why; ``choose_reference`` picks the
environment the others are compared with. Never imports torch.
"""
import glob
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import pandas as pd

from harness.analysis.load import InputError
from harness.analysis.report.frame import STATUS_ORDER


def read_env_files(record_files: Sequence[str], extra_dirs: Sequence[str] = ()) -> Tuple[List[Dict], List[str]]:
    """Read the ``<env_label>.env.json`` files next to the record files.

    Returns ``(infos, problems)``: each info is the file's object plus ``path``; a file
    that is not a JSON object with an ``env_label`` becomes a problem naming it.
    """
    dirs = list(dict.fromkeys([os.path.dirname(os.path.abspath(p)) for p in record_files] +
                              [os.path.abspath(d) for d in extra_dirs]))
    infos, problems = [], []
    for folder in dirs:
        for path in sorted(glob.glob(os.path.join(folder, "*.env.json"))):
            try:
                with open(path, encoding="utf-8") as fh:
                    info = json.load(fh)
            except (OSError, ValueError) as exc:
                problems.append("%s: not a readable JSON environment file (%s)" % (path, exc))
                continue
            if not isinstance(info, dict) or not isinstance(info.get("env_label"), str):
                problems.append("%s: an environment file must be a JSON object with an env_label" % path)
                continue
            info = dict(info, path=path)
            infos.append(info)
    return infos, problems


def _first_env_dicts(df: pd.DataFrame) -> Dict[str, Dict]:
    """The full ``env`` object of one record per environment (re-read from its file)."""
    out = {}
    firsts = df.groupby("env", observed=True)[["source", "line"]].first()
    for env, (source, line) in firsts.iterrows():
        try:
            with open(source, encoding="utf-8") as fh:
                for lineno, text in enumerate(fh, 1):
                    if lineno == line:
                        out[env] = (json.loads(text).get("env") or {})
                        break
        except (OSError, ValueError, TypeError, AttributeError):
            out[env] = {}
    return out


def _flat_items(obj: Dict, prefix: str = "") -> List[Tuple[str, str]]:
    items = []
    for key in sorted(obj):
        value = obj[key]
        if isinstance(value, dict):
            items.extend(_flat_items(value, prefix + key + "."))
        elif isinstance(value, list):
            items.append((prefix + key, ", ".join(str(v) for v in value)))
        else:
            items.append((prefix + key, str(value)))
    return items


_SHOWN_ENV_KEYS = {"torch", "python", "numpy", "cuda", "cudnn", "device_name", "git_commit", "fingerprint"}


def _text(value) -> str:
    """A value as text; whole floats (a cuDNN version read as 8902.0) without the '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def environment_table(df: pd.DataFrame, env_order: Sequence[str], env_files: Sequence[Dict]) -> List[Dict]:
    """One dict per environment: versions, machine, commit, dates, counts; skipped ones too."""
    rows = []
    raw_env = _first_env_dicts(df)
    counts = df.groupby(["env", "status"], observed=True).size()
    files_by_label = {info["env_label"]: info for info in env_files}
    grouped = df.groupby("env", observed=True)
    text_cols = ("torch", "python", "numpy", "cuda", "cudnn", "device", "device_name", "git_commit", "scenario",
                 "run_id", "env_fingerprint")
    uniques = {col: grouped[col].unique() for col in text_cols}
    labels = grouped["env_label"].first()
    sizes = grouped.size()
    first_t = grouped["time_utc"].min()
    last_t = grouped["time_utc"].max()

    def uniq(col, env):
        vals = sorted({_text(v) for v in uniques[col].get(env, ()) if v is not None and v == v})
        return ", ".join(vals) if vals else "-"

    for env in env_order:
        label = labels[env]
        status_counts = {s: int(counts.get((env, s), 0)) for s in STATUS_ORDER if counts.get((env, s), 0)}
        extra = [(k, v) for k, v in _flat_items(raw_env.get(env, {})) if k not in _SHOWN_ENV_KEYS]
        rows.append({
            "env": env, "env_label": label, "state": "ran",
            "torch": uniq("torch", env), "python": uniq("python", env), "numpy": uniq("numpy", env),
            "cuda": uniq("cuda", env), "cudnn": uniq("cudnn", env), "devices": uniq("device", env),
            "device_name": uniq("device_name", env), "git_commit": uniq("git_commit", env),
            "scenario": uniq("scenario", env), "run_id": uniq("run_id", env),
            "fingerprint": uniq("env_fingerprint", env),
            "first_utc": str(first_t.get(env)) if first_t.get(env) is not None else "-",
            "last_utc": str(last_t.get(env)) if last_t.get(env) is not None else "-",
            "records": int(sizes[env]), "status_counts": status_counts, "extra": extra,
            "env_file": files_by_label.get(label, {}).get("path"),
        })
    seen = set(labels.tolist())
    for info in env_files:
        if info["env_label"] in seen:
            continue
        versions = info.get("versions") if isinstance(info.get("versions"), dict) else {}
        state = "skipped" if info.get("status") == "skipped" else "no records"
        reason = info.get("reason") or ("the environment file says %r but no records were given" % info.get("status"))
        rows.append({"env": info["env_label"], "env_label": info["env_label"], "state": state,
                     "reason": str(reason), "torch": str(versions.get("torch", "-")),
                     "python": str(versions.get("python", "-")), "numpy": str(versions.get("numpy", "-")),
                     "cuda": str(versions.get("cuda", "-")), "records": 0, "status_counts": {},
                     "extra": [(k, v) for k, v in _flat_items(versions) if k not in _SHOWN_ENV_KEYS],
                     "env_file": info.get("path")})
    return rows


def machine_notes(df: pd.DataFrame, env_order: Sequence[str]) -> List[str]:
    """Lines for the report's problems when compared records come from different machines (``device_name``,
    part of the environment fingerprint), per case device: an environment whose records come from several
    (shards of one run on unlike runners), or environments that each ran on another machine."""
    if df.empty or "device_name" not in df.columns:
        return []
    frame = pd.DataFrame({"env": df["env"].astype(str), "device": df["device"].astype(str),
                          "machine": df["device_name"].where(df["device_name"].notna(), "?").astype(str)})
    lines = []
    for device, sub in frame.groupby("device", sort=True):
        counts = sub.groupby("env")["machine"].value_counts()
        single = {}
        for env in env_order:
            if env not in counts.index.get_level_values(0):
                continue
            machines = counts[env]
            if len(machines) > 1:
                lines.append("%s (%s): its records come from %d machines (%s): their times are not comparable with "
                             "each other, and the gate compares a case only with records of the same machine "
                             "(environment fingerprint)" % (env, device, len(machines), "; ".join(
                                 "%s: %d records" % (m, n) for m, n in machines.items())))
            else:
                single[env] = machines.index[0]
        if len(set(single.values())) > 1:
            lines.append("the environments ran on different machines (%s: %s): a ratio between two of them mixes the "
                         "machine with the release; the gate never compares records of different machines" % (
                             device, "; ".join("%s: %s" % (env, machine) for env, machine in single.items())))
    return lines


def choose_reference(df: pd.DataFrame, env_order: Sequence[str], requested: Optional[str]) -> str:
    """The reference environment: ``requested`` (a label or disambiguated env), else the
    environment with the highest torch version among those with ok records."""
    if requested:
        if requested in env_order:
            return requested
        matches = [e for e in env_order if e.split(" @")[0] == requested]
        if len(matches) == 1:
            return matches[0]
        raise InputError("reference environment %r is not among the environments of the records (%s)" % (
            requested, ", ".join(env_order)))
    with_ok = set(df.loc[df["status"] == "ok", "env"].astype(str).unique())
    candidates = [e for e in env_order if e in with_ok] or list(env_order)
    return candidates[-1]
