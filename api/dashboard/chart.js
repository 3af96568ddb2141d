// chart.js — a small line chart on <canvas>: raw points (faint) and an exponentially smoothed
// line, linear or log y axis, stage boundaries as dashed verticals. Drawing decimates to at most
// two points (min and max) per pixel column, so tens of thousands of events stay cheap; redraws
// are coalesced into one per animation frame.

const PAD = { l: 52, r: 10, t: 8, b: 22 };

function niceStep(range, n) {
  const raw = range / Math.max(1, n);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

// Tick text: 3 significant digits, exponents for very large or small values ("1.5e-4").
function tickLabel(v) {
  const a = Math.abs(v);
  if (v === 0 || a < 1e-12) return '0';
  if (a >= 1e4 || a < 1e-2) return v.toExponential(2).replace(/\.?0+e/, 'e').replace('e+', 'e');
  return Number(v.toPrecision(3)).toString();
}

function linTicks(lo, hi, n) {
  const step = niceStep(hi - lo, n);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi && out.length < 50; v += step) out.push(v);
  return out;
}

// Ticks of a log10 axis (lo, hi in log10 units) at 1, 2, 5 x 10^k, or at decades only when that
// is too many, or at 1..9 x 10^k when the range is under a decade and 1-2-5 gives fewer than 2.
function logTicks(lo, hi, n) {
  const at = (ms) => {
    const out = [];
    for (let k = Math.floor(lo); k <= Math.ceil(hi); k++) {
      for (const m of ms) {
        const v = k + Math.log10(m);
        if (v >= lo && v <= hi) out.push(v);
      }
    }
    return out;
  };
  let t = at([1, 2, 5]);
  if (t.length > n) t = at([1]).filter((_, i, a) => a.length <= n || i % Math.ceil(a.length / n) === 0);
  if (t.length < 2) t = at([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  if (t.length > n) t = t.filter((_, i) => i % Math.ceil(t.length / n) === 0);
  return t.length >= 2 ? t : linTicks(lo, hi, n);
}

export class LineChart {
  // canvas: borrowed; opts {color, title}
  constructor(canvas, opts = {}) {
    this.canvas = canvas;
    this.color = opts.color || '#2f6fed';
    this.xs = [];
    this.ys = [];
    this.marks = []; // {x, label}
    this.smooth = 0.6;
    this.log = false;
    this.pending = false;
    this.ro = new ResizeObserver(() => this.redraw());
    this.ro.observe(canvas);
    this.sync();
  }
  destroy() { this.ro.disconnect(); }
  add(x, y) {
    if (typeof y !== 'number' || !isFinite(y)) return;
    this.xs.push(x);
    this.ys.push(y);
    this.sync();
    this.redraw();
  }
  mark(x, label) { this.marks.push({ x, label }); this.redraw(); }
  set(opts) { Object.assign(this, opts); this.redraw(); }
  sync() { this.canvas.dataset.points = String(this.xs.length); }
  last() { return this.ys.length ? this.ys[this.ys.length - 1] : null; }
  redraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }
  // Is x the first point of a stage (a mark)? Smoothing restarts and the line breaks there:
  // each stage trains another model (teacher, then student).
  starts(x) { return this.marks.some((m) => m.x === x); }
  // Smoothed series (TensorBoard's debiased EMA with weight `smooth`).
  smoothed() {
    const w = Math.min(0.999, Math.max(0, this.smooth));
    const out = new Array(this.ys.length);
    let acc = 0, n = 0;
    for (let i = 0; i < this.ys.length; i++) {
      if (i && this.starts(this.xs[i])) acc = n = 0;
      acc = acc * w + (1 - w) * this.ys[i];
      n = n * w + (1 - w);
      out[i] = w ? acc / n : this.ys[i];
    }
    return out;
  }
  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const W = c.clientWidth, H = c.clientHeight;
    if (!W || !H) return;
    if (c.width !== Math.round(W * dpr) || c.height !== Math.round(H * dpr)) {
      c.width = Math.round(W * dpr);
      c.height = Math.round(H * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const css = getComputedStyle(document.documentElement);
    const line = css.getPropertyValue('--line').trim() || '#ddd';
    const muted = css.getPropertyValue('--muted').trim() || '#888';
    g.font = '11px system-ui, sans-serif';
    const n = this.xs.length;
    const pw = W - PAD.l - PAD.r, ph = H - PAD.t - PAD.b;
    if (!n) {
      g.fillStyle = muted;
      g.textAlign = 'center';
      g.fillText('waiting for events…', W / 2, H / 2);
      return;
    }
    const ty = this.log ? (v) => (v > 0 ? Math.log10(v) : NaN) : (v) => v;
    const sm = this.smoothed();
    let x0 = this.xs[0], x1 = this.xs[n - 1];
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    let y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = ty(this.ys[i]);
      if (isFinite(v)) { if (v < y0) y0 = v; if (v > y1) y1 = v; }
    }
    if (!isFinite(y0)) { y0 = 0; y1 = 1; }
    if (y1 - y0 < 1e-12) { const d = Math.abs(y0) * 0.05 || 0.5; y0 -= d; y1 += d; }
    const pad = (y1 - y0) * 0.06;
    y0 -= pad; y1 += pad;
    const X = (x) => PAD.l + ((x - x0) / (x1 - x0)) * pw;
    const Y = (v) => PAD.t + (1 - (v - y0) / (y1 - y0)) * ph;

    // grid and labels
    g.strokeStyle = line;
    g.fillStyle = muted;
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (const v of this.log ? logTicks(y0, y1, Math.max(2, Math.floor(ph / 22))) : linTicks(y0, y1, Math.max(2, Math.floor(ph / 36)))) {
      const yy = Math.round(Y(v)) + 0.5;
      g.beginPath(); g.moveTo(PAD.l, yy); g.lineTo(W - PAD.r, yy); g.stroke();
      g.fillText(this.log ? tickLabel(Math.pow(10, v)) : tickLabel(v), PAD.l - 6, yy);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    const xsStep = Math.max(1, niceStep(x1 - x0, Math.max(2, Math.floor(pw / 70))));
    for (let v = Math.ceil(x0 / xsStep) * xsStep; v <= x1; v += xsStep) {
      g.fillText(tickLabel(v), X(v), H - PAD.b + 5);
    }
    // stage marks
    g.save();
    g.setLineDash([4, 4]);
    g.textAlign = 'left';
    for (const m of this.marks) {
      if (m.x < x0 || m.x > x1) continue;
      const xx = Math.round(X(m.x)) + 0.5;
      g.beginPath(); g.moveTo(xx, PAD.t); g.lineTo(xx, PAD.t + ph); g.stroke();
      g.fillText(m.label, xx + 3, PAD.t + 2);
    }
    g.restore();

    g.save();
    g.beginPath();
    g.rect(PAD.l, PAD.t, pw, ph);
    g.clip();
    // raw points, faint, decimated to min/max per pixel column
    if (this.smooth > 0) {
      g.globalAlpha = 0.25;
      this.path(g, this.ys, ty, X, Y);
      g.strokeStyle = this.color;
      g.lineWidth = 1;
      g.stroke();
      g.globalAlpha = 1;
    }
    this.path(g, sm, ty, X, Y);
    g.strokeStyle = this.color;
    g.lineWidth = 1.8;
    g.stroke();
    if (n === 1) {
      g.fillStyle = this.color;
      g.beginPath(); g.arc(X(this.xs[0]), Y(ty(this.ys[0])), 3, 0, 7); g.fill();
    }
    g.restore();
  }
  path(g, vals, ty, X, Y) {
    g.beginPath();
    let col = null, lo = 0, hi = 0, first = true, lastY = 0;
    const flush = () => {
      if (col === null) return;
      if (first) { g.moveTo(col, Y(lo)); first = false; }
      g.lineTo(col, Y(lo));
      if (hi !== lo) g.lineTo(col, Y(hi));
      g.lineTo(col, Y(lastY));
    };
    for (let i = 0; i < vals.length; i++) {
      const v = ty(vals[i]);
      if (!isFinite(v)) continue;
      const cx = Math.round(X(this.xs[i]));
      if (i && this.starts(this.xs[i])) { flush(); col = null; first = true; }
      if (cx !== col) {
        flush();
        col = cx; lo = hi = v;
      } else {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      lastY = v;
    }
    flush();
  }
}
