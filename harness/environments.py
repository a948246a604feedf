"""The environments of the matrix: which PyTorch releases, which Python each runs on, how that
interpreter is found, and how torch and a scenario's requirements are installed into an
environment. ``noxfile.py`` keeps the sessions and calls this module (asv keeps the same job
in ``asv/environment.py``).

Interpreters are found on PATH, in pyenv's versions folder and among uv-managed ones; a
missing one is installed with ``uv python install`` when that works (never with
``TORCHMATRIX_NO_PYTHON_INSTALL=1``). Installing takes a nox session (its installer, its
Python); ``TORCHMATRIX_TORCH_INDEX_URL`` names a torch wheel index. Standard library only at
import; nox is imported where a session is at hand.
"""
import glob
import json
import os
import shutil
import subprocess
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from harness.fileio import REPO_ROOT
from harness.scenario import requirements

if TYPE_CHECKING:  # pragma: no cover - nox is there when a session calls
    import nox

# label, torch requirement, Pythons its ecosystem has wheels for (newest first), extra pins.
# torch <= 2.2 breaks on NumPy 2 ("Numpy is not available") and needs pkg_resources
# (setuptools < 70) at import; torch 2.0's compile refuses Python 3.11, hence 3.10. The Python
# must suit torch's companions too: torchvision 0.14.1 (torch 1.13's) has no Python 3.11 wheel
# (PyPI's file list: cp37 to cp310), so 1.13 runs on 3.10, where every library source installs.
ENVIRONMENTS: List[Tuple[str, str, Tuple[str, ...], Tuple[str, ...]]] = [
    ("1.10", "torch==1.10.2", ("3.9",), ("numpy<2", "setuptools<70")),
    ("1.11", "torch==1.11.0", ("3.10", "3.9"), ("numpy<2", "setuptools<70")),
    ("1.12", "torch==1.12.1", ("3.10", "3.9"), ("numpy<2", "setuptools<70")),
    ("1.13", "torch==1.13.1", ("3.10", "3.9"), ("numpy<2", "setuptools<70")),
    ("2.0", "torch==2.0.1", ("3.10", "3.9"), ("numpy<2", "setuptools<70")),
    ("2.1", "torch==2.1.2", ("3.11", "3.10", "3.9"), ("numpy<2", "setuptools<70")),
    ("latest", "torch", ("3.13", "3.12", "3.11"), ()),
]
ANALYSIS_PYTHONS = ("3.13", "3.12", "3.11", "3.10")
ANALYSIS_DEPS = ("pandas>=1.5", "matplotlib>=3.6", "scipy>=1.9", "orjson>=3.6")


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


ENV_BY_LABEL = {e[0]: e for e in ENVIRONMENTS}


# --- installing ---------------------------------------------------------------------------

def _uses_uv(session: "nox.Session") -> bool:
    return getattr(session.virtualenv, "venv_backend", "") == "uv"


def _install_env(session: "nox.Session") -> Dict[str, str]:
    return {"UV_COMPILE_BYTECODE": "1"} if _uses_uv(session) else {}


def _torch_index() -> Optional[str]:
    return os.environ.get("TORCHMATRIX_TORCH_INDEX_URL") or None


def install_torch(session: "nox.Session", label: str) -> None:
    """torch of this environment, its pins, and the runner's own dependencies."""
    _, requirement, _, pins = ENV_BY_LABEL[label]
    env = _install_env(session)
    index = _torch_index()
    index_args = ["--index-url", index] if index else []
    session.install(*index_args, requirement, *pins, env=env)
    session.install(*pins, "numpy", "tomli>=1.1; python_version < '3.11'", env=env)


#: One install of extra requirements may take this long (a project built from source) before it counts as failed.
EXTRAS_INSTALL_TIMEOUT_S = 1800
#: Run in the environment: every distribution it holds, as JSON (``harness.scenario.requirements.installed_versions``).
_LIST_INSTALLED = ("import json; from harness.scenario.requirements import installed_versions; "
                   "print(json.dumps(installed_versions()))")
#: Run in the environment: the distributions neither torch nor the runner needs (``extra_versions``).
_LIST_EXTRAS = ("import json; from harness.scenario.requirements import extra_versions; "
                "print(json.dumps(extra_versions()))")


