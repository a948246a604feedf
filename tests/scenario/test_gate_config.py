"""Gate thresholds: defaults, validation messages, per-model resolution (stdlib module)."""
import os
import subprocess
import sys

import pytest

from harness import environments
from harness.scenario.gate_config import (
    DEFAULTS,
    apply_overrides,
    matching_patterns,
    thresholds_for,
    validate_gate_table,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_defaults_are_valid_and_complete():
    assert validate_gate_table(dict(DEFAULTS), "x [gate]") == []
    assert thresholds_for("anything", None) == DEFAULTS
    assert thresholds_for("anything", {}) == DEFAULTS


def test_the_documented_example_is_valid():
    table = {"time_factor": 1.10, "q": 0.05, "memory_frac": 0.05, "memory_floor_bytes": 16777216,
             "task_drop": 0.02, "per_model": {"cbam_*": {"time_factor": 1.25}}}
    assert validate_gate_table(table, "scenarios/smoke.toml [gate]") == []


@pytest.mark.parametrize("key,value,allowed", [
    ("time_factor", 0.9, "greater than 1"),
    ("time_factor", "1.1", "greater than 1"),
    ("time_factor", True, "greater than 1"),
    ("q", 0.0, "between 0 and 1"),
    ("q", 1.5, "between 0 and 1"),
    ("memory_frac", -0.1, ">= 0"),
    ("memory_floor_bytes", 1.5, "integer"),
    ("memory_floor_bytes", -1, "integer"),
    ("task_drop", float("nan"), ">= 0"),
    ("time_test", "ranks", '"auto", "samples", "rounds"'),
    ("min_rounds", 1, ">= 2"),
])
def test_bad_values_name_file_key_value_and_what_is_allowed(key, value, allowed):
    errors = validate_gate_table({key: value}, "scen.toml [gate]")
    assert len(errors) == 1
    msg = errors[0]
    assert msg.startswith("scen.toml [gate].%s = " % key)
    assert repr(value) in msg
    assert allowed in msg


def test_unknown_keys_are_errors_and_list_the_allowed_ones():
    errors = validate_gate_table({"time_factr": 1.2}, "s.toml [gate]")
    assert len(errors) == 1
    assert "s.toml [gate]" in errors[0] and "time_factr" in errors[0] and "1.2" in errors[0]
    assert "time_factor" in errors[0]  # the allowed keys are listed


def test_per_model_errors_carry_the_pattern_path():
    errors = validate_gate_table({"per_model": {"cbam_*": {"q": 2, "bogus": 1}}}, "s.toml [gate]")
    assert len(errors) == 2
    assert all(e.startswith('s.toml [gate].per_model."cbam_*"') for e in errors)
    assert validate_gate_table({"per_model": {"x": 3}}, "w")[0].startswith('w.per_model."x" = 3')
    assert "nest" in validate_gate_table({"per_model": {"x": {"per_model": {}}}}, "w")[0]
    assert "table of tables" in validate_gate_table({"per_model": [1]}, "w")[0]
    assert validate_gate_table([1], "w") == ["w: must be a table, got [1]"]


def test_resolution_order_global_then_less_then_more_specific_globs():
    table = {
        "time_factor": 1.2, "q": 0.01,
        "per_model": {
            "cbam_resnet18": {"time_factor": 1.9},      # exact: most specific, wins although first
            "cbam_*": {"time_factor": 1.3, "memory_frac": 0.2},
            "cbam_res*": {"time_factor": 1.5},
            "*": {"task_drop": 0.5},
        },
    }
    assert matching_patterns("cbam_resnet18", table) == ["*", "cbam_*", "cbam_res*", "cbam_resnet18"]
    th = thresholds_for("cbam_resnet18", table)
    assert th["time_factor"] == 1.9 and th["memory_frac"] == 0.2 and th["task_drop"] == 0.5 and th["q"] == 0.01
    assert thresholds_for("cbam_resnet50", table)["time_factor"] == 1.5
    assert thresholds_for("cbam_x", table)["time_factor"] == 1.3
    other = thresholds_for("graph_vae", table)
    assert other["time_factor"] == 1.2 and other["memory_frac"] == DEFAULTS["memory_frac"]
    assert other["task_drop"] == 0.5


def test_equally_specific_globs_later_wins():
    table = {"per_model": {"a*": {"time_factor": 1.3}, "*b": {"time_factor": 1.4}}}
    assert thresholds_for("ab", table)["time_factor"] == 1.4
    table = {"per_model": {"*b": {"time_factor": 1.4}, "a*": {"time_factor": 1.3}}}
    assert thresholds_for("ab", table)["time_factor"] == 1.3


def test_overrides_win_over_per_model_and_are_validated():
    table = {"time_factor": 1.2, "per_model": {"cbam_*": {"time_factor": 1.25, "q": 0.1}}}
    merged = apply_overrides(table, {"time_factor": 1.5})
    assert thresholds_for("cbam_tiny", merged)["time_factor"] == 1.5
    assert thresholds_for("cbam_tiny", merged)["q"] == 0.1
    assert table["per_model"]["cbam_*"]["time_factor"] == 1.25  # input not modified
    with pytest.raises(ValueError, match="overrides.q"):
        apply_overrides(table, {"q": 3})
    with pytest.raises(ValueError, match="unknown key"):
        apply_overrides(table, {"speed": 3})


def test_module_is_stdlib_only():
    code = ("import sys, harness.scenario.gate_config; bad = [m for m in ('pandas', 'numpy', 'scipy', 'torch') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def _oldest_python():
    """The interpreter of the oldest test environment (Python 3.9 for torch 1.10), found as nox finds it.

    The runner side reads ``[gate]`` tables through this module in that environment, while
    this file runs only in the newest one (tests/analysis); so the old interpreter runs it
    here. CI needs that interpreter anyway (``nox -s tests``), so there it must be found.
    """
    pytest.importorskip("nox", reason="the noxfile's interpreter discovery needs nox (the test sessions install it)")
    sys.path.insert(0, ROOT)
    try:
        import noxfile
    finally:
        sys.path.remove(ROOT)
    version = noxfile.ENV_BY_LABEL[noxfile.TEST_ENVS[0]][2][-1]   # oldest Python of the oldest test environment
    path, how = environments.find_python(version, install=False)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no Python %s: %s" % (version, how))
        pytest.skip(how)
    return version, path


def test_imports_and_validates_on_the_oldest_python():
    version, python = _oldest_python()
    code = ("import sys; assert '%%d.%%d' %% sys.version_info[:2] == %r, sys.version; "
            "import harness.scenario.gate_config as g; "
            "assert g.validate_gate_table({'per_model': {'c*': {'q': 0.1}}}, 'w') == []; "
            "assert g.thresholds_for('cx', {'per_model': {'c*': {'q': 0.1}}})['q'] == 0.1; "
            "assert g.validate_gate_table({'q': 2}, 'w')[0].startswith('w.q = 2'); "
            "bad = [m for m in ('pandas', 'numpy', 'scipy', 'torch') if m in sys.modules]; assert not bad, bad"
            % version)
    # -I: isolated (no user site, no PYTHONPATH): the bare interpreter with only the checkout on its path.
    proc = subprocess.run([python, "-I", "-c", "import sys; sys.path.insert(0, %r); %s" % (ROOT, code)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, "Python %s (%s):\n%s" % (version, python, proc.stderr[-3000:])
