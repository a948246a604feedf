"""A scenario's ``[environment]`` table: what each environment installs beside its torch.

What a requirement may be, how pins and ``nox -s matrix -- --with SPEC`` add to it and what
the install report holds: docs/user-models.md, "``[environment]``, pins and ``--with``".
After the install, ``nox -s matrix`` (``harness.environments``) writes what each environment
got (``make_report``) to ``<out>/torch-X.requirements.json``; ``current_report`` reads it back inside the run
(records' ``env.extra_packages``, ``failed_note`` for unsupported reasons).

Standard library only: the noxfile reads this before any environment exists.
"""
import json
import os
import re
from typing import Any, Dict, List, Optional, Tuple

#: A record label of the matrix's environments (``torch-1.10``, ``torch-latest``).
ENV_LABEL_KEY_RE = re.compile(r"^torch-[A-Za-z0-9.]+$")
_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._,\s-]*\])?\s*([<>=!~;@(].*)?$")


def is_path(requirement: str) -> bool:
    """True for a requirement naming a local folder or file."""
    return requirement in (".", "..") or requirement.startswith(("./", "../", "/", "~"))


def requirement_problem(requirement: Any, base_dir: str) -> Optional[str]:
    """Why ``requirement`` cannot be installed as written, or None."""
    if not isinstance(requirement, str) or not requirement.strip():
        return "a requirement string (a project name with an optional version range, a URL or a path)"
    if is_path(requirement):
        full = resolve(requirement, base_dir)
        return None if os.path.exists(full) else "a path that exists (%s does not; paths are relative to " \
                                                 "the scenario's folder)" % full
    if "://" in requirement or requirement.startswith("git+"):
        return None
    if _NAME_RE.match(requirement.strip()):
        return None
    return "a project name with an optional version range (\"timm\", \"timm>=0.9,<1\"), a URL or a path " \
           "(\"./my-project\")"


def resolve(requirement: str, base_dir: str) -> str:
    """``requirement`` with a path made absolute against ``base_dir``; others as they are."""
    if not is_path(requirement):
        return requirement
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(requirement)))


def check_table(table: Any, where: str, base_dir: str, problems: List[str]) -> Dict[str, Any]:
    """Validate ``[environment]``; return ``{"requirements": [...], "pins": {label: [...]}}`` with
    paths made absolute. Every problem is appended to ``problems``, naming the key and value."""
    out: Dict[str, Any] = {"requirements": [], "pins": {}}
    if table is None:
        return out
    if not isinstance(table, dict):
        problems.append("%s: must be a table with requirements and pins, got %r" % (where, table))
        return out
    for key in table:
        if key not in ("requirements", "pins"):
            problems.append("%s.%s: unknown key; allowed: requirements, pins" % (where, key))
    out["requirements"] = _check_list(table.get("requirements", []), "%s.requirements" % where, base_dir, problems)
    pins = table.get("pins", {})
    if not isinstance(pins, dict):
        problems.append("%s.pins: must be a table of environment label = [requirements], got %r" % (where, pins))
        return out
    for label, reqs in pins.items():
        if not ENV_LABEL_KEY_RE.match(label):
            problems.append("%s.pins.%s: not an environment label; expected torch-<release> as the records "
                            "name them (torch-1.10, torch-2.1, torch-latest)" % (where, label))
            continue
        out["pins"][label] = _check_list(reqs, "%s.pins.%s" % (where, label), base_dir, problems)
    return out


def _check_list(reqs: Any, where: str, base_dir: str, problems: List[str]) -> List[str]:
    if not isinstance(reqs, list):
        problems.append("%s: must be a list of requirement strings, got %r" % (where, reqs))
        return []
    good = []
    for req in reqs:
        problem = requirement_problem(req, base_dir)
        if problem:
            problems.append("%s: value %r is not allowed; expected %s" % (where, req, problem))
        else:
            good.append(resolve(req.strip(), base_dir))
    return good


def requirements_for(environment: Dict[str, Any], env_label: str, extra: Optional[List[str]] = None) -> List[str]:
    """What the environment ``env_label`` installs: the scenario's requirements, its pins for
    that label, then ``extra`` (``--with``), duplicates dropped, order kept."""
    reqs = list(environment.get("requirements", [])) + list(environment.get("pins", {}).get(env_label, []))
    return list(dict.fromkeys(reqs + list(extra or [])))


# --- versions that go with a torch release ----------------------------------------------

def _torch_release(torch_version: Optional[str]) -> Optional[str]:
    match = re.match(r"(\d+)\.(\d+)", torch_version or "")
    return "%s.%s" % match.groups() if match else None


