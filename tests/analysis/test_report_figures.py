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


def test_release_chart_names_each_environment_and_each_model_once():
    chart = figures.release_chart(_series({"a": [0.010, 0.012, 0.011], "b": [0.002, None, 0.002]}), "median_s",
                                  1e3, "speed_by_release", "Median step time", "median time (ms)", ENVS,
                                  "torch-latest", "Slice: here")
    texts = _texts(chart.svg)
    assert [t for t in texts if t.startswith("torch-")] == ["torch-1.10", "torch-2.0", "torch-latest (ref)"]
    assert texts.count("a (batch 8, size 32)") == 1 and texts.count("b (batch 8, size 32)") == 1
    # ranked: the model that grew most against the reference on top (the last y tick)
    assert [t.get_text() for t in chart.figure.axes[0].get_yticklabels()] == ["b (batch 8, size 32)",
                                                                               "a (batch 8, size 32)"]
    assert "median time (ms)" in texts and "Slice: here" in texts
    assert chart.name == "speed_by_release" and "Median step time" in chart.title


def test_wide_ranges_get_a_log_scale():
    narrow = figures.release_chart(_series({"a": [1.0, 2.0, 3.0]}), "median_s", 1.0, "n", "t", "y", ENVS,
                                   "torch-latest", "")
    wide = figures.release_chart(_series({"a": [1.0, 2.0, 3.0], "b": [100.0, 90.0, 80.0]}), "median_s", 1.0, "w",
                                 "t", "y", ENVS, "torch-latest", "")
    assert narrow.figure.axes[0].get_xscale() == "linear"
    assert wide.figure.axes[0].get_xscale() == "log"
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


def test_every_model_label_is_visible_on_the_png_at_26_models(tmp_path):
    """Read from the renderer where each label is drawn, then look at those pixels of the written PNG."""
    import matplotlib.image
    import numpy as np

    models = {"model_%02d_%s" % (i, "x" * (i % 7)): [0.01 * (i + 1), 0.011 * (i + 1), 0.012 * (i + 1)]
              for i in range(26)}
    series = _series(models)
    series = series.assign(tensor_peak_bytes=series["peak_mem_bytes"] / 2, mem_basis="tensor peak")
    chart = figures.release_chart(series, "tensor_peak_bytes", 1.0 / 2 ** 20, "memory_by_release", "Peak memory",
                                  "MiB", ENVS, "torch-latest", "", basis_column="mem_basis", beside="peak_mem_bytes",
                                  beside_label="process peak")
    png = [p for p in figures.write_files([chart], str(tmp_path)) if p.endswith(".png")][0]
    image = matplotlib.image.imread(png)
    fig = chart.figure
    renderer = fig.canvas.get_renderer()
    labels = fig.axes[0].get_yticklabels()
    assert sorted(t.get_text().split(" (")[0] for t in labels) == sorted(models)  # each model once
    scale = figures.PNG_DPI / fig.dpi
    boxes = [t.get_window_extent(renderer) for t in labels]
    height, width = image.shape[:2]
    for box, label in zip(boxes, labels):
        x0, x1 = int(box.x0 * scale), int(np.ceil(box.x1 * scale))
        y0, y1 = height - int(np.ceil(box.y1 * scale)), height - int(box.y0 * scale)
        assert 0 <= x0 and x1 <= width and 0 <= y0 and y1 <= height, label.get_text()
        ink = image[y0:y1, x0:x1, :3].min(axis=2) < 0.6
        assert ink.any(axis=0).mean() > 0.5, label.get_text()  # text drawn along most of its box
    for a, b in zip(boxes, boxes[1:]):
        assert not a.overlaps(b)
    colors = [h.get_color() for h in fig.legends[0].legend_handles[:len(ENVS)]]
    assert len(set(colors)) == len(colors)
    assert figures.env_colors(14) == list(dict.fromkeys(figures.env_colors(14)))  # past ten, still none repeated


def test_an_interval_is_drawn_as_a_line_through_its_dot_in_both_panels():
    from matplotlib.collections import LineCollection

    series = _series({"a": [1.0, 2.0, 3.0], "b": [2.0, 2.0, 2.0]})
    series = series.assign(lo=series["median_s"] * 0.9, hi=series["median_s"] * 1.1)
    series.loc[series["model"] == "b", ["lo", "hi"]] = float("nan")  # single-run: no interval
    chart = figures.release_chart(series, "median_s", 1.0, "speed_by_release", "t", "y", ENVS, "torch-latest", "",
                                  interval=("lo", "hi"))
    for ax, ref in zip(chart.figure.axes, (1.0, 3.0)):
        lines = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert len(lines) == 1 and len(lines[0].get_segments()) == 3  # model a's three environments
        assert sorted(round(s[0][0] * ref, 6) for s in lines[0].get_segments()) == [0.9, 1.8, 2.7]
