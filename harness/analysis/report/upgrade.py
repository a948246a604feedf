"""The upgrade answer for a pair of releases: what starts and stops working, what got faster, slower,
bigger, less accurate or drifted, and a verdict from a stated rule.

``upgrade_view`` compares the records of environment FROM with those of TO case by case
(``compare.compare_with_baseline`` keyed by case key: both sides carry one pair label), then adds what
the comparison of two releases needs: wall time (never instruction counts: two releases run different
code) with a 95% interval: over paired rounds where the two ran interleaved (``paired``: per case a t
interval over the rounds of the log ratio of its round medians, Benjamini-Hochberg over the upgrade's
cases), else over unpaired rounds where both sides have two or more, else marked single-run; memory on
the first measure of ``harness.measures.CHAINS`` both sides carry (the exact tensor peak before the
process peak); the calibrated accuracy ratio; fp32 drift beyond rounding (``drift.drift_table`` with
FROM as the reference); and the library versions that differ. ``markdown`` writes it for a pull request
comment. Never imports torch.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from harness.analysis.load import InputError
from harness.analysis.report import paired
from harness.analysis.report.compare import compare_with_baseline
from harness.analysis.report.drift import DRIFT_LIMIT, drift_table, ratio_to_expected
from harness.analysis.report.frame import plain_columns
from harness.analysis.report.spans import normalise_cause
from harness.measures import default_thresholds
from harness.vocab import NOT_RUN_STATUSES

#: GitHub's limit on one pull request comment, in characters.
PR_COMMENT_CHARS = 65536
#: The z of a two-sided 95% interval.
Z95 = 1.959964
#: What the verdict paragraph says of each outcome; the rule is ``verdict`` 's docstring.
VERDICT_RULE = ("The verdict: 'breaks' when a case that works on FROM stops working on TO; else 'with care' when a "
                "case got slower beyond the time factor, its memory grew beyond the memory fraction, its accuracy "
                "ratio grew beyond the accuracy growth, or its fp32 outputs drifted beyond rounding; else 'safe'.")
#: The environment columns whose versions the pair compares (and ``extra_packages.*``, the model libraries).
VERSION_KEYS = ("torch", "python", "numpy", "cuda", "cudnn")
_PAIR = "upgrade"
_CASE = ["model", "mode", "batch_size", "size_label", "precision", "checkpoint", "device", "opts"]


def pick_pair(envs: Sequence[str], pair: Optional[Sequence[str]] = None) -> Tuple[str, str]:
    """The (FROM, TO) environments: ``pair`` checked against ``envs``, else the oldest and the newest.

    Raises ``InputError`` for a name that is not an environment of the records, or a pair of one."""
    if not pair:
        if len(envs) < 2:
            raise InputError("an upgrade needs records of two environments; these have %s" % (
                ", ".join(envs) or "none"))
        return envs[0], envs[-1]
    frm, to = pair
    for name in (frm, to):
        if name not in envs:
            raise InputError("--upgrade: %r is not an environment of the records (they have %s)" % (
                name, ", ".join(envs)))
    if frm == to:
        raise InputError("--upgrade: FROM and TO are both %r: name two environments" % frm)
    return frm, to


#: Up to this many environments the page offers every pair (21 for the seven of the matrix); above it,
#: each environment to the newest and each to the next (each pair costs about 0.03 s to build on the default
#: store's seven environments: 21 pairs add 0.5 s to its 12 s report).
ALL_PAIRS_UP_TO_ENVS = 7


def page_pairs(envs: Sequence[str], shown: Tuple[str, str]) -> List[Tuple[str, str]]:
    """The (FROM, TO) pairs the report's upgrade section offers, ``shown`` first, the rest in ``envs``'
    order with FROM older than TO: every such pair up to ``ALL_PAIRS_UP_TO_ENVS`` environments, else
    each to the newest and each to the next."""
    if len(envs) <= ALL_PAIRS_UP_TO_ENVS:
        pairs = [(a, b) for i, a in enumerate(envs) for b in envs[i + 1:]]
    else:
        pairs = sorted({(a, envs[-1]) for a in envs[:-1]} | set(zip(envs, envs[1:])),
                       key=lambda p: (envs.index(p[0]), envs.index(p[1])))
    return [shown] + [p for p in pairs if p != tuple(shown)]


def _wall(side: pd.DataFrame) -> pd.DataFrame:
    """Per case: wall time over the rounds where there are two or more, else the single run's median."""
    rounds = pd.to_numeric(side.get("rounds", pd.Series(1, index=side.index)), errors="coerce").fillna(1)
    multi = rounds >= 2
    fig = pd.to_numeric(side["median_s"], errors="coerce")
    if "median_rounds_s" in side:
        fig = fig.where(~multi, pd.to_numeric(side["median_rounds_s"], errors="coerce"))
    sd = pd.to_numeric(side.get("round_sd_log", pd.Series(np.nan, index=side.index)), errors="coerce")
    return pd.DataFrame({"case_key": side["case_key"], "wall_s": fig, "rounds": rounds, "sd_log": sd})


