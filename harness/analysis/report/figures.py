"""The report's static figures, drawn with matplotlib: inline SVG in the page, SVG and PNG files beside it.

Each chart is drawn on its own ``matplotlib.figure.Figure`` with the Agg canvas (no
pyplot and no global state; settings through ``rc_context``), rendered once as SVG
with real text (``svg.fonttype = none``: tick labels stay text the browser shows and a
test can read), inlined in the page with its ids made unique, and written by
``write_files`` as ``<name>.svg`` and ``<name>.png`` under the report's ``figures/``
folder, for a pull request or a paper. The charts are a fixed few (speed and memory
across releases, the checkpointing trade-off) whatever the number of records.
"""
import io
import math
import os
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from harness.analysis.report.markup import ENV_COLORS, esc
from harness.fileio import atomic_write_bytes, atomic_write_text

#: The FLOPs chart's file name (``flops_figure``): drawn only for records that carry FLOP counts.
FLOPS_CHART = "flops_roofline"
#: Every chart's file name (without extension): the files of charts not drawn this time are removed.
CHART_NAMES = ("speed_by_release", "memory_by_release", "checkpoint_tradeoff", FLOPS_CHART)
#: Drawing settings of every chart.
STYLE = {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
         "axes.edgecolor": "#8c959f", "axes.labelcolor": "#1f2328", "xtick.color": "#59636e",
         "ytick.color": "#59636e", "axes.titlesize": 10, "axes.titleweight": "bold", "legend.fontsize": 8,
         "legend.frameon": False}
#: Checkpointing modes and their colours in the trade-off chart.
CHECKPOINT_COLORS = {"reentrant": "#f28e2b", "non_reentrant": "#4e79a7"}
TRADEOFF_TITLE = "Gradient checkpointing: peak memory saved against time added (train)"
#: A value range wider than this many times is drawn on a log scale.
LOG_ABOVE = 20.0
PNG_DPI = 150
_NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


@dataclass(frozen=True)
class Chart:
    """A drawn figure: ``name`` (file stem), ``title`` (its text alternative), the matplotlib
    ``figure`` and its standalone ``svg`` document."""

    name: str
    title: str
    figure: Figure
    svg: str


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _finish(fig: Figure, name: str, title: str) -> Chart:
    buf = io.StringIO()
    with matplotlib.rc_context(dict(STYLE, **{"svg.hashsalt": name})):
        fig.savefig(buf, format="svg", metadata=_NO_METADATA)
    return Chart(name, title, fig, buf.getvalue())


def inline(chart: Chart) -> str:
    """The chart as an inline ``<figure>``: the SVG without its XML prolog, ids prefixed by the
    chart's name (several charts share one page), scaled to the width available."""
    svg = chart.svg[chart.svg.index("<svg"):]
    prefix = "fig-%s-" % chart.name
    svg = re.sub(r'\bid="', 'id="' + prefix, svg)
    svg = re.sub(r'(xlink:href|href)="#', r'\1="#' + prefix, svg)
    svg = svg.replace("url(#", "url(#" + prefix)
    match = re.search(r'<svg[^>]*?\swidth="([\d.]+)pt" height="([\d.]+)pt"', svg)
    if match:
        width_px = float(match.group(1)) * 4.0 / 3.0
        svg = svg.replace(match.group(0), match.group(0).replace(
            'width="%spt" height="%spt"' % (match.group(1), match.group(2)),
            'role="img" aria-label="%s" style="max-width:%.0fpx"' % (esc(chart.title), width_px)), 1)
    return '<figure class="figure" id="fig-%s">%s</figure>' % (esc(chart.name), svg)


def _write_png(fig: Figure, path: str) -> None:
    buf = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, format="png", dpi=PNG_DPI, metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())


