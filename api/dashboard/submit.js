// submit.js — the new-job form: pick uploaded files or upload new ones, method, task, device,
// hyperparameters and stage settings prefilled with the paper's defaults (classification
// lambda 10, gamma 1e5; summarization lambda 1, gamma 1e3; tau 5). Checks mirror the API's
// (api/jobs.c) so most mistakes are named before sending; what only the daemon can know (a
// model directory, a file's task) comes back as the API's own error message, shown here.
import { api, h, fmtBytes } from './api.js';

const TASKS = ['sst2', 'mnli', 'qnli', 'cnndm'];
const isSum = (task) => task === 'cnndm';

// [key, label, default (function of summarization?), kind, only for bitdistill distillation]
// kind: 'pos' > 0, 'nonneg' >= 0, 'int' integer >= 0, 'posint' integer > 0, 'layer', 'relation'
const COMMON = [
  ['epochs', 'epochs', () => 1, 'nonneg'], ['steps', 'steps (0: use epochs)', () => 0, 'int'],
  ['lr', 'learning rate', () => 1e-4, 'pos'], ['min_lr', 'min lr', () => 1e-5, 'nonneg'],
  ['warmup', 'warmup steps', () => '', 'int', false, '5% of steps'],
  ['weight_decay', 'weight decay', () => 0.01, 'nonneg'], ['clip', 'grad clip', () => 1, 'nonneg'],
  ['batch', 'batch', () => 32, 'posint'], ['grad_accum', 'grad accumulation', () => 1, 'posint'],
  ['max_len', 'max length (tokens)', () => 512, 'posint'],
];
const DISTILL = [
  ['lambda', 'λ (logits distillation)', (s) => (s ? 1 : 10), 'nonneg', true],
  ['gamma', 'γ (attention distillation)', (s) => (s ? 1e3 : 1e5), 'nonneg', true],
  ['tau', 'τ (temperature)', () => 5, 'pos', true],
  ['layer', 'relation layer', () => 'last', 'layer', true],
  ['split_heads', 'split heads', () => 1, 'posint', true],
  ['relation', 'relation', () => 'cosine', 'relation', true],
  ['t_r', 'relation temperature', () => 1, 'pos', true],
  ['gamma_warmup', 'γ warmup steps', () => 0, 'int', true],
];
const STAGE_FIELDS = {
  teacher_sft: COMMON.filter(([k]) => !['grad_accum', 'clip'].includes(k)),
  continue_pretrain: [['tokens', 'tokens (needs a corpus)', () => 20000, 'int'],
    ...COMMON.filter(([k]) => ['lr', 'batch', 'max_len', 'warmup'].includes(k))],
  distill: [...COMMON, ...DISTILL],
};
const STAGE_TITLES = {
  teacher_sft: 'Stage 0 · teacher fine-tuning (FP16 teacher on the task)',
  continue_pretrain: 'Stage 2 · continued pre-training (after SubLN, stage 1)',
  distill: 'Stage 3 · distillation (CE + λ·LD + γ·AD)',
};

function check(kind, raw) {
  if (raw === '') return null;
  if (kind === 'relation') return ['cosine', 'scaled'].includes(raw) ? null : 'must be "cosine" or "scaled"';
  if (kind === 'layer') return /^-?\d+$/.test(raw) || raw === 'last' || raw === 'all' ? null : 'must be an integer, "last" or "all"';
  const v = Number(raw);
  if (!isFinite(v)) return 'must be a number';
  if (kind === 'pos' && v <= 0) return 'must be a positive number';
  if (kind === 'nonneg' && v < 0) return 'must be a non-negative number';
  if (kind === 'int' && (v < 0 || !Number.isInteger(v))) return 'must be a non-negative integer';
  if (kind === 'posint' && (v <= 0 || !Number.isInteger(v))) return 'must be a positive integer';
  return null;
}
const value = (kind, raw) => (kind === 'relation' || (kind === 'layer' && !/^-?\d+$/.test(raw)) ? raw : Number(raw));

function field(label, input, hint) {
  return h('label', label, input, hint ? h('span.hint', hint) : null, h('span.field-err'));
}

