"""The built report in a real browser: headless Chromium driven over the DevTools pipe.

Opens the report offline, fails on any script error, console error, failed load or
network request, checks the matplotlib figures render (visible, axes labelled by
environment), exercises the table (sort, filter, search), the chart controls and the
drill-down, and saves screenshots for a person to look at: into the folder that
``TORCHMATRIX_REPORT_SHOTS`` names, else a fresh temporary folder (never into the
repository's ``results/``, which a test must leave alone).
Skipped when no Chromium is installed (Debian: ``apt-get install chromium``), except
under ``CI=true``, where that is an error.
"""
import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from harness.analysis.report import build_report
from harness.analysis.report.figures import CHART_NAMES, FLOPS_CHART
from tests.analysis.report_synth import ENVS, MODELS, write_synthetic_store

SHOTS = os.environ.get("TORCHMATRIX_REPORT_SHOTS") or tempfile.mkdtemp(prefix="torchmatrix-report-test-")
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)

if CHROMIUM is None and os.environ.get("CI") == "true":
    # CI installs chromium (.ci/run): there a missing browser is a broken setup, not a reason to skip.
    raise RuntimeError("CI=true but no chromium on PATH: the report's browser test cannot run")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: install it (Debian: apt-get install "
                                                          "chromium) to run the browser test of the report")


