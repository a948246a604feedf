"""``report.sections.relative``: every heatmap cell names its measure and its noise; the legend and notes say so."""
import html
import re

from harness.analysis.report import heatmap
from harness.analysis.report.build import make_context
from harness.analysis.report.sections import relative
from harness.measures import ASSUMED_ROUND_SD_LOG
from tests.analysis.test_report_support import record, write_jsonl


def _cells(text):
    """(class, text, hover text) of every heat cell."""
    return [(cls.strip(), re.sub(r"<[^>]+>", " ", body).split(), html.unescape(tip))
            for cls, tip, body in re.findall(r'<td class="heat ([^"]*)"[^>]*title="([^"]*)">(.*?)</td>', text)]


def _ctx(tmp_path, recs, **kwargs):
    write_jsonl(str(tmp_path / "in" / "records.jsonl"), recs)
    return make_context([str(tmp_path / "in")], **kwargs)[0]


def _pair(model, here_s, there_s, here=None, there=None):
    """One case in torch-2.1 and in the reference torch-latest (``here``/``there``: more ``record`` arguments)."""
    return [record(model=model, env="torch-2.1", torch_v="2.1.2", median_s=here_s, **(here or {})),
            record(model=model, env="torch-latest", torch_v="2.13.0", median_s=there_s, **(there or {}))]


def test_time_cells_show_their_measure_and_noise(tmp_path):
    ctx = _ctx(tmp_path, _pair("counted", 0.03, 0.01, here=dict(instructions=1.2e8), there=dict(instructions=1e8)) +
               _pair("timed", 0.012, 0.01))
    text = relative.heatmap_html(ctx, heatmap.TIME)
    (c_cls, c_text, c_tip), (t_cls, t_text, t_tip) = _cells(text)
    assert c_text == ["+20%", "instr"] and c_cls == ""  # coloured: counts 20% apart are a change
    assert "Basis: CPU instructions per step" in c_tip and "Beyond noise." in c_tip
    assert t_text == ["+20%", "wall"] and t_cls == "noise"  # one round a side: within the assumed band
    assert 'class="heat noise" title=' in text  # drawn without a colour
    assert "Basis: wall time per step" in t_tip and "assumed, not measured" in t_tip and "Within noise" in t_tip
    assert "%.2f" % ASSUMED_ROUND_SD_LOG in t_tip
    assert "within noise: not coloured" in text and '<i class="noise">' in text  # the legend's key
    assert "Cells: 1 on instructions (<i>instr</i>), 1 on wall time (<i>wall</i>)." in text
    assert "1 assumed (fewer than 3 rounds a case)" in text


def test_memory_cells_show_their_measure(tmp_path):
    ctx = _ctx(tmp_path, _pair("exact", 0.01, 0.01, here=dict(tensor_peak=2048, peak=10 ** 7),
                               there=dict(tensor_peak=1024, peak=10 ** 7)))
    text = relative.heatmap_html(ctx, heatmap.MEMORY)
    [(cls, words, tip)] = _cells(text)
    assert words == ["+100%", "tensor"] and cls == "" and "Basis: the exact CPU tensor-memory peak" in tip
    assert "within noise" not in text  # no band for memory, and no verdicts to judge it


def test_the_gates_verdict_is_named_in_the_cell(tmp_path):
    recs = [record(env=label, torch_v="2.1.2", fingerprint="fp-ab", median_s=m) for label, m in
            (("base", 0.03), ("head", 0.01))]
    verdicts = [{"case_key": recs[0]["case_key"], "env_fingerprint": "fp-ab", "env_label": "head",
                 "baseline_env_label": "base", "kind": "time", "verdict": "unchanged"}]
    ctx = _ctx(tmp_path, recs, reference_env="head", verdicts=verdicts)
    [(cls, _words, tip)] = _cells(relative.heatmap_html(ctx, heatmap.TIME))
    assert cls == "noise" and "Judged by the gate's verdicts (head against base): 1 unchanged." in tip


def test_the_speed_section_explains_the_bases(tmp_path):
    from harness.analysis.report.sections import performance

    ctx = _ctx(tmp_path, _pair("timed", 0.012, 0.01))
    body = performance.speed(ctx).body
    assert "Time per step relative to torch-latest" in body and "instruction counts" in body
    assert "assumed where it has fewer" in body and "less than 2% apart (or than 5\u00d7 their repeat spread)" in body
