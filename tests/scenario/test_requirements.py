"""A scenario's [environment] table: requirements, per-environment pins, paths."""
import pytest

from harness.scenario import requirements
from harness.scenario import spec as scen

MATRIX = {"model": ["x"], "mode": ["train"], "batch_size": [1], "size": [1], "precision": ["fp32"],
          "checkpoint": ["none"], "device": ["cpu"]}


def test_paths_are_relative_to_the_scenario_and_pins_add_per_environment(tmp_path):
    (tmp_path / "proj").mkdir()
    env = {"requirements": ["timm", "./proj", "transformers>=4.30, <5"],
           "pins": {"torch-1.10": ["timm==0.9.16"], "torch-latest": []}}
    sc = scen.from_dict({"matrix": MATRIX, "environment": env}, str(tmp_path / "s.toml"))
    assert sc.environment["requirements"] == ["timm", str(tmp_path / "proj"), "transformers>=4.30, <5"]
    assert requirements.requirements_for(sc.environment, "torch-1.10", ["einops", "timm"]) == [
        "timm", str(tmp_path / "proj"), "transformers>=4.30, <5", "timm==0.9.16", "einops"]
    assert requirements.requirements_for(sc.environment, "torch-2.0") == sc.environment["requirements"]


@pytest.mark.parametrize("env, says", [
    ({"requirements": "timm"}, "environment.requirements: must be a list"),
    ({"requirements": ["timm", ""]}, "value '' is not allowed"),
    ({"requirements": ["a b c"]}, "value 'a b c' is not allowed; expected a project name"),
    ({"requirements": ["./missing"]}, "a path that exists"),
    ({"pins": {"1.10": ["timm"]}}, "environment.pins.1.10: not an environment label; expected torch-<release>"),
    ({"pins": ["timm"]}, "environment.pins: must be a table"),
    ({"packages": ["timm"]}, "environment.packages: unknown key; allowed: requirements, pins"),
])
def test_a_bad_environment_table_names_the_key_and_value(tmp_path, env, says):
    with pytest.raises(scen.ScenarioError) as err:
        scen.from_dict({"matrix": MATRIX, "environment": env}, str(tmp_path / "s.toml"))
    assert any(says in p for p in err.value.problems), err.value.problems


@pytest.mark.parametrize("req", ["timm", "timm==0.9.16", "timm[extra]>=1; python_version<'3.10'",
                                 "git+https://example.org/x.git", "pkg @ https://example.org/pkg.whl"])
def test_requirement_forms_pip_takes(req):
    assert requirements.requirement_problem(req, ".") is None
