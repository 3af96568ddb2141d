// tests/plot/png.test.mjs DIR — pixel checks of the charts that tests/test-plot-cli.sh made with
// `bitdistill plot`, decoded by pngjs (pure JavaScript: independent of cairo, of the libpng it
// writes with and of zlib's C code). Each chart NAME comes as DIR/NAME.png and DIR/NAME.json (--layout output).
// Prints one line per check: "ok<TAB>name" or "not ok<TAB>name<TAB>detail"; the shell test turns
// them into TAP.
import fs from 'node:fs';
import path from 'node:path';
import pngjs from 'pngjs';

const dir = process.argv[2];
const out = (ok, name, detail = '') =>
  console.log(ok ? `ok\t${name}` : `not ok\t${name}\t${detail}`);

function load(name) {
  const png = pngjs.PNG.sync.read(fs.readFileSync(path.join(dir, `${name}.png`)));
  const layout = JSON.parse(fs.readFileSync(path.join(dir, `${name}.json`), 'utf8'));
  const px = (x, y) => {
    const i = (png.width * Math.floor(y) + Math.floor(x)) * 4;
    return [png.data[i], png.data[i + 1], png.data[i + 2]];
  };
  return { png, layout, px };
}
const hex = (s) => [1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16));
const dist = (a, b) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
const dark = (c) => 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] < 100;
const inBox = (x, y, b, m = 0) => b && x >= b.x0 - m && x < b.x1 + m && y >= b.y0 - m && y < b.y1 + m;
// Whether some pixel within r of (x, y) is within tol of colour c.
function near(px, x, y, r, c, tol = 8) {
  for (let dy = -r; dy <= r; dy++)
    for (let dx = -r; dx <= r; dx++) if (dist(px(x + dx, y + dy), c) <= tol) return true;
  return false;
}

// --- y = x over [0,1] x [0,1] ---
{
  const { png, layout: L, px } = load('diag');
  const a = L.area, col = hex(L.series[0].color);
  const mx = (v) => a.x0 + v * (a.x1 - a.x0), my = (v) => a.y1 - v * (a.y1 - a.y0);
  out(png.width === 800 && png.height === 500, 'diag: decodes as 800x500', `${png.width}x${png.height}`);
  out(dist(px(0, 0), [255, 255, 255]) === 0 && dist(px(799, 499), [255, 255, 255]) === 0,
    'diag: white background in the corners');
  out(L.x.lo === 0 && L.x.hi === 1 && L.y.lo === 0 && L.y.hi === 1, 'diag: axes are the fixed limits [0,1]');
  let on = 0, miss = [];
  for (let i = 5; i <= 95; i += 5) {
    const t = i / 100;
    if (near(px, mx(t), my(t), 1, col)) on++;
    else miss.push(t);
  }
  out(on === 19, 'diag: series colour on the diagonal at t = 0.05..0.95', `missing at ${miss}`);
  // Every pixel of the series' colour lies on the diagonal (within 3 px) or in the legend.
  let count = 0, stray = 0, firstStray = '';
  const len = Math.hypot(a.x1 - a.x0, a.y1 - a.y0);
  for (let y = 0; y < png.height; y++)
    for (let x = 0; x < png.width; x++) {
      if (dist(px(x, y), col) > 60) continue;
      if (inBox(x, y, L.legend)) continue;
      count++;
      // distance from the pixel centre to the line through (x0,y1) and (x1,y0)
      const d = Math.abs((a.y0 - a.y1) * (x + 0.5 - a.x0) - (a.x1 - a.x0) * (y + 0.5 - a.y1)) / len;
      if (d > 3) {
        stray++;
        if (!firstStray) firstStray = `(${x},${y}) at ${d.toFixed(1)} px`;
      }
    }
  out(count > 700 && stray === 0, 'diag: series colour nowhere but on the diagonal and in the legend',
    `${count} pixels, ${stray} stray, first ${firstStray}`);
  const inkIn = (b) => {
    let n = 0;
    for (let y = Math.floor(b.y0); y < b.y1; y++)
      for (let x = Math.floor(b.x0); x < b.x1; x++) if (dark(px(x, y))) n++;
    return n;
  };
  out(L.title && inkIn(L.title) > 50, 'diag: the title box holds dark text', `${L.title && inkIn(L.title)} dark px`);
  out(L.legend && inkIn(L.legend) > 20, 'diag: the legend holds dark text', `${L.legend && inkIn(L.legend)} dark px`);
  let swatch = 0;
  if (L.legend)
    for (let y = L.legend.y0; y < L.legend.y1; y++)
      for (let x = L.legend.x0; x < L.legend.x1; x++) if (dist(px(x, y), col) <= 8) swatch++;
  out(swatch > 20, 'diag: the legend shows the series colour', `${swatch} px`);
  // Tick labels: dark pixels left of the y axis at each y tick, under the x axis at each x tick.
  let ylab = 0, xlab = 0;
  for (const t of L.y.ticks) {
    let n = 0;
    for (let x = 0; x < a.x0 - 6; x++) for (let dy = -4; dy <= 4; dy++) n += dark(px(x, t.px + dy));
    ylab += n > 5;
  }
  for (const t of L.x.ticks) {
    let n = 0;
    for (let y = a.y1 + 4; y < a.y1 + 24; y++) for (let dx = -6; dx <= 6; dx++) n += dark(px(Math.min(799, t.px + dx), y));
    xlab += n > 5;
  }
  out(ylab === L.y.ticks.length && xlab === L.x.ticks.length && L.y.ticks.length >= 4,
    'diag: every tick has a readable label', `y ${ylab}/${L.y.ticks.length}, x ${xlab}/${L.x.ticks.length}`);
}

