"""Which models a scenario names and whether each can run here: a library that cannot be
imported, a name or field its installed release lacks, or a requirement the environment could
not install, makes ``unsupported`` cases; a wrong zoo name or table is bad input; ``nox -s
matrix`` calls a name that no environment has bad input (``names_problems``)."""
import json
import os
import subprocess
import sys

import pytest

from harness import sources as _sources
from harness.scenario import models as scenario_models
from harness.scenario import requirements
from harness.scenario import spec as scen
from harness.sources import library_sources

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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
    inputs = {"x": {"shape": ["batch", 4]}}
    with pytest.raises(scen.ScenarioError) as err:
        scen.expand(_scenario(["nopkg_xyz.nets:build"], inputs={"nopkg_xyz.nets:build": inputs}))
    assert len(err.value.problems) == 1 and "cannot import module 'nopkg_xyz.nets'" in err.value.problems[0]


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


def test_a_name_this_release_lacks_makes_unsupported_cases_while_the_others_run(fresh_specs):
    timm_version = library_sources()["timm"].version()
    cases = scen.expand(_scenario(["timm:resnet_nope", "timm:resnet18", "cbam_classifier_tiny"],
                                  config={"timm:resnet_nope": {"num_classes": 3}}))
    got = {c.model: r for c, r in cases}
    assert got["timm:resnet18"] is None and got["cbam_classifier_tiny"] is None
    assert got["timm:resnet_nope"].status == "unsupported"
    assert got["timm:resnet_nope"].reason.startswith("not in timm %s: no model 'resnet_nope'" % timm_version)
    missing = scenario_models.missing_here(cases)
    assert list(missing) == ["timm:resnet_nope"]
    note = scenario_models.missing_note(missing)
    assert "\n" not in note and "cannot tell a misspelt name from one that another release has" in note
    assert scenario_models.missing_note({}) is None


@pytest.mark.skipif(hasattr(__import__("torchvision").models, "swin_t"), reason="torchvision has swin_t here")
def test_models_of_later_releases_are_dated_in_a_dry_run_of_an_old_environment(tmp_path, fresh_specs):
    """On torch 1.10 (torchvision 0.11, transformers 4.30): the lone run's note and dry-run lines."""
    path = tmp_path / "s.toml"
    path.write_text("[matrix]\n" + "\n".join("%s = %s" % (k, json.dumps(v)) for k, v in dict(
        MATRIX, model=["torchvision:swin_t", "transformers:Qwen2ForCausalLM", "torchvision:resnet18"]).items()))
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(path), "--dry-run"], cwd=str(tmp_path),
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    tv, hf = library_sources()["torchvision"].version(), library_sources()["transformers"].version()
    notes = [line for line in proc.stdout.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "2 model(s) not in this environment's library release" in notes[0]
    assert "[unsupported: not in torchvision %s: no model 'swin_t' (first in torchvision 0.13.0)]" % tv in proc.stdout
    assert "[unsupported: not in transformers %s: no model 'Qwen2ForCausalLM' (first in transformers 4.37.0)]" % (
        hf) in proc.stdout
    assert "model=torchvision:resnet18" in proc.stdout and proc.stdout.count("[unsupported") == 2
    # checked by nox -s matrix: no note
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(path), "--dry-run"], cwd=str(tmp_path),
                          env=dict(os.environ, PYTHONPATH=ROOT, **{scenario_models.NAMES_CHECKED_ENV_VAR: "1"}),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "note: " not in proc.stdout


def test_an_unknown_zoo_name_gets_close_names_not_the_whole_zoo():
    with pytest.raises(scen.ScenarioError) as err:
        scen.expand(_scenario(["cbam_clasifier_tiny"]))
    problem, = err.value.problems
    assert "matches no registered model (did you mean cbam_classifier_tiny" in problem
    assert "known:" not in problem and len(problem) < 400


