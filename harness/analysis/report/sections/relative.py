"""The relative heatmaps of the speed and memory sections: each environment against the reference, per
model and precision, drawn from ``heatmap.cells``. Every cell names its measure (a tag, and its hover
text), says whether it is within noise (drawn hatched grey, not coloured) and where its noise band came
from; the note under each heatmap says the same for the whole table."""
from typing import Dict, List

from harness.analysis.report import heatmap, paired
from harness.analysis.report.markup import esc, fmt_change, fmt_interval, legend, ratio_color, table, td_heat
from harness.analysis.report.sections.context import Context
from harness.measures import ASSUMED_ROUND_SD_LOG, CHAINS, INSTRUCTIONS, ROUND_NOISE_MULTIPLE, default_thresholds

#: The tag a cell shows for its measure, and what the measure is (its hover text), by the measure's label.
TAGS = {m.label: m.tag for kind in (heatmap.TIME, heatmap.MEMORY) for m in CHAINS[kind]}
MEANINGS = {m.label: m.meaning for kind in (heatmap.TIME, heatmap.MEMORY) for m in CHAINS[kind]}
#: How each kind reads in the hover text, and its legend (the colours of ``markup.ratio_color``).
WHAT = {heatmap.TIME: "time per step", heatmap.MEMORY: "peak memory"}
KEYS = {heatmap.TIME: [("slower than the reference", "#e8705f"), ("same", "#ffffff"), ("faster", "#6fa8dc"),
                       ("within noise: not coloured", None, "noise")],
        heatmap.MEMORY: [("uses less than the reference", "#6fa8dc"), ("same", "#ffffff"),
                         ("uses more", "#e8705f"), ("within noise (gate verdicts): not coloured", None, "noise")]}


def _labels(kind: str):
    return [m.label for m in CHAINS[kind]]


def chain_note(kind: str) -> str:
    """Which measure a cell of ``kind`` rests on, in words from ``harness.measures.CHAINS``."""
    chain = CHAINS[kind]
    said = ["%s (<i>%s</i>)" % (esc(m.meaning), esc(m.tag)) for m in chain]
    return ("A cell rests on %s where every case of it carries that in both environments, as the gate judges "
            "%s, else on %s." % ("; else ".join(said[:-1]), kind, said[-1]))


def paired_note() -> str:
    """How wall-time differences over paired rounds are judged, in words with the gate's default thresholds."""
    th = default_thresholds()
    return ("Where the environments ran interleaved in paired rounds, a wall-time cell is the geometric mean over "
            "its cases of the ratio to the reference with a 95%% interval: per round, the mean over the cases of the "
            "log ratio of the two environments' round medians, then a t interval over the rounds. It is coloured only "
            "when decisive: %s-corrected over the heatmap's cells to q \u2264 %g, and a change beyond %g%%; else "
            "within noise. Records that were not paired (a CI job that held one environment, a lone run): %s." % (
                paired.CORRECTION, th["q"], 100 * paired.floor_frac(th), paired.UNPAIRED))


def time_noise_note() -> str:
    """What counts as noise in the time heatmap, in words with the gate's default thresholds."""
    th = default_thresholds()
    frac, factor = INSTRUCTIONS.thresholds
    return paired_note() + (
        " For records from before rounds, wall-time cells within %g\u00d7 the between-round spread are within "
        "noise: that spread is measured where a case has %d or more rounds (records) in an environment, and "
        "assumed where it has fewer (the spread measured on the 2-core CI machine, docs/gate.md); instruction "
        "counts less than %g%% apart (or than %g\u00d7 their repeat spread) are unchanged, as the gate judges "
        "them" % (ROUND_NOISE_MULTIPLE, th["min_rounds"], 100 * th[frac], th[factor]))


