"""The report page's inline CSS and JavaScript (no external resources of any kind).

``ERROR_TRAP`` runs first in ``<head>``: any script error, failed resource load,
unhandled rejection or ``console.error`` adds a ``.js-error`` element to
``#tm-js-errors`` (tests look for it). ``SCRIPT`` drives the interactive parts: the
sortable, filterable, paged tables over the compact datasets of ``report_payload``,
the line-chart grids (one small SVG chart per model, one line per environment), and
the drill-down toggles. When it has finished it sets ``data-tm-ready="1"`` on ``<html>``.
"""

CSS = r"""
:root { --fg:#1f2328; --muted:#59636e; --line:#d8dee4; --bg:#ffffff; --panel:#f6f8fa; --accent:#0969da;
  --ok:#2da44e; --unsupported:#8c959f; --skipped:#c9d1d9; --timeout:#d4a72c; --oom:#bc4c00; --error:#cf222e;
  --crashed:#8250df; --accuracy:#e16f24; }
* { box-sizing: border-box; }
html { font-family: -apple-system, "Segoe UI", "Helvetica Neue", Arial, "Noto Sans", sans-serif; font-size: 14px;
  color: var(--fg); background: var(--bg); }
body { margin: 0; }
header.top { background: #24292f; color: #fff; padding: 14px 28px 10px; }
header.top h1 { margin: 0 0 4px; font-size: 21px; font-weight: 600; }
header.top .meta { color: #d0d7de; font-size: 13px; }
header.top .meta b { color: #fff; font-weight: 600; }
nav.toc { position: sticky; top: 0; z-index: 10; background: #fff; border-bottom: 1px solid var(--line);
  padding: 6px 28px; display: flex; gap: 4px; flex-wrap: wrap; }
nav.toc a { color: var(--accent); text-decoration: none; padding: 3px 9px; border-radius: 12px; font-size: 13px; }
nav.toc a:hover { background: #ddf4ff; }
main { padding: 4px 28px 40px; max-width: 1600px; }
section { margin-top: 22px; }
h2 { font-size: 18px; margin: 0 0 6px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 16px 0 6px; }
p.note, .note { color: var(--muted); font-size: 12.5px; margin: 4px 0 8px; max-width: 1100px; }
.problems { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px; margin: 12px 0; }
.problems h3 { margin: 0 0 4px; font-size: 14px; }
.problems li, .problems code { font-size: 12.5px; }
.js-error { background: #ffebe9; border: 1px solid var(--error); color: #82071e; padding: 6px 10px;
  margin: 8px 28px; border-radius: 6px; }
table.grid { border-collapse: collapse; font-size: 12.5px; margin: 4px 0 8px; }
table.grid th, table.grid td { border: 1px solid var(--line); padding: 3px 7px; text-align: left; vertical-align: top; }
table.grid th { background: var(--panel); font-weight: 600; white-space: nowrap; }
table.grid td.num, table.grid th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.grid tr.child td:first-child { padding-left: 24px; color: var(--muted); }
table.grid tr.child.why td { color: var(--fg); font-size: 12px; line-height: 1.7; background: #fbfbfc;
  white-space: normal; max-width: 900px; }
table.grid td.heat { text-align: center; font-variant-numeric: tabular-nums; min-width: 74px; }
table.grid td.ref { background: repeating-linear-gradient(45deg, #f6f8fa, #f6f8fa 4px, #eaeef2 4px, #eaeef2 8px);
  color: var(--muted); text-align: center; }
table.grid td.na { color: #afb8c1; text-align: center; }
.scroll { overflow-x: auto; max-width: 100%; }
button.tg { border: 0; background: none; cursor: pointer; padding: 0 4px 0 0; color: var(--accent); font-size: 12px; }
button.tg[aria-expanded="true"] .arrow { display: inline-block; transform: rotate(90deg); }
button.small, .tm-controls button { font-size: 12px; padding: 2px 8px; border: 1px solid var(--line);
  background: var(--panel); border-radius: 5px; cursor: pointer; }
td.mx { min-width: 96px; cursor: help; }
.sbar { display: flex; height: 9px; border-radius: 2px; overflow: hidden; background: #eaeef2; margin-top: 2px; }
.sbar i { display: block; height: 100%; }
.mx .lbl { font-size: 11.5px; white-space: nowrap; }
.s-ok { background: var(--ok); } .s-unsupported { background: var(--unsupported); }
.s-skipped { background: var(--skipped); } .s-timeout { background: var(--timeout); } .s-oom { background: var(--oom); }
.s-error { background: var(--error); } .s-crashed { background: var(--crashed); }
.s-accuracy { background: var(--accuracy); }
.st { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 11.5px; color: #fff; line-height: 17px; }
.st.s-skipped, .st.s-timeout { color: #1f2328; }
.legend { display: flex; flex-wrap: wrap; gap: 12px; font-size: 12px; color: var(--muted); margin: 4px 0; }
.legend span { display: inline-flex; align-items: center; gap: 4px; }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px; }
.legend i.line { height: 3px; width: 18px; border-radius: 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 10px; margin: 8px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; background: #fff; }
.card h4 { margin: 0 0 4px; font-size: 14px; display: flex; justify-content: space-between; gap: 6px; }
.card h4 small { color: var(--muted); font-weight: 400; font-size: 12px; }
.card .kv { display: grid; grid-template-columns: auto 1fr; gap: 1px 10px; font-size: 12.5px; }
.card .kv span:nth-child(odd) { color: var(--muted); }
.card .ref-tag { font-size: 11px; background: #ddf4ff; color: #0550ae; border-radius: 8px; padding: 0 6px; }
.good { color: #1a7f37; } .bad { color: #cf222e; } .warn { color: #9a6700; }
.skip-row td { color: var(--muted); background: #fbfbfc; }
details.fail { border: 1px solid var(--line); border-left: 4px solid var(--error); border-radius: 4px;
  margin: 4px 0; padding: 4px 8px; background: #fff; }
details.fail[data-status="unsupported"], details.fail[data-status="skipped"] { border-left-color: var(--unsupported); }
details.fail[data-status="timeout"] { border-left-color: var(--timeout); }
details.fail[data-status="oom"] { border-left-color: var(--oom); }
details.fail[data-status="crashed"] { border-left-color: var(--crashed); }
details.fail[data-status="accuracy"] { border-left-color: var(--accuracy); }
details.fail summary { cursor: pointer; font-size: 13px; }
details.fail summary .cnt { font-weight: 600; margin-right: 6px; }
details.fail .where { color: var(--muted); font-size: 12px; margin: 3px 0; }
pre { background: var(--panel); padding: 6px 8px; font-size: 11.5px; overflow-x: auto; border-radius: 4px;
  max-height: 260px; white-space: pre-wrap; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.tm-controls { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: center; font-size: 12.5px;
  margin: 6px 0; padding: 6px 8px; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; }
.tm-controls label { display: inline-flex; gap: 4px; align-items: center; color: var(--muted); }
.tm-controls select, .tm-controls input { font-size: 12.5px; padding: 1px 3px; }
.tm-controls input[type=search] { width: 220px; }
.tm-count { color: var(--muted); font-size: 12.5px; }
table.tm-table { border-collapse: collapse; font-size: 12px; width: 100%; }
table.tm-table th { background: var(--panel); border-bottom: 2px solid var(--line); padding: 4px 6px; text-align: left;
  cursor: pointer; white-space: nowrap; user-select: none; }
table.tm-table th.sorted-asc::after { content: " \25B2"; font-size: 9px; }
table.tm-table th.sorted-desc::after { content: " \25BC"; font-size: 9px; }
table.tm-table td { border-bottom: 1px solid #eaeef2; padding: 2px 6px; white-space: nowrap; max-width: 420px;
  overflow: hidden; text-overflow: ellipsis; }
table.tm-table td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.tm-table tr:hover td { background: #f6f8fa; }
.pager { display: flex; gap: 6px; align-items: center; margin: 6px 0; font-size: 12.5px; }
.pager button { font-size: 12px; padding: 1px 8px; border: 1px solid var(--line); background: #fff; border-radius: 4px;
  cursor: pointer; }
.pager button:disabled { color: #afb8c1; cursor: default; }
.chart-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 8px; }
.chart { border: 1px solid var(--line); border-radius: 6px; padding: 2px; background: #fff; }
.chart svg { display: block; width: 100%; height: auto; }
svg text { font-family: inherit; }
.vd { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 11.5px; line-height: 17px; }
.vd-regressed { background: #ffebe9; color: #82071e; font-weight: 600; }
.vd-improved { background: #dafbe1; color: #116329; }
.vd-inconclusive, .vd-not_comparable { background: #fff8c5; color: #7d4e00; }
.vd-new, .vd-vanished { background: #ddf4ff; color: #0550ae; }
.vd-unchanged { color: var(--muted); }
.r-bad { color: #cf222e; font-weight: 600; } .r-good { color: #1a7f37; font-weight: 600; }
.bars { display: inline-flex; align-items: center; gap: 4px; }
.bars i { display: inline-block; height: 9px; border-radius: 2px; }
.side { display: flex; flex-wrap: wrap; gap: 12px 28px; align-items: flex-start; }
.two-col { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 18px; align-items: start; }
@media (max-width: 1000px) { .two-col { grid-template-columns: 1fr; } }
footer { color: var(--muted); font-size: 12px; padding: 12px 28px 30px; border-top: 1px solid var(--line); }
@media print { nav.toc { position: static; } .tm-controls, .pager { display: none; } }
"""