// --- bars 1 : 2 : 4 ---
{
  const { layout: L, px } = load('bars');
  const a = L.area, H = a.y1 - a.y0;
  const heights = L.bars.map((b) => {
    const c = hex(b.color), x = b.x0 + 2;
    let n = 0;
    for (let y = a.y1 - 1; y > a.y0 && dist(px(x, y), c) === 0; y--) n++;
    return n;
  });
  const [h1, h2, h4] = heights;
  out(h1 > 20 && Math.abs(h2 - 2 * h1) <= 3 && Math.abs(h4 - 4 * h1) <= 5,
    'bars: measured heights are 1 : 2 : 4', heights.join(', '));
  const want = L.bars.map((b) => ((b.value - L.y.lo) / (L.y.hi - L.y.lo)) * H);
  out(heights.every((h, i) => Math.abs(h - want[i]) <= 2), 'bars: heights match the y axis scale',
    `measured ${heights}, axis says ${want.map((v) => v.toFixed(1))}`);
  const colors = new Set(L.bars.map((b) => b.color));
  out(colors.size === 3, 'bars: three distinct colours', [...colors].join(' '));
  let gaps = 0;
  for (let i = 0; i + 1 < L.bars.length; i++) {
    const x = (L.bars[i].x1 + L.bars[i + 1].x0) / 2;
    gaps += dist(px(x, a.y1 - 5), [255, 255, 255]) === 0;
  }
  out(gaps === 2, 'bars: white gaps between the bars');
  let labels = 0;
  for (const b of L.bars) {
    let n = 0;
    for (let y = a.y1 + 4; y < a.y1 + 24; y++) for (let x = b.x0; x < b.x1; x++) n += dark(px(x, y));
    labels += n > 10;
  }
  out(labels === 3, 'bars: each bar has its label under the axis', `${labels}/3`);
  let values = 0;
  for (const b of L.bars) {
    let n = 0;
    for (let y = b.y0 - 16; y < b.y0; y++) for (let x = b.x0; x < b.x1; x++) n += dark(px(x, y));
    values += n > 10;
  }
  out(values === 3, 'bars: each bar has its value printed above it', `${values}/3`);
}

// --- log y: y = 10^x for x in [0, 3] ---
{
  const { layout: L, px } = load('logy');
  const a = L.area, col = hex(L.series[0].color);
  const tv = L.y.ticks.map((t) => t.value), tp = L.y.ticks.map((t) => t.px);
  out(L.y.log && JSON.stringify(tv) === '[1,10,100,1000]', 'logy: decade ticks 1, 10, 100, 1000', JSON.stringify(tv));
  const d = tp.slice(1).map((p, i) => tp[i] - p);
  out(d.length === 3 && d.every((v) => Math.abs(v - d[0]) <= 1) && d[0] > 50,
    'logy: decades evenly spaced', d.map((v) => v.toFixed(1)).join(', '));
  let grid = 0;
  for (const p of tp.slice(1, 3)) grid += dist(px(a.x1 - 5, p), [0xe3, 0xe3, 0xe3]) <= 4;
  out(grid === 2, 'logy: grid lines at the decades');
  // At x = 0.5, 1.5, 2.5 the line sits a half, 1.5 and 2.5 decades up, not where a linear axis would put it.
  let at = 0, notLinear = 0;
  for (const x of [0.5, 1.5, 2.5]) {
    const sx = a.x0 + (x / 3) * (a.x1 - a.x0);
    const logY = a.y1 - (x / 3) * (a.y1 - a.y0);
    const linY = a.y1 - ((10 ** x - 1) / 999) * (a.y1 - a.y0);
    at += near(px, sx, logY, 1, col);
    notLinear += !near(px, sx, linY, 1, col);
  }
  out(at === 3 && notLinear === 3, 'logy: points at their log positions, not the linear ones', `${at}/3, ${notLinear}/3`);
}
