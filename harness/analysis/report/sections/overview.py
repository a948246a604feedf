"""The top of the report: the banner, input problems, one card per environment, the run's versions.

``header`` is the page banner (not a section); ``problems``, ``glance`` and ``run`` are
section builders (see ``sections/context.py``).
"""
import math
from typing import Optional

import pandas as pd

from harness.analysis.report import aggregate as agg
from harness.analysis.report import paired
from harness.analysis.report.drift import DRIFT_LIMIT
from harness.analysis.report.markup import esc, fmt_change, fmt_drift, fmt_interval, fmt_sig, is_num, status_bar, table
from harness.analysis.report.sections.context import Context, Part
from harness.measures import CHAINS, WALL_TIME, default_thresholds


def header(ctx: Context, title: str, generated_utc: str) -> str:
    """The dark banner: scenario, record and environment counts, commit, dates, reference."""
    cols = ["git_commit", "time_utc", "run_id"]
    df = ctx.df[cols] if ctx.searches is None or ctx.searches.empty else pd.concat(
        [ctx.df[cols], ctx.searches[cols]], ignore_index=True)  # the largest-batch searches are records too
    scen = ", ".join(ctx.notes["scenarios"]) or "-"
    commits = sorted(str(s) for s in df["git_commit"].dropna().unique())
    times = df["time_utc"].dropna()
    span = "%s \u2013 %s" % (times.min(), times.max()) if len(times) else "-"
    runs = sorted(str(s) for s in df["run_id"].dropna().unique())
    meta = [("scenario", scen), ("records", "{:,}".format(ctx.notes.get("records", len(df)))),
            ("environments", str(len(ctx.envs))),
            ("reference", ctx.ref), ("commit", ", ".join(c[:12] for c in commits[:3]) + (
                " (+%d more)" % (len(commits) - 3) if len(commits) > 3 else "") or "-"),
            ("run", ", ".join(runs[:3]) + (" (+%d more)" % (len(runs) - 3) if len(runs) > 3 else "") or "-"),
            ("measured", span), ("generated", generated_utc)]
    html_meta = " &nbsp;\u00b7&nbsp; ".join("%s <b>%s</b>" % (esc(k), esc(v)) for k, v in meta)
    return '<header class="top"><h1>%s</h1><div class="meta">%s</div><div class="meta signs">%s</div></header>' % (
        esc(title), html_meta, esc(SIGNS))


#: The page's one convention for signs and drift, said once at the top.
SIGNS = ("Signs on this page: a change is the value here against the reference (or the upgrade's FROM): + is "
         "slower, more memory or a larger error, \u2212 is faster, less or smaller. Accuracy and fp32 drift are "
         "ratios to the error the arithmetic explains (above %g\u00d7 for drift: more than rounding)." % DRIFT_LIMIT)


def problems(ctx: Context) -> Optional[Part]:
    """The yellow box listing input problems (file:line: what) and superseded duplicates."""
    items = list(ctx.problems)
    superseded = int(ctx.notes["superseded"])
    if not items and not superseded:
        return None
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
    nav = "Problems (%d)" % len(items) if items else "Note"
    return Part("<ul>%s</ul>" % lis, heading=head, nav=nav)


def _card_rows(ctx: Context, env: str, summary) -> str:
    counts = summary["counts"]
    total = sum(counts.values())
    ok = counts.get("ok", 0)
    kv = [("works", '<span class="%s">%d / %d ok</span>' % ("good" if ok == total else "warn", ok, total))]
    bad = ", ".join("%d %s" % (n, s) for s, n in counts.items() if s != "ok")
    kv.append(("not ok", esc(bad) if bad else "none"))
    if env == ctx.ref:
        kv += [("time", "reference"), ("memory", "reference")]
    else:
        for label, key, better_high in (("time", "speed", False), ("memory", "memory", False)):
            g, n = summary[key]
            if n and key == "speed":  # the speed ratio (+ is faster) as time, the page's sign: + is slower
                g = 1.0 / g if is_num(g) and g > 0 else math.nan
            if n and key == "speed" and summary.get("speed_basis") == WALL_TIME.label:
                kv.append((label, _wall_time(summary, g, n)))
            elif n:
                good = (g > 1.02) if better_high else (g < 0.98)
                worse = (g < 0.98) if better_high else (g > 1.02)
                cls = "good" if good else ("bad" if worse else "")
                on = summary.get(key + "_basis")
                kv.append((label, '<span class="%s">%s</span> <small>(%d cases%s)</small>' % (
                    cls, esc(fmt_change(g)), n, ", " + esc(on) if on else "")))
            else:
                kv.append((label, "no cases in common"))
    nf = summary["acc_failed"]
    if summary["acc_checked"]:
        kv.append(("accuracy", '<span class="%s">%s</span>' % ("bad" if nf else "good",
                                                             "%d failed" % nf if nf else "all passed")))
    else:
        kv.append(("accuracy", "not checked"))
    d, r = summary["drift_max"], summary.get("drift_ratio_max")
    if env == ctx.ref:
        kv.append(("fp32 drift", "reference"))
    elif d is not None:
        far = is_num(r) and r > DRIFT_LIMIT or (isinstance(d, float) and math.isinf(d))
        kv.append(("fp32 drift", '<span class="%s" title="largest drift %s">max %s\u00d7 expected</span>' % (
            "bad" if far else "good", esc(fmt_drift(d)), esc(fmt_sig(r, 2)))))
    else:
        kv.append(("fp32 drift", "-"))
    return "".join("<span>%s</span><span>%s</span>" % (esc(k), v) for k, v in kv)


