"""``report.sections``: one table of sections drives both the navigation and the body; builders are pure."""
import json
import re
from html import unescape

import pandas as pd
import pytest

from harness.analysis.report.build import make_context
from harness.analysis.report.markup import limit_color
from harness.analysis.report.sections import SECTIONS, Context, Part, Section, render
from harness.analysis.report.sections.accuracy import accuracy
from tests.analysis.test_report_support import drift_records, fidelity_records, record, small_store, write_jsonl


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("store"))
    small_store(folder)
    return folder


@pytest.fixture(scope="module")
def ctx(store):
    return make_context([store])[0]


def _ids_in_body(body):
    return [re.match(r'<section id="([^"]+)"', html).group(1) for html in body]


def test_the_table_declares_each_section_once():
    idents = [s.ident for s in SECTIONS]
    assert len(idents) == len(set(idents))
    assert idents == ["problems", "glance", "run", "compat", "upgrade", "speed", "memory", "flops", "max-batch", "ops",
                      "accuracy", "failures", "all", "compare"]
    assert all(s.nav and s.heading and callable(s.build) for s in SECTIONS)


def test_nav_and_body_agree(ctx):
    built = render(ctx)
    assert [i for i, _ in built.nav] == _ids_in_body(built.body)
    table = {s.ident: s for s in SECTIONS}
    for (ident, label), html in zip(built.nav, built.body):
        assert label == table[ident].nav
        assert "<h2>%s</h2>" % table[ident].heading in html
    # without problems, a baseline, profiled cases or largest-batch searches those sections are left out of both
    assert [i for i, _ in built.nav] == [s.ident for s in SECTIONS
                                         if s.ident not in ("problems", "compare", "ops", "flops", "max-batch")]


def test_sections_with_data_dependent_titles(store, tmp_path):
    bad = write_jsonl(str(tmp_path / "in" / "torch-2.1.jsonl"), [record(model="a"), record(model="b")],
                      extra_lines=["not json\n"])
    base = write_jsonl(str(tmp_path / "base" / "torch-2.1.jsonl"), [record(model="a")])
    ctx, _ = make_context([bad], baseline_paths=[base])
    built = render(ctx)
    assert built.nav[0] == ("problems", "Problems (1)") and built.nav[-1] == ("compare", "Comparison")
    assert _ids_in_body(built.body) == [i for i, _ in built.nav]
    assert built.body[0].startswith('<section id="problems" class="problems"><h2>1 input problem: ')


def test_builders_return_parts_and_leave_the_context_alone(ctx):
    before = ctx.df.copy()
    notes = json.dumps(ctx.notes, sort_keys=True, default=str)
    for sec in SECTIONS:
        part = sec.build(ctx)
        assert part is None or isinstance(part, Part), sec.ident
    pd.testing.assert_frame_equal(ctx.df, before)
    assert json.dumps(ctx.notes, sort_keys=True, default=str) == notes
    with pytest.raises(AttributeError):
        ctx.ref = "other"  # frozen


def test_data_blocks_hold_every_dataset_the_page_reads(ctx):
    built = render(ctx)
    block_ids = [re.search(r'id="([^"]+)"', b).group(1) for b in built.blocks]
    assert block_ids[:2] == ["tm-envs", "tm-records"] and len(block_ids) == len(set(block_ids))
    sources = set(re.findall(r'data-src="([^"]+)"', "".join(built.body)))
    assert sources and sources <= set(block_ids)
    assert {c.name for c in built.figures} == {"speed_by_release", "memory_by_release", "checkpoint_tradeoff"}


def test_render_takes_any_table(ctx):
    table = (Section("one", "One", "The first", lambda c: Part("<p>1</p>", intro="why", blocks=("<b1>",))),
             Section("none", "None", "Never shown", lambda c: None))
    built = render(ctx, table)
    assert built.nav == [("one", "One")]
    assert built.body == ['<section id="one"><h2>The first</h2><p class="note">why</p><p>1</p></section>']
    assert built.blocks[2:] == ["<b1>"] and built.figures == []


def test_context_is_read_only_data(ctx):
    assert isinstance(ctx, Context)
    assert ctx.envs == ctx.notes["env_order"] and ctx.env_th()[-1] == "torch-latest (ref)"


def _cells(body):
    """(text, background, hover text) of every heat cell, entities decoded."""
    return [(unescape(text), color, unescape(title)) for color, title, text in re.findall(
        r'<td class="heat [^"]*" style="background:([^"]+)" title="([^"]*)">(.*?)</td>', body)]


