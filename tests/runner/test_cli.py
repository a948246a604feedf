"""The command line: list-models, env, dry runs, help."""
import json

from tests.runner.helpers import run_harness


def test_list_models_shows_the_zoo_and_hides_faults_unless_asked():
    proc = run_harness("list-models")
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert "cbam_classifier_tiny" in names and "mswr_net_legacy_ckpt_tiny" not in names
    faults = run_harness("list-models", "--faults", "*legacy*")
    assert faults.returncode == 0 and "FAULT" in faults.stdout and "mswr_net_legacy_ckpt_tiny" in faults.stdout
    assert run_harness("list-models", "no_such*").returncode == 2


def test_env_prints_resolved_versions(tmp_path):
    out = tmp_path / "env.json"
    proc = run_harness("env", "--out", str(out))
    assert proc.returncode == 0
    info = json.loads(out.read_text())
    assert {"torch", "python", "numpy", "cuda", "cudnn", "fingerprint", "backend"} <= set(info)
    assert info["backend"]["allow_tf32_matmul"] in (True, False)


def test_dry_run_lists_cases_and_writes_nothing(tmp_path):
    proc = run_harness("run", "smoke", "--dry-run", "--out", str(tmp_path / "x"))
    assert proc.returncode == 0 and proc.stdout.strip().endswith("cases")
    assert "model=cbam_classifier_tiny;mode=train" in proc.stdout
    assert not (tmp_path / "x").exists()


def test_help_explains_commands():
    proc = run_harness("run", "--help")
    assert proc.returncode == 0 and "--resume" in proc.stdout and "--only" in proc.stdout
