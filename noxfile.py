"""The environment matrix and the everyday sessions.

``nox -s matrix`` builds one virtual environment per PyTorch release, each with the
newest Python that has wheels for it, and runs a scenario in each (posargs: the
scenario, then any ``torchmatrix run`` options). One environment alone:
``nox -s "matrix(torch=1.10)"``. Interpreters are found on PATH, in pyenv's
versions folder and among uv-managed ones; a missing one is installed with
``uv python install`` when that works, else that environment is skipped with a
one-line reason (also written to ``results/<scenario>/torch-X.env.json`` so the
report lists it).

Environment variables:
  TORCHMATRIX_TORCH_INDEX_URL  wheel index for torch (a CPU-only or CUDA flavour)
  TORCHMATRIX_NO_PYTHON_INSTALL=1  never try ``uv python install``
"""
import glob
import json
import os
import re
import shutil
import subprocess
from typing import Dict, List, Optional, Tuple

import nox

ROOT = os.path.dirname(os.path.abspath(__file__))

# label, torch requirement, Pythons with wheels (newest first), extra pins.
# torch <= 2.2 breaks on NumPy 2 ("Numpy is not available") and needs pkg_resources
# (setuptools < 70) at import; torch 2.0's compile refuses Python 3.11, hence 3.10.
ENVIRONMENTS: List[Tuple[str, str, Tuple[str, ...], Tuple[str, ...]]] = [
    ("1.10", "torch==1.10.2", ("3.9",), ("numpy<2", "setuptools<70")),
    ("1.11", "torch==1.11.0", ("3.10", "3.9"), ("numpy<2", "setuptools<70")),
    ("1.12", "torch==1.12.1", ("3.10", "3.9"), ("numpy<2", "setuptools<70")),
    ("1.13", "torch==1.13.1", ("3.11", "3.10", "3.9"), ("numpy<2", "setuptools<70")),
    ("2.0", "torch==2.0.1", ("3.10", "3.9"), ("numpy<2", "setuptools<70")),
    ("2.1", "torch==2.1.2", ("3.11", "3.10", "3.9"), ("numpy<2", "setuptools<70")),
    ("latest", "torch", ("3.13", "3.12", "3.11"), ()),
]
ANALYSIS_PYTHONS = ("3.13", "3.12", "3.11", "3.10")
ANALYSIS_DEPS = ("pandas>=1.5", "matplotlib>=3.6", "scipy>=1.9", "orjson>=3.6")

nox.options.default_venv_backend = "uv|venv"
nox.options.sessions = ["matrix"]


# --- interpreter discovery ------------------------------------------------------------

def _version_of(path: str) -> Optional[str]:
    try:
        out = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _pyenv_candidates(version: str) -> List[str]:
    roots = [os.environ.get("PYENV_ROOT", "")]
    if shutil.which("pyenv"):
        try:
            roots.append(subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=10).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    roots.append(os.path.expanduser("~/.pyenv"))
    found = []
    for root in dict.fromkeys(r for r in roots if r):
        dirs = glob.glob(os.path.join(root, "versions", version + ".*"))

        def patch(d: str) -> int:
            tail = os.path.basename(d)[len(version) + 1:]
            return int(tail) if tail.isdigit() else -1

        for d in sorted(dirs, key=patch, reverse=True):
            found.append(os.path.join(d, "bin", "python" + version))
    return found


