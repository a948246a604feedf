"""A pytest plugin: a scenario's cases as pytest-benchmark tests.

    pytest -p harness.pytest_plugin scenarios/smoke.toml --benchmark-autosave

How cases are collected and run, what each record status becomes in pytest, what
pytest-benchmark sees (``EXTRA_INFO_FIELDS`` in ``extra_info``) and how the samples get in
through its public API only: docs/pytest-benchmark.md, "Scenario cases as pytest-benchmark
tests". Runner side: Python 3.9 + torch 1.10 and up.
"""
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional

import pytest

from harness.vocab import PYTEST_BENCHMARK_RECORD_KEY as RECORD_KEY

#: The pytest-benchmark releases this plugin is tested with (``pyproject.toml``'s ``pytest``
#: extra pins the same range): pedantic's ``iterations`` and the ``timer`` mark are in 4.0 and
#: later (docs/pytest-benchmark.md).
SUPPORTED_PYTEST_BENCHMARK = ((4, 0), (6, 0))
#: Flat figures of an ok case in ``extra_info`` (for people and tools reading pytest-benchmark's
#: JSON): ``name -> path in the record``. The record itself is ``extra_info["torchmatrix_record"]``.
EXTRA_INFO_FIELDS = {
    "case_key": ("case_key",),
    "env_label": ("env_label",),
    "median_s": ("timing", "median_s"),
    "throughput_per_s": ("timing", "throughput_per_s"),
    "peak_bytes": ("memory", "peak_bytes"),
    "tensor_peak_bytes": ("memory", "tensor_peak_bytes"),
    "accuracy_passed": ("accuracy", "passed"),
    "accuracy_ratio": ("accuracy", "ratio"),
    "instructions_per_iter": ("instructions", "per_iter"),
}
#: Statuses shown as pytest skips; every other status but ok is a failure.
SKIP_STATUSES = ("unsupported", "skipped")


