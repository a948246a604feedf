"""The report's sections, each a function from prepared data to an HTML string.

``Context`` carries what every section needs (the prepared frame, environment order
and colours, the reference environment); ``report.build_report`` makes it and joins the
sections. Interactive parts (tables, line charts) are placeholders that the page script
fills from the JSON datasets of ``report_payload``.
"""
import json
import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from harness.analysis import report_data as rd
from harness.analysis.report_html import (
    ENV_COLORS,
    STATUS_COLORS,
    drift_color,
    esc,
    fmt_bytes,
    fmt_change,
    fmt_drift,
    fmt_sig,
    is_num,
    legend,
    ratio_color,
    section,
    status_bar,
    table,
    td_heat,
    tolerance_color,
)
from harness.analysis.report_payload import Column, encode_dataset, script_safe


@dataclass
class Context:
    """Shared inputs of the sections."""

    df: pd.DataFrame
    notes: Dict
    ref: str
    env_rows: List[Dict]
    problems: List[str]
    ratios: Optional[pd.DataFrame] = None
    drift: Optional[pd.DataFrame] = None
    data_blocks: List[str] = field(default_factory=list)

    @property
    def envs(self) -> List[str]:
        return list(self.notes["env_order"])

    def env_color(self, env: str) -> str:
        envs = self.envs
        return ENV_COLORS[envs.index(env) % len(ENV_COLORS)] if env in envs else "#57606a"

    def env_th(self) -> List[str]:
        return [e + (" (ref)" if e == self.ref else "") for e in self.envs]


def _models(ctx: Context) -> List[str]:
    return sorted(ctx.df["model"].unique())


# --------------------------------------------------------------------------- header


def header(ctx: Context, title: str, generated_utc: str) -> str:
    """The dark banner: scenario, record and environment counts, commit, dates, reference; then problems."""
    df = ctx.df
    scen = ", ".join(sorted(str(s) for s in df["scenario"].dropna().unique())) or "-"
    commits = sorted(str(s) for s in df["git_commit"].dropna().unique())
    times = df["time_utc"].dropna()
    span = "%s \u2013 %s" % (times.min(), times.max()) if len(times) else "-"
    runs = sorted(str(s) for s in df["run_id"].dropna().unique())
    meta = [("scenario", scen), ("records", "{:,}".format(len(df))), ("environments", str(len(ctx.envs))),
            ("reference", ctx.ref), ("commit", ", ".join(c[:12] for c in commits[:3]) + (
                " (+%d more)" % (len(commits) - 3) if len(commits) > 3 else "") or "-"),
            ("run", ", ".join(runs[:3]) + (" (+%d more)" % (len(runs) - 3) if len(runs) > 3 else "") or "-"),
            ("measured", span), ("generated", generated_utc)]
    html_meta = " &nbsp;\u00b7&nbsp; ".join("%s <b>%s</b>" % (esc(k), esc(v)) for k, v in meta)
    out = '<header class="top"><h1>%s</h1><div class="meta">%s</div></header>' % (esc(title), html_meta)
    return out


def problems_box(problems: Sequence[str], superseded: int) -> str:
    """The yellow box listing input problems (file:line: what) and superseded duplicates."""
    items = list(problems)
    if not items and not superseded:
        return ""
    shown = items[:50]
    more = len(items) - len(shown)
    lis = "".join("<li><code>%s</code></li>" % esc(p) for p in shown)
    if more > 0:
        lis += "<li>and %d more problems</li>" % more
    if superseded:
        lis += ("<li>%d older records of a case already recorded later in the same environment were "
                "superseded (the latest is shown)</li>" % superseded)
    head = ("%d input problem%s: these lines were not read, everything else is reported" % (
        len(items), "" if len(items) == 1 else "s")) if items else "Note"
    return '<div class="problems" id="problems"><h3>%s</h3><ul>%s</ul></div>' % (esc(head), lis)


# --------------------------------------------------------------------------- at a glance


def glance(ctx: Context) -> str:
    """One card per environment: status mix, speed and memory vs the reference, accuracy, drift."""
    df = ctx.df
    counts = rd.status_counts(df, ["env"])
    speed = rd.geomean_table(ctx.ratios, "speed_ratio", ["env"]) if ctx.ratios is not None else None
    mem = rd.geomean_table(ctx.ratios, "mem_ratio", ["env"]) if ctx.ratios is not None else None
    accfail = df[(df["status"] == "ok") & (df["acc_passed"] == False)].groupby(  # noqa: E712
        "env", observed=True).size()
    drift_max = ctx.drift.groupby("env", observed=True)["drift"].max() if ctx.drift is not None and len(
        ctx.drift) else pd.Series(dtype=float)
    cards = []
    for env in ctx.envs:
        row = counts.loc[env] if env in counts.index else pd.Series(dtype=int)
        c = {s: int(row.get(s, 0)) for s in row.index if row.get(s, 0)}
        total = sum(c.values())
        ok = c.get("ok", 0)
        torch_v = next((r["torch"] for r in ctx.env_rows if r["env"] == env), "-")
        kv = []
        kv.append(("works", '<span class="%s">%d / %d ok</span>' % ("good" if ok == total else "warn", ok, total)))
        bad = ", ".join("%d %s" % (n, s) for s, n in c.items() if s != "ok")
        kv.append(("not ok", esc(bad) if bad else "none"))
        if env == ctx.ref:
            kv.append(("speed", "reference"))
            kv.append(("memory", "reference"))
        else:
            for label, tab, better_high in (("speed", speed, True), ("memory", mem, False)):
                if tab is not None and env in tab.index:
                    g = tab.loc[env, "geomean"]
                    good = (g > 1.02) if better_high else (g < 0.98)
                    badv = (g < 0.98) if better_high else (g > 1.02)
                    cls = "good" if good else ("bad" if badv else "")
                    kv.append((label, '<span class="%s">%s</span> <small>(%d cases)</small>' % (
                        cls, esc(fmt_change(g)), int(tab.loc[env, "n"]))))
                else:
                    kv.append((label, "no cases in common"))
        nf = int(accfail.get(env, 0))
        kv.append(("accuracy", '<span class="%s">%s</span>' % ("bad" if nf else "good",
                                                                 "%d failed" % nf if nf else "all passed")))
        if env == ctx.ref:
            kv.append(("fp32 drift", "reference"))
        elif env in drift_max.index:
            d = drift_max.get(env)
            cls = "bad" if is_num(d) and d > 1e-4 or (isinstance(d, float) and math.isinf(d)) else "good"
            kv.append(("fp32 drift", '<span class="%s">max %s</span>' % (cls, esc(fmt_drift(d)))))
        else:
            kv.append(("fp32 drift", "-"))
        body = "".join("<span>%s</span><span>%s</span>" % (esc(k), v) for k, v in kv)
        tag = ' <span class="ref-tag">reference</span>' if env == ctx.ref else ""
        cards.append('<div class="card" style="border-top:4px solid %s"><h4><span>%s%s</span><small>torch %s'
                     '</small></h4>%s<div class="kv">%s</div></div>' % (
                         esc(ctx.env_color(env)), esc(env), tag, esc(torch_v), status_bar(c), body))
    for row in ctx.env_rows:
        if row["state"] != "ran":
            cards.append('<div class="card" style="border-top:4px solid #c9d1d9"><h4><span>%s</span><small>%s'
                         '</small></h4><div class="kv"><span>state</span><span class="warn">%s</span>'
                         '<span>why</span><span>%s</span></div></div>' % (
                             esc(row["env"]), esc("torch " + row["torch"]), esc(row["state"]), esc(row["reason"])))
    intro = ("Speed and memory are geometric means over the cases each environment shares with the reference "
             "<b>%s</b> (speed: throughput, + is faster; memory: peak, + uses more). Drift compares fp32 output "
             "probes with the reference." % esc(ctx.ref))
    return section("glance", "At a glance", '<div class="cards">%s</div>' % "".join(cards), intro)


