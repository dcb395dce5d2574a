/**
 * The dashboard's own browser code and style, served as `/ui/assets/dashboard.js` and
 * `/ui/assets/dashboard.css`. Kept as strings here so `tsc` carries them into dist/ with no build
 * step; plain ES5-level JavaScript, no framework.
 */

/** Live updates (Server-Sent Events → htmx `kiln-change`) and uPlot charts. */
export const DASHBOARD_JS = `(function () {
  'use strict';
  var pending = null;
  function changed() {
    if (pending !== null) return;
    pending = setTimeout(function () {
      pending = null;
      htmx.trigger(document.body, 'kiln-change');
    }, 200);
  }
  if (window.EventSource && document.body.hasAttribute('data-live')) {
    var source = new EventSource('/ui/events');
    source.addEventListener('change', changed);
  }
  function draw(el, values, label, unit, range) {
    if (el.getAttribute('data-drawn') === '1' || typeof uPlot === 'undefined') return;
    el.setAttribute('data-drawn', '1');
    if (values.length === 0) {
      el.textContent = 'no data yet';
      return;
    }
    var xs = values.map(function (_, i) { return i + 1; });
    var width = function () { return Math.max(240, el.clientWidth || 600); };
    var opts = {
      width: width(),
      height: 220,
      scales: { x: { time: false }, y: range ? { range: range } : {} },
      legend: { show: false },
      axes: [{ label: label === 'score' ? 'look' : 'termination', incrs: [1, 2, 5, 10, 20, 50, 100] }, { label: unit }],
      series: [{ label: '#' }, { label: label, stroke: '#2563eb', width: 2, points: { show: true } }],
    };
    var plot = new uPlot(opts, [xs, values], el);
    window.addEventListener('resize', function () {
      if (el.isConnected) plot.setSize({ width: width(), height: 220 });
    });
  }
  function charts(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var nodes = [];
    if (scope.matches && scope.matches('[data-scores],[data-mttr]')) nodes.push(scope);
    scope.querySelectorAll('[data-scores],[data-mttr]').forEach(function (n) { nodes.push(n); });
    nodes.forEach(function (el) {
      try {
        if (el.hasAttribute('data-scores')) {
          draw(el, JSON.parse(el.getAttribute('data-scores')), 'score', 'score (0-100)', [0, 100]);
        } else {
          draw(el, JSON.parse(el.getAttribute('data-mttr')), 'recovery', 'ms', null);
        }
      } catch (e) {
        el.textContent = 'chart unavailable: ' + e.message;
      }
    });
  }
  htmx.onLoad(charts);
})();
`;

/** Plain, responsive: tables scroll sideways on narrow screens. */
export const DASHBOARD_CSS = `:root { color-scheme: light dark; --fg: #111; --bg: #fff; --muted: #666; --line: #ddd;
  --ok: #15803d; --bad: #b91c1c; --warn: #b45309; --accent: #2563eb; }
@media (prefers-color-scheme: dark) { :root { --fg: #eee; --bg: #111; --muted: #aaa; --line: #333; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: var(--fg);
  background: var(--bg); }
header.top { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1rem; padding: .6rem 1rem;
  border-bottom: 1px solid var(--line); }
header.top .brand { font-weight: 700; }
nav { display: flex; flex-wrap: wrap; gap: .25rem 1rem; flex: 1; }
nav a { color: var(--accent); text-decoration: none; }
nav a[aria-current] { font-weight: 700; text-decoration: underline; }
#whoami { color: var(--muted); font-size: .9em; }
form.inline { display: inline; margin: 0; }
main { padding: 1rem; max-width: 1200px; margin: 0 auto; }
h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
section { margin-bottom: 1.5rem; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
td.wrap, td.reason, td.detail { white-space: normal; min-width: 12rem; }
th { font-weight: 600; color: var(--muted); font-size: .9em; }
code, .digest { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; }
.muted { color: var(--muted); }
.ok, .pass, .healthy, .succeeded { color: var(--ok); }
.bad, .fail, .high, .low, .failed, .unhealthy, .rolled-back, .tainted { color: var(--bad); }
.warn, .paused, .draining, .starting, .nodata { color: var(--warn); }
p.error { color: var(--bad); border: 1px solid var(--bad); padding: .5rem .75rem; border-radius: 4px; }
.actions { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: .5rem 0; }
button, select, input { max-width: 100%; font: inherit; padding: .35rem .7rem; border-radius: 4px; border: 1px solid var(--line);
  background: var(--bg); color: var(--fg); }
button { cursor: pointer; border-color: var(--accent); color: var(--accent); }
button[data-action="rollback"], button[data-action="abort"] { border-color: var(--bad); color: var(--bad); }
.htmx-request button, button.htmx-request { opacity: .6; }
.chart { min-height: 60px; margin: .5rem 0; width: 100%; }
details summary { cursor: pointer; }
details ul { margin: .3rem 0; padding-left: 1.2rem; max-height: 20rem; overflow-y: auto; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.summary dt { color: var(--muted); }
dl.summary dd { margin: 0; }
.login { max-width: 24rem; margin: 4rem auto; padding: 1rem; }
.login input { width: 100%; margin: .5rem 0; }
@media (max-width: 600px) {
  body { font-size: 14px; }
  main { padding: .6rem; }
  th, td { padding: .3rem .4rem; }
}
`;
