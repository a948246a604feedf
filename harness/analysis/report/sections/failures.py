"""The failures section (every non-ok case and accuracy failure, grouped by reason) and the table of every case."""
import re
from typing import Dict

from harness.analysis.report import aggregate as agg
from harness.analysis.report.markup import esc
from harness.analysis.report.sections.context import Context, Part

#: Most failure groups shown; the table of every case has the rest.
MAX_GROUPS = 150


def _group_html(g: Dict) -> str:
    models = ", ".join(g["models"][:8]) + (" and %d more" % (len(g["models"]) - 8) if len(g["models"]) > 8 else "")
    full = ""
    if g["full"] and g["full"].strip() != g["reason"]:
        full = "<pre>%s</pre>" % esc(g["full"][:4000])
    cases = "".join("<tr><td>%s</td><td><code>%s</code></td></tr>" % (esc(e), esc(k)) for e, k in g["cases"])
    more = ('<p class="note">and %d more; use the table of every case.</p>' % (g["count"] - len(g["cases"]))
            if g["count"] > len(g["cases"]) else "")
    words = [w for w in re.split(r"[^A-Za-z_]+", g["reason"]) if len(w) > 3 and not re.search(r"\d", w)][:4]
    query = " ".join([g["status"] if g["status"] != "accuracy" else "fail"] + words).lower()
    return ('<details class="fail" data-status="%s"><summary><span class="st s-%s">%s</span> <span class="cnt">'
            '\u00d7%s</span>%s</summary><div class="where">models: %s<br>environments: %s \u00b7 '
            '<a href="#all" data-show-in-table="tm-table-records" data-query="%s">show in the table</a></div>%s'
            '<table class="grid"><thead><tr><th>environment</th><th>case</th></tr></thead><tbody>%s</tbody></table>'
            "%s</details>" % (esc(g["status"]), esc(g["status"]), esc(g["status"]), "{:,}".format(g["count"]),
                              esc(g["reason"]), esc(models), esc(", ".join(g["envs"])), esc(query), full, cases,
                              more))


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
    parts += [_group_html(g) for g in groups[:MAX_GROUPS]]
    if len(groups) > MAX_GROUPS:
        parts.append('<p class="note">%d more groups; filter the table of every case by status.</p>' % (
            len(groups) - MAX_GROUPS))
    intro = ("Grouped by status and reason (numbers in reasons are ignored when grouping). Most severe first: "
             "crashes, errors, out of memory, timeouts, accuracy failures, unsupported, skipped.")
    return Part("".join(parts), intro)


def every_case(ctx: Context) -> Part:
    """The sortable, filterable, paged table of every record (drawn by the page script from ``tm-records``)."""
    body = ('<div id="tm-table-records" data-tm-table data-src="tm-records" data-page-size="50" '
            'data-sort=""></div>')
    intro = ("One row per case and environment (%s rows). Click a header to sort, pick values to filter, type words "
             "to search model, environment, status and reason; the CSV button saves the filtered rows." % "{:,}".format(
                 len(ctx.df)))
    return Part(body, intro)
