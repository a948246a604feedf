"""``build_report`` end to end: the built file, its figures, bad inputs, the comparison sections."""
import json
import os
import re
import subprocess
import sys

import pytest

from harness.analysis.load import InputError, load_records
from harness.analysis.report import build_report
from harness.analysis.report.figures import CHART_NAMES, FLOPS_CHART
from harness.record.schema import SCHEMA_VERSION
from tests.analysis.report_synth import ENVS
from tests.analysis.test_report_support import ROOT, record, small_store, write_jsonl


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("store"))
    return out, small_store(out)


@pytest.fixture(scope="module")
def built(store, tmp_path_factory):
    folder, _ = store
    out = str(tmp_path_factory.mktemp("report") / "index.html")
    result = build_report([folder], out_path=out)
    with open(out, encoding="utf-8") as fh:
        return result, fh.read()


# ------------------------------------------------------------------ the built file


def test_report_is_one_offline_file_with_every_section(built):
    result, text = built
    assert set(result) == {"out_path", "records", "problems", "seconds", "load_seconds", "bytes", "reference_env",
                           "environments", "superseded", "markdown_chars"}
    assert result["records"] == 6 * 2 * 3 * 3 * 3 * 2 * len(ENVS)
    assert result["problems"] == [] and result["bytes"] == len(text.encode("utf-8"))
    for ident in ("glance", "run", "compat", "speed", "memory", "accuracy", "failures", "all"):
        assert 'id="%s"' % ident in text
    assert 'id="compare"' not in text and 'id="problems"' not in text  # no baseline, no problem
    # nothing loaded from anywhere: no src/href to a URL, no CSS imports or url() fetches
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", text, re.I)
    assert "<link" not in text and "<img" not in text
    assert "default-src 'none'" in text  # the page forbids every fetch itself
    assert len(text.encode()) < 2_000_000


#: The charts the synthetic store draws: all but the FLOPs chart (its records carry no FLOP counts).
DRAWN = [name for name in CHART_NAMES if name != FLOPS_CHART]


