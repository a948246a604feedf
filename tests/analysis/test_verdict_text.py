"""``analysis.verdict_text``: the gate's Markdown and the report's verdict table say the same thing about the
same verdict. Verdicts from the real gate on a small store (an ``ab --instructions`` run of three rounds a
side: an instruction-count time regression, a tensor-peak memory regression, the run-wide verdict), then
the Markdown the gate writes and the verdict dataset the report embeds, compared value by value."""
import html
import json

import numpy as np
import pytest

from harness.analysis.gate.io import evaluate
from harness.analysis.gate.markdown import md_text
from harness.analysis.report import datasets
from harness.analysis.report.build import make_context
from harness.analysis.report.sections import comparison
from harness.analysis.verdict_text import case_text, kind_text, model_text, q_text, ratio_text, value_text, why_text
from harness.vocab import AGGREGATE_CASE_KEY
from tests.analysis.gate_records import lognormal, make_record, stores

MODELS = ("cbam_classifier_tiny", "mswr_net_v2", "graph_vae", "ris_localizer", "datacube_unet3d", "hsi_fusion_net")


def _with_tensor_peak(rec, peak):
    rec["memory"]["tensor_peak_bytes"] = int(peak)
    return rec


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(the gate's verdicts document, the report's verdict rows) of one store."""
    rng = np.random.default_rng(5)
    base, cand = [], []
    for i, model in enumerate(MODELS):
        for r in range(3):  # counted in the first round only, as ab --instructions does
            counts = 31.1e6 * (i + 1) if r == 0 else None
            more = 1.109 if i < 2 else 1.0
            base.append(_with_tensor_peak(make_record(model=model, samples=lognormal(rng, 0.01, 5), run_id="r%d" % r,
                                                      instructions=counts), 1e6 * (i + 1)))
            cand.append(_with_tensor_peak(make_record(
                model=model, samples=lognormal(rng, 0.01, 5), run_id="r%d" % r,
                instructions=None if counts is None else counts * more), 1e6 * (i + 1) * (1.2 if i == 3 else 1.0)))
    folder_a, folder_b = stores(tmp_path_factory.mktemp("ab"), base, cand)
    doc = evaluate([folder_a], [folder_b])
    ctx, _ = make_context([folder_b], verdicts=doc["verdicts"])
    data = json.loads(datasets.verdicts_json(datasets.ranked_verdicts(ctx.baseline.verdicts)))
    rows = []
    for i in range(data["n"]):
        row = {}
        for col in data["columns"]:
            value = data["data"][col["key"]][i]
            row[col["key"]] = data["dicts"][col["key"]][value] if col["kind"] in ("cat", "text") and \
                value is not None and value >= 0 else value
        rows.append(row)
    return doc, rows, ctx


def _markdown_rows(text):
    """{(case, what): {baseline, candidate, ratio, q, why}} of the Markdown's verdict tables."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) != 7 or cells[0] in ("case", "---"):
            continue
        out[(cells[0], cells[1])] = dict(zip(("baseline", "candidate", "ratio", "q", "why"), cells[2:]))
    return out


def _report_row(rows, case_key, kind):
    found = [r for r in rows if r["case_key"] == case_key and r["kind"] == kind]
    assert len(found) == 1, (case_key, kind, found)
    return found[0]


def test_the_markdown_and_the_report_write_each_verdict_alike(run):
    doc, rows, _ = run
    table = _markdown_rows(doc["markdown"])
    by_case = {(case_text(v["case_key"]), kind_text(v)): v for v in doc["verdicts"]}
    assert len(table) == 4  # two counted time regressions, one memory regression, the run-wide verdict
    for (case, what), md in table.items():
        verdict = by_case[(case, what)]
        row = _report_row(rows, verdict["case_key"], what)
        for which in ("baseline", "candidate"):
            assert md[which] == md_text(row[which]) == md_text(value_text(verdict, which)), (case, which)
        assert md["ratio"] == ratio_text(row) and md["q"] == q_text(row)
        assert row["reason"] == why_text(verdict) and row["model"] == model_text(verdict)


def test_an_instruction_count_verdict_is_written_as_counts_and_rests_on_them(run):
    doc, rows, _ = run
    md = _markdown_rows(doc["markdown"])[("cbam_classifier_tiny train b8 64 fp32 ckpt=none cpu", "time")]
    key = next(v["case_key"] for v in doc["verdicts"] if v["model"] == "cbam_classifier_tiny")
    row = _report_row(rows, key, "time")
    # counts as counts on both sides (the report once said "3.11e+07 s → 3.45e+07 s")
    assert (md["baseline"], md["candidate"]) == (row["baseline"], row["candidate"]) == ("31.1 M", "34.49 M")
    # no q of its own: the wall-time test stands beside the counts, not as the reason
    assert md["q"] == "–" and row["q_value"] is None
    counts = "instructions +10.9% (31.1 M → 34.49 M per step; spread 0.1%, limit 2.0%)"
    assert md["why"].startswith(counts + "; wall time ") and row["reason"].startswith(counts + "; wall time: ")
    assert "Welch t on log round medians, 3 vs 3 rounds" in md["why"]


def test_a_memory_verdict_and_the_run_wide_one(run):
    doc, rows, _ = run
    table = _markdown_rows(doc["markdown"])
    md = table[("ris_localizer train b8 64 fp32 ckpt=none cpu", "memory")]
    assert (md["baseline"], md["candidate"]) == ("3.81 MiB", "4.58 MiB")
    assert md["why"].startswith("tensor peak +781.2 KiB (+20.0%)")
    run_wide = _report_row(rows, AGGREGATE_CASE_KEY, "time")
    assert run_wide["model"] == AGGREGATE_CASE_KEY  # it was "?": the run-wide verdict has no model
    assert table[(AGGREGATE_CASE_KEY, "time")]["why"] == run_wide["reason"]
    assert run_wide["reason"].startswith("geometric mean of 6 cases' instruction-count ratios +3.51%")
    assert "**Run-wide time (torch 2.1.2, py 3.11.7, cpu): regressed**" in doc["markdown"]


def test_the_report_heading_names_what_each_measure_rests_on(run):
    _, _, ctx = run
    intro = html.unescape(comparison.comparison(ctx).intro)
    assert "significant on the raw samples" not in intro
    assert ("instructions beyond 2% and 5× the counts' own spread (that part at most 5%), else wall time beyond "
            "1.10×") in intro
    assert "memory: tensor peak beyond 5% and 64 KiB, else " in intro and "process peak beyond 5% and 16 MiB" in intro