def installed_in(session: "nox.Session", listing: str = _LIST_INSTALLED) -> Dict[str, str]:
    out = session.run("python", "-c", listing, silent=True, env={"PYTHONPATH": REPO_ROOT})
    return json.loads(out.strip().splitlines()[-1])


def _install_command(session: "nox.Session") -> List[str]:
    """The environment's installer (its backend's), aimed at its Python, with the torch index as an extra one."""
    python = shutil.which("python", path=session.bin) or os.path.join(session.bin, "python")
    if _uses_uv(session):
        import nox.virtualenv

        cmd = [getattr(nox.virtualenv, "UV", None) or "uv", "pip", "install", "--python", python]
    else:
        cmd = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    index = _torch_index()
    return cmd + (["--extra-index-url", index] if index else [])


def try_install(session: "nox.Session", specs: List[str]) -> Optional[str]:
    """Install ``specs`` together; None when that worked, else the installer's message in one line."""
    cmd = _install_command(session) + specs
    session.log(" ".join(cmd))
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, **_install_env(session)), timeout=EXTRAS_INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "the installer took longer than %d s" % EXTRAS_INSTALL_TIMEOUT_S
    except OSError as exc:
        return "the installer did not start: %s" % exc
    return None if proc.returncode == 0 else requirements.installer_message(proc.stdout)


def install_extras(session: "nox.Session", label: str, specs: List[str], report_file: str,
                   pinned: List[str] = (), python_note: Optional[str] = None) -> Optional[str]:
    """Install ``specs`` beside this environment's torch, resolved against it (torch pinned to
    the installed version, plus the environment's pins); each alone when together they fail.
    A bare ``torchvision`` / ``timm`` / ``transformers`` that ``pinned`` (the scenario's pins for
    this environment, ``--with``) does not name becomes the release that goes with this torch
    (``requirements.resolve_for_torch``). Write what was chosen and why, what was installed and
    what failed to ``report_file`` (``harness.scenario.requirements``; ``python_note``: which
    Python and why) and return its path; with no ``specs``, remove a report of an earlier run and
    return None. A requirement that cannot be installed is reported, never an error of the session."""
    if not specs:
        if os.path.exists(report_file):
            os.remove(report_file)
        return None
    before = installed_in(session)
    torch_version = before.get("torch")
    if torch_version is None:
        session.warn("torch is not installed here: extra requirements are resolved without a torch pin")
    requested = list(specs)
    specs, chosen = requirements.resolve_for_torch(specs, torch_version, list(pinned))
    for _, entry in sorted(chosen.items()):
        session.log("%s: %s" % (entry["requirement"], entry["why"]))
    pins = (["torch==" + torch_version] if torch_version else []) + list(ENV_BY_LABEL[label][3])
    failed = []
    reason = try_install(session, specs + pins)
    if reason is not None:
        alone = {spec: try_install(session, [spec] + pins) for spec in specs} if len(specs) > 1 else {specs[0]: reason}
        failed = [(spec, why) for spec, why in alone.items() if why is not None]
    installed = installed_in(session, _LIST_EXTRAS)  # all of them, also where a reused environment had them
    requirements.write_report(report_file, requirements.make_report("torch-" + label, requested, installed, failed,
                                                                     torch_version, chosen, python_note))
    session.log("beside torch %s: %s" % (torch_version, ", ".join(
        "%s==%s" % pair for pair in sorted(installed.items())) or "nothing"))
    for spec, why in failed:
        session.warn("could not install %s (the run goes on without it): %s" % (spec, why))
    return report_file


def write_names(scenario: str, out_dir: str, env_label: str) -> str:
    """Run inside an environment by ``nox -s matrix``: write what its library releases lack of
    ``scenario``'s model names (``harness.scenario.models.write_names_file``); a scenario that is
    bad input writes an empty file (the run says why, one line per problem)."""
    from harness.scenario import spec
    from harness.scenario.models import write_names_file

    try:
        cases = spec.expand(spec.load(spec.resolve_path(scenario)))
    except spec.ScenarioError:
        cases = []
    return write_names_file(cases, out_dir, env_label)
