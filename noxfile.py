"""The environment matrix and the everyday sessions.

``nox -s matrix`` builds one virtual environment per PyTorch release, each with the
newest Python that has wheels for it; then the ``matrix_rounds`` session runs the scenario
in all the environments this invocation built at once, in interleaved rounds
(``python -m harness matrix``, ``harness.engine``; posargs: the scenario, then any
``torchmatrix matrix`` options). One environment alone: ``nox -s "matrix(torch=1.10)"``.
Which releases, their Pythons, how an interpreter is found and how an environment is
installed: ``harness.environments``. An environment
whose interpreter cannot be had is skipped with a one-line reason (also written to
``results/<scenario>/torch-X.env.json`` so the report lists it).

Extra requirements: a scenario's ``[environment]`` table lists what every environment
installs beside its torch (``requirements = ["timm", "./my-project"]``; ``[environment.pins]``
adds per environment, e.g. ``"torch-1.10" = ["timm==0.9.16"]``; see ``harness.scenario.requirements``),
and ``nox -s matrix -- --with SPEC`` (or ``--with=SPEC``, repeatable; a path is relative to
the folder nox was started in) adds more. A bare ``torchvision``, ``timm`` or ``transformers``
that no pin names becomes the release that goes with the environment's torch
(``harness.scenario.releases``; the install report says what was chosen and why). They are
installed after torch in one command
that also pins torch to the version just installed and the environment's own pins, so the
resolver can only pick versions that work with that torch (a torch index set in
TORCHMATRIX_TORCH_INDEX_URL is an extra index there: PyPI stays in use). When that fails,
each is tried alone, so one that cannot be resolved does not take the others with it. A
failure never stops the run: the other models still run, and a model that needs what is
missing is ``unsupported`` with the installer's message. What the environment holds beyond
torch and the runner's needs (name and version of each distribution, also in a reused
environment) and what failed go to ``results/<scenario>/torch-X.requirements.json``, which
``harness run`` reads (TORCHMATRIX_REQUIREMENTS_REPORT): records carry those versions in
``env.extra_packages``, and they are part of the environment fingerprint.

Model names: after installing an environment, a scenario naming library models has what that
environment's releases lack written to ``results/<scenario>/torch-X.names.json``; before the first
case the session stops, one line per name, on a name that no environment has (the newest
environment runs first, so a misspelt name stops every environment). A name only some releases
lack is ``unsupported`` where it is missing (``harness.scenario.models.names_problems``).

A sharded run (``torchmatrix run --shard K/N``, one output folder per shard) is joined by
``nox -s merge -- SHARD_DIR... --out DIR``, which then builds the report of DIR.

Environment variables:
  TORCHMATRIX_TORCH_INDEX_URL  wheel index for torch (a CPU-only or CUDA flavour)
  TORCHMATRIX_NO_PYTHON_INSTALL=1  never try ``uv python install``
"""
import glob
import json
import os
import re
import shutil
import sys
from typing import List, Optional, Tuple

import nox

ROOT = os.path.dirname(os.path.abspath(__file__))
if ROOT not in sys.path:  # harness.environments and harness.scenario: standard library only (+ tomli)
    sys.path.insert(0, ROOT)
from harness.environments import (  # noqa: E402
    ANALYSIS_DEPS,
    ANALYSIS_PYTHONS,
    ENV_BY_LABEL,
    ENVIRONMENTS,
    install_extras,
    install_torch,
    installed_in,
    pick_python,
    try_install,
)
from harness.scenario import requirements  # noqa: E402
from harness.scenario.releases import LIBRARIES  # noqa: E402

nox.options.default_venv_backend = "uv|venv"
nox.options.sessions = ["matrix"]


def _matrix_params():
    params = []
    # The newest first: its names file tells a misspelt model name (that the newest releases lack
    # too) before any older environment runs a case (harness.scenario.models.names_problems).
    for label, _, pythons, _ in ENVIRONMENTS[-1:] + ENVIRONMENTS[:-1]:
        path, _ = pick_python(pythons)
        # python=False: no virtualenv is made and the session explains the skip itself.
        params.append(nox.param(path or False, label, id="torch=" + label))
    return params


