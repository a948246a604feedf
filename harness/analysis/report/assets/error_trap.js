// Runs first, in <head>: any script error, failed resource load, unhandled rejection or console.error
// adds a .js-error element to #tm-js-errors (the browser test looks for it).
(() => {
  // biome-ignore lint/suspicious/noRedundantUseStrict: a classic script inlined in <script>, not a module
  'use strict';
  window.__tmErrors = [];
  function show(msg) {
    const box = document.getElementById('tm-js-errors');
    if (!box) { return false; }
    box.hidden = false;
    const div = document.createElement('div');
    div.className = 'js-error';
    div.textContent = `Report script problem: ${msg}`;
    box.appendChild(div);
    return true;
  }
  function report(msg) {
    msg = String(msg);
    window.__tmErrors.push(msg);
    if (!show(msg)) { document.addEventListener('DOMContentLoaded', () => { show(msg); }); }
  }
  window.__tmReport = report;
  window.addEventListener('error', (e) => {
    const t = e.target;
    if (t && t !== window && t.tagName) {
      report(`failed to load ${t.tagName.toLowerCase()} ${t.src || t.href || ''}`);
    } else {
      report(`${e.message || 'error'} (${e.filename || ''}:${e.lineno || ''})`);
    }
  }, true);
  window.addEventListener('unhandledrejection', (e) => { report(`unhandled rejection: ${e.reason}`); });
  const origError = console.error;
  console.error = (...args) => {
    report(args.join(' '));
    return origError.apply(console, args);
  };
})();
