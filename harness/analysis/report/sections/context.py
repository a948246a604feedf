"""What every section builder reads (``Context``) and what each one returns (``Part``).

A builder is a function ``Context -> Optional[Part]``: it reads the prepared data and
returns its HTML, the JSON data blocks its interactive parts read and the figures it
drew, or None when it has nothing to show (no baseline, no problem). Builders share
nothing else: the table in ``sections/__init__.py`` wraps each part in its
``<section>`` and joins the parts, the data blocks and the navigation.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import pandas as pd

from harness.analysis.report.figures import Chart
from harness.analysis.report.markup import ENV_COLORS


@dataclass(frozen=True)
class Baseline:
    """What the candidate is compared with: baseline records or the gate's verdicts."""

    paths: Sequence[str]
    frame: Optional[pd.DataFrame] = None  # prepared baseline records (no verdicts given)
    verdicts: Optional[pd.DataFrame] = None  # ``compare.verdicts_frame`` (when given, shown instead)


@dataclass(frozen=True)
class Context:
    """The prepared inputs of every section (read-only)."""

    df: pd.DataFrame
    notes: Dict
    ref: str
    env_rows: List[Dict]
    problems: Sequence[str]
    ratios: Optional[pd.DataFrame] = None
    drift: Optional[pd.DataFrame] = None
    baseline: Optional[Baseline] = None
    #: the largest-batch searches (records of ``batch_size = "max"``; ``report.max_batch``), apart from ``df``
    searches: Optional[pd.DataFrame] = None
    #: the report page's folder: links to files beside the records (trace folders) are made relative to it
    page_dir: Optional[str] = None
    #: the (FROM, TO) environments of the upgrade section (``--upgrade``); None: the oldest and the newest
    upgrade_pair: Optional[Tuple[str, str]] = None

    @property
    def envs(self) -> List[str]:
        return list(self.notes["env_order"])

    def env_color(self, env: str) -> str:
        envs = self.envs
        return ENV_COLORS[envs.index(env) % len(ENV_COLORS)] if env in envs else "#57606a"

    def env_th(self) -> List[str]:
        """Environment column headers, the reference marked."""
        return [e + (" (ref)" if e == self.ref else "") for e in self.envs]

    def models(self) -> List[str]:
        return sorted(self.df["model"].unique())


@dataclass(frozen=True)
class Part:
    """A built section: ``body`` HTML, an ``intro`` note, data blocks, figures.

    ``heading`` and ``nav`` replace the section table's heading and navigation label
    when the text depends on the data (``Problems (3)``).
    """

    body: str
    intro: str = ""
    blocks: Tuple[str, ...] = ()
    figures: Tuple[Chart, ...] = ()
    heading: Optional[str] = None
    nav: Optional[str] = None