def _uv_find(version: str) -> Optional[str]:
    if not shutil.which("uv"):
        return None
    try:
        out = subprocess.run(["uv", "python", "find", "--no-project", version], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def find_python(version: str, install: bool = True) -> Tuple[Optional[str], str]:
    """An interpreter of ``version`` and how it was found, or (None, why not)."""
    candidates = [shutil.which("python" + version)] + _pyenv_candidates(version) + [_uv_find(version)]
    for path in candidates:
        if path and os.path.exists(path) and _version_of(path) == version:
            return path, "found"
    if install and shutil.which("uv") and os.environ.get("TORCHMATRIX_NO_PYTHON_INSTALL") != "1":
        try:
            proc = subprocess.run(["uv", "python", "install", version], capture_output=True, text=True, timeout=180)
            if proc.returncode == 0:
                path = _uv_find(version)
                if path and _version_of(path) == version:
                    return path, "installed with uv"
            why = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        except (OSError, subprocess.SubprocessError) as exc:
            why = str(exc)
        return None, "Python %s not found (PATH, pyenv, uv) and `uv python install %s` failed: %s" % (
            version, version, why[:160])
    return None, "Python %s not found on PATH, in pyenv or among uv's Pythons" % version


_FOUND: Dict[str, Tuple[Optional[str], str]] = {}


def pick_python(versions) -> Tuple[Optional[str], str]:
    """The first of ``versions`` available (newest first); the reason when none is."""
    reasons = []
    for version in versions:
        if version not in _FOUND:
            # Install only the preferred version; older ones are fallbacks to find, not fetch.
            _FOUND[version] = find_python(version, install=(version == versions[0]))
        path, how = _FOUND[version]
        if path:
            return path, how
        reasons.append(how)
    return None, reasons[0]


def _matrix_params():
    params = []
    for label, _, pythons, _ in ENVIRONMENTS:
        path, _ = pick_python(pythons)
        # python=False: no virtualenv is made and the session explains the skip itself.
        params.append(nox.param(path or False, label, id="torch=" + label))
    return params


ENV_BY_LABEL = {e[0]: e for e in ENVIRONMENTS}


# --- installing ---------------------------------------------------------------------------

def _uses_uv(session: nox.Session) -> bool:
    return getattr(session.virtualenv, "venv_backend", "") == "uv"


def install_torch(session: nox.Session, label: str) -> None:
    """torch of this environment, its pins, and the runner's own dependencies."""
    _, requirement, _, pins = ENV_BY_LABEL[label]
    env = {"UV_COMPILE_BYTECODE": "1"} if _uses_uv(session) else {}
    index = os.environ.get("TORCHMATRIX_TORCH_INDEX_URL")
    index_args = ["--index-url", index] if index else []
    session.install(*index_args, requirement, *pins, env=env)
    session.install(*pins, "numpy", "tomli>=1.1; python_version < '3.11'", env=env)


def _run_args(posargs: List[str]) -> Tuple[str, List[str]]:
    """The scenario (first positional posarg, default ``default``) and the rest."""
    args = list(posargs)
    for i, arg in enumerate(args):
        if not arg.startswith("-") and (i == 0 or not args[i - 1].startswith("--") or "=" in args[i - 1]):
            return args.pop(i), args
    return "default", args


def _out_dir(scenario: str, args: List[str]) -> str:
    if "--out" in args:
        return args[args.index("--out") + 1]
    name = os.path.splitext(os.path.basename(scenario))[0]
    path = scenario if os.path.exists(scenario) else os.path.join(ROOT, "scenarios", name + ".toml")
    try:
        with open(path, encoding="utf-8") as fh:
            match = re.search(r'^\s*name\s*=\s*"([^"]+)"', fh.read(), re.MULTILINE)
        name = match.group(1) if match else name
    except OSError:
        pass
    return os.path.join("results", name)


def _write_skip(out_dir: str, label: str, reason: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, label + ".env.json"), "w", encoding="utf-8") as fh:
        json.dump({"env_label": label, "status": "skipped", "reason": reason, "versions": {}}, fh, indent=1)


# --- sessions --------------------------------------------------------------------------------

