// app.js — the dashboard's shell: hash routes (#/jobs, #/jobs/ID, #/new, #/models, #/server),
// the key dialog (asked once, kept in sessionStorage) and clear 401/403 messages.
import { onAuthError, getKey, setKey, h } from './api.js';
import { jobsView } from './jobs.js';
import { jobView } from './job.js';
import { submitView } from './submit.js';
import { modelsView } from './models.js';
import { serverView } from './server.js';

const view = document.getElementById('view');
const banner = document.getElementById('banner');
const dlg = document.getElementById('keydlg');
const keymsg = document.getElementById('keymsg');
const keyinput = document.getElementById('keyinput');
let current = null; // {destroy()} of the view on screen

function showBanner(text) {
  banner.textContent = text;
  banner.hidden = !text;
}

function askKey(message) {
  keymsg.textContent = message || '';
  if (dlg.open) return; // already asking: keep what is being typed
  keyinput.value = '';
  dlg.showModal();
  keyinput.focus();
}

onAuthError((err) => {
  if (err.status === 401) {
    askKey(`${err.status}: ${err.message}` + (getKey() ? ' — enter another key.' : ' — this daemon needs an API key.'));
  } else if (err.status === 403) {
    showBanner(`403 Forbidden: ${err.message}. Your key's scope is too small for this page; ` +
      'use a key with the admin scope (Key button).');
  }
});

document.getElementById('keyform').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const k = keyinput.value.trim();
  if (!k) return;
  setKey(k);
  dlg.close();
  showBanner('');
  keyState();
  route();
});
document.getElementById('keyclear').addEventListener('click', () => {
  setKey('');
  keyState();
  keymsg.textContent = 'Key forgotten.';
});
document.getElementById('keybtn').addEventListener('click', () => askKey(''));

function keyState() {
  const b = document.getElementById('keybtn');
  b.textContent = getKey() ? 'Key ✓' : 'Key';
  b.title = getKey() ? 'An API key is set for this tab' : 'No API key set';
}

const routes = [
  [/^#\/jobs\/([\w-]+)$/, 'jobs', (m) => jobView(m[1])],
  [/^#\/jobs$/, 'jobs', () => jobsView()],
  [/^#\/new$/, 'new', () => submitView()],
  [/^#\/models$/, 'models', () => modelsView()],
  [/^#\/server$/, 'server', () => serverView()],
];

function route() {
  const hash = location.hash || '#/jobs';
  let hit = null;
  for (const [re, nav, make] of routes) {
    const m = hash.match(re);
    if (m) { hit = [nav, make, m]; break; }
  }
  if (current && current.destroy) current.destroy();
  current = null;
  showBanner('');
  if (!hit) { location.hash = '#/jobs'; return; }
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === hit[0]);
  const v = hit[1](hit[2]);
  current = v;
  view.replaceChildren(v.el || h('p.muted', 'empty'));
  window.scrollTo(0, 0);
}

window.addEventListener('hashchange', route);
keyState();
route();