def _band_text(cell) -> str:
    """Where the cell's noise band came from, and the band."""
    band = "%s to %s" % (fmt_change(1.0 / cell.band), fmt_change(cell.band)) if cell.band == cell.band else ""
    rounds = ("%d" % cell.rounds_lo if cell.rounds_lo == cell.rounds_hi else "%d to %d" % (cell.rounds_lo,
                                                                                          cell.rounds_hi))
    source = cell.band_source
    if source == heatmap.PAIRED:
        th = default_thresholds()
        return ("%s over %d paired rounds of %d cases; %s q = %.2g (decisive at q \u2264 %g and beyond %g%%)." % (
            fmt_interval(cell.ratio, cell.ci_lo, cell.ci_hi), cell.paired_rounds, cell.paired_cases,
            paired.CORRECTION, cell.q_value, th["q"], 100 * paired.floor_frac(th)))
    if source == heatmap.NOT_PAIRED:
        return "Wall time: %s." % paired.UNPAIRED
    if source == "gate":
        counts = ", ".join("%d %s" % (n, v) for v, n in sorted(cell.gate.items()))
        return "Judged by the gate's verdicts (%s): %s." % (cell.gate_pair, counts)
    th = default_thresholds()
    if source == "instruction repeats":
        frac, factor = INSTRUCTIONS.thresholds
        return "Noise band %s: instruction counts less than %g%% apart (or than %g\u00d7 their repeat spread) " \
            "are unchanged, as the gate judges them." % (band, 100 * th[frac], th[factor])
    multiple = "%g\u00d7 the between-round spread" % ROUND_NOISE_MULTIPLE
    if source == "measured":
        return "Noise band %s: %s, measured from the rounds (%s per case and environment)." % (band, multiple, rounds)
    assumed = ("assumed, not measured: a sd of %.2f of the log of a case's round medians, as measured on the 2-core "
               "CI machine (docs/gate.md)" % ASSUMED_ROUND_SD_LOG)
    if source == "assumed":
        return "Noise band %s: %s, %s, since no case has %d rounds on both sides here." % (
            band, multiple, assumed, th["min_rounds"])
    return "Noise band %s: %s, measured where a case has %d or more rounds, elsewhere %s." % (
        band, multiple, th["min_rounds"], assumed)


def _tip(ctx: Context, cell, kind: str) -> str:
    best = CHAINS[kind][0].label
    if cell.basis == best:
        basis = "Basis: %s, on every case of the cell in both environments." % MEANINGS[cell.basis]
    elif cell.n_preferred:
        basis = "Basis: %s; %s for %d of %d cases only, so not used." % (
            MEANINGS[cell.basis], best, cell.n_preferred, cell.n)
    else:
        basis = "Basis: %s (no %s here)." % (MEANINGS[cell.basis], best)
    if cell.band_source == heatmap.NOT_PAIRED:
        judged = "Not coloured."
    elif cell.band_source == heatmap.PAIRED:
        judged = "Within noise: not coloured." if cell.within else "Decisive."
    else:
        judged = "Within noise: not coloured." if cell.within else "Beyond noise." if cell.band_source else ""
    lines = ["%s %s on %s vs %s: %s %s (geometric mean of %d cases, range %s to %s)" % (
        cell.model, cell.precision, cell.env, ctx.ref, fmt_change(cell.ratio), WHAT[kind], cell.n,
        fmt_change(cell.lo), fmt_change(cell.hi)), basis]
    if cell.band_source:
        lines.append(_band_text(cell) + " " + judged)
    lines.append("; ".join("%s %s (n=%d)" % (mode, fmt_change(r), n) for mode, r, n in cell.modes))
    return "\n".join(lines)


def _cell_words(cell) -> str:
    """Under a wall-time cell's value: its interval, 'within noise', or that it has none."""
    if cell.band_source == heatmap.PAIRED:
        ci = "%s to %s" % (fmt_change(cell.ci_lo), fmt_change(cell.ci_hi))
        return ci if not cell.within else "%s; %s" % (paired.WITHIN, ci)
    if cell.band_source == heatmap.NOT_PAIRED:
        return "not paired"
    return ""