ERROR_TRAP = r"""
(function () {
  'use strict';
  window.__tmErrors = [];
  function show(msg) {
    var box = document.getElementById('tm-js-errors');
    if (!box) { return false; }
    box.hidden = false;
    var div = document.createElement('div');
    div.className = 'js-error';
    div.textContent = 'Report script problem: ' + msg;
    box.appendChild(div);
    return true;
  }
  function report(msg) {
    msg = String(msg);
    window.__tmErrors.push(msg);
    if (!show(msg)) { document.addEventListener('DOMContentLoaded', function () { show(msg); }); }
  }
  window.__tmReport = report;
  window.addEventListener('error', function (e) {
    var t = e.target;
    if (t && t !== window && t.tagName) {
      report('failed to load ' + t.tagName.toLowerCase() + ' ' + (t.src || t.href || ''));
    } else {
      report((e.message || 'error') + ' (' + (e.filename || '') + ':' + (e.lineno || '') + ')');
    }
  }, true);
  window.addEventListener('unhandledrejection', function (e) { report('unhandled rejection: ' + e.reason); });
  var origError = console.error;
  console.error = function () {
    report(Array.prototype.slice.call(arguments).join(' '));
    return origError.apply(console, arguments);
  };
})();
"""

SCRIPT = r"""
(function () {
  'use strict';
  var cache = {};
  function dataset(id) {
    if (!cache[id]) { cache[id] = JSON.parse(document.getElementById(id).textContent); }
    return cache[id];
  }
  function esc(s) {
    return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  }
  function make(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) { Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); }); }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }
  function sig(v, d) {
    if (v === null || v === undefined || !isFinite(v)) { return ''; }
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) { return v.toExponential(Math.max(d - 1, 0)); }
    var s = Number(v.toPrecision(d));
    return s.toLocaleString('en-US', {maximumFractionDigits: 6});
  }
  function colorRatio(v, lowerBetter) {
    if (v === null || !isFinite(v)) { return ''; }
    var worse = lowerBetter ? v > 1.1 : v < 1 / 1.1;
    var better = lowerBetter ? v < 1 / 1.1 : v > 1.1;
    return worse ? 'r-bad' : (better ? 'r-good' : '');
  }

  function Accessor(D) {
    var byKey = {};
    D.columns.forEach(function (c) { byKey[c.key] = c; });
    this.D = D;
    this.col = byKey;
    this.n = D.n;
  }
  Accessor.prototype.raw = function (c, i) {
    // the stored value: a number, a category code, or null when missing (codes use -1)
    var D = this.D;
    var v = c.ref ? D.refs[c.ref][c.key][D.refidx[c.ref][i]] : D.data[c.key][i];
    return (v === undefined || ((c.kind === 'cat' || c.kind === 'text') && v < 0)) ? null : v;
  };
  Accessor.prototype.text = function (c, i) {
    var r = this.raw(c, i);
    if (r === null || r === undefined) { return null; }
    return (c.kind === 'cat' || c.kind === 'text') ? this.D.dicts[c.key][r] : r;
  };

  function formatCell(td, c, A, i) {
    var v = A.raw(c, i);
    if (v === null || v === undefined) { td.textContent = ''; return; }
    if (c.kind === 'cat' || c.kind === 'text') {
      var s = A.D.dicts[c.key][v];
      if (c.fmt === 'status') {
        td.appendChild(make('span', {'class': 'st s-' + s}, s));
      } else if (c.fmt === 'verdict') {
        td.appendChild(make('span', {'class': 'vd vd-' + s}, s));
      } else {
        td.textContent = s;
        if (s.length > 40) { td.title = s; }
      }
      return;
    }
    td.className = 'num';
    if (c.fmt === 'pct') { td.textContent = sig(v, 2) + '%'; }
    else if (c.fmt === 'sci') { td.textContent = v === 0 ? '0' : v.toExponential(1); }
    else if (c.fmt === 'tratio' || c.fmt === 'mratio') {
      td.textContent = sig(v, 3) + '\u00d7';
      var cls = colorRatio(v, true);
      if (cls) { td.className += ' ' + cls; }
    } else if (c.fmt === 'p') { td.textContent = v < 1e-4 ? v.toExponential(0) : sig(v, 2); }
    else if (c.kind === 'int') { td.textContent = String(v); }
    else { td.textContent = sig(v, 4); }
  }

  function Table(root) {
    var A = new Accessor(dataset(root.getAttribute('data-src')));
    var D = A.D, cols = D.columns;
    var state = {terms: [], filters: {}, sort: null, dir: 1, page: 0,
                 size: parseInt(root.getAttribute('data-page-size') || '50', 10), view: null};
    var initialSort = root.getAttribute('data-sort');
    if (initialSort) {
      var parts = initialSort.split(':');
      state.sort = parts[0]; state.dir = parts[1] === 'desc' ? -1 : 1;
    }
    var controls = make('div', {'class': 'tm-controls'});
    var search = make('input', {type: 'search', placeholder: 'search (all words must match)', 'aria-label': 'search'});
    var l0 = make('label', null, 'Search ');
    l0.appendChild(search);
    controls.appendChild(l0);
    var selects = [];
    cols.forEach(function (c) {
      if (c.kind !== 'cat' || c.filter === false) { return; }
      var values = D.dicts[c.key];
      if (!values || values.length < 2 || values.length > 80) { return; }
      var sel = make('select', {'aria-label': c.label});
      sel.appendChild(make('option', {value: ''}, 'all'));
      values.forEach(function (v, k) { sel.appendChild(make('option', {value: String(k)}, v)); });
      sel.addEventListener('change', function () {
        if (sel.value === '') { delete state.filters[c.key]; } else { state.filters[c.key] = parseInt(sel.value, 10); }
        state.page = 0; refresh();
      });
      var lab = make('label', null, c.label + ' ');
      lab.appendChild(sel);
      controls.appendChild(lab);
      selects.push([c, sel]);
    });
    var reset = make('button', {type: 'button'}, 'Reset');
    var csv = make('button', {type: 'button'}, 'CSV of filtered rows');
    controls.appendChild(reset);
    controls.appendChild(csv);
    root.appendChild(controls);
    var pager = make('div', {'class': 'pager'});
    root.appendChild(pager);
    var wrap = make('div', {'class': 'scroll'});
    var table = make('table', {'class': 'tm-table'});
    var thead = make('thead'), tbody = make('tbody');
    var hr = make('tr');
    var ths = cols.map(function (c) {
      var th = make('th', {title: 'sort by ' + c.label}, c.label);
      if (c.kind === 'num' || c.kind === 'int') { th.className = 'num'; }
      th.addEventListener('click', function () {
        if (state.sort === c.key) { state.dir = -state.dir; } else { state.sort = c.key; state.dir = 1; }
        state.page = 0; refresh();
      });
      hr.appendChild(th);
      return th;
    });
    thead.appendChild(hr);
    table.appendChild(thead);
    table.appendChild(tbody);
    wrap.appendChild(table);
    root.appendChild(wrap);

    var timer = null;
    search.addEventListener('input', function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        state.terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
        state.page = 0; refresh();
      }, 200);
    });
    reset.addEventListener('click', function () {
      search.value = ''; state.terms = []; state.filters = {}; state.page = 0;
      selects.forEach(function (p) { p[1].value = ''; });
      refresh();
    });
    csv.addEventListener('click', function () {
      var lines = [cols.map(function (c) { return c.label; }).join(',')];
      state.view.forEach(function (i) {
        lines.push(cols.map(function (c) {
          var t = A.text(c, i);
          t = t === null ? '' : String(t);
          return /[",\n]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
        }).join(','));
      });
      var blob = new Blob([lines.join('\n') + '\n'], {type: 'text/csv'});
      var a = make('a', {href: URL.createObjectURL(blob), download: (root.id || 'table') + '.csv'});
      document.body.appendChild(a); a.click(); document.body.removeChild(a);
    });

    function textCols() { return cols.filter(function (c) { return c.kind === 'cat' || c.kind === 'text'; }); }
    function compute() {
      var n = A.n, out = [], i, k;
      var fkeys = Object.keys(state.filters);
      var fcols = fkeys.map(function (k) { return A.col[k]; });
      var fvals = fkeys.map(function (k) { return state.filters[k]; });
      var tcols = textCols();
      var termMatch = state.terms.map(function (term) {
        return tcols.map(function (c) {
          return D.dicts[c.key].map(function (s) { return s.toLowerCase().indexOf(term) >= 0; });
        });
      });
      for (i = 0; i < n; i++) {
        var keep = true;
        for (k = 0; k < fcols.length && keep; k++) { if (A.raw(fcols[k], i) !== fvals[k]) { keep = false; } }
        for (k = 0; k < termMatch.length && keep; k++) {
          var any = false;
          for (var j = 0; j < tcols.length && !any; j++) {
            var r = A.raw(tcols[j], i);
            if (r !== null && r !== undefined && termMatch[k][j][r]) { any = true; }
          }
          keep = any;
        }
        if (keep) { out.push(i); }
      }
      if (state.sort && A.col[state.sort]) {
        var c = A.col[state.sort], dir = state.dir;
        var key = new Array(n);
        out.forEach(function (idx) { key[idx] = A.raw(c, idx); });
        out.sort(function (a, b) {
          var x = key[a], y = key[b];
          var xn = x === null || x === undefined, yn = y === null || y === undefined;
          if (xn || yn) { return xn === yn ? a - b : (xn ? 1 : -1); }
          return x < y ? -dir : (x > y ? dir : a - b);
        });
      }
      state.view = out;
    }
    function renderPager() {
      pager.innerHTML = '';
      var total = state.view.length, pages = Math.max(1, Math.ceil(total / state.size));
      if (state.page >= pages) { state.page = pages - 1; }
      var first = total ? state.page * state.size + 1 : 0, last = Math.min(total, (state.page + 1) * state.size);
      function btn(label, page, disabled) {
        var b = make('button', {type: 'button'}, label);
        b.disabled = disabled;
        b.addEventListener('click', function () { state.page = page; render(); });
        pager.appendChild(b);
      }
      btn('\u00ab', 0, state.page === 0);
      btn('\u2039 prev', state.page - 1, state.page === 0);
      pager.appendChild(make('span', null, 'page ' + (state.page + 1) + ' of ' + pages));
      btn('next \u203a', state.page + 1, state.page >= pages - 1);
      btn('\u00bb', pages - 1, state.page >= pages - 1);
      var sizeSel = make('select', {'aria-label': 'rows per page'});
      [25, 50, 100, 500].forEach(function (s) {
        var o = make('option', {value: String(s)}, s + ' rows');
        if (s === state.size) { o.selected = true; }
        sizeSel.appendChild(o);
      });
      sizeSel.addEventListener('change', function () {
        state.size = parseInt(sizeSel.value, 10); state.page = 0; render();
      });
      pager.appendChild(sizeSel);
      pager.appendChild(make('span', {'class': 'tm-count'}, 'rows ' + first + '\u2013' + last + ' of ' + total +
        (total !== A.n ? ' (filtered from ' + A.n + ')' : '')));
    }
    function render() {
      renderPager();
      ths.forEach(function (th, k) {
        th.classList.remove('sorted-asc', 'sorted-desc');
        if (cols[k].key === state.sort) { th.classList.add(state.dir > 0 ? 'sorted-asc' : 'sorted-desc'); }
      });
      var frag = document.createDocumentFragment();
      var start = state.page * state.size, stop = Math.min(state.view.length, start + state.size);
      for (var p = start; p < stop; p++) {
        var i = state.view[p], tr = make('tr');
        for (var k = 0; k < cols.length; k++) {
          var td = make('td');
          formatCell(td, cols[k], A, i);
          tr.appendChild(td);
        }
        frag.appendChild(tr);
      }
      tbody.innerHTML = '';
      tbody.appendChild(frag);
    }
    function refresh() { compute(); render(); }
    root.tmTable = {state: state, refresh: refresh, search: search};
    refresh();
  }

  // ---- line charts: one small SVG per model, one line per environment ----
  function niceStep(span, count) {
    // a 1, 2 or 5 times power-of-ten step giving about ``count`` intervals over ``span``
    var raw = span / count, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function svgChart(title, subtitle, xlabels, series, yfmt, unit, xname) {
    var W = 300, H = 190, L = 50, R = 10, T = 32, B = 30;
    var iw = W - L - R, ih = H - T - B;
    var ymax = 0;
    series.forEach(function (s) { s.pts.forEach(function (p) { if (p[1] > ymax) { ymax = p[1]; } }); });
    if (!(ymax > 0)) { ymax = 1; }
    var step = niceStep(ymax, 4);
    var nticks = Math.ceil(ymax / step - 1e-9);
    ymax = step * nticks;
    var nx = xlabels.length;
    function xp(i) { return L + (nx === 1 ? iw / 2 : i * iw / (nx - 1)); }
    function yp(v) { return T + ih - (v / ymax) * ih; }
    var out = ['<svg viewBox="0 0 ' + W + ' ' + H + '" role="img" aria-label="' + esc(title) + '">'];
    out.push('<text x="6" y="14" font-size="12" font-weight="600" fill="#1f2328">' + esc(title) + '</text>');
    out.push('<text x="6" y="26" font-size="10" fill="#59636e">' + esc(subtitle) + '</text>');
    for (var t = 0; t <= nticks; t++) {
      var v = step * t, y = yp(v);
      out.push('<line x1="' + L + '" x2="' + (W - R) + '" y1="' + y + '" y2="' + y + '" stroke="#eaeef2"/>');
      out.push('<text x="' + (L - 4) + '" y="' + (y + 3) + '" font-size="9.5" text-anchor="end" fill="#59636e">' +
               esc(yfmt(v)) + '</text>');
    }
    xlabels.forEach(function (lab, i) {
      out.push('<text x="' + xp(i) + '" y="' + (H - B + 12) + '" font-size="9.5" text-anchor="middle" fill="#59636e">' +
               esc(lab) + '</text>');
    });
    out.push('<text x="' + (L + iw / 2) + '" y="' + (H - 3) + '" font-size="9.5" text-anchor="middle" fill="#59636e">' +
             esc(xname) + '</text>');
    out.push('<line x1="' + L + '" x2="' + L + '" y1="' + T + '" y2="' + (T + ih) + '" stroke="#8c959f"/>');
    out.push('<line x1="' + L + '" x2="' + (W - R) + '" y1="' + (T + ih) + '" y2="' + (T + ih) +
             '" stroke="#8c959f"/>');
    series.forEach(function (s) {
      var pts = s.pts.slice().sort(function (a, b) { return a[0] - b[0]; });
      if (pts.length > 1) {
        out.push('<polyline fill="none" stroke="' + s.color + '" stroke-width="1.8" points="' +
                 pts.map(function (p) { return xp(p[0]).toFixed(1) + ',' + yp(p[1]).toFixed(1); }).join(' ') + '"/>');
      }
      pts.forEach(function (p) {
        out.push('<circle cx="' + xp(p[0]).toFixed(1) + '" cy="' + yp(p[1]).toFixed(1) + '" r="2.6" fill="' + s.color +
                 '"><title>' + esc(s.name + ' \u00b7 ' + xname + ' ' + xlabels[p[0]] + ': ' + sig(p[1], 4) + ' ' +
                 unit) + '</title></circle>');
      });
    });
    out.push('</svg>');
    return out.join('');
  }

  function Charts(root) {
    var A = new Accessor(dataset(root.getAttribute('data-src')));
    var D = A.D, C = A.col;
    var envs = JSON.parse(document.getElementById('tm-envs').textContent);
    var metric = root.getAttribute('data-metric');
    var defaults = JSON.parse(root.getAttribute('data-defaults') || '{}');
    var valueCol = C[metric === 'peak' ? 'peak_mib' : 'throughput'];
    var unit = metric === 'peak' ? 'MiB' : 'samples/s';
    var okCode = D.dicts.status.indexOf('ok');
    var okRows = [];
    for (var i = 0; i < A.n; i++) {
      var v = A.raw(valueCol, i);
      if (A.raw(C.status, i) === okCode && v !== null && isFinite(v)) { okRows.push(i); }
    }
    var axes = ['mode', 'precision', 'checkpoint', 'device', 'opts'];
    var controls = make('div', {'class': 'tm-controls'});
    var sel = {};
    function addSelect(key, label, options, value) {
      var s = make('select', {'aria-label': label});
      options.forEach(function (o) {
        var opt = make('option', {value: String(o[0])}, o[1]);
        if (String(o[0]) === String(value)) { opt.selected = true; }
        s.appendChild(opt);
      });
      s.addEventListener('change', draw);
      var lab = make('label', null, label + ' ');
      lab.appendChild(s);
      controls.appendChild(lab);
      sel[key] = s;
    }
    addSelect('x', 'x axis', [['batch_size', 'batch size'], ['size', 'size']], defaults.x || 'batch_size');
    axes.forEach(function (key) {
      var present = {};
      okRows.forEach(function (i) { present[A.raw(C[key], i)] = true; });
      var opts = D.dicts[key].map(function (lab, k) { return [k, lab]; })
        .filter(function (o) { return present[o[0]]; });
      if (!opts.length) { opts = [[-1, '-']]; }
      var want = D.dicts[key].indexOf(defaults[key]);
      addSelect(key, key, opts, present[want] ? want : opts[0][0]);
    });
    root.appendChild(controls);
    var legend = make('div', {'class': 'legend'});
    envs.forEach(function (e) {
      var span = make('span');
      span.appendChild(make('i', {'class': 'line', style: 'background:' + e.color}));
      span.appendChild(document.createTextNode(e.name + (e.ref ? ' (reference)' : '')));
      legend.appendChild(span);
    });
    root.appendChild(legend);
    var grid = make('div', {'class': 'chart-grid'});
    var note = make('p', {'class': 'note'});
    root.appendChild(grid);
    root.appendChild(note);
    var envColor = {};
    envs.forEach(function (e) { envColor[e.name] = e.color; });

    function median(xs) {
      xs.sort(function (a, b) { return a - b; });
      var m = xs.length >> 1;
      return xs.length % 2 ? xs[m] : (xs[m - 1] + xs[m]) / 2;
    }
    function draw() {
      var xKey = sel.x.value, otherKey = xKey === 'batch_size' ? 'size' : 'batch_size';
      var want = {};
      axes.forEach(function (k) { want[k] = parseInt(sel[k].value, 10); });
      var byModel = {};
      okRows.forEach(function (i) {
        for (var k = 0; k < axes.length; k++) { if (A.raw(C[axes[k]], i) !== want[axes[k]]) { return; } }
        var m = A.raw(C.model, i);
        (byModel[m] = byModel[m] || []).push(i);
      });
      var html = [], empty = [];
      D.dicts.model.forEach(function (modelName, m) {
        var rows = byModel[m];
        if (!rows) { empty.push(modelName); return; }
        var counts = {};
        rows.forEach(function (i) { var o = A.raw(C[otherKey], i); counts[o] = (counts[o] || 0) + 1; });
        // fix the other axis at its most common value; among equally common values, the middle one
        var keys = Object.keys(counts).map(Number).sort(function (a, b) { return a - b; });
        var best = Math.max.apply(null, keys.map(function (o) { return counts[o]; }));
        var tied = keys.filter(function (o) { return counts[o] === best; });
        var fixed = tied[(tied.length - 1) >> 1];
        var xs = {}, series = {};
        rows.forEach(function (i) {
          if (A.raw(C[otherKey], i) !== fixed) { return; }
          var x = A.raw(C[xKey], i), env = A.raw(C.env, i);
          xs[x] = true;
          var s = series[env] = series[env] || {};
          (s[x] = s[x] || []).push(A.raw(valueCol, i));
        });
        var xvals = Object.keys(xs).map(Number).sort(function (a, b) { return a - b; });
        var xlabels = xvals.map(function (x) { return xKey === 'size' ? D.dicts.size[x] : String(x); });
        var pos = {};
        xvals.forEach(function (x, k) { pos[x] = k; });
        var list = Object.keys(series).map(Number).sort(function (a, b) { return a - b; }).map(function (env) {
          var name = D.dicts.env[env];
          return {name: name, color: envColor[name] || '#57606a',
                  pts: Object.keys(series[env]).map(Number).map(function (x) {
                    return [pos[x], median(series[env][x])];
                  })};
        });
        var otherLabel = otherKey === 'size' ? 'size ' + D.dicts.size[fixed] : 'batch ' + fixed;
        html.push('<div class="chart">' + svgChart(modelName, otherLabel + ' \u00b7 ' + unit, xlabels, list,
          function (v) { return sig(v, 3); }, unit, xKey === 'size' ? 'size' : 'batch size') + '</div>');
      });
      grid.innerHTML = html.join('');
      note.textContent = empty.length ? 'No ok records for this selection: ' + empty.join(', ') + '.' : '';
    }
    draw();
  }

  function toggles() {
    document.addEventListener('click', function (e) {
      var t = e.target.closest ? e.target.closest('[data-toggle]') : null;
      if (t) {
        var id = t.getAttribute('data-toggle');
        var open = t.getAttribute('aria-expanded') !== 'true';
        t.setAttribute('aria-expanded', open ? 'true' : 'false');
        document.querySelectorAll('[data-parent="' + id + '"]').forEach(function (r) { r.hidden = !open; });
        return;
      }
      var all = e.target.closest ? e.target.closest('[data-toggle-all]') : null;
      if (all) {
        var scope = document.getElementById(all.getAttribute('data-toggle-all'));
        var expand = all.getAttribute('data-expand') === '1';
        scope.querySelectorAll('[data-toggle]').forEach(function (b) {
          b.setAttribute('aria-expanded', String(expand));
        });
        scope.querySelectorAll('[data-parent]').forEach(function (r) { r.hidden = !expand; });
      }
      var show = e.target.closest ? e.target.closest('[data-show-in-table]') : null;
      if (show) {
        e.preventDefault();
        var tableRoot = document.getElementById(show.getAttribute('data-show-in-table'));
        if (tableRoot && tableRoot.tmTable) {
          tableRoot.tmTable.search.value = show.getAttribute('data-query');
          tableRoot.tmTable.search.dispatchEvent(new Event('input'));
          tableRoot.scrollIntoView();
        }
      }
    });
  }

  function init() {
    toggles();
    document.querySelectorAll('[data-tm-table]').forEach(function (root) { Table(root); });
    document.querySelectorAll('[data-tm-charts]').forEach(function (root) { Charts(root); });
    document.documentElement.setAttribute('data-tm-ready', '1');
  }
  if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', init); } else { init(); }
})();
"""
