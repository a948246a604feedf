"""The largest batch that fits: one row per search (a case with ``batch_size = "max"``), a column per
environment, each cell the batch found with its probes on hover."""
from typing import Dict, List, Optional

import pandas as pd

from harness.analysis.report.markup import esc, ratio_color, table, td_heat
from harness.analysis.report.max_batch import SEARCH_KEY, search_table
from harness.analysis.report.sections.context import Context, Part
from harness.units import format_bytes


def _probe_text(probe: Dict) -> str:
    fits = probe.get("fits")
    mark = {True: "fits", False: "does not fit"}.get(fits, str(probe.get("status")))
    peak = probe.get("peak_bytes")
    return "batch %s: %s%s" % (probe.get("batch_size"), mark, " (%s)" % format_bytes(peak) if peak else "")


def _cell(row: Optional[pd.Series], best: Optional[float]) -> str:
    if row is None:
        return '<td class="na">-</td>'
    probes = row.get("max_batch_probes")
    probes = probes if isinstance(probes, list) else []
    lines = ["%s: %s" % (row["env"], row["status"])]
    if row["status"] != "ok":
        lines.append(str(row.get("reason") or ""))
    found = row.get("max_batch_size")
    if pd.notna(found):
        lines.append("largest batch %d, %s at it; stopped by %s%s" % (
            found, format_bytes(row.get("max_batch_peak_bytes"), "-"), row.get("max_batch_limited_by"),
            " (batch %d)" % row["max_batch_first_unfit"] if pd.notna(row.get("max_batch_first_unfit")) else ""))
    lines.append("cap %s; %s" % (format_bytes(row.get("max_batch_cap_bytes"), "the device's memory"),
                                 row.get("max_batch_criterion") or "-"))
    lines.extend(_probe_text(p) for p in probes)
    text = "%d" % found if pd.notna(found) else "-"
    if row["status"] != "ok":
        text = '%s <span class="st s-%s">%s</span>' % (esc(text), esc(row["status"]), esc(row["status"]))
    else:
        text = esc(text)
    color = ratio_color(found / best) if best and pd.notna(found) and row["status"] == "ok" else None
    return td_heat(text, color, "\n".join(lines))


def max_batch(ctx: Context) -> Optional[Part]:
    """The section, or None when no record is a search."""
    searches = ctx.searches
    if searches is None or searches.empty:
        return None
    df, envs = search_table(searches, ctx.envs)
    key_cols = [c for c in SEARCH_KEY if c in df.columns]
    rows: List[str] = []
    for key, group in df.groupby(key_cols, sort=False, dropna=False):
        case = dict(zip(key_cols, key))
        by_env = {r["env"]: r for _, r in group.iterrows()}
        found = pd.to_numeric(group.loc[group["status"] == "ok", "max_batch_size"], errors="coerce")
        best = float(found.max()) if found.notna().any() and found.max() > 0 else None
        head = "".join("<td>%s</td>" % esc(case.get(c, "-")) for c in ("model", "mode", "size", "precision",
                                                                         "checkpoint", "device"))
        rows.append("<tr>%s%s</tr>" % (head, "".join(_cell(by_env.get(e), best) for e in envs)))
    headers = ["model", "mode", "size", "precision", "checkpoint", "device"] + envs
    intro = ("The largest batch size that fits, for each case a scenario asked it of (<code>batch_size = "
             "\"max\"</code>): doubling, then bisection, each probe (the case built at one batch size, two steps) in "
             "a fresh worker. On the CPU a probe fits when its exact peak of live tensor bytes stays within the cap "
             "(<code>[max_batch] cpu_cap_gib</code>); on a GPU when its allocator peak does, or when it does not run "
             "out of memory. A cell is coloured against the row's largest; hover for the probes.")
    return Part(table(headers, rows, num_cols=range(6, 6 + len(envs))), intro)
