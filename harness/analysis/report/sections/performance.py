"""The speed and memory sections: figures across releases, per-model chart grids, ratios to the reference,
and the gradient-checkpointing trade-off."""
import json
from typing import Dict

from harness.analysis.report import aggregate as agg
from harness.analysis.report import figures, heatmap
from harness.analysis.report.markup import esc, is_num
from harness.analysis.report.sections.context import Context, Part
from harness.analysis.report.sections.relative import chain_note, heatmap_html, time_noise_note
from harness.vocab import CHECKPOINTS

#: The checkpointing modes compared with no checkpointing.
CHECKPOINTED = tuple(c for c in CHECKPOINTS if c != "none")


def _slice_text(where: Dict[str, str]) -> str:
    parts = ["%s %s" % (k, v) for k, v in where.items() if not (k == "opts" and v == "-")]
    return ("Slice: %s. Each model at the batch size and size with the most ok records (in its row's label). "
            "Time: the median over the rounds with its 95%% interval (a line) where a case has two or more, else "
            "the median of one run's samples." % ", ".join(parts))


def _release_figure(ctx: Context, column: str, scale: float, name: str, title: str, ylabel: str, **kwargs):
    where = agg.default_slice(ctx.df)
    series = agg.release_series(ctx.df, where)
    return figures.release_chart(series, column, scale, name, title, ylabel, ctx.envs, ctx.ref, _slice_text(where),
                                 **kwargs)


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
    # wall time: instruction counts of two releases count different code; the rounds' interval where there are some
    chart = _release_figure(ctx, "time_s", 1e3, "speed_by_release", "Median step time", "median time (ms)",
                            interval=("time_lo_s", "time_hi_s"))
    heat = heatmap_html(ctx, heatmap.TIME)
    body = ("<h3>Across PyTorch releases</h3>" + _figure_html(chart, _FILES_NOTE % "speed_by_release") +
            "<h3>Throughput per model</h3>"
            '<p class="note">Throughput (samples per second, median of the raw samples) against batch size, size '
            "or environment for one slice of the matrix; the axes not drawn are fixed at their most common value "
            "for each model. Pick the slice above the charts; hover a point for its value.</p>" +
            _charts(ctx, "throughput") + "<h3>Time per step relative to %s</h3>" % esc(ctx.ref) +
            '<p class="note">Change of the time a step takes, geometric mean over the cases (all modes, batch sizes, '
            "sizes, checkpointing) that ran ok in both environments; + is slower. %s %s; the gate's verdicts, when "
            "given, judge the cells they cover. Hover a cell for its basis, its noise band and where that came from, "
            "the count, the range and train/eval separately. Pick another reference with "
            "<code>--reference-env</code>.</p>" % (chain_note(heatmap.TIME), time_noise_note()) + heat)
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
                tip = "\n".join(["memory: %s; time: %s" % (r["mem_basis"], r["time_basis"])] + [
                    "%s: saves %.0f%%, costs %+.0f%% (n=%d)" % (env, v[0] * 100, v[1] * 100, v[2])
                    for env, v in r["by_env"].items() if is_num(v[0]) and is_num(v[1])])
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
    # the exact tensor peak where every environment of a model carries it, the process peak beside it
    chart = _release_figure(ctx, "mem_value", 1.0 / 2 ** 20, "memory_by_release", "Peak memory",
                            "peak memory (MiB; each row's measure in its label)", basis_column="mem_basis",
                            beside="peak_mem_bytes", beside_label="process peak (ring, below the dot)")
    heat = heatmap_html(ctx, heatmap.MEMORY)
    trade = agg.checkpoint_tradeoff(ctx.df)
    trade_chart = figures.tradeoff_chart(trade) if len(trade) else None
    if len(trade):
        trade_html = '<div class="side">%s<div class="side-figure">%s</div></div>' % (
            _tradeoff_table(trade), _figure_html(trade_chart, _FILES_NOTE % "checkpoint_tradeoff"))
    else:
        trade_html = '<p class="note">No checkpointed case has an ok un-checkpointed twin to compare with.</p>'
    body = ("<h3>Across PyTorch releases</h3>" + _figure_html(chart, _FILES_NOTE % "memory_by_release") +
            "<h3>Peak memory per model</h3>"
            '<p class="note">Same slice controls as the throughput charts.</p>' + _charts(ctx, "peak") +
            "<h3>Peak memory relative to %s</h3>" % esc(ctx.ref) +
            '<p class="note">Geometric mean over the cases that ran ok in both environments. %s</p>' % (
                chain_note(heatmap.MEMORY)) + heat +
            "<h3>Gradient checkpointing: memory saved against time lost</h3>"
            '<p class="note">Each checkpointed train case against the same case without checkpointing in the same '
            "environment; medians over batch sizes, sizes, precisions and environments (hover the table for each "
            "environment).</p>" + trade_html)
    intro = ("Peak memory: the exact tensor peak wherever the records carry it (CPU), else the CUDA allocator peak "
             "on GPU or the process high-water mark above the pre-case baseline on CPU (MiB). The figure across "
             "releases names each model's measure and rings the process peak beside the tensor peak.")
    return Part(body, intro, figures=tuple(c for c in (chart, trade_chart) if c is not None))
