"""The gate's Markdown summary, sized for a pull-request comment.

``render_markdown(doc)`` takes the verdicts document built by
``harness.analysis.gate.io.evaluate`` and returns: a headline verdict, a table of counts,
the regressions worst first (status, then accuracy, then time and memory by ratio)
with ratios and q-values, and collapsed lists of improvements, inconclusive,
not-comparable, new and vanished cases. Long lists are cut (``MAX_ROWS``) with a
pointer to the verdicts JSON; the whole text stays far below GitHub's 65,536
characters per comment.
"""
import html
import re
from typing import Dict, List, Optional

from harness.analysis.verdict_text import case_text, kind_text, q_text, ratio_text, value_text, why_text
from harness.measures import CHAINS, INSTRUCTIONS, LARGE_ERROR_FRAC
from harness.scenario.gate_config import DEFAULTS
from harness.units import format_bytes
from harness.vocab import ExitCode

#: First line of every summary: lets CI find and update its previous comment.
MARKER = "<!-- torchmatrix-gate -->"
MAX_ROWS = 25
MAX_CHARS = 60000

_KIND_ORDER = {"status": 0, "accuracy": 1, "memory": 2, "time": 2}


#: Markdown's inline syntax: emphasis, code, links and images, tables, escapes (not ``_``: GitHub
#: leaves intraword underscores alone, and model names are full of them).
_MD_SYNTAX = re.compile(r"([\\`*\[\]|!])")


def md_text(text) -> str:
    """Text from records (model names, reasons, labels) made inert in a PR comment: HTML
    escaped, Markdown syntax backslash-escaped, on one line."""
    text = " ".join(str(text).split())
    return _MD_SYNTAX.sub(r"\\\1", html.escape(text, quote=False))


def format_value(verdict: Dict, which: str) -> str:
    """A verdict's baseline or candidate value with its unit (``verdict_text.value_text``), made inert."""
    return md_text(value_text(verdict, which))


def severity_key(v: Dict):
    """Sort key putting the worst regression first."""
    ratio = v.get("ratio")
    return (_KIND_ORDER.get(v["kind"], 3), -(ratio if ratio is not None else float("inf")), v["case_key"])


def _memory_limits(th: Dict) -> str:
    """``memory: > 5% and > 16 MiB (CPU tensor peak: > 64 KiB)``: the size limits of the memory chain
    (``harness.measures.CHAINS``), the last measure's first, the others' floors in brackets."""
    *first, last = CHAINS["memory"]
    frac, floor = last.thresholds
    others = "; ".join("%s: > %s" % (m.headline or m.label, format_bytes(th.get(m.thresholds[1]))) for m in first)
    return "memory: > %g%% and > %s%s" % (100 * th.get(frac, 0), format_bytes(th.get(floor)),
                                           " (%s)" % others if others else "")


def _table(rows: List[Dict], show_env: bool, full_reason: bool = False) -> List[str]:
    head = "| case |%s what | baseline | candidate | ratio | q | why |" % (" env |" if show_env else "")
    out = [head, "|---|%s---|---:|---:|---:|---:|---|" % ("---|" if show_env else "")]
    for v in rows[:MAX_ROWS]:
        env = " %s |" % md_text(v.get("env") or v.get("env_label") or "") if show_env else ""
        out.append("| %s |%s %s | %s | %s | %s | %s | %s |" % (
            md_text(case_text(v["case_key"])), env, md_text(kind_text(v)), format_value(v, "baseline"),
            format_value(v, "candidate"), ratio_text(v), q_text(v), md_text(why_text(v, full_reason))))
    if len(rows) > MAX_ROWS:
        out.append("")
        out.append("… and %d more in the verdicts JSON." % (len(rows) - MAX_ROWS))
    return out


