"""``harness.measures``: the one table of measures, its names checked against the record schema and the
gate's thresholds, its helpers, and that the runner's oldest Python can import it without the analysis side."""
import json
import os
import subprocess
import sys

import pytest

from harness import measures
from harness.analysis.report.rounds import ROUND_COLUMNS
from harness.record.schema import COLUMN_NAMES
from harness.scenario.gate_config import DEFAULTS
from harness.vocab import VERDICT_KINDS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OLDEST = os.path.join(ROOT, ".nox", "tests-torch-1-10", "bin", "python")


@pytest.mark.parametrize("measure", list(measures.MEASURES.values()), ids=lambda m: m.column)
def test_every_name_of_a_row_exists_where_it_points(measure):
    """Each row's columns are record columns (or the report's round columns), its kind a verdict kind,
    its threshold keys the gate's, and a size rule names a fraction (and a floor, where it has one)."""
    named = [measure.column, measure.spread_column, measure.method_column,
             measure.only_where[0] if measure.only_where else None]
    assert [c for c in named if c and c not in COLUMN_NAMES] == []
    assert measure.rounds_column is None or measure.rounds_column in ROUND_COLUMNS
    assert measure.kind in VERDICT_KINDS and set(measure.thresholds) <= set(DEFAULTS)
    if measure.noise == measures.NOISE_SIZE:
        assert 0 < DEFAULTS[measure.thresholds[0]] < 1
        assert all(isinstance(DEFAULTS[k], int) for k in measure.thresholds[1:])  # floors in bytes
    if measure.noise == measures.NOISE_COUNTS:
        assert len(measure.thresholds) == 2 and measure.spread_column


def test_chains_end_in_a_measure_every_record_has_and_label_each_measure_once():
    for kind, chain in measures.CHAINS.items():
        assert {m.kind for m in chain} == {kind}
        assert len({m.label for m in chain}) == len(chain)
    # the last resort of time and memory is in every ok record the runner writes
    assert measures.CHAINS["time"][-1].column == "median_s" and measures.CHAINS["memory"][-1].column == "peak_mem_bytes"
    assert measures.measure_of("tensor_peak_bytes") is measures.TENSOR_PEAK and measures.measure_of(None) is None


@pytest.mark.parametrize("unit, value, text", [
    ("instructions", 31.1e6, "31.1 M"), ("instructions", 34.48e6, "34.48 M"), ("s", 0.0123, "12.3 ms"),
    ("bytes", 4 * 2 ** 20, "4 MiB"), ("samples", 96.0, "96 samples"), ("relative error", 1.5e-7, "1.5e-07"),
    (None, 0.5, "0.5"), ("s", None, "–"), ("bytes", float("nan"), "–"), ("s", float("inf"), "–"),
    ("s", "ok×2, error", "ok×2, error"), ("bytes", True, "–")])
def test_values_are_written_by_their_unit(unit, value, text):
    assert measures.format_value(unit, value) == text


def test_a_count_s_limit_is_the_fraction_or_its_spread_times_the_factor():
    th = dict(DEFAULTS)
    assert measures.count_limit(measures.INSTRUCTIONS, th, 0.001) == pytest.approx(0.02)
    assert measures.count_limit(measures.INSTRUCTIONS, th, 0.01) == pytest.approx(0.05)
    assert measures.thresholds_of(measures.INSTRUCTIONS, th) == {"instructions_frac": 0.02,
                                                                 "instructions_spread_factor": 5.0}


def test_a_side_carries_a_measure_on_every_record_or_on_one_counted_one():
    tensor, counts = measures.TENSOR_PEAK, measures.INSTRUCTIONS
    assert measures.carried(tensor, [1024, 2048]) and not measures.carried(tensor, [1024, None])
    assert not measures.carried(tensor, []) and not measures.carried(tensor, [float("nan")])
    # counted in the first round only (ab --instructions): one ok count suffices; a count of a failed pass does not
    assert measures.carried(counts, [5e7, None, None], ["ok", None, None])
    assert not measures.carried(counts, [5e7], ["error"]) and not measures.carried(counts, [5e7])


def test_noise_in_words_names_the_thresholds():
    th = dict(DEFAULTS)
    assert measures.noise_words(measures.INSTRUCTIONS, th) == (
        "beyond 2% and 5× the counts' own spread (that part at most 5%)")
    assert measures.noise_words(measures.TENSOR_PEAK, th) == "beyond 5% and 64 KiB"
    assert "3 rounds a side" in measures.noise_words(measures.WALL_TIME, th)