def test_a_names_file_says_what_this_environment_lacks(tmp_path, fresh_specs):
    path = tmp_path / "s.toml"
    path.write_text("[matrix]\n" + "\n".join("%s = %s" % (k, json.dumps(v)) for k, v in dict(
        MATRIX, model=["timm:resnet18", "timm:resnet_nope", "cbam_classifier_tiny"]).items()))
    cases = scen.expand(scen.load(str(path)))
    written = scenario_models.write_names_file(cases, str(tmp_path / "out"), "torch-x")
    with open(written, encoding="utf-8") as fh:
        data = json.load(fh)
    assert data["env_label"] == "torch-x" and set(data["names"]) == {"timm:resnet18", "timm:resnet_nope"}
    assert data["names"]["timm:resnet18"] is None and data["names"]["timm:resnet_nope"].startswith("not in timm ")


def _names(out, label, names):
    os.makedirs(str(out), exist_ok=True)
    with open(os.path.join(str(out), label + scenario_models.NAMES_SUFFIX), "w", encoding="utf-8") as fh:
        json.dump({"env_label": label, "names": names}, fh)


def test_a_name_no_environment_has_is_a_problem_and_one_another_has_is_not(tmp_path):
    labels = ["torch-1.10", "torch-2.1", "torch-latest"]
    swin = "not in torchvision 0.11.3: no model 'swin_t' (first in torchvision 0.13.0)"
    typo = "not in timm 0.9.16: no model 'resnet1800'"
    _names(tmp_path, "torch-1.10", {"torchvision:swin_t": swin, "timm:resnet1800": typo,
                                    "timm:brand_new": "not in timm 0.9.16: no model 'brand_new'"})
    # alone: nothing to compare with (swin_t is dated by the table; the others cannot be told)
    problems, cannot_tell = scenario_models.names_problems(str(tmp_path), "torch-1.10", labels, "torch-latest")
    assert problems == [] and set(cannot_tell) == {"timm:resnet1800", "timm:brand_new"}
    # the newest environment (unpinned) has brand_new but not resnet1800: that one is misspelt
    _names(tmp_path, "torch-latest", {"torchvision:swin_t": None, "timm:brand_new": None,
                                      "timm:resnet1800": "not in timm 1.0.31: no model 'resnet1800'"})
    problems, cannot_tell = scenario_models.names_problems(str(tmp_path), "torch-1.10", labels, "torch-latest")
    assert cannot_tell == {} and len(problems) == 1
    assert problems[0].startswith("model 'timm:resnet1800': no environment's library release has it; here: " + typo)
    assert "in torch-latest: not in timm 1.0.31" in problems[0]
    # with the newest pinned, only every environment's file decides
    problems, cannot_tell = scenario_models.names_problems(str(tmp_path), "torch-1.10", labels, None)
    assert problems == [] and list(cannot_tell) == ["timm:resnet1800"]
    _names(tmp_path, "torch-2.1", {"timm:resnet1800": "not in timm 1.0.31: no model 'resnet1800'"})
    problems, _ = scenario_models.names_problems(str(tmp_path), "torch-1.10", labels, None)
    assert len(problems) == 1


def test_a_run_without_nox_records_the_versions_of_its_libraries(monkeypatch, fresh_specs):
    monkeypatch.delenv(requirements.REPORT_ENV_VAR, raising=False)
    monkeypatch.setenv(requirements.LIBRARY_VERSIONS_ENV_VAR, "")  # restored (unset) after the test
    monkeypatch.delenv(requirements.LIBRARY_VERSIONS_ENV_VAR)
    assert requirements.current_report() is None
    cases = scen.expand(_scenario(["timm:resnet18", "cbam_classifier_tiny"]))
    scenario_models.before_run(cases, dry_run=True, print_fn=lambda line: None)
    assert requirements.LIBRARY_VERSIONS_ENV_VAR not in os.environ  # a dry run sets nothing up
    lines = []
    scenario_models.before_run(cases, print_fn=lines.append)
    assert lines == []  # every name is in this release
    report = requirements.current_report()
    timm_version = library_sources()["timm"].version()
    assert report["installed"] == {"timm": timm_version} and report["failed"] == []
    assert report["chosen"]["timm"]["version"] == timm_version and "without nox" in report["chosen"]["timm"]["why"]