def _paired_cases(df: pd.DataFrame, frm: str, to: str) -> pd.DataFrame:
    """Per case of TO with two or more rounds paired with FROM's: its interval (``paired.case_intervals``),
    judged over the upgrade's cases (``paired.judge``); indexed by case key."""
    pair = df.loc[df["env"].isin([frm, to])]
    cases = paired.judge(paired.case_intervals(paired.round_ratios(pair, frm)), default_thresholds())
    return cases[cases["lo"].notna()].set_index("case_key")


def upgrade_frame(df: pd.DataFrame, frm: str, to: str) -> pd.DataFrame:
    """One row per case of either side: ``compare_with_baseline`` (FROM the baseline, TO the candidate)
    plus ``wall_ratio`` with ``wall_lo``/``wall_hi`` (95%: over paired rounds where the case has them, ``paired``
    True with ``wall_q`` and ``wall_decisive``; else over unpaired rounds; NaN when single-run), ``single_run``,
    ``acc_ratio_base``/``acc_ratio_cand``, ``peak_base``/``peak_cand`` (the process peaks)."""
    base = df.loc[df["env"] == frm]
    cand = df.loc[df["env"] == to]
    comp = compare_with_baseline(cand.assign(env_label=_PAIR), base.assign(env_label=_PAIR))
    extra = ["case_key", "acc_ratio", "reason_short", "acc_rule"]
    sides = []
    for frame, suffix in ((base, "_base"), (cand, "_cand")):
        side = plain_columns(frame[[c for c in extra if c in frame.columns]])
        side = side.merge(_wall(frame), on="case_key", how="left")
        sides.append(side.drop_duplicates("case_key").set_index("case_key").add_suffix(suffix))
    comp = comp.drop(columns=[c for c in comp.columns if c.startswith("reason_short")]).join(
        sides[0], on="case_key").join(sides[1], on="case_key")
    with np.errstate(divide="ignore", invalid="ignore"):
        comp["wall_ratio"] = comp["wall_s_cand"] / comp["wall_s_base"]
        half = Z95 * np.sqrt(comp["sd_log_base"] ** 2 / comp["rounds_base"] +
                             comp["sd_log_cand"] ** 2 / comp["rounds_cand"])
    multi = (comp["rounds_base"] >= 2) & (comp["rounds_cand"] >= 2) & half.notna()
    comp["wall_lo"] = (comp["wall_ratio"] * np.exp(-half)).where(multi)
    comp["wall_hi"] = (comp["wall_ratio"] * np.exp(half)).where(multi)
    found = _paired_cases(df, frm, to)
    on = comp["case_key"].isin(found.index).to_numpy()
    keys = comp.loc[on, "case_key"]
    comp["paired"] = on
    comp["wall_q"], comp["wall_decisive"] = np.nan, False
    if on.any():  # the paired figure and its interval replace the unpaired ones
        for column, source in (("wall_ratio", "ratio"), ("wall_lo", "lo"), ("wall_hi", "hi"), ("wall_q", "q_value"),
                               ("wall_decisive", "decisive")):
            comp.loc[on, column] = found.loc[keys, source].to_numpy()
    comp["single_run"] = ~(multi.to_numpy() | on)
    return comp


