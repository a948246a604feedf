// The report page's last script: the drill-down toggles and the upgrade pair picker, then every table and
// chart grid. Sets data-tm-ready="1" on <html> when done (the browser test waits for it).
(() => {
  // biome-ignore lint/suspicious/noRedundantUseStrict: a classic script inlined in <script>, not a module
  'use strict';
  const {Table, Charts} = window.tmReport;

  function toggles() {
    document.addEventListener('click', (e) => {
      const t = e.target.closest?.('[data-toggle]');
      if (t) {
        const id = t.getAttribute('data-toggle');
        const open = t.getAttribute('aria-expanded') !== 'true';
        t.setAttribute('aria-expanded', open ? 'true' : 'false');
        document.querySelectorAll(`[data-parent="${id}"]`).forEach((r) => { r.hidden = !open; });
        return;
      }
      const all = e.target.closest?.('[data-toggle-all]');
      if (all) {
        const scope = document.getElementById(all.getAttribute('data-toggle-all'));
        const expand = all.getAttribute('data-expand') === '1';
        scope.querySelectorAll('[data-toggle]').forEach((b) => {
          b.setAttribute('aria-expanded', String(expand));
        });
        scope.querySelectorAll('[data-parent]').forEach((r) => { r.hidden = !expand; });
      }
      const show = e.target.closest?.('[data-show-in-table]');
      if (show) {
        e.preventDefault();
        const tableRoot = document.getElementById(show.getAttribute('data-show-in-table'));
        if (tableRoot?.tmTable) {
          tableRoot.tmTable.search.value = show.getAttribute('data-query');
          tableRoot.tmTable.search.dispatchEvent(new Event('input'));
          tableRoot.scrollIntoView();
        }
      }
    });
  }

  // the upgrade section's pair picker: shows the chosen pair's block, hides the others
  function upgradePicker() {
    document.querySelectorAll('[data-upgrade-picker]').forEach((sel) => {
      sel.addEventListener('change', () => {
        document.querySelectorAll('.upgrade-pair').forEach((block) => {
          block.hidden = block.getAttribute('data-pair') !== sel.value;
        });
      });
    });
  }

  function init() {
    toggles();
    upgradePicker();
    document.querySelectorAll('[data-tm-table]').forEach((root) => { Table(root); });
    document.querySelectorAll('[data-tm-charts]').forEach((root) => { Charts(root); });
    document.documentElement.setAttribute('data-tm-ready', '1');
  }
  if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', init); } else { init(); }
})();