def _run_args(posargs: List[str]) -> Tuple[str, List[str]]:
    """The scenario (first positional posarg, default ``default``) and the rest."""
    args = list(posargs)
    for i, arg in enumerate(args):
        if not arg.startswith("-") and (i == 0 or not args[i - 1].startswith("--") or "=" in args[i - 1]):
            return args.pop(i), args
    return "default", args


def _with_args(posargs: List[str], base_dir: str) -> Tuple[List[str], List[str]]:
    """Every ``--with SPEC`` / ``--with=SPEC`` taken out of ``posargs``: (the specs, a path
    (``./x``, or ``dir/x`` that exists) made absolute against ``base_dir``; the other
    posargs). ValueError names a bad one."""
    specs, rest, problems = [], [], []
    args = iter(posargs)
    for arg in args:
        if arg == "--with":
            spec = next(args, None)
        elif arg.startswith("--with="):
            spec = arg[len("--with="):]
        else:
            rest.append(arg)
            continue
        if spec and "/" in spec and "://" not in spec and os.path.exists(os.path.join(base_dir, spec)):
            spec = os.path.join(".", spec)  # dist/x.whl, as pip reads it: a path
        problem = requirements.requirement_problem(spec, base_dir)
        if problem:
            problems.append("--with %s: expected %s" % ("(nothing)" if spec is None else repr(spec), problem))
        else:
            specs.append(requirements.resolve(spec.strip(), base_dir))
    if problems:
        raise ValueError("\n".join(problems))
    return specs, rest


#: The prefixes of the library sources (harness/sources): a scenario naming one gets its names checked per environment.
LIBRARY_PREFIXES = tuple(name + ":" for name in LIBRARIES)
#: Run in the environment: write what its library releases lack of the scenario's names (harness.environments).
_WRITE_NAMES = "import sys; from harness.environments import write_names; write_names(*sys.argv[1:4])"


def _scenario_requirements(session: nox.Session, scenario: str, env_label: str,
                           extra: List[str]) -> Tuple[List[str], List[str], bool, bool]:
    """What ``env_label`` installs for ``scenario`` (``[environment]``) and ``--with``; what of it
    is a user's pin there (its pins and ``--with``); whether the scenario names library models; and
    whether the newest environment installs the newest libraries (no pin or ``--with`` names one).
    A scenario that does not load is an error of the session (each problem printed)."""
    from harness.scenario.spec import ScenarioError, load, resolve_path

    try:
        sc = load(resolve_path(scenario))
    except ScenarioError as exc:
        for problem in exc.problems:
            session.log(problem)
        session.error("scenario %s has %d problem(s), listed above" % (scenario, len(exc.problems)))
    environment = sc.environment
    pinned = list(environment.get("pins", {}).get(env_label, [])) + list(extra)
    patterns = [str(m) for table in [sc.matrix] + list(sc.includes) for m in table.get("model", [])]
    libraries = any(m.startswith(LIBRARY_PREFIXES) for m in patterns)
    newest_pins = list(environment.get("pins", {}).get("torch-latest", [])) + list(extra)
    newest_unpinned = not any(requirements.project_name(p) + ":" in LIBRARY_PREFIXES for p in newest_pins
                              if not requirements.is_path(p) and requirements.project_name(p))
    return requirements.requirements_for(environment, env_label, extra), pinned, libraries, newest_unpinned


