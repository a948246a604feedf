"""The report's FLOPs figure: each ok case's achieved FLOP/s against its FLOPs per step, one panel per
compute dtype, under the measured matmul peak of each environment (a roofline's flat roof).

Drawn as the other static figures are (``figures``: its own matplotlib Figure, inline SVG and
``figures/flops_roofline.svg``/``.png`` beside the page). Points are coloured by environment as
everywhere in the report; a filled circle is a train step, an open triangle an eval step; a dashed
line at an environment's colour is its peak for that dtype.
"""
from typing import Callable, Optional, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from harness.analysis.report.figures import FLOPS_CHART, STYLE, Chart, _finish, _new_figure
from harness.precisions import COMPUTE_DTYPES, TABLE
from harness.units import format_count

NAME = FLOPS_CHART
TITLE = "Achieved FLOP/s against the measured matmul peak"
#: Panel order: the dtypes the precisions compute in, in the table's order.
DTYPES = COMPUTE_DTYPES
#: The dtypes an amp precision autocasts to: their panels hold those cases too.
_AUTOCAST_DTYPES = {p.autocast_dtype_name for p in TABLE if p.autocast_dtype_name}
_MODE_MARKERS = {"train": "o", "eval": "^"}


def flop_points(df: pd.DataFrame) -> pd.DataFrame:
    """The ok records with a FLOP count and a time: env, model, mode, dtype, FLOPs, FLOP/s, peak."""
    need = ("flops_per_iter", "flops_per_s")
    if df.empty or any(c not in df.columns for c in need):
        return pd.DataFrame(columns=["env", "model", "mode", "dtype", "flops", "flops_per_s", "peak"])
    ok = df[(df["status"] == "ok") & df["flops_per_iter"].notna() & df["flops_per_s"].notna()]
    ok = ok[(ok["flops_per_iter"] > 0) & (ok["flops_per_s"] > 0)]
    dtype = ok["flops_peak_dtype"] if "flops_peak_dtype" in ok.columns else pd.Series(None, index=ok.index)
    peak = ok["flops_peak_per_s"] if "flops_peak_per_s" in ok.columns else pd.Series(np.nan, index=ok.index)
    return pd.DataFrame({"env": ok["env"].astype(str), "model": ok["model"].astype(str),
                         "mode": ok["mode"].astype(str), "dtype": dtype.fillna("unknown").astype(str),
                         "flops": ok["flops_per_iter"].astype(float), "flops_per_s": ok["flops_per_s"].astype(float),
                         "peak": pd.to_numeric(peak, errors="coerce")})


def _si(value, _pos=None) -> str:
    return format_count(value).replace(" ", "")


def flops_chart(points: pd.DataFrame, envs: Sequence[str], env_color: Callable[[str], str]) -> Optional[Chart]:
    """One log-log panel per dtype present; None without points."""
    if points.empty:
        return None
    dtypes = [d for d in DTYPES if d in set(points["dtype"])] + sorted(set(points["dtype"]) - set(DTYPES))
    fig = _new_figure(4.2 * len(dtypes) + 2.4, 4.4)
    with matplotlib.rc_context(STYLE):
        axes = fig.subplots(1, len(dtypes), squeeze=False)[0]
        fig.subplots_adjust(left=0.07, right=0.80, bottom=0.14, top=0.84, wspace=0.3)
        fig.text(0.01, 0.965, TITLE, fontsize=10, fontweight="bold", va="top")
        lo = points["flops"].min() / 2
        hi = points["flops"].max() * 2
        for ax, dtype in zip(axes, dtypes):
            sub = points[points["dtype"] == dtype]
            for env in envs:
                mine = sub[sub["env"] == env]
                if mine.empty:
                    continue
                color = env_color(env)
                for mode, marker in _MODE_MARKERS.items():
                    pts = mine[mine["mode"] == mode]
                    if not pts.empty:
                        ax.scatter(pts["flops"], pts["flops_per_s"], s=26, marker=marker, alpha=0.85, zorder=3,
                                   color=color if mode == "train" else "none", edgecolors=color, linewidths=1.1)
                peak = mine["peak"].dropna()
                if len(peak):
                    ax.axhline(float(peak.iloc[0]), color=color, linestyle="--", linewidth=1.1, zorder=2)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(lo, hi)
            top = max(float(sub["flops_per_s"].max()), float(sub["peak"].max()) if sub["peak"].notna().any() else 0)
            ax.set_ylim(float(sub["flops_per_s"].min()) / 3, top * 2)
            ax.xaxis.set_major_formatter(FuncFormatter(_si))
            ax.yaxis.set_major_formatter(FuncFormatter(_si))
            ax.set_title("%s (amp: its low dtype)" % dtype if dtype in _AUTOCAST_DTYPES else dtype, loc="left")
            ax.set_xlabel("FLOPs per step")
            ax.grid(color="#eaeef2", linewidth=0.8, which="major")
            ax.set_axisbelow(True)
        axes[0].set_ylabel("achieved FLOP/s (FLOPs / median step time)")
        handles = [Line2D([], [], marker="s", linestyle="", color=env_color(e), label=e)
                   for e in envs if e in set(points["env"])]
        handles += [Line2D([], [], marker="o", linestyle="", color="#57606a", label="train step"),
                    Line2D([], [], marker="^", linestyle="", markerfacecolor="none", color="#57606a",
                           label="eval step"),
                    Line2D([], [], linestyle="--", color="#57606a", label="measured matmul peak")]
        axes[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.03, 1.0), title="environment",
                        title_fontsize=8, alignment="left")
    return _finish(fig, NAME, TITLE)
