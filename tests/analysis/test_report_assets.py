"""``report.assets``: the stylesheet and scripts are package data, read through ``importlib.resources``."""
import os
import re
import sys

import pytest

from harness.analysis.report import assets
from harness.analysis.report.markup import page
from tests.analysis.test_report_support import ROOT

ASSET_DIR = os.path.dirname(os.path.abspath(assets.__file__))

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_assets_are_read_from_the_package_files():
    for name in assets.NAMES:
        with open(os.path.join(ASSET_DIR, name), encoding="utf-8") as fh:
            assert assets.asset_text(name) == fh.read()
    assert "--ok:#2da44e" in assets.asset_text("report.css").replace(" ", "")
    assert "data-tm-ready" in assets.asset_text("report.js") and "window.tmReport = {" in assets.asset_text(
        "common.js")
    assert "__tmErrors" in assets.asset_text("error_trap.js")
    with pytest.raises(ValueError, match="unknown report asset"):
        assets.asset_text("nope.js")


def test_the_page_inlines_every_asset():
    text = page("t", "<header></header>", [("a", "A")], ['<section id="a"></section>'], [], "foot")
    for name in assets.NAMES:
        assert assets.asset_text(name) in text
    # the error trap first, in <head>; the body scripts after the data, in load order
    where = [text.index(assets.asset_text(name)) for name in ("error_trap.js",) + assets.BODY_SCRIPTS]
    assert where[0] < text.index("<body>") < where[1] and where[1:] == sorted(where[1:])


def test_an_asset_that_would_close_its_element_is_refused():
    assert assets.inline_safe("a { }", "style") == "a { }"
    with pytest.raises(ValueError, match="</script"):
        assets.inline_safe("var s = '</SCRIPT>';", "script")


def test_package_data_ships_every_asset():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        data = tomllib.load(fh)["tool"]["setuptools"]["package-data"]
    patterns = data[assets.PACKAGE]
    for name in os.listdir(ASSET_DIR):
        if not name.endswith(".py") and not name.startswith("__"):
            assert any(re.fullmatch(p.replace(".", r"\.").replace("*", ".*"), name) for p in patterns), name