def _wall_time(summary, g: float, n: int) -> str:
    """A card's wall-time difference: with its 95% interval over paired rounds, coloured only when decisive,
    'within noise' otherwise; without paired rounds, said so and never coloured."""
    found = summary.get("time_interval")
    if not found:
        return '<span>%s</span> <small>(%d cases, wall time; %s)</small>' % (esc(fmt_change(g)), n, paired.UNPAIRED)
    text = fmt_interval(found["ratio"], found["lo"], found["hi"])
    cls = ("bad" if found["ratio"] > 1 else "good") if found["decisive"] else ""
    said = text if found["decisive"] else "%s: %s" % (paired.undecided_words(found, default_thresholds()), text)
    return '<span class="%s" title="%s q = %.2g over the environments">%s</span> <small>(%d cases, %d paired ' \
           'rounds, wall time)</small>' % (cls, esc(paired.CORRECTION), found["q_value"], esc(said),
                                           found["paired_cases"], found["paired_rounds"])


def glance(ctx: Context) -> Part:
    """One card per environment: status mix, speed and memory vs the reference, accuracy, drift."""
    summaries = agg.env_summary(ctx.df, ctx.envs, ctx.ratios, ctx.drift, ctx.ref)
    cards = []
    for env in ctx.envs:
        summary = summaries[env]
        torch_v = next((r["torch"] for r in ctx.env_rows if r["env"] == env), "-")
        tag = ' <span class="ref-tag">reference</span>' if env == ctx.ref else ""
        cards.append('<div class="card" style="border-top:4px solid %s"><h4><span>%s%s</span><small>torch %s'
                     '</small></h4>%s<div class="kv">%s</div></div>' % (
                         esc(ctx.env_color(env)), esc(env), tag, esc(torch_v), status_bar(summary["counts"]),
                         _card_rows(ctx, env, summary)))
    for row in ctx.env_rows:
        if row["state"] != "ran":
            cards.append('<div class="card" style="border-top:4px solid #c9d1d9"><h4><span>%s</span><small>%s'
                         '</small></h4><div class="kv"><span>state</span><span class="warn">%s</span>'
                         '<span>why</span><span>%s</span></div></div>' % (
                             esc(row["env"]), esc("torch " + row["torch"]), esc(row["state"]), esc(row["reason"])))
    intro = ("Time and memory are geometric means over the cases each environment shares with the reference "
             "<b>%s</b> (+ is slower, + uses more), each on the measure the heatmaps below use, named on the card "
             "(time: %s; memory: %s). Wall time states its 95%% interval over paired rounds (%s-corrected over the "
             "environments; coloured only when decisive, else within noise), or that the records were not paired. "
             "Drift compares fp32 outputs with the reference, as a ratio to the drift "
             "rounding explains (hover for the raw figure)." % (
                 esc(ctx.ref), esc(" or ".join(m.label for m in CHAINS["time"])),
                 esc(" or ".join(m.label for m in CHAINS["memory"])), esc(paired.CORRECTION)))
    return Part('<div class="cards">%s</div>' % "".join(cards), intro)


def run(ctx: Context) -> Part:
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
    note = ("Versions are what each environment reported in its records; skipped environments come from the "
            "<code>*.env.json</code> files next to the records.")
    return Part(table(headers, rows), note)
