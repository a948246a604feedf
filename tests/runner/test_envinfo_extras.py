"""The environment of a record with extra requirements (``harness.scenario.requirements`` report):
what was installed beside torch is in ``env`` and in the fingerprint; without a report
nothing changes."""
import hashlib

from harness.record.schema import SCHEMA_VERSION, Record
from harness.runner import envinfo
from harness.scenario import requirements

CASE = {"model": "m", "mode": "train", "batch_size": 2, "size": 16, "precision": "fp32", "checkpoint": "none",
        "device": "cpu", "channels_last": False, "compile": False, "sdpa_backend": "default",
        "python_optimized": False}


def _with_report(monkeypatch, tmp_path, installed, failed=(), chosen=None):
    path = str(tmp_path / ("torch-x-%d.requirements.json" % len(list(tmp_path.iterdir()))))
    requirements.write_report(path, requirements.make_report("torch-x", ["timm"], installed, list(failed),
                                                             chosen=chosen))
    monkeypatch.setenv(requirements.REPORT_ENV_VAR, path)
    return envinfo.environment("cpu")


def test_without_a_report_the_environment_and_its_fingerprint_are_as_before(monkeypatch):
    monkeypatch.delenv(requirements.REPORT_ENV_VAR, raising=False)
    info = envinfo.environment("cpu")
    assert "extra_packages" not in info and "extra_failed" not in info and "extra_chosen" not in info
    ident = "|".join(str(info[k]) for k in ("torch", "python", "device", "device_name", "cuda"))
    assert info["fingerprint"] == hashlib.sha1(ident.encode("utf-8")).hexdigest()[:12]
    monkeypatch.setenv(requirements.REPORT_ENV_VAR, "")  # the matrix session's value when nothing was asked for
    assert envinfo.environment("cpu")["fingerprint"] == info["fingerprint"]


def test_extra_packages_are_recorded_and_change_the_fingerprint(monkeypatch, tmp_path):
    monkeypatch.delenv(requirements.REPORT_ENV_VAR, raising=False)
    plain = envinfo.environment("cpu")["fingerprint"]
    info = _with_report(monkeypatch, tmp_path, {"timm": "0.9.16", "safetensors": "0.4.3"},
                        [("transformers==5.0", "No solution found")])
    assert info["extra_packages"] == {"safetensors": "0.4.3", "timm": "0.9.16"}
    assert info["extra_failed"] == ["transformers==5.0"]
    assert info["fingerprint"] != plain
    older = _with_report(monkeypatch, tmp_path, {"timm": "0.6.13", "safetensors": "0.4.3"})
    assert older["fingerprint"] not in (plain, info["fingerprint"])
    assert _with_report(monkeypatch, tmp_path, {"safetensors": "0.4.3", "timm": "0.9.16"})["fingerprint"] == \
        info["fingerprint"]  # the order of the report does not matter
    # nothing installed (everything failed): recorded, but comparable with the plain environment
    nothing = _with_report(monkeypatch, tmp_path, {}, [("timm", "not found")])
    assert nothing["extra_packages"] == {} and nothing["extra_failed"] == ["timm"]
    assert nothing["fingerprint"] == plain


def test_a_record_carrying_extra_packages_passes_the_writers_strict_check(monkeypatch, tmp_path):
    env = _with_report(monkeypatch, tmp_path, {"timm": "0.9.16"}, [("transformers==5.0", "No solution found")])
    obj = {"schema_version": SCHEMA_VERSION, "case_key": "k", "status": "ok", "case": dict(CASE),
           "env_label": "torch-x", "scenario": "s", "env": env}
    rec = Record.from_dict(obj, strict=True)
    assert rec.env.extra_packages == {"timm": "0.9.16"} and rec.env.extra_failed == ["transformers==5.0"]


def test_the_chosen_release_and_why_reach_the_record(monkeypatch, tmp_path):
    monkeypatch.delenv(requirements.REPORT_ENV_VAR, raising=False)
    plain = envinfo.environment("cpu")["fingerprint"]
    specs, chosen = requirements.resolve_for_torch(["timm", "torchvision", "transformers==4.30.2"], "1.10.2+cpu",
                                                   ["transformers==4.30.2"])
    env = _with_report(monkeypatch, tmp_path, {"timm": "0.9.16", "torchvision": "0.11.3", "transformers": "4.30.2"},
                       chosen=chosen)
    assert env["extra_chosen"]["torchvision"] == {
        "requirement": "torchvision==0.11.3", "version": "0.11.3",
        "why": "the torchvision built for torch 1.10 (torchvision's compatibility table)"}
    assert env["extra_chosen"]["timm"]["requirement"] in specs and "torch 1.10" in env["extra_chosen"]["timm"]["why"]
    assert env["extra_chosen"]["transformers"]["why"].startswith("the scenario's pin")
    # what was chosen explains the versions; only the versions themselves key comparability
    same_versions = _with_report(monkeypatch, tmp_path, {"timm": "0.9.16", "torchvision": "0.11.3",
                                                         "transformers": "4.30.2"})
    assert "extra_chosen" in same_versions and same_versions["extra_chosen"] == {}
    assert same_versions["fingerprint"] == env["fingerprint"] != plain
    obj = {"schema_version": SCHEMA_VERSION, "case_key": "k", "status": "ok", "case": dict(CASE),
           "env_label": "torch-x", "scenario": "s", "env": env}
    assert Record.from_dict(obj, strict=True).env.extra_chosen == env["extra_chosen"]