# --------------------------------------------------------------------------- run


def run_section(ctx: Context) -> str:
    """Each environment's exact versions, machine, commit, dates; skipped environments and why."""
    rows = []
    for r in ctx.env_rows:
        if r["state"] != "ran":
            rows.append('<tr class="skip-row"><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>'
                        '<td colspan="6">%s: %s</td></tr>' % (
                            esc(r["env"]), esc(r["state"]), esc(r["torch"]), esc(r["python"]), esc(r["numpy"]),
                            esc(r["cuda"]), esc(r["state"]), esc(r["reason"])))
            continue
        extra = ""
        if r["extra"]:
            extra = '<details><summary>%d more</summary>%s</details>' % (len(r["extra"]), "<br>".join(
                "<code>%s</code> = %s" % (esc(k), esc(v)) for k, v in r["extra"]))
        counts = ", ".join("%d %s" % (n, s) for s, n in r["status_counts"].items())
        rows.append("<tr><td><b>%s</b>%s</td><td>ran</td><td>%s</td><td>%s</td><td>%s</td><td>%s%s</td><td>%s<br>"
                    "<small>%s</small></td><td><code>%s</code></td><td>%s</td><td><small>%s<br>%s</small></td>"
                    "<td class=\"num\" title=\"%s\">%s%s</td><td>%s</td></tr>" % (
                        esc(r["env"]), " (reference)" if r["env"] == ctx.ref else "", esc(r["torch"]),
                        esc(r["python"]), esc(r["numpy"]), esc(r["cuda"]),
                        (" / cuDNN " + esc(r["cudnn"])) if r["cudnn"] not in ("-", "") else "",
                        esc(r["device_name"]), esc(r["devices"]), esc(r["git_commit"][:40]),
                        esc(r["scenario"]), esc(r["first_utc"]), esc(r["last_utc"]),
                        esc(counts), "{:,}".format(r["records"]), status_bar(r["status_counts"]), extra))
    headers = ["environment", "state", "torch", "python", "numpy", "CUDA", "machine / device", "commit", "scenario",
               "first \u2013 last record (UTC)", "records", "details"]
    note = "Versions are what each environment reported in its records; skipped environments come from the " \
           "<code>*.env.json</code> files next to the records."
    return section("run", "The run", table(headers, rows), note)


# --------------------------------------------------------------------------- compatibility


def _matrix_cell(counts: Dict[str, int], reasons, where: str) -> str:
    total = sum(counts.values())
    if not total:
        return '<td class="na">-</td>'
    ok = counts.get("ok", 0)
    lines = [where, ", ".join("%d %s" % (n, s) for s, n in counts.items() if n)]
    for status, reason, n in reasons or ():
        reason = reason or "(no reason)"
        lines.append("%s \u00d7%d: %s" % (status, n, reason if len(reason) <= 140 else reason[:137] + "..."))
    worst = next((s for s in ("crashed", "error", "oom", "timeout", "unsupported", "skipped") if counts.get(s)), None)
    label = "%d/%d ok" % (ok, total)
    if worst is not None:
        label += " \u00b7 %d %s" % (counts[worst], worst)
    return '<td class="mx" title="%s"><span class="lbl">%s</span>%s</td>' % (
        esc("\n".join(lines)), esc(label), status_bar(counts))


