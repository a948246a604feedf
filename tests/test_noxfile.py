"""Interpreter discovery, the skip of an environment whose Python is missing, and the
extra requirements (``[environment]``, ``--with``) an environment installs beside torch.

The skip runs nox for real in a subprocess with an environment where no interpreter can
be found (empty PATH apart from nox's own Python, no pyenv, no uv install allowed).
"""
import json
import os
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from harness import environments

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
nox = pytest.importorskip("nox", reason="nox is installed by the nox test sessions and .ci/run")


def _load_noxfile():
    sys.path.insert(0, ROOT)
    try:
        import noxfile
    finally:
        sys.path.remove(ROOT)
    return noxfile


def test_find_python_reports_why_it_failed(monkeypatch):
    _load_noxfile()  # skips where nox is missing
    monkeypatch.setenv("TORCHMATRIX_NO_PYTHON_INSTALL", "1")
    path, why = environments.find_python("3.99")
    assert path is None and "3.99" in why
    here = "%d.%d" % sys.version_info[:2]
    assert environments._version_of(sys.executable) == here


def test_run_args_split_scenario_and_options():
    noxfile = _load_noxfile()
    assert noxfile._run_args([]) == ("default", [])
    assert noxfile._run_args(["smoke", "--resume"]) == ("smoke", ["--resume"])
    assert noxfile._run_args(["--only", "model=x", "full"]) == ("full", ["--only", "model=x"])


