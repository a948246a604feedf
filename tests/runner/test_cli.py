"""The command line: list-models, env, dry runs, help."""
import hashlib
import json
import os
import platform
import sys

import numpy as np
import torch

import models
from harness.scenario import spec as scenario
from tests.runner.helpers import run_harness, write_scenario

INVALID_SIZE = """
model = ["cbam_classifier_tiny"]
mode = ["eval"]
batch_size = [2]
size = [16, 7]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]
"""


def _listing(*args):
    proc = run_harness("list-models", *args)
    assert proc.returncode == 0, proc.stderr
    rows = {}
    zoo, _, sources = proc.stdout.partition("\n\n")  # the zoo, then the model sources
    assert not args or not sources
    for line in zoo.splitlines():
        name, family, rest = line.split(None, 2)
        fault = rest.startswith("FAULT")
        sizes = rest.split("sizes=", 1)[1].split()[0]
        rows[name] = (family, fault, tuple(int(s) for s in sizes.split(",")))
    return list(rows), rows


def test_list_models_shows_the_zoo_and_hides_faults_unless_asked():
    names, rows = _listing()
    assert names == models.list_models(["*"]) and "mswr_net_legacy_ckpt_tiny" not in names
    spec = models.get_spec("cbam_classifier_tiny")
    assert rows["cbam_classifier_tiny"] == ("classification", False, tuple(spec.default_sizes))
    assert rows["cbam_classifier_base"][0] == "classification"
    assert rows["attention_mha_base"] == ("attention", False, (16, 256, 4096))
    for name in names:  # every line: the registry's family and default sizes
        spec = models.get_spec(name)
        assert rows[name] == (spec.family, False, tuple(spec.default_sizes)), name
    faults, fault_rows = _listing("--faults", "*legacy*")
    assert "mswr_net_legacy_ckpt_tiny" in faults
    assert faults == models.list_models(["*legacy*"], include_faults=True)
    for name in faults:  # flagged FAULT exactly where the registry says so
        spec = models.get_spec(name)
        assert fault_rows[name] == (spec.family, spec.fault, tuple(spec.default_sizes)), name
    assert fault_rows["mswr_net_legacy_ckpt_tiny"][1] is True
    missing = run_harness("list-models", "no_such*")
    assert missing.returncode == 2 and "no_such*" in missing.stderr and not missing.stdout


def test_list_models_shows_the_sources_and_a_sources_names():
    import timm
    import torchvision
    import transformers

    proc = run_harness("list-models")
    sources = proc.stdout.split("\n\n", 1)[1].splitlines()
    assert proc.returncode == 0 and sources[0].startswith("model sources")
    versions = {line.split()[0]: line.split()[1] for line in sources[1:]}
    assert versions == {"timm:": timm.__version__, "torchvision:": torchvision.__version__.split("+")[0],
                        "transformers:": transformers.__version__, "pkg.module:fn": "your"}
    vits = run_harness("list-models", "timm:vit_tiny_patch16_*", "transformers:GPT2LMHead*")
    assert vits.returncode == 0, vits.stderr
    names = vits.stdout.split()
    assert "timm:vit_tiny_patch16_224" in names and "transformers:GPT2LMHeadModel" in names
    assert all(n.startswith(("timm:vit_tiny_patch16_", "transformers:GPT2LMHead")) for n in names)
    plain = run_harness("list-models", "mypkg.nets:*")
    assert plain.returncode == 2 and "named in full" in plain.stderr


def test_env_prints_resolved_versions(tmp_path):
    outs = []
    for i in range(2):
        out = tmp_path / ("env%d.json" % i)
        proc = run_harness("env", "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        info = json.loads(out.read_text())
        assert json.loads(proc.stdout) == info  # what it prints is what it writes
        outs.append(info)
    info = outs[0]
    assert info["torch"] == torch.__version__ and info["numpy"] == np.__version__
    assert info["python"] == platform.python_version()
    assert info["cuda_build"] == torch.version.cuda
    assert info["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert info["cuda"] == (torch.version.cuda if torch.cuda.is_available() else None)
    assert type(info["threads"]) is int and 1 <= info["threads"] <= (os.cpu_count() or 1)
    assert info["optimize"] == 0 and os.path.realpath(info["executable"]) == os.path.realpath(sys.executable)
    assert set(info["backend"]) == {"allow_tf32_matmul", "allow_tf32_cudnn", "cudnn_benchmark", "deterministic"}
    assert all(type(v) is bool for v in info["backend"].values())
    # The fingerprint keys comparability: versions and device, stable from call to call.
    ident = "|".join(str(info[k]) for k in ("torch", "python", "device", "device_name", "cuda"))
    assert info["fingerprint"] == hashlib.sha1(ident.encode("utf-8")).hexdigest()[:12]
    assert outs[1]["fingerprint"] == info["fingerprint"]


def test_dry_run_lists_cases_and_writes_nothing(tmp_path):
    proc = run_harness("run", "smoke", "--dry-run", "--out", str(tmp_path / "x"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    expected = scenario.expand(scenario.load(scenario.resolve_path("smoke")))
    assert lines[-1] == "%d cases" % len(expected) and len(lines) - 1 == len(expected)
    assert lines[:-1] == [c.key + ("   [%s: %s]" % (r.status, r.reason) if r else "") for c, r in expected]
    assert "model=cbam_classifier_tiny;mode=train;batch=2;size=32;precision=fp32;checkpoint=none;device=cpu" in lines
    assert not (tmp_path / "x").exists()
    # A size the model rejects is listed, marked skipped with the model's reason, and counted.
    path = write_scenario(tmp_path, INVALID_SIZE)
    proc = run_harness("run", path, "--dry-run", "--out", str(tmp_path / "y"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    (_, reason), = [(c, r) for c, r in scenario.expand(scenario.load(path)) if r]
    assert lines == ["model=cbam_classifier_tiny;mode=eval;batch=2;size=16;precision=fp32;checkpoint=none;device=cpu",
                     "model=cbam_classifier_tiny;mode=eval;batch=2;size=7;precision=fp32;checkpoint=none;device=cpu"
                     "   [skipped: %s]" % reason.reason, "2 cases"]
    assert reason.status == "skipped" and "7" in reason.reason and not (tmp_path / "y").exists()


def test_help_explains_commands():
    proc = run_harness("run", "--help")
    assert proc.returncode == 0 and "--resume" in proc.stdout and "--only" in proc.stdout