def _cause_groups(rows: pd.DataFrame, reason_col: str, status_col: str) -> List[Dict]:
    """Cases grouped by status and normalised cause: status, reason, count, models, cases."""
    out: Dict[Tuple[str, str], Dict] = {}
    for r in rows.itertuples(index=False):
        reason = getattr(r, reason_col)
        reason = reason if isinstance(reason, str) and reason else "(no reason given)"
        status = str(getattr(r, status_col))
        g = out.setdefault((status, normalise_cause(reason)), {"status": status, "reason": reason, "count": 0,
                                                                "models": set(), "cases": []})
        g["count"] += 1
        if len(reason) < len(g["reason"]):  # the shortest wording of the cause: without re-raised prefixes
            g["reason"] = reason
        g["models"].add(str(r.model))
        g["cases"].append(_case_text(r))
    groups = sorted(out.values(), key=lambda g: (-g["count"], g["reason"]))
    for g in groups:
        g["models"] = sorted(g["models"])
    return groups


def _case_text(r) -> str:
    return "%s %s %s bs%s %s ckpt=%s %s" % (r.model, r.mode, r.precision, r.batch_size, r.size_label,
                                           r.checkpoint, r.device)


def versions(env_rows: Sequence[Dict], frm: str, to: str) -> List[Tuple[str, str, str]]:
    """(name, FROM version, TO version) of every version that differs between the two environments:
    ``VERSION_KEYS`` and the model libraries (``releases.LIBRARIES`` and whatever the records' ``extra_chosen``
    names, from ``extra_packages.*``; not the dependencies that came with them)."""
    from harness.scenario.releases import LIBRARIES

    rows = {r["env"]: r for r in env_rows}
    a, b = rows.get(frm, {}), rows.get(to, {})
    chosen = {str(k).split(".")[1] for row in (a, b) for k, _ in row.get("extra", ())
              if str(k).startswith("extra_chosen.")}
    shown = {"extra_packages." + name for name in set(LIBRARIES) | chosen}

    def items(row):
        out = {k: str(row.get(k, "-")) for k in VERSION_KEYS}
        out.update({str(k): str(v) for k, v in row.get("extra", ()) if str(k) in shown})
        return out

    va, vb = items(a), items(b)
    return [(k.replace("extra_packages.", ""), va.get(k, "-"), vb.get(k, "-"))
            for k in dict.fromkeys(list(va) + list(vb)) if va.get(k, "-") != vb.get(k, "-")]