def matrix_section(ctx: Context) -> str:
    """Models x environments coloured by status; each model expands into precision x checkpoint rows."""
    df = ctx.df
    top = rd.status_counts(df, ["model", "env"])
    drill = rd.status_counts(df, ["model", "precision", "checkpoint", "env"])
    reasons_top = rd.top_reasons(df, ["model", "env"])
    reasons_drill = rd.top_reasons(df, ["model", "precision", "checkpoint", "env"], per_group=2)
    status_cols = list(top.columns)
    top_d = {idx: dict(zip(status_cols, map(int, vals))) for idx, vals in zip(top.index, top.to_numpy())}
    drill_cols = list(drill.columns)
    drill_d = {idx: dict(zip(drill_cols, map(int, vals))) for idx, vals in zip(drill.index, drill.to_numpy())}
    prec_rank = {p: i for i, p in enumerate(ctx.notes["precision_order"])}
    ck_rank = {p: i for i, p in enumerate(ctx.notes["checkpoint_order"])}
    combos_by_model: Dict[str, List] = {}
    for (model, prec, ck, _env) in drill_d:
        combos_by_model.setdefault(model, set()).add((prec, ck))
    bad = df.loc[df["status"] != "ok", ["model", "status", "reason_short", "env"]]
    why_by_model: Dict[str, List[str]] = {}
    if not bad.empty:
        group_of = {r: rd.reason_group(r) for r in pd.unique(bad["reason_short"])}
        bad = bad.assign(_group=bad["reason_short"].map(group_of))
        why = bad.groupby(["model", "status", "_group"], observed=True).agg(
            n=("env", "size"), envs=("env", lambda e: sorted({str(v) for v in e}, key=ctx.envs.index)),
            reason_short=("reason_short", "first"))
        why = why.reset_index().sort_values("n", ascending=False, kind="stable")
        for r in why.itertuples(index=False):
            lines = why_by_model.setdefault(str(r.model), [])
            if len(lines) < 6:
                envs = ", ".join(r.envs) if len(r.envs) < len(ctx.envs) else "every environment"
                lines.append('<span class="st s-%s">%s</span> \u00d7%d on %s: %s' % (
                    esc(r.status), esc(r.status), r.n, esc(envs), esc(r.reason_short or "(no reason given)")))
    rows = []
    for mi, model in enumerate(_models(ctx)):
        gid = "mx%d" % mi
        cells = "".join(_matrix_cell(top_d.get((model, env), {}), reasons_top.get((model, env)),
                                     "%s on %s" % (model, env)) for env in ctx.envs)
        rows.append('<tr><td><button class="tg" type="button" data-toggle="%s" aria-expanded="false">'
                    '<span class="arrow">\u25b8</span></button><b>%s</b></td>%s</tr>' % (gid, esc(model), cells))
        combos = sorted(combos_by_model.get(model, ()), key=lambda pc: (prec_rank.get(pc[0], 99),
                                                                        ck_rank.get(pc[1], 99), pc))
        for prec, ck in combos:
            cells = "".join(_matrix_cell(drill_d.get((model, prec, ck, env), {}),
                                         reasons_drill.get((model, prec, ck, env)),
                                         "%s %s checkpoint=%s on %s" % (model, prec, ck, env)) for env in ctx.envs)
            rows.append('<tr class="child" data-parent="%s" hidden><td>%s \u00b7 ckpt %s</td>%s</tr>' % (
                gid, esc(prec), esc(ck), cells))
        if why_by_model.get(model):
            rows.append('<tr class="child why" data-parent="%s" hidden><td colspan="%d"><b>most frequent reasons'
                        '</b><br>%s</td></tr>' % (gid, len(ctx.envs) + 1, "<br>".join(why_by_model[model])))
    buttons = ('<p><button class="small" type="button" data-toggle-all="matrix" data-expand="1">expand all</button> '
               '<button class="small" type="button" data-toggle-all="matrix" data-expand="0">collapse all</button></p>')
    keys = legend([(s, STATUS_COLORS[s]) for s in rd.STATUS_ORDER if s in ctx.notes["status_order"]])
    intro = ("Each cell counts the cases of a model in an environment by status. Hover a cell for the reasons; "
             "\u25b8 expands a model into precision \u00d7 checkpointing rows.")
    body = keys + buttons + '<div id="matrix">%s</div>' % table(["model"] + ctx.env_th(), rows)
    return section("compat", "Compatibility", body, intro)


# --------------------------------------------------------------------------- speed and memory


def _ratio_heatmap(ctx: Context, value: str, higher_is_better: bool, what: str) -> str:
    ratios = ctx.ratios
    if ratios is None or ratios.empty:
        return '<p class="note">No case ran ok both here and in the reference environment.</p>'
    by_prec = rd.geomean_table(ratios, value, ["model", "precision", "env"]).reset_index()
    by_mode = rd.geomean_table(ratios, value, ["model", "precision", "mode", "env"]).reset_index()
    mode_text: Dict = {}
    for r in by_mode.itertuples(index=False):
        mode_text.setdefault((r.model, r.precision, str(r.env)), []).append(
            "%s %s (n=%d)" % (r.mode, fmt_change(r.geomean), r.n))
    prec_rank = {p: i for i, p in enumerate(ctx.notes["precision_order"])}
    table_d = {(r.model, r.precision, str(r.env)): r for r in by_prec.itertuples(index=False)}
    precs_of: Dict[str, set] = {}
    for model, prec, _env in table_d:
        precs_of.setdefault(model, set()).add(prec)
    rows = []
    for model in sorted(precs_of):
        precs = sorted(precs_of[model], key=lambda p: (prec_rank.get(p, 99), p))
        for k, prec in enumerate(precs):
            first = '<td rowspan="%d"><b>%s</b></td>' % (len(precs), esc(model)) if k == 0 else ""
            cells = []
            for env in ctx.envs:
                if env == ctx.ref:
                    cells.append('<td class="ref">ref</td>')
                    continue
                r = table_d.get((model, prec, env))
                if r is None:
                    cells.append('<td class="na">-</td>')
                    continue
                tip = "%s %s on %s vs %s: %s %s (geometric mean of %d cases, range %s to %s)\n%s" % (
                    model, prec, env, ctx.ref, fmt_change(r.geomean), what, r.n, fmt_change(r.min),
                    fmt_change(r.max), "; ".join(mode_text.get((model, prec, env), [])))
                cells.append(td_heat(esc(fmt_change(r.geomean)), ratio_color(r.geomean, higher_is_better), tip))
            rows.append("<tr>%s<td>%s</td>%s</tr>" % (first, esc(prec), "".join(cells)))
    return table(["model", "precision"] + ctx.env_th(), rows)


def _chart_defaults(ctx: Context) -> str:
    df = ctx.df[ctx.df["status"] == "ok"]
    out = {"x": "batch_size"}
    for key, prefer in (("mode", ("train",)), ("precision", ("fp32",)), ("checkpoint", ("none",)),
                        ("device", ("cuda", "cpu")), ("opts", ("-",))):
        present = set(df[key].unique())
        out[key] = next((p for p in prefer if p in present), sorted(present)[0] if present else "-")
    return json.dumps(out)


