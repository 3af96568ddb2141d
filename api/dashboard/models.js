// models.js — the model registry (GET /v1/models): task, status, which one is active, version,
// size on disk, resident memory, bits, eval metrics, the job and teacher it came from; an
// activate (hot-swap) button; a "try it" box calling /v1/classify or /v1/summarize.
import { api, h, fmtBytes, fmtNum, fmtTime, toast } from './api.js';
import { badge } from './jobs.js';

// Eval numbers from a model's metrics object (whatever nesting the trainer wrote).
function metricText(m) {
  if (!m || typeof m !== 'object') return '—';
  const out = [];
  const walk = (o, pre) => {
    for (const [k, v] of Object.entries(o)) {
      if (typeof v === 'number' && /accuracy|rouge|bleu/i.test(k)) out.push(`${pre}${k} ${fmtNum(v, 3)}`);
      else if (v && typeof v === 'object' && !Array.isArray(v) && out.length < 8) walk(v, pre ? pre : k + ' ');
    }
  };
  walk(m, '');
  return out.length ? out.join(' · ') : '—';
}

function bits(m) {
  if (m.ternary === true) return '1.58 (ternary)';
  if (m.ternary === false) return '16/32 (float)';
  return m.fine_tuning_job ? '1.58 (ternary)' : '—';
}

export function modelsView() {
  const st = { alive: true, models: [], jobs: new Map(), timer: 0 };
  const err = h('p.error#models-error', { role: 'alert' });
  const tbody = h('tbody');
  const pick = h('select#try-model');
  const input = h('textarea#try-input', { placeholder: 'a gorgeous, witty, seductive movie' });
  const maxTok = h('input#try-max', { type: 'number', min: '1', value: '64' });
  const out = h('div.result#try-result', { role: 'status' });
  const tryErr = h('p.error#try-error', { role: 'alert' });
  const run = h('button.primary#try-run', { type: 'button', onclick: tryIt }, 'Run');

  const el = h('section', h('h1', 'Models'), err,
    h('div.panel', h('div.table-wrap', h('table#models-table',
      h('thead', h('tr', h('th', 'Model'), h('th', 'Task'), h('th', 'Status'), h('th.num', 'Version'),
        h('th.num', 'Size'), h('th.num', 'Memory'), h('th', 'Bits'), h('th', 'Eval'), h('th', 'Teacher / job'),
        h('th', ''))), tbody))),
    h('div.panel', h('h2', 'Try it'),
      h('div.form-grid', h('label', 'Model', pick), h('label', 'Max tokens (summaries)', maxTok)),
      h('label', 'Input', input), h('div.row.end', run), tryErr, out));

  function taskOf(id) { const m = st.models.find((x) => x.id === id); return m ? m.task : ''; }
  pick.addEventListener('change', () => { run.textContent = taskOf(pick.value) === 'summarization' ? 'Summarize' : 'Classify'; });

  function render() {
    tbody.replaceChildren(...st.models.map((m) => {
      const job = m.fine_tuning_job && st.jobs.get(m.fine_tuning_job);
      const act = h('button', { type: 'button', dataset: { activate: m.id }, disabled: m.active, onclick: () => activate(m.id, act) },
        m.active ? 'Active' : 'Activate');
      return h('tr', { dataset: { id: m.id, active: String(!!m.active) } },
        h('td.mono', m.id, ' ', m.active ? h('span.badge.active', 'active') : null),
        h('td', m.task || '—'), h('td', badge(m.status)), h('td.num', m.version ?? '—'),
        h('td.num', fmtBytes(m.bytes)), h('td.num', m.resident_bytes ? fmtBytes(m.resident_bytes) : '—'),
        h('td', bits(m)), h('td.wrap', metricText(m.metrics)),
        h('td', job ? h('span.mono', job.model, ' ') : null, m.fine_tuning_job ? h('a.mono', { href: '#/jobs/' + m.fine_tuning_job }, m.fine_tuning_job) : '—'),
        h('td', act));
    }));
    if (!st.models.length) tbody.append(h('tr', h('td.empty', { colSpan: 10 }, 'No models yet: a finished job registers its student here.')));
    const keep = pick.value;
    pick.replaceChildren(h('option', { value: '' }, 'the active model'),
      ...st.models.filter((m) => m.status !== 'error').map((m) => h('option', { value: m.id }, `${m.id} (${m.task}${m.active ? ', active' : ''})`)));
    if (st.models.some((m) => m.id === keep)) pick.value = keep;
  }

  async function load() {
    clearTimeout(st.timer);
    try {
      const [models, jobs] = await Promise.all([api('/v1/models'), api('/v1/fine_tuning/jobs?limit=100').catch(() => ({ data: [] }))]);
      if (!st.alive) return;
      st.models = models.data;
      for (const j of jobs.data) st.jobs.set(j.id, j);
      err.textContent = '';
      render();
      if (st.models.some((m) => m.status === 'loading')) st.timer = setTimeout(load, 1000);
    } catch (e) {
      if (!st.alive) return;
      err.textContent = 'Cannot list models: ' + (e.text || e.message);
    }
  }

  async function activate(id, btn) {
    btn.disabled = true;
    btn.textContent = 'Swapping…';
    try {
      await api(`/v1/models/${encodeURIComponent(id).replace(/%3A/gi, ':')}/activate`, { method: 'POST' });
      toast(`${id} is now active`);
    } catch (e) {
      err.textContent = `Activating ${id} failed: ${e.text || e.message}`;
    }
    load();
  }

  async function tryIt() {
    tryErr.textContent = '';
    out.replaceChildren();
    const text = input.value.trim();
    if (!text) { tryErr.textContent = 'Type some text first.'; return; }
    const model = pick.value || undefined;
    const active = st.models.find((m) => m.active);
    const task = model ? taskOf(model) : active ? active.task : 'classification';
    run.disabled = true;
    try {
      if (task === 'summarization') {
        const n = Number(maxTok.value) || 64;
        const { data, res } = await api('/v1/summarize', { method: 'POST', json: { model, input: text, max_tokens: n }, raw: true });
        out.append(h('p#try-summary', data.summary_text), timing(data, res));
      } else {
        const { data, res } = await api('/v1/classify', { method: 'POST', json: { model, input: text }, raw: true });
        const d = data.data[0];
        const probs = Object.entries(d.probs || {}).sort((a, b) => b[1] - a[1]);
        out.append(h('p', 'Label: ', h('b#try-label', d.label)),
          h('div.probs', probs.flatMap(([l, p]) => {
            const bar = h('div.progress', h('span'));
            bar.firstChild.style.width = (p * 100).toFixed(1) + '%';
            return [h('span', l), bar, h('span.mono', (p * 100).toFixed(1) + '%')];
          })), timing(data, res));
      }
    } catch (e) {
      tryErr.textContent = `${task === 'summarization' ? 'Summarize' : 'Classify'} failed: ${e.text || e.message}`;
    } finally {
      run.disabled = false;
    }
  }

  function timing(data, res) {
    const q = res.headers.get('x-queue-time'), t = res.headers.get('x-inference-time');
    return h('p.muted', `model ${data.model || '—'}` + (t ? ` · ${t} ms inference` : '') + (q ? ` · ${q} ms queued` : '') +
      (data.usage ? ` · ${data.usage.prompt_tokens ?? data.usage.total_tokens ?? ''} prompt tokens` : ''));
  }

  load();
  return { el, destroy() { st.alive = false; clearTimeout(st.timer); } };
}
