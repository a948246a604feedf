"""The upgrade section: for a pair of releases (``--upgrade FROM TO``; default the oldest and the newest
present) what starts and stops working, speed, memory, accuracy and drift changes, and the verdict."""
from typing import Optional

from harness.analysis.report import upgrade as up
from harness.analysis.report.markup import esc, table
from harness.analysis.report.sections.context import Context, Part


def upgrade(ctx: Context) -> Optional[Part]:
    """The upgrade view of ``ctx.upgrade_pair`` (or the oldest and newest environment); None below two."""
    if len(ctx.envs) < 2:
        return None
    frm, to = up.pick_pair(ctx.envs, ctx.upgrade_pair)
    view = up.upgrade_view(ctx.df, frm, to, ctx.env_rows)
    parts = ['<p class="verdict v-%s"><b>%s.</b> %s</p>' % (
        esc(view["verdict"].replace(" ", "-")), esc(view["verdict"].capitalize()), esc(view["verdict_text"]))]
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
    intro = ("Every case measured on both %s and %s, compared case by case. Pick another pair with "
             "<code>--upgrade FROM TO</code>. Speed is wall time (instruction counts of two releases count "
             "different code); memory the exact tensor peak where both sides carry it, the process peak beside "
             "it. A case unsupported or skipped on either side neither starts nor stops working." % (
                 esc(frm), esc(to)))
    return Part("".join(parts), intro)