def _version(text: str) -> tuple:
    parts = []
    for bit in text.split(".")[:2]:
        digits = "".join(ch for ch in bit if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def pytest_addoption(parser) -> None:
    group = parser.getgroup("torchmatrix", "torchmatrix: scenario files as benchmark tests")
    group.addoption("--torchmatrix-only", action="append", default=[], metavar="AXIS=V1,V2",
                    help="keep the scenario cases whose AXIS matches one of the values (globs allowed), as "
                         "`torchmatrix run --only`; repeatable")
    group.addoption("--torchmatrix-out", metavar="DIR",
                    help="keep the harness's records in DIR/<env label>.jsonl (appended; default: a temporary "
                         "folder, removed at the end)")


def pytest_configure(config) -> None:
    try:
        from pytest_benchmark import __version__ as version
    except ImportError:
        raise pytest.UsageError("harness.pytest_plugin needs pytest-benchmark (pip install 'pytest-benchmark>=4,<6')"
                                ) from None
    low, high = SUPPORTED_PYTEST_BENCHMARK
    if not low <= _version(version) < high:
        raise pytest.UsageError("harness.pytest_plugin: pytest-benchmark %s is not supported; install one >= %d.%d "
                                "and < %d.%d" % (version, low[0], low[1], high[0], high[1]))


def pytest_collect_file(file_path, parent):
    # Only scenario files named on the command line: a folder's other TOML (pyproject.toml) is no test.
    if file_path.suffix == ".toml" and parent.session.isinitpath(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def case_id(case: Any) -> str:
    """The test's id of a case: its axes joined by '-' (optional axes only when set)."""
    bits = [case.model, case.mode, "b%s" % (case.batch_size,), "s%s" % (case.size,), case.precision, case.checkpoint,
            case.device]
    if case.channels_last:
        bits.append("channels_last")
    if case.compile:
        bits.append("compile")
    if case.sdpa_backend != "default":
        bits.append("sdpa_" + case.sdpa_backend)
    if case.python_optimized:
        bits.append("python_O")
    return "-".join(str(b) for b in bits)


class ScenarioFile(pytest.File):
    """A scenario TOML as a test file: one test function per case."""

    def collect(self):
        from harness.scenario import spec as scen

        try:
            sc = scen.load(str(self.path))
            cases = scen.expand(sc, scen.parse_only(self.config.getoption("torchmatrix_only")))
        except scen.ScenarioError as exc:  # one line per problem, as `torchmatrix run` prints them
            raise self.CollectError("\n".join(exc.problems)) from None
        batch = CaseBatch(sc, self.config)
        for case, not_run in cases:
            item = ScenarioCase.from_parent(self, name="case[%s]" % case_id(case), callobj=_benchmark_case)
            item.add_marker(pytest.mark.benchmark(timer=harness_worker_samples, group=sc.name))
            # A case that is not ok never reaches the fixture; pytest-benchmark's warning would only mislead.
            item.add_marker(pytest.mark.filterwarnings("ignore:Benchmark fixture was not used"))
            item.torchmatrix_case = (batch, case, not_run)
            yield item


class ScenarioCase(pytest.Function):
    """A case's test: named and located by its scenario file, not by the plugin's code."""

    def getmodpath(self, stopatmodule: bool = True, includemodule: bool = False) -> str:
        return self.name

    def reportinfo(self):
        return self.path, 0, self.name


class CaseBatch:
    """The selected cases of one scenario file, run together by the harness's manager the first
    time one of their tests asks for its record."""

    def __init__(self, scenario: Any, config: Any):
        self.scenario = scenario
        self.config = config
        self.records: Optional[Dict[str, Dict]] = None
        self.problem: Optional[str] = None

    def record_for(self, item: Any) -> Dict:
        """The record of ``item``'s case; runs every selected case of the batch on the first call."""
        if self.records is None and self.problem is None:
            self._run(item.session)
        if self.problem is not None:
            pytest.fail(self.problem, pytrace=False)
        _, case, _ = item.torchmatrix_case
        record = self.records.get(case.key) if self.records is not None else None
        if record is None:
            pytest.fail("the harness wrote no record for %s" % case.key, pytrace=False)
        return record

    def _say(self, line: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if terminal is None:
            print(line)
        elif capture is not None:
            with capture.global_and_fixture_disabled():  # live progress, not the test's captured output
                terminal.write_line(line)
        else:
            terminal.write_line(line)

    def _run(self, session: Any) -> None:
        from harness.commands.run import default_env_label
        from harness.engine import schedule
        from harness.engine.coordinator import run_variants
        from harness.engine.variant import Variant
        from harness.record.schema import Record
        from harness.record.store import OutputLock, OutputLocked
        from harness.runner.manager import DiskFull

        selected = [i.torchmatrix_case for i in session.items
                    if getattr(i, "torchmatrix_case", None) is not None and i.torchmatrix_case[0] is self]
        cases = [(case, not_run) for _, case, not_run in selected]
        keep = self.config.getoption("torchmatrix_out")
        out_dir = keep or tempfile.mkdtemp(prefix="torchmatrix-pytest-")
        label = default_env_label()
        out_path = os.path.join(out_dir, label + ".jsonl")
        self._say("torchmatrix: scenario %s, %d cases, environment %s -> %s" % (
            self.scenario.name, len(cases), label, out_path))
        interrupted = False
        try:
            with OutputLock(out_path):
                rounds = schedule.resolve_rounds(self.scenario.measure.get("rounds"), 1)
                outcome = run_variants(self.scenario, [Variant(label, out_path=out_path, cases=cases)], rounds,
                                       print_fn=self._say)
                interrupted = outcome.interrupted
                if outcome.dropped:
                    raise RuntimeError(outcome.dropped[label])
            # as the record file holds them: every field of the schema, absent parts as null; a case's
            # first round (the one with its extras) stands for it
            self.records = {}
            for r in outcome.written[label]:
                self.records.setdefault(r["case_key"], Record.from_dict(r).to_dict())
        except (OutputLocked, DiskFull, RuntimeError, OSError) as exc:
            self.problem = "torchmatrix: the cases could not run: %s" % exc
        finally:
            if not keep:
                shutil.rmtree(out_dir, ignore_errors=True)
        if interrupted:
            pytest.exit("torchmatrix: interrupted; %d of %d cases recorded" % (len(self.records or {}), len(cases)),
                        returncode=130)


# --- feeding the harness's samples to pytest-benchmark ----------------------------------------

_CLOCK_S: List[float] = [0.0]


def harness_worker_samples() -> float:
    """The benchmark's "timer": not a clock but a counter that ``_Replay.step`` advances by the
    harness's samples, measured in the worker (its name is what pytest-benchmark saves as the timer)."""
    return _CLOCK_S[0]


class _Replay:
    """A target for ``benchmark.pedantic``: call ``c`` advances the counter by the sample of round
    ``c // iters``, so a round of ``iters`` calls lasts ``iters x`` its sample."""

    def __init__(self, samples_s: List[float], iters: int):
        self.samples_s, self.iters, self.calls = samples_s, iters, 0

    def step(self) -> None:
        index = min(self.calls // self.iters, len(self.samples_s) - 1)  # pedantic's one extra call: ignored
        self.calls += 1
        if self.calls <= self.iters * len(self.samples_s):
            _CLOCK_S[0] += self.samples_s[index]


def _get(record: Dict, path: tuple) -> Any:
    for key in path:
        record = record.get(key) if isinstance(record, dict) else None
    return record


def extra_info(record: Dict) -> Dict[str, Any]:
    """What an ok case puts in ``benchmark.extra_info``: ``EXTRA_INFO_FIELDS`` and the whole record."""
    info = {name: _get(record, path) for name, path in EXTRA_INFO_FIELDS.items()}
    info[RECORD_KEY] = record
    return info


def verdict(record: Dict) -> Optional[str]:
    """Why an ok case's test fails despite its figures (accuracy, behaviour checks), or None."""
    problems = []
    accuracy = record.get("accuracy") or {}
    if accuracy.get("passed") is False:
        problems.append("accuracy failed: %s" % "; ".join(accuracy.get("failures") or ["(no detail)"]))
    failed = (record.get("checks") or {}).get("failed")
    if failed:
        problems.append("checks failed: %s" % "; ".join((record.get("checks") or {}).get("reasons") or failed))
    return "; ".join(problems) or None


def _benchmark_case(benchmark, request) -> None:
    """One scenario case: its record from the harness, shown to pytest and pytest-benchmark."""
    batch, case, _ = request.node.torchmatrix_case
    record = batch.record_for(request.node)
    status, reason = record["status"], record.get("reason") or "(no reason given)"
    if status in SKIP_STATUSES:
        pytest.skip("%s: %s" % (status, reason))
    if status != "ok":
        tail = ("\n" + record["traceback"]) if record.get("traceback") else ""
        pytest.fail("%s: %s%s" % (status, reason, tail), pytrace=False)
    if record.get("max_batch"):  # a search's answer is a batch size, not rounds of a timed step
        pytest.skip("a largest-batch search, not a benchmark: batch %d fits (%s); its record holds the probes "
                    "(--torchmatrix-out)" % (record["max_batch"]["batch_size"], record["max_batch"]["limited_by"]))
    timing = record.get("timing") or {}
    samples_s = [float(s) for s in timing.get("samples_s") or []]
    if not samples_s:
        pytest.fail("ok but the record holds no timing samples", pytrace=False)
    benchmark.extra_info.update(extra_info(record))
    replay = _Replay(samples_s, int(timing.get("iters_per_sample") or 1))
    benchmark.pedantic(replay.step, rounds=len(samples_s), iterations=replay.iters)
    problem = verdict(record)
    if problem:
        pytest.fail(problem, pytrace=False)
