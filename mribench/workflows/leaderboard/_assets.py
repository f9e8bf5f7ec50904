"""Static CSS and JavaScript of the leaderboard site (kept as strings so they ship inside the package).

The script is vanilla JavaScript with no dependency: clicking a column header's button sorts the
table body by that column (numbers by value, text alphabetically; empty cells always last) and
toggles ascending/descending; ``aria-sort`` records the state. It works from ``file://``.
"""

from __future__ import annotations

CSS = """\
:root { --fg: #111; --muted: #555; --line: #ddd; --accent: #2c6fbb; --warn: #8a5a00; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       max-width: 1200px; margin: 0 auto; padding: 1rem 1.5rem 3rem; line-height: 1.45; }
header.site { border-bottom: 1px solid var(--line); margin-bottom: 1rem; }
header.site a { color: inherit; text-decoration: none; }
a { color: var(--accent); }
h1 { font-size: 1.6rem; margin: 0.6rem 0; }
h2 { font-size: 1.25rem; margin-top: 2rem; }
p.note, .muted { color: var(--muted); }
.badge { display: inline-block; padding: 0.05rem 0.45rem; border-radius: 0.6rem; font-size: 0.8rem;
         border: 1px solid var(--line); background: #f6f6f6; white-space: nowrap; }
.badge.reported { background: #fff4e0; border-color: #f0c878; color: var(--warn); }
.badge.partial { background: #fdecea; border-color: #f1a9a0; }
.badge.reference { background: #fdf0e4; border-color: #e67e22; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.92rem; }
th, td { border-bottom: 1px solid var(--line); padding: 0.35rem 0.5rem; text-align: right; white-space: nowrap; }
th:first-child, td:first-child, th.text, td.text { text-align: left; }
thead th { background: #fafafa; position: sticky; top: 0; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer; color: inherit; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
tbody tr:hover { background: #f5f9ff; }
figure { margin: 1rem 0; }
figcaption { color: var(--muted); font-size: 0.9rem; }
svg.er-plot { max-width: 100%; height: auto; border: 1px solid var(--line); }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; }
dl.kv dt { font-weight: 600; }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
td.wrap { white-space: normal; min-width: 16rem; text-align: left; }
pre { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; font-size: 0.85rem; }
footer { margin-top: 3rem; color: var(--muted); font-size: 0.85rem; border-top: 1px solid var(--line); }
"""

JS = """\
(function () {
  "use strict";
  function cellValue(row, col) {
    var cell = row.cells[col];
    if (!cell) { return ""; }
    var v = cell.getAttribute("data-sort");
    return v === null ? cell.textContent.trim() : v;
  }
  function sortTable(table, col, type, dir) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var sign = dir === "ascending" ? 1 : -1;
    rows.sort(function (a, b) {
      var x = cellValue(a, col), y = cellValue(b, col);
      if (x === "" && y === "") { return 0; }
      if (x === "") { return 1; }
      if (y === "") { return -1; }
      if (type === "number") { return sign * (parseFloat(x) - parseFloat(y)); }
      return sign * x.localeCompare(y);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function setup(table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, col) {
      var button = th.querySelector("button");
      if (!button) { return; }
      button.addEventListener("click", function () {
        var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
        if (!th.hasAttribute("aria-sort") || th.getAttribute("aria-sort") === "none") {
          dir = th.getAttribute("data-type") === "number" ? "descending" : "ascending";
        }
        Array.prototype.forEach.call(heads, function (h) { h.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", dir);
        sortTable(table, col, th.getAttribute("data-type"), dir);
      });
    });
  }
  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), setup);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
"""
