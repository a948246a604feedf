"""Which models a scenario names and whether each can run here: a library that cannot be
imported, or a requirement the environment could not install, makes ``unsupported`` cases;
a wrong name or table is bad input."""
import json
import sys

import pytest

from harness import sources as _sources
from harness.scenario import requirements
from harness.scenario import spec as scen

MATRIX = {"mode": ["train"], "batch_size": [2], "size": [32], "precision": ["fp32"], "checkpoint": ["none"],
          "device": ["cpu"]}


def _scenario(models, **tables):
    data = {"matrix": dict(MATRIX, model=models)}
    data.update(tables)
    return scen.from_dict(data, "s.toml")


@pytest.fixture
def fresh_specs(monkeypatch):
    monkeypatch.setattr(_sources, "_SPECS", {})  # specs are cached per process


def _failed_report(tmp_path, monkeypatch, requirement="timm==99"):
    path = tmp_path / "torch-x.requirements.json"
    requirements.write_report(str(path), requirements.make_report(
        "torch-x", [requirement], {}, [(requirement, "No solution found: %s does not exist" % requirement)]))
    monkeypatch.setenv(requirements.REPORT_ENV_VAR, str(path))


def test_a_library_that_does_not_import_makes_unsupported_cases(monkeypatch, fresh_specs, tmp_path):
    monkeypatch.setitem(sys.modules, "timm", None)  # what `import timm` meets where timm is not installed
    cases = scen.expand(_scenario(["timm:resnet18", "cbam_classifier_tiny"]))
    got = {c.model: r for c, r in cases}
    assert got["cbam_classifier_tiny"] is None
    assert got["timm:resnet18"].status == "unsupported" and "cannot import timm" in got["timm:resnet18"].reason
    _failed_report(tmp_path, monkeypatch)
    cases = scen.expand(_scenario(["timm:resnet18", "timm:vit_*"]))
    reasons = {c.model: r.reason for c, r in cases}
    assert set(reasons) == {"timm:resnet18", "timm:vit_*"}  # a glob it cannot expand is kept as written
    assert all("not installed in this environment: timm==99 (No solution found" in r for r in reasons.values())


def test_an_install_note_names_only_what_could_provide_the_library(monkeypatch, fresh_specs, tmp_path):
    monkeypatch.setitem(sys.modules, "transformers", None)
    _failed_report(tmp_path, monkeypatch, "timm==99")  # timm failed; transformers is missing for another reason
    (case, not_run), = scen.expand(_scenario(["transformers:GPT2LMHeadModel"]))
    assert "cannot import transformers" in not_run.reason and "not installed in this environment" not in \
        not_run.reason


def test_unsupported_cases_of_a_missing_library_take_its_fallback_size(monkeypatch, fresh_specs):
    monkeypatch.setitem(sys.modules, "transformers", None)
    sc = scen.from_dict({"matrix": dict(MATRIX, model=["transformers:GPT2LMHeadModel"], size=["default"])}, "s.toml")
    (case, not_run), = scen.expand(sc)
    assert case.size == 128 and not_run.status == "unsupported"


@pytest.mark.parametrize("failed", ["/abs/proj", "nopkg-xyz>=2"])
def test_a_user_package_that_does_not_import_is_bad_input_unless_its_install_failed(monkeypatch, tmp_path, failed):
    with pytest.raises(scen.ScenarioError, match="cannot import module 'nopkg_xyz.nets'"):
        scen.expand(_scenario(["nopkg_xyz.nets:build"]))
    _failed_report(tmp_path, monkeypatch)  # another requirement failed: a misspelt module is still bad input
    with pytest.raises(scen.ScenarioError, match="cannot import module 'nopkg_xyz.nets'"):
        scen.expand(_scenario(["nopkg_xyz.nets:build"]))
    _failed_report(tmp_path, monkeypatch, failed)  # a path, or the project of that name, failed here
    (case, not_run), = scen.expand(_scenario(["nopkg_xyz.nets:build"]))
    assert not_run.status == "unsupported" and "not installed in this environment: " + failed in not_run.reason


def test_a_key_for_a_name_a_missing_library_cannot_expand_is_kept(monkeypatch, fresh_specs):
    monkeypatch.setitem(sys.modules, "timm", None)
    sc = _scenario(["timm:vit_tiny*"], config={"timm:vit_tiny_patch16_224": {"img_size": 32}})
    (case, not_run), = scen.expand(sc)
    assert case.model == "timm:vit_tiny*" and not_run.status == "unsupported"


def test_a_failed_model_is_the_one_problem_told():
    with pytest.raises(scen.ScenarioError) as err:
        scen.expand(_scenario(["timm:resnet_nope"], config={"timm:resnet_nope": {"num_classes": 3}}))
    assert len(err.value.problems) == 1 and "has no model 'resnet_nope'" in err.value.problems[0]


def test_option_tables_must_name_a_model_once():
    inputs = {"x": {"shape": ["batch", 4]}}
    with pytest.raises(scen.ScenarioError, match="config.'timm:resnet50': names none of the scenario's models"):
        scen.expand(_scenario(["timm:resnet18"], config={"timm:resnet50": {"num_classes": 3}}))
    with pytest.raises(scen.ScenarioError, match="model 'timm:resnet18' is named by 'timm:\\*' and 'timm:resnet18'"):
        scen.expand(_scenario(["timm:resnet18"], config={"timm:*": {}, "timm:resnet18": {"num_classes": 3}}))
    with pytest.raises(scen.ScenarioError, match="an \\[inputs\\] table is for a plain nn.Module"):
        scen.expand(_scenario(["timm:resnet18"], inputs={"timm:resnet18": inputs}))
    with pytest.raises(scen.ScenarioError, match="a zoo model is configured by its registered variants"):
        scen.expand(_scenario(["cbam_classifier_tiny"], config={"cbam_classifier_tiny": {"width": 3}}))


def test_a_glob_key_configures_every_model_it_matches():
    sc = _scenario(["timm:resnet18", "timm:resnet34"], config={"timm:resnet*": {"num_classes": 7}})
    assert [c.model for c, _ in scen.expand(sc)] == ["timm:resnet18", "timm:resnet34"]
    assert sc.model_options("timm:resnet34") == {"config": {"num_classes": 7}, "inputs": {}}


def test_dry_run_shows_why_a_case_will_not_run(tmp_path, monkeypatch, capsys, fresh_specs):
    from harness.commands.run import run_scenario

    monkeypatch.setitem(sys.modules, "torchvision", None)
    path = tmp_path / "s.toml"
    path.write_text("[matrix]\n" + "\n".join("%s = %s" % (k, json.dumps(v)) for k, v in
                                             dict(MATRIX, model=["torchvision:resnet18"]).items()))
    assert run_scenario(str(path), dry_run=True) == 0
    out = capsys.readouterr().out
    assert "model=torchvision:resnet18" in out and "[unsupported: cannot import torchvision" in out