def _cell_html(ctx: Context, cell, kind: str) -> str:
    text = '%s<small class="basis">%s</small>' % (esc(fmt_change(cell.ratio)), esc(TAGS[cell.basis]))
    words = _cell_words(cell)
    if words:
        text += '<small class="basis">%s</small>' % esc(words)
    tip = _tip(ctx, cell, kind)
    if cell.within:
        return td_heat(text, None, tip, "noise")
    return td_heat(text, ratio_color(cell.ratio, higher_is_better=False), tip)


def _summary(cells, kind: str) -> str:
    """One line: how many cells rest on each measure, and where the noise bands came from."""
    bases = cells["basis"].value_counts()
    parts = ["%d on %s (<i>%s</i>)" % (bases[b], esc(b), esc(TAGS[b])) for b in _labels(kind) if b in bases]
    sources = cells["band_source"].value_counts()
    words = {heatmap.PAIRED: "interval over paired rounds (%s over %d cells)" % (
                 paired.CORRECTION, int((cells["band_source"] == heatmap.PAIRED).sum())),
             heatmap.NOT_PAIRED: paired.UNPAIRED,
             "measured": "measured from the rounds",
             "assumed": "assumed (fewer than %d rounds a case)" % default_thresholds()["min_rounds"],
             "partly assumed": "partly assumed", "instruction repeats": "from instruction counts",
             "gate": "judged by the gate's verdicts"}
    noise = ["%d %s" % (sources[s], words[s]) for s in words if s in sources]
    within = int(cells["within"].sum())
    text = "Cells: %s." % ", ".join(parts)
    if noise:
        text += " Noise: %s; %d within noise." % (", ".join(noise), within)
    return '<p class="note">%s</p>' % text


def heatmap_html(ctx: Context, kind: str) -> str:
    """The heatmap of ``kind`` (``heatmap.TIME`` or ``heatmap.MEMORY``) against the reference, with its
    legend and a line saying which measures and noise bands its cells rest on."""
    verdicts = ctx.baseline.verdicts if ctx.baseline is not None else None
    cells = heatmap.cells(ctx.df, ctx.ref, kind, verdicts)
    if cells.empty:
        return '<p class="note">No case ran ok both here and in the reference environment.</p>'
    prec_rank = {p: i for i, p in enumerate(ctx.notes["precision_order"])}
    by_key = {(c.model, c.precision, c.env): c for c in cells.itertuples(index=False)}
    precs_of: Dict[str, set] = {}
    for model, prec, _env in by_key:
        precs_of.setdefault(model, set()).add(prec)
    rows: List[str] = []
    for model in sorted(precs_of):
        precs = sorted(precs_of[model], key=lambda p: (prec_rank.get(p, 99), p))
        for k, prec in enumerate(precs):
            first = '<td rowspan="%d"><b>%s</b></td>' % (len(precs), esc(model)) if k == 0 else ""
            row = []
            for env in ctx.envs:
                cell = by_key.get((model, prec, env))
                if env == ctx.ref:
                    row.append('<td class="ref">ref</td>')
                elif cell is None:
                    row.append('<td class="na">-</td>')
                else:
                    row.append(_cell_html(ctx, cell, kind))
            rows.append("<tr>%s<td>%s</td>%s</tr>" % (first, esc(prec), "".join(row)))
    tags = "; ".join("<i>%s</i>: %s" % (esc(TAGS[b]), esc(MEANINGS[b])) for b in _labels(kind))
    # memory has no noise band of its own: its "within noise" key appears only when the gate judged a cell
    shown = [k for k in KEYS[kind] if kind == heatmap.TIME or len(k) < 3 or cells["within"].any()]
    keys = legend(shown) + '<p class="note">Tag under each value, the measure of that cell: %s.</p>' % tags
    return keys + table(["model", "precision"] + ctx.env_th(), rows) + _summary(cells, kind)
