"""The Markdown summary (harness.analysis.gate.markdown)."""
import numpy as np

from harness.analysis.gate import compare, count_verdicts, exit_code_for
from harness.analysis.gate.markdown import MARKER, format_value, render_markdown
from harness.scenario.gate_config import thresholds_for
from tests.analysis.gate_records import MIB, SAMPLES, frames, lognormal, make_record


def test_markdown_orders_worst_first_and_stays_small(tmp_path):
    rng = np.random.default_rng(12)
    base, cand = [], []
    for i in range(300):
        base.append(make_record(batch_size=i + 1, samples=lognormal(rng, 0.01, 20), peak_bytes=100 * MIB))
        cand.append(make_record(batch_size=i + 1, samples=lognormal(rng, 0.01 * (1.2 + i / 100.0), 20),
                                peak_bytes=100 * MIB, status="ok" if i % 50 else "error",
                                reason="RuntimeError: a | b\nline two"))
    b, c = frames(base, cand, tmp_path)
    verdicts = compare(b, c, SAMPLES)
    doc = {"verdicts": verdicts, "counts": count_verdicts(verdicts), "thresholds": thresholds_for("", {}),
           "baseline": {"env_labels": ["base"], "records": 300}, "candidate": {"env_labels": ["head"], "records": 300,
                                                                               "scenarios": ["smoke"]},
           "exit_code": exit_code_for(verdicts)}
    text = render_markdown(doc)
    assert len(text) < 65536
    assert text.startswith(MARKER)
    # 300 cases and the run-wide verdict (every case slower): 301 regressed time or status verdicts
    assert "and %d more" % (301 - 25) in text
    table = [line for line in text.splitlines() if line.startswith("| cbam_classifier_tiny train")]
    assert "status" in table[0] and "a \\| b line two" in table[0]  # status first, pipes escaped
    time_rows = [line for line in table[:25] if "| time |" in line]
    ratios = [float(line.split("|")[5].strip().rstrip("×")) for line in time_rows]
    assert ratios == sorted(ratios, reverse=True) and ratios[0] > 3.5


def test_single_run_caveat(tmp_path):
    rng = np.random.default_rng(14)
    b, c = frames([make_record(samples=lognormal(rng, 0.01, 20))], [make_record(samples=lognormal(rng, 0.01, 20))],
                  tmp_path)
    verdicts = compare(b, c, {})
    doc = {"verdicts": verdicts, "counts": count_verdicts(verdicts), "thresholds": thresholds_for("", {}),
           "exit_code": 0}
    assert "1 timing verdict rests on fewer than 3 rounds a side" in render_markdown(doc)
    b, c = frames([make_record(samples=lognormal(rng, 0.01, 5)) for _ in range(3)],
                  [make_record(samples=lognormal(rng, 0.01, 5)) for _ in range(3)], tmp_path)
    verdicts = compare(b, c, {})
    doc["verdicts"], doc["counts"] = verdicts, count_verdicts(verdicts)
    assert "fewer than 3 rounds" not in render_markdown(doc)


def test_values_use_the_shared_units(tmp_path):
    """Bytes and durations as harness.units writes them: three significant digits."""
    b, c = frames([make_record(peak_bytes=200 * MIB, samples=[0.0123] * 10)],
                  [make_record(peak_bytes=int(1.5 * 1024 * MIB), samples=[1.5] * 10)], tmp_path)
    verdicts = compare(b, c, SAMPLES)
    memory = [v for v in verdicts if v["kind"] == "memory"][0]
    time = [v for v in verdicts if v["kind"] == "time"][0]
    assert format_value(memory, "baseline") == "200 MiB" and format_value(memory, "candidate") == "1.5 GiB"
    assert format_value(time, "baseline") == "12.3 ms" and format_value(time, "candidate") == "1.5 s"
    doc = {"verdicts": verdicts, "counts": count_verdicts(verdicts), "thresholds": thresholds_for("", {}),
           "exit_code": exit_code_for(verdicts)}
    assert "memory: > 5% and > 16 MiB" in render_markdown(doc)


def test_fields_from_records_cannot_inject_html_or_markdown(tmp_path):
    evil = '"><img src=x onerror=alert(1)>'
    b, c = frames([make_record(model=evil), make_record(model="m2")],
                  [make_record(model=evil, status="error", reason="<script>alert(1)</script> [link](http://x) *b*"),
                   make_record(model="m2", label="<b>head</b>")], tmp_path)
    verdicts = compare(b, c, SAMPLES)
    doc = {"verdicts": verdicts, "counts": count_verdicts(verdicts), "thresholds": thresholds_for("", {}),
           "baseline": {"env_labels": ["base"], "records": 2},
           "candidate": {"env_labels": ["<b>head</b>"], "records": 2, "scenarios": ["`smoke`"]},
           "exit_code": exit_code_for(verdicts)}
    text = render_markdown(doc)
    body = text[len(MARKER):]
    for raw in ("<img", "<script", "<b>", "[link](http", "`smoke`", " *b*"):
        assert raw not in body, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\[link\\](http://x) \\*b\\*" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text


def test_each_summary_line_appears_once_on_a_one_environment_aa(tmp_path):
    rng = np.random.default_rng(3)
    recs = [make_record(batch_size=i + 1, samples=lognormal(rng, 0.01, 20)) for i in range(5)]
    b, c = frames(recs, recs, tmp_path)
    verdicts = compare(b, c, {})
    doc = {"verdicts": verdicts, "counts": count_verdicts(verdicts), "thresholds": thresholds_for("", {}),
           "exit_code": exit_code_for(verdicts)}
    text = render_markdown(doc)
    assert text.count("New cases: 0 · vanished: 0") == 1 and text.count("fewer than 3 rounds a side") == 1