def upgrade_view(df: pd.DataFrame, frm: str, to: str, env_rows: Sequence[Dict] = ()) -> Dict:
    """Everything the upgrade from ``frm`` to ``to`` shows (environment names of ``df["env"]``).

    Keys: ``from``, ``to``, ``both`` (cases in both), ``starts``/``stops`` (cause groups of
    ``_cause_groups``: cases not working on FROM that work on TO, and the reverse, with TO's or FROM's
    reason; a case unsupported or skipped on either side is in neither), ``n_starts``/``n_stops``,
    ``not_run_changed`` (cases that run on one side only), ``new``/``vanished`` (counts),
    ``slower``/``faster`` (rows beyond the time factor, worst first), ``single_run`` (True when no
    compared case has rounds on both sides),
    ``memory_up``/``memory_down``, ``accuracy_worse``/``accuracy_better``, ``drift`` (fp32 drift beyond
    rounding), ``versions``, ``verdict`` (breaks | with care | safe) and ``verdict_text``.
    """
    thr = default_thresholds()
    comp = upgrade_frame(df, frm, to)
    both = comp[comp["status_base"].notna() & comp["status_cand"].notna()]
    # a case that could not run (unsupported, skipped) is neither working nor failing: counted apart
    ran_base, ran_cand = ~both["status_base"].isin(NOT_RUN_STATUSES), ~both["status_cand"].isin(NOT_RUN_STATUSES)
    starts = both[(both["status_base"] != "ok") & ran_base & (both["status_cand"] == "ok")]
    stops = both[(both["status_base"] == "ok") & (both["status_cand"] != "ok") & ran_cand]
    not_run = both[(both["status_base"] != both["status_cand"]) & (~ran_base | ~ran_cand)]
    timed = both[both["wall_ratio"].notna() & (both["wall_ratio"] > 0)]
    factor = thr["time_factor"]
    # paired: decisive after the correction over the upgrade's cases; unpaired rounds: the interval excludes 1
    decisive = timed["wall_decisive"].astype(bool)
    beyond_lo = np.where(timed["paired"], decisive, timed["wall_lo"].isna() | (timed["wall_lo"] > 1.0))
    beyond_hi = np.where(timed["paired"], decisive, timed["wall_hi"].isna() | (timed["wall_hi"] < 1.0))
    slower = timed[(timed["wall_ratio"] > factor) & beyond_lo].sort_values("wall_ratio", ascending=False)
    faster = timed[(timed["wall_ratio"] < 1 / factor) & beyond_hi].sort_values("wall_ratio")
    memory_up, memory_down = _memory_changes(both, thr)
    acc = both[both["acc_ratio_base"].notna() & both["acc_ratio_cand"].notna() & (both["acc_ratio_base"] > 0)]
    # growth joins before the rows are chosen: assigning a Series to an empty frame would take its index
    acc = acc.assign(growth=acc["acc_ratio_cand"] / acc["acc_ratio_base"])
    accuracy_worse = acc[(acc["growth"] > thr["accuracy_growth"]) |
                         ((acc["acc_passed_base"] == True) & (acc["acc_passed_cand"] == False))]  # noqa: E712
    accuracy_worse = accuracy_worse.sort_values("growth", ascending=False)
    accuracy_better = acc[acc["growth"] < 1 / thr["accuracy_growth"]]
    drift = _drift(df, frm, to)
    view = {
        "from": frm, "to": to, "both": int(len(both)), "starts": _cause_groups(starts, "reason_short_base",
                                                                              "status_base"),
        "stops": _cause_groups(stops, "reason_short_cand", "status_cand"), "n_starts": int(len(starts)),
        "n_stops": int(len(stops)), "not_run_changed": int(len(not_run)),
        "new": int((comp["status_base"].isna()).sum()),
        "vanished": int((comp["status_cand"].isna()).sum()), "timed": int(len(timed)), "slower": slower,
        "faster": faster, "single_run": bool(timed["single_run"].all()) if len(timed) else True,
        "paired": int(timed["paired"].sum()),
        "time_factor": factor, "memory_up": memory_up, "memory_down": memory_down,
        "accuracy_worse": accuracy_worse, "accuracy_better": accuracy_better, "drift": drift,
        "versions": versions(env_rows, frm, to)}
    view["verdict"], view["verdict_text"] = verdict(view)
    return view


