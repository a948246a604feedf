"""The noxfile's sessions: the list ``nox -l`` shows, ``ab`` (with a stand-in nox session) and ``lint`` (for real).

``ab`` builds the newest-torch environment, which cannot be made cheaply here, so it is
called with a stand-in for nox's session object that records ``install`` and ``run``;
what it runs is parsed with the real command line. ``lint`` runs for real (``nox -s
lint``, ruff, check-jsonschema, Biome through npx) on a small project laid out as this
one, clean and then with one fault for each tool. ``report`` and ``gate`` run for real
in tests/analysis/test_nox_analysis_sessions.py.
"""
import os
import re
import shutil
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from harness import environments

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip("nox", reason="nox is installed by the nox test sessions and .ci/run")
from tests.test_noxfile import _load_noxfile  # noqa: E402  (after the skip: it imports nox)

#: nox runs below never install an interpreter (`uv python install`), only find one.
NOX_ENV = dict(os.environ, TORCHMATRIX_NO_PYTHON_INSTALL="1", NO_COLOR="1")


class FakeSession:
    """Stands in for ``nox.Session``: records what a session function installs and runs."""

    def __init__(self, posargs=(), backend="uv"):
        self.posargs = list(posargs)
        self.virtualenv = SimpleNamespace(venv_backend=backend)
        self.installs = []
        self.runs = []

    def install(self, *args, **kwargs):
        self.installs.append(list(args))

    def run(self, *args, **kwargs):
        self.runs.append((list(args), kwargs))

    def error(self, message):
        raise RuntimeError("session.error: " + message)

    def skip(self, message):
        raise RuntimeError("session.skip: " + message)


def _requirement_names(installs):
    names = set()
    for call in installs:
        for arg in call:
            if not arg.startswith("-") and "://" not in arg:
                names.add(re.split(r"[<>=!;\[ ]", arg, maxsplit=1)[0].lower())
    return names


# --- nox -l ---------------------------------------------------------------------------------------------------