@pytest.mark.skipif(not os.path.exists(OLDEST), reason="no tests-torch-1-10 environment (nox -s tests-torch-1-10)")
def test_the_oldest_runner_python_imports_it_with_the_standard_library_only():
    code = ("import sys; import harness.measures as m; heavy = [n for n in ('torch', 'numpy', 'pandas') "
            "if n in sys.modules]; assert not heavy, heavy; print(m.format_value('bytes', 3 * 2 ** 20))")
    proc = subprocess.run([OLDEST, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3 MiB"


def test_it_imports_in_a_fresh_interpreter_without_the_analysis_side():
    code = "import sys, harness.measures; print(sorted(n for n in sys.modules if n.startswith('harness.analysis')))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --- one table: a made-up measure, end to end -----------------------------------------------------

#: The three edits that add a memory measure: its record field, its row in the table, its threshold's default.
_FIELD = ('    rss_delta_bytes: Optional[int] = _f("growth of the resident set over the timed steps", '
          'column="rss_delta_bytes", table="RSS delta")\n')
_ROW = '''
RSS_DELTA = Measure("rss_delta_bytes", "memory", "RSS delta", "bytes", NOISE_SIZE,
                    ("memory_frac", "rss_delta_floor_bytes"), tag="rss", meaning="the growth of the resident set",
                    change=Change("RSS delta", "MiB", MIB, 0, 1), headline="RSS delta")
CHAINS["memory"] = CHAINS["memory"][:-1] + (RSS_DELTA,) + CHAINS["memory"][-1:]
MEASURES[RSS_DELTA.column] = RSS_DELTA
'''
_DEFAULT = '''
DEFAULTS["rss_delta_floor_bytes"] = 4 * 1024 * 1024
_RULES["rss_delta_floor_bytes"] = _RULES["tensor_memory_floor_bytes"]
'''
_CHECK = r'''
import html, json, pathlib, re, sys
import numpy as np
from harness.analysis.gate.io import evaluate
from harness.analysis.report.build import build_report
from tests.analysis.gate_records import MIB, make_record, stores, write_jsonl

def rec(model, rss, **kw):
    r = make_record(model=model, samples=list(np.full(10, 0.01)), **kw)
    r["memory"]["rss_delta_bytes"] = int(rss)
    return r

models = ["m%d" % i for i in range(6)]
a, b = stores(pathlib.Path(sys.argv[1]), [rec(m, 20 * MIB) for m in models],
              [rec(m, (30 if m == "m0" else 20) * MIB) for m in models])
doc = evaluate([a], [b])
judged = [(v["model"], v["verdict"], v["measure"], sorted(v["threshold"])) for v in doc["verdicts"]
          if v["kind"] == "memory"]
row = [line for line in doc["markdown"].splitlines() if line.startswith("| m0 ")]
write_jsonl(sys.argv[1] + "/R/r.jsonl", [rec(m, 20 * MIB, label="torch-latest", torch_v="2.13.0") for m in models] +
            [rec(m, (40 if m == "m0" else 20) * MIB, label="torch-2.1") for m in models])
page = open(build_report([sys.argv[1] + "/R"], sys.argv[1] + "/report/index.html",
                         verdicts=doc["verdicts"])["out_path"]).read()
table = json.loads(html.unescape(re.search(r'id="tm-verdicts"[^>]*>(.*?)</script>', page, re.S).group(1)))
memory = page[page.index('id="memory"'):page.index("Gradient checkpointing")]
print(json.dumps({"judged": judged, "markdown": row, "report_values": sorted(table["dicts"]["candidate"]),
                  "heatmap_tags": sorted(set(re.findall(r'<small class="basis">([^<]*)</small>', memory)))}))
'''


def test_a_made_up_memory_measure_is_judged_and_shown_after_three_edits(tmp_path):
    """Add ``rss_delta_bytes`` to a copy of the harness by the three edits the table asks for (a record
    field, a row, a threshold default) and nothing else: the gate judges it with its own threshold key,
    the Markdown and the report's verdict table write it in bytes, the memory heatmap rests on it."""
    import re
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(os.path.join(ROOT, "harness"), str(copy / "harness"), ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "tests" / "analysis").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "tests", "__init__.py"), str(copy / "tests"))
    shutil.copy(os.path.join(ROOT, "tests", "analysis", "gate_records.py"), str(copy / "tests" / "analysis"))
    parts = copy / "harness" / "record" / "parts.py"
    text, n = re.subn(r'(class Memory:\n    """.*?"""\n)', lambda m: m.group(1) + "\n" + _FIELD,
                      parts.read_text(encoding="utf-8"), count=1, flags=re.S)
    assert n == 1
    parts.write_text(text, encoding="utf-8")
    with open(str(copy / "harness" / "measures.py"), "a", encoding="utf-8") as fh:
        fh.write(_ROW)
    with open(str(copy / "harness" / "scenario" / "gate_config.py"), "a", encoding="utf-8") as fh:
        fh.write(_DEFAULT)
    proc = subprocess.run([sys.executable, "-c", _CHECK, str(tmp_path / "run")], cwd=str(copy),
                          env=dict(os.environ, PYTHONPATH=str(copy)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    judged = {model: (verdict, measure, keys) for model, verdict, measure, keys in out["judged"]}
    assert judged["m0"] == ("regressed", "rss_delta_bytes", ["memory_frac", "rss_delta_floor_bytes"])
    assert judged["m1"][:2] == ("unchanged", "rss_delta_bytes")
    assert out["markdown"] == ["| m0 train b8 64 fp32 ckpt=none cpu | memory | 20 MiB | 30 MiB | 1.50× | – | "
                               "RSS delta +10.0 MiB (+50%), above 5% and 4.0 MiB |"]
    assert "30 MiB" in out["report_values"] and out["heatmap_tags"] == ["rss"]
