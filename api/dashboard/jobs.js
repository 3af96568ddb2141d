// jobs.js — the jobs table: newest first, paginated with the API's cursor (?after=&limit=,
// has_more), filtered by status, with each job's stage, progress bar and ETA. Refreshes every
// two seconds while a job on the page is not finished.
import { api, h, fmtTime, fmtDur } from './api.js';

// Stage numbers of the trainer (train/pipeline.h): 0 teacher fine-tuning, 1 SubLN,
// 2 continued pre-training, 3 distillation (or SFT), 4 evaluation and export.
export const STAGES = ['teacher SFT', 'SubLN', 'continued pre-training', 'distillation', 'export/eval'];
export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
export const STATUSES = ['validating_files', 'queued', 'running', 'paused', 'succeeded', 'failed', 'cancelled'];

export function stageText(job) {
  const i = job.stage ? job.stage.index : -1;
  if (job.status === 'succeeded') return 'done';
  if (i < 0 || i > 4 || job.status === 'queued' || job.status === 'validating_files') return 'not started';
  const label = job.method && job.method.type !== 'bitdistill' && i === 3 ? 'fine-tuning' : STAGES[i];
  return `${i}/4 ${label}`;
}

// Overall fraction: the API's ETA counts five stages (0..4) equally; so does the bar.
export function overall(job) {
  if (job.status === 'succeeded') return 1;
  const s = job.stage || {};
  if (s.index === undefined || s.index < 0) return 0;
  return Math.min(1, (s.index + (s.fraction_done || 0)) / 5);
}

export function progressBar(job) {
  const f = overall(job);
  const bar = h('div.progress', { role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' });
  bar.setAttribute('aria-valuenow', String(Math.round(f * 100)));
  if (job.status === 'succeeded') bar.classList.add('done');
  if (job.status === 'failed' || job.status === 'cancelled') bar.classList.add('failed');
  const fill = h('span');
  fill.style.width = (f * 100).toFixed(1) + '%';
  bar.append(fill);
  return bar;
}

export function eta(job) {
  if (job.status !== 'running' || !job.estimated_finish) return null;
  return job.estimated_finish - Date.now() / 1000;
}

export function badge(status) { return h('span.badge.' + status, status); }

export function jobsView() {
  const state = { cursors: [null], page: 0, limit: 20, filter: '', timer: 0, alive: true, files: new Map() };
  const tbody = h('tbody');
  const info = h('span.muted');
  const err = h('p.error', { role: 'alert' });
  const prev = h('button', { type: 'button', onclick: () => { state.page--; load(); } }, '← Newer');
  const next = h('button', { type: 'button', onclick: () => { state.page++; load(); } }, 'Older →');
  const filter = h('select#status-filter', { onchange: () => { state.filter = filter.value; render(state.last || []); } },
    h('option', { value: '' }, 'all statuses'), STATUSES.map((s) => h('option', { value: s }, s)));
  const limit = h('select', { onchange: () => { state.limit = +limit.value; state.cursors = [null]; state.page = 0; load(); } },
    [10, 20, 50, 100].map((n) => h('option', { value: n, selected: n === 20 }, n + ' per page')));

  const el = h('section',
    h('div.row', h('h1', 'Fine-tuning jobs'), h('span.spacer'),
      h('label.inline', 'Status ', filter), limit,
      h('a.button', { href: '#/new' }, '+ New job')),
    err,
    h('div.panel', h('div.table-wrap', h('table#jobs-table',
      h('thead', h('tr', h('th', 'Job'), h('th', 'Method'), h('th', 'Base model'), h('th', 'Task'),
        h('th.hide-sm', 'Device'), h('th', 'Status'), h('th', 'Stage / progress'), h('th', 'ETA'),
        h('th.hide-sm', 'Created'), h('th.hide-sm', 'Finished'))),
      tbody)),
    h('div.pager', info, prev, next)));

  async function files() {
    try {
      const f = await api('/v1/files');
      for (const x of f.data) state.files.set(x.id, x);
    } catch (e) { /* the table still shows without tasks */ }
  }

  function render(jobs) {
    const shown = state.filter ? jobs.filter((j) => j.status === state.filter) : jobs;
    tbody.replaceChildren(...shown.map((j) => {
      const file = state.files.get(j.training_file);
      const e = eta(j);
      return h('tr', { dataset: { id: j.id, status: j.status } },
        h('td', h('a.mono', { href: '#/jobs/' + j.id }, j.id)),
        h('td', j.method ? j.method.type : '—'),
        h('td.mono', j.model),
        h('td', file && file.task ? file.task : '—'),
        h('td.hide-sm', j.device || 'cpu'),
        h('td', badge(j.status)),
        h('td', h('div.stagecell', progressBar(j), h('small', stageText(j),
          j.status === 'running' ? ` · ${Math.round((j.stage.fraction_done || 0) * 100)}% of stage` : ''))),
        h('td.num', e === null ? '—' : fmtDur(e)),
        h('td.hide-sm', fmtTime(j.created_at)),
        h('td.hide-sm', fmtTime(j.finished_at)));
    }));
    if (!shown.length) {
      tbody.append(h('tr', h('td.empty', { colSpan: 10 },
        jobs.length ? `no ${state.filter} job on this page` : 'No jobs yet. ', jobs.length ? '' : h('a', { href: '#/new' }, 'Submit one.'))));
    }
  }

  async function load() {
    clearTimeout(state.timer);
    const after = state.cursors[state.page];
    const q = new URLSearchParams({ limit: state.limit });
    if (after) q.set('after', after);
    try {
      if (!state.files.size) await files();
      const r = await api('/v1/fine_tuning/jobs?' + q);
      if (!state.alive) return;
      err.textContent = '';
      state.last = r.data;
      if (r.has_more && r.data.length) state.cursors[state.page + 1] = r.data[r.data.length - 1].id;
      state.cursors.length = state.page + (r.has_more ? 2 : 1);
      prev.disabled = state.page === 0;
      next.disabled = !r.has_more;
      info.textContent = `page ${state.page + 1} · ${r.data.length} job${r.data.length === 1 ? '' : 's'}`;
      if (r.data.some((j) => !state.files.has(j.training_file))) await files();
      render(r.data);
      const busy = r.data.some((j) => !TERMINAL.has(j.status));
      state.timer = setTimeout(load, busy ? 2000 : 10000);
    } catch (e) {
      if (!state.alive) return;
      err.textContent = 'Cannot list jobs: ' + (e.text || e.message);
      state.timer = setTimeout(load, 5000);
    }
  }
  load();
  return { el, destroy() { state.alive = false; clearTimeout(state.timer); } };
}
