"""``report.paired``: wall-time differences between environments with their interval over paired rounds,
and where the heatmap, the at-a-glance cards and the upgrade view show them. Synthetic stores (seeded),
never timing."""
import math
import re

import numpy as np
import pytest
from scipy import stats

from harness.analysis.load import load_records
from harness.analysis.report import heatmap, paired
from harness.analysis.report import upgrade as up
from harness.analysis.report.build import build_report
from harness.analysis.report.frame import prepare_frame
from harness.measures import default_thresholds
from tests.analysis.report_synth import ENVS, write_synthetic_store

REF = "torch-latest"
#: The newest torch a second time, as a second variant (the A/A and the planted slowdown).
TWIN = ("torch-latest-b",) + ENVS[-1][1:]
#: 12 models x 5 precisions = 60 heatmap cells of 4 cases each (2 modes x 2 batch sizes).
SHAPE = dict(devices=("cpu",), batches=(4, 8), n_sizes=1, checkpoints=("none",), failure_rate=0.0, skipped_envs=())
#: A fresh worker's own speed per case and round: ~3% (the process is the unit of replication).
NOISE = 0.03


def _store(tmp_path, slowdown=1.0, seed=0, **kwargs):
    options = dict(SHAPE, rounds=3, engine=True, case_round_spread=NOISE, seed=seed)
    options.update(kwargs)
    paths = write_synthetic_store(str(tmp_path / "store"), envs=(ENVS[-1], TWIN),
                                  speed_factors={TWIN[0]: 1.0 / slowdown}, **options)
    return paths


def _frame(paths):
    return prepare_frame(load_records(paths)[0])[0]


# ------------------------------------------------------------------ the statistics


def test_the_t_interval_is_student_s():
    x = [0.10, 0.07, 0.12]
    mean, lo, hi, p = paired.t_interval(x)
    assert mean == pytest.approx(np.mean(x))
    assert p == pytest.approx(stats.ttest_1samp(x, 0.0).pvalue)
    half = stats.t.ppf(0.975, 2) * np.std(x, ddof=1) / math.sqrt(3)
    assert (lo, hi) == pytest.approx((mean - half, mean + half))
    assert all(math.isnan(v) for v in paired.t_interval([0.1]))  # one round: no interval
    assert paired.t_interval([0.05, 0.05])[1:] == (0.05, 0.05, 0.0)  # alike: zero width


def test_a_group_averages_its_cases_per_round_then_tests_over_rounds():
    import pandas as pd

    rows = [("a", "m", "fp32", "train", "e", r, v) for r, v in ((1, 0.1), (2, 0.2), (3, 0.3))]
    rows += [("b", "m", "fp32", "train", "e", r, v) for r, v in ((1, 0.3), (2, 0.2), (3, 0.1))]
    rows += [("c", "m", "fp32", "train", "e", 1, 5.0)]  # one round only: left out of the per-round means
    out = paired.intervals(pd.DataFrame(rows, columns=paired.RATIO_COLUMNS), ["env"]).iloc[0]
    assert out["paired_cases"] == 2 and out["paired_rounds"] == 3
    assert out["log_mean"] == pytest.approx(0.2) and out["lo"] == pytest.approx(out["hi"])  # every round 0.2


def test_a_cell_separates_the_rounds_shared_shift_from_its_cases_own_noise():
    """Two cells of one environment, every case shifted alike in each round (one process's speed) and no
    noise of its own: the cells differ by exactly their true difference, and each interval is the
    environment's shift uncertainty alone (t with R - 1 = 2 degrees of freedom over var(m_r) / R)."""
    import pandas as pd

    shift = {1: 0.2, 2: -0.1, 3: 0.05}
    rows = [("%s%d" % (model, c), model, "fp32", "train", "e", r, effect + shift[r])
            for model, effect in (("a", 0.1), ("b", -0.1)) for c in range(3) for r in shift]
    out = paired.intervals(pd.DataFrame(rows, columns=paired.RATIO_COLUMNS), ["model", "precision", "env"])
    a, b = (out[out["model"] == m].iloc[0] for m in "ab")
    assert a["log_mean"] - b["log_mean"] == pytest.approx(0.2)
    assert a["log_mean"] == pytest.approx(0.1 + np.mean(list(shift.values())))
    half = stats.t.ppf(0.975, 2) * math.sqrt(np.var(list(shift.values()), ddof=1) / 3)
    assert math.log(a["hi"]) - a["log_mean"] == pytest.approx(half)
    assert a["paired_cases"] == 3 and a["paired_rounds"] == 3


# ------------------------------------------------------------------ A/A, planted slowdown, unpaired


