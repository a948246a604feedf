"""Scenario loading: every problem named with file, key path, value and what is allowed."""
import os

import pytest

import models
from harness.scenario import spec as scen
from tests.runner.helpers import run_harness, write_scenario

GOOD = '''
model = ["cbam_classifier_tiny"]
mode = ["train", "eval"]
batch_size = [2]
size = ["default", 7]
precision = ["fp32", "bf16"]
checkpoint = ["none", "reentrant"]
device = ["cpu"]
'''


def test_expansion_applies_excludes_includes_and_declares_invalid_sizes(tmp_path):
    extra = '[[exclude]]\nmode = "eval"\ncheckpoint = "reentrant"\n\n[[include]]\nsize = [33]\nprecision = "fp32"\n'
    sc = scen.load(write_scenario(tmp_path, GOOD, extra))
    cases = scen.expand(sc)
    keys = [c.key for c, _ in cases]
    assert len(keys) == len(set(keys))
    # 2 sizes x 2 precisions x (train: 2 ckpt + eval: 1) = 12, plus the include at size 33:
    # 2 modes x 2 ckpt = 4 (excludes prune the matrix only; an include is asked for explicitly).
    assert len(cases) == 16
    skipped = {c.size: r for c, r in cases if r}
    assert set(skipped) == {7} and skipped[7].status == "skipped" and "7" in skipped[7].reason
    assert not any(c.mode == "eval" and c.checkpoint == "reentrant" and c.size != 33 for c, _ in cases)


def test_case_key_is_stable_text():
    case = scen.Case("m", "train", 2, 32, "fp32", "none", "cpu")
    assert case.key == "model=m;mode=train;batch=2;size=32;precision=fp32;checkpoint=none;device=cpu"
    assert scen.Case("m", "train", 2, 32, "fp32", "none", "cpu", True, True).key.endswith(
        ";channels_last=1;compile=1")


@pytest.mark.parametrize("matrix_patch, extra, expected", [
    (("precision = [\"fp32\", \"bf16\"]", "precision = [\"fp8\"]"), "",
     "matrix.precision: value 'fp8' is not allowed; expected one of fp32, amp_fp16, amp_bf16, fp16, bf16"),
    (("batch_size = [2]", "batch_size = [0]"), "", "matrix.batch_size: value 0 is not allowed"),
    (("device = [\"cpu\"]", "device = [\"cpu\"]\ncolour = [1]"), "", "matrix.colour: unknown key"),
    (("", ""), "[measure2]\nx = 1\n", "measure2: unknown table"),
    (("", ""), "[tolerance]\nfp32 = -1\n", "tolerance.fp32: value -1 is not allowed"),
    (("", ""), "[tolerance]\nfp64_multiple = 0.5\n",
     "tolerance.fp64_multiple: value 0.5 is not allowed; expected a multiple in [1, 1e6]"),
    (("cbam_classifier_tiny", "no_such_model"), "", "model 'no_such_model' matches no registered model"),
    (("", ""), "[[exclude]]\nmode = [\"train\", \"eval\"]\n", "expands to no case"),
    (("device = [\"cpu\"]", "device = [\"cpu\"]\nsdpa_backend = [\"fast\"]"), "",
     "matrix.sdpa_backend: value 'fast' is not allowed; expected one of default, math, flash, efficient, cudnn"),
    (("device = [\"cpu\"]", "device = [\"cpu\"]\npython_optimized = [1]"), "",
     "matrix.python_optimized: value 1 is not allowed; expected true or false"),
    (("", ""), "[checks]\nleak_steps = -1\n", "checks.leak_steps: value -1 is not allowed; expected an integer"),
    (("", ""), "[checks]\nleak = true\n", "checks.leak: unknown key; allowed: deterministic, leak_steps"),
    (("batch_size = [2]", "batch_size = [\"maximum\"]"), "",
     "matrix.batch_size: value 'maximum' is not allowed; expected an integer >= 1, or \"max\" (search for the "
     "largest batch that fits: [max_batch])"),
    (("", ""), "[max_batch]\ncpu_cap_gib = 0\n", "max_batch.cpu_cap_gib: value 0 is not allowed; expected GiB > 0"),
    (("", ""), "[max_batch]\nstart = 64\nlimit = 32\n",
     "max_batch.start: value 64 is not allowed; expected at most limit (32)"),
    (("", ""), "[max_batch]\ncap_gib = 4\n",
     "max_batch.cap_gib: unknown key; allowed: start, limit, cpu_cap_gib, cuda_cap_gib"),
])
def test_each_problem_names_file_key_value_and_allowed(tmp_path, matrix_patch, extra, expected):
    old, new = matrix_patch
    path = write_scenario(tmp_path, GOOD.replace(old, new) if old else GOOD, extra)
    with pytest.raises(scen.ScenarioError) as info:
        scen.expand(scen.load(path))
    text = str(info.value)
    assert expected in text and path in text


