"""The accuracy section: numerical fidelity against float64 (or a fixed tolerance), fp32 drift across releases,
task metrics. The figures come from ``aggregate``; this module only words and colours them."""
import math

from harness.analysis.report import aggregate as agg
from harness.analysis.report import drift as drift_figures
from harness.analysis.report.frame import RULE_CALIBRATED, RULE_FIXED
from harness.analysis.report.markup import (
    drift_color,
    esc,
    fmt_drift,
    fmt_sig,
    is_num,
    legend,
    limit_color,
    ratio_color,
    table,
    td_heat,
)
from harness.analysis.report.sections.context import Context, Part
from harness.measures import LARGE_ERROR_FRAC


def _times(value) -> str:
    """A ratio for a cell: '3.2', '140', '0.04', '∞'."""
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    if not is_num(value):
        return "-"
    if value >= 100:
        return "%.0f" % value
    if value >= 0.1 or value == 0:
        return "%.1f" % value
    return fmt_sig(value, 1)


def _worst_case(r) -> str:
    """The worst case of a fidelity row: mode, checkpointing and where ('grads: stem.1.weight')."""
    parts = ["%s, checkpoint %s" % (r.worst_mode, r.worst_checkpoint)]
    if r.worst_where:
        parts.append(r.worst_where)
    return ": ".join(parts)


def _fidelity_cell(rows, where: str, detail: bool) -> str:
    """One precision x environment cell: a line per rule present, the failures of all, the worst case
    named in the hover text (and under the figure in a model's row, ``detail``)."""
    if not rows:
        return '<td class="na">-</td>'
    lines, tips = [], []
    for r in rows:
        if r.rule == RULE_CALIBRATED:
            lines.append("%s× expected" % _times(r.worst))
            tips.append("%s: %d checked (fp64-calibrated), %d failed; worst %s× the expected error, limit %s×; "
                        "median %s×\nworst: %s %s\n%s" % (
                            where, r.n, r.failed, fmt_sig(r.worst, 3), fmt_sig(r.limit, 3), fmt_sig(r.median, 2),
                            r.worst_model, _worst_case(r), r.worst_case))
        else:
            lines.append('%s× tol <small>(fixed)</small>' % fmt_sig(r.worst, 2))
            tips.append("%s: %d checked (fixed tolerance), %d failed; worst error/tolerance %s (tolerance %s, median "
                        "rel. error %s against fp32)\nworst: %s %s\n%s" % (
                            where, r.n, r.failed, fmt_sig(r.worst, 3), fmt_sig(r.tolerance, 2),
                            fmt_sig(r.median_err, 2), r.worst_model, _worst_case(r), r.worst_case))
    text = "<br>".join(lines)
    worst = max(rows, key=lambda r: r.score if r.score == r.score else -1.0)  # NaN: no figure
    if detail:
        text += "<br><small>%s</small>" % esc(_worst_case(worst))
    failed, n = sum(int(r.failed) for r in rows), sum(int(r.n) for r in rows)
    if failed:
        text += "<br><b>%d/%d fail</b>" % (failed, n)
    return td_heat(text, limit_color(worst.score), "\n".join(tips))


def _by_cell(table, keys):
    """{key tuple: [rows]} of a ``fidelity_table``, the calibrated rule first."""
    out = {}
    for r in table.itertuples(index=False):
        out.setdefault(tuple(str(getattr(r, k)) for k in keys), []).append(r)
    for rows in out.values():
        rows.sort(key=lambda r: r.rule != RULE_CALIBRATED)
    return out


def _fidelity_html(ctx: Context) -> str:
    summary = agg.fidelity_table(ctx.df, ["precision", "env"])
    if summary.empty:
        return '<p class="note">No record carries accuracy figures.</p>'
    detail = agg.fidelity_table(ctx.df, ["precision", "model", "env"])
    s_d = _by_cell(summary, ("precision", "env"))
    d_d = _by_cell(detail, ("precision", "model", "env"))
    prec_rank = {p: i for i, p in enumerate(ctx.notes["precision_order"])}
    rows = []
    for pi, prec in enumerate(sorted(summary["precision"].unique(), key=lambda p: (prec_rank.get(p, 99), p))):
        gid = "acc%d" % pi
        rows.append('<tr><td><button class="tg" type="button" data-toggle="%s" aria-expanded="false"><span '
                    'class="arrow">▸</span></button><b>%s</b></td>%s</tr>' % (
                        gid, esc(prec), "".join(_fidelity_cell(s_d.get((prec, env)), "%s on %s" % (prec, env), False)
                                                for env in ctx.envs)))
        for model in sorted(detail.loc[detail["precision"] == prec, "model"].unique()):
            rows.append('<tr class="child" data-parent="%s" hidden><td>%s</td>%s</tr>' % (
                gid, esc(model), "".join(_fidelity_cell(d_d.get((prec, model, env)),
                                                        "%s %s on %s" % (model, prec, env), True)
                                         for env in ctx.envs)))
    keys = legend([("far below the limit", "#d5f0d9"), ("near the limit", "#fbe7a1"),
                   ("above the limit: fails", "#e8705f")])
    return keys + table(["precision / model"] + ctx.envs, rows)


