"""``report.figures``: the matplotlib charts, their inline SVG and their SVG and PNG files."""
import os
import re

import pandas as pd
import pytest

from harness.analysis.report import figures

ENVS = ["torch-1.10", "torch-2.0", "torch-latest"]


def _series(values, sizes=None):
    """A ``release_series``-like frame: {model: [value per env, None where missing]}."""
    rows = []
    for model, vals in values.items():
        for env, v in zip(ENVS, vals):
            if v is not None:
                rows.append({"model": model, "batch_size": 8, "size_label": (sizes or {}).get(model, "32"),
                             "env": env, "median_s": v, "peak_mem_bytes": v * 2 ** 30})
    out = pd.DataFrame(rows)
    out["env"] = pd.Categorical(out["env"], categories=ENVS, ordered=True)
    return out


def _texts(svg):
    return [t.strip() for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


def test_release_chart_labels_the_axis_by_environment_and_names_each_model():
    chart = figures.release_chart(_series({"a": [0.010, 0.012, 0.011], "b": [0.002, None, 0.002]}), "median_s",
                                  1e3, "speed_by_release", "Median step time", "median time (ms)", ENVS,
                                  "torch-latest", "Slice: here")
    texts = _texts(chart.svg)
    for env in ENVS:
        assert texts.count(env) == 2  # both panels
    assert "a (batch 8, size 32)" in texts and "b (batch 8, size 32)" in texts
    assert "median time (ms)" in texts and "Slice: here" in texts
    assert chart.name == "speed_by_release" and "Median step time" in chart.title


def test_wide_ranges_get_a_log_scale():
    narrow = figures.release_chart(_series({"a": [1.0, 2.0, 3.0]}), "median_s", 1.0, "n", "t", "y", ENVS,
                                   "torch-latest", "")
    wide = figures.release_chart(_series({"a": [1.0, 2.0, 3.0], "b": [100.0, 90.0, 80.0]}), "median_s", 1.0, "w",
                                 "t", "y", ENVS, "torch-latest", "")
    assert narrow.figure.axes[0].get_yscale() == "linear"
    assert wide.figure.axes[0].get_yscale() == "log"
    assert figures.release_chart(_series({"a": [None, None, 0.0]}), "median_s", 1.0, "e", "t", "y", ENVS,
                                 "torch-latest", "") is None


def test_tradeoff_chart_plots_each_model_and_mode():
    trade = pd.DataFrame({"model": ["a", "a", "b"], "checkpoint": ["reentrant", "non_reentrant", "reentrant"],
                          "mem_saved": [0.55, 0.5, 0.4], "time_cost": [0.35, 0.28, 0.2], "n": [3, 3, 3]})
    chart = figures.tradeoff_chart(trade)
    texts = _texts(chart.svg)
    assert "reentrant" in texts and "non-reentrant" in texts and "+20%" in texts
    assert "time added per step (median)" in texts and "peak memory saved (median)" in texts
    assert figures.tradeoff_chart(trade.assign(mem_saved=float("nan"))) is None


def test_inline_svg_is_scalable_with_ids_of_its_own():
    chart = figures.release_chart(_series({"a": [1.0, 2.0, 3.0]}), "median_s", 1.0, "speed_by_release", "t", "y",
                                  ENVS, "torch-latest", "")
    html = figures.inline(chart)
    assert html.startswith('<figure class="figure" id="fig-speed_by_release"><svg') and "<?xml" not in html
    assert 'role="img"' in html and "max-width:" in html and 'width="' not in html.split(">")[1]
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert all(i.startswith("fig-speed_by_release") for i in ids)
    refs = re.findall(r'(?:href="#|url\(#)([^")]+)', html)
    assert refs and set(refs) <= set(ids)


def test_files_are_written_as_svg_and_png(tmp_path):
    chart = figures.tradeoff_chart(pd.DataFrame({"model": ["a"], "checkpoint": ["reentrant"], "mem_saved": [0.5],
                                                 "time_cost": [0.3], "n": [1]}))
    folder = str(tmp_path / "figures")
    written = figures.write_files([chart], folder)
    assert [os.path.basename(p) for p in written] == ["checkpoint_tradeoff.svg", "checkpoint_tradeoff.png"]
    with open(written[1], "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(written[0], encoding="utf-8") as fh:
        assert fh.read() == chart.svg
    assert sorted(os.listdir(folder)) == ["checkpoint_tradeoff.png", "checkpoint_tradeoff.svg"]  # no temp files
    figures.write_files([], folder)
    assert os.listdir(folder) == []


@pytest.mark.parametrize("value, text", [(1500.0, "1,500"), (12.0, "12"), (0.25, "0.25"), (float("nan"), "")])
def test_tick_labels(value, text):
    assert figures._tick(value) == text