def _memory_changes(both: pd.DataFrame, thr: Dict) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Cases whose memory moved beyond ``memory_frac`` and its floor (the tensor floor on the tensor peak)."""
    mem = both[both["mem_ratio"].notna()]
    floor = np.where(mem["mem_basis"] == "tensor peak", thr["tensor_memory_floor_bytes"], thr["memory_floor_bytes"])
    before = np.where(mem["mem_basis"] == "tensor peak", mem.get("tensor_peak_bytes_base", np.nan),
                      mem["peak_mem_bytes_base"])
    moved = (mem["mem_ratio"] - 1.0).abs() * before
    big = (mem["mem_ratio"] - 1.0).abs() > thr["memory_frac"]
    keep = mem[big & (moved >= floor)]
    return (keep[keep["mem_ratio"] > 1].sort_values("mem_ratio", ascending=False),
            keep[keep["mem_ratio"] < 1].sort_values("mem_ratio"))


def _drift(df: pd.DataFrame, frm: str, to: str) -> pd.DataFrame:
    """fp32 outputs on TO against FROM beyond rounding: the sketch ratio above ``DRIFT_LIMIT``, or (records
    with an output probe only) a probe drift above ``DRIFT_LIMIT`` fp32 unit roundoffs."""
    pair = df.loc[df["env"].isin([frm, to]) & (df["precision"] == "fp32")]
    if pair.empty:
        return pd.DataFrame(columns=["model", "drift", "ratio"])
    table = drift_table(pair, frm)
    table = table[table["env"] == to]
    ratio = ratio_to_expected(table)
    return table.assign(ratio=ratio)[ratio > DRIFT_LIMIT].sort_values("ratio", ascending=False)


def verdict(view: Dict) -> Tuple[str, str]:
    """The verdict of an upgrade by ``VERDICT_RULE`` and its paragraph built from the counts."""
    n_slow, n_mem = len(view["slower"]), len(view["memory_up"])
    n_acc, n_drift = len(view["accuracy_worse"]), len(view["drift"])
    if view["n_stops"]:
        kind = "breaks"
    elif n_slow or n_mem or n_acc or n_drift:
        kind = "with care"
    else:
        kind = "safe"
    head = {"breaks": "Moving from %s to %s breaks %d case%s that work today.",
            "with care": "Moving from %s to %s breaks nothing that works today, but changes what is measured.",
            "safe": "Moving from %s to %s looks safe."}[kind]
    args = (view["from"], view["to"]) + ((view["n_stops"], "" if view["n_stops"] == 1 else "s")
                                         if kind == "breaks" else ())
    text = head % args + (
        " Of %s cases in both, %d start working and %d stop (%d more run on one side only: unsupported or "
        "skipped on the other); %d of %s timed cases are slower and %d faster by more "
        "than %sx (%s); %d use more memory and %d less; %d have an accuracy ratio grown beyond its limit; %d fp32 "
        "outputs drifted beyond rounding. %s" % (
            "{:,}".format(view["both"]), view["n_starts"], view["n_stops"], view["not_run_changed"],
            n_slow, "{:,}".format(view["timed"]),
            len(view["faster"]), _num(view["time_factor"]),
            _speed_words(view),
            n_mem, len(view["memory_down"]), n_acc, n_drift, VERDICT_RULE))
    return kind, text


def _speed_words(view: Dict) -> str:
    """How the upgrade's speed changes were judged, in words."""
    if view["single_run"]:
        return "single-run: no rounds on both sides, no interval"
    if view.get("paired"):
        return ("95%% intervals over paired rounds for %d of %s timed cases (%s over them), over unpaired rounds "
                "elsewhere" % (view["paired"], "{:,}".format(view["timed"]), paired.CORRECTION))
    return "95% intervals over rounds, not paired"