@nox.session
@nox.parametrize("python,torch", _matrix_params())
def matrix(session: nox.Session, torch: str) -> None:
    """Run a scenario (default: scenarios/default.toml) in one environment per PyTorch release."""
    scenario, args = _run_args(session.posargs)
    env_label = "torch-" + torch
    out_dir = _out_dir(scenario, args)
    path, how = pick_python(ENV_BY_LABEL[torch][2])
    if path is None:
        _write_skip(out_dir, env_label, how)
        session.skip(how)
    install_torch(session, torch)
    session.run("python", "-m", "harness", "run", scenario, "--env-label", env_label,
                *([] if "--out" in args else ["--out", out_dir]), *args, env={"PYTHONPATH": ROOT})
    session.notify("report", posargs=[out_dir])


def _analysis_python() -> Optional[str]:
    return pick_python(ANALYSIS_PYTHONS)[0]


@nox.session(python=_analysis_python())
def report(session: nox.Session) -> None:
    """Build results/report/index.html from record files or folders (default: results/default)."""
    session.install(*ANALYSIS_DEPS, "numpy")
    args = session.posargs or [os.path.join("results", "default")]
    if "--out" not in args:  # the user's --out wins
        args = list(args) + ["--out", os.path.join("results", "report", "index.html")]
    session.run("python", "-m", "harness", "report", *args, env={"PYTHONPATH": ROOT})


@nox.session(python=_analysis_python())
def gate(session: nox.Session) -> None:
    """Compare records: nox -s gate -- --baseline B --candidate C [--scenario S]."""
    session.install(*ANALYSIS_DEPS, "numpy", "tomli>=1.1; python_version < '3.11'")
    session.run("python", "-m", "harness", "gate", *session.posargs, env={"PYTHONPATH": ROOT})


@nox.session(python=pick_python(ENV_BY_LABEL["latest"][2])[0])
def ab(session: nox.Session) -> None:
    """A/B two git revisions: nox -s ab -- --base REV --head REV SCENARIO."""
    install_torch(session, "latest")
    session.install(*ANALYSIS_DEPS)
    session.run("python", "-m", "harness", "ab", *session.posargs, env={"PYTHONPATH": ROOT})


TEST_ENVS = ["1.10", "latest"]


@nox.session
@nox.parametrize("python,torch", [nox.param(pick_python(ENV_BY_LABEL[t][2])[0] or False, t, id="torch=" + t)
                                  for t in TEST_ENVS])
def tests(session: nox.Session, torch: str) -> None:
    """The test suite on the oldest (Python 3.9 + torch 1.10) and the newest PyTorch."""
    path, how = pick_python(ENV_BY_LABEL[torch][2])
    if path is None:
        session.error("cannot test torch %s: %s" % (torch, how))
    install_torch(session, torch)
    session.install("pytest>=7", "nox", "pyyaml")
    targets = ["tests"]
    if torch != "latest":
        # The analysis side (pandas, scipy) runs in one modern environment only.
        targets += ["--ignore", os.path.join("tests", "analysis")]
    else:
        session.install(*ANALYSIS_DEPS)
    # -rs: every skip prints its reason in every log, so a skip that hides a feature shows.
    session.run("python", "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *targets, *session.posargs,
                env={"PYTHONPATH": ROOT})


#: Biome, from the npm registry through npx, lints the report's CSS and JavaScript (rules: biome.json).
BIOME = "@biomejs/biome@2.6.8"
REPORT_ASSETS = os.path.join("harness", "analysis", "report", "assets")


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """Linters: ruff, check-jsonschema (workflows) and Biome (the report's CSS/JS; needs npx)."""
    session.run("ruff", "check", ".", external=True)
    # The GitHub workflows against the workflow schema check-jsonschema ships (no network needed).
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows",
                *sorted(glob.glob(os.path.join(ROOT, ".github", "workflows", "*.yml"))), external=True)
    if shutil.which("npx") is None:
        session.error("npx not found: install Node.js and npm (Debian: apt-get install nodejs npm) so that Biome "
                      "can lint the report's CSS and JavaScript in %s" % REPORT_ASSETS)
    session.run("npx", "--yes", BIOME, "ci", "--error-on-warnings", REPORT_ASSETS, external=True)