export function submitView() {
  const st = { files: [], alive: true, stageInputs: [] };
  const apiErr = h('p.error#api-error', { role: 'alert' });
  const upErr = h('p.error#upload-error', { role: 'alert' });
  const upOk = h('p.muted#upload-ok');

  const model = h('input#f-model', { name: 'model', placeholder: 'HF directory under --model-root', required: true, autocomplete: 'off' });
  const train = h('select#f-training', { name: 'training_file' });
  const valid = h('select#f-validation', { name: 'validation_file' });
  const corpus = h('select#f-corpus', { name: 'corpus_file' });
  const method = h('select#f-method', { name: 'method.type' },
    h('option', { value: 'bitdistill' }, 'bitdistill — BitNet Distillation (3 stages)'),
    h('option', { value: 'bitnet_sft' }, 'bitnet_sft — ternary fine-tuning, no teacher'),
    h('option', { value: 'fp16_sft' }, 'fp16_sft — full-precision fine-tuning'));
  const task = h('select#f-task', { name: 'task' }, h('option', { value: '' }, 'from the training file'),
    TASKS.map((t) => h('option', { value: t }, t)));
  const device = h('input#f-device', { name: 'device', value: 'cpu', list: 'devices', autocomplete: 'off' });
  const devices = h('datalist#devices', ['cpu', 'cuda:0', 'cuda:1'].map((d) => h('option', { value: d })));
  const suffix = h('input#f-suffix', { name: 'suffix', placeholder: 'optional', maxLength: 40 });
  const seed = h('input#f-seed', { name: 'seed', type: 'number', min: '0', placeholder: 'random' });
  const threads = h('input#f-threads', { name: 'threads', type: 'number', min: '1', max: '1024', placeholder: 'auto' });
  const activate = h('input#f-activate', { name: 'activate', type: 'checkbox' });
  const ifBetter = h('input#f-if-better', { name: 'if_better', type: 'checkbox' });
  const hp = {
    n_epochs: h('input', { name: 'hyperparameters.n_epochs', placeholder: 'auto' }),
    batch_size: h('input#hp-batch', { name: 'hyperparameters.batch_size', placeholder: 'auto' }),
    learning_rate: h('input', { name: 'hyperparameters.learning_rate', placeholder: 'auto' }),
    max_len: h('input', { name: 'hyperparameters.max_len', placeholder: 'auto' }),
    steps: h('input', { name: 'hyperparameters.steps', placeholder: 'auto' }),
  };
  const hpInt = { batch_size: 1, max_len: 1, steps: 1 };

  const stageSets = {};
  for (const [stage, fields] of Object.entries(STAGE_FIELDS)) {
    const inputs = fields.map(([key, label, def, kind, distillOnly, ph]) => {
      const inp = kind === 'relation'
        ? h('select', h('option', { value: 'cosine' }, 'cosine'), h('option', { value: 'scaled' }, 'scaled'))
        : h('input', { autocomplete: 'off', placeholder: ph || '' });
      Object.assign(inp.dataset, { stage, key, kind });
      inp.id = `s-${stage}-${key}`;
      inp.def = def;
      inp.distillOnly = !!distillOnly;
      inp.addEventListener('input', () => inp.classList.toggle('edited', inp.value !== String(inp.def(isSum(taskNow())))));
      st.stageInputs.push(inp);
      return field(label, inp);
    });
    stageSets[stage] = h('fieldset', { dataset: { stage } }, h('legend', STAGE_TITLES[stage]), h('div.form-grid', inputs));
  }

  const taskNow = () => task.value || (st.files.find((f) => f.id === train.value) || {}).task || 'sst2';

  // Prefill the defaults of the task kind; keep what the user edited.
  function prefill() {
    const s = isSum(taskNow());
    for (const inp of st.stageInputs) {
      if (!inp.classList.contains('edited')) inp.value = String(inp.def(s));
    }
    const bd = method.value === 'bitdistill';
    stageSets.teacher_sft.disabled = !bd;
    stageSets.continue_pretrain.disabled = !bd;
    for (const inp of st.stageInputs) if (inp.distillOnly) inp.disabled = !bd;
    stageSets.distill.querySelector('legend').textContent = bd ? STAGE_TITLES.distill : 'Stage 3 · task fine-tuning (CE)';
  }
  method.addEventListener('change', prefill);
  task.addEventListener('change', prefill);
  train.addEventListener('change', prefill);

  function fileOptions(sel, purpose, optional) {
    const keep = sel.value;
    const list = st.files.filter((f) => f.purpose === purpose);
    sel.replaceChildren(optional ? h('option', { value: '' }, '— none —') : h('option', { value: '' }, list.length ? 'choose a file' : 'upload a file first'),
      ...list.map((f) => h('option', { value: f.id }, `${f.filename} · ${f.task || purpose} · ${f.rows} rows · ${fmtBytes(f.bytes)} (${f.id})`)));
    if (list.some((f) => f.id === keep)) sel.value = keep;
  }
  async function loadFiles(select) {
    try {
      const r = await api('/v1/files');
      st.files = r.data;
      fileOptions(train, 'fine-tune');
      fileOptions(valid, 'fine-tune', true);
      fileOptions(corpus, 'corpus', true);
      if (select) {
        const sel = select.purpose === 'corpus' ? corpus : !train.value ? train : valid;
        sel.value = select.id;
      }
      prefill();
    } catch (e) {
      apiErr.textContent = 'Cannot list files: ' + (e.text || e.message);
    }
  }

  // Upload
  const upFile = h('input#up-file', { type: 'file', accept: '.txt,.tsv,.jsonl,.json,.csv,text/*' });
  const upPurpose = h('select#up-purpose', h('option', { value: 'fine-tune' }, 'fine-tune (task dataset)'), h('option', { value: 'corpus' }, 'corpus (continued pre-training)'));
  const upTask = h('select#up-task', h('option', { value: '' }, 'detect'), TASKS.map((t) => h('option', { value: t }, t)));
  const upBtn = h('button#up-btn', { type: 'button', onclick: upload }, 'Upload');
  async function upload() {
    upErr.textContent = '';
    upOk.textContent = '';
    if (!upFile.files.length) { upErr.textContent = 'Choose a file to upload.'; return; }
    const fd = new FormData();
    fd.append('purpose', upPurpose.value);
    if (upTask.value) fd.append('task', upTask.value);
    fd.append('file', upFile.files[0]);
    upBtn.disabled = true;
    try {
      const f = await api('/v1/files', { method: 'POST', body: fd });
      upFile.value = '';
      await loadFiles(f);
      upOk.textContent = `Uploaded ${f.filename}: ${f.id}, ${f.task || f.purpose}, ${f.rows} rows, sha256 ${f.sha256.slice(0, 12)}…`;
    } catch (e) {
      upErr.textContent = 'Upload refused: ' + (e.text || e.message);
    } finally {
      upBtn.disabled = false;
    }
  }

  function setErr(inp, msg) {
    inp.classList.toggle('invalid', !!msg);
    const lab = inp.closest('label');
    const fe = lab && lab.querySelector('.field-err');
    if (fe) fe.textContent = msg || '';
  }

  // Client-side checks (the API's rules); returns [request, firstInvalidInput].
  // quiet: only build the request (the preview), marking nothing.
  function build(quiet) {
    let bad = null;
    const fail = (inp, msg) => { if (!quiet) setErr(inp, msg); if (msg && !bad) bad = inp; };
    if (!quiet) for (const inp of el.querySelectorAll('.invalid')) setErr(inp, '');
    const type = method.value;
    const req = { model: model.value.trim(), training_file: train.value, method: { type } };
    fail(model, req.model ? '' : "'model' is required: a model directory under the model root");
    fail(train, req.training_file ? '' : "'training_file' is required");
    if (valid.value) req.validation_file = valid.value;
    if (corpus.value) req.corpus_file = corpus.value;
    if (task.value) req.task = task.value;
    const tf = st.files.find((f) => f.id === train.value);
    const vf = st.files.find((f) => f.id === valid.value);
    if (task.value && tf && tf.task && tf.task !== task.value) fail(task, `training file '${tf.id}' is a ${tf.task} dataset, not ${task.value}`);
    if (vf && tf && vf.task && tf.task && vf.task !== (task.value || tf.task)) fail(valid, `validation file '${vf.id}' is a ${vf.task} dataset`);
    const dev = device.value.trim() || 'cpu';
    fail(device, dev === 'cpu' || /^cuda:\d+$/.test(dev) ? '' : `device '${dev}' must be "cpu" or "cuda:K"`);
    req.device = dev;
    if (suffix.value) {
      fail(suffix, /^[A-Za-z0-9_-]{1,40}$/.test(suffix.value) ? '' : "'suffix' must be at most 40 letters, digits, '-' or '_'");
      req.suffix = suffix.value;
    }
    if (seed.value !== '') {
      const v = Number(seed.value);
      fail(seed, Number.isInteger(v) && v >= 0 ? '' : "'seed' must be a non-negative integer");
      req.seed = v;
    }
    if (threads.value !== '') {
      const v = Number(threads.value);
      fail(threads, Number.isInteger(v) && v >= 1 && v <= 1024 ? '' : "'threads' must be an integer from 1 to 1024");
      req.threads = v;
    }
    if (activate.checked) req.activate = ifBetter.checked ? 'if_better' : true;
    for (const [k, inp] of Object.entries(hp)) {
      const raw = inp.value.trim();
      if (!raw || raw === 'auto') continue;
      const v = Number(raw);
      const ok = isFinite(v) && v > 0 && (!hpInt[k] || Number.isInteger(v));
      fail(inp, ok ? '' : `'hyperparameters.${k}' must be a positive ${hpInt[k] ? 'integer' : 'number'} or "auto"`);
      (req.hyperparameters ||= {})[k] = v;
    }
    const stages = {};
    for (const inp of st.stageInputs) {
      if (inp.disabled || inp.closest('fieldset').disabled) continue;
      const raw = inp.value.trim();
      const param = `method.${type}.${inp.dataset.stage}.${inp.dataset.key}`;
      const msg = check(inp.dataset.kind, raw);
      fail(inp, msg ? `'${param}' ${msg}` : '');
      if (!inp.classList.contains('edited') || raw === '') continue;
      (stages[inp.dataset.stage] ||= {})[inp.dataset.key] = value(inp.dataset.kind, raw);
    }
    if (type === 'bitdistill' && stages.continue_pretrain && stages.continue_pretrain.tokens > 0 && !corpus.value) {
      fail(corpus, 'continued pre-training needs a corpus file');
    }
    if (Object.keys(stages).length) req.method[type] = stages;
    return [req, bad];
  }

  // Mark the field the API named in `param`.
  function markParam(param, msg) {
    if (!param) return;
    const m = param.match(/^method\.\w+\.(\w+)\.(\w+)$/);
    const inp = m ? el.querySelector(`[data-stage="${m[1]}"][data-key="${m[2]}"]`) : el.querySelector(`[name="${param}"]`);
    if (inp) { setErr(inp, msg); inp.focus(); }
  }

  const submitBtn = h('button.primary#submit', { type: 'submit' }, 'Start job');
  async function submit(ev) {
    ev.preventDefault();
    apiErr.textContent = '';
    const [req, bad] = build();
    if (bad) { bad.focus(); apiErr.textContent = 'Fix the marked fields first.'; return; }
    submitBtn.disabled = true;
    try {
      const j = await api('/v1/fine_tuning/jobs', { method: 'POST', json: req });
      location.hash = '#/jobs/' + j.id;
    } catch (e) {
      apiErr.textContent = `The API refused the job: ${e.text || e.message}`;
      markParam(e.param, e.message);
    } finally {
      submitBtn.disabled = false;
    }
  }

  const preview = h('pre.mono#preview');
  const form = h('form#job-form', { novalidate: true, onsubmit: submit, oninput: () => { preview.textContent = JSON.stringify(build(true)[0], null, 2); } },
    h('div.panel', h('h2', 'Data'),
      h('div.form-grid', field('Base model (teacher)', model), field('Training file', train),
        field('Validation file', valid), field('Corpus file (continued pre-training)', corpus)),
      h('details', h('summary', 'Upload a new file'),
        h('div.row', upFile, upPurpose, h('label.inline', 'task ', upTask), upBtn), upErr, upOk)),
    h('div.panel', h('h2', 'Method'),
      h('div.form-grid', field('Method', method), field('Task', task, 'sets the λ/γ defaults'),
        field('Device', device), devices, field('Name suffix', suffix), field('Seed', seed),
        field('Trainer threads', threads), h('label.inline', activate, 'activate the student when done'),
        h('label.inline', ifBetter, 'only if it beats the active model on the validation file'))),
    h('div.panel', h('h2', 'Hyperparameters'), h('p.muted', 'Blank or "auto": the stage settings below decide.'),
      h('div.form-grid', field('epochs', hp.n_epochs), field('batch size', hp.batch_size),
        field('learning rate', hp.learning_rate), field('max length', hp.max_len), field('steps', hp.steps))),
    h('div.panel', h('h2', 'Stage settings'),
      h('p.muted', 'Prefilled with the paper\'s defaults for the task; only the values you change are sent.'),
      stageSets.teacher_sft, stageSets.continue_pretrain, stageSets.distill),
    h('div.panel', apiErr, h('div.row', h('details', h('summary', 'Request preview'), preview), h('span.spacer'), submitBtn)));

  const el = h('section', h('h1', 'New fine-tuning job'), form);
  prefill();
  loadFiles();
  return { el, destroy() { st.alive = false; } };
}