def test_figures_are_inline_and_written_beside_the_report(built):
    result, text = built
    folder = os.path.join(os.path.dirname(result["out_path"]), "figures")
    assert sorted(os.listdir(folder)) == sorted(n + ext for n in DRAWN for ext in (".png", ".svg"))
    for name in DRAWN:
        assert 'id="fig-%s"' % name in text
        with open(os.path.join(folder, name + ".png"), "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
        with open(os.path.join(folder, name + ".svg"), encoding="utf-8") as fh:
            assert fh.read().lstrip().startswith("<?xml")
    ids = re.findall(r'\sid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), "duplicate ids in the page"


def test_stale_figures_of_an_earlier_report_are_removed(tmp_path):
    write_jsonl(str(tmp_path / "in" / "torch-2.1.jsonl"), [record(model="a")])
    figures = tmp_path / "out" / "figures"
    figures.mkdir(parents=True)
    (figures / "checkpoint_tradeoff.png").write_bytes(b"old")
    (figures / "mine.png").write_bytes(b"a person's file")
    build_report([str(tmp_path / "in")], out_path=str(tmp_path / "out" / "index.html"))
    # one record without checkpointing: no trade-off to draw, and the old drawing is gone
    assert sorted(os.listdir(str(figures))) == ["memory_by_release.png", "memory_by_release.svg", "mine.png",
                                                "speed_by_release.png", "speed_by_release.svg"]


def test_run_section_lists_exact_versions_and_skipped_environments(built):
    _, text = built
    for _label, torch_v, py, np_v, _cuda, _speed in ENVS:
        assert torch_v in text and py in text and np_v in text
    run = text[text.index('id="run"'):text.index('id="compat"')]
    assert "torch-1.9" in run and "skipped" in run and "no Python 3.9 interpreter" in run
    assert "0123abcd4567" in run  # the commit
    assert "2026-11-21T10:" in run  # dates


def test_reference_defaults_to_the_highest_torch_version(built):
    result, text = built
    assert result["reference_env"] == "torch-latest"  # 2.13.0+cpu beats 2.1.2 and 1.13.1
    assert "torch-latest (ref)" in text


def test_reference_env_can_be_chosen_and_unknown_is_refused(store, tmp_path):
    folder, _ = store
    out = str(tmp_path / "r.html")
    result = build_report([folder], out_path=out, reference_env="torch-1.12")
    assert result["reference_env"] == "torch-1.12"
    with pytest.raises(InputError, match=r"torch-9\.9.*torch-1\.10"):
        build_report([folder], out_path=str(tmp_path / "other.html"), reference_env="torch-9.9")
    assert not os.path.exists(str(tmp_path / "other.html"))  # nothing half-written


def test_matrix_expansion_lists_the_reasons(built):
    _, text = built
    matrix = text[text.index('id="compat"'):text.index('id="speed"')]
    assert 'class="child why"' in matrix and "most frequent reasons" in matrix
    assert "non-reentrant checkpointing" in matrix and "on torch-1.10" in matrix


# ------------------------------------------------------------------ bad inputs


def test_bad_lines_are_named_by_file_and_line_and_good_records_still_reported(tmp_path):
    good = [record(model="a"), record(model="b", status="error", reason="RuntimeError: boom")]
    bad_file = write_jsonl(str(tmp_path / "in" / "torch-2.1.jsonl"), good, extra_lines=[
        json.dumps(dict(record(model="c"), schema_version=SCHEMA_VERSION + 98)) + "\n",
        "this is not json\n",
        '{"schema_version": %d, "truncated' % SCHEMA_VERSION])
    empty = str(tmp_path / "in" / "torch-2.0.jsonl")
    open(empty, "w").close()
    out = str(tmp_path / "report.html")
    result = build_report([str(tmp_path / "in")], out_path=out)
    assert result["records"] == 2
    problems = "\n".join(result["problems"])
    assert "%s:3: schema_version %d" % (bad_file, SCHEMA_VERSION + 98) in problems
    assert "%s:4: not valid JSON" % bad_file in problems
    assert "%s:5: not valid JSON" % bad_file in problems
    assert "%s: no records" % empty in problems
    text = open(out, encoding="utf-8").read()
    assert 'id="problems"' in text and "torch-2.1.jsonl:4: not valid JSON" in text
    assert "4 input problems" in text and '<a href="#problems">Problems (4)</a>' in text
    assert "RuntimeError: boom" in text


@pytest.mark.parametrize("paths, message", [
    ([], "no record files"),
    (["/nonexistent/records.jsonl"], "no such file"),
])
def test_missing_or_empty_input_raises(paths, message, tmp_path):
    with pytest.raises(InputError, match=message):
        build_report(paths, out_path=str(tmp_path / "r.html"))
    assert not os.path.exists(str(tmp_path / "r.html"))


def test_no_good_record_raises_naming_the_file(tmp_path):
    path = write_jsonl(str(tmp_path / "x.jsonl"), [], extra_lines=["{not json\n"])
    with pytest.raises(InputError, match=re.escape(path)):
        build_report([path], out_path=str(tmp_path / "r.html"))


def test_a_failed_build_keeps_the_previous_report(store, tmp_path):
    folder, _ = store
    out = str(tmp_path / "index.html")
    with open(out, "w") as fh:
        fh.write("previous")
    with pytest.raises(InputError):
        build_report([folder], out_path=out, reference_env="nope")
    assert open(out).read() == "previous"
    assert os.listdir(str(tmp_path)) == ["index.html"]  # no temporary file, no figures


def test_unreadable_env_file_is_a_problem_not_a_failure(tmp_path):
    write_jsonl(str(tmp_path / "torch-2.1.jsonl"), [record()])
    with open(str(tmp_path / "torch-2.1.env.json"), "w") as fh:
        fh.write("{broken")
    result = build_report([str(tmp_path)], out_path=str(tmp_path / "out" / "r.html"))
    assert any("torch-2.1.env.json: not a readable JSON environment file" in p for p in result["problems"])


def test_html_escapes_text_from_records(tmp_path):
    write_jsonl(str(tmp_path / "a.jsonl"), [record(model="<b>evil</b>", status="error", reason="<script>x</script>")])
    out = str(tmp_path / "r.html")
    build_report([str(tmp_path / "a.jsonl")], out_path=out)
    text = open(out, encoding="utf-8").read()
    assert "<b>evil</b>" not in text.replace("<\\/b>", "") and "&lt;b&gt;evil&lt;/b&gt;" in text
    assert "<script>x</script>" not in text


def test_edge_inputs_still_build(tmp_path):
    """Only failures; one environment; records without accuracy or probes; list sizes."""
    only_bad = [record(model="a", status="crashed", reason="worker died: signal 9 (SIGKILL)"),
                record(model="b", status="timeout", reason="case exceeded its 60 s budget")]
    write_jsonl(str(tmp_path / "bad" / "torch-2.1.jsonl"), only_bad)
    result = build_report([str(tmp_path / "bad")], out_path=str(tmp_path / "bad.html"))
    text = open(str(tmp_path / "bad.html"), encoding="utf-8").read()
    assert result["records"] == 2 and "signal 9 (SIGKILL)" in text and "No case ran ok" in text
    assert "No ok records in this slice to draw" in text
    plain = record(model="c")
    del plain["accuracy"]
    listed = record(model="d", size=[64, 32])
    write_jsonl(str(tmp_path / "one" / "torch-2.1.jsonl"), [plain, listed])
    result = build_report([str(tmp_path / "one")], out_path=str(tmp_path / "one.html"))
    text = open(str(tmp_path / "one.html"), encoding="utf-8").read()
    assert result["records"] == 2 and result["reference_env"] == "torch-2.1"
    assert "No output sketches or probes to compare" in text and "64x32" in text


def test_importing_the_report_does_not_import_torch():
    code = ("import sys; import harness.analysis.report, tests.analysis.report_synth; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# ------------------------------------------------------------------ comparison


def test_baseline_comparison_section(tmp_path):
    base = [record(model="a", median_s=0.010), record(model="b", median_s=0.010), record(model="gone")]
    cand = [record(model="a", median_s=0.015, peak=2000), record(model="b", median_s=0.010), record(model="new")]
    write_jsonl(str(tmp_path / "base" / "torch-2.1.jsonl"), base)
    write_jsonl(str(tmp_path / "cand" / "torch-2.1.jsonl"), cand)
    out = str(tmp_path / "r.html")
    build_report([str(tmp_path / "cand")], out_path=out, baseline_paths=[str(tmp_path / "base")])
    text = open(out, encoding="utf-8").read()
    assert 'id="compare"' in text and 'id="tm-compare"' in text and "No significance test" in text
    assert "Baseline: 3 records from" in text and '<a href="#compare">Comparison</a>' in text


def test_verdicts_are_shown(store, tmp_path):
    folder, _ = store
    raw, _ = load_records([folder])
    rec = raw.iloc[0]
    verdicts = [{"case_key": rec["case_key"], "env_fingerprint": rec["env_fingerprint"], "kind": "time",
                 "verdict": "regressed", "baseline": 0.01, "candidate": 0.02, "ratio": 2.0, "p_value": 1e-5,
                 "q_value": 1e-4, "reason": "2.0x slower, p=1e-5"},
                {"case_key": "x", "env_fingerprint": "y", "kind": "status", "verdict": "vanished",
                 "baseline": "ok", "candidate": None, "ratio": None, "reason": "no candidate record"}]
    out = str(tmp_path / "r.html")
    build_report([folder], out_path=out, verdicts=verdicts)
    text = open(out, encoding="utf-8").read()
    assert "1 regression" in text and 'id="tm-verdicts"' in text and "10 ms" in text
    build_report([folder], out_path=out, verdicts=[])  # a gate with nothing to say still gets its section
    assert "No regression" in open(out, encoding="utf-8").read()
    with pytest.raises(InputError, match="verdict 1 has no kind"):
        build_report([folder], out_path=out, verdicts=[verdicts[0], {"case_key": "x", "env_fingerprint": "y",
                                                                     "verdict": "new"}])