def test_accuracy_section_shows_the_ratio_to_the_expected_error_and_labels_the_fixed_tolerance(tmp_path):
    folder = str(tmp_path / "in")
    write_jsonl(folder + "/records.jsonl", fidelity_records())
    body = accuracy(make_context([folder])[0]).body
    assert "in units of the error this precision is expected to make there (fp32's own error scaled by the ratio " \
           "of unit roundoffs, never below one unit roundoff); a case fails above the limit" in body
    assert "docs/accuracy.md" in body
    cells = _cells(body)
    # bf16 on torch-2.1: the calibrated worst, the scenario's fixed-tolerance case labelled, failures of both
    top = next(c for c in cells if c[2].startswith("bf16 on torch-2.1"))
    assert top[0] == "31.0\u00d7 expected<br>0.1\u00d7 tol <small>(fixed)</small><br><b>1/3 fail</b>"
    assert top[1] == limit_color(3.1)
    assert "limit 10\u00d7" in top[2] and "worst: a train, checkpoint reentrant: grads: stem.1.weight" in top[2]
    # the model's row names the worst case under the figure
    row = next(c for c in cells if c[2].startswith("a bf16 on torch-2.1"))
    assert row[0] == ("31.0\u00d7 expected<br><small>train, checkpoint reentrant: grads: stem.1.weight</small>"
                      "<br><b>1/1 fail</b>")
    # old records, lifted to the fixed tolerance: today's figure, labelled
    old = next(c for c in cells if c[2].startswith("fp32 on torch-1.10"))
    assert old[0] == "0.5\u00d7 tol <small>(fixed)</small>" and "(fixed tolerance)" in old[2]
    assert old[1] == limit_color(0.5)
    assert next(c for c in cells if c[2].startswith("fp32 on torch-2.1"))[0] == "1.2\u00d7 expected"


def test_drift_table_shows_the_ratio_to_the_expected_drift_and_falls_back_to_probes(tmp_path):
    folder = str(tmp_path / "in")
    write_jsonl(folder + "/records.jsonl", drift_records())
    body = accuracy(make_context([folder])[0]).body
    drift = body[body.index("fp32 output drift"):body.index("Task metrics")]
    cells = {c[2].split(" on ")[0]: c for c in _cells(drift)}
    assert cells["a"][0] == "1.0\u00d7 expected" and cells["a"][1] == limit_color(0.1)
    assert "drift 2.0e-07, expected 2.0e-07" in cells["a"][2] and "float64 outputs differ by 0" in cells["a"][2]
    assert cells["b"][0] == "16777\u00d7 expected<br><small>fp64 changed</small>"
    assert cells["b"][1] == limit_color(float("inf")) and "the computation itself changed" in cells["b"][2]
    assert cells["d"][0] == "1.0e-01 <small>probe</small>"
    assert "max probe difference against the reference env" in cells["d"][2]
    assert "within 1\u00d7 expected" in drift and "probe: \u2264 1e-6" in drift


def test_a_model_the_library_release_lacks_reads_as_that_not_as_a_failure(tmp_path):
    from harness.analysis.report.sections.compat import matrix

    lacking = "not in torchvision 0.11.3: no model 'swin_t' (first in torchvision 0.13.0)"
    kernel = 'RuntimeError: "batch_norm" not implemented for \'BFloat16\''
    recs = {"torch-1.10": [], "torch-2.1": []}
    for precision in ("fp32", "bf16"):
        recs["torch-1.10"].append(record("torchvision:swin_t", "torch-1.10", "1.10.2", status="unsupported",
                                         reason=lacking, precision=precision))
        recs["torch-2.1"].append(record("torchvision:swin_t", "torch-2.1", precision=precision))
        failing = {"status": "unsupported", "reason": kernel} if precision == "bf16" else {}
        recs["torch-1.10"].append(record("torchvision:resnet18", "torch-1.10", "1.10.2", precision=precision,
                                         **failing))
        recs["torch-2.1"].append(record("torchvision:resnet18", "torch-2.1", precision=precision))
    for env, rows in recs.items():
        write_jsonl(str(tmp_path / (env + ".jsonl")), rows)
    html = matrix(make_context([str(tmp_path)])[0]).body
    cells = re.findall(r'<td class="mx([^"]*)" title="([^"]*)"><span class="lbl">([^<]*)</span>', html)
    absent = [(unescape(title), label) for cls, title, label in cells if cls == " absent"]
    # swin_t on 1.10, in its model row and in each precision's row: the release, not "0/2 ok · 2 unsupported"
    assert [label for _, label in absent] == ["not in torchvision 0.11.3"] * 3
    assert all(lacking in title and title.startswith("torchvision:swin_t") for title, _ in absent)
    # a kernel the release lacks for one precision stays an unsupported count
    labels = [unescape(label) for cls, _, label in cells if not cls]
    assert "1/2 ok \u00b7 1 unsupported" in labels
    assert "not in this environment's library release" in unescape(html)  # its legend key
