// The per-op section (harness/analysis/report/sections/ops.py): for each profiled case compared between two
// environments (or with the baseline), the ops whose self time per step changed most, side by side; then
// every profiled case with links to its trace folder and file. Drawn from the JSON block named by data-src
// (op_compare.ops_json) as the script loads, before report.js marks the page ready.
(() => {
  // biome-ignore lint/suspicious/noRedundantUseStrict: a classic script inlined in <script>, not a module
  'use strict';
  const {dataset, make, sig} = window.tmReport;
  // comparisons drawn at once; the table of every op change below holds them all
  const SHOWN = 20;

  function link(href, text) {
    if (!href) { return document.createTextNode('\u2014'); }
    return make('a', {href: href}, text);
  }
  function cell(tr, text, cls, title) {
    const td = make('td', cls ? {'class': cls} : null, text);
    if (title) { td.title = title; }
    tr.appendChild(td);
    return td;
  }
  function th(tr, text, num) {
    tr.appendChild(make('th', num ? {'class': 'num'} : null, text));
  }
  function sideHead(side) {
    const span = make('span', {'class': 'op-side'}, `${side.label} `);
    span.appendChild(link(side.href, 'trace folder'));
    return span;
  }

  function comparison(c) {
    const box = make('div', {'class': 'op-cmp'});
    const h = make('h4', null, c.title);
    h.appendChild(make('small', null, ` ${c.basis} time per step`));
    box.appendChild(h);
    const sides = make('p', {'class': 'note'});
    sides.appendChild(make('b', null, 'A: '));
    sides.appendChild(sideHead(c.a));
    sides.appendChild(document.createTextNode(` \u00b7 ops ${c.a.total_text}, timed step ${c.a.median_text}`));
    sides.appendChild(make('br'));
    sides.appendChild(make('b', null, 'B: '));
    sides.appendChild(sideHead(c.b));
    sides.appendChild(document.createTextNode(` \u00b7 ops ${c.b.total_text}, timed step ${c.b.median_text}`));
    box.appendChild(sides);
    const table = make('table', {'class': 'grid op-table'});
    const head = make('tr');
    th(head, 'op');
    th(head, `A: ${c.a.label}`, true);
    th(head, `B: ${c.b.label}`, true);
    th(head, 'B \u2212 A', true);
    th(head, 'B / A', true);
    th(head, 'calls A', true);
    th(head, 'calls B', true);
    th(head, 'input shapes (heaviest call)');
    const thead = make('thead');
    thead.appendChild(head);
    table.appendChild(thead);
    const body = make('tbody');
    c.ops.forEach((o) => {
      const tr = make('tr');
      cell(tr, o.name, 'op-name');
      cell(tr, o.a_text, o.a_s === null ? 'na' : 'num', o.a_s === null ? `not among ${c.a.label}'s heaviest ops` : '');
      cell(tr, o.b_text, o.b_s === null ? 'na' : 'num', o.b_s === null ? `not among ${c.b.label}'s heaviest ops` : '');
      cell(tr, o.delta_text, `num ${o.delta_s > 0 ? 'r-bad' : 'r-good'}`);
      cell(tr, o.ratio === null ? '' : `${sig(o.ratio, 3)}\u00d7`, 'num');
      cell(tr, o.a_calls === null ? '' : sig(o.a_calls, 4), 'num');
      cell(tr, o.b_calls === null ? '' : sig(o.b_calls, 4), 'num');
      const shapes = o.a_shapes === o.b_shapes || !o.a_shapes || !o.b_shapes ? (o.a_shapes || o.b_shapes)
        : `A ${o.a_shapes} \u00b7 B ${o.b_shapes}`;
      cell(tr, shapes, 'op-shapes', shapes);
      body.appendChild(tr);
    });
    table.appendChild(body);
    const wrap = make('div', {'class': 'scroll'});
    wrap.appendChild(table);
    box.appendChild(wrap);
    return box;
  }

  function profiledCases(list) {
    const table = make('table', {'class': 'grid'});
    const head = make('tr');
    ['case', 'environment', 'steps', 'self CPU / step', 'self CUDA / step', 'heaviest op', 'trace'].forEach((t, k) => {
      th(head, t, k >= 2 && k <= 4);
    });
    const thead = make('thead');
    thead.appendChild(head);
    table.appendChild(thead);
    const body = make('tbody');
    list.forEach((p) => {
      const tr = make('tr');
      cell(tr, p.title, null, p.case);
      cell(tr, p.env);
      cell(tr, p.steps === null ? '' : String(p.steps), 'num');
      cell(tr, p.cpu_text, 'num');
      cell(tr, p.cuda_text, 'num');
      cell(tr, p.error ? `profiler failed: ${p.error}` : `${p.top} ${p.top_text}`, p.error ? 'bad' : null);
      const td = cell(tr, '');
      td.appendChild(link(p.href, 'folder'));
      if (p.file_href) {
        td.appendChild(document.createTextNode(' \u00b7 '));
        td.appendChild(link(p.file_href, 'trace JSON'));
      }
      body.appendChild(tr);
    });
    table.appendChild(body);
    const wrap = make('div', {'class': 'scroll'});
    wrap.appendChild(table);
    return wrap;
  }

  function draw(root) {
    const D = dataset(root.getAttribute('data-src'));
    if (D.comparisons.length) {
      root.appendChild(make('h3', null, 'Which ops changed'));
      D.comparisons.slice(0, SHOWN).forEach((c) => { root.appendChild(comparison(c)); });
      if (D.comparisons.length > SHOWN) {
        root.appendChild(make('p', {'class': 'note'},
          `${D.comparisons.length - SHOWN} more comparisons: see the table of every op change below.`));
      }
    } else {
      root.appendChild(make('p', {'class': 'note'},
        'No case is profiled in two environments (or in the baseline too): nothing to compare op by op yet.'));
    }
    root.appendChild(make('h3', null, `Profiled cases (${D.profiles.length})`));
    root.appendChild(profiledCases(D.profiles));
  }

  document.querySelectorAll('[data-tm-ops]').forEach(draw);
})();