def _fidelity_note(ctx: Context) -> str:
    """What the fidelity figures mean, with the limits and rules the records carry."""
    ok = ctx.df[(ctx.df["status"] == "ok") & ctx.df["acc_rule"].notna()]
    rules = set(ok["acc_rule"].astype(str))
    limits = sorted({float(v) for v in ok.loc[ok["acc_rule"] == RULE_CALIBRATED, "acc_limit"].dropna()})
    limit = (" (limit %s)" % ", ".join("%s×" % fmt_sig(v, 3) for v in limits)) if limits else ""
    text = ("<b>N.N× expected</b> (rule fp64-calibrated): the worst error, over outputs and (in train mode) "
            "gradients, against a float64 reference, in units of the error this precision is expected to make "
            "there (fp32's own error scaled by the ratio of unit roundoffs, never below one unit roundoff); a "
            "case fails above the limit%s." % limit)
    if RULE_FIXED in rules or not rules:
        text += (" <b>N× tol (fixed)</b> (rule fixed tolerance: older records, or a scenario that sets a "
                 "tolerance): the relative error against an fp32 un-checkpointed reference divided by the "
                 "precision's fixed tolerance; a case fails above 1×.")
    return ('<p class="note">%s See docs/accuracy.md. ▸ expands a precision into models (with the worst '
            "case under each figure); hover for the worst case, the limit and the counts.</p>" % text)


def _drift_cell(rows, model: str, env: str, ref: str) -> str:
    """One model x environment cell of the drift table: a line per basis (sketch, probe)."""
    lines, tips, color = [], [], None
    for r in rows:
        case = ("%s %s batch %s size %s %s" % (r.model, r.mode, r.batch_size, r.size_label, r.device)
                if isinstance(r.mode, str) else "-")
        if r.basis == "sketch":
            changed = is_num(r.fp64_max) and r.fp64_max > drift_figures.FP64_CHANGED
            lines.append("%s× expected%s" % (_times(r.max), "<br><small>fp64 changed</small>" if changed else ""))
            tips.append(
                "%s on %s vs %s: fp32 drift up to %s× the expected (median %s× over %d cases; above %s× "
                "is more than rounding)\nworst: %s: drift %s, expected %s (each environment's own fp32 error "
                "against its float64 output), float64 outputs differ by %s\nlargest float64 difference: %s%s" % (
                    model, env, ref, fmt_sig(r.max, 3), fmt_sig(r.median, 2), r.n,
                    fmt_sig(drift_figures.DRIFT_LIMIT, 2), case,
                    fmt_drift(r.worst_drift), fmt_drift(r.worst_expected), fmt_drift(r.worst_fp64),
                    fmt_drift(r.fp64_max), " (above %s: the computation itself changed, not its rounding)" % (
                        fmt_drift(drift_figures.FP64_CHANGED)) if changed else ""))
            if color is None:
                color = limit_color(r.max / drift_figures.DRIFT_LIMIT if is_num(r.max) else r.max)
        else:
            lines.append("%s <small>probe</small>" % esc(fmt_drift(r.max)))
            tips.append("%s on %s vs %s: max probe difference against the reference env (records without "
                        "sketches): max relative difference %s, median %s over %d cases\nworst: %s" % (
                            model, env, ref, fmt_drift(r.max), fmt_drift(r.median), r.n, case))
            if color is None:
                color = drift_color(r.max)
    return td_heat("<br>".join(lines), color, "\n".join(tips))


def _drift_html(ctx: Context) -> str:
    drift = ctx.drift
    if drift is None or drift.empty:
        return ('<p class="note">No output sketches or probes to compare (records carry none, or no case ran ok '
                'in the reference).</p>')
    summary = drift_figures.drift_summary(drift)
    by_cell = {}
    for r in summary.itertuples(index=False):
        by_cell.setdefault((r.model, r.env), []).append(r)
    rows = []
    for model in sorted(summary["model"].unique()):
        cells = []
        for env in ctx.envs:
            if env == ctx.ref:
                cells.append('<td class="ref">ref</td>')
            elif (model, env) in by_cell:
                cells.append(_drift_cell(by_cell[(model, env)], model, env, ctx.ref))
            else:
                cells.append('<td class="na">-</td>')
        rows.append("<tr><td><b>%s</b></td>%s</tr>" % (esc(model), "".join(cells)))
    keys = []
    shown = summary.loc[summary["env"] != ctx.ref, "basis"]
    if (shown == "sketch").any():
        keys += [("identical", "#c8ecd0"), ("within 1× expected", "#d5f0d9"),
                 ("up to %s× expected" % fmt_sig(drift_figures.DRIFT_LIMIT, 2), "#fbe7a1"),
                 ("above: more than rounding", "#e8705f")]
    if (shown == "probe").any():
        keys += [("probe: ≤ 1e-6", "#d5f0d9"), ("probe: ≤ 1e-4", "#fbe7a1"), ("probe: larger", "#e8705f")]
    return legend(keys) + table(["model"] + ctx.env_th(), rows)


