// The report's chart grids: one small SVG chart per model for the slice of the matrix picked above the
// grid (mode, precision, checkpointing, device, options), against batch size, size or environment.
(() => {
  // biome-ignore lint/suspicious/noRedundantUseStrict: a classic script inlined in <script>, not a module
  'use strict';
  const {dataset, esc, make, sig, Accessor, median, pushTo} = window.tmReport;

  function niceStep(span, count) {
    // a 1, 2 or 5 times power-of-ten step giving about ``count`` intervals over ``span``
    const raw = span / count, p = 10 ** Math.floor(Math.log10(raw)), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function svgText(x, y, text, attrs) {
    return `<text x="${x}" y="${y}" font-size="9.5" fill="#59636e" ${attrs || ''}>${esc(text)}</text>`;
  }
  // series: [{name, color, pts: [[x index, value, point colour (optional)], ...]}]
  function svgChart(title, subtitle, xlabels, series, unit, xname) {
    const nx = xlabels.length;
    const slanted = nx > 3 && xlabels.some((lab) => lab.length > 5);
    const W = 300, H = slanted ? 210 : 190, L = 50, R = 10, T = 32, B = slanted ? 50 : 30;
    const iw = W - L - R, ih = H - T - B;
    let ymax = 0;
    series.forEach((s) => { s.pts.forEach((p) => { if (p[1] > ymax) { ymax = p[1]; } }); });
    if (!(ymax > 0)) { ymax = 1; }
    const step = niceStep(ymax, 4);
    const nticks = Math.ceil(ymax / step - 1e-9);
    ymax = step * nticks;
    const xp = (i) => L + (nx === 1 ? iw / 2 : (i * iw) / (nx - 1));
    const yp = (v) => T + ih - (v / ymax) * ih;
    const out = [`<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">`];
    out.push(`<text x="6" y="14" font-size="12" font-weight="600" fill="#1f2328">${esc(title)}</text>`);
    out.push(`<text x="6" y="26" font-size="10" fill="#59636e">${esc(subtitle)}</text>`);
    for (let t = 0; t <= nticks; t++) {
      const v = step * t, y = yp(v);
      out.push(`<line x1="${L}" x2="${W - R}" y1="${y}" y2="${y}" stroke="#eaeef2"/>`);
      out.push(svgText(L - 4, y + 3, sig(v, 3), 'text-anchor="end"'));
    }
    xlabels.forEach((lab, i) => {
      const x = xp(i), y = H - B + 12;
      out.push(slanted ? svgText(x + 3, y, lab, `text-anchor="end" transform="rotate(-30 ${x + 3} ${y})"`)
                       : svgText(x, y, lab, 'text-anchor="middle"'));
    });
    out.push(svgText(L + iw / 2, H - 3, xname, 'text-anchor="middle"'));
    out.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${T + ih}" stroke="#8c959f"/>`);
    out.push(`<line x1="${L}" x2="${W - R}" y1="${T + ih}" y2="${T + ih}" stroke="#8c959f"/>`);
    series.forEach((s) => {
      const pts = s.pts.slice().sort((a, b) => a[0] - b[0]);
      if (pts.length > 1) {
        const coords = pts.map((p) => `${xp(p[0]).toFixed(1)},${yp(p[1]).toFixed(1)}`).join(' ');
        out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.8" points="${coords}"/>`);
      }
      pts.forEach((p) => {
        const tip = `${s.name} \u00b7 ${xname} ${xlabels[p[0]]}: ${sig(p[1], 4)} ${unit}`;
        out.push(`<circle cx="${xp(p[0]).toFixed(1)}" cy="${yp(p[1]).toFixed(1)}" r="2.6" fill="${p[2] || s.color}">` +
                 `<title>${esc(tip)}</title></circle>`);
      });
    });
    out.push('</svg>');
    return out.join('');
  }

  // The x axes a chart grid offers: each drawn against the others fixed at their most common values.
  const X_AXES = [['batch_size', 'batch size'], ['size', 'size'], ['env', 'environment']];

  function Charts(root) {
    const A = new Accessor(dataset(root.getAttribute('data-src')));
    const D = A.D, C = A.col;
    const envs = JSON.parse(document.getElementById('tm-envs').textContent);
    const metric = root.getAttribute('data-metric');
    const defaults = JSON.parse(root.getAttribute('data-defaults') || '{}');
    const valueCol = C[metric === 'peak' ? 'peak_mib' : 'throughput'];
    const unit = metric === 'peak' ? 'MiB' : 'samples/s';
    // memory: the exact tensor peak (bytes) where every point of a chart carries it, as the heatmaps prefer
    const tensorCol = metric === 'peak' ? C.tensor_peak_bytes : undefined;
    const okCode = D.dicts.status.indexOf('ok');
    const okRows = [];
    for (let i = 0; i < A.n; i++) {
      const v = A.raw(valueCol, i);
      if (A.raw(C.status, i) === okCode && v !== null && Number.isFinite(v)) { okRows.push(i); }
    }
    const axes = ['mode', 'precision', 'checkpoint', 'device', 'opts'];
    const controls = make('div', {'class': 'tm-controls'});
    const sel = {};
    function addSelect(key, label, options, value) {
      const s = make('select', {'aria-label': label});
      options.forEach((o) => {
        const opt = make('option', {value: String(o[0])}, o[1]);
        if (String(o[0]) === String(value)) { opt.selected = true; }
        s.appendChild(opt);
      });
      s.addEventListener('change', draw);
      const lab = make('label', null, `${label} `);
      lab.appendChild(s);
      controls.appendChild(lab);
      sel[key] = s;
    }
    addSelect('x', 'x axis', X_AXES, defaults.x || 'batch_size');
    axes.forEach((key) => {
      const present = {};
      okRows.forEach((i) => { present[A.raw(C[key], i)] = true; });
      let opts = D.dicts[key].map((lab, k) => [k, lab]).filter((o) => present[o[0]]);
      if (!opts.length) { opts = [[-1, '-']]; }
      const want = D.dicts[key].indexOf(defaults[key]);
      addSelect(key, key, opts, present[want] ? want : opts[0][0]);
    });
    root.appendChild(controls);
    const legend = make('div', {'class': 'legend'});
    envs.forEach((e) => {
      const span = make('span');
      span.appendChild(make('i', {'class': 'line', style: `background:${e.color}`}));
      span.appendChild(document.createTextNode(e.name + (e.ref ? ' (reference)' : '')));
      legend.appendChild(span);
    });
    root.appendChild(legend);
    const grid = make('div', {'class': 'chart-grid'});
    const note = make('p', {'class': 'note'});
    root.appendChild(grid);
    root.appendChild(note);
    const envColor = {};
    envs.forEach((e) => { envColor[e.name] = e.color; });
    const label = (key, code) => (key === 'batch_size' ? String(code) : D.dicts[key][code]);

    // the axes not drawn, fixed at their most common combination; among equally common ones, the middle one
    function fixedValues(rows, fixedKeys) {
      const counts = {};
      rows.forEach((i) => {
        const key = fixedKeys.map((k) => A.raw(C[k], i)).join('|');
        counts[key] = (counts[key] || 0) + 1;
      });
      const byValue = (a, b) => {
        const x = a.split('|').map(Number), y = b.split('|').map(Number);
        for (let k = 0; k < x.length; k++) { if (x[k] !== y[k]) { return x[k] - y[k]; } }
        return 0;
      };
      const keys = Object.keys(counts).sort(byValue);
      const best = Math.max(...keys.map((key) => counts[key]));
      const tied = keys.filter((key) => counts[key] === best);
      return tied[(tied.length - 1) >> 1].split('|').map(Number);
    }
    function modelChart(modelName, rows, xKey) {
      const fixedKeys = X_AXES.map((a) => a[0]).filter((k) => k !== xKey && k !== 'env');
      const fixed = fixedValues(rows, fixedKeys);
      const drawn = rows.filter((i) => !fixedKeys.some((k, j) => A.raw(C[k], i) !== fixed[j]));
      const exact = tensorCol !== undefined && drawn.every((i) => Number.isFinite(A.raw(tensorCol, i)));
      const chartUnit = metric === 'peak' ? (exact ? 'MiB tensor peak' : 'MiB process peak') : unit;
      const values = {};  // {series code: {x code: [values]}}
      const xs = {};
      drawn.forEach((i) => {
        const x = A.raw(C[xKey], i), group = xKey === 'env' ? 0 : A.raw(C.env, i);
        xs[x] = true;
        if (!values[group]) { values[group] = {}; }
        pushTo(values[group], x, exact ? A.raw(tensorCol, i) / 1048576 : A.raw(valueCol, i));
      });
      // every environment has its place, so that the charts of a grid line up
      const xvals = xKey === 'env' ? D.dicts.env.map((_name, k) => k)
                                   : Object.keys(xs).map(Number).sort((a, b) => a - b);
      const pos = {};
      xvals.forEach((x, k) => { pos[x] = k; });
      const series = Object.keys(values).map(Number).sort((a, b) => a - b).map((group) => {
        const envName = D.dicts.env[group];
        const pts = Object.keys(values[group]).map(Number).map((x) => {
          const point = [pos[x], median(values[group][x])];
          if (xKey === 'env') { point.push(envColor[D.dicts.env[x]] || '#57606a'); }
          return point;
        });
        return xKey === 'env' ? {name: modelName, color: '#afb8c1', pts: pts}
                              : {name: envName, color: envColor[envName] || '#57606a', pts: pts};
      });
      const subtitle = fixedKeys.map((k, j) => (k === 'size' ? 'size ' : 'batch ') + label(k, fixed[j]));
      const xname = X_AXES.find((a) => a[0] === xKey)[1];
      return svgChart(modelName, `${subtitle.join(' \u00b7 ')} \u00b7 ${chartUnit}`,
                      xvals.map((x) => label(xKey, x)), series, chartUnit, xname);
    }
    function draw() {
      const xKey = sel.x.value;
      const want = {};
      axes.forEach((k) => { want[k] = parseInt(sel[k].value, 10); });
      const byModel = {};
      okRows.forEach((i) => {
        if (axes.every((k) => A.raw(C[k], i) === want[k])) { pushTo(byModel, A.raw(C.model, i), i); }
      });
      const html = [], empty = [];
      D.dicts.model.forEach((modelName, m) => {
        if (byModel[m]) {
          html.push(`<div class="chart">${modelChart(modelName, byModel[m], xKey)}</div>`);
        } else {
          empty.push(modelName);
        }
      });
      grid.innerHTML = html.join('');
      note.textContent = empty.length ? `No ok records for this selection: ${empty.join(', ')}.` : '';
    }
    draw();
  }

  window.tmReport.Charts = Charts;
})();
