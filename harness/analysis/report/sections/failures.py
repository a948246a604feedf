"""The failures section (every non-ok case and accuracy failure, grouped by reason) and the table of every case."""
import re
from typing import Dict, List

from harness.analysis.report import aggregate as agg
from harness.analysis.report import spans
from harness.analysis.report.markup import esc
from harness.analysis.report.sections.context import Context, Part

#: Most failure groups shown; the table of every case has the rest.
MAX_GROUPS = 150
#: Most cells (model, precision, mode, checkpoint) in a group's table of release spans.
MAX_SPAN_ROWS = 40
#: Each state of a span: its CSS class and its words in a cell's tooltip.
_STATE_TEXT = {spans.FAIL: "fails with this cause", spans.WORKS: "works", spans.NOT_RUN: "not run (unsupported)",
               spans.OTHER: "fails with another cause", spans.ABSENT: "no record"}


def _span_table(group: Dict, envs: List[str]) -> str:
    """The release spans of a group: one row per cell, one column per release (oldest first)."""
    cells = group["spans"]
    if not cells:
        return ""
    marks_of = {m: s for s, m in spans.STATE_MARKS.items()}
    rows = []
    for c in cells[:MAX_SPAN_ROWS]:
        tds = "".join('<td class="span-%s" title="%s: %s">%s</td>' % (
            marks_of[m].replace(" ", "-"), esc(e), esc(_STATE_TEXT[marks_of[m]]), esc(m))
            for e, m in zip(envs, c["marks"]))
        rows.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td>%s<td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
                    "</tr>" % (esc(c["model"]), esc(c["precision"]), esc(c["mode"]), esc(c["checkpoint"]), tds,
                               esc(c["last_good"] or "-"), esc(c["first_bad"]), esc(c["works_again"] or "-"),
                               esc(c["pattern"])))
    more = ('<p class="note">and %d more cells.</p>' % (len(cells) - MAX_SPAN_ROWS)
            if len(cells) > MAX_SPAN_ROWS else "")
    head = "".join("<th>%s</th>" % esc(e) for e in envs)
    return ('<table class="grid spans"><thead><tr><th>model</th><th>precision</th><th>mode</th><th>checkpoint</th>%s'
            '<th>last good</th><th>first bad</th><th>works again</th><th>pattern</th></tr></thead><tbody>%s</tbody>'
            '</table>%s' % (
                head, "".join(rows), more))


def _group_html(g: Dict, envs: List[str]) -> str:
    models = ", ".join(g["models"][:8]) + (" and %d more" % (len(g["models"]) - 8) if len(g["models"]) > 8 else "")
    full = ""
    if g["full"] and g["full"].strip() != g["reason"]:
        full = "<pre>%s</pre>" % esc(g["full"][:4000])
    cases = "".join("<tr><td>%s</td><td><code>%s</code></td></tr>" % (esc(e), esc(k)) for e, k in g["cases"])
    more = ('<p class="note">and %d more; use the table of every case.</p>' % (g["count"] - len(g["cases"]))
            if g["count"] > len(g["cases"]) else "")
    words = [w for w in re.split(r"[^A-Za-z_]+", g["reason"]) if len(w) > 3 and not re.search(r"\d", w)][:4]
    query = " ".join([g["status"] if g["status"] != "accuracy" else "fail"] + words).lower()
    finding = '<span class="finding">%s</span>' % esc(g["finding"]) if g.get("finding") else ""
    return ('<details class="fail" data-status="%s"><summary><span class="st s-%s">%s</span> <span class="cnt">'
            '\u00d7%s</span>%s%s</summary><div class="where">models: %s<br>environments: %s \u00b7 '
            '<a href="#all" data-show-in-table="tm-table-records" data-query="%s">show in the table</a></div>%s%s'
            '<table class="grid"><thead><tr><th>environment</th><th>case</th></tr></thead><tbody>%s</tbody></table>'
            "%s</details>" % (esc(g["status"]), esc(g["status"]), esc(g["status"]), "{:,}".format(g["count"]),
                              esc(g["reason"]), finding, esc(models), esc(", ".join(g["envs"])), esc(query),
                              _span_table(g, envs), full, cases, more))


def failures(ctx: Context) -> Part:
    """Every non-ok case (and every accuracy failure) with its reason, grouped."""
    groups = agg.failure_groups(ctx.df)
    if not groups:
        return Part('<p class="good">Every case ran ok and passed its accuracy checks.</p>')
    total = sum(g["count"] for g in groups)
    by_status: Dict[str, int] = {}
    for g in groups:
        by_status[g["status"]] = by_status.get(g["status"], 0) + g["count"]
    parts = ['<p>%s cases in %d groups: %s.</p>' % ("{:,}".format(total), len(groups), esc(", ".join(
        "%s %s" % ("{:,}".format(n), s) for s, n in by_status.items())))]
    parts += [_group_html(g, ctx.envs) for g in groups[:MAX_GROUPS]]
    if len(groups) > MAX_GROUPS:
        parts.append('<p class="note">%d more groups; filter the table of every case by status.</p>' % (
            len(groups) - MAX_GROUPS))
    intro = ("Grouped by status and cause (numbers and repeated exception prefixes in reasons are ignored when "
             "grouping). Most severe first: crashes, errors, out of memory, timeouts, accuracy failures, "
             "unsupported, skipped. Each group's line says on which releases it fails; its table gives the release "
             "span of each model, precision, mode and checkpointing (oldest release first): \u2717 fails with this "
             "cause, \u2713 works, \u25cb fails with another cause, \u2013 not run (unsupported: neither working "
             "nor failing), \u00b7 no record. A cause that fails on every release where it ran is the model's; "
             "one that fails on a span of releases is the releases'.")
    return Part("".join(parts), intro)


def every_case(ctx: Context) -> Part:
    """The sortable, filterable, paged table of every record (drawn by the page script from ``tm-records``)."""
    body = ('<div id="tm-table-records" data-tm-table data-src="tm-records" data-page-size="50" '
            'data-sort=""></div>')
    intro = ("One row per case and environment (%s rows). Click a header to sort, pick values to filter, type words "
             "to search model, environment, status and reason; the CSV button saves the filtered rows." % "{:,}".format(
                 len(ctx.df)))
    return Part(body, intro)
