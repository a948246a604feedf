"""The FLOPs section: the measured matmul peak of each environment, the share of it each environment's
cases reached, and the figure of achieved FLOP/s against FLOPs per step under that peak. The per-case
columns (FLOPs, FLOP/s, % of peak) are in the table of every case (``harness.record.parts.Flops``)."""
from typing import Dict, List, Optional

import pandas as pd

from harness.analysis.report import figures
from harness.analysis.report.flops_figure import DTYPES, NAME, flop_points, flops_chart
from harness.analysis.report.markup import esc, is_num, table
from harness.analysis.report.sections.context import Context, Part
from harness.units import format_count


def _first_roofline(df: pd.DataFrame, env: str) -> Optional[Dict]:
    if "roofline_matmul" not in df.columns:
        return None
    for value in df.loc[df["env"].astype(str) == env, "roofline_matmul"]:
        if isinstance(value, dict) and value:
            return value
    return None


def _peak_rows(ctx: Context) -> List[str]:
    rows = []
    threads = ctx.df["roofline_threads"] if "roofline_threads" in ctx.df.columns else None
    for env in ctx.envs:
        roof = _first_roofline(ctx.df, env)
        if roof is None:
            continue
        cells = []
        for dtype in DTYPES:
            got = roof.get(dtype) or {}
            if is_num(got.get("flops_per_s")):
                cells.append('<td class="num" title="n = %s, best of %s products">%sFLOP/s</td>' % (
                    esc(got.get("n")), esc(got.get("repeats")), esc(format_count(got["flops_per_s"]))))
            else:
                cells.append('<td class="na" title="%s">-</td>' % esc(got.get("error") or "not measured"))
        n_threads = threads[ctx.df["env"].astype(str) == env].dropna() if threads is not None else []
        cells.append('<td class="num">%s</td>' % (esc(int(n_threads.iloc[0])) if len(n_threads) else "-"))
        rows.append("<tr><td>%s</td>%s</tr>" % (esc(env), "".join(cells)))
    return rows


def _share_rows(ctx: Context, points: pd.DataFrame) -> List[str]:
    df = ctx.df
    if "flops_peak_pct" not in df.columns:
        return []
    ok = df[(df["status"] == "ok") & df["flops_peak_pct"].notna()]
    rows = []
    for (env, dtype), sub in ok.groupby([ok["env"].astype(str), ok["flops_peak_dtype"].astype(str)], sort=False):
        pct = sub["flops_peak_pct"].astype(float)
        best = sub.loc[pct.idxmax()]
        rows.append((ctx.envs.index(env) if env in ctx.envs else 99, dtype, '<tr><td>%s</td><td>%s</td>'
                     '<td class="num">%d</td><td class="num">%.2g%%</td><td class="num">%.2g%%</td>'
                     '<td>%s %s</td></tr>' % (esc(env), esc(dtype), len(sub), pct.median(), pct.max(),
                                              esc(best["model"]), esc(best["mode"]))))
    return [r for _, _, r in sorted(rows, key=lambda r: (r[0], DTYPES.index(r[1]) if r[1] in DTYPES else 9))]


def flops(ctx: Context) -> Optional[Part]:
    """Peaks, shares and the figure; None when no record has a FLOP count."""
    if "flops_per_iter" not in ctx.df.columns or not ctx.df["flops_per_iter"].notna().any():
        return None
    points = flop_points(ctx.df)
    chart = flops_chart(points, ctx.envs, ctx.env_color)
    tools = sorted(str(t) for t in ctx.df["flops_tool"].dropna().unique()) if "flops_tool" in ctx.df.columns else []
    peaks = _peak_rows(ctx)
    shares = _share_rows(ctx, points)
    body = ""
    if peaks:
        body += ("<h3>Measured matmul peak</h3>" +
                 table(["environment"] + list(DTYPES) + ["threads"], peaks, num_cols=range(1, len(DTYPES) + 2)) +
                 '<p class="note">Best FLOP/s of square n x n products (2 n<sup>3</sup> FLOPs each), measured once '
                 "per run and device in the workers' thread setting; hover a cell for n, or for why a dtype has "
                 "none.</p>")
    if shares:
        body += ("<h3>Share of the peak</h3>" +
                 table(["environment", "dtype", "cases", "median", "best", "best case"], shares,
                       num_cols=(2, 3, 4)) +
                 '<p class="note">Achieved FLOP/s (FLOPs per step / median step time) as a percentage of the peak of '
                 "the dtype the case computes in (amp precisions: their low dtype).</p>")
    if chart is not None:
        body += ("<h3>FLOP/s against FLOPs per step</h3>" + figures.inline(chart) +
                 '<p class="note">Each ok case once per environment; the dashed lines are the measured peaks. '
                 "Also saved as <code>figures/%s.svg</code> and <code>.png</code> next to this report.</p>" % NAME)
    intro = ("FLOPs of one step, counted on one extra step after the timed samples (train: forward and backward, "
             "recomputation included, the optimizer's update not counted; eval: forward; matmuls, convolutions and "
             "fused attention, 2 per multiply-add: docs/flops.md). Counted by %s. Per case: the FLOPs, FLOP/s and "
             "%% of peak columns of the table of every case." % esc(" and ".join(tools) or "-"))
    return Part(body, intro, figures=(chart,) if chart is not None else ())