def test_a_a_calls_at_most_a_few_cells_decisive(tmp_path):
    cells = heatmap.cells(_frame(_store(tmp_path, seed=3)), REF, heatmap.TIME)
    assert len(cells) >= 55 and set(cells["band_source"]) == {heatmap.PAIRED}
    assert (cells["paired_rounds"] == 3).all() and (cells["paired_cases"] >= 3).all()
    assert cells["decisive"].sum() <= 3 and (cells["within"] == ~cells["decisive"]).all()
    glance = paired.env_intervals(_frame(_store(tmp_path / "again", seed=3)), REF, default_thresholds()).iloc[0]
    assert glance["lo"] < glance["ratio"] < glance["hi"] and not glance["decisive"]


def test_a_planted_ten_percent_slowdown_is_decisive_in_most_cells(tmp_path):
    df = _frame(_store(tmp_path, slowdown=1.10, seed=5))
    cells = heatmap.cells(df, REF, heatmap.TIME)
    assert len(cells) >= 55 and cells["decisive"].mean() >= 0.85 and not cells.loc[cells["decisive"], "within"].any()
    assert cells["ratio"].median() == pytest.approx(1.10, abs=0.02)
    assert (cells.loc[cells["decisive"], "ci_lo"] > 1.0).all()
    card = paired.env_intervals(df, REF, default_thresholds()).iloc[0]
    assert card["env"] == TWIN[0] and 1.0 < card["lo"] < 1.10 < card["hi"] and card["decisive"]


def test_unpaired_records_have_no_interval_and_colour_nothing(tmp_path):
    """A CI job matrix: each job held one environment, so its rounds pair with nothing."""
    df = _frame(_store(tmp_path, slowdown=1.10, paired=False))
    assert paired.round_ratios(df, REF).empty
    cells = heatmap.cells(df, REF, heatmap.TIME)
    assert set(cells["band_source"]) == {heatmap.NOT_PAIRED} and cells["within"].all()
    assert not cells["decisive"].any() and cells["ci_lo"].isna().all()
    assert paired.env_intervals(df, REF, default_thresholds()).empty


# ------------------------------------------------------------------ on the page


def _page(tmp_path, **kwargs):
    paths = _store(tmp_path, **kwargs)
    out = str(tmp_path / "report.html")
    build_report(paths, out_path=out, reference_env=REF)
    with open(out, encoding="utf-8") as fh:
        return fh.read()


def test_the_page_states_intervals_and_the_correction(tmp_path):
    text = _page(tmp_path, slowdown=1.10, seed=5)
    glance = text[text.index('id="glance"'):text.index('id="run"')]
    assert "95% CI" in glance and 'class="bad"' in glance and "paired rounds, wall time" in glance
    speed = text[text.index('id="speed"'):text.index('id="memory"')]
    assert "Benjamini-Hochberg" in speed and "interval over paired rounds" in speed
    assert paired.UNPAIRED in speed  # the note says what unpaired records get


def test_the_page_says_unpaired_and_colours_no_card(tmp_path):
    text = _page(tmp_path, slowdown=1.10, paired=False)
    glance = text[text.index('id="glance"'):text.index('id="run"')]
    assert paired.UNPAIRED in glance and "95% CI" not in glance
    assert not re.search('class="(bad|good)">[+\u2212]', glance)  # no change coloured (accuracy keeps its own)
    assert "accuracy</span><span><span" in glance and "not checked" not in glance  # from the extras round


def test_the_upgrade_view_takes_paired_intervals(tmp_path):
    df = _frame(_store(tmp_path, slowdown=1.25, seed=5))
    view = up.upgrade_view(df, REF, TWIN[0])
    frame = up.upgrade_frame(df, REF, TWIN[0])
    ran = frame[(frame["status_base"] == "ok") & (frame["status_cand"] == "ok")]
    assert ran["paired"].all() and not view["single_run"] and view["paired"] == view["timed"] == len(ran)
    assert len(view["slower"]) > 0.8 * len(ran) and view["slower"]["wall_decisive"].all()
    markdown = up.markdown(view)
    assert "paired rounds" in markdown and "Benjamini-Hochberg" in markdown and "(paired, q" in markdown


def test_a_real_change_below_the_floor_is_said_so_and_not_coloured():
    import pandas as pd

    from harness.measures import default_thresholds

    table = pd.DataFrame({"env": ["e", "f"], "log_mean": [math.log(1.01), math.log(1.002)],
                          "p_value": [1e-6, 0.6]})
    judged = paired.judge(table, default_thresholds())
    assert not judged["decisive"].any() and list(judged["small"]) == [True, False]
    words = [paired.undecided_words(row, default_thresholds()) for _, row in judged.iterrows()]
    assert words == ["real but below the 2% floor", paired.WITHIN]