def _num(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else "%.3g" % value


def _pct(ratio) -> str:
    if ratio is None or not np.isfinite(ratio):
        return "-"
    return "%+.0f%%" % ((ratio - 1.0) * 100.0)


def _models_text(models: Sequence[str], most: int = 12) -> str:
    return ", ".join(models[:most]) + (" and %d more" % (len(models) - most) if len(models) > most else "")


def tables(view: Dict, limit: int = 25) -> List[Dict]:
    """The parts of an upgrade as plain tables, for the Markdown and the page alike: each ``title``,
    ``headers``, ``rows`` (lists of text, at most ``limit``) and ``more`` (rows left out)."""
    out = []

    def add(title, headers, frame, cells):
        rows = [cells(r) for r in (frame[:limit] if isinstance(frame, list) else frame.head(limit).itertuples(
            index=False))]
        out.append({"title": title, "headers": headers, "rows": rows, "more": max(len(frame) - limit, 0)})

    for key, title in (("stops", "Stops working"), ("starts", "Starts working")):
        add("%s (%d cases)" % (title, view["n_" + key]), ["cases", "status", "cause", "models"], view[key],
            lambda g: [str(g["count"]), g["status"], g["reason"][:160], _models_text(g["models"])])
    speed = "single-run, no interval" if view["single_run"] else (
        "95%% interval over paired rounds, %s" % paired.CORRECTION if view.get("paired") else
        "95% interval over rounds")
    for key, title in (("slower", "Slower"), ("faster", "Faster")):
        add("%s by more than %sx (%d; wall time, %s)" % (title, _num(view["time_factor"]), len(view[key]), speed),
            ["case", "change", "interval"], view[key], lambda r: [
                _case_text(r), _pct(r.wall_ratio),
                "single-run" if r.single_run else "%s to %s%s" % (
                    _pct(r.wall_lo), _pct(r.wall_hi), " (paired, q %.2g)" % r.wall_q if r.paired else "")])
    for key, title in (("memory_up", "More memory"), ("memory_down", "Less memory")):
        add("%s (%d; the exact tensor peak where both sides carry it)" % (title, len(view[key])),
            ["case", "change", "measure", "process peak"], view[key], lambda r: [
                _case_text(r), _pct(r.mem_ratio), r.mem_basis,
                _pct(r.peak_mem_bytes_cand / r.peak_mem_bytes_base) if r.peak_mem_bytes_base else "-"])
    add("Accuracy ratio grown beyond its limit (%d)" % len(view["accuracy_worse"]),
        ["case", "ratio on FROM", "ratio on TO"], view["accuracy_worse"],
        lambda r: [_case_text(r), _num(r.acc_ratio_base), _num(r.acc_ratio_cand)])
    add("fp32 drift beyond rounding (%d; ratio to the expected drift, limit %s)" % (
        len(view["drift"]), _num(DRIFT_LIMIT)), ["model", "mode", "batch", "size", "device", "drift", "ratio"],
        view["drift"], lambda r: [str(r.model), str(r.mode), str(r.batch_size), str(r.size_label), str(r.device),
                                  "%.2e" % r.drift, _num(r.ratio)])
    return out


#: The line that says the page's signs once.
SIGNS = ("Signs: + is slower, bigger or worse (TO against FROM); accuracy and drift are ratios to the expected "
         "error.")


def markdown(view: Dict, limit: int = 25) -> str:
    """The upgrade as Markdown for one pull request comment (at most ``PR_COMMENT_CHARS`` characters:
    lists are cut shorter until it fits)."""
    while True:
        text = _markdown(view, limit)
        if len(text) <= PR_COMMENT_CHARS or limit <= 1:
            return text[:PR_COMMENT_CHARS]
        limit = max(1, limit // 2)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(view: Dict, limit: int) -> str:
    lines = ["## Upgrade %s \u2192 %s: %s" % (view["from"], view["to"], view["verdict"]), "", view["verdict_text"],
             "", SIGNS, ""]
    if view["versions"]:
        lines += ["| version | %s | %s |" % (view["from"], view["to"]), "|---|---|---|"]
        lines += ["| %s | %s | %s |" % tuple(_cell(v) for v in row) for row in view["versions"]] + [""]
    for t in tables(view, limit):
        lines += ["### " + t["title"], ""]
        if not t["rows"]:
            lines += ["None.", ""]
            continue
        lines += ["| %s |" % " | ".join(t["headers"]), "|%s" % ("---|" * len(t["headers"]))]
        lines += ["| %s |" % " | ".join(_cell(c) for c in row) for row in t["rows"]]
        if t["more"]:
            lines.append("| \u2026 and %d more |%s" % (t["more"], " |" * (len(t["headers"]) - 1)))
        lines.append("")
    return "\n".join(lines)