def test_missing_interpreter_skips_the_environment_with_a_reason(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(sys.executable, str(bindir / "python"))
    env = {
        "PATH": str(bindir),
        "HOME": str(tmp_path),
        "PYENV_ROOT": str(tmp_path / "no-pyenv"),
        "TORCHMATRIX_NO_PYTHON_INSTALL": "1",
        "PYTHONPATH": ROOT,
    }
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "nox", "-f", os.path.join(ROOT, "noxfile.py"),
                           "-s", "matrix(torch=1.10)", "--", "smoke", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "Traceback" not in text
    assert "skipped" in text and "Python 3.9 not found" in text
    info = json.loads((out / "torch-1.10.env.json").read_text())
    assert info["status"] == "skipped" and "Python 3.9 not found" in info["reason"]


# --- extra requirements: [environment] and --with ---------------------------------------------
#
# The installs run for real, offline (UV_OFFLINE, PIP_NO_INDEX), into a throwaway virtualenv
# with small wheels made here: a stand-in for torch 1.10.2 (numpy and setuptools too), so
# that resolving "against this torch" is the installer's real work without downloading
# torch. A local project folder is not used: building one needs its build backend from
# PyPI. ``VenvSession`` stands in for nox's session object only to aim it at that
# virtualenv; everything but ``python -m harness`` (recorded) runs for real.

def _wheel(folder, name, version, requires=()):
    """A pure-Python wheel of ``name`` (one module) in ``folder``; its path."""
    import base64
    import hashlib
    import zipfile

    module = name.replace("-", "_")
    dist_info = "%s-%s.dist-info" % (module, version)
    files = {module + "/__init__.py": "__version__ = %r\n" % version,
             dist_info + "/METADATA": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n%s" % (
                 name, version, "".join("Requires-Dist: %s\n" % r for r in requires)),
             dist_info + "/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    os.makedirs(str(folder), exist_ok=True)
    path = os.path.join(str(folder), "%s-%s-py3-none-any.whl" % (module, version))
    record = []
    with zipfile.ZipFile(path, "w") as whl:
        for arcname, text in files.items():
            whl.writestr(arcname, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (arcname, digest, len(text)))
        whl.writestr(dist_info + "/RECORD", "\n".join(record + [dist_info + "/RECORD,,"]) + "\n")
    return path


class VenvSession:
    """Stands in for ``nox.Session`` over a real virtualenv: ``run`` and ``install`` run in it,
    except ``python -m harness ...``, which is recorded in ``harness_runs``."""

    def __init__(self, venv_dir, backend, posargs=(), invoked_from=None):
        self.bin = os.path.join(str(venv_dir), "bin")
        self.virtualenv = SimpleNamespace(venv_backend=backend, location=str(venv_dir))
        self.posargs = list(posargs)
        self.invoked_from = invoked_from
        self.harness_runs, self.logs, self.warnings, self.installs, self.notified = [], [], [], [], []

    def _exec(self, cmd, env=None):
        env = dict(os.environ, VIRTUAL_ENV=self.virtualenv.location, **(env or {}))
        env["PATH"] = self.bin + os.pathsep + env.get("PATH", "")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError("%s failed: %s" % (cmd, proc.stdout + proc.stderr))
        return proc.stdout

    def run(self, *args, env=None, silent=False, **kwargs):
        args = list(args)
        if args[1:3] == ["-m", "harness"]:
            self.harness_runs.append((args, env))
            return None
        if args[0] == "python":
            args[0] = os.path.join(self.bin, "python")
        out = self._exec(args, env)
        return out if silent else None

    def install(self, *args, env=None, **kwargs):
        self.installs.append(list(args))
        python = os.path.join(self.bin, "python")
        cmd = ["uv", "pip", "install", "--python", python] if self.virtualenv.venv_backend == "uv" else \
            [python, "-m", "pip", "install"]
        self._exec(cmd + list(args), env)

    def log(self, message):
        self.logs.append(message)

    def notify(self, target, posargs=None):
        self.notified.append((target, posargs))

    def warn(self, message):
        self.warnings.append(message)

    def error(self, message):
        raise RuntimeError("session.error: " + message)

    def skip(self, message):
        raise RuntimeError("session.skip: " + message)


BACKENDS = [pytest.param("uv", marks=pytest.mark.skipif(shutil.which("uv") is None, reason="uv not on PATH")),
            "venv"]


@pytest.fixture
def fake_torch(tmp_path, monkeypatch):
    """Wheels standing in for torch 1.10.2 and its environment's pins; offline installers."""
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("TORCHMATRIX_TORCH_INDEX_URL", raising=False)
    folder = tmp_path / "base-wheels"
    return [_wheel(folder, "torch", "1.10.2"), _wheel(folder, "numpy", "1.26.4"),
            _wheel(folder, "setuptools", "69.5.1")]


def _venv_session(tmp_path, backend, fake_torch, **kwargs):
    venv = tmp_path / "venv"
    if backend == "uv":
        subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    session = VenvSession(venv, backend, **kwargs)
    session.install(*fake_torch)
    return session


def test_with_args_are_taken_out_of_posargs_with_paths_made_absolute(tmp_path):
    noxfile = _load_noxfile()
    (tmp_path / "my-project").mkdir()
    posargs = ["--with", "timm>=0.9", "smoke", "--with=./my-project", "--only", "model=x", "--with", "transformers"]
    specs, rest = noxfile._with_args(posargs, str(tmp_path))
    assert specs == ["timm>=0.9", str(tmp_path / "my-project"), "transformers"]
    assert rest == ["smoke", "--only", "model=x"]
    assert noxfile._run_args(rest) == ("smoke", ["--only", "model=x"])
    assert noxfile._with_args(["smoke"], str(tmp_path)) == ([], ["smoke"])
    for bad, says in ([["smoke", "--with"], "--with (nothing)"], [["--with=./nope"], "nope does not"],
                      [["--with", "not a name!"], "'not a name!'"]):
        with pytest.raises(ValueError, match=re.escape(says)):
            noxfile._with_args(bad, str(tmp_path))


def test_extras_are_installed_with_torch_pinned_to_the_installed_one_and_the_index_as_an_extra(monkeypatch):
    _load_noxfile()  # skips where nox is missing
    monkeypatch.setenv("TORCHMATRIX_TORCH_INDEX_URL", "https://wheels.example.invalid/cpu")
    for backend, head in (("uv", ["pip", "install", "--python"]), ("venv", ["-m", "pip", "install"])):
        session = SimpleNamespace(virtualenv=SimpleNamespace(venv_backend=backend), bin="/venv/bin")
        cmd = environments._install_command(session)
        assert cmd[1:4] == head and cmd[-2:] == ["--extra-index-url", "https://wheels.example.invalid/cpu"]
        assert "--index-url" not in cmd  # PyPI stays: the extras are not on the torch index


@pytest.mark.parametrize("backend", BACKENDS)
def test_install_extras_installs_what_resolves_and_reports_what_does_not(tmp_path, fake_torch, backend):
    from harness.scenario import requirements

    _load_noxfile()  # skips where nox is missing
    session = _venv_session(tmp_path, backend, fake_torch)
    wheels = tmp_path / "wheels"
    good = _wheel(wheels, "tinyextra", "0.3", ["numpy"])
    new_torch = _wheel(wheels, "needsnewtorch", "1.0", ["torch>=2"])  # cannot resolve against torch 1.10.2
    report_file = str(tmp_path / "out" / "torch-1.10.requirements.json")
    specs = [good, new_torch, "torchmatrix-no-such-project"]
    assert environments.install_extras(session, "1.10", specs, report_file) == report_file

    report = requirements.load_report(report_file)
    assert report["env_label"] == "torch-1.10" and report["torch"] == "1.10.2" and report["requested"] == specs
    assert report["installed"] == {"tinyextra": "0.3"}
    failed = {f["requirement"]: f["reason"] for f in report["failed"]}
    assert set(failed) == {new_torch, "torchmatrix-no-such-project"}
    assert "torch" in failed[new_torch] and "\n" not in failed[new_torch]
    assert all(0 < len(reason) <= requirements.MESSAGE_LIMIT_CHARS for reason in failed.values())
    versions = json.loads(session.run("python", "-c", environments._LIST_INSTALLED, silent=True,
                                      env={"PYTHONPATH": ROOT}))
    assert versions["torch"] == "1.10.2" and versions["numpy"] == "1.26.4"  # the resolver kept torch and the pins
    assert len(session.warnings) == 2 and all("the run goes on" in w for w in session.warnings)

    # nothing asked for: no report (one of an earlier run is removed)
    assert environments.install_extras(session, "1.10", [], report_file) is None
    assert not os.path.exists(report_file)


def _scenario(folder, environment):
    text = open(os.path.join(ROOT, "scenarios", "smoke.toml"), encoding="utf-8").read()
    path = folder / "extras.toml"
    path.write_text(text.replace('name = "smoke"', 'name = "extras"') + "\n" + environment, encoding="utf-8")
    return str(path)


def test_matrix_installs_the_scenarios_requirements_and_with_beside_torch_and_names_the_report(
        tmp_path, fake_torch, monkeypatch):
    from harness.scenario import requirements

    noxfile = _load_noxfile()
    backend = "uv" if shutil.which("uv") else "venv"
    wheels = tmp_path / "wheels"
    _wheel(wheels, "tinyextra", "0.3")
    _wheel(wheels, "needsnewtorch", "1.0", ["torch>=2"])
    other = _wheel(tmp_path / "here", "tinyother", "0.1")
    scenario = _scenario(tmp_path, "\n".join([
        '[environment]', 'requirements = ["./wheels/tinyextra-0.3-py3-none-any.whl"]',
        '[environment.pins]', '"torch-1.10" = ["./wheels/needsnewtorch-1.0-py3-none-any.whl"]',
        '"torch-latest" = ["not-used-here"]']))
    out = str(tmp_path / "results")
    posargs = ["--with", "here/tinyother-0.1-py3-none-any.whl", scenario, "--out", out, "--with=torchmatrix-nope"]
    session = _venv_session(tmp_path, backend, fake_torch, posargs=posargs, invoked_from=str(tmp_path))
    monkeypatch.setattr(noxfile, "pick_python", lambda versions: (sys.executable, "found"))
    monkeypatch.setattr(noxfile, "install_torch", lambda session, label: None)  # done by _venv_session
    noxfile._VARIANTS.clear()
    noxfile.matrix(session, torch="1.10")

    # nothing runs in the environment's own session: it joins the interleaved run of matrix_rounds
    assert session.harness_runs == [] and session.notified == [("matrix_rounds", posargs)]
    report_file = os.path.join(out, "torch-1.10.requirements.json")
    assert noxfile._VARIANTS == [{"label": "torch-1.10", "python": os.path.join(session.virtualenv.location, "bin",
                                                                                 "python"),
                                  "env": {"PYTHONPATH": ROOT, requirements.REPORT_ENV_VAR: report_file}}]
    noxfile.matrix_rounds(session)
    (args, env), = session.harness_runs
    variant_file = os.path.join(out, ".variants", "torch-1.10.json")
    assert args == [sys.executable, "-m", "harness", "matrix", scenario, "--variant-file", variant_file, "--out", out]
    assert json.loads(open(variant_file, encoding="utf-8").read()) == noxfile._VARIANTS[0]
    assert session.notified[-1] == ("report", [out])
    report = requirements.load_report(report_file)
    assert report["requested"] == [str(wheels / "tinyextra-0.3-py3-none-any.whl"),
                                   str(wheels / "needsnewtorch-1.0-py3-none-any.whl"), other, "torchmatrix-nope"]
    assert report["installed"] == {"tinyextra": "0.3", "tinyother": "0.1"}
    assert [f["requirement"] for f in report["failed"]] == [str(wheels / "needsnewtorch-1.0-py3-none-any.whl"),
                                                            "torchmatrix-nope"]
    note = requirements.failed_note(report)
    assert note.startswith("not installed in this environment: ") and "torchmatrix-nope (" in note

    # the same output folder without extras: the old report goes, the run is told there is none
    session.posargs = ["smoke", "--out", out]
    noxfile._VARIANTS.clear()
    noxfile.matrix(session, torch="1.10")
    assert noxfile._VARIANTS[0]["env"][requirements.REPORT_ENV_VAR] == ""
    assert not os.path.exists(report_file)


def test_matrix_stops_before_installing_on_a_bad_environment_table(tmp_path, monkeypatch):
    noxfile = _load_noxfile()
    scenario = _scenario(tmp_path, '[environment]\nrequirements = ["./missing-project"]\n')
    installed = []
    monkeypatch.setattr(noxfile, "install_torch", lambda session, label: installed.append(label))
    session = VenvSession(tmp_path / "no-venv", "uv", posargs=[scenario, "--out", str(tmp_path / "out")])
    with pytest.raises(RuntimeError, match=r"session.error: scenario .*extras.toml has 1 problem"):
        noxfile.matrix(session, torch="1.10")
    assert installed == [] and session.harness_runs == [] and session.notified == []
    assert any("missing-project does not" in line for line in session.logs), session.logs
    with pytest.raises(RuntimeError, match=r"session.error: --with '\./nope'"):
        noxfile.matrix(VenvSession(tmp_path, "uv", posargs=["smoke", "--with", "./nope"],
                                   invoked_from=str(tmp_path)), torch="1.10")
    assert installed == []


class _HereSession(VenvSession):
    """A session whose ``python`` is this test's interpreter (it has the libraries of the sources)."""

    def __init__(self, folder):
        super().__init__(folder, "venv")
        self.bin = os.path.dirname(sys.executable)


def _library_scenario(folder, models, name):
    text = open(os.path.join(ROOT, "scenarios", "smoke.toml"), encoding="utf-8").read()
    text = re.sub(r"(?m)^model = .*$", "model = %s" % json.dumps(models), text)
    path = folder / (name + ".toml")
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_name_the_newest_environment_lacks_stops_the_matrix_before_any_case(tmp_path, monkeypatch):
    noxfile = _load_noxfile()
    monkeypatch.setattr(noxfile, "_NAMES_FAILED", [])  # the noxfile is loaded once per process
    out = str(tmp_path / "out")
    typo = _library_scenario(tmp_path, ["timm:resnet18", "timm:resnet1800"], "typo")
    session = _HereSession(tmp_path)
    with pytest.raises(RuntimeError, match=r"session.error: 1 model name\(s\) that no environment's library release"):
        noxfile._check_names(session, typo, out, "torch-latest", None, newest_unpinned=True)
    problem, = [line for line in session.logs if line.startswith("error: ")]
    assert problem.startswith("error: model 'timm:resnet1800': no environment's library release has it; here: "
                              "not in timm ")
    # an older environment, after the newest: the same name is refused there too
    with pytest.raises(RuntimeError, match="session.error: 1 model name"):
        noxfile._check_names(_HereSession(tmp_path), typo, out, "torch-1.10", None, newest_unpinned=True)
    # a name the table dates is a newer name: decided, nothing refused
    dated = _library_scenario(tmp_path, ["timm:resnet18", "torchvision:swin_t"], "dated")
    assert noxfile._check_names(_HereSession(tmp_path), dated, str(tmp_path / "o2"), "torch-1.10", None, True)
    # alone, with the newest pinned: cannot tell (the run says so itself)
    assert not noxfile._check_names(_HereSession(tmp_path), typo, str(tmp_path / "o3"), "torch-1.10", None, False)
    # once a name is refused, the environments after it are not built: the same error is not repeated
    installed = []
    monkeypatch.setattr(noxfile, "install_torch", lambda session, label: installed.append(label))
    later, variants = VenvSession(tmp_path / "no-venv", "uv", posargs=[typo, "--out", out]), list(noxfile._VARIANTS)
    with pytest.raises(RuntimeError, match=r"session.skip: not built: 1 model name\(s\) that no environment"):
        noxfile.matrix(later, torch="2.0")
    assert installed == [] and later.logs == [] and noxfile._VARIANTS == variants


def test_the_matrix_runs_the_newest_environment_first():
    noxfile = _load_noxfile()
    ids = [p.id for p in noxfile._matrix_params()]
    assert ids[0] == "torch=latest" and sorted(ids) == sorted("torch=" + e[0] for e in noxfile.ENVIRONMENTS)
    assert noxfile.ENV_BY_LABEL["1.13"][2][0] == "3.10"  # torchvision 0.14.1 has no Python 3.11 wheel