def resolve_for_torch(specs: List[str], torch_version: Optional[str],
                      pinned: List[str]) -> Tuple[List[str], Dict[str, Dict[str, Any]]]:
    """``specs`` with each bare library name (``torchvision``, ``timm``, ``transformers``, no
    version range) that ``pinned`` (the scenario's pins for this environment and ``--with``) does
    not name made the release that goes with ``torch_version`` (``harness.scenario.releases``);
    and, per library named, what was asked and why: ``{"timm": {"requirement": ..., "why": ...}}``.
    A user's pin wins; a torch the table does not list leaves the name to the installer."""
    from harness.scenario.releases import LIBRARIES, NEWEST_FOR_TORCH, TORCHVISION_FOR_TORCH

    release = _torch_release(torch_version)
    pinned_projects = {project_name(p) for p in pinned if not is_path(p)}
    out, chosen = [], {}
    for spec in specs:
        project = None if is_path(spec) or "://" in spec else project_name(spec)
        if project not in LIBRARIES:
            out.append(spec)
            continue
        if project in pinned_projects:
            out.append(spec)
            chosen[project] = {"requirement": spec, "why": "the scenario's pin (or --with) for this environment"}
            continue
        if spec.strip() != project:
            out.append(spec)
            chosen[project] = {"requirement": spec, "why": "as the scenario asks"}
            continue
        if project == "torchvision" and release in TORCHVISION_FOR_TORCH:
            req = "torchvision==" + TORCHVISION_FOR_TORCH[release]
            why = "the torchvision built for torch %s (torchvision's compatibility table)" % release
        elif project in NEWEST_FOR_TORCH.get(release or "", {}):
            req = NEWEST_FOR_TORCH[release][project]
            why = "the newest %s known to run on torch %s (harness/scenario/releases.py)" % (project, release)
        else:
            req = spec
            why = "the newest the installer resolves with torch==%s pinned" % (torch_version or "?")
        out.append(req)
        chosen[project] = {"requirement": req, "why": why}
    return out, chosen


# --- what an environment got: the report file -------------------------------------------
#
# ``nox -s matrix`` writes ``<out>/torch-X.requirements.json`` after installing an
# environment's requirements (``make_report``) and names it to ``harness run`` in
# REPORT_ENV_VAR; the runner's ``envinfo`` and the unsupported reasons read it back.

#: The environment variable naming (absolute path) the report of the environment a run is in.
REPORT_ENV_VAR = "TORCHMATRIX_REQUIREMENTS_REPORT"
#: The longest installer message a report keeps per failed requirement.
MESSAGE_LIMIT_CHARS = 600
#: The longest ``failed_note``.
NOTE_LIMIT_CHARS = 400
#: Installer lines that say nothing about why an install failed (pip's and uv's chatter).
_NOISE_RE = re.compile(r"^(Using Python|Resolved|Prepared|Installed|Uninstalled|Audited|Looking in|Processing|"
                       r"Collecting|Obtaining|Downloading|Using cached|Requirement already satisfied|INFO:|"
                       r"To fix this|[0-9]+\. (loosen|remove)|\[notice\]|WARNING: You are using pip)|"
                       r"for help visit")
_MARK_RE = re.compile(r"^(ERROR:|error:|×|╰─▶)\s*")


def report_path(out_dir: str, env_label: str) -> str:
    """The report file of the environment ``env_label`` in the run's output folder."""
    return os.path.join(out_dir, env_label + ".requirements.json")


def make_report(env_label: Optional[str], requested: List[str], installed: Dict[str, str],
                failed: List[Tuple[str, str]], torch_version: Optional[str] = None,
                chosen: Optional[Dict[str, Dict[str, Any]]] = None, python: Optional[str] = None) -> Dict[str, Any]:
    """The report of one environment::

        {"env_label": "torch-1.10", "torch": "1.10.2", "python": "3.9 (the newest with wheels ...)",
         "requested": ["timm", ...],
         "installed": {"timm": "0.9.16", ...},        # added or changed by the install
         "chosen": {"timm": {"requirement": "timm==0.9.16", "version": "0.9.16", "why": "..."}},
         "failed": [{"requirement": "...", "reason": "the installer's message"}]}

    ``chosen``: for each library the scenario named, what was asked of the installer and why
    (``resolve_for_torch``), and the version it got."""
    chosen = {name: dict(entry, version=installed.get(name, entry.get("version")))
              for name, entry in (chosen or {}).items()}
    return {"env_label": env_label, "torch": torch_version, "python": python, "requested": list(requested),
            "installed": dict(sorted(installed.items())), "chosen": dict(sorted(chosen.items())),
            "failed": [{"requirement": req, "reason": reason} for req, reason in failed]}


def write_report(path: str, report: Dict[str, Any]) -> None:
    """Write ``report`` (``make_report``) to ``path`` as JSON, atomically."""
    from harness.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(report, indent=1, sort_keys=True) + "\n")


