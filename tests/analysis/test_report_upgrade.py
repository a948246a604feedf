"""``report.upgrade`` and ``report --upgrade FROM TO --markdown FILE``: starts and stops working counted against
the records of a synthetic store with planted spans, speed over rounds, memory on the exact measure, the
Markdown's size, bad pairs."""
import os
import subprocess
import sys

import pytest

from harness.analysis.load import InputError
from harness.analysis.report import upgrade as up
from harness.analysis.report.build import make_context
from harness.vocab import NOT_RUN_STATUSES, ExitCode
from tests.analysis.report_synth import MODELS
from tests.analysis.test_report_spans import planted_store, records
from tests.analysis.test_report_support import ROOT


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("upgrade"))
    planted_store(folder, failure_rate=0.05, tensor_peaks=True, rounds=2, round_spread=0.01)
    return folder


@pytest.fixture(scope="module")
def ctx(store):
    return make_context([store])[0]


def latest_status(folder, env):
    """The status of each case key on ``env``: its latest record (the last round)."""
    out = {}
    for r in records(folder):
        if r["env_label"] == env:
            out[r["case_key"]] = r["status"]
    return out


def test_starts_and_stops_are_counted_as_in_the_records(store, ctx):
    view = up.upgrade_view(ctx.df, "torch-1.13", "torch-2.1", ctx.env_rows)
    a, b = latest_status(store, "torch-1.13"), latest_status(store, "torch-2.1")
    keys = set(a) & set(b)
    running = [k for k in keys if a[k] not in NOT_RUN_STATUSES and b[k] not in NOT_RUN_STATUSES]
    starts = sum(1 for k in running if a[k] != "ok" and b[k] == "ok")
    stops = sum(1 for k in running if a[k] == "ok" and b[k] != "ok")
    assert (view["both"], view["n_starts"], view["n_stops"]) == (len(keys), starts, stops)
    assert starts > 0 and stops > 0
    assert sum(g["count"] for g in view["starts"]) == starts
    # the planted bf16 failures of torch-1.13 all start working on 2.1, in one cause however re-raised
    bf16 = [g for g in view["starts"] if "expected scalar type BFloat16" in g["reason"]]
    assert len(bf16) == 1 and bf16[0]["reason"].startswith("RuntimeError: expected")
    assert view["verdict"] == "breaks" and "breaks %d case" % stops in view["verdict_text"]


def test_speed_has_intervals_over_rounds_and_memory_the_exact_measure(ctx):
    view = up.upgrade_view(ctx.df, "torch-2.0", "torch-2.1", ctx.env_rows)
    assert not view["single_run"]
    slower = view["slower"]
    assert set(slower["model"]) == {"graph_vae"}  # the planted regression, and nothing else
    rounded = slower[~slower["single_run"]]  # a case with one ok round (a failure in the other) has no interval
    assert len(rounded) > len(slower) / 2 and slower.loc[slower["single_run"], "wall_lo"].isna().all()
    assert (rounded["wall_lo"] > 1.0).all() and (rounded["wall_lo"] < rounded["wall_ratio"]).all()
    frame = up.upgrade_frame(ctx.df, "torch-2.0", "torch-2.1")
    ok = frame[(frame["status_base"] == "ok") & (frame["status_cand"] == "ok")]
    assert set(ok.loc[ok["device"] == "cpu", "mem_basis"]) == {"tensor peak"}
    assert set(ok.loc[ok["device"] == "cuda", "mem_basis"]) == {"process peak"}


def test_single_run_is_said(tmp_path):
    folder = str(tmp_path)
    planted_store(folder, models=MODELS[:3])
    c = make_context([folder])[0]
    view = up.upgrade_view(c.df, "torch-1.13", "torch-2.1", c.env_rows)
    assert view["single_run"] and "single-run" in up.markdown(view)


def test_fp32_drift_and_versions_of_the_pair(ctx):
    view = up.upgrade_view(ctx.df, "torch-2.0", "torch-2.1", ctx.env_rows)
    assert set(view["drift"]["model"]) == {"mswr_net_v2"}  # the planted drift on 2.1
    assert ("torch", "2.0.1+cu117", "2.1.2+cu121") in view["versions"]
    assert not [v for v in view["versions"] if v[0] == "numpy"]  # the same on both


def test_versions_name_the_model_libraries_not_their_dependencies():
    def row(env, torch, timm, certifi, clip):
        return {"env": env, "torch": torch, "python": "3.11.7", "numpy": "1.26.4", "cuda": None, "cudnn": None,
                "extra": [("extra_packages.timm", timm), ("extra_packages.certifi", certifi),
                          ("extra_packages.open-clip", clip), ("extra_chosen.timm.version", timm),
                          ("extra_chosen.open-clip.version", clip)]}
    rows = [row("torch-1.10", "1.10.2", "0.9.16", "2024.1", "2.0"),
            row("torch-2.1", "2.1.2", "1.0.31", "2026.10", "2.1")]
    assert up.versions(rows, "torch-1.10", "torch-2.1") == [
        ("torch", "1.10.2", "2.1.2"), ("timm", "0.9.16", "1.0.31"), ("open-clip", "2.0", "2.1")]


