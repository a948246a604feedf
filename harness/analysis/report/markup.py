"""HTML building blocks for the report: escaping, number formats, colour scales, the page shell.

Plain string templates (no template engine). Every text that comes from records goes
through ``esc``; colours are computed here so the page needs no script to show them.
Bytes and durations are formatted by ``harness.units``; the stylesheet and scripts the
page inlines come from ``assets``.
"""
import html
import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from harness.analysis.report.assets import BODY_SCRIPTS, asset_text, inline_safe

#: Colour per environment, in environment order (colour-blind-friendly Tableau 10).
ENV_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#9c755f", "#edc948",
              "#ff9da7", "#bab0ac")
#: Colour per record status (every one of ``harness.vocab.STATUSES``) and for an accuracy failure; the CSS
#: variables of ``assets/report.css`` hold the same colours.
STATUS_COLORS = {"ok": "#2da44e", "unsupported": "#8c959f", "skipped": "#c9d1d9", "timeout": "#d4a72c",
                 "oom": "#bc4c00", "error": "#cf222e", "crashed": "#8250df", "accuracy": "#e16f24", "check": "#bf3989"}


def esc(value) -> str:
    """HTML-escape any value (None becomes an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def is_num(value) -> bool:
    """True for a finite int or float (not bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fmt_sig(value, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, '-' when missing."""
    if not is_num(value):
        return "-"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return "%.*e" % (max(digits - 1, 0), value)
    return "%.*g" % (digits, value)


def fmt_change(ratio) -> str:
    """A ratio as a signed percent change: 1.12 -> '+12%', 0.93 -> '−7%'."""
    if not is_num(ratio):
        return "-"
    pct = (ratio - 1.0) * 100.0
    if abs(pct) < 0.5:
        return "±0%"
    text = "%.0f%%" % abs(pct) if abs(pct) >= 9.5 else "%.1f%%" % abs(pct)
    return ("+" if pct > 0 else "\u2212") + text


def fmt_interval(ratio, lo, hi) -> str:
    """A ratio as a change with its 95% interval: '+10% (95% CI +6% to +14%)'."""
    return "%s (95%% CI %s to %s)" % (fmt_change(ratio), fmt_change(lo), fmt_change(hi))


def fmt_drift(value) -> str:
    """A relative drift: '0' when exact, else scientific with two digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0:
        return "0"
    if math.isinf(value):
        return "shape differs"
    return "%.1e" % value


def _mix(c1: str, c2: str, t: float) -> str:
    t = min(max(t, 0.0), 1.0)
    a = [int(c1[i:i + 2], 16) for i in (1, 3, 5)]
    b = [int(c2[i:i + 2], 16) for i in (1, 3, 5)]
    return "#%02x%02x%02x" % tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def ratio_color(ratio, higher_is_better: bool = True, full_at: float = 2.0) -> str:
    """Background for a ratio: white at 1, blue when better, red when worse, full at ``full_at``x."""
    if not is_num(ratio) or ratio <= 0:
        return "#ffffff"
    t = math.log(ratio) / math.log(full_at)
    if not higher_is_better:
        t = -t
    strength = min(abs(t), 1.0) ** 0.75
    return _mix("#ffffff", "#6fa8dc" if t > 0 else "#e8705f", strength)


def limit_color(fraction, far: float = 0.1) -> str:
    """Background for a figure as a fraction of its limit (above 1 fails): green up to ``far``, turning
    yellow as it nears 1, red above (deeper to 10x the limit); 0 is the green of identical values."""
    if isinstance(fraction, float) and math.isinf(fraction) and fraction > 0:
        return "#e0503c"
    if not is_num(fraction):
        return "#ffffff"
    if fraction == 0:
        return "#c8ecd0"
    if fraction > 1:
        return _mix("#f7b3a8", "#e0503c", min(math.log10(fraction), 1.0))
    if fraction <= far:
        return "#d5f0d9"
    return _mix("#d5f0d9", "#fbe7a1", math.log10(fraction / far) / math.log10(1.0 / far))


def drift_color(drift) -> str:
    """Background for fp32 drift: green to 1e-6, yellow to 1e-4, red above."""
    if drift is None or (isinstance(drift, float) and math.isnan(drift)):
        return "#ffffff"
    if drift == 0:
        return "#c8ecd0"
    if math.isinf(drift) or drift >= 1e-3:
        return "#e8705f"
    lg = math.log10(drift)
    if lg <= -6:
        return "#d5f0d9"
    if lg <= -4:
        return _mix("#d5f0d9", "#fbe7a1", (lg + 6) / 2.0)
    return _mix("#fbe7a1", "#f3a08f", (lg + 4))


def status_bar(counts: Dict[str, int]) -> str:
    """A thin stacked bar of status proportions."""
    total = sum(counts.values())
    if not total:
        return '<div class="sbar"></div>'
    parts = "".join('<i class="s-%s" style="width:%.1f%%"></i>' % (esc(s), 100.0 * n / total)
                    for s, n in counts.items() if n)
    return '<div class="sbar">%s</div>' % parts


def legend(items: Iterable[Sequence], line: bool = False) -> str:
    """A row of colour keys: (label, colour) or (label, colour or None, CSS class of the key)."""
    keys = []
    for label, color, *klass in items:
        classes = " ".join((["line"] if line else []) + list(klass))
        cls = ' class="%s"' % esc(classes) if classes else ""
        style = ' style="background:%s"' % esc(color) if color else ""
        keys.append('<span><i%s%s></i>%s</span>' % (cls, style, esc(label)))
    return '<div class="legend">%s</div>' % "".join(keys)


def td_heat(text: str, color: Optional[str], title: str = "", extra_class: str = "") -> str:
    """A heat-map cell with a hover text, coloured unless ``color`` is None (``extra_class`` styles it)."""
    style = ' style="background:%s"' % esc(color) if color else ""
    return '<td class="heat %s"%s title="%s">%s</td>' % (esc(extra_class), style, esc(title), text)


def table(headers: Sequence[str], rows: Iterable[str], cls: str = "grid", num_cols: Sequence[int] = (),
          table_id: Optional[str] = None) -> str:
    """A table from header texts (escaped here) and pre-rendered ``<tr>`` rows."""
    ths = "".join('<th%s>%s</th>' % (' class="num"' if i in num_cols else "", esc(h)) for i, h in enumerate(headers))
    ident = ' id="%s"' % esc(table_id) if table_id else ""
    return '<div class="scroll"><table class="%s"%s><thead><tr>%s</tr></thead><tbody>%s</tbody></table></div>' % (
        esc(cls), ident, ths, "".join(rows))


def section(ident: str, title: str, body: str, intro: str = "", cls: str = "") -> str:
    """A report section with an anchor, a heading and an optional intro note."""
    note = '<p class="note">%s</p>' % intro if intro else ""
    klass = ' class="%s"' % esc(cls) if cls else ""
    return '<section id="%s"%s><h2>%s</h2>%s%s</section>' % (esc(ident), klass, esc(title), note, body)


def json_script(ident: str, json_text: str) -> str:
    """An inline JSON data block (the text must already be script-safe)."""
    return '<script type="application/json" id="%s">%s</script>' % (esc(ident), json_text)


def page(title: str, header_html: str, nav: List[Tuple[str, str]], sections: List[str], data_blocks: List[str],
         footer: str) -> str:
    """The whole self-contained document: the assets inlined, ``nav`` as (anchor, label) pairs."""
    nav_html = "".join('<a href="#%s">%s</a>' % (esc(i), esc(label)) for i, label in nav)
    css = inline_safe(asset_text("report.css"), "style")
    trap = inline_safe(asset_text("error_trap.js"), "script")
    scripts = "".join("<script>%s</script>" % inline_safe(asset_text(name), "script") for name in BODY_SCRIPTS)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data: blob:\">"
            "<title>%s</title><style>%s</style><script>%s</script></head><body>"
            "%s<nav class=\"toc\">%s</nav><div id=\"tm-js-errors\" hidden></div><main>%s</main>"
            "<footer>%s</footer>%s%s</body></html>\n") % (
        esc(title), css, trap, header_html, nav_html, "".join(sections), footer, "".join(data_blocks), scripts)
