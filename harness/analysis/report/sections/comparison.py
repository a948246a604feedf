"""The comparison section: the gate's verdicts, or per-case ratios against baseline records."""
from typing import Optional

from harness.analysis.report import compare, datasets
from harness.analysis.report.markup import esc, fmt_change, json_script, ratio_color, table, td_heat
from harness.analysis.report.sections.context import Context, Part
from harness.measures import CHAINS, default_thresholds, noise_words


def _baseline_note(ctx: Context) -> str:
    base = ctx.baseline
    frame = base.frame
    if frame is None:
        return ""
    runs = sorted(str(r) for r in frame["run_id"].dropna().unique())
    commits = sorted(str(c)[:12] for c in frame["git_commit"].dropna().unique())
    return '<p class="note">Baseline: %s records from %s (run %s, commit %s).</p>' % (
        "{:,}".format(len(frame)), esc(", ".join(base.paths)), esc(", ".join(runs[:3]) or "-"),
        esc(", ".join(commits[:3]) or "-"))


def _cut_note(shown: int, total: int, what: str, least: str) -> str:
    if total <= shown:
        return ""
    return ('<p class="note">The table lists the first {:,} of {:,} {} (the most important first; the rest are '
            "mostly {}); the counts above cover all of them.</p>").format(shown, total, what, least)


def _rules_text() -> str:
    """Each time and memory measure and what counts as a change of it, at the gate's default thresholds."""
    th = default_thresholds()
    return "; ".join("%s: %s" % (kind, ", else ".join("%s %s" % (m.label, noise_words(m, th)) for m in CHAINS[kind]))
                     for kind in ("time", "memory"))


def _from_verdicts(ctx: Context) -> Part:
    verdicts = ctx.baseline.verdicts
    counts = compare.verdict_counts(verdicts)
    rows = []
    for kind in counts.index:
        cells = "".join('<td class="num">%s</td>' % (
            '<span class="vd vd-%s">%d</span>' % (esc(v), counts.loc[kind, v]) if counts.loc[kind, v] else "0")
            for v in counts.columns)
        rows.append("<tr><td><b>%s</b></td>%s</tr>" % (esc(kind), cells))
    summary = table(["kind"] + list(counts.columns), rows, num_cols=range(1, len(counts.columns) + 1))
    n_reg = int((verdicts["verdict"] == "regressed").sum())
    headline = ('<p class="bad"><b>%d regression%s</b> found by the gate.</p>' % (n_reg, "" if n_reg == 1 else "s")
                if n_reg else '<p class="good"><b>No regression</b> found by the gate.</p>')
    shown, total = datasets.cap_rows(datasets.ranked_verdicts(verdicts))
    body = (headline + _baseline_note(ctx) + summary + _cut_note(len(shown), total, "verdicts", "unchanged verdicts") +
            '<div id="tm-table-verdicts" data-tm-table data-src="tm-verdicts" data-page-size="25"></div>')
    intro = ("Candidate against baseline, matched by case key and environment. The gate calls a change regressed "
             "only when it is large beyond the noise of the measure it rests on (%s); ratio is candidate / baseline, "
             "on that measure." % esc(_rules_text()))
    return Part(body, intro, blocks=(json_script("tm-verdicts", datasets.verdicts_json(shown)),))


def _from_baseline(ctx: Context) -> Part:
    base = ctx.baseline.frame
    comp = compare.compare_with_baseline(ctx.df.assign(env=ctx.df["env"].astype(str)), base)
    rows = []
    for r in compare.baseline_summary(comp, ctx.envs):
        rows.append('<tr><td><b>%s</b></td><td class="num">%d</td>%s%s<td class="num">%d</td><td class="num">%d</td>'
                    '<td class="num %s">%d</td><td class="num %s">%d</td><td class="num">%d</td><td class="num">%d'
                    "</td></tr>" % (
                        esc(r["env"]), r["timed"],
                        td_heat(esc(fmt_change(r["time"])), ratio_color(r["time"], False),
                                "geometric mean of candidate/baseline step cost (each case on its \"time on\" "
                                "measure); + is slower"),
                        td_heat(esc(fmt_change(r["memory"])), ratio_color(r["memory"], False),
                                "geometric mean of the memory ratio (each case on its \"memory on\" measure)"),
                        r["slower"], r["faster"], "bad" if r["broke"] else "", r["broke"],
                        "good" if r["fixed"] else "", r["fixed"], r["new"], r["vanished"]))
    beyond = "%g%%" % round(100 * (default_thresholds()["time_factor"] - 1.0), 6)
    summary = table(["environment", "timed in both", "time", "memory", "slower >" + beyond, "faster >" + beyond,
                     "ok \u2192 not ok", "not ok \u2192 ok", "new", "vanished"], rows, num_cols=range(1, 10))
    shown, total = datasets.cap_rows(datasets.ranked_changes(comp))
    body = (_baseline_note(ctx) + summary + _cut_note(len(shown), total, "cases", "cases within " + beyond) +
            '<p class="note">No significance test here: run the gate for verdicts that account for noise. "slower" '
            "and \"faster\" mark a change beyond %s of the step's cost, each case on the first of %s that both its "
            "records carry (\"time on\" says which).</p>" % (beyond, esc(", ".join(m.label for m in CHAINS["time"])))
            +
            '<div id="tm-table-compare" data-tm-table data-src="tm-compare" data-page-size="25"></div>')
    intro = "Candidate (these records) against the baseline records, matched by case key and environment label."
    block = json_script("tm-compare", datasets.changes_json(shown, ctx.df, base, ctx.notes))
    return Part(body, intro, blocks=(block,))


def comparison(ctx: Context) -> Optional[Part]:
    """The gate's verdicts when given, else the comparison with baseline records; None without either."""
    if ctx.baseline is None:
        return None
    if ctx.baseline.verdicts is not None:
        return _from_verdicts(ctx)
    if ctx.baseline.frame is not None:
        return _from_baseline(ctx)
    return None