def write_files(charts: Sequence[Chart], folder: str) -> List[str]:
    """Write each chart as ``<folder>/<name>.svg`` and ``.png`` (each atomically); remove the files of
    the charts in ``CHART_NAMES`` not given (a figure of an earlier report). Return the paths written."""
    os.makedirs(folder, exist_ok=True)
    written = []
    for chart in charts:
        svg_path = os.path.join(folder, chart.name + ".svg")
        atomic_write_text(svg_path, chart.svg)
        png_path = os.path.join(folder, chart.name + ".png")
        _write_png(chart.figure, png_path)
        written += [svg_path, png_path]
    drawn = {c.name for c in charts}
    for name in CHART_NAMES:
        for ext in (".svg", ".png"):
            stale = os.path.join(folder, name + ext)
            if name not in drawn and os.path.exists(stale):
                os.unlink(stale)
    return written


def _tick(value, _pos=None) -> str:
    if not math.isfinite(value):
        return ""
    if abs(value) >= 1000:
        return "{:,.0f}".format(value)
    return "%.3g" % value


def _env_axis(ax, envs: Sequence[str], ref: str) -> None:
    ax.set_xticks(range(len(envs)))
    rotate = len(envs) > 4 or max((len(e) for e in envs), default=0) > 12
    ax.set_xticklabels(envs, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    if ref in envs:
        ax.get_xticklabels()[list(envs).index(ref)].set_fontweight("bold")
    ax.set_xlim(-0.5, len(envs) - 0.5)
    ax.set_xlabel("environment, in PyTorch version order (bold: the reference)")
    ax.grid(axis="y", color="#eaeef2", linewidth=0.8)
    ax.set_axisbelow(True)


def env_colors(n: int) -> List[str]:
    """``n`` colours, none repeated: the page's environment colours (``markup.ENV_COLORS``), past them a
    sampled colour map."""
    if n <= len(ENV_COLORS):
        return list(ENV_COLORS[:n])
    cmap = matplotlib.colormaps["turbo"]
    return [matplotlib.colors.to_hex(cmap(0.05 + 0.9 * i / max(n - 1, 1))) for i in range(n)]


def release_chart(series: pd.DataFrame, column: str, scale: float, name: str, title: str, ylabel: str,
                  envs: Sequence[str], ref: str, slice_text: str, basis_column: Optional[str] = None,
                  beside: Optional[str] = None, beside_label: str = "",
                  interval: Optional[Sequence[str]] = None) -> Optional[Chart]:
    """A ranked dot plot across environments: one row per model (labelled once, on the y axis), one dot
    per environment (a colour each, none repeated), the value (``column`` times ``scale``, log scale when
    the values span more than ``LOG_ABOVE`` times) on the left and the ratio to ``ref`` on the right; rows
    ranked by their largest ratio, the most grown on top. ``basis_column``: a per-row measure name added
    to the row's label; ``beside``: a second column whose ratio to ``ref`` is drawn as hollow rings beside
    (``beside_label`` in the legend) on the rows where it is not the column drawn; ``interval``: the
    (low, high) columns of each value's interval, drawn as a line through its dot. ``series`` is
    ``aggregate.release_series``; None when it has no finite value."""
    data = series.dropna(subset=[column])
    data = data[data[column] > 0]
    if data.empty:
        return None
    envs = list(envs)
    colors = env_colors(len(envs))
    rows = []
    for model, sub in data.groupby("model", sort=True, observed=True):
        first = sub.iloc[0]
        y = np.full(len(envs), np.nan)
        extra = np.full(len(envs), np.nan)
        span = np.full((2, len(envs)), np.nan)
        for r in sub.itertuples(index=False):
            if str(r.env) in envs:
                y[envs.index(str(r.env))] = float(getattr(r, column)) * scale
                if interval:
                    span[:, envs.index(str(r.env))] = [float(getattr(r, c)) * scale for c in interval]
                if beside and beside in sub.columns:
                    extra[envs.index(str(r.env))] = float(getattr(r, beside))
        label = "%s (batch %s, size %s%s)" % (model, _tick(first["batch_size"]), first["size_label"],
                                              ", %s" % first[basis_column] if basis_column else "")
        rows.append((label, y, extra, span))
    ref_i = envs.index(ref) if ref in envs else None

    def rel(v):
        return v / v[ref_i] if ref_i is not None and np.isfinite(v[ref_i]) else np.full(len(v), np.nan)

    def rank(row):
        r = rel(row[1])
        return np.nanmax(r) if np.isfinite(r).any() else -np.inf

    rows.sort(key=rank)  # the most grown row last: drawn on top
    height = 1.6 + 0.24 * len(rows)
    fig = _new_figure(11.5, height)
    with matplotlib.rc_context(STYLE):
        ax_abs, ax_rel = fig.subplots(1, 2, sharey=True)
        fig.subplots_adjust(left=0.3, right=0.98, bottom=0.9 / height, top=1.0 - 0.85 / height, wspace=0.06)
        for i, (_label, y, extra, span) in enumerate(rows):
            for ax in (ax_abs, ax_rel):
                ax.axhline(i, color="#eaeef2", linewidth=0.8, zorder=0)
            ok = np.isfinite(y)
            ax_abs.scatter(y[ok], np.full(ok.sum(), i), c=[colors[j] for j in np.flatnonzero(ok)], s=22, zorder=2)
            has = np.isfinite(span).all(axis=0)
            if has.any():
                cols = [colors[j] for j in np.flatnonzero(has)]
                ax_abs.hlines(np.full(has.sum(), i), span[0, has], span[1, has], colors=cols, linewidth=1.6, zorder=2)
                if ref_i is not None and np.isfinite(y[ref_i]):
                    ax_rel.hlines(np.full(has.sum(), i), span[0, has] / y[ref_i], span[1, has] / y[ref_i], colors=cols,
                                  linewidth=1.6, zorder=2)
            r = rel(y)
            ok = np.isfinite(r)
            ax_rel.scatter(r[ok], np.full(ok.sum(), i), c=[colors[j] for j in np.flatnonzero(ok)], s=22, zorder=2)
            if beside and not np.allclose(np.nan_to_num(extra), np.nan_to_num(y / scale)):  # not the same measure
                b = rel(extra)
                ok = np.isfinite(b)
                ax_rel.scatter(b[ok], np.full(ok.sum(), i) - 0.3, facecolors="none", s=16, linewidths=0.9,
                               edgecolors=[colors[j] for j in np.flatnonzero(ok)], zorder=2)
        ax_abs.set_yticks(range(len(rows)))
        ax_abs.set_yticklabels([r[0] for r in rows])
        ax_abs.set_ylim(-0.7, len(rows) - 0.3)
        finite = np.concatenate([r[1] for r in rows])
        finite = finite[np.isfinite(finite)]
        if finite.max() / finite.min() > LOG_ABOVE:
            ax_abs.set_xscale("log")
            ax_abs.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax_abs.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax_abs.set_xlim(left=0, right=finite.max() * 1.08)
        ax_abs.xaxis.set_major_formatter(FuncFormatter(_tick))
        ax_abs.set_xlabel(ylabel)
        ax_rel.axvline(1.0, color="#8c959f", linewidth=0.9, linestyle="--", zorder=1)
        ax_rel.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: "%g\u00d7" % round(v, 3)))
        ax_rel.set_xlabel("ratio to the reference %s" % ref)
        ax_rel.tick_params(axis="y", left=False)
        for ax in (ax_abs, ax_rel):
            ax.grid(axis="x", color="#eaeef2", linewidth=0.8)
            ax.set_axisbelow(True)
        handles = [Line2D([], [], marker="o", linestyle="", color=c, label=e + (" (ref)" if e == ref else ""))
                   for e, c in zip(envs, colors)]
        if beside:
            handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="#57606a",
                                  label=beside_label))
        left = _fit_left(fig, ax_abs)
        fig.subplots_adjust(left=left)
        fig.legend(handles=handles, loc="upper right", bbox_to_anchor=(0.98, 1.0 - 0.04 / height),
                   ncol=min(len(handles), 5), title=None)
        fig.text(0.01, 1.0 - 0.12 / height, title, fontsize=10, fontweight="bold", va="top")
        fig.text(0.01, 0.08 / height, slice_text, fontsize=8, color="#59636e", wrap=True)
    return _finish(fig, name, "%s per model across environments" % title)