def _check_names(session: nox.Session, scenario: str, out_dir: str, env_label: str, report_file: Optional[str],
                 newest_unpinned: bool) -> bool:
    """Write what this environment's library releases lack of the scenario's names, and stop the
    session (one line per name) on a name that no environment knows; True when every name was
    decided, False when this environment cannot tell a misspelt name from a newer one."""
    from harness.scenario import models as scenario_models

    session.run("python", "-c", _WRITE_NAMES, scenario, out_dir, env_label, silent=True,
                env={"PYTHONPATH": ROOT, requirements.REPORT_ENV_VAR: report_file or ""})
    labels = ["torch-" + e[0] for e in ENVIRONMENTS]
    problems, cannot_tell = scenario_models.names_problems(out_dir, env_label, labels,
                                                           "torch-latest" if newest_unpinned else None)
    if problems:
        for problem in problems:
            session.log("error: %s" % problem)
        _NAMES_FAILED.append("%d model name(s) that no environment's library release has" % len(problems))
        session.error("%d model name(s) that no environment's library release has (misspelt?), listed above; "
                      "`python -m harness list-models 'SOURCE:*'` lists a release's names" % len(problems))
    return not cannot_tell


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
    try:
        with_specs, posargs = _with_args(session.posargs, getattr(session, "invoked_from", None) or os.getcwd())
    except ValueError as exc:
        session.error(str(exc))
    if _NAMES_FAILED:  # an earlier environment found a name none has: the run cannot start, nothing to build
        session.skip("not built: %s (listed above); the run cannot start" % _NAMES_FAILED[0])
    scenario, args = _run_args(posargs)
    env_label = "torch-" + torch
    out_dir = _out_dir(scenario, args)
    extras, pinned, libraries, newest_unpinned = _scenario_requirements(session, scenario, env_label, with_specs)
    pythons = ENV_BY_LABEL[torch][2]
    path, how = pick_python(pythons)
    if path is None:
        _write_skip(out_dir, env_label, how)
        session.skip(how)
    install_torch(session, torch)
    python_note = "%s (%s): the first found of Python %s, the ones torch %s and its libraries have wheels for" % (
        path, how, ", ".join(pythons), torch)
    report_file = install_extras(session, torch, extras, os.path.abspath(requirements.report_path(out_dir, env_label)),
                                 pinned, python_note)
    env = {"PYTHONPATH": ROOT, requirements.REPORT_ENV_VAR: report_file or ""}
    if libraries:
        from harness.scenario.models import NAMES_CHECKED_ENV_VAR

        if _check_names(session, scenario, out_dir, env_label, report_file, newest_unpinned):
            env[NAMES_CHECKED_ENV_VAR] = "1"  # decided here: the run's own "cannot tell" note would mislead
    # Nothing runs yet: the environment joins the run that `matrix_rounds` makes of every environment this
    # invocation built, in interleaved rounds (harness.engine), once the last one is installed.
    python = os.path.join(session.virtualenv.location, "bin", "python")
    _VARIANTS.append({"label": env_label, "python": python, "env": env})
    session.notify("matrix_rounds", posargs=session.posargs)


#: The environments this nox invocation built for the matrix, in order: {"label", "python", "env"} (a
#: noxfile is loaded once per invocation, and every session runs in this process).
_VARIANTS: List[dict] = []
#: Set when a matrix session stopped the run on a model name no environment has: nothing may run then.
_NAMES_FAILED: List[str] = []


