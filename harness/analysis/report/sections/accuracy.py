"""The accuracy section: numerical fidelity against tolerance, fp32 drift across releases, task metrics."""
from harness.analysis.report import aggregate as agg
from harness.analysis.report.markup import (
    drift_color,
    esc,
    fmt_drift,
    fmt_sig,
    is_num,
    legend,
    ratio_color,
    table,
    td_heat,
    tolerance_color,
)
from harness.analysis.report.sections.context import Context, Part


def _fidelity_html(ctx: Context) -> str:
    summary = agg.fidelity_table(ctx.df, ["precision", "env"])
    if summary.empty:
        return '<p class="note">No record carries accuracy figures.</p>'
    detail = agg.fidelity_table(ctx.df, ["precision", "model", "env"])
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
    summary = agg.drift_summary(drift)
    by_cell = {(r.model, r.env): r for r in summary.itertuples(index=False)}
    rows = []
    for model in sorted(summary["model"].unique()):
        cells = []
        for env in ctx.envs:
            if env == ctx.ref:
                cells.append('<td class="ref">ref</td>')
                continue
            r = by_cell.get((model, env))
            if r is None:
                cells.append('<td class="na">-</td>')
                continue
            where = ("worst: %s %s batch %s size %s %s" % (r.model, r.mode, r.batch_size, r.size_label, r.device)
                     if isinstance(r.mode, str) else "")
            tip = "%s on %s vs %s: max relative difference %s, median %s over %d cases\n%s" % (
                model, env, ctx.ref, fmt_drift(r.max), fmt_drift(r.median), r.n, where)
            cells.append(td_heat(esc(fmt_drift(r.max)), drift_color(r.max), tip))
        rows.append("<tr><td><b>%s</b></td>%s</tr>" % (esc(model), "".join(cells)))
    keys = legend([("identical", "#c8ecd0"), ("\u2264 1e-6", "#d5f0d9"), ("\u2264 1e-4", "#fbe7a1"),
                   ("larger", "#e8705f")])
    return keys + table(["model"] + ctx.env_th(), rows)


def _task_html(ctx: Context) -> str:
    df = agg.task_results(ctx.df)
    if df.empty:
        return '<p class="note">No task metrics were recorded (the scenario did not ask for training runs).</p>'
    rows = []
    groups = list(df.groupby(["model", "task_metric", "case"], observed=True))
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


def accuracy(ctx: Context) -> Part:
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
    return Part(body)