def test_nox_lists_every_session():
    noxfile = _load_noxfile()
    proc = subprocess.run([sys.executable, "-m", "nox", "-f", os.path.join(ROOT, "noxfile.py"), "-l"], cwd=ROOT,
                          env=NOX_ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    listed = {name: mark for mark, name in re.findall(r"^([*-]) (\S+) -> \S", proc.stdout, re.MULTILINE)}
    matrix = {"matrix(torch=%s)" % env[0] for env in noxfile.ENVIRONMENTS}
    assert {"1.10", "latest"} <= {env[0] for env in noxfile.ENVIRONMENTS}
    # matrix_rounds: the run that the matrix sessions notify once their environments are built
    expected = matrix | {"matrix_rounds", "report", "gate", "ab", "merge", "tests(torch=1.10)", "tests(torch=latest)",
                         "lint", "tensorboard"}
    assert set(listed) == expected, "missing: %s; not expected: %s" % (sorted(expected - set(listed)),
                                                                         sorted(set(listed) - expected))
    # `nox` alone runs the matrix, and only the matrix
    assert {name for name, mark in listed.items() if mark == "*"} == matrix


# --- ab -------------------------------------------------------------------------------------------------------

def test_ab_session_installs_newest_torch_and_the_gate_and_runs_harness_ab(monkeypatch):
    from harness.cli import build_parser
    from harness.commands import ab as ab_command

    noxfile = _load_noxfile()
    latest_pythons = noxfile.ENV_BY_LABEL["latest"][2]
    assert noxfile.ab.python == noxfile.pick_python(latest_pythons)[0]
    if noxfile.ab.python:
        assert environments._version_of(noxfile.ab.python) in latest_pythons

    monkeypatch.setenv("TORCHMATRIX_TORCH_INDEX_URL", "https://wheels.example.invalid/cpu")
    posargs = ["--base", "origin/main", "--head", "HEAD", "scenarios/smoke.toml", "--rounds", "5"]
    session = FakeSession(posargs)
    noxfile.ab(session)

    torch_install = [call for call in session.installs if "torch" in _requirement_names([call])]
    assert len(torch_install) == 1
    call = torch_install[0]
    assert call[call.index("--index-url") + 1] == "https://wheels.example.invalid/cpu"
    # the rounds need torch; the gate at the end runs in the same process: pandas and scipy
    assert {"torch", "numpy", "pandas", "scipy"} <= _requirement_names(session.installs)

    assert len(session.runs) == 1
    args, kwargs = session.runs[0]
    assert args[:4] == ["python", "-m", "harness", "ab"] and args[4:] == posargs
    assert kwargs["env"] == {"PYTHONPATH": ROOT}
    parsed = build_parser().parse_args(args[3:])
    assert parsed.run is ab_command.run
    assert (parsed.base, parsed.head, parsed.scenario, parsed.rounds) == ("origin/main", "HEAD",
                                                                          "scenarios/smoke.toml", 5)


# --- lint -----------------------------------------------------------------------------------------------------

def _need_tools(*names):
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but %s not on PATH (.ci/run installs them)" % ", ".join(missing))
        pytest.skip("nox -s lint needs %s on PATH" % ", ".join(missing))


CLEAN_JS = "function add(a, b) {\n  return a + b;\n}\nwindow.add = add;\n"
WORKFLOW = textwrap.dedent("""\
    name: t
    on: push
    jobs:
      t:
        runs-on: ubuntu-latest
        steps:
          - run: echo hi
""")

#: One fault per tool: file (relative to the project), text, what the failing tool prints.
FAULTS = {
    # a file deep in the tree: ruff checks the whole project, not a list of folders
    "ruff": ("tools/deep/mod.py", "import os\n", "F401"),
    # a job without runs-on
    "check-jsonschema": (".github/workflows/bad.yml", WORKFLOW.replace("    runs-on: ubuntu-latest\n", ""),
                         "'runs-on' is a required property"),
    # Biome calls this a warning only: --error-on-warnings makes it fail the session
    "biome": ("harness/analysis/report/assets/strict.js", '"use strict";\n' + CLEAN_JS, "noRedundantUseStrict"),
}


def _lint_project(path):
    """A project laid out as this one, clean: the noxfile, the linters' configuration, one file for each."""
    os.makedirs(os.path.join(path, "harness", "analysis", "report", "assets"))
    os.makedirs(os.path.join(path, ".github", "workflows"))
    os.makedirs(os.path.join(path, "tools"))
    os.makedirs(os.path.join(path, "harness", "scenario"))
    # the noxfile imports harness.environments, which reads harness.scenario.requirements, and the releases table
    for name in ("noxfile.py", "pyproject.toml", "biome.json", "harness/__init__.py", "harness/_zoo.py",
                 "harness/environments.py", "harness/fileio.py", "harness/scenario/__init__.py",
                 "harness/scenario/requirements.py", "harness/scenario/releases.py"):
        shutil.copy(os.path.join(ROOT, *name.split("/")), os.path.join(path, *name.split("/")))
    files = {
        "tools/ok.py": "import os\n\nprint(os.sep)\n",
        "harness/analysis/report/assets/ok.js": CLEAN_JS,
        "harness/analysis/report/assets/ok.css": ".x {\n  color: red;\n}\n",
        ".github/workflows/ok.yml": WORKFLOW,
    }
    for rel, text in files.items():
        with open(os.path.join(path, rel), "w") as fh:
            fh.write(text)


def _nox_lint(path):
    proc = subprocess.run([sys.executable, "-m", "nox", "-f", os.path.join(path, "noxfile.py"), "-s", "lint"],
                          cwd=path, env=NOX_ENV, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("fault", [None] + sorted(FAULTS))
def test_lint_session_runs_each_linter_and_fails_on_its_findings(tmp_path, fault):
    _need_tools("ruff", "check-jsonschema", "npx")
    project = str(tmp_path / "proj")
    _lint_project(project)
    if fault:
        rel, text, _ = FAULTS[fault]
        os.makedirs(os.path.dirname(os.path.join(project, rel)), exist_ok=True)
        with open(os.path.join(project, rel), "w") as fh:
            fh.write(text)
    code, log = _nox_lint(project)
    if fault is None:
        assert code == 0, log[-4000:]
        assert "nox > ruff check ." in log
        assert re.search(r"nox > check-jsonschema --builtin-schema vendor.github-workflows \S*ok\.yml", log), log
        assert re.search(r"nox > npx --yes @biomejs/biome@\S+ ci --error-on-warnings harness.analysis.report."
                         r"assets", log), log
        assert "Checked 2 files" in log   # Biome saw the report's JavaScript and CSS
    else:
        assert code != 0, log[-4000:]
        assert FAULTS[fault][2] in log, log[-4000:]
        assert "Session lint failed" in log


def test_lint_session_without_npx_says_how_to_get_it(monkeypatch):
    noxfile = _load_noxfile()
    real_which = shutil.which
    monkeypatch.setattr(noxfile.shutil, "which", lambda name, *a, **k: None if name == "npx" else real_which(name))
    session = FakeSession()
    with pytest.raises(RuntimeError, match="session.error: npx not found: install Node.js") as info:
        noxfile.lint(session)
    assert noxfile.REPORT_ASSETS in str(info.value)
    # the Python and workflow linters ran before
    assert [args[0] for args, _ in session.runs] == ["ruff", "check-jsonschema"]