class Browser:
    """A headless Chromium and one page, spoken to over ``--remote-debugging-pipe`` (fds 3 and 4)."""

    def __init__(self, width=1400, height=1000):
        self.profile = tempfile.mkdtemp(prefix="tm-chromium-")
        cmd_read, self._cmd_write = os.pipe()
        self._out_read, out_write = os.pipe()

        def child():  # move our pipe ends to fds 3 (commands in) and 4 (replies out)
            a = fcntl.fcntl(cmd_read, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(out_write, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
             "--remote-debugging-pipe", "--user-data-dir=" + self.profile, "about:blank"],
            preexec_fn=child, pass_fds=(3, 4), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.stderr)
        os.close(cmd_read)
        os.close(out_write)
        self._next_id = 0
        self._replies = {}
        self.events = []
        self._incoming = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(domain + ".enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _reader(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._out_read, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self._incoming.put(None)
                return
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                self._incoming.put(json.loads(msg.decode("utf-8")))

    def _pump(self, timeout):
        msg = self._incoming.get(timeout=timeout)
        if msg is None:
            raise RuntimeError("chromium closed the pipe")
        if "id" in msg:
            self._replies[msg["id"]] = msg
        else:
            self.events.append(msg)

    def call(self, method, session=False, timeout=60.0, **params):
        self._next_id += 1
        ident = self._next_id
        msg = {"id": ident, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._cmd_write, json.dumps(msg).encode("utf-8") + b"\0")
        deadline = time.monotonic() + timeout
        while ident not in self._replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply to %s within %.0f s" % (method, timeout))
            self._pump(left)
        reply = self._replies.pop(ident)
        if "error" in reply:
            raise RuntimeError("%s failed: %s" % (method, reply["error"]))
        return reply.get("result", {})

    def js(self, expression, timeout=60.0):
        """Evaluate ``expression`` in the page (promises awaited) and return its JSON value."""
        result = self.call("Runtime.evaluate", session=True, timeout=timeout, expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError("page script failed: %s" % json.dumps(result["exceptionDetails"])[:2000])
        return result["result"].get("value")

    def wait_for(self, expression, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.js(expression):
                return
            time.sleep(0.1)
        raise TimeoutError("page never satisfied: %s" % expression)

    def open(self, path):
        self.call("Page.navigate", session=True, url="file://" + os.path.abspath(path))
        self.wait_for("document.readyState === 'complete' && "
                      "document.documentElement.getAttribute('data-tm-ready') === '1'")

    def screenshot(self, path, y=0, height=None, width=1400):
        """Save a PNG of the page from ``y`` down (``height`` px, default: the rest of the page, at most 3000)."""
        total = self.js("document.documentElement.scrollHeight")
        height = min(height or total - y, 3000, total - y)
        shot = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": y, "width": width, "height": height, "scale": 1})
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(shot["data"]))

    def problems(self):
        """Script errors, console errors, error log entries and network requests seen so far."""
        out = []
        for ev in self.events:
            method, params = ev.get("method"), ev.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append("exception: %s" % json.dumps(params.get("exceptionDetails"))[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
                out.append("console.%s: %s" % (params["type"], json.dumps(params.get("args"))[:500]))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
                out.append("log: %s" % params["entry"].get("text"))
            elif method == "Network.requestWillBeSent":
                url = params.get("request", {}).get("url", "")
                if not url.startswith(("file:", "data:", "blob:", "about:")):
                    out.append("network request: %s" % url)
        return out

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except Exception:  # already gone: fall through to terminate
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_write)
        self.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """A report with a baseline and bad lines, and one with gate verdicts, in ``SHOTS``."""
    tmp = tmp_path_factory.mktemp("browser")
    small = dict(models=MODELS[:6], precisions=("fp32", "amp_bf16", "fp16"), devices=("cpu",), batches=(1, 8, 32),
                 n_sizes=3)
    cand = str(tmp / "cand")
    base = str(tmp / "base")
    write_synthetic_store(cand, failure_rate=0.06, **small)
    write_synthetic_store(base, failure_rate=0.06, seed=1, run_id="run-baseline",
                          speed_factors={"torch-2.1": 1.3}, **small)
    with open(os.path.join(cand, "torch-2.0.jsonl"), "a", encoding="utf-8") as fh:
        fh.write('{"schema_version": 1, "truncated')
    os.makedirs(SHOTS, exist_ok=True)
    main = os.path.join(SHOTS, "index.html")
    result = build_report([cand], out_path=main, baseline_paths=[base])
    verdicts = [{"case_key": "k%d" % i, "env_fingerprint": "fp", "kind": kind, "verdict": verdict, "baseline": 0.01,
                 "candidate": 0.013, "ratio": 1.3, "p_value": 0.001, "q_value": 0.01, "reason": "why %d" % i}
                for i, (kind, verdict) in enumerate([("time", "regressed"), ("memory", "unchanged"),
                                                     ("accuracy", "improved"), ("status", "vanished")] * 10)]
    gated = os.path.join(SHOTS, "gated.html")
    build_report([cand], out_path=gated, verdicts=verdicts)
    return result, main, gated


@pytest.fixture(scope="module")
def default_shaped(tmp_path_factory):
    """A report of the default scenario's shape: one batch size and one size per model, CPU only."""
    store = str(tmp_path_factory.mktemp("default") / "store")
    write_synthetic_store(store, models=MODELS[:8], devices=("cpu",), batches=(2,), n_sizes=1, failure_rate=0.04)
    out = os.path.join(SHOTS, "default-shaped", "index.html")
    build_report([store], out_path=out)
    return out


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def test_report_renders_without_errors_and_makes_no_request(reports, browser):
    result, main, _ = reports
    assert len(result["problems"]) == 1
    browser.open(main)
    assert browser.js("window.__tmErrors") == []
    assert browser.js("document.querySelectorAll('.js-error').length") == 0
    for ident in ("problems", "glance", "run", "compat", "speed", "memory", "accuracy", "failures", "all", "compare"):
        assert browser.js("!!document.getElementById(%s)" % json.dumps(ident)), ident
    # the table of every case is rendered a page at a time
    assert browser.js("document.querySelectorAll('#tm-table-records tbody tr').length") == 50
    assert browser.js("document.querySelectorAll('#tm-table-compare tbody tr').length") == 25
    # one throughput chart and one memory chart per model with ok records
    assert browser.js("document.querySelectorAll('#speed .chart svg polyline').length") >= 6
    assert browser.js("document.querySelectorAll('#memory .chart svg').length") == 6
    height = browser.js("document.documentElement.scrollHeight")
    browser.screenshot(os.path.join(SHOTS, "top.png"), 0, 2400)
    for ident in ("compat", "speed", "memory", "accuracy", "failures", "all", "compare"):
        y = browser.js("Math.max(0, document.getElementById(%s).getBoundingClientRect().top + scrollY - 40)"
                       % json.dumps(ident))
        browser.screenshot(os.path.join(SHOTS, "section-%s.png" % ident), int(y), 1800)
    assert height > 3000
    assert browser.problems() == []


FIGURE_TEXTS = """((id) => Array.from(document.querySelectorAll('#' + id + ' svg text'))
                    .map(t => t.textContent.trim()).filter(Boolean))(%s)"""
FIGURE_BOX = """((id) => { const r = document.querySelector('#' + id + ' svg').getBoundingClientRect();
                           const s = getComputedStyle(document.getElementById(id));
                           return [r.width, r.height, s.display, s.visibility]; })(%s)"""


def test_figures_render_visible_with_axes_labelled_by_environment(reports, browser):
    _, main, _ = reports
    browser.open(main)
    envs = [e[0] for e in ENVS]
    for name in CHART_NAMES:
        if name == FLOPS_CHART:  # the synthetic stores carry no FLOP counts (test_report_flops draws it)
            continue
        ident = "fig-" + name
        width, height, display, visibility = browser.js(FIGURE_BOX % json.dumps(ident))
        assert width > 400 and height > 250 and display != "none" and visibility == "visible", name
        texts = browser.js(FIGURE_TEXTS % json.dumps(ident))
        if name.endswith("_by_release"):
            # the legend names each environment once (a colour each), the y axis each model once
            assert all(texts.count(e) + texts.count(e + " (ref)") == 1 for e in envs), (name, texts)
            assert sum(t.startswith("graph_vae (batch ") for t in texts) == 1
        else:
            assert "time added per step (median)" in texts and "reentrant" in texts
    section = "document.getElementById('fig-speed_by_release').closest('section').id"
    assert browser.js(section) == "speed"
    y = browser.js("document.getElementById('fig-speed_by_release').getBoundingClientRect().top + scrollY - 60")
    browser.screenshot(os.path.join(SHOTS, "figure-speed.png"), int(y), 700)
    y = browser.js("document.getElementById('fig-memory_by_release').getBoundingClientRect().top + scrollY - 60")
    browser.screenshot(os.path.join(SHOTS, "figure-memory.png"), int(y), 700)
    assert browser.problems() == []


def test_default_shaped_report_charts_across_environments(default_shaped, browser):
    browser.open(default_shaped)
    assert browser.js("window.__tmErrors") == []
    # one batch size and one size: the chart grids start with the environment on the x axis
    assert browser.js("document.querySelector('#speed select[aria-label=\"x axis\"]').value") == "env"
    labels = browser.js("Array.from(document.querySelectorAll('#speed .chart svg')[0].querySelectorAll('text'))"
                        ".map(t => t.textContent)")
    assert [e[0] for e in ENVS] == [t for t in labels if t.startswith("torch-")]
    assert browser.js("document.querySelectorAll('#memory .chart svg polyline').length") == 8
    texts = browser.js(FIGURE_TEXTS % json.dumps("fig-speed_by_release"))
    assert "median time (ms)" in texts and texts.count("torch-latest (ref)") == 1
    y = browser.js("document.getElementById('speed').getBoundingClientRect().top + scrollY - 40")
    browser.screenshot(os.path.join(SHOTS, "default-shaped-speed.png"), int(y), 1400)
    assert browser.problems() == []


def test_table_sorts_filters_and_searches(reports, browser):
    _, main, _ = reports
    browser.open(main)
    col = ("Array.from(document.querySelectorAll('#tm-table-records thead th')).findIndex("
           "th => th.textContent === %s)")
    cells = ("Array.from(document.querySelectorAll('#tm-table-records tbody tr')).map("
             "tr => tr.children[%s].textContent)")
    median = browser.js(col % json.dumps("median ms"))
    browser.js("document.querySelectorAll('#tm-table-records thead th')[%d].click()" % median)
    browser.js("document.querySelectorAll('#tm-table-records thead th')[%d].click()" % median)  # descending
    values = [float(v.replace(",", "")) for v in browser.js(cells % median)]
    assert values == sorted(values, reverse=True) and len(values) == 50
    status = browser.js(col % json.dumps("status"))
    browser.js("""(() => { const s = document.querySelector('#tm-table-records select[aria-label="status"]');
                 s.value = String(Array.from(s.options).find(o => o.text === 'unsupported').value);
                 s.dispatchEvent(new Event('change')); })()""")
    shown = browser.js(cells % status)
    assert shown and set(shown) == {"unsupported"}
    assert "filtered from" in browser.js("document.querySelector('#tm-table-records .tm-count').textContent")
    browser.js("""(() => { const q = document.querySelector('#tm-table-records input[type=search]');
                 q.value = 'graph_vae'; q.dispatchEvent(new Event('input')); })()""")
    model = browser.js(col % json.dumps("model"))
    browser.wait_for("(%s).every(m => m === 'graph_vae')" % (cells % model))
    assert browser.js(cells % model)
    browser.js("document.querySelector('#tm-table-records .tm-controls button').click()")  # reset
    assert browser.js("document.querySelectorAll('#tm-table-records tbody tr').length") == 50
    assert browser.problems() == []


def test_chart_controls_and_drill_down(reports, browser):
    _, main, _ = reports
    browser.open(main)
    before = browser.js("document.querySelector('#speed .chart svg').textContent")
    browser.js("""(() => { const s = document.querySelector('#speed select[aria-label="x axis"]');
                 s.value = 'size'; s.dispatchEvent(new Event('change')); })()""")
    after = browser.js("document.querySelector('#speed .chart svg').textContent")
    assert before != after and "batch 8" in after  # now against size, at the most common batch size
    assert browser.js("document.querySelectorAll('#speed .chart svg polyline').length") >= 6
    hidden = "document.querySelectorAll('#matrix tr.child:not([hidden])').length"
    assert browser.js(hidden) == 0
    browser.js("document.querySelector('#matrix button[data-toggle]').click()")
    assert browser.js(hidden) > 0
    assert browser.js("document.querySelector('#matrix tr.why:not([hidden])').textContent").startswith(
        "most frequent reasons")
    y = browser.js("document.getElementById('compat').getBoundingClientRect().top + scrollY - 40")
    browser.screenshot(os.path.join(SHOTS, "section-compat-expanded.png"), int(y), 1000)
    browser.js("document.querySelector('#failures a[data-show-in-table]').click()")
    assert browser.js("document.querySelector('#tm-table-records input[type=search]').value") != ""
    assert browser.problems() == []


def test_verdict_report_renders(reports, browser):
    _, _, gated = reports
    browser.open(gated)
    assert browser.js("document.querySelectorAll('#tm-table-verdicts tbody tr').length") == 25
    first = browser.js("document.querySelector('#tm-table-verdicts tbody tr td').textContent")
    assert first == "regressed"  # regressions first
    y = browser.js("document.getElementById('compare').getBoundingClientRect().top + scrollY - 40")
    browser.screenshot(os.path.join(SHOTS, "section-verdicts.png"), int(y), 1200)
    assert browser.problems() == []


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    """A report of three rounds a case, instruction counts in the first, exact tensor peaks (CPU)."""
    store = str(tmp_path_factory.mktemp("counted") / "store")
    write_synthetic_store(store, models=MODELS[:6], modes=("train", "eval"), precisions=("fp32", "amp_bf16"),
                          checkpoints=("none",), devices=("cpu",), batches=(1, 8), n_sizes=2, failure_rate=0.01,
                          rounds=3, round_spread=0.15, instructions=True, tensor_peaks=True)
    out = os.path.join(SHOTS, "counted", "index.html")
    build_report([store], out_path=out)
    return out


COLUMN_TEXTS = """((label) => {
  const ths = Array.from(document.querySelectorAll('#tm-table-records thead th'));
  const k = ths.findIndex(th => th.textContent === label);
  return k < 0 ? null : Array.from(document.querySelectorAll('#tm-table-records tbody tr'))
    .map(tr => tr.children[k].textContent);
})(%s)"""


def test_counts_and_noise_in_the_heatmap_and_the_table(counted, browser):
    from harness.units import format_bytes, format_count

    browser.open(counted)
    assert browser.js("window.__tmErrors") == []
    tags = browser.js("Array.from(document.querySelectorAll('#speed td.heat small.basis')).map(s => s.textContent)")
    assert {"instr", "wall"} <= set(tags)
    assert browser.js("document.querySelectorAll('#speed td.heat.noise').length") > 0  # wall cells within noise
    assert browser.js("getComputedStyle(document.querySelector('#speed td.heat.noise')).backgroundImage") \
        .startswith("repeating-linear-gradient")
    legends = browser.js("Array.from(document.querySelectorAll('#speed .legend')).map(e => e.textContent)")
    assert any("within noise" in text for text in legends)
    counts = [t for t in browser.js(COLUMN_TEXTS % json.dumps("instructions")) if t]
    assert counts and all(t.endswith((" M", " k", " G")) for t in counts), counts
    peaks = [t for t in browser.js(COLUMN_TEXTS % json.dumps("tensor peak")) if t]
    assert peaks and all(t.endswith(("KiB", "MiB", "GiB")) for t in peaks), peaks
    browser.js("""(() => { const q = document.querySelector('#tm-table-records input[type=search]');
                 q.value = 'valgrind'; q.dispatchEvent(new Event('input')); })()""")
    browser.wait_for("document.querySelector('#tm-table-records .tm-count').textContent.includes('filtered')")
    notes = browser.js(COLUMN_TEXTS % json.dumps("no instruction count"))
    assert notes and all(t.startswith(("unsupported: ", "timeout: ")) for t in notes), notes
    # the page formats as harness.units does
    values = [0, 512, 1023.5 * 1024, 3 * 2 ** 20, 1.5e9, 118_533_695.0, 950.0, 2.3011e9]
    assert browser.js("%s.map(v => window.tmReport.fmtBytes(v))" % json.dumps(values)) == [
        format_bytes(v) for v in values]
    assert browser.js("%s.map(v => window.tmReport.fmtCount(v))" % json.dumps(values)) == [
        format_count(v) for v in values]
    y = browser.js("document.getElementById('speed').querySelector('table.grid').getBoundingClientRect().top"
                   " + scrollY - 120")
    browser.screenshot(os.path.join(SHOTS, "heatmap-counted.png"), int(y), 700)
    assert browser.problems() == []


def test_the_upgrade_pair_picker_shows_the_chosen_pair(default_shaped, browser):
    browser.open(default_shaped)
    shown = ("Array.from(document.querySelectorAll('#upgrade .upgrade-pair')).filter(d => !d.hidden)"
             ".map(d => d.getAttribute('data-pair'))")
    options = browser.js("Array.from(document.querySelectorAll('#upgrade select[data-upgrade-picker] option'))"
                         ".map(o => o.value)")
    envs = [e[0] for e in ENVS]
    assert len(options) == len(envs) * (len(envs) - 1) // 2 and options[0] == "%s|%s" % (envs[0], envs[-1])
    assert browser.js(shown) == [options[0]]
    browser.js("""(() => { const s = document.querySelector('#upgrade select[data-upgrade-picker]');
                 s.value = %s; s.dispatchEvent(new Event('change')); })()""" % json.dumps(options[-1]))
    assert browser.js(shown) == [options[-1]]
    frm, to = options[-1].split("|")
    assert browser.js("document.querySelector('#upgrade .upgrade-pair:not([hidden]) p.verdict').textContent"
                      ).startswith("%s \u2192 %s: " % (frm, to))
    assert browser.problems() == []