def speed_section(ctx: Context) -> str:
    """Throughput curves per model (one line per environment) and the heatmap against the reference."""
    charts = ('<div data-tm-charts data-src="tm-records" data-metric="throughput" data-defaults="%s"></div>'
              % esc(_chart_defaults(ctx)))
    heat = _ratio_heatmap(ctx, "speed_ratio", True, "throughput")
    keys = legend([("slower than reference", "#e8705f"), ("same", "#ffffff"), ("faster", "#6fa8dc")])
    intro = ("Throughput (samples per second, median of the raw samples) against batch size or size for one slice "
             "of the matrix; the other axis is fixed at its most common value for each model. Pick the slice above "
             "the charts; hover a point for its value.")
    body = (charts + "<h3>Speed relative to %s</h3>" % esc(ctx.ref) +
            '<p class="note">Geometric mean over the cases (all modes, batch sizes, sizes, checkpointing) that ran ok '
            "in both environments; hover a cell for the count, the range and train/eval separately. Pick another "
            "reference with <code>--reference-env</code>.</p>" + keys + heat)
    return section("speed", "Speed", body, intro)


def nice_ticks(lo: float, hi: float, count: int = 4) -> List[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering ``lo`` to ``hi``."""
    span = (hi - lo) or abs(hi) or 1.0
    raw = span / count
    power = 10.0 ** math.floor(math.log10(raw))
    m = raw / power
    step = (1 if m <= 1 else 2 if m <= 2 else 5 if m <= 5 else 10) * power
    start = math.floor(lo / step + 1e-9) * step
    stop = math.ceil(hi / step - 1e-9) * step
    return [start + i * step for i in range(int(round((stop - start) / step)) + 1)]


def _tradeoff_svg(trade: pd.DataFrame) -> str:
    """Scatter: time lost (x) against memory saved (y), one point per model and checkpoint mode."""
    pts = trade.dropna(subset=["mem_saved", "time_cost"])
    if pts.empty:
        return ""
    W, H, L, R, T, B = 470, 320, 52, 16, 30, 40
    iw, ih = W - L - R, H - T - B
    xt = nice_ticks(min(0.0, float(pts["time_cost"].min())), max(0.05, float(pts["time_cost"].max())))
    yt = nice_ticks(min(0.0, float(pts["mem_saved"].min())), max(0.05, float(pts["mem_saved"].max())))
    xmin, xmax, ymin, ymax = xt[0], xt[-1], yt[0], yt[-1]
    colors = {"reentrant": "#f28e2b", "non_reentrant": "#4e79a7"}

    def xp(v):
        return L + (v - xmin) / (xmax - xmin) * iw

    def yp(v):
        return T + ih - (v - ymin) / (ymax - ymin) * ih

    out = ['<svg viewBox="0 0 %d %d" width="%d" role="img" aria-label="checkpointing trade-off">' % (W, H, W)]
    for xv in xt:
        out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#eaeef2"/>' % (xp(xv), xp(xv), T, T + ih))
        out.append('<text x="%.1f" y="%d" font-size="10" text-anchor="middle" fill="#59636e">%+.0f%%</text>' % (
            xp(xv), T + ih + 13, xv * 100))
    for yv in yt:
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eaeef2"/>' % (L, L + iw, yp(yv), yp(yv)))
        out.append('<text x="%d" y="%.1f" font-size="10" text-anchor="end" fill="#59636e">%.0f%%</text>' % (
            L - 4, yp(yv) + 3, yv * 100))
    out.append('<text x="%.1f" y="%d" font-size="11" text-anchor="middle" fill="#1f2328">time added per step '
               '(median)</text>' % (L + iw / 2, H - 6))
    out.append('<text x="12" y="%.1f" font-size="11" text-anchor="middle" fill="#1f2328" '
               'transform="rotate(-90 12 %.1f)">peak memory saved (median)</text>' % (T + ih / 2, T + ih / 2))
    for k, (mode, col) in enumerate(colors.items()):
        x0 = L + k * 120
        out.append('<circle cx="%d" cy="12" r="4.5" fill="%s"/><text x="%d" y="16" font-size="11">%s</text>' % (
            x0 + 5, col, x0 + 13, mode.replace("_", "-")))
    out.append('<text x="%d" y="16" font-size="10" fill="#59636e">- - same model</text>' % (L + 250))
    for _model, sub in pts.groupby("model", observed=True):
        if len(sub) == 2:
            a, b = sub.iloc[0], sub.iloc[1]
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#afb8c1" stroke-dasharray="3 2"/>' % (
                xp(a["time_cost"]), yp(a["mem_saved"]), xp(b["time_cost"]), yp(b["mem_saved"])))
    placed: List = []
    for r in pts.itertuples(index=False):
        x, y = xp(r.time_cost), yp(r.mem_saved)
        tip = "%s, %s: saves %.0f%% memory, costs %+.0f%% time (%d pairs)" % (
            r.model, r.checkpoint, r.mem_saved * 100, r.time_cost * 100, r.n)
        out.append('<circle cx="%.1f" cy="%.1f" r="4.5" fill="%s" fill-opacity="0.85"><title>%s</title></circle>' % (
            x, y, colors.get(r.checkpoint, "#57606a"), esc(tip)))
        if r.checkpoint != "reentrant":
            continue
        # label a point only where the label does not cover another one (hover still names every point)
        width = 5.2 * len(r.model)
        lx = x + 7 if x + 7 + width < W - 2 else x - 7 - width
        box = (lx, y - 8, lx + width, y + 3)
        if all(box[2] < p[0] or box[0] > p[2] or box[3] < p[1] or box[1] > p[3] for p in placed):
            placed.append(box)
            out.append('<text x="%.1f" y="%.1f" font-size="9.5" fill="#59636e">%s</text>' % (lx, y + 3, esc(r.model)))
    out.append("</svg>")
    return "".join(out)


def _bar(frac, color: str, scale: float = 50.0) -> str:
    if not is_num(frac):
        return "-"
    width = max(1.0, min(abs(frac), 1.5) * scale)
    return '<span class="bars"><i style="width:%.0fpx;background:%s"></i>%+.0f%%</span>' % (width, color, frac * 100)


def memory_section(ctx: Context) -> str:
    """Peak-memory curves, memory relative to the reference, and the checkpointing trade-off."""
    charts = ('<div data-tm-charts data-src="tm-records" data-metric="peak" data-defaults="%s"></div>'
              % esc(_chart_defaults(ctx)))
    heat = _ratio_heatmap(ctx, "mem_ratio", False, "peak memory")
    trade = rd.checkpoint_tradeoff(ctx.df)
    rows = []
    for model in sorted(trade["model"].unique()) if len(trade) else []:
        sub = trade[trade["model"] == model].set_index("checkpoint")
        cells = []
        for mode in ("reentrant", "non_reentrant"):
            if mode in sub.index:
                r = sub.loc[mode]
                tip = "\n".join("%s: saves %.0f%%, costs %+.0f%% (n=%d)" % (env, v[0] * 100, v[1] * 100, v[2])
                                for env, v in r["by_env"].items() if is_num(v[0]) and is_num(v[1]))
                cells.append('<td title="%s">%s</td><td title="%s">%s</td><td class="num">%d</td>' % (
                    esc(tip), _bar(r["mem_saved"], "#59a14f"), esc(tip), _bar(r["time_cost"], "#e15759"), r["n"]))
            else:
                cells.append('<td class="na" colspan="3">not measured</td>')
        rows.append("<tr><td><b>%s</b></td>%s</tr>" % (esc(model), "".join(cells)))
    if rows:
        head = ('<thead><tr><th rowspan="2">model</th><th colspan="3">reentrant</th><th colspan="3">non-reentrant'
                '</th></tr><tr><th>memory saved</th><th>time added</th><th class="num">pairs</th><th>memory saved'
                '</th><th>time added</th><th class="num">pairs</th></tr></thead>')
        trade_html = ('<div class="side"><div class="scroll"><table class="grid">%s<tbody>%s</tbody></table></div>'
                      '<div>%s</div></div>' % (head, "".join(rows), _tradeoff_svg(trade)))
    else:
        trade_html = '<p class="note">No checkpointed case has an ok un-checkpointed twin to compare with.</p>'
    keys = legend([("uses less than reference", "#6fa8dc"), ("same", "#ffffff"), ("uses more", "#e8705f")])
    body = (charts + "<h3>Peak memory relative to %s</h3>" % esc(ctx.ref) + keys + heat +
            "<h3>Gradient checkpointing: memory saved against time lost</h3>"
            '<p class="note">Each checkpointed train case against the same case without checkpointing in the same '
            "environment; medians over batch sizes, sizes, precisions and environments (hover for each "
            "environment).</p>" + trade_html)
    intro = ("Peak memory: the CUDA allocator peak on GPU, the process high-water mark above the pre-case baseline "
             "on CPU (MiB). Same slice controls as the speed charts.")
    return section("memory", "Memory", body, intro)


# --------------------------------------------------------------------------- accuracy


def _fidelity_html(ctx: Context) -> str:
    summary = rd.fidelity_table(ctx.df, ["precision", "env"])
    if summary.empty:
        return '<p class="note">No record carries accuracy figures.</p>'
    detail = rd.fidelity_table(ctx.df, ["precision", "model", "env"])
    s_d = {(r.precision, str(r.env)): r for r in summary.itertuples(index=False)}
    d_d = {(r.precision, r.model, str(r.env)): r for r in detail.itertuples(index=False)}
    prec_rank = {p: i for i, p in enumerate(ctx.notes["precision_order"])}

    def cell(r, where):
        if r is None:
            return '<td class="na">-</td>'
        text = "%s\u00d7 tol" % fmt_sig(r.worst, 2) if is_num(r.worst) else "-"
        if r.failed:
            text += '<br><b>%d/%d fail</b>' % (r.failed, r.n)
        tip = "%s: %d checked, %d failed; worst error/tolerance %s (tolerance %s, median rel. error %s)\nworst: %s" % (
            where, r.n, r.failed, fmt_sig(r.worst, 3), fmt_sig(r.tolerance, 2), fmt_sig(r.median_err, 2),
            r.worst_case)
        return td_heat(text, tolerance_color(r.worst), tip)

    rows = []
    for pi, prec in enumerate(sorted(summary["precision"].unique(), key=lambda p: (prec_rank.get(p, 99), p))):
        gid = "acc%d" % pi
        rows.append('<tr><td><button class="tg" type="button" data-toggle="%s" aria-expanded="false"><span '
                    'class="arrow">\u25b8</span></button><b>%s</b></td>%s</tr>' % (
                        gid, esc(prec), "".join(cell(s_d.get((prec, env)), "%s on %s" % (prec, env))
                                                for env in ctx.envs)))
        for model in sorted(detail.loc[detail["precision"] == prec, "model"].unique()):
            rows.append('<tr class="child" data-parent="%s" hidden><td>%s</td>%s</tr>' % (
                gid, esc(model), "".join(cell(d_d.get((prec, model, env)), "%s %s on %s" % (model, prec, env))
                                         for env in ctx.envs)))
    keys = legend([("far below tolerance", "#d5f0d9"), ("near tolerance", "#fbe7a1"), ("above tolerance", "#e0503c")])
    return keys + table(["precision / model"] + ctx.envs, rows)


def _drift_html(ctx: Context) -> str:
    drift = ctx.drift
    if drift is None or drift.empty:
        return ('<p class="note">No output probes to compare (records carry none, or no case ran ok in the '
                'reference).</p>')
    grouped = drift.groupby(["model", "env"], observed=True)["drift"]
    agg = grouped.agg(["max", "size", "median"]).reset_index()
    worst = drift.loc[grouped.idxmax().dropna().astype(int).to_numpy()]
    worst_d = {(r.model, str(r.env)): r for r in worst.itertuples(index=False)}
    agg_d = {(r.model, str(r.env)): r for r in agg.itertuples(index=False)}
    rows = []
    for model in sorted(agg["model"].unique()):
        cells = []
        for env in ctx.envs:
            if env == ctx.ref:
                cells.append('<td class="ref">ref</td>')
                continue
            r = agg_d.get((model, env))
            if r is None:
                cells.append('<td class="na">-</td>')
                continue
            w = worst_d.get((model, env))
            where = ("worst: %s %s batch %s size %s %s" % (w.model, w.mode, w.batch_size, w.size_label, w.device)
                     if w is not None else "")
            tip = "%s on %s vs %s: max relative difference %s, median %s over %d cases\n%s" % (
                model, env, ctx.ref, fmt_drift(r.max), fmt_drift(r.median), r.size, where)
            cells.append(td_heat(esc(fmt_drift(r.max)), drift_color(r.max), tip))
        rows.append("<tr><td><b>%s</b></td>%s</tr>" % (esc(model), "".join(cells)))
    keys = legend([("identical", "#c8ecd0"), ("\u2264 1e-6", "#d5f0d9"), ("\u2264 1e-4", "#fbe7a1"),
                   ("larger", "#e8705f")])
    return keys + table(["model"] + ctx.env_th(), rows)


def _task_html(ctx: Context) -> str:
    df = ctx.df[ctx.df["task_metric"].notna() & (ctx.df["status"] == "ok")]
    if df.empty:
        return '<p class="note">No task metrics were recorded (the scenario did not ask for training runs).</p>'
    df = df.assign(_what=df["mode"].astype(str) + " " + df["precision"].astype(str) + " bs " +
                   df["batch_size"].astype("Int64").astype(str) + " size " + df["size_label"].astype(str) +
                   " ckpt " + df["checkpoint"].astype(str))
    rows = []
    groups = list(df.groupby(["model", "task_metric", "_what"], observed=True))
    for (model, metric, what), sub in groups[:300]:
        by_env = {str(r.env): r for r in sub.itertuples(index=False)}
        ref = by_env.get(ctx.ref)
        cells = []
        for env in ctx.envs:
            r = by_env.get(env)
            if r is None or not is_num(r.task_after):
                cells.append('<td class="na">-</td>')
                continue
            higher = bool(r.task_higher_is_better) if r.task_higher_is_better is not None else True
            color = "#ffffff"
            if ref is not None and is_num(ref.task_after) and ref.task_after != 0 and env != ctx.ref:
                change = (r.task_after - ref.task_after) / abs(ref.task_after)
                color = ratio_color(1.0 + change, higher, full_at=1.2)
            tip = "%s %s on %s: %s before training, %s after" % (model, metric, env, fmt_sig(r.task_before, 4),
                                                                 fmt_sig(r.task_after, 4))
            cells.append(td_heat(esc(fmt_sig(r.task_after, 4)), color, tip, "ref-col" if env == ctx.ref else ""))
        direction = "higher is better" if sub["task_higher_is_better"].iloc[0] is not False else "lower is better"
        rows.append("<tr><td><b>%s</b></td><td>%s <small>(%s)</small></td><td><small>%s</small></td>%s</tr>" % (
            esc(model), esc(metric), esc(direction), esc(what), "".join(cells)))
    note = "" if len(groups) <= 300 else '<p class="note">First 300 of %d task cases.</p>' % len(groups)
    return table(["model", "metric", "case"] + ctx.env_th(), rows) + note


def accuracy_section(ctx: Context) -> str:
    """Fidelity against tolerance by precision and environment; fp32 drift; task metrics."""
    body = ("<h3>Numerical fidelity: error against tolerance</h3>"
            '<p class="note">Worst relative error (outputs and, in train mode, gradients) against an fp32 '
            "un-checkpointed reference of the same weights and inputs, divided by the precision's tolerance: above "
            "1\u00d7 fails. \u25b8 expands a precision into models; hover for the worst case.</p>" +
            _fidelity_html(ctx) +
            "<h3>fp32 output drift across environments</h3>"
            '<p class="note">The same fp32 case gives the same output probe on every PyTorch release unless its '
            "arithmetic changed: max |probe \u2212 probe<sub>ref</sub>| / max |probe<sub>ref</sub>| against "
            "<b>%s</b>, worst case per model.</p>" % esc(ctx.ref) + _drift_html(ctx) +
            "<h3>Task metrics</h3>"
            '<p class="note">Short fixed-seed training runs on each model\'s synthetic task: the metric after '
            "training (hover for before); coloured against the reference.</p>" + _task_html(ctx))
    return section("accuracy", "Accuracy", body)


# --------------------------------------------------------------------------- failures


def failures_section(ctx: Context, max_groups: int = 150) -> str:
    """Every non-ok case (and every accuracy failure) with its reason, grouped."""
    groups = rd.failure_groups(ctx.df)
    if not groups:
        return section("failures", "Failures", '<p class="good">Every case ran ok and passed its accuracy checks.</p>')
    total = sum(g["count"] for g in groups)
    by_status: Dict[str, int] = {}
    for g in groups:
        by_status[g["status"]] = by_status.get(g["status"], 0) + g["count"]
    parts = ['<p>%s cases in %d groups: %s.</p>' % ("{:,}".format(total), len(groups), esc(", ".join(
        "%s %s" % ("{:,}".format(n), s) for s, n in by_status.items())))]
    for g in groups[:max_groups]:
        models = ", ".join(g["models"][:8]) + (" and %d more" % (len(g["models"]) - 8) if len(g["models"]) > 8 else "")
        envs = ", ".join(g["envs"])
        full = ""
        if g["full"] and g["full"].strip() != g["reason"]:
            full = "<pre>%s</pre>" % esc(g["full"][:4000])
        cases = "".join("<tr><td>%s</td><td><code>%s</code></td></tr>" % (esc(e), esc(k)) for e, k in g["cases"])
        more = ('<p class="note">and %d more; use the table of every case.</p>' % (g["count"] - len(g["cases"]))
                if g["count"] > len(g["cases"]) else "")
        words = [w for w in re.split(r"[^A-Za-z_]+", g["reason"]) if len(w) > 3 and not re.search(r"\d", w)][:4]
        query = " ".join([g["status"] if g["status"] != "accuracy" else "fail"] + words).lower()
        parts.append(
            '<details class="fail" data-status="%s"><summary><span class="st s-%s">%s</span> <span class="cnt">'
            '\u00d7%s</span>%s</summary><div class="where">models: %s<br>environments: %s \u00b7 '
            '<a href="#all" data-show-in-table="tm-table-records" data-query="%s">show in the table</a></div>%s'
            '<table class="grid"><thead><tr><th>environment</th><th>case</th></tr></thead><tbody>%s</tbody></table>'
            "%s</details>" % (esc(g["status"]), esc(g["status"]), esc(g["status"]), "{:,}".format(g["count"]),
                              esc(g["reason"]), esc(models), esc(envs), esc(query), full, cases, more))
    if len(groups) > max_groups:
        parts.append('<p class="note">%d more groups; filter the table of every case by status.</p>' % (
            len(groups) - max_groups))
    intro = ("Grouped by status and reason (numbers in reasons are ignored when grouping). Most severe first: "
             "crashes, errors, out of memory, timeouts, accuracy failures, unsupported, skipped.")
    return section("failures", "Failures", "".join(parts), intro)


# --------------------------------------------------------------------------- table of every case


def _size_order(df: pd.DataFrame) -> List[str]:
    return (df[["size_label", "size_rank"]].drop_duplicates("size_label")
            .sort_values(["size_rank", "size_label"])["size_label"].tolist())


def records_dataset(ctx: Context) -> str:
    """The compact JSON of every record for the table and the charts."""
    df = ctx.df
    frame = pd.DataFrame({
        "case_key": df["case_key"], "model": df["model"], "mode": df["mode"], "batch_size": df["batch_size"],
        "size": df["size_label"], "precision": df["precision"], "checkpoint": df["checkpoint"],
        "device": df["device"], "opts": df["opts"], "env": df["env"].astype(str), "status": df["status"],
        "median_ms": df["median_s"] * 1e3,
        "iqr_pct": 100.0 * df["iqr_s"] / df["median_s"].where(df["median_s"] > 0),
        "throughput": df["throughput_per_s"], "peak_mib": df["peak_mem_bytes"] / 2.0 ** 20,
        "err_rel": df["err_rel"],
        "acc": np.where(df["acc_passed"] == True, "pass", np.where(df["acc_passed"] == False, "fail", None)),  # noqa
        "reason": df["reason_short"].where(df["reason_short"] != "", None),
    })
    size_order = _size_order(df)
    cols = [
        Column("model", "model", ref="case"), Column("mode", "mode", order=ctx.notes["mode_order"], ref="case"),
        Column("batch_size", "batch", kind="int", ref="case"), Column("size", "size", order=size_order, ref="case"),
        Column("precision", "precision", order=ctx.notes["precision_order"], ref="case"),
        Column("checkpoint", "checkpoint", order=ctx.notes["checkpoint_order"], ref="case"),
        Column("device", "device", ref="case"), Column("opts", "options", order=("-",), ref="case"),
        Column("env", "environment", order=ctx.envs), Column("status", "status", fmt="status",
                                                              order=rd.STATUS_ORDER),
        Column("median_ms", "median ms", kind="num", digits=4), Column("iqr_pct", "IQR %", kind="num", digits=2,
                                                                       fmt="pct"),
        Column("throughput", "samples/s", kind="num", digits=4), Column("peak_mib", "peak MiB", kind="num", digits=3),
        Column("err_rel", "rel. error", kind="num", digits=2, fmt="sci"), Column("acc", "accuracy"),
        Column("reason", "reason", kind="text", filter=False),
    ]
    return encode_dataset(frame, cols, ref_key="case_key")


def table_section(ctx: Context) -> str:
    """Placeholder for the sortable, filterable, paged table of every record."""
    body = ('<div id="tm-table-records" data-tm-table data-src="tm-records" data-page-size="50" '
            'data-sort=""></div>')
    intro = ("One row per case and environment (%s rows). Click a header to sort, pick values to filter, type words "
             "to search model, environment, status and reason; the CSV button saves the filtered rows." % "{:,}".format(
                 len(ctx.df)))
    return section("all", "Every case", body, intro)


# --------------------------------------------------------------------------- comparison


_VERDICT_RANK = {v: i for i, v in enumerate(("regressed", "inconclusive", "not_comparable", "vanished", "new",
                                             "improved", "unchanged"))}


#: Most rows a comparison table embeds (the most important first), to keep the file small.
MAX_COMPARE_ROWS = 20000


def _cap_rows(frame: pd.DataFrame, what: str, least: str):
    """The first ``MAX_COMPARE_ROWS`` rows of a ranked frame and a note when some were left out."""
    if len(frame) <= MAX_COMPARE_ROWS:
        return frame, ""
    note = ('<p class="note">The table lists the first {:,} of {:,} {} (the most important first; the rest are '
            "mostly {}); the counts above cover all of them.</p>").format(MAX_COMPARE_ROWS, len(frame), what, least)
    return frame.iloc[:MAX_COMPARE_ROWS], note


def _fmt_verdict_value(kind: str, value, unit) -> str:
    """A verdict's baseline or candidate value: times in ms, memory in MiB, others as given."""
    if isinstance(value, str):
        return value
    if not is_num(value):
        return ""
    if kind == "time":
        return "%s ms" % fmt_sig(value * 1e3, 4)
    if kind == "memory":
        return fmt_bytes(value)
    return fmt_sig(value, 3) + (" " + str(unit) if isinstance(unit, str) and unit else "")


def comparison_from_verdicts(ctx: Context, verdicts: pd.DataFrame, baseline_note: str) -> str:
    """The gate's verdicts: counts per kind and verdict, then a table of every verdict (regressions first)."""
    counts = verdicts.groupby(["kind", "verdict"]).size().unstack("verdict", fill_value=0)
    vcols = [v for v in rd.VERDICT_VALUES if v in counts.columns]
    rows = []
    for kind in [k for k in rd.VERDICT_KINDS if k in counts.index]:
        cells = "".join('<td class="num">%s</td>' % (
            '<span class="vd vd-%s">%d</span>' % (esc(v), counts.loc[kind, v]) if counts.loc[kind, v] else "0")
            for v in vcols)
        rows.append("<tr><td><b>%s</b></td>%s</tr>" % (esc(kind), cells))
    summary = table(["kind"] + vcols, rows, num_cols=range(1, len(vcols) + 1))
    n_reg = int((verdicts["verdict"] == "regressed").sum())
    headline = ('<p class="bad"><b>%d regression%s</b> found by the gate.</p>' % (n_reg, "" if n_reg == 1 else "s")
                if n_reg else '<p class="good"><b>No regression</b> found by the gate.</p>')
    frame = verdicts.assign(_rank=verdicts["verdict"].map(_VERDICT_RANK).fillna(99))
    frame = frame.sort_values(["_rank", "ratio"], ascending=[True, False], kind="stable")
    frame, cut_note = _cap_rows(frame, "verdicts", "unchanged verdicts")
    frame = frame.assign(baseline=[_fmt_verdict_value(k, v, u) for k, v, u in zip(
                             frame["kind"], frame["baseline"], frame["unit"])],
                         candidate=[_fmt_verdict_value(k, v, u) for k, v, u in zip(
                             frame["kind"], frame["candidate"], frame["unit"])],
                         kind=[k if not c else "%s (%s)" % (k, c) for k, c in zip(frame["kind"], frame["check"])])
    kinds = [k for k in rd.VERDICT_KINDS] + sorted(set(frame["kind"]) - set(rd.VERDICT_KINDS))
    cols = [Column("verdict", "verdict", fmt="verdict", order=list(_VERDICT_RANK)),
            Column("kind", "kind", order=kinds), Column("model", "model"),
            Column("env_label", "environment"), Column("case_key", "case", kind="text", filter=False),
            Column("baseline", "baseline", kind="text", filter=False),
            Column("candidate", "candidate", kind="text", filter=False),
            Column("ratio", "ratio", kind="num", digits=3, fmt="tratio"),
            Column("p_value", "p", kind="num", digits=2, fmt="p"), Column("q_value", "q", kind="num", digits=2,
                                                                        fmt="p"),
            Column("reason", "reason", kind="text", filter=False)]
    ctx.data_blocks.append(_block("tm-verdicts", encode_dataset(frame, cols)))
    body = (headline + baseline_note + summary + cut_note +
            '<div id="tm-table-verdicts" data-tm-table data-src="tm-verdicts" data-page-size="25"></div>')
    intro = ("Candidate against baseline, matched by case key and environment. The gate calls a change regressed "
             "only when it is both large and significant on the raw samples; ratio is candidate / baseline.")
    return section("compare", "Comparison with the baseline", body, intro)


def comparison_from_baseline(ctx: Context, base: pd.DataFrame, baseline_note: str) -> str:
    """Candidate against baseline per case without statistics: time and memory ratios, status changes."""
    comp = rd.compare_with_baseline(ctx.df.assign(env=ctx.df["env"].astype(str)), base)
    both = comp[comp["time_ratio"].notna()]
    rows = []
    for env in sorted(comp["env"].dropna().unique(), key=lambda e: (ctx.envs.index(e) if e in ctx.envs else 99, e)):
        sub = comp[comp["env"] == env]
        tr = both.loc[both["env"] == env, "time_ratio"]
        mr = sub["mem_ratio"].dropna()
        g = float(np.exp(np.log(tr[tr > 0]).mean())) if (tr > 0).any() else math.nan
        gm = float(np.exp(np.log(mr[mr > 0]).mean())) if (mr > 0).any() else math.nan
        ch = sub["change"].value_counts()
        broke = int(((sub["status_base"] == "ok") & (sub["status_cand"] != "ok") & sub["status_cand"].notna()).sum())
        fixed = int(((sub["status_base"] != "ok") & sub["status_base"].notna() & (sub["status_cand"] == "ok")).sum())
        rows.append('<tr><td><b>%s</b></td><td class="num">%d</td>%s%s<td class="num">%d</td><td class="num">%d</td>'
                    '<td class="num %s">%d</td><td class="num %s">%d</td><td class="num">%d</td><td class="num">%d'
                    "</td></tr>" % (
                        esc(env), int(sub["time_ratio"].notna().sum()),
                        td_heat(esc(fmt_change(g)), ratio_color(g, False), "geometric mean of candidate/baseline "
                                "median time; + is slower"),
                        td_heat(esc(fmt_change(gm)), ratio_color(gm, False), "geometric mean of peak memory ratio"),
                        int(ch.get("slower", 0)), int(ch.get("faster", 0)), "bad" if broke else "", broke,
                        "good" if fixed else "", fixed, int(ch.get("new", 0)), int(ch.get("vanished", 0))))
    summary = table(["environment", "timed in both", "time", "memory", "slower >10%", "faster >10%",
                     "ok \u2192 not ok", "not ok \u2192 ok", "new", "vanished"], rows,
                    num_cols=range(1, 10))
    rank = {"status": 0, "slower": 1, "vanished": 2, "new": 3, "faster": 4, "same": 5}
    frame = comp.assign(_rank=comp["change"].map(rank), _t=comp["time_ratio"].fillna(0))
    frame = frame.sort_values(["_rank", "_t"], ascending=[True, False], kind="stable")
    frame, cut_note = _cap_rows(frame, "cases", "cases within 10%")
    frame = frame.assign(status_change=frame["status_base"].fillna("-") + " \u2192 " + frame["status_cand"].fillna("-"),
                         acc_change=frame["acc_passed_base"].map({True: "pass", False: "fail"}).fillna("-") +
                         " \u2192 " + frame["acc_passed_cand"].map({True: "pass", False: "fail"}).fillna("-"),
                         env_changed=np.where(frame["env_changed"], "yes", "no"),
                         median_base_ms=frame["median_base_s"] * 1e3, median_cand_ms=frame["median_cand_s"] * 1e3)
    cols = [Column("change", "change", order=list(rank)), Column("model", "model"), Column("mode", "mode"),
            Column("batch_size", "batch", kind="int"),
            Column("size_label", "size", order=_size_order(pd.concat([ctx.df[["size_label", "size_rank"]],
                                                                       base[["size_label", "size_rank"]]]))),
            Column("precision", "precision", order=ctx.notes["precision_order"]),
            Column("checkpoint", "checkpoint", order=ctx.notes["checkpoint_order"]), Column("device", "device"),
            Column("env", "environment", order=ctx.envs),
            Column("status_change", "status"), Column("median_base_ms", "baseline ms", kind="num", digits=4),
            Column("median_cand_ms", "candidate ms", kind="num", digits=4),
            Column("time_ratio", "time ratio", kind="num", digits=3, fmt="tratio"),
            Column("mem_ratio", "memory ratio", kind="num", digits=3, fmt="mratio"),
            Column("acc_change", "accuracy"), Column("env_changed", "env changed")]
    ctx.data_blocks.append(_block("tm-compare", encode_dataset(frame, cols)))
    body = (baseline_note + summary + cut_note +
            '<p class="note">No significance test here: run the gate for verdicts that account for noise. "slower" '
            "and \"faster\" mark a median change beyond 10%.</p>"
            '<div id="tm-table-compare" data-tm-table data-src="tm-compare" data-page-size="25"></div>')
    intro = "Candidate (these records) against the baseline records, matched by case key and environment label."
    return section("compare", "Comparison with the baseline", body, intro)


def _block(ident: str, text: str) -> str:
    return '<script type="application/json" id="%s">%s</script>' % (esc(ident), text)


def envs_block(ctx: Context) -> str:
    """The environment names and colours the charts use."""
    data = [{"name": e, "color": ctx.env_color(e), "ref": e == ctx.ref} for e in ctx.envs]
    return _block("tm-envs", script_safe(json.dumps(data)))
