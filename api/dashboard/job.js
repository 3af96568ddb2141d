// job.js — one job: its spec, status with stage and progress, live curves (CE, LD, AD, total
// loss, learning rate, tokens/s) fed by the SSE event stream with smoothing and log-scale
// toggles, evaluation teacher vs student, checkpoints, the event log, and cancel.
import { api, sse, h, fmtTime, fmtDur, fmtNum, toast } from './api.js';
import { LineChart } from './chart.js';
import { STAGES, TERMINAL, stageText, progressBar, eta, badge } from './jobs.js';

const SERIES = [
  ['ce', 'CE (task loss)', '--c1'], ['ld', 'LD (logits distillation)', '--c2'],
  ['ad', 'AD (attention relation)', '--c3'], ['loss', 'total loss', '--c4'],
  ['lr', 'learning rate', '--c5'], ['tokens_per_s', 'tokens / s', '--c6'],
];
const LOG_MAX = 400; // event rows kept in the page (the count shows all)
const CLS_METRICS = ['accuracy'];
const SUM_METRICS = ['rouge1', 'rouge2', 'rougeL', 'rougeLsum', 'bleu'];

export function jobView(id) {
  const ctl = new AbortController();
  const st = { alive: true, timer: 0, x: 0, stage: -1, events: 0, evals: {}, job: null, ran: new Set(), rows: [], rowsQueued: false };
  const css = getComputedStyle(document.documentElement);
  const err = h('p.error', { role: 'alert' });
  const head = h('div');
  const spec = h('dl.kv');
  const stream = h('span.badge#stream-state', 'connecting');
  const smooth = h('input#smooth', { type: 'range', min: '0', max: '0.99', step: '0.01', value: '0.6' });
  const smoothVal = h('span.mono', '0.60');
  const logy = h('input#logy', { type: 'checkbox' });
  const charts = {};
  const chartEls = SERIES.map(([key, title, color]) => {
    const canvas = h('canvas', { dataset: { series: key }, 'aria-label': title + ' chart' });
    const now = h('span.mono', '—');
    charts[key] = { chart: new LineChart(canvas, { color: css.getPropertyValue(color).trim() }), now };
    return h('div.chart', h('header', h('b', title), now), canvas);
  });
  const evalBox = h('div#eval', h('p.muted', 'Evaluation runs in the last stage.'));
  const ckpts = h('tbody');
  const log = h('div.log.mono#event-log');
  const logCount = h('span.muted', '0 events');
  const cancelBtn = h('button.danger#cancel', { type: 'button', onclick: cancel }, 'Cancel job');

  smooth.addEventListener('input', () => {
    smoothVal.textContent = (+smooth.value).toFixed(2);
    for (const c of Object.values(charts)) c.chart.set({ smooth: +smooth.value });
  });
  logy.addEventListener('change', () => {
    for (const c of Object.values(charts)) c.chart.set({ log: logy.checked });
  });

  const el = h('section',
    h('div.row', h('a', { href: '#/jobs' }, '← Jobs'), h('span.spacer'), cancelBtn),
    err, head,
    h('div.panel',
      h('div.row', h('h2', 'Training curves'), stream, h('span.spacer'),
        h('label.inline', 'Smoothing ', smooth, smoothVal), h('label.inline', logy, 'log scale')),
      h('div.grid.charts', chartEls)),
    h('div.grid',
      h('div.panel', h('h2', 'Evaluation: teacher vs student'), evalBox),
      h('div.panel', h('h2', 'Specification'), spec)),
    h('div.grid',
      h('div.panel', h('h2', 'Checkpoints'), h('div.table-wrap', h('table',
        h('thead', h('tr', h('th', 'Stage'), h('th.num', 'Step'), h('th', 'Path'), h('th', 'Written'))), ckpts))),
      h('div.panel', h('div.row', h('h2', 'Event log'), h('span.spacer'), logCount), log)));

  function renderHead(j) {
    const e = eta(j);
    const stages = h('div.stages', STAGES.map((name, i) => {
      const idx = j.stage ? j.stage.index : -1;
      // A stage the stream never saw start, once a later one has: skipped (no corpus, no teacher
      // fine-tuning for the SFT methods).
      const skipped = st.ran.size && !st.ran.has(i) && (j.status === 'succeeded' || i < idx);
      const s = h('span', `${i} ${name}`, skipped ? ' (skipped)' : '');
      s.dataset.stage = String(i);
      if (skipped) s.classList.add('skipped');
      else if (j.status === 'succeeded' || i < idx) s.classList.add('done');
      else if (i === idx && j.status === 'running') s.classList.add('now');
      return s;
    }));
    head.replaceChildren(h('div.panel',
      h('div.row', h('h1.mono', j.id), badge(j.status), h('span.spacer'),
        j.fine_tuned_model ? h('span', 'student ', h('a.mono#student', { href: '#/models' }, j.fine_tuned_model)) : null),
      h('div.row', h('span', stageText(j)), h('span.muted', j.status === 'running'
        ? `${Math.round((j.stage.fraction_done || 0) * 100)}% of the stage · ETA ${fmtDur(e)}` : ''),
      h('span.spacer'), h('span.muted', `${(j.trained_tokens || 0).toLocaleString()} tokens trained`)),
      progressBar(j), stages,
      j.error ? h('p.error', 'Error: ' + j.error.message) : null));
    cancelBtn.disabled = TERMINAL.has(j.status);
  }

  function renderSpec(j) {
    const m = j.method || {};
    const rows = [
      ['base model', j.model], ['method', m.type], ['device', j.device],
      ['training file', j.training_file], ['validation file', j.validation_file || '—'],
      ['corpus file', j.corpus_file || '—'], ['hyperparameters', j.hyperparameters ? JSON.stringify(j.hyperparameters) : 'defaults'],
      ['stage settings', m[m.type] ? JSON.stringify(m[m.type]) : 'paper defaults'],
      ['seed', j.seed ?? '—'], ['created', fmtTime(j.created_at)], ['started', fmtTime(j.started_at)],
      ['finished', fmtTime(j.finished_at)], ['attempts', j.attempts],
    ];
    spec.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', k), h('dd.mono', v ?? '—')]));
  }

  // "activate": "if_better": the decision, with the student's and the active model's figures.
  function activationLine(a) {
    const fig = (v) => (typeof v === 'number' ? fmtNum(v) : '—');
    return h('p#activation', { className: a.activated ? 'ok' : 'muted' },
      h('strong', a.activated ? 'Activated (if better): ' : 'Not activated (if better): '),
      `${a.metric} ${fig(a.student)} for the student vs ${fig(a.active)} for ` +
      (a.active_model ? `the active model ${a.active_model}${a.active_stored ? ' (stored figure, same file)' : ''}` : 'no active model') +
      ` — ${a.reason}`);
  }

  function renderEval() {
    const models = ['teacher', 'student', 'student_gguf', 'baseline'].filter((m) => st.evals[m]);
    if (!models.length) {
      if (st.activation) evalBox.replaceChildren(activationLine(st.activation));
      return;
    }
    const keys = [...CLS_METRICS, ...SUM_METRICS].filter((k) => models.some((m) => typeof st.evals[m][k] === 'number'));
    evalBox.replaceChildren(h('div.table-wrap', h('table#eval-table',
      h('thead', h('tr', h('th', 'metric'), models.map((m) => h('th.num',
        m === 'baseline' ? `active model${st.evals[m].id ? ' ' + st.evals[m].id : ''}` : m.replace('_', ' '))))),
      h('tbody', keys.map((k) => h('tr', h('td', k),
        models.map((m) => h('td.num', { dataset: { model: m, metric: k } },
          typeof st.evals[m][k] === 'number' ? fmtNum(st.evals[m][k]) : '—'))))),
      h('caption.muted', `on ${Math.max(...models.map((m) => st.evals[m].n || 0))} validation examples`))),
    st.activation ? activationLine(st.activation) : null);
  }

  function logLine(ev) {
    const d = ev.data || {};
    let text = ev.message;
    if (ev.type === 'step') {
      text = `stage ${d.stage} step ${d.step}/${d.steps} loss ${fmtNum(d.loss)} ce ${fmtNum(d.ce)} ` +
        `ld ${fmtNum(d.ld)} ad ${fmtNum(d.ad)} lr ${fmtNum(d.lr)} ${fmtNum(d.tokens_per_s, 3)} tok/s`;
    } else if (ev.type === 'stage') {
      text = `stage ${d.stage} ${d.name} ${d.status}` + (d.steps ? ` (${d.steps} steps)` : '');
    } else if (ev.type === 'eval') {
      text = `eval ${d.model}: ` + Object.entries(d).filter(([k]) => k !== 'type' && k !== 'model' && k !== 'stage')
        .map(([k, v]) => `${k} ${fmtNum(v)}`).join(' ');
    } else if (ev.type === 'checkpoint') {
      text = `checkpoint stage ${d.stage} step ${d.step}`;
    } else if (ev.type === 'activation') {
      text = `activation (${d.policy}): ${d.activated ? 'activated' : 'kept the active model'}: ${d.reason}`;
    }
    st.rows.push(h('div' + (ev.level === 'error' ? '.lvl-error' : ''),
      `#${ev.seq} ${new Date(ev.created_at * 1000).toLocaleTimeString()} ${ev.type.padEnd(10)} ${text}`));
    if (st.rows.length > LOG_MAX) st.rows.splice(0, st.rows.length - LOG_MAX);
    if (!st.rowsQueued) { st.rowsQueued = true; requestAnimationFrame(flushLog); }
  }

  // Rows go into the page once per frame: a replay of thousands of events costs one layout.
  function flushLog() {
    st.rowsQueued = false;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 30;
    log.append(...st.rows);
    st.rows = [];
    while (log.childElementCount > LOG_MAX) log.firstElementChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
    logCount.textContent = `${st.events} events` + (st.events > LOG_MAX ? ` (last ${LOG_MAX} shown)` : '');
  }

  // Progress from the stream itself, between polls of the job (at most one render per 250 ms).
  function live(d) {
    const j = st.job;
    if (!j || TERMINAL.has(j.status) || !d.steps) return;
    j.status = 'running';
    j.stage = { index: d.stage, name: j.stage ? j.stage.name : '', fraction_done: Math.min(1, d.step / d.steps) };
    if (d.tokens) j.trained_tokens = Math.max(j.trained_tokens || 0, d.tokens);
    const now = performance.now();
    if (now - (st.drawn || 0) > 250) { st.drawn = now; renderHead(j); }
  }

  function onEvent(ev) {
    st.events++;
    const d = ev.data || {};
    if (ev.type === 'step') {
      st.x++;
      live(d);
      if (d.stage !== st.stage) {
        st.stage = d.stage;
        for (const c of Object.values(charts)) c.chart.mark(st.x, `${d.stage}`);
      }
      for (const [k] of SERIES) {
        if (typeof d[k] !== 'number') continue;
        // LD/AD are zero outside distillation: kept (a flat line says "not used").
        charts[k].chart.add(st.x, d[k]);
        charts[k].now.textContent = fmtNum(d[k]);
      }
    } else if (ev.type === 'eval') {
      st.evals[d.model] = d;
      renderEval();
    } else if (ev.type === 'stage' && d.status === 'start') {
      st.ran.add(d.stage);
      if (st.job) renderHead(st.job);
    } else if (ev.type === 'activation') {
      st.activation = d;
      renderEval();
    } else if (ev.type === 'checkpoint') {
      loadCkpts();
    } else if (ev.type === 'done' && d.metrics) {
      loadJob();
    }
    logLine(ev);
  }

  async function loadJob() {
    try {
      const j = await api('/v1/fine_tuning/jobs/' + encodeURIComponent(id));
      if (!st.alive) return;
      st.job = j;
      err.textContent = '';
      renderHead(j);
      renderSpec(j);
      clearTimeout(st.timer);
      if (!TERMINAL.has(j.status)) st.timer = setTimeout(loadJob, 1000);
    } catch (e) {
      if (!st.alive) return;
      err.textContent = 'Cannot read the job: ' + (e.text || e.message);
      if (e.status !== 404) st.timer = setTimeout(loadJob, 5000);
    }
  }

  async function loadCkpts() {
    try {
      const r = await api(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}/checkpoints`);
      if (!st.alive) return;
      ckpts.replaceChildren(...r.data.map((c) => h('tr',
        h('td', `${c.stage} ${STAGES[c.stage] || ''}`), h('td.num', c.step_number),
        h('td.mono', c.path), h('td', fmtTime(c.created_at)))));
      if (!r.data.length) ckpts.append(h('tr', h('td.empty', { colSpan: 4 }, 'none yet')));
    } catch (e) { /* shown by loadJob */ }
  }

  async function follow() {
    try {
      const how = await sse(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}/events?stream=true`, {
        signal: ctl.signal, onEvent,
        onState: (s) => { stream.textContent = s; stream.className = 'badge ' + (s === 'live' ? 'running' : s === 'done' ? 'ok' : ''); },
      });
      if (how === 'done') { loadJob(); loadCkpts(); }
    } catch (e) {
      if (!st.alive) return;
      stream.textContent = 'stream error';
      err.textContent = 'Event stream: ' + (e.text || e.message);
    }
  }

  async function cancel() {
    if (!confirm(`Cancel job ${id}? A running trainer is stopped; this cannot be undone.`)) return;
    cancelBtn.disabled = true;
    try {
      const j = await api(`/v1/fine_tuning/jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
      toast(`Job ${j.status}`);
      loadJob();
    } catch (e) {
      err.textContent = 'Cancel refused: ' + (e.text || e.message);
      cancelBtn.disabled = false;
    }
  }

  loadJob();
  loadCkpts();
  follow();
  return {
    el,
    destroy() {
      st.alive = false;
      clearTimeout(st.timer);
      ctl.abort();
      for (const c of Object.values(charts)) c.chart.destroy();
    },
  };
}
