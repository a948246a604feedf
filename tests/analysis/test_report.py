"""The HTML report: data aggregations, bad inputs, comparison, payload encoding, output file."""
import json
import math
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from harness import SCHEMA_VERSION
from harness.analysis import report_data as rd
from harness.analysis.load import InputError, load_records
from harness.analysis.report import build_report
from harness.analysis.report_payload import Column, encode_dataset, round_sig
from harness.analysis.report_synth import ENVS, MODELS, write_synthetic_store

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = dict(models=MODELS[:6], modes=("train", "eval"), precisions=("fp32", "amp_bf16", "fp16"),
             checkpoints=("none", "reentrant", "non_reentrant"), devices=("cpu",), batches=(1, 8, 32), n_sizes=2)


def _record(model="m", env="torch-2.1", torch_v="2.1.2", status="ok", median_s=0.01, peak=1000, precision="fp32",
            checkpoint="none", mode="train", batch=8, size=32, reason=None, probe=None, passed=True, rel_err=1e-7,
            fingerprint=None, time_utc="2026-01-01T00:00:00Z", tol=1e-5):
    case = {"model": model, "mode": mode, "batch_size": batch, "size": size, "precision": precision,
            "checkpoint": checkpoint, "device": "cpu", "channels_last": False, "compile": False}
    rec = {"schema_version": SCHEMA_VERSION, "run_id": "r1", "time_utc": time_utc, "scenario": "unit",
           "env_label": env, "case_key": "%s|%s|%d|%s|%s|%s|cpu" % (model, mode, batch, size, precision, checkpoint),
           "case": case, "env": {"torch": torch_v, "python": "3.11.7", "numpy": "1.26.4", "cuda": None,
                                 "fingerprint": fingerprint or "fp-" + env, "git_commit": "abc"},
           "status": status, "reason": reason, "duration_s": 1.0}
    if status == "ok":
        rec["timing"] = {"samples_s": [median_s] * 5, "median_s": median_s, "iqr_s": median_s * 0.1,
                         "throughput_per_s": batch / median_s}
        rec["memory"] = {"peak_bytes": peak, "method": "linux_vmhwm"}
        rec["accuracy"] = {"outputs": {"rel_err": rel_err, "max_abs_err": rel_err, "cosine": 1.0}, "grads": None,
                           "tolerance": tol, "passed": passed, "failures": [] if passed else ["outputs"],
                           "output_probe": probe}
    return rec


def _write(path, records, extra_lines=()):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
        for line in extra_lines:
            fh.write(line)
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    paths = write_synthetic_store(str(out), failure_rate=0.06, **SMALL)
    return str(out), paths


@pytest.fixture(scope="module")
def built(store, tmp_path_factory):
    folder, _ = store
    out = str(tmp_path_factory.mktemp("report") / "index.html")
    result = build_report([folder], out_path=out)
    with open(out, encoding="utf-8") as fh:
        return result, fh.read()


@pytest.fixture(scope="module")
def prepared(store):
    folder, _ = store
    raw, _ = load_records([folder])
    return rd.prepare_frame(raw)


# ------------------------------------------------------------------ the built file


def test_report_is_one_offline_file_with_every_section(built):
    result, text = built
    assert set(result) >= {"out_path", "records", "problems", "seconds"}
    assert result["records"] == 6 * 2 * 3 * 3 * 3 * 2 * len(ENVS)
    assert result["problems"] == []
    for ident in ("glance", "run", "compat", "speed", "memory", "accuracy", "failures", "all"):
        assert 'id="%s"' % ident in text
    assert 'id="compare"' not in text  # no baseline given
    # nothing loaded from anywhere: no src/href to a URL, no CSS imports or url() fetches
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", text, re.I)
    assert "<link" not in text and "<img" not in text
    assert "default-src 'none'" in text  # the page forbids every fetch itself
    assert len(text.encode()) < 2_000_000


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


