"""The report's sections, declared once: ``SECTIONS`` gives each one's anchor, navigation label,
heading and builder, and ``render`` makes the navigation and the body from that one table.

A builder (``Context -> Optional[Part]``, see ``context.py``) returns its HTML, the
JSON data blocks its interactive parts read and the figures it drew, or None when it
has nothing to show. ``render`` wraps each part in its ``<section>``, adds the blocks
every section shares (the environments and every record) and collects the figures.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from harness.analysis.report import datasets
from harness.analysis.report.figures import Chart
from harness.analysis.report.markup import json_script, section
from harness.analysis.report.sections import (
    accuracy,
    comparison,
    compat,
    failures,
    flops,
    max_batch,
    ops,
    overview,
    performance,
    upgrade,
)
from harness.analysis.report.sections.context import Baseline, Context, Part

__all__ = ["SECTIONS", "Baseline", "Context", "Part", "Rendered", "Section", "render"]


@dataclass(frozen=True)
class Section:
    """One entry of the table: ``ident`` (the anchor), ``nav`` (the link text), ``heading`` and ``build``."""

    ident: str
    nav: str
    heading: str
    build: Callable[[Context], Optional[Part]]
    cls: str = ""
    #: shown only when there are measured cases (a store of largest-batch searches alone has none)
    needs_cases: bool = True


SECTIONS: Tuple[Section, ...] = (
    Section("problems", "Problems", "Problems", overview.problems, cls="problems", needs_cases=False),
    Section("glance", "At a glance", "At a glance", overview.glance),
    Section("run", "Run", "The run", overview.run, needs_cases=False),
    Section("compat", "Compatibility", "Compatibility", compat.matrix),
    Section("upgrade", "Upgrade", "Upgrade", upgrade.upgrade),
    Section("speed", "Speed", "Speed", performance.speed),
    Section("memory", "Memory", "Memory", performance.memory),
    Section("flops", "FLOPs", "FLOPs and the machine's peak", flops.flops),
    Section("max-batch", "Largest batch", "The largest batch that fits", max_batch.max_batch, needs_cases=False),
    Section("ops", "Ops", "Per-op profiles", ops.ops),
    Section("accuracy", "Accuracy", "Accuracy", accuracy.accuracy),
    Section("failures", "Failures", "Failures", failures.failures),
    Section("all", "Every case", "Every case", failures.every_case),
    Section("compare", "Comparison", "Comparison with the baseline", comparison.comparison),
)


@dataclass(frozen=True)
class Rendered:
    """The built sections: ``nav`` (anchor, label) pairs and ``body`` in the same order, the page's
    data ``blocks`` and the ``figures`` drawn."""

    nav: List[Tuple[str, str]]
    body: List[str]
    blocks: List[str]
    figures: List[Chart]


def shared_blocks(ctx: Context) -> List[str]:
    """The data blocks several sections read: the environments and every record."""
    return [json_script("tm-envs", datasets.envs_json(ctx.envs, [ctx.env_color(e) for e in ctx.envs], ctx.ref)),
            json_script("tm-records", datasets.records_json(ctx.df, ctx.notes))]


def render(ctx: Context, sections=SECTIONS) -> Rendered:
    """Build every section of ``sections`` that has something to show, in table order."""
    out = Rendered([], [], shared_blocks(ctx), [])
    for sec in sections:
        if sec.needs_cases and ctx.df.empty:
            continue
        part = sec.build(ctx)
        if part is None:
            continue
        out.nav.append((sec.ident, part.nav or sec.nav))
        out.body.append(section(sec.ident, part.heading or sec.heading, part.body, part.intro, sec.cls))
        out.blocks.extend(part.blocks)
        out.figures.extend(part.figures)
    return out