def test_accuracy_lists_only_the_cases_whose_ratio_grew(ctx):
    # the synthetic records carry no calibrated ratio: plant one, the same on every ok case of both sides
    df = ctx.df.copy()
    ok = df["status"] == "ok"
    df.loc[ok, "acc_ratio"], df.loc[ok, "acc_passed"] = 0.4, True
    view = up.upgrade_view(df, "torch-2.0", "torch-2.1", ctx.env_rows)
    # nothing grew, and the section says so (an empty selection once took the index of every compared
    # case and listed each as a blank row)
    assert view["accuracy_worse"].empty and view["accuracy_better"].empty
    text = up.markdown(view)
    assert "### Accuracy ratio grown beyond its limit (0)\n\nNone." in text and "nan" not in text
    # one model's ratio on 2.1 five times its ratio on 2.0
    model = sorted(df.loc[ok & (df["env"] == "torch-2.1"), "model"].unique())[0]
    grown = ok & (df["env"] == "torch-2.1") & (df["model"] == model)
    df.loc[grown, "acc_ratio"] = 2.0
    view = up.upgrade_view(df, "torch-2.0", "torch-2.1", ctx.env_rows)
    worse = view["accuracy_worse"]
    assert set(worse["model"]) == {model} and len(worse) > 0 and (worse["growth"] > 4.9).all()
    assert view["accuracy_better"].empty and view["verdict"] != "safe"
    assert "%d have an accuracy ratio grown" % len(worse) in view["verdict_text"]
    assert "| 0.4 | 2 |" in up.markdown(view)


def test_markdown_fits_one_pull_request_comment(ctx):
    view = up.upgrade_view(ctx.df, "torch-1.10", "torch-latest", ctx.env_rows)
    text = up.markdown(view)
    assert len(text) <= up.PR_COMMENT_CHARS
    assert text.startswith("## Upgrade torch-1.10 \u2192 torch-latest: ")
    for title in ("### Stops working", "### Starts working", "### Slower", "### More memory", "### fp32 drift"):
        assert title in text
    small = up.markdown(view, limit=1)
    assert len(small) < len(text) and "more |" in small


def test_pick_pair_defaults_and_refuses():
    assert up.pick_pair(["a", "b", "c"]) == ("a", "c")
    with pytest.raises(InputError, match="'x' is not an environment"):
        up.pick_pair(["a", "b"], ("a", "x"))
    with pytest.raises(InputError, match="both 'a'"):
        up.pick_pair(["a", "b"], ("a", "a"))


def test_the_page_offers_every_older_to_newer_pair_the_chosen_one_first():
    envs = ["a", "b", "c", "d"]
    pairs = up.page_pairs(envs, ("b", "d"))
    assert pairs[0] == ("b", "d") and len(pairs) == len(set(pairs)) == 6
    assert all(envs.index(a) < envs.index(b) for a, b in pairs)
    many = ["e%02d" % i for i in range(up.ALL_PAIRS_UP_TO_ENVS + 3)]  # past the cap: to the newest and to the next
    pairs = up.page_pairs(many, (many[0], many[-1]))
    assert set(pairs) == {(a, many[-1]) for a in many[:-1]} | set(zip(many, many[1:]))
    assert len(pairs) == 2 * len(many) - 3 and pairs[0] == (many[0], many[-1])


def test_command_writes_the_markdown_and_refuses_a_bad_pair(store, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    out, md = str(tmp_path / "r" / "index.html"), str(tmp_path / "up.md")
    cmd = [sys.executable, "-m", "harness", "report", store, "--out", out, "--upgrade", "torch-1.13", "torch-2.1",
           "--markdown", md]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == ExitCode.OK, done.stderr
    with open(md, encoding="utf-8") as fh:
        text = fh.read()
    assert text.startswith("## Upgrade torch-1.13 \u2192 torch-2.1")
    assert "upgrade: %s (%d characters" % (md, len(text)) in done.stdout
    with open(out, encoding="utf-8") as fh:
        assert 'id="upgrade"' in fh.read()
    bad_out, bad_md = str(tmp_path / "bad" / "index.html"), str(tmp_path / "bad.md")
    bad = subprocess.run(cmd[:5] + ["--out", bad_out, "--upgrade", "torch-1.13", "torch-9", "--markdown", bad_md],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == ExitCode.INPUT
    assert bad.stderr.strip().splitlines() == [
        "error: --upgrade: 'torch-9' is not an environment of the records (they have torch-1.10, torch-1.11, "
        "torch-1.12, torch-1.13, torch-2.0, torch-2.1, torch-latest)"]
    assert not os.path.exists(bad_out) and not os.path.exists(bad_md)
