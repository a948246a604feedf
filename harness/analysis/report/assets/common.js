// Shared by the report page's scripts (loaded first): dataset access, HTML escaping, element making,
// number formats. Exposed as window.tmReport; table.js and charts.js add Table and Charts to it.
(() => {
  // biome-ignore lint/suspicious/noRedundantUseStrict: a classic script inlined in <script>, not a module
  'use strict';
  const cache = {};
  function dataset(id) {
    if (!cache[id]) { cache[id] = JSON.parse(document.getElementById(id).textContent); }
    return cache[id];
  }
  function esc(s) {
    return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  }
  function make(tag, attrs, text) {
    const node = document.createElement(tag);
    if (attrs) { Object.keys(attrs).forEach((k) => { node.setAttribute(k, attrs[k]); }); }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }
  function sig(v, d) {
    if (v === null || v === undefined || !Number.isFinite(v)) { return ''; }
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) { return v.toExponential(Math.max(d - 1, 0)); }
    const s = Number(v.toPrecision(d));
    return s.toLocaleString('en-US', {maximumFractionDigits: 6});
  }
  // bytes in binary units, as harness/units.py format_bytes: '12.3 MiB', '512 B'
  function fmtBytes(v) {
    const units = [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]];
    for (const [unit, scale] of units) {
      if (Math.abs(v) >= scale) {
        const x = v / scale;
        return `${Math.abs(x) >= 100 ? x.toFixed(0) : Number(x.toPrecision(3))} ${unit}`;
      }
    }
    return `${Math.round(v)} B`;
  }
  // a count in decimal units, as harness/units.py format_count: '118.5 M', '950'
  function fmtCount(v) {
    const units = [['G', 1e9], ['M', 1e6], ['k', 1e3]];
    for (const [unit, scale] of units) {
      if (Math.abs(v) >= scale) { return `${Number((v / scale).toPrecision(4))} ${unit}`; }
    }
    return String(Number(v.toPrecision(4)));
  }
  function colorRatio(v, lowerBetter) {
    if (v === null || !Number.isFinite(v)) { return ''; }
    const worse = lowerBetter ? v > 1.1 : v < 1 / 1.1;
    const better = lowerBetter ? v < 1 / 1.1 : v > 1.1;
    return worse ? 'r-bad' : (better ? 'r-good' : '');
  }

  // reads a dataset of the report's compact column-wise format (see payload.py)
  class Accessor {
    constructor(D) {
      this.D = D;
      this.col = {};
      D.columns.forEach((c) => { this.col[c.key] = c; });
      this.n = D.n;
    }
    raw(c, i) {
      // the stored value: a number, a category code, or null when missing (codes use -1)
      const D = this.D;
      const v = c.ref ? D.refs[c.ref][c.key][D.refidx[c.ref][i]] : D.data[c.key][i];
      return (v === undefined || ((c.kind === 'cat' || c.kind === 'text') && v < 0)) ? null : v;
    }
    text(c, i) {
      const r = this.raw(c, i);
      if (r === null || r === undefined) { return null; }
      return (c.kind === 'cat' || c.kind === 'text') ? this.D.dicts[c.key][r] : r;
    }
  }
  function median(xs) {
    xs.sort((a, b) => a - b);
    const m = xs.length >> 1;
    return xs.length % 2 ? xs[m] : (xs[m - 1] + xs[m]) / 2;
  }
  function pushTo(obj, key, value) {
    if (!obj[key]) { obj[key] = []; }
    obj[key].push(value);
  }

  window.tmReport = {dataset, esc, make, sig, fmtBytes, fmtCount, colorRatio, Accessor, median, pushTo};
})();
