"""The report's FLOPs: per-case columns in the table of every case, the peaks and shares section,
and the figure of achieved FLOP/s under the measured peak."""
import json
import os
import re
from html import unescape

import pytest

from harness.analysis.report import build_report
from harness.analysis.report.build import make_context
from harness.analysis.report.flops_figure import NAME, flop_points, flops_chart
from harness.analysis.report.sections.flops import flops
from tests.analysis.test_report_support import record, write_jsonl

PEAKS = {"torch-1.10": {"float32": 1.8e11, "bfloat16": 1.1e11}, "torch-2.1": {"float32": 1.85e11, "bfloat16": 6.9e11}}


def flop_record(model, env, precision="fp32", mode="train", flops_per_iter=10 ** 8, median_s=0.01):
    torch_v = {"torch-1.10": "1.10.2", "torch-2.1": "2.1.2"}[env]
    rec = record(model=model, env=env, torch_v=torch_v, precision=precision, mode=mode, median_s=median_s)
    dtype = "float32" if precision == "fp32" else "bfloat16"
    matmul = {k: {"flops_per_s": v, "n": 2048, "repeats": 3, "seconds": 0.5} for k, v in PEAKS[env].items()}
    matmul["float16"] = {"error": "RuntimeError: \"addmm_impl_cpu_\" not implemented for 'Half'", "seconds": 0.01}
    achieved = flops_per_iter / median_s
    rec["flops"] = {"per_iter": flops_per_iter, "tool": "torch.profiler shapes (torchmatrix)", "covers": "c",
                    "achieved_per_s": achieved, "peak_dtype": dtype, "peak_per_s": PEAKS[env][dtype],
                    "peak_pct": 100.0 * achieved / PEAKS[env][dtype], "wall_s": 0.1}
    rec["roofline"] = {"device": "cpu", "threads": 1, "method": "m", "matmul": matmul, "wall_s": 1.5}
    return rec


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flops")
    for env in ("torch-1.10", "torch-2.1"):
        recs = [flop_record("a", env), flop_record("a", env, mode="eval", flops_per_iter=4 * 10 ** 7),
                flop_record("b", env, precision="amp_bf16", flops_per_iter=3 * 10 ** 8, median_s=0.2),
                record(model="c", env=env, torch_v="x", status="error", reason="boom")]
        write_jsonl(str(folder / ("%s.jsonl" % env)), recs)
    return str(folder)


def test_points_are_the_ok_records_with_a_count(tmp_path):
    path = write_jsonl(str(tmp_path / "torch-2.1.jsonl"), [flop_record("a", "torch-2.1"), record(model="z")])
    ctx, _ = make_context([path])
    pts = flop_points(ctx.df)
    assert list(pts["model"]) == ["a"] and pts["flops"].iloc[0] == 1e8 and pts["flops_per_s"].iloc[0] == 1e10
    assert pts["peak"].iloc[0] == 1.85e11 and pts["dtype"].iloc[0] == "float32"


def test_section_shows_the_peaks_shares_and_the_figure(store):
    ctx, _ = make_context([store])
    part = flops(ctx)
    text = unescape(re.sub(r"<[^>]+>", " ", part.body))
    assert "180 GFLOP/s" in text and "690 GFLOP/s" in text  # the measured peaks, per environment and dtype
    assert "not implemented for 'Half'" in unescape(part.body)  # float16 says why it has none
    # the share of the peak: train a (1e10 FLOP/s of 1.85e11) and eval a (4e9) -> median 3.8%, best 5.4%
    assert re.search(r"torch-2\.1\s+float32\s+2\s+3\.8%\s+5\.4%\s+a train", text), text
    assert re.search(r"torch-2\.1\s+bfloat16\s+1\s+0\.22%", text), text  # 1.5e9 of 6.9e11
    assert "torch.profiler shapes (torchmatrix)" in part.intro
    (chart,) = part.figures
    assert chart.name == NAME and "FLOPs per step" in chart.svg and "bfloat16" in chart.svg


def test_no_section_without_counts(tmp_path):
    path = write_jsonl(str(tmp_path / "torch-2.1.jsonl"), [record(model="a")])
    ctx, _ = make_context([path])
    assert flops(ctx) is None
    assert flops_chart(flop_points(ctx.df), ctx.envs, ctx.env_color) is None


def test_the_table_of_every_case_has_flops_columns_and_the_page_the_figure(store, tmp_path):
    out = str(tmp_path / "report" / "index.html")
    build_report([store], out)
    html = open(out, encoding="utf-8").read()
    assert '<section id="flops">' in html and 'id="fig-flops_roofline"' in html
    assert os.path.exists(str(tmp_path / "report" / "figures" / "flops_roofline.png"))
    block = re.search(r'<script type="application/json" id="tm-records">(.*?)</script>', html, re.S).group(1)
    data = json.loads(block)
    cols = {c["key"]: c for c in data["columns"]}
    assert cols["flops_per_iter"]["label"] == "FLOPs" and cols["flops_per_iter"]["fmt"] == "count"
    assert cols["flops_per_s"]["label"] == "FLOP/s" and cols["flops_per_s"]["fmt"] == "count"
    assert cols["flops_peak_pct"]["label"] == "% of peak" and cols["flops_peak_pct"]["fmt"] == "pct"
    values = [v for v in data["data"]["flops_per_iter"] if v is not None]
    assert sorted(set(values)) == [4e7, 1e8, 3e8]


def test_a_report_without_counts_removes_an_earlier_reports_flops_figure(store, tmp_path):
    out = str(tmp_path / "report" / "index.html")
    build_report([store], out)
    figure = tmp_path / "report" / "figures" / "flops_roofline.png"
    assert figure.exists()
    plain = write_jsonl(str(tmp_path / "plain" / "torch-2.1.jsonl"), [record(model="a")])
    build_report([plain], out)
    assert not figure.exists()
