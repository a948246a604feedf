"""The upgrade section: for a pair of releases what starts and stops working, speed, memory, accuracy and
drift changes, and the verdict. The page offers the pairs of ``upgrade.page_pairs`` in a picker
(``assets/report.js``), ``--upgrade FROM TO`` (default the oldest and the newest present) shown first."""
from typing import Optional

from harness.analysis.report import upgrade as up
from harness.analysis.report.markup import esc, table
from harness.analysis.report.sections.context import Context, Part


def _pair_html(ctx: Context, frm: str, to: str) -> str:
    """The verdict and tables of the upgrade from ``frm`` to ``to``."""
    view = up.upgrade_view(ctx.df, frm, to, ctx.env_rows)
    parts = ['<p class="verdict v-%s"><b>%s \u2192 %s: %s.</b> %s</p>' % (
        esc(view["verdict"].replace(" ", "-")), esc(frm), esc(to), esc(view["verdict"]), esc(view["verdict_text"]))]
    if view["versions"]:
        parts.append(table(["version", frm, to], ("<tr>%s</tr>" % "".join("<td>%s</td>" % esc(v) for v in row)
                                                  for row in view["versions"])))
    for t in up.tables(view):
        parts.append("<h3>%s</h3>" % esc(t["title"]))
        if not t["rows"]:
            parts.append('<p class="note">None.</p>')
            continue
        parts.append(table(t["headers"], ("<tr>%s</tr>" % "".join("<td>%s</td>" % esc(c) for c in row)
                                          for row in t["rows"])))
        if t["more"]:
            parts.append('<p class="note">and %d more; <code>python -m harness report ... --upgrade %s %s '
                         '--markdown FILE</code> writes the same view for a pull request.</p>' % (
                             t["more"], esc(frm), esc(to)))
    return "".join(parts)


def upgrade(ctx: Context) -> Optional[Part]:
    """The upgrade views of ``upgrade.page_pairs`` (``ctx.upgrade_pair``, or the oldest and newest
    environment, shown; the others behind the picker); None below two environments."""
    if len(ctx.envs) < 2:
        return None
    shown = up.pick_pair(ctx.envs, ctx.upgrade_pair)
    pairs = up.page_pairs(ctx.envs, shown)
    options = "".join('<option value="%s|%s"%s>%s \u2192 %s</option>' % (
        esc(a), esc(b), " selected" if (a, b) == shown else "", esc(a), esc(b)) for a, b in pairs)
    parts = ['<p><label>Pair <select data-upgrade-picker aria-label="upgrade pair">%s</select></label></p>' % options]
    for a, b in pairs:
        parts.append('<div class="upgrade-pair" data-pair="%s|%s"%s>%s</div>' % (
            esc(a), esc(b), "" if (a, b) == shown else " hidden", _pair_html(ctx, a, b)))
    intro = ("Every case measured on both environments of a pair, compared case by case; pick the pair (%d "
             "offered; <code>--upgrade FROM TO</code> chooses the one shown first, and with <code>--markdown "
             "FILE</code> writes it for a pull request). Speed is wall time (instruction counts of two releases "
             "count different code); memory the exact tensor peak where both sides carry it, the process peak "
             "beside it. A case unsupported or skipped on either side neither starts nor stops working." % len(pairs))
    return Part("".join(parts), intro)
