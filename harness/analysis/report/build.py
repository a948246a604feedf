"""``build_report``: records in, one self-contained HTML file (and its figures) out.

Reads the records (``loader``), the ``*.env.json`` environment files next to them
(``environments``), prepares the frame (``frame``), computes what several sections
share (ratios to the reference, fp32 drift), builds every section of the table in
``sections`` and writes the page through a temporary file and a rename, so a failed
build never leaves a half-written report. The figures are also written as SVG and PNG
under ``figures/`` beside the page. Never imports torch.
"""
import dataclasses
import datetime
import os
import time
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from harness.analysis.load import InputError, expand_paths
from harness.analysis.report import aggregate as agg
from harness.analysis.report import environments, figures
from harness.analysis.report import upgrade as up
from harness.analysis.report.compare import verdicts_frame
from harness.analysis.report.drift import drift_table
from harness.analysis.report.frame import prepare_frame
from harness.analysis.report.loader import load_for_report
from harness.analysis.report.markup import esc, page
from harness.analysis.report.max_batch import split_searches
from harness.analysis.report.sections import Baseline, Context, overview, render
from harness.fileio import atomic_write_text

DEFAULT_OUT = os.path.join("results", "report", "index.html")
#: The folder beside the page that holds its figures as SVG and PNG files.
FIGURES_DIR = "figures"


def _as_list(paths: Union[str, Iterable[str], None]) -> List[str]:
    if paths is None:
        return []
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def _baseline(base_list: List[str], verdicts, df, problems: List[str]) -> Optional[Baseline]:
    """The baseline records (prepared) and the gate's verdicts (validated); their problems added."""
    verdict_frame = verdicts_frame(verdicts, df) if verdicts is not None else None
    frame = None
    if base_list:
        base_raw, base_problems = load_for_report(base_list)
        problems.extend("baseline " + p for p in base_problems)
        frame, _ = prepare_frame(split_searches(base_raw)[0])
    if frame is None and verdict_frame is None:
        return None
    return Baseline(paths=base_list, frame=frame, verdicts=verdict_frame)


def make_context(paths: Sequence[str], baseline_paths: Optional[Sequence[str]] = None,
                 reference_env: Optional[str] = None,
                 verdicts: Optional[Sequence[Dict]] = None,
                 upgrade: Optional[Sequence[str]] = None) -> Tuple[Context, float]:
    """Read and prepare everything the sections show (see ``build_report``); also the seconds spent
    reading the records."""
    start = time.perf_counter()
    if not paths:
        raise InputError("no record files given: name JSONL record files or folders holding them")
    raw, problems = load_for_report(paths)
    load_seconds = time.perf_counter() - start
    problems = list(problems)
    _, searches = split_searches(raw)
    # Every record names the environments, the reference and the run; the sections of measured figures read
    # the measured cases only (a search has no timing or accuracy: it has a section of its own).
    everything, notes = prepare_frame(raw)
    del raw
    df = everything.loc[~everything["case_key"].isin(set(searches["case_key"]))]
    notes["records"] = len(everything)
    if len(notes["scenarios"]) > 1:
        problems.append("records of %d scenarios (%s): each environment is shown once per scenario "
                        "('label \u00b7 scenario'), none supersedes another" % (
                            len(notes["scenarios"]), ", ".join(notes["scenarios"])))
    env_files, env_problems = environments.read_env_files(expand_paths(paths),
                                                          [p for p in paths if os.path.isdir(p)])
    problems.extend(env_problems)
    problems.extend(environments.machine_notes(everything, notes["env_order"]))
    env_rows = environments.environment_table(everything, notes["env_order"], env_files)
    ref = environments.choose_reference(everything, notes["env_order"], reference_env)
    baseline = _baseline(_as_list(baseline_paths), verdicts, df, problems)
    pair = up.pick_pair(list(notes["env_order"]), upgrade) if upgrade else None  # a bad pair: before any work
    ctx = Context(df=df, notes=notes, ref=ref, env_rows=env_rows, problems=tuple(problems), searches=searches,
                  ratios=agg.ratios_vs_reference(df, ref), drift=drift_table(df, ref), baseline=baseline,
                  upgrade_pair=pair)
    return ctx, load_seconds


def build_report(paths: Union[str, Sequence[str]], out_path: str = DEFAULT_OUT,
                 baseline_paths: Optional[Sequence[str]] = None, reference_env: Optional[str] = None,
                 verdicts: Optional[Sequence[Dict]] = None, upgrade: Optional[Sequence[str]] = None,
                 markdown_path: Optional[str] = None) -> Dict:
    """Build the HTML report of the records in ``paths`` (files or folders of ``*.jsonl``).

    ``baseline_paths``: records to compare against (per case: median ratio, memory ratio,
    status change) when no ``verdicts`` are given; ``verdicts``: the gate's verdict
    dicts, shown as the comparison section instead. ``reference_env``: the environment
    label speed, memory and drift are compared with (default: the highest torch version).
    The figures are also written as ``figures/<name>.svg`` and ``.png`` next to ``out_path``.
    ``upgrade``: the (FROM, TO) environments of the upgrade section (default: the oldest and the
    newest); ``markdown_path``: also write that upgrade as Markdown for a pull request comment there.

    Returns ``{"out_path", "records", "problems", "seconds", "load_seconds", "bytes",
    "reference_env", "environments", "superseded", "markdown_chars"}``: ``records`` counts the records
    reported (the latest per case and environment), ``superseded`` the older ones
    dropped, ``load_seconds`` the part of ``seconds`` spent reading the records.
    Raises ``InputError`` for a missing path, no input, no good record, an unknown
    reference environment, an upgrade pair not among the environments, or malformed verdicts.
    """
    start = time.perf_counter()
    paths = _as_list(paths)
    ctx, load_seconds = make_context(paths, baseline_paths, reference_env, verdicts, upgrade)
    if markdown_path and len(ctx.envs) < 2:
        raise InputError("--markdown: the upgrade needs records of two environments; these have %s" % (
            ", ".join(ctx.envs) or "none"))
    ctx = dataclasses.replace(ctx, page_dir=os.path.dirname(os.path.abspath(out_path)))
    notes, ref = ctx.notes, ctx.ref
    scenarios = notes["scenarios"]
    title = "torchmatrix report \u2014 %s" % (", ".join(scenarios) if scenarios else "records")
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    built = render(ctx)
    footer = ("Built by torchmatrix from %s. Self-contained: no network access needed; hover cells and points for "
              "details." % esc(", ".join(paths)))
    text = page(title, overview.header(ctx, title, generated), built.nav, built.body, built.blocks, footer)
    figures.write_files(built.figures, os.path.join(os.path.dirname(os.path.abspath(out_path)), FIGURES_DIR))
    atomic_write_text(out_path, text)
    markdown_chars = None
    if markdown_path:
        frm, to = up.pick_pair(ctx.envs, ctx.upgrade_pair)
        markdown = up.markdown(up.upgrade_view(ctx.df, frm, to, ctx.env_rows))
        atomic_write_text(markdown_path, markdown + "\n")
        markdown_chars = len(markdown) + 1
    return {"out_path": out_path, "records": int(notes["records"]), "problems": list(ctx.problems),
            "seconds": time.perf_counter() - start, "load_seconds": load_seconds, "bytes": len(text.encode("utf-8")),
            "reference_env": ref, "environments": list(notes["env_order"]), "superseded": int(notes["superseded"]),
            "markdown_chars": markdown_chars}
