"""The fixed style and script of report.html (hand-written, no library, nothing fetched).

The script reads the page's ``cells-data`` JSON ({rows, resolutions, grids: row -> resolution ->
relative grid.png}) and drives the A/B view (two rows at one resolution, flipped by the button
or the space bar) and the lightbox (a cell's full grid, loaded only when clicked).
"""

PAGE_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.4em; }
.note { background: #fff6d6; padding: .4em .7em; border-left: 4px solid #e0b000; }
#matrix { border-collapse: collapse; }
#matrix th, #matrix td { border: 1px solid #ccc; padding: 4px; vertical-align: top; }
#matrix thead th { position: sticky; top: 0; background: #f4f4f4; z-index: 1; }
#matrix tbody th { text-align: left; white-space: nowrap; background: #fafafa; }
#matrix th.train, .train-key { color: #0a5; }
td.train { outline: 3px solid #0a5; outline-offset: -3px; }
td.differs { background: #fde8e8; }
td.missing { color: #999; font-style: italic; }
img.thumb { display: block; min-width: 96px; max-width: 256px; height: auto; cursor: zoom-in;
  image-rendering: pixelated; }
img.thumb:hover { outline: 2px solid #36c; }
ul.metrics { list-style: none; margin: 4px 0 0; padding: 0; font-size: 12px; }
ul.metrics li.best { font-weight: bold; }
p.flag { color: #b00; font-size: 12px; margin: 2px 0; cursor: help; }
#ab label { margin-right: 1em; }
#ab-image { display: block; margin-top: .5em; max-width: 100%; image-rendering: pixelated;
  min-width: 256px; }
#plots figure { display: inline-block; margin: 0 1em 1em 0; }
#plots img { max-width: 900px; }
table.card td { border-bottom: 1px solid #eee; padding: 1px 8px; font-size: 12px; }
#lightbox { position: fixed; inset: 0; background: rgba(0, 0, 0, .85); display: flex;
  flex-direction: column; align-items: center; justify-content: center; z-index: 10;
  cursor: zoom-out; }
#lightbox[hidden] { display: none; }
#lightbox img { max-width: 95vw; max-height: 88vh; min-width: 40vmin;
  image-rendering: pixelated; background: #fff; }
#lightbox p { color: #fff; }
"""

PAGE_SCRIPT = """
(function () {
  const data = JSON.parse(document.getElementById('cells-data').textContent);
  const $ = (id) => document.getElementById(id);
  let showing = 'a';
  function gridOf(row, res) { return (data.grids[row] || {})[res]; }
  function render() {
    const row = $('ab-' + showing).value, res = $('ab-res').value;
    const src = gridOf(row, res), img = $('ab-image');
    const who = showing.toUpperCase() + ': ' + row + ' at ' + res;
    if (src) { img.src = src; img.hidden = false; $('ab-caption').textContent = who; }
    else { img.removeAttribute('src'); img.hidden = true;
      $('ab-caption').textContent = who + ' (not evaluated)'; }
  }
  function flip() { showing = showing === 'a' ? 'b' : 'a'; render(); }
  // defaults: the first two rows at the largest resolution both have
  if (data.rows.length > 1) { $('ab-b').selectedIndex = 1; }
  const both = data.resolutions.filter(
    (r) => gridOf($('ab-a').value, r) && gridOf($('ab-b').value, r));
  if (both.length) { $('ab-res').value = both[both.length - 1]; }
  ['ab-a', 'ab-b', 'ab-res'].forEach((id) => $(id).addEventListener('change', render));
  $('ab-flip').addEventListener('click', flip);
  const box = $('lightbox');
  function closeBox() { box.hidden = true; box.querySelector('img').removeAttribute('src'); }
  document.querySelectorAll('a.enlarge').forEach((a) => a.addEventListener('click', (e) => {
    e.preventDefault();
    box.querySelector('img').src = a.getAttribute('href');
    box.querySelector('p').textContent = a.dataset.caption;
    box.hidden = false;
  }));
  box.addEventListener('click', closeBox);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { closeBox(); }
    const typing = ['SELECT', 'INPUT', 'BUTTON'].includes(document.activeElement.tagName);
    if (e.key === ' ' && !typing) { e.preventDefault(); flip(); }
  });
  render();
})();
"""
