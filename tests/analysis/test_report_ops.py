"""The per-op section (``op_compare``, ``sections/ops.py``, ``assets/ops.js``): a case profiled in two
environments, or in the baseline and the candidate, is compared op by op, the largest change of self time
first, with ops that only one side ran shown against a dash; every profiled case links to its trace folder
and file, relative to the page; a report without profiles has no such section."""
import json
import os
import re
import urllib.parse

import pytest

from harness.analysis.load import load_records
from harness.analysis.report import build_report, op_compare
from harness.analysis.report.frame import prepare_frame
from tests.analysis.test_report_support import record, write_jsonl

KEY = "model=cbam_classifier_tiny;mode=train;batch=8;size=64;precision=amp_bf16;checkpoint=none;device=cpu"


def _op(name, self_s, calls=24.0, shapes=None, cuda=None):
    return {"name": name, "calls_per_step": calls, "self_cpu_s": self_s, "self_cuda_s": cuda,
            "input_shapes": shapes}


OLD_OPS = [_op("aten::_slow_conv2d_backward", 0.249, shapes=[[8, 16, 32, 32], [8, 3, 64, 64], []]),
           _op("aten::_slow_conv2d_forward", 0.0938, shapes=[[8, 3, 64, 64], [16, 3, 7, 7]]),
           _op("aten::copy_", 0.00153, calls=338.0)]
NEW_OPS = [_op("aten::convolution_backward", 0.00411, shapes=[[8, 16, 32, 32], [8, 3, 64, 64], []]),
           _op("aten::mkldnn_convolution", 0.00194, shapes=[[8, 3, 64, 64], [16, 3, 7, 7]]),
           _op("aten::copy_", 0.000542, calls=232.0)]


def profiled(env, torch_v, ops, median_s, error=None, folder=None):
    """A record of the profiled case in ``env`` (its trace folder as the runner names it)."""
    rec = record(model="cbam_classifier_tiny", env=env, torch_v=torch_v, precision="amp_bf16", batch=8, size=64,
                 median_s=median_s)
    rec["case_key"] = KEY
    trace_dir = "profiles/%s/%s" % (env, folder or KEY.replace(";", ","))
    rec["profile"] = {"trace_dir": trace_dir, "trace_file": None if error else "%s.1.pt.trace.json" % env,
                      "schedule": "wait=1 warmup=1 active=3", "steps": 3, "activities": ["cpu"],
                      "ops": None if error else ops,
                      "self_cpu_total_s": None if error else sum(o["self_cpu_s"] for o in ops) * 1.05,
                      "self_cuda_total_s": None, "tool": "torch.profiler", "error": error, "wall_s": 0.5}
    return rec


def _store(folder, *recs):
    for env in dict.fromkeys(r["env_label"] for r in recs):
        write_jsonl(os.path.join(str(folder), env + ".jsonl"), [r for r in recs if r["env_label"] == env])
    return str(folder)


def test_op_changes_rank_by_the_largest_change_and_mark_ops_one_side_lacks():
    a = {o["name"]: o for o in OLD_OPS}
    b = {o["name"]: o for o in NEW_OPS}
    rows = op_compare.op_changes(a, b, "self_cpu_s")
    assert [r["name"] for r in rows] == ["aten::_slow_conv2d_backward", "aten::_slow_conv2d_forward",
                                         "aten::convolution_backward", "aten::mkldnn_convolution", "aten::copy_"]
    first = rows[0]
    assert first["a_s"] == 0.249 and first["b_s"] is None and first["ratio"] is None
    assert first["delta_s"] == pytest.approx(-0.249) and first["a_shapes"] == "[8, 16, 32, 32], [8, 3, 64, 64]"
    copy = rows[-1]
    assert copy["ratio"] == pytest.approx(0.000542 / 0.00153) and copy["a_calls"] == 338 and copy["b_calls"] == 232


