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


def test_bare_library_names_resolve_per_torch_and_the_users_pins_win():
    specs = ["timm", "torchvision", "transformers", "einops", "/abs/my-project"]
    out, chosen = requirements.resolve_for_torch(specs, "1.10.2", [])
    assert out == ["timm==0.9.16", "torchvision==0.11.3", "transformers==4.30.2", "einops", "/abs/my-project"]
    assert set(chosen) == {"timm", "torchvision", "transformers"}
    assert chosen["torchvision"]["why"] == "the torchvision built for torch 1.10 (torchvision's compatibility table)"
    assert "newest timm known to run on torch 1.10" in chosen["timm"]["why"]
    # a pin for this environment (or --with) wins; a version range the scenario wrote is kept
    out, chosen = requirements.resolve_for_torch(["timm", "torchvision>=0.11", "transformers"], "1.10.2",
                                                 ["timm==0.6.13"])
    assert out == ["timm", "torchvision>=0.11", "transformers==4.30.2"]
    assert "pin" in chosen["timm"]["why"] and chosen["torchvision"]["why"] == "as the scenario asks"
    # torchvision is matched to every torch of the table; a torch it does not list is the installer's choice
    assert requirements.resolve_for_torch(["torchvision"], "1.13.1+cpu", [])[0] == ["torchvision==0.14.1"]
    out, chosen = requirements.resolve_for_torch(["torchvision", "timm"], "2.15.0", [])
    assert out == ["torchvision", "timm"] and "torch==2.15.0 pinned" in chosen["timm"]["why"]


def test_the_report_says_what_was_chosen_and_the_version_installed():
    _, chosen = requirements.resolve_for_torch(["timm"], "1.10.2", [])
    report = requirements.make_report("torch-1.10", ["timm"], {"timm": "0.9.16"}, [], "1.10.2", chosen,
                                      python="/usr/bin/python3.9 (found)")
    assert report["chosen"] == {"timm": {"requirement": "timm==0.9.16", "version": "0.9.16",
                                         "why": chosen["timm"]["why"]}}
    assert report["python"] == "/usr/bin/python3.9 (found)" and report["requested"] == ["timm"]


def test_the_table_matches_every_environment_of_the_matrix():
    from harness.environments import ENVIRONMENTS
    from harness.scenario.releases import NEWEST_FOR_TORCH, TORCHVISION_FOR_TORCH

    for label, torch_req, _, _ in ENVIRONMENTS:
        if label == "latest":
            continue
        assert torch_req.startswith("torch==" + label + "."), torch_req
        specs, chosen = requirements.resolve_for_torch(["torchvision", "transformers"], torch_req[len("torch=="):], [])
        assert specs[0] == "torchvision==" + TORCHVISION_FOR_TORCH[label]
        assert specs[1] == NEWEST_FOR_TORCH[label]["transformers"] and "known to run" in chosen["transformers"]["why"]


def test_this_environment_runs_the_tables_release_of_each_library():
    # `nox -s tests` installs the model libraries as the matrix resolves them for this torch, so the suite
    # (tests/sources) runs the table's row for this release; here: it is that row that got installed.
    from importlib import metadata

    import torch

    from harness.scenario.releases import LIBRARIES

    specs, chosen = requirements.resolve_for_torch(list(LIBRARIES), torch.__version__, [])
    pinned = [spec for spec in specs if "==" in spec]
    if not pinned:
        pytest.skip("the table has no row for torch %s: each library is the installer's newest" % torch.__version__)
    for spec in pinned:
        name, version = spec.split("==")
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            pytest.fail("%s is not installed: `nox -s tests` installs %s (%s)" % (name, spec, chosen[name]["why"]))
        assert installed == version, "%s %s installed; the table asks for %s (%s)" % (
            name, installed, spec, chosen[name]["why"])
