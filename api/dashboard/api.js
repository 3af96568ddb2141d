// api.js — calls to this daemon's API: the key (sessionStorage, Bearer header), the error
// format {"error":{"message","type","param","code"}}, and Server-Sent Events read through fetch
// (EventSource cannot send an Authorization header).

const KEY = 'bitdistill.key';
let authHandler = () => {};

export class ApiError extends Error {
  constructor(status, body, statusText) {
    const e = body && typeof body === 'object' ? body.error || {} : {};
    const msg = e.message || (typeof body === 'string' && body.trim()) || statusText || 'request failed';
    super(msg);
    this.status = status;
    this.type = e.type || null;
    this.param = e.param || null;
    this.code = e.code || null;
  }
  // "401 invalid or revoked API key" style text for the page.
  get text() { return `${this.status ? this.status + ' ' : ''}${this.message}`; }
}

export function getKey() { return sessionStorage.getItem(KEY) || ''; }
export function setKey(k) { if (k) sessionStorage.setItem(KEY, k); else sessionStorage.removeItem(KEY); }
// fn(err) is called on every 401/403 answer (the app asks for a key or shows the scope problem).
export function onAuthError(fn) { authHandler = fn; }

function headers(extra) {
  const h = new Headers(extra || {});
  const k = getKey();
  if (k) h.set('Authorization', 'Bearer ' + k);
  return h;
}

async function parse(r) {
  const ct = r.headers.get('Content-Type') || '';
  if (r.status === 204) return null;
  if (ct.includes('application/json')) return r.json().catch(() => null);
  return r.text();
}

// api(path, {method, json, body, headers, signal, raw}) -> parsed body; throws ApiError.
// With raw, resolves to {data, res} so callers can read response headers.
export async function api(path, opts = {}) {
  const h = headers(opts.headers);
  let body = opts.body;
  if (opts.json !== undefined) {
    h.set('Content-Type', 'application/json');
    body = JSON.stringify(opts.json);
  }
  let r;
  try {
    r = await fetch(path, { method: opts.method || 'GET', headers: h, body, signal: opts.signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, null, 'cannot reach the daemon: ' + e.message);
  }
  const data = await parse(r);
  if (!r.ok) {
    const err = new ApiError(r.status, data, r.statusText);
    if (r.status === 401 || r.status === 403) authHandler(err);
    throw err;
  }
  return opts.raw ? { data, res: r } : data;
}

// Read an SSE stream (`id:` and `data:` lines, blank line ends an event) from path with the key.
// onEvent(json, id) per event; resolves when `data: [DONE]` arrives or the signal aborts.
// Reconnects after a dropped connection with Last-Event-ID, so no event is lost or repeated.
export async function sse(path, { onEvent, signal, onState }) {
  let last = null;
  for (let attempt = 0; ; attempt++) {
    const h = headers({ Accept: 'text/event-stream' });
    if (last !== null) h.set('Last-Event-ID', String(last));
    let r;
    try {
      r = await fetch(path, { headers: h, signal, cache: 'no-store' });
    } catch (e) {
      if (signal && signal.aborted) return 'aborted';
      onState && onState('reconnecting');
      await sleep(Math.min(5000, 500 * (attempt + 1)), signal);
      continue;
    }
    if (!r.ok) {
      const err = new ApiError(r.status, await parse(r), r.statusText);
      if (r.status === 401 || r.status === 403) authHandler(err);
      throw err;
    }
    onState && onState('live');
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '', id = null, data = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          let line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.endsWith('\r')) line = line.slice(0, -1);
          if (line === '') {
            if (data.length) {
              const text = data.join('\n');
              data = [];
              if (text === '[DONE]') { onState && onState('done'); return 'done'; }
              if (id !== null) last = id;
              try { onEvent(JSON.parse(text), id); } catch (e) { console.error('bad event', e, text); }
            }
            id = null;
            continue;
          }
          if (line.startsWith(':')) continue;
          const c = line.indexOf(':');
          const field = c < 0 ? line : line.slice(0, c);
          let val = c < 0 ? '' : line.slice(c + 1);
          if (val.startsWith(' ')) val = val.slice(1);
          if (field === 'data') data.push(val);
          else if (field === 'id') id = val;
        }
      }
    } catch (e) {
      if (signal && signal.aborted) return 'aborted';
    }
    if (signal && signal.aborted) return 'aborted';
    onState && onState('reconnecting');
    await sleep(500, signal);
  }
}

export function sleep(ms, signal) {
  return new Promise((res) => {
    const t = setTimeout(res, ms);
    if (signal) signal.addEventListener('abort', () => { clearTimeout(t); res(); }, { once: true });
  });
}

// Small DOM helper: h('div.cls#id', {attr: v, onclick: fn}, children...).
export function h(sel, attrs, ...kids) {
  const m = sel.match(/^([a-z0-9]+)?((?:[.#][\w-]+)*)$/i);
  const el = document.createElement(m[1] || 'div');
  for (const part of m[2].match(/[.#][\w-]+/g) || []) {
    if (part[0] === '.') el.classList.add(part.slice(1)); else el.id = part.slice(1);
  }
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    kids.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && k !== 'list' && k !== 'form') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const k of kids) {
    if (k === null || k === undefined || k === false) continue;
    if (Array.isArray(k)) append(el, k);
    else el.append(k instanceof Node ? k : String(k));
  }
}

// Formatting shared by the views.
export function fmtTime(unix) {
  if (!unix) return '—';
  const d = new Date(unix * 1000);
  const now = new Date();
  const same = d.toDateString() === now.toDateString();
  return same ? d.toLocaleTimeString() : d.toLocaleString();
}
export function fmtDur(s) {
  if (s === null || s === undefined || !isFinite(s)) return '—';
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
}
export function fmtBytes(b) {
  if (b === null || b === undefined) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (i ? b.toFixed(b < 10 ? 2 : 1) : b) + ' ' + u[i];
}
export function fmtNum(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (typeof v !== 'number') return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toString();
}
export function toast(msg) {
  const t = h('div.toast', { role: 'status' }, msg);
  document.body.append(t);
  setTimeout(() => t.remove(), 3500);
}