def load_report(path: Optional[str]) -> Optional[Dict[str, Any]]:
    """The report at ``path``; None when there is none, it cannot be read or is not a report."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or not isinstance(report.get("installed", {}), dict) \
            or not isinstance(report.get("failed", []), list):
        return None
    return report


#: The versions of the libraries a run's models come from, as JSON (name -> version), set by a run
#: without a requirements report (``harness.scenario.models.before_run``) for its workers.
LIBRARY_VERSIONS_ENV_VAR = "TORCHMATRIX_LIBRARY_VERSIONS"


def current_report() -> Optional[Dict[str, Any]]:
    """The report of the environment this process runs in (REPORT_ENV_VAR), or None. A run
    without one (no nox) that named library models has the versions of those libraries
    (LIBRARY_VERSIONS_ENV_VAR) as its report: installed as the environment came, nothing failed."""
    report = load_report(os.environ.get(REPORT_ENV_VAR))
    if report is not None or os.environ.get(REPORT_ENV_VAR):
        return report
    try:
        versions = json.loads(os.environ.get(LIBRARY_VERSIONS_ENV_VAR) or "{}")
    except ValueError:
        return None
    if not isinstance(versions, dict) or not versions:
        return None
    return make_report(None, [], {str(k): str(v) for k, v in versions.items()}, [],
                       chosen={str(k): {"version": str(v), "why": "as installed: a run without nox takes the "
                                                                  "environment as it is"}
                               for k, v in versions.items()})


def failed_note(report: Optional[Dict[str, Any]], limit_chars: int = NOTE_LIMIT_CHARS) -> Optional[str]:
    """One line naming each requirement ``report`` could not install and why, at most
    ``limit_chars`` long; None when nothing failed (or there is no report)."""
    failed = [f for f in (report or {}).get("failed", []) if isinstance(f, dict)]
    if not failed:
        return None
    head = "not installed in this environment: "
    names = [str(f.get("requirement")) for f in failed]
    room = (limit_chars - len(head) - sum(len(n) + 5 for n in names)) // len(failed)
    parts = ["%s (%s)" % (name, _cut(str(f.get("reason") or "no reason given"), max(room, 40)))
             for name, f in zip(names, failed)]
    return _cut(head + "; ".join(parts), limit_chars)


def failed_for(report: Optional[Dict[str, Any]], module_name: str, paths: bool = True) -> List[Dict[str, Any]]:
    """The requirements ``report`` failed to install that could be what provides ``module_name``:
    a project named as its top-level module, and (``paths``) a path or URL, whose package name
    is not known. A library source passes ``paths=False``: a user's project is not timm."""
    top = normalize_name(module_name.split(".")[0])
    found = []
    for failed in (report or {}).get("failed", []):
        req = str(failed.get("requirement", "")) if isinstance(failed, dict) else ""
        if (paths and (is_path(req) or "://" in req or req.startswith("git+"))) or \
                (not is_path(req) and project_name(req) == top):
            found.append(failed)
    return found


def installer_message(output: str, limit_chars: int = MESSAGE_LIMIT_CHARS) -> str:
    """Why an install failed, in one line of at most ``limit_chars``: the installer's (pip's
    or uv's) output from its first error on, chatter and markers dropped."""
    lines = [line.strip() for line in (output or "").splitlines()]
    lines = [line for line in lines if line and not _NOISE_RE.search(line)]
    first_error = next((i for i, line in enumerate(lines) if _MARK_RE.match(line)), max(len(lines) - 5, 0))
    text = ""
    for line in lines[first_error:]:
        line = _MARK_RE.sub("", line)
        text += line if not text else (" " if text.endswith((":", ".")) else "; ") + line
    return _cut(text or "the installer failed and said nothing", limit_chars)


def _cut(text: str, limit_chars: int) -> str:
    """``text`` within ``limit_chars``: its head and its tail around " ... " (a resolver states the
    problem first and the decisive fact last, after a chain of "because")."""
    if len(text) <= limit_chars:
        return text
    head = max(limit_chars // 3, 1)
    tail = max(limit_chars - head - 5, 1)
    return text[:head].rstrip() + " ... " + text[-tail:].lstrip()


# --- what a Python environment holds -----------------------------------------------------

def project_name(requirement: str) -> Optional[str]:
    """The normalized project name a requirement string starts with (``Foo_Bar>=1`` -> ``foo-bar``), or None."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    return normalize_name(match.group(0).rstrip("._-")) if match else None


def normalize_name(name: str) -> str:
    """A project name as indexes compare them (PEP 503): ``Foo_Bar`` -> ``foo-bar``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> Dict[str, str]:
    """Every distribution this interpreter can import: normalized name -> version (the one
    first on ``sys.path`` where several are)."""
    import importlib.metadata

    versions: Dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name and dist.version:
            versions.setdefault(normalize_name(name), dist.version)
    return versions


#: What an environment holds before its extras: torch, the runner's own dependencies, the installer.
BASE_DISTRIBUTIONS = ("torch", "numpy", "setuptools", "tomli", "pip", "wheel")


def extra_versions(base=BASE_DISTRIBUTIONS) -> Dict[str, str]:
    """The distributions here that ``base`` does not need, directly or through its dependencies:
    what the extras brought (name -> version), the same in a fresh environment and a reused one."""
    import importlib.metadata

    requires: Dict[str, List[str]] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            requires.setdefault(normalize_name(name), list(dist.requires or []))
    needed, todo = set(), [normalize_name(b) for b in base]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        for req in requires.get(name, []):
            project = project_name(req)
            if project and not re.search(r"extra\s*==", req):  # an optional extra's: not needed
                todo.append(project)
    return {name: version for name, version in installed_versions().items() if name not in needed}
