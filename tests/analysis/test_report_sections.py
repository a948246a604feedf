"""``report.sections``: one table of sections drives both the navigation and the body; builders are pure."""
import json
import re

import pandas as pd
import pytest

from harness.analysis.report.build import make_context
from harness.analysis.report.sections import SECTIONS, Context, Part, Section, render
from tests.analysis.test_report_support import record, small_store, write_jsonl


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
    assert idents == ["problems", "glance", "run", "compat", "speed", "memory", "accuracy", "failures", "all",
                      "compare"]
    assert all(s.nav and s.heading and callable(s.build) for s in SECTIONS)


def test_nav_and_body_agree(ctx):
    built = render(ctx)
    assert [i for i, _ in built.nav] == _ids_in_body(built.body)
    table = {s.ident: s for s in SECTIONS}
    for (ident, label), html in zip(built.nav, built.body):
        assert label == table[ident].nav
        assert "<h2>%s</h2>" % table[ident].heading in html
    # without problems or a baseline those two sections are left out of both
    assert [i for i, _ in built.nav] == [s.ident for s in SECTIONS if s.ident not in ("problems", "compare")]


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