@nox.session(python=False)
def matrix_rounds(session: nox.Session) -> None:
    """The matrix's run (what `nox -s matrix` ends with): every environment it built, in interleaved rounds."""
    if _NAMES_FAILED:
        session.error("not run: %s" % _NAMES_FAILED[0])
    if not _VARIANTS:
        session.error("no environment to run: `nox -s matrix` (or `nox -s \"matrix(torch=1.10)\"`) builds them and "
                      "then runs this session")
    try:
        _, posargs = _with_args(session.posargs, getattr(session, "invoked_from", None) or os.getcwd())
    except ValueError as exc:
        session.error(str(exc))
    scenario, args = _run_args(posargs)
    out_dir = _out_dir(scenario, args)
    folder = os.path.join(out_dir, ".variants")
    os.makedirs(folder, exist_ok=True)
    files = []
    for variant in _VARIANTS:
        path = os.path.join(folder, variant["label"] + ".json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(variant, fh, indent=1)
        files += ["--variant-file", path]
    # The coordinator is standard library only (tomli, which Python < 3.11 needs, comes with nox): nox's own
    # interpreter runs it; each environment's Python runs its workers.
    session.run(sys.executable, "-m", "harness", "matrix", scenario, *files,
                *([] if "--out" in args else ["--out", out_dir]), *args, env={"PYTHONPATH": ROOT}, external=True)
    if "--dry-run" not in args:
        session.notify("report", posargs=[out_dir])


@nox.session(python=False)
def merge(session: nox.Session) -> None:
    """Join a sharded run's folders: nox -s merge -- SHARD_DIR... --out DIR (then the report of DIR)."""
    # Standard library only (tomli, which Python < 3.11 needs, comes with nox): no environment to build.
    session.run(sys.executable, "-m", "harness", "merge", *session.posargs, env={"PYTHONPATH": ROOT}, external=True)
    args = list(session.posargs)
    outs = [a[len("--out="):] for a in args if a.startswith("--out=")] + [
        b for a, b in zip(args, args[1:]) if a == "--out"]
    if outs:
        session.notify("report", posargs=[outs[-1]])


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
#: The example in-house package, installed beside torch and the model sources' libraries (the releases the
#: matrix picks for that torch: harness/scenario/releases.py) so the sources' tests run against the real thing.
EXAMPLE_PROJECT = os.path.join(ROOT, "examples", "user_project")
#: pytest-timeout's limit on one test in the tests session, in seconds: a hung test fails with its traceback
#: instead of waiting for CI's 90-minute job limit. Generous: above the longest time a test itself allows a
#: subprocess (2,400 s: tests/runner/test_instruction_pass.py's counting of a zoo model under valgrind).
TEST_TIMEOUT_S = 2700


@nox.session
@nox.parametrize("python,torch", [nox.param(pick_python(ENV_BY_LABEL[t][2])[0] or False, t, id="torch=" + t)
                                  for t in TEST_ENVS])
def tests(session: nox.Session, torch: str) -> None:
    """The test suite on the oldest (Python 3.9 + torch 1.10) and the newest PyTorch."""
    path, how = pick_python(ENV_BY_LABEL[torch][2])
    if path is None:
        session.error("cannot test torch %s: %s" % (torch, how))
    install_torch(session, torch)
    # pytest-benchmark: harness.pytest_plugin's range (pyproject.toml's "pytest" extra; docs/pytest-benchmark.md)
    session.install("pytest>=7", "nox", "pyyaml", "pytest-benchmark>=4,<6", "pytest-timeout>=2")
    torch_version = installed_in(session)["torch"]
    pins = ["torch==" + torch_version] + list(ENV_BY_LABEL[torch][3])
    # The model libraries as the matrix resolves them for this torch (harness/scenario/releases.py): the suite
    # then runs the table's row for this release (tests/scenario/test_requirements.py checks it was installed).
    libraries, _ = requirements.resolve_for_torch(list(LIBRARIES), torch_version, [])
    failed = try_install(session, libraries + [EXAMPLE_PROJECT] + pins)
    if failed:
        session.error("cannot install the model sources' libraries for the tests: %s" % failed)
    targets = ["tests"]
    if torch != "latest":
        # The analysis side (pandas, scipy) runs in one modern environment only.
        targets += ["--ignore", os.path.join("tests", "analysis")]
    else:
        session.install(*ANALYSIS_DEPS)
    # -rs: every skip prints its reason in every log, so a skip that hides a feature shows.
    session.run("python", "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--timeout=%d" % TEST_TIMEOUT_S,
                *targets, *session.posargs, env={"PYTHONPATH": ROOT})


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


#: TensorBoard's PyTorch Profiler tab: torch-tb-profiler, deprecated in 2023 (no longer in the kineto repository);
#: its last release 0.4.3 still installs and shows the traces of `run --profile` with these pins, checked with
#: Python 3.13 on traces of torch 1.10.2 to 2.15 (Overview, Operator and Memory views; the Trace view's timeline
#: stays blank in a current Chromium: README). It needs neither torch nor pkg_resources; the pins keep a later
#: TensorBoard, protobuf, NumPy or pandas from breaking it.
TENSORBOARD_PYTHONS = ("3.13", "3.12", "3.11")
TENSORBOARD_DEPS = ("torch-tb-profiler==0.4.3", "tensorboard==2.21.0", "protobuf==7.36.2", "numpy==2.5.5",
                    "pandas==3.1.1")


@nox.session(python=pick_python(TENSORBOARD_PYTHONS)[0])
def tensorboard(session: nox.Session) -> None:
    """TensorBoard with the PyTorch Profiler tab on profiler traces: nox -s tensorboard -- [LOGDIR] [OPTIONS]
    (LOGDIR default: results; OPTIONS go to tensorboard, e.g. --port 6007 --bind_all)."""
    session.install(*TENSORBOARD_DEPS)
    args = list(session.posargs)
    logdir = args.pop(0) if args and not args[0].startswith("-") else "results"
    session.log("the traces under %s: open http://localhost:6006/#pytorch_profiler (or the --port given)" % logdir)
    session.run("tensorboard", "--logdir", logdir, *args)
