"""The compatibility section: models x environments coloured by status, with drill-down rows."""
from typing import Dict, List, Optional, Tuple

from harness.analysis.report import aggregate as agg
from harness.analysis.report.frame import FAILING_BY_SEVERITY, STATUS_ORDER
from harness.analysis.report.markup import STATUS_COLORS, esc, legend, status_bar, table
from harness.analysis.report.sections.context import Context, Part
from harness.vocab import NOT_RUN_STATUSES

#: Which status a cell names beside its ok count: the worst present.
_WORST_FIRST = tuple(reversed(FAILING_BY_SEVERITY)) + tuple(NOT_RUN_STATUSES)


def _cell(counts: Dict[str, int], reasons, where: str, absent: Optional[Tuple[int, str]] = None) -> str:
    """One cell; ``absent`` (``aggregate.not_in_release``): how many of its cases this environment's library
    release lacks the model for, and which release. A cell that is all such cases reads as that fact, not as a
    count of unsupported cases."""
    total = sum(counts.values())
    if not total:
        return '<td class="na">-</td>'
    if absent is not None and absent[0] == total:
        return '<td class="mx absent" title="%s"><span class="lbl">%s</span></td>' % (
            esc("%s\n%d cases unsupported here: %s" % (where, total, (reasons or [("", absent[1], 0)])[0][1])),
            esc(absent[1]))
    ok = counts.get("ok", 0)
    lines = [where, ", ".join("%d %s" % (n, s) for s, n in counts.items() if n)]
    for status, reason, n in reasons or ():
        reason = reason or "(no reason)"
        lines.append("%s \u00d7%d: %s" % (status, n, reason if len(reason) <= 140 else reason[:137] + "..."))
    worst = next((s for s in _WORST_FIRST if counts.get(s)), None)
    label = "%d/%d ok" % (ok, total)
    if worst is not None:
        label += " \u00b7 %d %s" % (counts[worst], worst)
    return '<td class="mx" title="%s"><span class="lbl">%s</span>%s</td>' % (
        esc("\n".join(lines)), esc(label), status_bar(counts))


def _as_dicts(counts) -> Dict:
    cols = list(counts.columns)
    return {idx: dict(zip(cols, map(int, vals))) for idx, vals in zip(counts.index, counts.to_numpy())}


def _why_html(lines: List[Dict], n_envs: int) -> str:
    out = []
    for w in lines:
        envs = ", ".join(w["envs"]) if len(w["envs"]) < n_envs else "every environment"
        out.append('<span class="st s-%s">%s</span> \u00d7%d on %s: %s' % (
            esc(w["status"]), esc(w["status"]), w["n"], esc(envs), esc(w["reason_short"] or "(no reason given)")))
    return "<br>".join(out)


def matrix(ctx: Context) -> Part:
    """Models x environments coloured by status; each model expands into precision x checkpoint rows."""
    df = ctx.df
    top_d = _as_dicts(agg.status_counts(df, ["model", "env"]))
    drill_d = _as_dicts(agg.status_counts(df, ["model", "precision", "checkpoint", "env"]))
    reasons_top = agg.top_reasons(df, ["model", "env"])
    absent_top = agg.not_in_release(df, ["model", "env"])
    absent_drill = agg.not_in_release(df, ["model", "precision", "checkpoint", "env"])
    reasons_drill = agg.top_reasons(df, ["model", "precision", "checkpoint", "env"], per_group=2)
    why_by_model = agg.reasons_by_model(df, ctx.envs)
    prec_rank = {p: i for i, p in enumerate(ctx.notes["precision_order"])}
    ck_rank = {p: i for i, p in enumerate(ctx.notes["checkpoint_order"])}
    combos_by_model: Dict[str, set] = {}
    for (model, prec, ck, _env) in drill_d:
        combos_by_model.setdefault(model, set()).add((prec, ck))
    rows = []
    for mi, model in enumerate(ctx.models()):
        gid = "mx%d" % mi
        cells = "".join(_cell(top_d.get((model, env), {}), reasons_top.get((model, env)),
                              "%s on %s" % (model, env), absent_top.get((model, env))) for env in ctx.envs)
        rows.append('<tr><td><button class="tg" type="button" data-toggle="%s" aria-expanded="false">'
                    '<span class="arrow">\u25b8</span></button><b>%s</b></td>%s</tr>' % (gid, esc(model), cells))
        combos = sorted(combos_by_model.get(model, ()), key=lambda pc: (prec_rank.get(pc[0], 99),
                                                                        ck_rank.get(pc[1], 99), pc))
        for prec, ck in combos:
            cells = "".join(_cell(drill_d.get((model, prec, ck, env), {}), reasons_drill.get((model, prec, ck, env)),
                                  "%s %s checkpoint=%s on %s" % (model, prec, ck, env),
                                  absent_drill.get((model, prec, ck, env))) for env in ctx.envs)
            rows.append('<tr class="child" data-parent="%s" hidden><td>%s \u00b7 ckpt %s</td>%s</tr>' % (
                gid, esc(prec), esc(ck), cells))
        if why_by_model.get(model):
            rows.append('<tr class="child why" data-parent="%s" hidden><td colspan="%d"><b>most frequent reasons'
                        '</b><br>%s</td></tr>' % (gid, len(ctx.envs) + 1, _why_html(why_by_model[model],
                                                                                     len(ctx.envs))))
    buttons = ('<p><button class="small" type="button" data-toggle-all="matrix" data-expand="1">expand all</button> '
               '<button class="small" type="button" data-toggle-all="matrix" data-expand="0">collapse all</button></p>')
    keys = legend([(s, STATUS_COLORS[s]) for s in STATUS_ORDER if s in ctx.notes["status_order"]] +
                  ([("unsupported: not in this environment's library release", None, "absent")] if absent_top else []))
    intro = ("Each cell counts the cases of a model in an environment by status. Hover a cell for the reasons; "
             "\u25b8 expands a model into precision \u00d7 checkpointing rows.")
    body = keys + buttons + '<div id="matrix">%s</div>' % table(["model"] + ctx.env_th(), rows)
    return Part(body, intro)
