// The report's sortable, filterable, paged tables over the compact JSON datasets
// (harness/analysis/report/payload.py): one per [data-tm-table] element, with a search box, a filter per
// category column, a pager and a CSV export of the filtered rows.
(() => {
  // biome-ignore lint/suspicious/noRedundantUseStrict: a classic script inlined in <script>, not a module
  'use strict';
  const {dataset, make, sig, fmtBytes, fmtCount, colorRatio, Accessor} = window.tmReport;

  function formatCell(td, c, A, i) {
    const v = A.raw(c, i);
    if (v === null || v === undefined) { td.textContent = ''; return; }
    if (c.kind === 'cat' || c.kind === 'text') {
      const s = A.D.dicts[c.key][v];
      if (c.fmt === 'status') {
        td.appendChild(make('span', {'class': `st s-${s}`}, s));
      } else if (c.fmt === 'verdict') {
        td.appendChild(make('span', {'class': `vd vd-${s}`}, s));
      } else {
        td.textContent = s;
        if (s.length > 40) { td.title = s; }
      }
      return;
    }
    td.className = 'num';
    if (c.fmt === 'pct') { td.textContent = `${sig(v, 2)}%`; }
    else if (c.fmt === 'sci') { td.textContent = v === 0 ? '0' : v.toExponential(1); }
    else if (c.fmt === 'tratio' || c.fmt === 'mratio') {
      td.textContent = `${sig(v, 3)}\u00d7`;
      const cls = colorRatio(v, true);
      if (cls) { td.className += ` ${cls}`; }
    } else if (c.fmt === 'p') { td.textContent = v < 1e-4 ? v.toExponential(0) : sig(v, 2); }
    else if (c.fmt === 'bytes') { td.textContent = fmtBytes(v); }
    else if (c.fmt === 'count') { td.textContent = fmtCount(v); }
    else if (c.kind === 'int') { td.textContent = String(v); }
    else { td.textContent = sig(v, 4); }
  }

  function Table(root) {
    const A = new Accessor(dataset(root.getAttribute('data-src')));
    const D = A.D, cols = D.columns;
    const state = {terms: [], filters: {}, sort: null, dir: 1, page: 0,
                 size: parseInt(root.getAttribute('data-page-size') || '50', 10), view: null};
    const initialSort = root.getAttribute('data-sort');
    if (initialSort) {
      const parts = initialSort.split(':');
      state.sort = parts[0]; state.dir = parts[1] === 'desc' ? -1 : 1;
    }
    const controls = make('div', {'class': 'tm-controls'});
    const search = make('input', {type: 'search', placeholder: 'search (all words must match)', 'aria-label': 'search'});
    const l0 = make('label', null, 'Search ');
    l0.appendChild(search);
    controls.appendChild(l0);
    const selects = [];
    cols.forEach((c) => {
      if (c.kind !== 'cat' || c.filter === false) { return; }
      const values = D.dicts[c.key];
      if (!values || values.length < 2 || values.length > 80) { return; }
      const sel = make('select', {'aria-label': c.label});
      sel.appendChild(make('option', {value: ''}, 'all'));
      values.forEach((v, k) => { sel.appendChild(make('option', {value: String(k)}, v)); });
      sel.addEventListener('change', () => {
        if (sel.value === '') { delete state.filters[c.key]; } else { state.filters[c.key] = parseInt(sel.value, 10); }
        state.page = 0; refresh();
      });
      const lab = make('label', null, `${c.label} `);
      lab.appendChild(sel);
      controls.appendChild(lab);
      selects.push([c, sel]);
    });
    const reset = make('button', {type: 'button'}, 'Reset');
    const csv = make('button', {type: 'button'}, 'CSV of filtered rows');
    controls.appendChild(reset);
    controls.appendChild(csv);
    root.appendChild(controls);
    const pager = make('div', {'class': 'pager'});
    root.appendChild(pager);
    const wrap = make('div', {'class': 'scroll'});
    const table = make('table', {'class': 'tm-table'});
    const thead = make('thead'), tbody = make('tbody');
    const hr = make('tr');
    const ths = cols.map((c) => {
      const th = make('th', {title: `sort by ${c.label}`}, c.label);
      if (c.kind === 'num' || c.kind === 'int') { th.className = 'num'; }
      th.addEventListener('click', () => {
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

    let timer = null;
    search.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        state.terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
        state.page = 0; refresh();
      }, 200);
    });
    reset.addEventListener('click', () => {
      search.value = ''; state.terms = []; state.filters = {}; state.page = 0;
      selects.forEach((p) => { p[1].value = ''; });
      refresh();
    });
    csv.addEventListener('click', () => {
      const lines = [cols.map((c) => c.label).join(',')];
      state.view.forEach((i) => {
        lines.push(cols.map((c) => {
          let t = A.text(c, i);
          t = t === null ? '' : String(t);
          return /[",\n]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
        }).join(','));
      });
      const blob = new Blob([`${lines.join('\n')}\n`], {type: 'text/csv'});
      const a = make('a', {href: URL.createObjectURL(blob), download: `${root.id || 'table'}.csv`});
      document.body.appendChild(a); a.click(); document.body.removeChild(a);
    });

    function textCols() { return cols.filter((c) => c.kind === 'cat' || c.kind === 'text'); }
    function compute() {
      const n = A.n, out = [];
      let i, k;
      const fkeys = Object.keys(state.filters);
      const fcols = fkeys.map((k) => A.col[k]);
      const fvals = fkeys.map((k) => state.filters[k]);
      const tcols = textCols();
      const termMatch = state.terms.map((term) => tcols.map((c) => D.dicts[c.key].map((s) =>
        s.toLowerCase().indexOf(term) >= 0)));
      for (i = 0; i < n; i++) {
        let keep = true;
        for (k = 0; k < fcols.length && keep; k++) { if (A.raw(fcols[k], i) !== fvals[k]) { keep = false; } }
        for (k = 0; k < termMatch.length && keep; k++) {
          let any = false;
          for (let j = 0; j < tcols.length && !any; j++) {
            const r = A.raw(tcols[j], i);
            if (r !== null && r !== undefined && termMatch[k][j][r]) { any = true; }
          }
          keep = any;
        }
        if (keep) { out.push(i); }
      }
      if (state.sort && A.col[state.sort]) {
        const c = A.col[state.sort], dir = state.dir;
        const key = new Array(n);
        out.forEach((idx) => { key[idx] = A.raw(c, idx); });
        out.sort((a, b) => {
          const x = key[a], y = key[b];
          const xn = x === null || x === undefined, yn = y === null || y === undefined;
          if (xn || yn) { return xn === yn ? a - b : (xn ? 1 : -1); }
          return x < y ? -dir : (x > y ? dir : a - b);
        });
      }
      state.view = out;
    }
    function renderPager() {
      pager.innerHTML = '';
      const total = state.view.length, pages = Math.max(1, Math.ceil(total / state.size));
      if (state.page >= pages) { state.page = pages - 1; }
      const first = total ? state.page * state.size + 1 : 0, last = Math.min(total, (state.page + 1) * state.size);
      function btn(label, page, disabled) {
        const b = make('button', {type: 'button'}, label);
        b.disabled = disabled;
        b.addEventListener('click', () => { state.page = page; render(); });
        pager.appendChild(b);
      }
      btn('\u00ab', 0, state.page === 0);
      btn('\u2039 prev', state.page - 1, state.page === 0);
      pager.appendChild(make('span', null, `page ${state.page + 1} of ${pages}`));
      btn('next \u203a', state.page + 1, state.page >= pages - 1);
      btn('\u00bb', pages - 1, state.page >= pages - 1);
      const sizeSel = make('select', {'aria-label': 'rows per page'});
      [25, 50, 100, 500].forEach((s) => {
        const o = make('option', {value: String(s)}, `${s} rows`);
        if (s === state.size) { o.selected = true; }
        sizeSel.appendChild(o);
      });
      sizeSel.addEventListener('change', () => {
        state.size = parseInt(sizeSel.value, 10); state.page = 0; render();
      });
      pager.appendChild(sizeSel);
      pager.appendChild(make('span', {'class': 'tm-count'}, `rows ${first}\u2013${last} of ${total}` +
        (total !== A.n ? ` (filtered from ${A.n})` : '')));
    }
    function render() {
      renderPager();
      ths.forEach((th, k) => {
        th.classList.remove('sorted-asc', 'sorted-desc');
        if (cols[k].key === state.sort) { th.classList.add(state.dir > 0 ? 'sorted-asc' : 'sorted-desc'); }
      });
      const frag = document.createDocumentFragment();
      const start = state.page * state.size, stop = Math.min(state.view.length, start + state.size);
      for (let p = start; p < stop; p++) {
        const i = state.view[p], tr = make('tr');
        for (let k = 0; k < cols.length; k++) {
          const td = make('td');
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

  window.tmReport.Table = Table;
})();
