// tests/browser/dash.test.mjs — the dashboard in headless Chromium against a real bitdistilld
// (started by tests/test-dash-browser.sh, which passes BASE, ADMIN_KEY, INFER_KEY, TRAIN_FILE,
// DEV_FILE, SHOTS, CHROMIUM, PROFILE). Prints TAP; every assertion checks what a person sees.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const env = process.env;
const BASE = env.BASE;
let n = 0, failed = 0;
function ok(cond, name, diag) {
  n++;
  console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${name}`);
  if (!cond) { failed++; if (diag !== undefined) console.log('# ' + String(diag).split('\n').join('\n# ')); }
  return cond;
}
const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1);

async function shot(page, name) {
  await page.screenshot({ path: path.join(env.SHOTS, name + '.png'), fullPage: true });
}
async function text(page, sel, timeout = 10000) {
  try { return (await page.locator(sel).first().textContent({ timeout })) || ''; } catch (e) { return ''; }
}
// Wait for fn() (in the page) to be truthy; returns its value or null after `timeout` ms.
async function until(page, fn, arg, timeout = 15000) {
  try { return await (await page.waitForFunction(fn, arg, { timeout, polling: 100 })).jsonValue(); } catch (e) { return null; }
}

// A fresh profile directory per run (the wrapper's temporary folder).
const context = await chromium.launchPersistentContext(env.PROFILE, {
  executablePath: env.CHROMIUM,
  viewport: { width: 1280, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-default-apps',
    '--disable-extensions', '--metrics-recording-only', '--no-default-browser-check'],
});
const urls = [];
const pageErrors = [];
context.on('request', (r) => urls.push(r.url()));
const page = context.pages()[0] || await context.newPage();
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('dialog', (d) => d.accept());

try {
  // --- static files: open, typed, revalidated with ETag, 404 for unknown names ---------------
  const idx = await fetch(BASE + '/');
  const csp = idx.headers.get('content-security-policy') || '';
  ok(idx.status === 200 && /text\/html/.test(idx.headers.get('content-type')) && /default-src 'none'/.test(csp) &&
    /connect-src 'self'/.test(csp), 'GET / serves the page without a key, with a same-origin-only CSP', `${idx.status} ${csp}`);
  const js = await fetch(BASE + '/dashboard/app.js');
  const etag = js.headers.get('etag');
  ok(js.status === 200 && /^text\/javascript/.test(js.headers.get('content-type')) && /^"\d+-\d+"$/.test(etag) &&
    js.headers.get('cache-control') === 'no-cache' && (await js.text()).includes('hashchange'), 'an ES module is served as text/javascript with an ETag');
  const again = await fetch(BASE + '/dashboard/app.js', { headers: { 'If-None-Match': etag } });
  ok(again.status === 304, 'If-None-Match with its ETag gives 304', again.status);
  const nope = await fetch(BASE + '/dashboard/nope.js');
  const nj = await nope.json().catch(() => ({}));
  ok(nope.status === 404 && nj.error && /no dashboard file 'nope.js'/.test(nj.error.message), 'an unknown asset gives 404 in the API error format', JSON.stringify(nj));

  // --- auth: the key is asked for, a wrong key gets the 401 message, the right one works ----
  await page.goto(BASE + '/');
  await page.locator('#keydlg[open]').waitFor({ timeout: 10000 });
  const m1 = await text(page, '#keymsg');
  ok(/401/.test(m1) && /missing API key/.test(m1), 'without a key the dialog asks for one and shows the 401', m1);
  await shot(page, '01-key-prompt');
  await page.fill('#keyinput', 'bd_wrong_key_0000000000000000');
  await page.click('#keysave');
  const m2 = await until(page, () => document.getElementById('keydlg').open && /invalid or revoked/.test(document.getElementById('keymsg').textContent) && document.getElementById('keymsg').textContent);
  ok(m2 && /401/.test(m2), 'a wrong key shows "401: invalid or revoked API key"', m2);
  await shot(page, '02-wrong-key');
  await page.fill('#keyinput', env.INFER_KEY);
  await page.click('#keysave');
  const m3 = await until(page, () => !document.getElementById('banner').hidden && document.getElementById('banner').textContent);
  ok(m3 && /403/.test(m3) && /admin/.test(m3), 'an infer-scope key shows the 403 scope message', m3);
  await page.click('#keybtn');
  await page.fill('#keyinput', env.ADMIN_KEY);
  await page.click('#keysave');
  const empty = await until(page, () => !document.getElementById('keydlg').open && /No jobs yet/.test(document.querySelector('#jobs-table tbody').textContent));
  ok(!!empty, 'the admin key is accepted: empty jobs table, no dialog');
  ok(await page.evaluate((k) => sessionStorage.getItem('bitdistill.key') === k, env.ADMIN_KEY), 'the key is kept in sessionStorage');

  // --- uploads through the form ---------------------------------------------------------------
  await page.goto(BASE + '/#/new');
  await page.locator('#job-form').waitFor();
  await page.locator('details:has(#up-file) summary').click();
  await page.setInputFiles('#up-file', env.TRAIN_FILE);
  await page.click('#up-btn');
  const up1 = await until(page, () => /Uploaded/.test(document.getElementById('upload-ok').textContent) && document.getElementById('upload-ok').textContent);
  ok(up1 && /96 rows/.test(up1) && /sst2/.test(up1), 'uploading the training file through the form: sst2, 96 rows', up1 || await text(page, '#upload-error'));
  const trainId = await page.inputValue('#f-training');
  ok(/^file-/.test(trainId), 'the new file is picked as the training file', trainId);
  await page.setInputFiles('#up-file', env.DEV_FILE);
  await page.click('#up-btn');
  await until(page, () => document.getElementById('f-validation').value !== '');
  ok((await page.inputValue('#f-validation')).startsWith('file-'), 'the second upload is picked as the validation file');
  const bad = path.join(path.dirname(env.TRAIN_FILE), 'bad.txt');
  fs.writeFileSync(bad, '1 good\n7 bad label\n');
  await page.setInputFiles('#up-file', bad);
  await page.selectOption('#up-task', 'sst2');
  await page.click('#up-btn');
  const upErr = await until(page, () => document.getElementById('upload-error').textContent);
  ok(upErr && /422/.test(upErr) && /line 2/.test(upErr), "a bad dataset shows the API's 422 naming the line", upErr);

  // --- form checks: client side first, then the API's own message -----------------------------
  ok(await page.inputValue('#s-distill-lambda') === '10' && await page.inputValue('#s-distill-gamma') === '100000' &&
    await page.inputValue('#s-distill-tau') === '5', 'classification defaults prefilled: lambda 10, gamma 1e5, tau 5');
  await page.selectOption('#f-task', 'cnndm');
  ok(await page.inputValue('#s-distill-lambda') === '1' && await page.inputValue('#s-distill-gamma') === '1000',
    'choosing summarization switches to lambda 1, gamma 1e3');
  await page.selectOption('#f-task', '');
  await page.fill('#f-model', 'tiny');
  await page.fill('#s-distill-lr', '-1');
  const before = urls.length;
  await page.click('#submit');
  const fe = await text(page, 'label:has(#s-distill-lr) .field-err');
  ok(/method\.bitdistill\.distill\.lr/.test(fe) && /positive/.test(fe), 'a negative lr is named next to its field', fe);
  ok(!urls.slice(before).some((u) => u.includes('/v1/fine_tuning/jobs')), 'the bad form is not sent');
  await page.fill('#s-distill-lr', '0.0001');
  await page.fill('#f-model', 'nothere');
  await page.click('#submit');
  const apiErr = await until(page, () => /refused/.test(document.getElementById('api-error').textContent) && document.getElementById('api-error').textContent);
  ok(apiErr && /404/.test(apiErr) && /model 'nothere' not found under the model root/.test(apiErr), "an unknown model shows the API's 404 message", apiErr);
  await shot(page, '03-submit-error');

  // --- a tiny real job, followed live ------------------------------------------------------------
  await page.fill('#f-model', 'tiny');
  await page.fill('#s-teacher_sft-steps', '6');
  await page.fill('#s-distill-steps', '6');
  await page.fill('#hp-batch', '8');
  await page.fill('#f-seed', '3');
  await page.fill('#f-suffix', 'dash');
  await page.click('#submit');
  await page.waitForURL(/#\/jobs\/ftjob-/, { timeout: 10000 });
  const jobId = page.url().split('#/jobs/')[1];
  ok(/^ftjob-[0-9a-f]+$/.test(jobId), `the job is accepted and its page opens (${jobId})`);
  // Record the job page's progress bar in the page itself (every 30 ms, across re-renders).
  await page.evaluate(() => {
    window.__seen = new Set();
    window.__rec = setInterval(() => {
      const p = document.querySelector('section .panel .progress');
      if (p) window.__seen.add(p.getAttribute('aria-valuenow'));
    }, 30);
  });
  const stream = await until(page, () => ['live', 'done'].includes(document.getElementById('stream-state').textContent) && document.getElementById('stream-state').textContent);
  ok(!!stream, `the SSE event stream connects (${stream})`);
  const status = await until(page, () => { const b = document.querySelector('section h1.mono + .badge'); return b && ['succeeded', 'failed', 'cancelled'].includes(b.textContent) && b.textContent; }, null, 120000);
  await page.waitForTimeout(100);
  const seen = await page.evaluate(() => { clearInterval(window.__rec); return [...window.__seen]; });
  ok(status === 'succeeded', `the job succeeds (${status}, ${secs()} s)`, await text(page, 'section .panel p.error'));
  await until(page, () => document.getElementById('stream-state').textContent === 'done');
  const pts = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('canvas[data-series]')].map((c) => [c.dataset.series, +c.dataset.points])));
  ok(pts.ce > 0 && pts.loss > 0 && pts.lr > 0 && pts.tokens_per_s > 0, 'CE, total, lr and tokens/s curves have points from the stream', JSON.stringify(pts));
  ok(pts.ld > 0 && pts.ad > 0 && pts.ld === pts.ce, 'LD and AD curves drawn from the same step events', JSON.stringify(pts));
  const vals = seen.filter((v) => v !== null).map(Number);
  ok(vals.includes(100) && new Set(vals).size >= 3, `the progress bar advanced to 100% (${seen.join(', ')})`);
  const ink = await page.evaluate(() => {
    const c = document.querySelector('canvas[data-series=ce]');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let k = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) k++;
    return k;
  });
  ok(ink > 500, `the CE chart is drawn on the canvas (${ink} painted pixels)`);
  await page.check('#logy');
  await page.fill('#smooth', '0.9');
  ok(await page.evaluate(() => document.getElementById('smooth').value === '0.9' && document.getElementById('logy').checked), 'smoothing and log-scale toggles respond');
  const acc = await until(page, () => {
    const s = document.querySelector('#eval-table td[data-model=student][data-metric=accuracy]');
    const t = document.querySelector('#eval-table td[data-model=teacher][data-metric=accuracy]');
    return s && t && `${t.textContent}|${s.textContent}`;
  });
  const [ta, sa] = (acc || '|').split('|').map(Number);
  ok(acc && ta >= 0 && ta <= 1 && sa >= 0 && sa <= 1, `eval teacher vs student accuracy shown (${acc})`);
  const ck = await page.locator('table:has(th:text("Written")) tbody tr td.mono').count();
  ok(ck > 0, `checkpoints listed (${ck})`);
  const logText = await text(page, '#event-log');
  ok(/step\s+stage 3 step 6\/6/.test(logText) && /done/.test(logText), 'the event log shows steps and the end');
  const strip = await page.evaluate(() => [...document.querySelectorAll('.stages span')].map((x) => x.className).join(' '));
  ok(strip === 'done done skipped done done', `the stage strip shows stage 2 skipped (no corpus), the others done (${strip})`);
  const student = (await text(page, '#student')).trim();
  ok(/\S/.test(student), `the job names its student (${student})`);
  await shot(page, '04-job');

  // --- jobs table --------------------------------------------------------------------------------
  await page.goto(BASE + '/#/jobs');
  const row = await until(page, (id) => { const r = document.querySelector(`#jobs-table tr[data-id="${id}"]`); return r && r.textContent; }, jobId);
  ok(row && /succeeded/.test(row) && /bitdistill/.test(row) && /sst2/.test(row) && /tiny/.test(row), 'the jobs table lists the job: method, base model, task, status', row);
  await page.selectOption('#status-filter', 'failed');
  ok(await page.locator(`#jobs-table tr[data-id="${jobId}"]`).count() === 0, 'filtering by another status hides it');
  await page.selectOption('#status-filter', 'succeeded');
  ok(await page.locator(`#jobs-table tr[data-id="${jobId}"]`).count() === 1, 'filtering by succeeded shows it');
  await shot(page, '05-jobs');

  // --- cancel with confirmation ---------------------------------------------------------------
  const long = await page.evaluate(async ([k, tf]) => {
    const r = await fetch('/v1/fine_tuning/jobs', { method: 'POST', headers: { Authorization: 'Bearer ' + k, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', training_file: tf, method: { type: 'bitnet_sft', bitnet_sft: { distill: { steps: 3000 } } }, hyperparameters: { batch_size: 8 } }) });
    return (await r.json()).id;
  }, [env.ADMIN_KEY, trainId]);
  await page.goto(BASE + '/#/jobs/' + long);
  await until(page, () => document.querySelector('section h1.mono + .badge')?.textContent === 'running', null, 30000);
  await page.click('#cancel');
  const cs = await until(page, () => { const b = document.querySelector('section h1.mono + .badge'); return b && b.textContent === 'cancelled' && b.textContent; }, null, 30000);
  ok(cs === 'cancelled', 'cancel (confirmed) stops a running job');

  // --- models: registry, hot-swap, try it ---------------------------------------------------------
  await page.goto(BASE + '/#/models');
  const mrow = await until(page, (id) => { const r = document.querySelector(`#models-table tr[data-id="${id}"]`); return r && r.textContent; }, student);
  ok(mrow && /classification/.test(mrow) && new RegExp(jobId).test(mrow), 'the student is in the registry with its task and job', mrow);
  ok(await page.getAttribute(`#models-table tr[data-id="${student}"]`, 'data-active') === 'false', 'it is not active yet');
  await page.click(`button[data-activate="${student}"]`);
  const active = await until(page, (id) => document.querySelector(`#models-table tr[data-id="${id}"]`)?.dataset.active === 'true', student, 30000);
  ok(!!active, 'Activate hot-swaps it in: the row shows it active', await text(page, '#models-error'));
  const mrow2 = await text(page, `#models-table tr[data-id="${student}"]`);
  ok(/loaded/.test(mrow2) && /ternary/.test(mrow2) && /MiB|KiB/.test(mrow2), 'the active model shows loaded, ternary, its size and memory', mrow2);
  await page.fill('#try-input', 'a gorgeous, witty, seductive movie');
  await page.click('#try-run');
  const label = await until(page, () => document.getElementById('try-label')?.textContent);
  ok(label === 'positive' || label === 'negative', `"try it" classifies: ${label}`, await text(page, '#try-error'));
  const tr = await text(page, '#try-result');
  ok(new RegExp(student).test(tr) && /%/.test(tr), 'the answer names the model and the label probabilities', tr);
  await shot(page, '06-models');

  // --- server panel from /metrics -------------------------------------------------------------
  await page.goto(BASE + '/#/server');
  const rps = await until(page, () => { const t = document.getElementById('m-rps').textContent; return /^[\d.e+-]+$/.test(t) && t; }, null, 10000);
  ok(rps !== null && Number(rps) >= 0, `requests/s computed from two scrapes (${rps})`);
  const tot = Number((await text(page, '#m-total')).replace(/[^\d]/g, ''));
  ok(tot > 10, `requests served parsed from http_requests_total (${tot})`);
  const p50 = await text(page, '#m-p50'), p99 = await text(page, '#m-p99');
  ok(/\d (ms|s)$/.test(p50) && /\d (ms|s)$/.test(p99), `latency percentiles from the histogram (p50 ${p50}, p99 ${p99})`);
  ok(/^\d+$/.test(await text(page, '#m-queue')) && /^\d+$/.test(await text(page, '#m-batch')), 'queue depth and batch size shown');
  ok(await page.locator('#handlers tbody tr').count() > 3, 'requests by handler listed');
  await shot(page, '07-server');

  // --- many events: the chart decimates (50,000 points drawn in one frame's budget) -------------
  const drawMs = await page.evaluate(async () => {
    const { LineChart } = await import('/dashboard/chart.js');
    const c = document.createElement('canvas');
    c.style.width = '600px'; c.style.height = '200px';
    document.body.append(c);
    const ch = new LineChart(c, { color: '#000' });
    for (let i = 1; i <= 50000; i++) { ch.xs.push(i); ch.ys.push(3 * Math.exp(-i / 9000) + Math.random() * 0.3); }
    ch.draw();
    const t = performance.now();
    for (let k = 0; k < 5; k++) ch.draw();
    const ms = (performance.now() - t) / 5;
    ch.destroy(); c.remove();
    return ms;
  });
  ok(drawMs < 100, `a 50,000-point chart redraws in ${drawMs.toFixed(1)} ms (under 100)`);

  // --- phone width ---------------------------------------------------------------------------------
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(BASE + '/#/jobs');
  await until(page, () => document.querySelectorAll('#jobs-table tbody tr[data-id]').length > 0);
  const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  ok(over <= 0, `no horizontal page overflow at 390 px (${over})`);
  await shot(page, '08-phone-jobs');
  await page.goto(BASE + '/#/jobs/' + jobId);
  await until(page, () => +document.querySelector('canvas[data-series=ce]').dataset.points > 0);
  await shot(page, '09-phone-job');

  // --- nothing left this machine; the page raised no errors ----------------------------------
  const foreign = urls.filter((u) => !u.startsWith(BASE + '/') && !u.startsWith('data:'));
  ok(urls.length > 20 && foreign.length === 0, `all ${urls.length} requests went to the daemon`, foreign.slice(0, 5).join('\n'));
  ok(pageErrors.length === 0, 'no uncaught errors in the page', pageErrors.join('\n'));
  const dlog = fs.readFileSync(env.DAEMON_LOG, 'utf8');
  const san = dlog.split('\n').filter((l) => /AddressSanitizer|LeakSanitizer|runtime error:/.test(l));
  ok(/GET \/ 200/.test(dlog) && san.length === 0, 'the daemon served the session with no sanitizer report', san.slice(0, 5).join('\n'));
} catch (e) {
  ok(false, 'browser test ran to the end', e.stack);
  await shot(page, 'zz-failure').catch(() => {});
} finally {
  await context.close();
}
console.log(`# ${secs()} s, screenshots in ${env.SHOTS}`);
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
