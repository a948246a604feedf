"""The report page's CSS and JavaScript: plain files in this folder, shipped as package data.

``report.css`` is the stylesheet; ``error_trap.js`` runs first in ``<head>``: any
script error, failed resource load, unhandled rejection or ``console.error`` adds a
``.js-error`` element to ``#tm-js-errors`` (tests look for it). At the end of
``<body>``, in this order: ``common.js`` (dataset access and helpers, as
``window.tmReport``), ``table.js`` (the sortable, filterable, paged tables over the
datasets of ``payload``), ``charts.js`` (the per-model chart grids and their slice
pickers), ``ops.js`` (the per-op comparisons of profiled cases, drawn as it loads) and
``report.js`` (the drill-down toggles and the upgrade's pair picker; starts the rest and sets ``data-tm-ready="1"`` on
``<html>``). The page inlines them all, so the report stays
one self-contained file. The files are read with ``importlib.resources`` (a checkout,
an installed wheel or a zip alike) and linted by Biome in ``nox -s lint`` (``biome.json``
at the repository root).
"""
import functools

try:  # Python >= 3.9
    from importlib.resources import files as _files
except ImportError:  # pragma: no cover - older Pythons
    _files = None
    from importlib.resources import read_text as _read_text

PACKAGE = "harness.analysis.report.assets"
#: The scripts at the end of the page's body, in the order they run.
BODY_SCRIPTS = ("common.js", "table.js", "charts.js", "ops.js", "report.js")
#: Every asset file, in the order the page uses them.
NAMES = ("report.css", "error_trap.js") + BODY_SCRIPTS


@functools.lru_cache(maxsize=None)
def asset_text(name: str) -> str:
    """The text of the asset file ``name`` (one of ``NAMES``), from the installed package data."""
    if name not in NAMES:
        raise ValueError("unknown report asset %r (known: %s)" % (name, ", ".join(NAMES)))
    if _files is not None:
        return (_files(PACKAGE) / name).read_text(encoding="utf-8")
    return _read_text(PACKAGE, name, encoding="utf-8")  # pragma: no cover


def inline_safe(text: str, tag: str) -> str:
    """``text`` checked to be safe inside an inline ``<tag>`` element: it must not close it."""
    if ("</" + tag) in text.lower():
        raise ValueError("an inline %s asset must not contain '</%s'" % (tag, tag))
    return text
