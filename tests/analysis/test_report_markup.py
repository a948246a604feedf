"""``report.markup``: escaping, number formats, colours and the HTML pieces of the page."""
from harness.analysis.report import markup
from harness.vocab import STATUSES


def test_every_status_has_a_colour_and_a_css_class():
    from harness.analysis.report.assets import asset_text

    css = asset_text("report.css")
    for status in tuple(STATUSES) + ("accuracy", "check"):
        assert status in markup.STATUS_COLORS
        assert ".s-%s {" % status in css and "--%s:%s" % (status, markup.STATUS_COLORS[status]) in css.replace(
            " ", "")


def test_formats():
    assert markup.fmt_change(1.12) == "+12%" and markup.fmt_change(0.93) == "\u22127.0%"
    assert markup.fmt_change(1.001) == "\u00b10%" and markup.fmt_change(None) == "-"
    assert markup.fmt_sig(1234567.0) == "1.23e+06" and markup.fmt_sig(0.5) == "0.5"
    assert markup.fmt_drift(0) == "0" and markup.fmt_drift(float("inf")) == "shape differs"
    assert markup.esc('<a href="x">') == "&lt;a href=&quot;x&quot;&gt;" and markup.esc(None) == ""


def test_colours_run_from_white_to_blue_or_red():
    assert markup.ratio_color(1.0) == "#ffffff"
    assert markup.ratio_color(2.0) == "#6fa8dc" and markup.ratio_color(0.5) == "#e8705f"
    assert markup.ratio_color(2.0, higher_is_better=False) == "#e8705f"


def test_sections_and_tables():
    assert markup.section("x", "Title", "<p>b</p>", "why", "box") == (
        '<section id="x" class="box"><h2>Title</h2><p class="note">why</p><p>b</p></section>')
    html = markup.table(["a<", "n"], ["<tr><td>1</td><td>2</td></tr>"], num_cols=[1], table_id="t")
    assert '<table class="grid" id="t"><thead><tr><th>a&lt;</th><th class="num">n</th>' in html
    text = markup.page("T", "", [("x", "X & Y")], [], ['<script type="application/json" id="d">1</script>'], "f")
    assert '<nav class="toc"><a href="#x">X &amp; Y</a></nav>' in text and text.endswith("</html>\n")


def test_limit_colour_far_below_near_and_above_the_limit():
    green, yellow = "#d5f0d9", "#fbe7a1"
    assert markup.limit_color(0) == "#c8ecd0" and markup.limit_color(0.05) == green
    assert markup.limit_color(0.1) == green and markup.limit_color(1.0) == yellow
    assert markup.limit_color(0.5) not in (green, yellow)  # on the way from green to yellow
    assert markup.limit_color(1.01) == "#f7b3a8" and markup.limit_color(10.0) == markup.limit_color(1e6) == "#e0503c"
    assert markup.limit_color(float("inf")) == "#e0503c" and markup.limit_color(None) == "#ffffff"
