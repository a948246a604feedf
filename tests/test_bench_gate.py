"""Quick checks of benchmarks/bench_gate.py's pure helpers (the benchmark itself takes hours).

The fault patches are applied to this checkout's own files in memory, so a change to
``harness/execute.py`` or ``models/mswr.py`` that removes an anchor fails here, not
an hour into a benchmark run.
"""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load():
    spec = importlib.util.spec_from_file_location("bench_gate", os.path.join(ROOT, "benchmarks", "bench_gate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bg = _load()

KEY = "model=mswr_net_tiny;mode=train;batch=2;size=32;precision=fp32;checkpoint=reentrant;device=cpu"
KEY2 = "model=cbam_classifier_tiny;mode=eval;batch=2;size=32;precision=amp_bf16;checkpoint=none;device=cpu"


def _v(key, kind, verdict, **extra):
    out = {"case_key": key, "kind": kind, "verdict": verdict}
    out.update(extra)
    return out


def test_parse_case_key():
    case = bg.parse_case_key(KEY)
    assert case["model"] == "mswr_net_tiny" and case["checkpoint"] == "reentrant" and case["batch"] == "2"


def test_replace_once_names_a_missing_or_repeated_anchor():
    assert bg.replace_once("a b c", "b", "B", "f") == "a B c"
    with pytest.raises(bg.BenchError, match="0 times"):
        bg.replace_once("a c", "b", "B", "f")
    with pytest.raises(bg.BenchError, match="2 times"):
        bg.replace_once("b b", "b", "B", "f")


@pytest.mark.parametrize("name", sorted(bg.FAULTS))
def test_every_fault_patch_applies_to_this_checkout(name):
    for rel, patch in bg.FAULTS[name].patches:
        with open(os.path.join(ROOT, rel), encoding="utf-8") as fh:
            text = fh.read()
        patched = patch(text)
        assert patched != text
        compile(patched, rel, "exec")


def test_aa_figures_count_false_alarms_per_kind_and_overall():
    verdicts = [
        _v(KEY, "status", "unchanged"), _v(KEY, "time", "regressed"), _v(KEY, "memory", "unchanged"),
        _v(KEY2, "status", "unchanged"), _v(KEY2, "time", "inconclusive"), _v(KEY2, "accuracy", "unchanged"),
        _v("model=x;mode=eval", "status", "new"),
    ]
    fig = bg.aa_figures(verdicts)
    assert fig["cases"] == 2 and fig["cases_regressed"] == 1 and fig["regressed_share"] == 0.5
    assert fig["kinds"]["time"]["compared"] == 2 and fig["kinds"]["time"]["inconclusive"] == 1
    assert fig["kinds"]["memory"]["regressed_share"] == 0.0
    assert fig["kinds"]["status"]["compared"] == 2 and fig["not_compared"] == 1


def test_fault_figures_detection_false_alarms_and_other_kinds():
    fault = bg.FAULTS["ckpt"]
    verdicts = [
        _v(KEY, "status", "unchanged"), _v(KEY, "accuracy", "regressed"), _v(KEY, "time", "improved"),
        _v(KEY2, "status", "unchanged"), _v(KEY2, "time", "regressed"),
    ]
    fig = bg.fault_figures(verdicts, fault)
    assert (fig["targets"], fig["detected"], fig["detected_share"]) == (1, 1, 1.0)
    assert (fig["unaffected"], fig["false_alarms"]) == (1, 1)
    assert fig["false_alarm_cases"] == [KEY2]


def test_memory_target_needs_growth_above_the_floor():
    fault = bg.FAULTS["mem10"]
    big = [_v(KEY, "status", "unchanged"), _v(KEY, "memory", "regressed", baseline=300 * 2 ** 20)]
    small = [_v(KEY2, "status", "unchanged"), _v(KEY2, "memory", "unchanged", baseline=30 * 2 ** 20)]
    fig = bg.fault_figures(big + small, fault, {})
    assert (fig["targets"], fig["detected"]) == (1, 1)
    fig = bg.fault_figures(big + small, fault, {"memory_floor_bytes": 1024 * 1024})
    assert fig["targets"] == 2 and fig["detected"] == 1


def test_round_counts():
    assert bg.round_counts(1) == [1]
    assert bg.round_counts(3) == [1, 2, 3]
    assert bg.round_counts(10) == [1, 2, 3, 5, 7, 10]