def _drift_note(ctx: Context) -> str:
    """What the drift figures mean."""
    return ('<p class="note">The same fp32 case gives the same output on every PyTorch release unless its '
            "arithmetic changed. Where both records carry output sketches (signed sums of the whole output, "
            "the same linear map on every release): the drift ||s32 − s32<sub>ref</sub>|| / "
            "||s64<sub>ref</sub>|| against <b>%s</b>, in units of the drift rounding explains: the two "
            "environments' own fp32 errors against their float64 outputs, added (at least 2<sup>−24</sup>). "
            "Within %s× expected is rounding; above is flagged. <b>fp64 changed</b>: the float64 outputs "
            "themselves differ by more than %s, so the computation changed between the releases, not its rounding. "
            "Records without sketches (older schema) fall back to the output probe, marked <b>probe</b>: "
            "max |probe − probe<sub>ref</sub>| / max |probe<sub>ref</sub>|. Worst case per model; hover for "
            "the drift, the expected drift and the float64 difference.</p>" % (
                esc(ctx.ref), fmt_sig(drift_figures.DRIFT_LIMIT, 2), fmt_drift(drift_figures.FP64_CHANGED)))


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


#: The most rows each list of cases shown apart has on the page.
APART_ROWS = 50


def _pct(value) -> str:
    return "%.0f%%" % (100.0 * value) if is_num(value) else "-"


def _allowed(r) -> str:
    """The largest error the rule allowed a row of ``accuracy_apart``: its limit times its larger expected error."""
    expected = [v for v in (r.out_expected_err, r.grad_expected_err) if is_num(v)]
    return _pct(max(expected) * r.acc_limit) if expected and is_num(r.acc_limit) else "-"


def _apart_html(ctx: Context) -> str:
    """The ok cases the fidelity figures above do not speak for: not judged, and passed with a large error."""
    not_judged, large = agg.accuracy_apart(ctx.df)
    out = []
    for title, rows, note in (
            ("Not judged (%d)" % len(not_judged), not_judged,
             "The limit times the expected error reaches 100%: this precision cannot compute these values here "
             "closely enough for the rule to tell a fault from rounding (an all-zero result would pass), so the "
             "case is neither passed nor failed."),
            ("Passed with a large error: warnings (%d)" % len(large), large,
             "Passed the rule, yet %s or more off float64 in the outputs or the gradients: the expected error, "
             "scaled from fp32's own, is itself large here. Look before trusting these results." %
             _pct(LARGE_ERROR_FRAC))):
        out.append("<h4>%s</h4><p class=\"note\">%s</p>" % (esc(title), note))
        if rows.empty:
            out.append('<p class="note">None.</p>')
            continue
        body = ["<tr>%s</tr>" % "".join("<td>%s</td>" % esc(c) for c in (
            r.env, r.model, r.precision, r.mode, r.checkpoint, _pct(r.out_err64), _pct(r.grad_err64), _allowed(r)))
            for r in rows.head(APART_ROWS).itertuples(index=False)]
        out.append(table(["environment", "model", "precision", "mode", "checkpoint", "outputs off float64",
                          "gradients off float64", "allowed (limit x expected)"], body))
        if len(rows) > APART_ROWS:
            out.append('<p class="note">and %d more (the records table lists every case).</p>' % (
                len(rows) - APART_ROWS))
    return "".join(out)


def accuracy(ctx: Context) -> Part:
    """Fidelity by precision and environment (against float64, or a fixed tolerance for older records);
    fp32 drift across releases; task metrics."""
    body = ("<h3>Numerical fidelity: error against the expected error</h3>" + _fidelity_note(ctx) +
            _fidelity_html(ctx) + _apart_html(ctx) +
            "<h3>fp32 output drift across environments</h3>" + _drift_note(ctx) + _drift_html(ctx) +
            "<h3>Task metrics</h3>"
            '<p class="note">Short fixed-seed training runs on each model\'s synthetic task: the metric after '
            "training (hover for before); coloured against the reference.</p>" + _task_html(ctx))
    return Part(body)