def test_a_case_profiled_in_two_environments_is_compared_against_the_reference(tmp_path):
    store = _store(tmp_path / "s", profiled("torch-1.11", "1.11.0", OLD_OPS, 0.359),
                   profiled("torch-2.1", "2.1.2", NEW_OPS, 0.0118),
                   profiled("torch-1.10", "1.10.2", [], 0.3, error="RuntimeError: no profiler here"))
    df, notes = prepare_frame(load_records([store])[0])
    comps = op_compare.comparisons(df, notes["env_order"], "torch-2.1", None, str(tmp_path / "page"))
    assert len(comps) == 1  # the failed profile has no ops to compare
    (comp,) = comps
    assert (comp["a"]["label"], comp["b"]["label"]) == ("torch-1.11", "torch-2.1")
    assert comp["basis"] == "self CPU" and comp["title"] == "cbam_classifier_tiny train b8 s64 amp_bf16 ckpt=none cpu"
    assert comp["ops"][0]["name"] == "aten::_slow_conv2d_backward" and comp["ops"][0]["a_text"] == "249 ms"
    assert comp["ops"][0]["b_text"] == "\u2014" and comp["ops"][2]["b_text"] == "4.11 ms"
    assert comp["a"]["median_text"] == "359 ms" and comp["b"]["median_text"] == "11.8 ms"
    # links relative to the page, URL-quoted
    assert comp["a"]["href"] == "../s/profiles/torch-1.11/" + urllib.parse.quote(KEY.replace(";", ",")) + "/"
    assert comp["a"]["file_href"] == comp["a"]["href"] + "torch-1.11.1.pt.trace.json"
    # against an older reference the reference is A
    (older,) = op_compare.comparisons(df, notes["env_order"], "torch-1.11", None, None)
    assert (older["a"]["label"], older["b"]["label"]) == ("torch-1.11", "torch-2.1")
    profs = {p["env"]: p for p in op_compare.profiles(df, None)}
    assert profs["torch-1.10"]["error"] == "RuntimeError: no profiler here" and profs["torch-1.10"]["file_href"] == ""
    assert profs["torch-2.1"]["top"] == "aten::convolution_backward" and profs["torch-2.1"]["top_text"] == "4.11 ms"
    assert profs["torch-2.1"]["href"].startswith(os.path.abspath(store))


def test_a_gpu_profile_is_compared_by_self_cuda_time():
    gpu_a = {"name": "k", "self_cpu_s": 0.001, "self_cuda_s": 0.010}
    gpu_b = {"name": "k", "self_cpu_s": 0.002, "self_cuda_s": 0.005}
    rows = op_compare.op_changes({"k": gpu_a}, {"k": gpu_b}, "self_cuda_s")
    assert rows[0]["delta_s"] == pytest.approx(-0.005) and rows[0]["ratio"] == pytest.approx(0.5)


def test_the_report_compares_with_the_baseline_and_links_every_profiled_case(tmp_path):
    base = _store(tmp_path / "base", profiled("torch-2.1", "2.1.2", OLD_OPS, 0.359))
    cand = _store(tmp_path / "cand", profiled("torch-2.1", "2.1.2", NEW_OPS, 0.0118),
                  record(model="other", env="torch-2.1", torch_v="2.1.2"))
    out = tmp_path / "report" / "index.html"
    build_report([cand], out_path=str(out), baseline_paths=[base])
    text = out.read_text(encoding="utf-8")
    assert '<section id="ops">' in text and 'href="#ops">Ops<' in text
    data = json.loads(re.search(r'<script type="application/json" id="tm-ops">(.*?)</script>', text).group(1))
    (comp,) = data["comparisons"]
    assert (comp["a"]["label"], comp["b"]["label"]) == ("baseline torch-2.1", "torch-2.1")
    assert comp["a"]["href"].startswith("../base/profiles/torch-2.1/")
    assert comp["b"]["href"].startswith("../cand/profiles/torch-2.1/")
    assert [p["env"] for p in data["profiles"]] == ["torch-2.1"]  # the candidate's; the other case has none
    assert 'id="tm-op-changes"' in text and "data-tm-ops" in text


def test_a_report_without_profiles_has_no_per_op_section(tmp_path):
    store = _store(tmp_path / "s", record(env="torch-2.1"))
    out = tmp_path / "index.html"
    build_report([store], out_path=str(out))
    text = out.read_text(encoding="utf-8")
    assert '<section id="ops">' not in text and 'id="tm-ops"' not in text


def test_the_page_draws_the_comparison_and_the_links(tmp_path):
    browser_mod = pytest.importorskip("tests.analysis.test_report_browser")
    if browser_mod.CHROMIUM is None:
        pytest.skip("no chromium on PATH")
    store = _store(tmp_path / "s", profiled("torch-1.11", "1.11.0", OLD_OPS, 0.359),
                   profiled("torch-2.1", "2.1.2", NEW_OPS, 0.0118))
    out = tmp_path / "r" / "index.html"
    build_report([store], out_path=str(out))
    b = browser_mod.Browser()
    try:
        b.open(str(out))
        assert b.js("window.__tmErrors") == [] and b.problems() == []
        rows = b.js("[...document.querySelectorAll('#ops .op-cmp tbody tr')].map(r => [...r.cells].map(c => "
                    "c.textContent))")
        assert rows[0][:4] == ["aten::_slow_conv2d_backward", "249 ms", "\u2014", "-249 ms"]
        assert rows[2][:3] == ["aten::convolution_backward", "\u2014", "4.11 ms"]
        links = b.js("[...document.querySelectorAll('#ops a')].map(a => a.getAttribute('href'))")
        assert sum(1 for h in links if h.endswith(".pt.trace.json")) == 2
        assert all(h.startswith("../s/profiles/") for h in links)
        assert b.js("document.querySelectorAll('#tm-table-ops tbody tr').length") == 5
    finally:
        b.close()
