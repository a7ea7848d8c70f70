"""The report's stylesheet and script, inlined in every page (no CDN, nothing to fetch)."""

CSS = """
:root { --bg:#f4f5f7; --card:#fff; --ink:#1d2330; --muted:#5d6675; --line:#dde1e7; --ran:#1f8f4e;
  --cached:#2f6fb3; --failed:#c0392b; --skipped:#8a8f98; --warn:#b7791f; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--ink); }
header.top { background:#1d2330; color:#fff; padding:18px 28px; }
header.top h1 { margin:0 0 4px; font-size:22px; }
header.top .sub { color:#c9ced8; font-size:13px; }
header.top a { color:#9cc3ff; }
header.top code { background:rgba(255,255,255,.14); color:#fff; }
main { padding:20px 28px 60px; max-width:1500px; }
section { margin:0 0 28px; }
h2 { font-size:17px; margin:0 0 10px; }
.summary { display:flex; flex-wrap:wrap; gap:10px; margin:12px 0 0; }
.pill { background:rgba(255,255,255,.12); border-radius:999px; padding:3px 12px; font-size:13px; }
.notice { background:#fff7d6; border:1px solid #f0d36b; padding:8px 12px; border-radius:6px; margin:0 0 18px; }
.badge { display:inline-block; border-radius:4px; padding:1px 8px; font-size:12px; color:#fff; background:var(--skipped); }
.badge.ran, .badge.succeeded { background:var(--ran); } .badge.cached { background:var(--cached); }
.badge.failed, .badge.interrupted, .badge.abandoned { background:var(--failed); }
.graph-box { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px; overflow-x:auto; }
svg.graph text { font:12px system-ui, sans-serif; fill:#1d2330; } svg.graph .node-title { font-weight:600; font-size:13px; }
svg.graph .node-detail, svg.graph .edge-label { fill:#5d6675; font-size:11px; }
details.mermaid pre { background:#f0f2f5; padding:8px; overflow-x:auto; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(380px, 1fr)); gap:16px; }
.card { background:var(--card); border:1px solid var(--line); border-left:5px solid var(--skipped); border-radius:8px; padding:12px 14px; }
.card.ran { border-left-color:var(--ran); } .card.cached { border-left-color:var(--cached); } .card.failed { border-left-color:var(--failed); }
.card h3 { margin:0; font-size:15px; display:flex; gap:8px; align-items:center; flex-wrap:wrap; }
.card .model { color:var(--muted); font-weight:normal; font-size:12px; }
.card .reason { color:var(--muted); margin:6px 0; }
.media { display:flex; flex-wrap:wrap; gap:8px; margin:10px 0; }
.media img { display:block; max-width:180px; max-height:180px; border-radius:4px; border:1px solid var(--line); background:#eee; }
.media video { max-width:100%; width:340px; border-radius:4px; background:#000; }
.media figure { margin:0; } .media figcaption { font-size:11px; color:var(--muted); }
pre.text { white-space:pre-wrap; background:#f6f7f9; border:1px solid var(--line); padding:8px; max-height:220px; overflow:auto; width:100%; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:3px 10px; margin:8px 0 0; font-size:13px; }
dl.facts dt { color:var(--muted); } dl.facts dd { margin:0; overflow-wrap:anywhere; }
code { background:#f0f2f5; padding:0 4px; border-radius:3px; font-size:12px; }
.error { color:var(--failed); } .warning { color:var(--warn); }
ul.problems { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 10px 10px 30px; margin:0; }
ul.problems li { margin:3px 0; }
.missing { color:var(--muted); font-style:italic; }
table.grid, table.batch { border-collapse:collapse; background:var(--card); }
table.grid th, table.grid td, table.batch th, table.batch td { border:1px solid var(--line); padding:6px 8px; vertical-align:top; text-align:left; }
table.grid th { background:#eef0f4; } table.grid td { text-align:center; min-width:190px; }
table.grid td img, table.batch td img { max-width:180px; max-height:180px; border-radius:4px; display:block; margin:0 auto 4px; }
table.batch td img { max-width:96px; max-height:96px; margin:0; }
table.grid td.empty { background:repeating-linear-gradient(45deg,#f4f5f7,#f4f5f7 6px,#eceef2 6px,#eceef2 12px); color:var(--muted); }
.pager { display:flex; gap:8px; align-items:center; margin:10px 0; }
.pager button { padding:4px 12px; }
tr.off { display:none; }
.still { display:inline-block; text-align:center; vertical-align:top; margin:0 6px 4px 0; }
.still small { display:block; color:var(--muted); }
table.grid .still { display:block; margin:0 0 4px; }
.lightbox { position:fixed; inset:0; background:rgba(10,12,16,.88); display:none; align-items:center; justify-content:center; z-index:9; cursor:zoom-out; }
.lightbox.open { display:flex; } .lightbox img { max-width:94vw; max-height:92vh; box-shadow:0 6px 40px #000; }
nav.sections a { margin-right:12px; }
"""

SCRIPT = """
(function () {
  // Thumbnails open full size in an overlay (the link still works without the script).
  var box = document.createElement('div');
  box.className = 'lightbox';
  var big = document.createElement('img');
  big.alt = 'full size';
  box.appendChild(big);
  document.body.appendChild(box);
  box.addEventListener('click', function () { box.classList.remove('open'); big.removeAttribute('src'); });
  document.addEventListener('keydown', function (e) { if (e.key === 'Escape') box.click(); });
  document.querySelectorAll('a.zoom').forEach(function (link) {
    link.addEventListener('click', function (e) {
      if (e.ctrlKey || e.metaKey || e.shiftKey) return;
      e.preventDefault();
      big.src = link.getAttribute('href');
      box.classList.add('open');
    });
  });
  // Long batch tables show one page at a time; hidden rows' lazy images are never fetched.
  document.querySelectorAll('table[data-page-size]').forEach(function (table) {
    var size = parseInt(table.getAttribute('data-page-size'), 10);
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var pager = document.getElementById(table.id + '-pager');
    var filter = document.getElementById(table.id + '-filter');
    var page = 0;
    function visible() {
      var wanted = filter ? filter.value : '';
      return rows.filter(function (row) { return !wanted || row.getAttribute('data-status') === wanted; });
    }
    function show() {
      var shown = visible();
      var pages = Math.max(1, Math.ceil(shown.length / size));
      page = Math.min(page, pages - 1);
      rows.forEach(function (row) { row.classList.add('off'); });
      shown.slice(page * size, (page + 1) * size).forEach(function (row) { row.classList.remove('off'); });
      if (pager) {
        pager.querySelector('.where').textContent = 'page ' + (page + 1) + ' of ' + pages + ' (' + shown.length + ' rows)';
        pager.querySelector('.prev').disabled = page === 0;
        pager.querySelector('.next').disabled = page >= pages - 1;
      }
    }
    if (pager) {
      pager.querySelector('.prev').addEventListener('click', function () { page -= 1; show(); });
      pager.querySelector('.next').addEventListener('click', function () { page += 1; show(); });
    }
    if (filter) filter.addEventListener('change', function () { page = 0; show(); });
    show();
  });
})();
"""