def test_a_max_batch_search_is_a_case_of_its_own_beside_the_batches_given(tmp_path):
    path = write_scenario(tmp_path, GOOD.replace("batch_size = [2]", "batch_size = [2, \"max\"]"),
                          "[max_batch]\ncpu_cap_gib = 2.5\n")
    scenario = scen.load(path)
    assert scenario.max_batch == dict(scen.MAX_BATCH_DEFAULTS, cpu_cap_gib=2.5)
    batches = [c.batch_size for c, _ in scen.expand(scenario)]
    assert set(batches) == {2, "max"} and batches.count(2) == batches.count("max")
    search = next(c for c, _ in scen.expand(scenario) if c.batch_size == "max")
    assert ";batch=max;" in search.key


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[matrix\nmodel = 1")
    with pytest.raises(scen.ScenarioError, match="cannot read as TOML"):
        scen.load(str(bad))
    with pytest.raises(scen.ScenarioError, match="no such scenario file"):
        scen.load(str(tmp_path / "missing.toml"))


def test_cli_exits_2_and_writes_nothing_on_a_bad_scenario(tmp_path):
    path = write_scenario(tmp_path, GOOD.replace('mode = ["train", "eval"]', 'mode = ["training"]'))
    out = tmp_path / "out"
    proc = run_harness("run", path, "--out", str(out))
    assert proc.returncode == 2
    assert "matrix.mode: value 'training' is not allowed; expected one of train, eval" in proc.stderr
    assert not out.exists()


def test_only_filters_and_rejects_unknown_axes(tmp_path):
    sc = scen.load(write_scenario(tmp_path, GOOD))
    cases = scen.expand(sc, scen.parse_only(["precision=bf16", "mode=train"]))
    assert cases and all(c.precision == "bf16" and c.mode == "train" for c, _ in cases)
    with pytest.raises(scen.ScenarioError, match="--only 'colour=red'"):
        scen.parse_only(["colour=red"])


def test_the_optional_axes_expand_and_join_the_key_only_when_set(tmp_path):
    matrix = GOOD.replace('size = ["default", 7]', 'size = [16, "16x16", "24x16"]').replace(
        'device = ["cpu"]', 'device = ["cpu"]\nsdpa_backend = ["default", "math"]\npython_optimized = [false, true]')
    sc = scen.load(write_scenario(tmp_path, matrix, "[checks]\ndeterministic = true\n"))
    cases = [c for c, _ in scen.expand(sc)]
    assert sc.checks == {"deterministic": True, "leak_steps": 0}
    assert {c.size for c in cases} == {16, "24x16"}  # a square "HxW" is its side; a non-square one stays text
    plain = [c for c in cases if c.sdpa_backend == "default" and not c.python_optimized]
    assert plain and all("sdpa" not in c.key and "python_O" not in c.key for c in plain)
    assert any(c.key.endswith(";sdpa=math;python_O=1") for c in cases)
    assert len(cases) == 4 * len(plain)


@pytest.mark.parametrize("name", ["default", "smoke", "full", "faults"] + sorted(
    os.path.basename(f)[:-5] for f in os.listdir(os.path.join(scen.REPO_ROOT, "scenarios")) if f.startswith("audit_")))
def test_shipped_scenarios_load_and_expand(name):
    from harness.scenario.spec import resolve_path as resolve_scenario

    sc = scen.load(resolve_scenario(name))
    assert scen.expand(sc)
    assert os.path.basename(sc.path) == name + ".toml"


def test_each_seed_audit_has_a_scenario_that_says_what_to_change_for_a_gpu():
    audits = sorted(f for f in os.listdir(os.path.join(scen.REPO_ROOT, "scenarios")) if f.startswith("audit_"))
    assert [f[len("audit_"):len("audit_") + 3] for f in audits] == ["000", "001", "002", "003", "004"]
    for name in audits:
        with open(os.path.join(scen.REPO_ROOT, "scenarios", name), encoding="utf-8") as fh:
            header = fh.read().split("[scenario]")[0]
        assert "shared/seeds/" in header and "On a GPU:" in header, name


def test_gate_bench_loads_and_expands_to_the_68_cases_it_describes():
    from collections import Counter

    from harness.scenario.spec import resolve_path as resolve_scenario

    sc = scen.load(resolve_scenario("gate_bench"))
    cases = scen.expand(sc)
    assert sc.name == "gate_bench" and len(cases) == 68
    assert not any(reason for _, reason in cases)  # every size valid: nothing is skipped
    assert len({c.key for c, _ in cases}) == 68
    assert all(c.device == "cpu" and c.size == models.get_spec(c.model).default_sizes[0] for c, _ in cases)
    # 56 small cases: 14 tiny zoo models x train/eval x fp32/amp_bf16 at batch 2, no checkpointing.
    small = [c for c, _ in cases if c.batch_size == 2 and c.checkpoint == "none"]
    per_model = Counter(c.model for c in small)
    assert len(small) == 56 and len(per_model) == 14 and set(per_model.values()) == {4}
    assert all(m.endswith("_tiny") and not models.get_spec(m).fault for m in per_model)
    assert {(c.mode, c.precision) for c in small} == {(m, p) for m in ("train", "eval") for p in ("fp32", "amp_bf16")}
    # 8 checkpointing cases of mswr_net_tiny (train): reentrant at batch 1, 2, 4, non_reentrant at 2.
    ckpt = sorted((c.checkpoint, c.batch_size, c.precision) for c, _ in cases if c.checkpoint != "none")
    assert ckpt == sorted((ck, b, p) for p in ("fp32", "amp_bf16")
                          for ck, b in (("reentrant", 1), ("reentrant", 2), ("reentrant", 4), ("non_reentrant", 2)))
    assert {(c.model, c.mode) for c, _ in cases if c.checkpoint != "none"} == {("mswr_net_tiny", "train")}
    # 4 memory-sized cases: train at batch 48.
    big = sorted((c.model, c.precision) for c, _ in cases if c.batch_size == 48)
    assert big == [("hsifusion_tiny", "fp32"), ("mswr_net_tiny", "amp_bf16"), ("mswr_net_tiny", "fp32"),
                   ("sharp_tiny", "fp32")]
    assert all(c.mode == "train" and c.checkpoint == "none" for c, _ in cases if c.batch_size == 48)
    assert sc.measure["samples"] == 41 and sc.measure["threads"] == 1


def test_tolerance_defaults_to_the_calibrated_rule_and_a_number_overrides_one_precision(tmp_path):
    sc = scen.load(write_scenario(tmp_path, GOOD, "[tolerance]\nbf16 = 0.2\nfp64_multiple = 20\n"))
    assert sc.tolerance["bf16"] == 0.2 and sc.tolerance["fp32"] is None
    assert sc.tolerance["fp64_multiple"] == 20 and sc.tolerance["fp16_range_factor"] == 4.0
