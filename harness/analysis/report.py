"""Build the comparative HTML report from any set of record files.

``build_report(paths, out_path, baseline_paths, reference_env, verdicts)`` reads the
records (``harness.analysis.load``), the ``*.env.json`` environment files next to them,
and writes one self-contained offline HTML file: inline CSS and script, inline SVG
figures, the data as compact embedded JSON, no network request of any kind. Sections:
at a glance, the run, compatibility, speed, memory, accuracy, failures, every case, and
the comparison with a baseline when one is given. Bad lines are reported as problems
(file and line) in the page header and in the returned dict; the good records are still
reported. The file is written to a temporary name and renamed, so a failed build never
leaves a half-written report. Never imports torch.
"""
import datetime
import os
import tempfile
import time
from typing import Dict, Iterable, List, Optional, Sequence, Union

from harness.analysis import report_data as rd
from harness.analysis import report_sections as rs
from harness.analysis.load import InputError, expand_paths
from harness.analysis.report_html import esc, page
from harness.analysis.report_load import load_for_report

DEFAULT_OUT = os.path.join("results", "report", "index.html")


def _as_list(paths: Union[str, Iterable[str], None]) -> List[str]:
    if paths is None:
        return []
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def write_atomic(path: str, text: str) -> int:
    """Write ``text`` to ``path`` through a temporary file and a rename; return the size in bytes."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    data = text.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(data)


def build_report(paths: Union[str, Sequence[str]], out_path: str = DEFAULT_OUT,
                 baseline_paths: Optional[Sequence[str]] = None, reference_env: Optional[str] = None,
                 verdicts: Optional[Sequence[Dict]] = None) -> Dict:
    """Build the HTML report of the records in ``paths`` (files or folders of ``*.jsonl``).

    ``baseline_paths``: records to compare against (per case: median ratio, memory ratio,
    status change) when no ``verdicts`` are given; ``verdicts``: the gate's verdict
    dicts, shown as the comparison section instead. ``reference_env``: the environment
    label speed, memory and drift are compared with (default: the highest torch version).

    Returns ``{"out_path", "records", "problems", "seconds", "load_seconds", "bytes",
    "reference_env", "environments", "superseded"}``: ``records`` counts the records
    reported (the latest per case and environment), ``superseded`` the older ones
    dropped, ``load_seconds`` the part of ``seconds`` spent reading the records.
    Raises ``InputError`` for a missing path, no input, no good record, an unknown
    reference environment or malformed verdicts.
    """
    start = time.perf_counter()
    paths = _as_list(paths)
    if not paths:
        raise InputError("no record files given: name JSONL record files or folders holding them")
    raw, problems = load_for_report(paths)
    load_seconds = time.perf_counter() - start
    problems = list(problems)
    df, notes = rd.prepare_frame(raw)
    del raw
    files = expand_paths(paths)
    env_files, env_problems = rd.read_env_files(files, [p for p in paths if os.path.isdir(p)])
    problems.extend(env_problems)
    env_rows = rd.environment_table(df, notes["env_order"], env_files)
    ref = rd.choose_reference(df, notes["env_order"], reference_env)

    verdict_frame = rd.verdicts_frame(verdicts, df) if verdicts is not None else None
    base = None
    baseline_note = ""
    base_list = _as_list(baseline_paths)
    if base_list:
        base_raw, base_problems = load_for_report(base_list)
        problems.extend("baseline " + p for p in base_problems)
        base, _ = rd.prepare_frame(base_raw)
        base_runs = sorted(str(r) for r in base["run_id"].dropna().unique())
        base_commits = sorted(str(c)[:12] for c in base["git_commit"].dropna().unique())
        baseline_note = ('<p class="note">Baseline: %s records from %s (run %s, commit %s).</p>' % (
            "{:,}".format(len(base)), esc(", ".join(base_list)), esc(", ".join(base_runs[:3]) or "-"),
            esc(", ".join(base_commits[:3]) or "-")))

    ctx = rs.Context(df=df, notes=notes, ref=ref, env_rows=env_rows, problems=problems)
    ctx.ratios = rd.ratios_vs_reference(df, ref)
    ctx.drift = rd.drift_table(df, ref)

    scenarios = sorted(str(s) for s in df["scenario"].dropna().unique())
    title = "torchmatrix report \u2014 %s" % (", ".join(scenarios) if scenarios else "records")
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [rs.problems_box(problems, notes["superseded"]), rs.glance(ctx), rs.run_section(ctx),
                rs.matrix_section(ctx), rs.speed_section(ctx), rs.memory_section(ctx), rs.accuracy_section(ctx),
                rs.failures_section(ctx), rs.table_section(ctx)]
    nav = [("glance", "At a glance"), ("run", "Run"), ("compat", "Compatibility"), ("speed", "Speed"),
           ("memory", "Memory"), ("accuracy", "Accuracy"), ("failures", "Failures"), ("all", "Every case")]
    if verdict_frame is not None:
        sections.append(rs.comparison_from_verdicts(ctx, verdict_frame, baseline_note))
        nav.append(("compare", "Comparison"))
    elif base is not None:
        sections.append(rs.comparison_from_baseline(ctx, base, baseline_note))
        nav.append(("compare", "Comparison"))
    if problems:
        nav.insert(0, ("problems", "Problems (%d)" % len(problems)))
    data_blocks = [rs.envs_block(ctx), rs._block("tm-records", rs.records_dataset(ctx))] + ctx.data_blocks
    footer = ("Built by torchmatrix from %s. Self-contained: no network access needed; hover cells and points for "
              "details." % esc(", ".join(paths)))
    text = page(title, rs.header(ctx, title, generated), nav, sections, data_blocks, footer)
    size = write_atomic(out_path, text)
    return {"out_path": out_path, "records": int(len(df)), "problems": problems,
            "seconds": time.perf_counter() - start, "load_seconds": load_seconds, "bytes": size,
            "reference_env": ref, "environments": list(notes["env_order"]), "superseded": int(notes["superseded"])}
