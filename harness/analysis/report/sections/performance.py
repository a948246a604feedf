"""The speed and memory sections: figures across releases, per-model chart grids, ratios to the reference,
and the gradient-checkpointing trade-off."""
import json
from typing import Dict

from harness.analysis.report import aggregate as agg
from harness.analysis.report import figures
from harness.analysis.report.markup import esc, fmt_change, is_num, legend, ratio_color, table, td_heat
from harness.analysis.report.sections.context import Context, Part
from harness.vocab import CHECKPOINTS

#: The checkpointing modes compared with no checkpointing.
CHECKPOINTED = tuple(c for c in CHECKPOINTS if c != "none")


def _ratio_heatmap(ctx: Context, value: str, higher_is_better: bool, what: str) -> str:
    ratios = ctx.ratios
    if ratios is None or ratios.empty:
        return '<p class="note">No case ran ok both here and in the reference environment.</p>'
    by_prec = agg.geomean_table(ratios, value, ["model", "precision", "env"]).reset_index()
    by_mode = agg.geomean_table(ratios, value, ["model", "precision", "mode", "env"]).reset_index()
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


def _slice_text(where: Dict[str, str]) -> str:
    parts = ["%s %s" % (k, v) for k, v in where.items() if not (k == "opts" and v == "-")]
    return ("Slice: %s. Each model at the batch size and size with the most ok records (in the legend); "
            "median of the raw samples." % ", ".join(parts))


def _release_figure(ctx: Context, column: str, scale: float, name: str, title: str, ylabel: str):
    where = agg.default_slice(ctx.df)
    series = agg.release_series(ctx.df, where)
    return figures.release_chart(series, column, scale, name, title, ylabel, ctx.envs, ctx.ref, _slice_text(where))


def _charts(ctx: Context, metric: str) -> str:
    """The interactive grid of small charts (one per model) that ``assets/report.js`` draws."""
    defaults = dict(agg.default_slice(ctx.df), x=agg.default_x_axis(ctx.df))
    return ('<div data-tm-charts data-src="tm-records" data-metric="%s" data-defaults="%s"></div>'
            % (esc(metric), esc(json.dumps(defaults))))


def _figure_html(chart, caption: str) -> str:
    if chart is None:
        return '<p class="note">No ok records in this slice to draw.</p>'
    return figures.inline(chart) + '<p class="note">%s</p>' % caption


_FILES_NOTE = "Also saved as <code>figures/%s.svg</code> and <code>.png</code> next to this report."


def speed(ctx: Context) -> Part:
    """Step time per model across releases, throughput curves per model, the heatmap against the reference."""
    chart = _release_figure(ctx, "median_s", 1e3, "speed_by_release", "Median step time", "median time (ms)")
    heat = _ratio_heatmap(ctx, "speed_ratio", True, "throughput")
    keys = legend([("slower than reference", "#e8705f"), ("same", "#ffffff"), ("faster", "#6fa8dc")])
    body = ("<h3>Across PyTorch releases</h3>" + _figure_html(chart, _FILES_NOTE % "speed_by_release") +
            "<h3>Throughput per model</h3>"
            '<p class="note">Throughput (samples per second, median of the raw samples) against batch size, size '
            "or environment for one slice of the matrix; the axes not drawn are fixed at their most common value "
            "for each model. Pick the slice above the charts; hover a point for its value.</p>" +
            _charts(ctx, "throughput") + "<h3>Speed relative to %s</h3>" % esc(ctx.ref) +
            '<p class="note">Geometric mean over the cases (all modes, batch sizes, sizes, checkpointing) that ran ok '
            "in both environments; hover a cell for the count, the range and train/eval separately. Pick another "
            "reference with <code>--reference-env</code>.</p>" + keys + heat)
    intro = ("How long a step takes in each environment, and how fast each model runs against the reference "
             "<b>%s</b>." % esc(ctx.ref))
    return Part(body, intro, figures=(chart,) if chart else ())


def _bar(frac, color: str, scale: float = 50.0) -> str:
    if not is_num(frac):
        return "-"
    width = max(1.0, min(abs(frac), 1.5) * scale)
    return '<span class="bars"><i style="width:%.0fpx;background:%s"></i>%+.0f%%</span>' % (width, color, frac * 100)


def _tradeoff_table(trade) -> str:
    rows = []
    for model in sorted(trade["model"].unique()):
        sub = trade[trade["model"] == model].set_index("checkpoint")
        cells = []
        for mode in CHECKPOINTED:
            if mode in sub.index:
                r = sub.loc[mode]
                tip = "\n".join("%s: saves %.0f%%, costs %+.0f%% (n=%d)" % (env, v[0] * 100, v[1] * 100, v[2])
                                for env, v in r["by_env"].items() if is_num(v[0]) and is_num(v[1]))
                cells.append('<td title="%s">%s</td><td title="%s">%s</td><td class="num">%d</td>' % (
                    esc(tip), _bar(r["mem_saved"], "#59a14f"), esc(tip), _bar(r["time_cost"], "#e15759"), r["n"]))
            else:
                cells.append('<td class="na" colspan="3">not measured</td>')
        rows.append("<tr><td><b>%s</b></td>%s</tr>" % (esc(model), "".join(cells)))
    head = ('<thead><tr><th rowspan="2">model</th>%s</tr><tr>%s</tr></thead>' % (
        "".join('<th colspan="3">%s</th>' % esc(m.replace("_", "-")) for m in CHECKPOINTED),
        '<th>memory saved</th><th>time added</th><th class="num">pairs</th>' * len(CHECKPOINTED)))
    return '<div class="scroll"><table class="grid">%s<tbody>%s</tbody></table></div>' % (head, "".join(rows))


def memory(ctx: Context) -> Part:
    """Peak memory across releases, peak-memory curves, memory against the reference, the checkpointing trade-off."""
    chart = _release_figure(ctx, "peak_mem_bytes", 1.0 / 2 ** 20, "memory_by_release", "Peak memory",
                            "peak memory (MiB)")
    heat = _ratio_heatmap(ctx, "mem_ratio", False, "peak memory")
    trade = agg.checkpoint_tradeoff(ctx.df)
    trade_chart = figures.tradeoff_chart(trade) if len(trade) else None
    if len(trade):
        trade_html = '<div class="side">%s<div class="side-figure">%s</div></div>' % (
            _tradeoff_table(trade), _figure_html(trade_chart, _FILES_NOTE % "checkpoint_tradeoff"))
    else:
        trade_html = '<p class="note">No checkpointed case has an ok un-checkpointed twin to compare with.</p>'
    keys = legend([("uses less than reference", "#6fa8dc"), ("same", "#ffffff"), ("uses more", "#e8705f")])
    body = ("<h3>Across PyTorch releases</h3>" + _figure_html(chart, _FILES_NOTE % "memory_by_release") +
            "<h3>Peak memory per model</h3>"
            '<p class="note">Same slice controls as the throughput charts.</p>' + _charts(ctx, "peak") +
            "<h3>Peak memory relative to %s</h3>" % esc(ctx.ref) + keys + heat +
            "<h3>Gradient checkpointing: memory saved against time lost</h3>"
            '<p class="note">Each checkpointed train case against the same case without checkpointing in the same '
            "environment; medians over batch sizes, sizes, precisions and environments (hover the table for each "
            "environment).</p>" + trade_html)
    intro = ("Peak memory: the CUDA allocator peak on GPU, the process high-water mark above the pre-case baseline "
             "on CPU (MiB).")
    return Part(body, intro, figures=tuple(c for c in (chart, trade_chart) if c is not None))