def test_parse_torch_version_orders_releases():
    order = ["garbage", "1.9.1", "1.10.2+cu102", "1.13.1", "2.0.1+cu117", "2.1.0a0+git1234", "2.1.0", "2.1.2",
             "2.13.0+cpu"]
    assert sorted(order, key=rd.parse_torch_version) == order
    assert rd.parse_torch_version(None) == (-1,)
    assert rd.parse_torch_version("2.2.0.dev20231010+cpu") < rd.parse_torch_version("2.2.0")


def test_reference_env_can_be_chosen_and_unknown_is_refused(store, tmp_path):
    folder, _ = store
    out = str(tmp_path / "r.html")
    result = build_report([folder], out_path=out, reference_env="torch-1.12")
    assert result["reference_env"] == "torch-1.12"
    with pytest.raises(InputError, match=r"torch-9\.9.*torch-1\.10"):
        build_report([folder], out_path=str(tmp_path / "other.html"), reference_env="torch-9.9")
    assert not os.path.exists(str(tmp_path / "other.html"))  # nothing half-written


# ------------------------------------------------------------------ bad inputs


def test_bad_lines_are_named_by_file_and_line_and_good_records_still_reported(tmp_path):
    good = [_record(model="a"), _record(model="b", status="error", reason="RuntimeError: boom")]
    bad_file = _write(str(tmp_path / "in" / "torch-2.1.jsonl"), good, extra_lines=[
        json.dumps(dict(_record(model="c"), schema_version=SCHEMA_VERSION + 98)) + "\n",
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
    assert "4 input problems" in text
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
    path = _write(str(tmp_path / "x.jsonl"), [], extra_lines=["{not json\n"])
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
    assert os.listdir(str(tmp_path)) == ["index.html"]  # no temporary file left behind


def test_unreadable_env_file_is_a_problem_not_a_failure(tmp_path):
    _write(str(tmp_path / "torch-2.1.jsonl"), [_record()])
    with open(str(tmp_path / "torch-2.1.env.json"), "w") as fh:
        fh.write("{broken")
    result = build_report([str(tmp_path)], out_path=str(tmp_path / "out" / "r.html"))
    assert any("torch-2.1.env.json: not a readable JSON environment file" in p for p in result["problems"])


# ------------------------------------------------------------------ aggregations


def test_latest_record_per_case_and_env_wins_and_two_machines_stay_apart(tmp_path):
    recs = [_record(median_s=0.5, time_utc="2026-01-01T00:00:00Z"),
            _record(median_s=0.1, time_utc="2026-01-02T00:00:00Z")]
    _write(str(tmp_path / "a.jsonl"), recs)
    raw, _ = load_records([str(tmp_path / "a.jsonl")])
    df, notes = rd.prepare_frame(raw)
    assert len(df) == 1 and notes["superseded"] == 1 and df["median_s"].iloc[0] == 0.1
    # the same label and case from two machines (fingerprints) are two environments
    other = [_record(median_s=0.2, fingerprint="machine-b")]
    _write(str(tmp_path / "b.jsonl"), other)
    raw, _ = load_records([str(tmp_path / "b.jsonl"), str(tmp_path / "a.jsonl")])
    df, notes = rd.prepare_frame(raw)
    assert len(notes["env_order"]) == 2
    assert all(e.startswith("torch-2.1 @") for e in notes["env_order"])


def test_status_counts_and_reasons_per_model_and_env(tmp_path):
    recs = [_record(model="a"), _record(model="a", batch=16),
            _record(model="a", batch=32, status="unsupported", reason="no bf16 here"),
            _record(model="a", env="torch-1.10", torch_v="1.10.2", status="crashed", reason="signal 11")]
    _write(str(tmp_path / "a.jsonl"), recs)
    df, _ = rd.prepare_frame(load_records([str(tmp_path / "a.jsonl")])[0])
    counts = rd.status_counts(df, ["model", "env"])
    assert counts.loc[("a", "torch-2.1"), "ok"] == 2
    assert counts.loc[("a", "torch-2.1"), "unsupported"] == 1
    assert counts.loc[("a", "torch-1.10"), "crashed"] == 1
    reasons = rd.top_reasons(df, ["model", "env"])
    assert reasons[("a", "torch-2.1")] == [("unsupported", "no bf16 here", 1)]


def test_speed_relative_to_reference_finds_the_planted_regression(prepared):
    df, _ = prepared
    ratios = rd.ratios_vs_reference(df, "torch-latest")
    table = rd.geomean_table(ratios, "speed_ratio", ["model", "env"])
    # graph_vae runs at 0.7 x on torch-2.1; torch-2.1 is 1.12 and latest 1.15 as fast otherwise
    assert table.loc[("graph_vae", "torch-2.1"), "geomean"] == pytest.approx(0.7 * 1.12 / 1.15, rel=0.04)
    assert table.loc[("cbam_classifier_tiny", "torch-2.1"), "geomean"] == pytest.approx(1.12 / 1.15, rel=0.04)
    assert table.loc[("graph_vae", "torch-latest"), "geomean"] == pytest.approx(1.0)
    mem = rd.geomean_table(ratios, "mem_ratio", ["env"])
    assert mem["geomean"].tolist() == pytest.approx([1.0] * len(mem))


def test_checkpoint_tradeoff_pairs_each_case_with_its_unchekpointed_twin(prepared):
    df, _ = prepared
    trade = rd.checkpoint_tradeoff(df).set_index(["model", "checkpoint"])
    # synthetic: reentrant keeps 45% of memory at 1.35x time, non-reentrant 50% at 1.28x
    row = trade.loc[("graph_vae", "reentrant")]
    assert row["mem_saved"] == pytest.approx(0.55, abs=0.01)
    assert row["time_cost"] == pytest.approx(0.35, abs=0.05)
    assert trade.loc[("graph_vae", "non_reentrant"), "mem_saved"] == pytest.approx(0.5, abs=0.01)
    assert "torch-1.10" not in trade.loc[("graph_vae", "non_reentrant"), "by_env"]  # unsupported on 1.10


def test_drift_compares_fp32_probes_with_the_reference(prepared):
    df, _ = prepared
    drift = rd.drift_table(df, "torch-latest")
    worst = drift.groupby(["model", "env"], observed=True)["drift"].max()
    assert worst[("mswr_net_v2", "torch-2.1")] > 1e-3  # planted
    assert worst[("mswr_net_v2", "torch-1.13")] < 1e-6
    assert worst[("cbam_classifier_tiny", "torch-latest")] == 0.0


def test_probe_drift_definition():
    assert rd.probe_drift([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert rd.probe_drift([1.0, 2.2], [1.0, 2.0]) == pytest.approx(0.1)
    assert rd.probe_drift([1.0], [1.0, 2.0]) == math.inf
    assert rd.probe_drift([float("nan"), 1.0], [1.0, 1.0]) == math.inf


def test_fidelity_counts_failures_against_tolerance(prepared):
    df, _ = prepared
    fid = rd.fidelity_table(df, ["precision", "model"]).set_index(["precision", "model"])
    assert fid.loc[("fp16", "colorization_paper"), "failed"] > 0  # planted: error 1.5-4x tolerance
    assert fid.loc[("fp16", "colorization_paper"), "worst"] > 1.5
    assert fid.loc[("fp32", "graph_vae"), "worst"] < fid.loc[("fp16", "colorization_paper"), "worst"]


def test_failure_groups_ignore_numbers_and_order_by_severity(tmp_path):
    recs = [_record(model="a", batch=b, status="oom", reason="CUDA out of memory. Tried to allocate %.2f GiB" % g)
            for b, g in ((1, 2.0), (2, 4.5), (4, 1.25))]
    recs += [_record(model="b", status="crashed", reason="worker died: signal 11 (SIGSEGV)"),
             _record(model="c", status="error", reason='Traceback (most recent call last):\n  File "x", line 1\n'
                                                       "ValueError: shapes differ"),
             _record(model="d", passed=False, rel_err=1e-3)]
    _write(str(tmp_path / "a.jsonl"), recs)
    df, _ = rd.prepare_frame(load_records([str(tmp_path / "a.jsonl")])[0])
    groups = rd.failure_groups(df)
    assert [g["status"] for g in groups] == ["crashed", "error", "oom", "accuracy"]
    assert groups[2]["count"] == 3 and groups[2]["models"] == ["a"]
    assert groups[1]["reason"] == "ValueError: shapes differ"  # the exception line of the traceback
    assert "Traceback" in groups[1]["full"]
    assert "100x" in groups[3]["reason"]


# ------------------------------------------------------------------ comparison


def test_baseline_comparison_shows_ratios_and_status_changes(tmp_path):
    base = [_record(model="a", median_s=0.010), _record(model="b", median_s=0.010),
            _record(model="c", median_s=0.010), _record(model="gone")]
    cand = [_record(model="a", median_s=0.015, peak=2000), _record(model="b", median_s=0.010),
            _record(model="c", status="error", reason="boom"), _record(model="new")]
    _write(str(tmp_path / "base" / "torch-2.1.jsonl"), base)
    _write(str(tmp_path / "cand" / "torch-2.1.jsonl"), cand)
    cdf, _ = rd.prepare_frame(load_records([str(tmp_path / "cand")])[0])
    bdf, _ = rd.prepare_frame(load_records([str(tmp_path / "base")])[0])
    comp = rd.compare_with_baseline(cdf, bdf).set_index("model")
    assert comp.loc["a", "time_ratio"] == pytest.approx(1.5) and comp.loc["a", "mem_ratio"] == pytest.approx(2.0)
    assert comp.loc["a", "change"] == "slower" and comp.loc["b", "change"] == "same"
    assert comp.loc["c", "change"] == "status"
    assert comp.loc["gone", "change"] == "vanished" and comp.loc["new", "change"] == "new"
    out = str(tmp_path / "r.html")
    build_report([str(tmp_path / "cand")], out_path=out, baseline_paths=[str(tmp_path / "base")])
    text = open(out, encoding="utf-8").read()
    assert 'id="compare"' in text and "tm-compare" in text and "No significance test" in text


def test_verdicts_are_shown_and_validated(store, tmp_path):
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
    assert "1 regression" in text and "tm-verdicts" in text
    frame = rd.verdicts_frame(verdicts, rd.prepare_frame(raw)[0])
    assert frame.loc[0, "model"] == rec["model"] and frame.loc[0, "env_label"] == rec["env_label"]
    build_report([folder], out_path=out, verdicts=[])  # a gate with nothing to say still gets its section
    assert "No regression" in open(out, encoding="utf-8").read()
    with pytest.raises(InputError, match="verdict 1 has no kind"):
        rd.verdicts_frame([verdicts[0], {"case_key": "x", "env_fingerprint": "y", "verdict": "new"}])
    with pytest.raises(InputError, match="verdict 0: verdict 'worse' is not one of"):
        rd.verdicts_frame([dict(verdicts[0], verdict="worse")])


# ------------------------------------------------------------------ payload


def test_round_sig_keeps_short_decimals():
    values = round_sig([12.3456789, 0.000123456, 123456.7, 0.0, float("nan"), -3.14159], 4)
    assert json.dumps([None if v != v else v for v in values.tolist()]) == \
        "[12.35, 0.0001235, 123500.0, 0.0, null, -3.142]"


def test_encoded_dataset_decodes_to_the_frame():
    frame = pd.DataFrame({"key": ["k1", "k2", "k1", "k3"], "model": ["b", "a", "b", "a"],
                          "env": ["t-2", "t-1", "t-1", None], "ms": [1.23456, None, 3.0, float("inf")],
                          "bs": [8, 16, 8, None]})
    text = encode_dataset(frame, [Column("model", "model", ref="case"), Column("bs", "batch", kind="int", ref="case"),
                                  Column("env", "env", order=["t-1", "t-2"]), Column("ms", "ms", kind="num", digits=3)],
                          ref_key="key")
    data = json.loads(text)
    assert data["n"] == 4 and data["dicts"]["env"] == ["t-1", "t-2"]
    case = data["refidx"]["case"]
    models = [data["dicts"]["model"][data["refs"]["case"]["model"][c]] for c in case]
    assert models == ["b", "a", "b", "a"]
    assert [data["refs"]["case"]["bs"][c] for c in case] == [8, 16, 8, None]
    assert [None if c < 0 else data["dicts"]["env"][c] for c in data["data"]["env"]] == ["t-2", "t-1", "t-1", None]
    assert data["data"]["ms"] == [1.23, None, 3, None]


def test_embedded_json_cannot_close_its_script_tag():
    frame = pd.DataFrame({"reason": ["</script><script>alert(1)</script>", "<!-- x"]})
    text = encode_dataset(frame, [Column("reason", "reason", kind="text")])
    assert "</" not in text and "<!--" not in text
    assert "</script><script>alert(1)</script>" in json.loads(text)["dicts"]["reason"]


def test_html_escapes_text_from_records(tmp_path):
    _write(str(tmp_path / "a.jsonl"), [_record(model="<b>evil</b>", status="error", reason="<script>x</script>")])
    out = str(tmp_path / "r.html")
    build_report([str(tmp_path / "a.jsonl")], out_path=out)
    text = open(out, encoding="utf-8").read()
    assert "<b>evil</b>" not in text.replace("<\\/b>", "") and "&lt;b&gt;evil&lt;/b&gt;" in text
    assert "<script>x</script>" not in text


def test_importing_the_report_does_not_import_torch():
    code = ("import sys; import harness.analysis.report, harness.analysis.report_synth; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_edge_inputs_still_build(tmp_path):
    """Only failures; one environment; records without accuracy or probes; list sizes."""
    only_bad = [_record(model="a", status="crashed", reason="worker died: signal 9 (SIGKILL)"),
                _record(model="b", status="timeout", reason="case exceeded its 60 s budget")]
    _write(str(tmp_path / "bad" / "torch-2.1.jsonl"), only_bad)
    result = build_report([str(tmp_path / "bad")], out_path=str(tmp_path / "bad.html"))
    text = open(str(tmp_path / "bad.html"), encoding="utf-8").read()
    assert result["records"] == 2 and "signal 9 (SIGKILL)" in text and "No case ran ok" in text
    plain = _record(model="c")
    del plain["accuracy"]
    listed = _record(model="d", size=[64, 32])
    _write(str(tmp_path / "one" / "torch-2.1.jsonl"), [plain, listed])
    result = build_report([str(tmp_path / "one")], out_path=str(tmp_path / "one.html"))
    text = open(str(tmp_path / "one.html"), encoding="utf-8").read()
    assert result["records"] == 2 and result["reference_env"] == "torch-2.1"
    assert "No output probes to compare" in text and "64x32" in text


def test_matrix_expansion_lists_the_reasons(built):
    _, text = built
    matrix = text[text.index('id="compat"'):text.index('id="speed"')]
    assert 'class="child why"' in matrix and "most frequent reasons" in matrix
    assert "non-reentrant checkpointing" in matrix and "on torch-1.10" in matrix


def test_parallel_load_gives_the_rows_and_problems_of_load_records(store, tmp_path):
    from harness.analysis.report_load import UNUSED_COLUMNS, load_for_report

    folder, paths = store
    for path in paths:  # a copy with a bad line in one file
        with open(path, encoding="utf-8") as src, open(str(tmp_path / os.path.basename(path)), "w") as dst:
            dst.write(src.read())
    with open(str(tmp_path / "torch-2.0.jsonl"), "a") as fh:
        fh.write('{"truncated')
    expected, expected_problems = load_records([str(tmp_path)])
    expected = expected.drop(columns=list(UNUSED_COLUMNS))
    got, problems = load_for_report([str(tmp_path)], workers=2, min_bytes=0)
    assert problems == expected_problems and len(problems) == 1
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    # a file without any good record: load_records words the whole input's problems
    _write(str(tmp_path / "torch-0.jsonl"), [], extra_lines=["nope\n"])
    expected_problems = load_records([str(tmp_path)])[1]
    assert load_for_report([str(tmp_path)], workers=2, min_bytes=0)[1] == expected_problems