def _fit_left(fig: Figure, ax) -> float:
    """The left margin (a fraction of the figure) that shows every y tick label whole."""
    renderer = fig.canvas.get_renderer()
    widest = max((t.get_window_extent(renderer).width for t in ax.get_yticklabels()), default=0.0)
    return min(0.6, (widest + 12.0) / (fig.get_figwidth() * fig.dpi))


def _pct(signed: bool):
    return FuncFormatter(lambda v, _p: ("%+.0f%%" if signed else "%.0f%%") % (v * 100))


def _padded(lo: float, hi: float):
    pad = (hi - lo) * 0.08 or 0.05
    return lo - pad, hi + pad


def tradeoff_chart(trade: pd.DataFrame) -> Optional[Chart]:
    """Time added (x) against peak memory saved (y) by checkpointing, one point per model and mode,
    the two modes of a model joined; ``trade`` is ``aggregate.checkpoint_tradeoff``."""
    pts = trade.dropna(subset=["mem_saved", "time_cost"])
    if pts.empty:
        return None
    fig = _new_figure(6.6, 4.6)
    with matplotlib.rc_context(STYLE):
        ax = fig.subplots()
        fig.subplots_adjust(left=0.13, right=0.97, bottom=0.13, top=0.84)
        fig.text(0.02, 0.965, TRADEOFF_TITLE, fontsize=10, fontweight="bold", va="top")
        ax.set_xlim(*_padded(min(0.0, float(pts["time_cost"].min())), max(0.05, float(pts["time_cost"].max()))))
        ax.set_ylim(*_padded(min(0.0, float(pts["mem_saved"].min())), max(0.05, float(pts["mem_saved"].max()))))
        for _model, sub in pts.groupby("model", observed=True):
            if len(sub) == 2:
                ax.plot(sub["time_cost"], sub["mem_saved"], color="#afb8c1", linewidth=1, linestyle=(0, (3, 2)),
                        zorder=1)
        handles = []
        for mode in list(CHECKPOINT_COLORS) + sorted(set(pts["checkpoint"].astype(str)) - set(CHECKPOINT_COLORS)):
            sub = pts[pts["checkpoint"].astype(str) == mode]
            if sub.empty:
                continue
            color = CHECKPOINT_COLORS.get(mode, "#57606a")
            ax.scatter(sub["time_cost"], sub["mem_saved"], s=32, color=color, alpha=0.85, zorder=2)
            handles.append(Line2D([], [], marker="o", linestyle="", color=color, label=mode.replace("_", "-")))
        handles.append(Line2D([], [], color="#afb8c1", linestyle=(0, (3, 2)), label="same model"))
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=len(handles))
        ax.xaxis.set_major_formatter(_pct(True))
        ax.yaxis.set_major_formatter(_pct(False))
        ax.set_xlabel("time added per step (median)")
        ax.set_ylabel("peak memory saved (median)")
        ax.grid(color="#eaeef2", linewidth=0.8)
        ax.set_axisbelow(True)
        _label_points(fig, ax, pts[pts["checkpoint"].astype(str) == "reentrant"])
    return _finish(fig, "checkpoint_tradeoff", TRADEOFF_TITLE)


def _label_points(fig: Figure, ax, pts: pd.DataFrame) -> None:
    """Name each point where the name covers no other name and stays inside the axes."""
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    placed = []
    for r in pts.sort_values("mem_saved", ascending=False).itertuples(index=False):
        for dx, ha in ((6, "left"), (-6, "right")):
            text = ax.annotate(str(r.model), (r.time_cost, r.mem_saved), xytext=(dx, -3),
                               textcoords="offset points", ha=ha, fontsize=7.5, color="#59636e")
            box = text.get_window_extent(renderer)
            if (box.x0 >= inside.x0 and box.x1 <= inside.x1 and box.y0 >= inside.y0 and box.y1 <= inside.y1
                    and not any(box.overlaps(p) for p in placed)):
                placed.append(box)
                break
            text.remove()