def _list(rows: List[Dict]) -> List[str]:
    out = ["- %s (%s): %s" % (md_text(case_text(v["case_key"])), md_text(v.get("env") or v.get("env_label") or ""),
                              md_text(v.get("reason") or "")) for v in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        out.append("- … and %d more in the verdicts JSON" % (len(rows) - MAX_ROWS))
    return out


def _details(summary: str, lines: List[str]) -> List[str]:
    return ["", "<details><summary>%s</summary>" % summary, ""] + lines + ["", "</details>"]


def _cell(value) -> str:
    return "(not set)" if value is None else md_text(value)


def policy_lines(policy: Optional[Dict]) -> List[str]:
    """Where the thresholds came from and what the pull request changed (``ab``'s policy note): a
    table of the head's threshold changes, applied or not, and the gate's tooling files it changes."""
    if not policy:
        return []
    changes, tooling = policy.get("changes") or [], policy.get("tooling_changes") or []
    applied = bool(policy.get("applied"))
    out = ["Thresholds from %s." % md_text(policy.get("source") or "the base revision")]
    if changes:
        out += ["", "**This pull request changes the gate's thresholds%s:**" % (
            " — applied (a maintainer trusted the head's config)" if applied else
            " — not applied (a maintainer can opt in: the `%s` label, or `ab --trust-head-config`)"
            % md_text(policy.get("label") or "gate: trust head config")), "",
            "| threshold | base | head | |", "|---|---:|---:|---|"]
        out += ["| %s | %s | %s | %s |" % (md_text(c.get("key")), _cell(c.get("base")), _cell(c.get("head")),
                                            "applied" if applied else "not applied") for c in changes[:MAX_ROWS]]
        out += ["", "; ".join("this pull request changes %s %s → %s; %s" % (
            md_text(c.get("key")), _cell(c.get("base")), _cell(c.get("head")), "applied" if applied else "not applied")
            for c in changes[:MAX_ROWS])]
    if tooling:
        out += ["", "⚠️ **Changes the gate's own tooling, for review** (the gate ran the base's): " +
                ", ".join("`%s`" % md_text(path).replace("`", "") for path in tooling[:MAX_ROWS])]
    return out + [""]


def render_markdown(doc: Dict) -> str:
    """The pull-request summary of a verdicts document (see docs/gate.md)."""
    verdicts = doc["verdicts"]
    counts = doc["counts"]
    th = doc.get("thresholds") or {}
    by = {}
    for v in verdicts:
        by.setdefault(v["verdict"], []).append(v)
    regressed = sorted(by.get("regressed", []), key=severity_key)
    lost = sorted(by.get("lost", []), key=severity_key)
    compared = sum(1 for v in verdicts if v["kind"] == "status"
                   and v["verdict"] not in ("new", "vanished", "not_comparable"))
    code = doc.get("exit_code")
    envs = sorted({str(v.get("env") or "") for v in verdicts if v["kind"] == "status"})
    show_env = len(envs) > 1

    if regressed or lost:
        kinds = {}
        for v in regressed:
            kinds[v["kind"]] = kinds.get(v["kind"], 0) + 1
        parts = []
        if lost:
            parts.append("%d with evidence lost on the head" % len(lost))
        if regressed:
            parts.append("%d regression%s (%s)" % (
                len(regressed), "" if len(regressed) == 1 else "s",
                ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items(), key=lambda kv: _KIND_ORDER[kv[0]]))))
        head = "❌ torchmatrix gate: " + ", ".join(parts)
    elif code == ExitCode.INPUT or compared == 0:
        head = "⚠️ torchmatrix gate: nothing could be compared"
    else:
        head = "✅ torchmatrix gate: no regression"

    def side(name):
        info = doc.get(name) or {}
        n = info.get("records", 0)
        return "%s **%s** (%d record%s)" % (name, md_text("/".join(info.get("env_labels") or ["?"])), n,
                                            "" if n == 1 else "s")

    scenarios = (doc.get("candidate") or {}).get("scenarios") or []
    lines = [MARKER, "### " + head, ""]
    lines += policy_lines(doc.get("policy"))
    if lost:  # first: a gate that falls back to weaker evidence can be passed by breaking the stronger one
        lines += ["#### Evidence lost on the head (fails the gate)", ""] + _list(lost) + [""]
    lines += [
             "%s%s vs %s%s · %d case×environment pairs compared · time: > %.2f× and BH q ≤ %g · "
             "%s · per-model thresholds may differ" % (
                 ("%s · " % md_text(", ".join(scenarios))) if scenarios else "", side("baseline"),
                 side("candidate"), (" · " + md_text(envs[0])) if len(envs) == 1 and envs[0] else "", compared,
                 th.get("time_factor", 0), th.get("q", 0), _memory_limits(th)),
             "",
             "| | regressed | improved | inconclusive | unchanged | not comparable |",
             "|---|---:|---:|---:|---:|---:|"]
    for kind in ("time", "memory", "accuracy", "status"):
        c = counts.get(kind, {})
        lines.append("| %s | %s | %d | %d | %d | %d |" % (
            kind, ("**%d**" % c.get("regressed", 0)) if c.get("regressed") else "0", c.get("improved", 0),
            c.get("inconclusive", 0), c.get("unchanged", 0), c.get("not_comparable", 0)))
    new, vanished = by.get("new", []), by.get("vanished", [])
    lines += ["", "New cases: %d · vanished: %d · inconclusive: %d%s" % (
        len(new), len(vanished), len(by.get("inconclusive", [])), " · evidence lost: %d" % len(lost) if lost else "")]

    for v in verdicts:
        if v.get("aggregate"):
            lines += ["", "**Run-wide time (%s): %s**: %s" % (md_text(v.get("env") or v.get("env_label") or ""),
                                                            v["verdict"], md_text(v.get("reason") or ""))]
    counted = [v for v in verdicts if v["kind"] == "time" and v.get("basis") == INSTRUCTIONS.label
               and not v.get("aggregate")]
    if counted:
        wall_only = sum(1 for v in counted if v.get("wall_time_only"))
        lines += ["", "Time verdicts of %d cases rest on instruction counts (deterministic; wall time beside "
                  "them)%s." % (len(counted), ", %d moved in wall time only" % wall_only if wall_only else "")]
    min_rounds = th.get("min_rounds", DEFAULTS["min_rounds"])
    single = [v for v in verdicts if v["kind"] == "time" and v.get("test") == "mannwhitneyu"
              and min(v.get("rounds_baseline") or 1, v.get("rounds_candidate") or 1) < min_rounds]
    if single:
        lines += ["", "⚠️ %d timing %s on fewer than %d rounds a side: the rank test sees the samples "
                  "of one process, which are not independent (an A/A comparison of one round a side called 32-41%% "
                  "of 68 cases regressed on a shared 2-core CPU), so by default (`time_test = \"auto\"`) a change "
                  "is at most inconclusive; an A/B run with %d or more rounds (`nox -s ab`) tests round medians." % (
                      len(single), "verdict rests" if len(single) == 1 else "verdicts rest", min_rounds, min_rounds)]
    if regressed:
        lines += ["", "#### Regressions, worst first", ""] + _table(regressed, show_env)
    improved = sorted(by.get("improved", []), key=lambda v: (v.get("ratio") or 1.0))
    if improved:
        lines += _details("Improvements (%d)" % len(improved), _table(improved, show_env))
    inconclusive = by.get("inconclusive", [])
    if inconclusive:
        few = sum(1 for v in inconclusive if "too few" in (v.get("reason") or ""))
        lines += _details("Inconclusive (%d): %d too few samples or rounds, %d beyond the factor but within the "
                          "noise" % (len(inconclusive), few, len(inconclusive) - few),
                          _table(sorted(inconclusive, key=severity_key), show_env, full_reason=True))
    warned = sorted((v for v in verdicts if v.get("large_error") is not None), key=lambda v: -v["large_error"])
    if warned:
        lines += _details("⚠️ Passed with a large error (%d): more than %.0f%% off float64 on the candidate" % (
            len(warned), 100 * LARGE_ERROR_FRAC), ["- %s (%s): %.0f%% off float64; %s" % (
                md_text(case_text(v["case_key"])), md_text(v.get("env") or v.get("env_label") or ""),
                100 * v["large_error"], md_text(v.get("reason") or "")) for v in warned[:MAX_ROWS]] +
            (["- … and %d more in the verdicts JSON" % (len(warned) - MAX_ROWS)] if len(warned) > MAX_ROWS else []))
    not_comparable = by.get("not_comparable", [])
    if not_comparable:
        lines += _details("Not comparable (%d)" % len(not_comparable), _list(not_comparable))
    if new or vanished:
        lines += _details("New (%d) and vanished (%d)" % (len(new), len(vanished)),
                          _list(new) + _list(vanished))
    problems = doc.get("problems") or []
    if problems:
        lines += _details("Input warnings (%d)" % len(problems),
                          ["- %s" % md_text(p) for p in problems[:MAX_ROWS]])
    text = "\n".join(lines) + "\n"
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS].rsplit("\n", 1)[0] + "\n\n… (cut: see the verdicts JSON)\n"
    return text
