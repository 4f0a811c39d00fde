//! The page's stylesheet (inline in the page; also the setup page's): a single column on a
//! phone, each table row a card there, and a print layout.

pub(in crate::report) const CSS: &str = r#"
:root { --ink: #1d2330; --muted: #5b6475; --line: #d8dce3; --accent: #2f6f9f; --accent2: #9cc3e0; --soft: #f3f5f8; --warn: #9a3b00; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0; color: var(--ink); background: #fff; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
header, main, footer, nav { max-width: 70rem; margin: 0 auto; padding: 0 1rem; }
header { padding-top: 1.5rem; }
.kicker { margin: 0; color: var(--accent); font-weight: 600; text-transform: uppercase; letter-spacing: .06em; font-size: .85rem; }
h1 { margin: .2rem 0 .3rem; font-size: 1.9rem; line-height: 1.2; }
h2 { margin: 2.2rem 0 .6rem; font-size: 1.35rem; border-bottom: 2px solid var(--line); padding-bottom: .2rem; }
h3 { margin: 1.4rem 0 .4rem; font-size: 1.08rem; }
h4 { margin: .8rem 0 .2rem; font-size: .95rem; color: var(--muted); }
.meta, .note { color: var(--muted); margin: .2rem 0; }
.scope { display: inline-block; background: var(--soft); border-left: 4px solid var(--accent); padding: .3rem .7rem; margin: .6rem 0 0; }
nav { margin-top: 1rem; }
nav ul { list-style: none; padding: 0; margin: 0; display: flex; flex-wrap: wrap; gap: .3rem .9rem; }
nav a { color: var(--accent); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(10.5rem, 1fr)); gap: .7rem; margin: 1rem 0; padding: 0; }
.cards div { background: var(--soft); border-radius: 6px; padding: .6rem .8rem; }
.cards dt { color: var(--muted); font-size: .85rem; }
.cards dd { margin: .1rem 0 0; font-size: 1.3rem; font-weight: 600; }
.table-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: .5rem 0 1rem; }
table { border-collapse: collapse; width: 100%; font-size: .94rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; background: var(--soft); }
td.num, th.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tfoot td { font-weight: 600; border-top: 2px solid var(--line); }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .85em; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .8rem; background: var(--soft); border: 1px solid var(--line); white-space: nowrap; }
.badge.measured { background: #e3f1e6; border-color: #9ccaa6; }
.badge.estimate { background: #fff2dc; border-color: #e6c07a; }
.badge.ok { background: #e3f1e6; border-color: #9ccaa6; }
.badge.bad { background: #fde7e4; border-color: #e79a8f; }
.tenant { border: 1px solid var(--line); border-radius: 6px; padding: .2rem .9rem .7rem; margin: .8rem 0; }
.tenant ul { margin: .2rem 0; padding-left: 1.2rem; }
.problems li, .warnings li { color: var(--warn); }
.chart { display: block; width: 100%; max-width: 40rem; height: auto; margin: .4rem 0 1rem; }
.chart .bar { fill: var(--accent); }
.chart .bar2 { fill: var(--accent2); }
.chart .label, .chart .value { font-size: 13px; fill: var(--ink); }
.chart .axis { font-size: 12px; fill: var(--muted); }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.chart .line { fill: none; stroke: var(--accent); stroke-width: 2.5; }
.chart .dot { fill: var(--accent); }
footer { margin-top: 2.5rem; padding-bottom: 2rem; color: var(--muted); font-size: .9rem; border-top: 1px solid var(--line); }
@media (max-width: 34rem) {
  body { font-size: 15px; }
  h1 { font-size: 1.5rem; }
  .cards dd { font-size: 1.1rem; }
  /* Each row a card: its cells one under the other, each headed by its column. */
  table, tbody, tfoot, tr, td { display: block; width: 100%; }
  thead { display: none; }
  tr { border-bottom: 2px solid var(--line); padding: .3rem 0; }
  td, td.num { display: flex; justify-content: space-between; gap: 1rem; border: 0; padding: .12rem .2rem; text-align: right; white-space: normal; }
  td::before { content: attr(data-label); color: var(--muted); text-align: left; font-weight: 400; }
  td:empty, td[data-label=""]::before { display: none; }
  td:first-child { font-size: 1.02rem; }
}
@media print {
  body { font-size: 10.5pt; }
  nav { display: none; }
  header, main, footer { max-width: none; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; }
  section, .tenant, table, .chart, .cards { break-inside: avoid; page-break-inside: avoid; }
  .table-wrap { overflow: visible; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;
