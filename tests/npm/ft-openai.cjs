// tests/npm/ft-openai.cjs — the fine-tuning API driven by OpenAI's own Node SDK (npm `openai`,
// pinned in tests/npm/package.json) against the real daemon, as tests/test-api-ft-openai.sh sets
// it up (env: BD (bitdistilld), DATA (data dir with models/tiny), TRAIN, DEV (SST-2 slices)).
// Prints TAP. Covers: upload, create with metadata and "auto" hyperparameters (checked against
// the rule docs/api.md states), list with metadata filters, retrieve, events, checkpoints with
// cursor pages, pause, a daemon restart while paused, resume (the loss curve equals an unpaused
// run's bit for bit), cancel, the result file, chat JSONL data, and the 4xx/409 answers.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const OpenAI = require(path.join(__dirname, 'node_modules', 'openai'));

let n = 0, failed = 0;
function ok(cond, name, diag) {
    n++;
    console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${name}`);
    if (!cond) {
        failed++;
        if (diag !== undefined) console.log(`# ${JSON.stringify(diag).slice(0, 2000)}`);
    }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const env = process.env;
const portFile = path.join(env.DATA, '..', 'port');
let daemon = null;

async function startDaemon() {
    try { fs.unlinkSync(portFile); } catch (e) { /* first start */ }
    const log = fs.openSync(path.join(env.DATA, '..', 'd.log'), 'a');
    daemon = spawn(env.BD, ['--port', '0', '--port-file', portFile, '--data-dir', env.DATA,
                            '--job-threads', '1'], { stdio: ['ignore', log, log] });
    for (let i = 0; i < 300; i++) {
        if (fs.existsSync(portFile) && fs.readFileSync(portFile, 'utf8').trim()) break;
        await sleep(50);
    }
    const port = fs.readFileSync(portFile, 'utf8').trim();
    return new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
}

async function stopDaemon() {
    const exited = new Promise((r) => daemon.once('exit', (code) => r(code)));
    daemon.kill('SIGTERM');
    return exited;
}

async function waitFor(client, id, want, seconds) {
    let job;
    for (let i = 0; i < seconds * 10; i++) {
        job = await client.fineTuning.jobs.retrieve(id);
        if (want.includes(job.status)) return job;
        if (['succeeded', 'failed', 'cancelled'].includes(job.status)) return job;
        await sleep(100);
    }
    return job;
}

async function allEvents(client, id) {
    const out = [];
    for await (const e of client.fineTuning.jobs.listEvents(id, { limit: 100 })) out.push(e);
    return out;
}

// The step events of a job by step number (the last one of each, as a restart may repeat).
async function steps(client, id) {
    const m = new Map();
    for (const e of await allEvents(client, id))
        if (e.type === 'step') m.set(e.data.step, e.data);
    return m;
}

// The stated rule for "auto" (docs/api.md, api/jobs.c resolve_auto), from the row count.
function autoRule(rows) {
    let epochs = 3;
    if (rows * 3 < 100) epochs = Math.min(25, Math.floor(100 / rows));
    else if (rows * 3 > 25000) epochs = Math.max(1, Math.floor(25000 / rows));
    const batch = Math.min(256, Math.max(1, Math.round(rows * 0.002)));
    const mult = Math.round(Math.min(2, Math.max(0.5, Math.sqrt(batch / 32))) * 1000) / 1000;
    return { n_epochs: epochs, batch_size: batch, learning_rate_multiplier: mult };
}

async function expectError(p, status, needle, name) {
    try {
        await p;
        ok(false, name, 'no error');
    } catch (e) {
        const msg = e.error && e.error.message ? e.error.message : String(e.message);
        ok(e.status === status && msg.includes(needle), `${name} -> ${status} naming '${needle}'`,
           { status: e.status, msg });
    }
}

async function main() {
    let client = await startDaemon();
    const train = await client.files.create({ file: fs.createReadStream(env.TRAIN), purpose: 'fine-tune' });
    const dev = await client.files.create({ file: fs.createReadStream(env.DEV), purpose: 'fine-tune' });
    const rows = fs.readFileSync(env.TRAIN, 'utf8').trim().split('\n').length;
    ok(/^file-/.test(train.id) && train.rows === rows && /^file-/.test(dev.id),
       `files.create uploads the training (${rows} rows) and validation files`, train);

    // The reference job (A) and the job that is paused (B): the same trainer config.
    const STEPS = 160;
    const spec = (meta) => ({
        model: 'tiny', training_file: train.id, validation_file: dev.id, seed: 7,
        method: { type: 'bitnet_sft', bitnet_sft: { distill: { steps: STEPS } } },
        hyperparameters: { n_epochs: 'auto', batch_size: 'auto', learning_rate_multiplier: 'auto' },
        metadata: meta,
    });
    const a = await client.fineTuning.jobs.create(spec({ suite: 'sdk', run: 'a' }));
    const want = autoRule(rows);
    ok(a.hyperparameters.n_epochs === want.n_epochs && a.hyperparameters.batch_size === want.batch_size &&
       a.hyperparameters.learning_rate_multiplier === want.learning_rate_multiplier,
       `"auto" hyperparameters resolved by the stated rule (${JSON.stringify(want)})`, a.hyperparameters);
    ok(a.metadata && a.metadata.run === 'a' && a.metadata.suite === 'sdk', 'metadata returned on create', a.metadata);
    const doneA = await waitFor(client, a.id, ['succeeded'], 300);
    ok(doneA.status === 'succeeded', `job A succeeded (${doneA.status})`, doneA.error);

    const b = await client.fineTuning.jobs.create(spec({ suite: 'sdk', run: 'b' }));
    for (let i = 0; i < 600; i++) { // pause once it has written its first checkpoint
        const page = await client.fineTuning.jobs.checkpoints.list(b.id);
        if (page.data.length) break;
        await sleep(50);
    }
    const pausing = await client.fineTuning.jobs.pause(b.id);
    ok(['pausing', 'paused'].includes(pausing.status), `pause answers the job (${pausing.status})`);
    const pausedB = await waitFor(client, b.id, ['paused'], 60);
    ok(pausedB.status === 'paused', `job B paused (${pausedB.status})`);
    const pauseStep = Math.max(...(await steps(client, b.id)).keys());
    ok(pauseStep > 0 && pauseStep < STEPS, `paused mid-run, at step ${pauseStep} of ${STEPS}`);
    await expectError(client.fineTuning.jobs.pause(b.id), 409, 'paused', 'pausing a paused job');

    // A job without metadata, cancelled while it waits behind nothing: it runs, then is cancelled.
    const c = await client.fineTuning.jobs.create({
        model: 'tiny', training_file: train.id,
        method: { type: 'bitnet_sft', bitnet_sft: { distill: { steps: 100000 } } },
    });
    ok(c.metadata === null, 'a job created without metadata has metadata null');

    // Listing with metadata filters (the SDK writes metadata[k]=v).
    const ids = async (q) => { const o = []; for await (const j of client.fineTuning.jobs.list(q)) o.push(j.id); return o; };
    const la = await ids({ metadata: { run: 'a' } });
    ok(la.length === 1 && la[0] === a.id, 'list({metadata:{run:"a"}}) finds job A only', la);
    const lsdk = await ids({ metadata: { suite: 'sdk' } });
    ok(lsdk.length === 2 && lsdk.includes(a.id) && lsdk.includes(b.id), 'list({metadata:{suite:"sdk"}}) finds A and B', lsdk);
    const lnone = await ids({ metadata: { suite: 'sdk', run: 'zzz' } });
    ok(lnone.length === 0, 'every pair must match', lnone);
    const lall = await ids({ limit: 1 });
    ok(lall.length === 3 && lall[0] === c.id, 'list pages (limit 1) through all three jobs, newest first', lall);
    const r = await fetch(`${client.baseURL}/fine_tuning/jobs?metadata=null`).then((x) => x.json());
    ok(r.data.length === 1 && r.data[0].id === c.id, 'metadata=null lists the jobs without metadata', r.data.map((j) => j.id));

    const running = await waitFor(client, c.id, ['running'], 60);
    ok(running.status === 'running', 'job C runs');
    const cancelled = await client.fineTuning.jobs.cancel(c.id);
    ok(['cancelling', 'cancelled'].includes(cancelled.status), `cancel answers (${cancelled.status})`);
    ok((await waitFor(client, c.id, ['cancelled'], 30)).status === 'cancelled', 'job C ends cancelled');
    await expectError(client.fineTuning.jobs.pause(c.id), 409, 'cancelled', 'pausing a cancelled job');
    await expectError(client.fineTuning.jobs.resume(a.id), 409, 'succeeded', 'resuming a succeeded job');

    // A restart keeps B paused; resume continues from its checkpoint.
    ok((await stopDaemon()) === 0, 'daemon stops cleanly');
    client = await startDaemon();
    const afterRestart = await client.fineTuning.jobs.retrieve(b.id);
    ok(afterRestart.status === 'paused', `after a restart job B is still paused (${afterRestart.status})`);
    const resumed = await client.fineTuning.jobs.resume(b.id);
    ok(['queued', 'running'].includes(resumed.status), `resume answers (${resumed.status})`);
    await expectError(client.fineTuning.jobs.resume(b.id), 409, 'only a paused job', 'resuming a job that is not paused');
    const doneB = await waitFor(client, b.id, ['succeeded'], 300);
    ok(doneB.status === 'succeeded', `job B succeeded after the resume (${doneB.status})`, doneB.error);
    const evB = await allEvents(client, b.id);
    ok(evB.some((e) => e.type === 'paused') && evB.some((e) => e.type === 'message' && /resumed from/.test(e.message)),
       'B\'s events show the pause and the resume from its checkpoint');

    // Bit for bit: every step of B (before and after the pause) equals A's.
    const sa = await steps(client, a.id), sb = await steps(client, b.id);
    const keys = ['ce', 'loss', 'grad_norm', 'lr', 'acc'];
    let same = sa.size === STEPS && sb.size === STEPS, first = null;
    for (const [k, ea] of sa) {
        const eb = sb.get(k);
        for (const f of keys) if (!eb || eb[f] !== ea[f]) { same = false; first = first || { step: k, f, a: ea[f], b: eb && eb[f] }; }
    }
    ok(same, `paused + restarted + resumed run equals the unpaused run at all ${STEPS} steps (ce, loss, grad_norm, lr, acc)`, first);
    const ma = await client.models.retrieve(doneA.fine_tuned_model);
    const mb = await client.models.retrieve(doneB.fine_tuned_model);
    ok(ma.sha256 && ma.sha256 === mb.sha256, `and the students are the same file (sha256 ${String(ma.sha256).slice(0, 12)})`, [ma.sha256, mb.sha256]);
    ok([...sa.values()].every((e) => e.acc >= 0 && e.acc <= 1), 'step events carry a token accuracy in [0, 1]');

    // Checkpoints: OpenAI's shape, newest first, cursor pages of 2.
    const cks = [];
    for await (const ck of client.fineTuning.jobs.checkpoints.list(b.id, { limit: 2 })) cks.push(ck);
    const stepsB = cks.map((ck) => ck.step_number);
    const wantSteps = [];
    for (let s = STEPS; s >= 20; s -= 20) wantSteps.push(s);
    if (pauseStep % 20) wantSteps.splice(wantSteps.findIndex((s) => s < pauseStep), 0, pauseStep);
    ok(JSON.stringify(stepsB) === JSON.stringify(wantSteps), `checkpoints list newest first across pages: every 20 steps and the pause step ${pauseStep}`, stepsB);
    const last = cks[0];
    const shapeOk = cks.every((ck) => ck.object === 'fine_tuning.job.checkpoint' && /^ftckpt-/.test(ck.id) &&
        ck.fine_tuning_job_id === b.id && typeof ck.created_at === 'number' &&
        typeof ck.fine_tuned_model_checkpoint === 'string' && ck.metrics.step === ck.step_number &&
        ['train_loss', 'train_mean_token_accuracy', 'valid_loss', 'valid_mean_token_accuracy'].every((f) => typeof ck.metrics[f] === 'number'));
    ok(shapeOk, 'every checkpoint has OpenAI\'s fields and metrics (train/valid loss and token accuracy)', cks[cks.length - 1]);
    ok(typeof last.metrics.full_valid_loss === 'number' && typeof last.metrics.full_valid_mean_token_accuracy === 'number',
       'the final checkpoint has full_valid_loss and full_valid_mean_token_accuracy', last.metrics);
    ok(cks.every((ck) => ck.metrics.train_loss === sb.get(ck.step_number).ce),
       'a checkpoint\'s train_loss is its step\'s CE');

    // The result file: OpenAI's CSV columns, one row per step, equal to the events.
    ok(doneB.result_files.length === 1, 'the job has one result file', doneB.result_files);
    const meta = await client.files.retrieve(doneB.result_files[0]);
    ok(meta.purpose === 'fine-tune-results', `its purpose is fine-tune-results (${meta.purpose})`);
    const csv = await (await client.files.content(doneB.result_files[0])).text();
    const lines = csv.trim().split('\n'), head = lines[0].split(',');
    ok(head.slice(0, 5).join(',') === 'step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy',
       'CSV starts with OpenAI\'s columns', head);
    const rowsCsv = lines.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, i) => [head[i], v])));
    ok(rowsCsv.length === STEPS, `one row per step (${rowsCsv.length})`);
    let agree = true, why = null;
    for (const row of rowsCsv) {
        const e = sb.get(Number(row.stage_step));
        if (!e || Number(row.train_loss) !== e.ce || Number(row.train_accuracy) !== e.acc) { agree = false; why = why || { row, e }; }
    }
    for (const ck of cks) {
        const row = rowsCsv.find((x) => Number(x.stage_step) === ck.step_number);
        if (!row || Number(row.valid_loss) !== ck.metrics.valid_loss) { agree = false; why = why || { row, ck: ck.metrics }; }
    }
    ok(agree, 'CSV rows equal the step events and the checkpoints\' validation metrics', why);

    // Chat data (OpenAI's format): validated at upload, trained with the loss on assistant turns.
    const chatLines = [];
    for (let i = 0; i < 8; i++)
        chatLines.push(JSON.stringify({ messages: [{ role: 'system', content: 'Answer in digits.' },
            { role: 'user', content: `${i} plus ${i}?` }, { role: 'assistant', content: `${2 * i}` }] }));
    const chatPath = path.join(env.DATA, '..', 'chat.jsonl');
    fs.writeFileSync(chatPath, chatLines.join('\n') + '\n');
    const chat = await client.files.create({ file: fs.createReadStream(chatPath), purpose: 'fine-tune' });
    ok(chat.task === 'chat' && chat.rows === 8, `a chat JSONL upload is detected as task chat with 8 examples (${chat.task}, ${chat.rows})`);
    const badPath = path.join(env.DATA, '..', 'badchat.jsonl');
    fs.writeFileSync(badPath, chatLines[0] + '\n' + JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) + '\n');
    await expectError(client.files.create({ file: fs.createReadStream(badPath), purpose: 'fine-tune' }), 422,
        'line 2', 'a chat file whose line 2 has no assistant message');
    const cj = await client.fineTuning.jobs.create({ model: 'tiny', training_file: chat.id, validation_file: chat.id,
        method: { type: 'bitnet_sft', bitnet_sft: { distill: { steps: 8 } } }, hyperparameters: { batch_size: 4 } });
    const cdone = await waitFor(client, cj.id, ['succeeded'], 120);
    const cm = cdone.fine_tuned_model ? await client.models.retrieve(cdone.fine_tuned_model) : {};
    ok(cdone.status === 'succeeded' && cm.task === 'generation' && typeof cm.metrics.student.rouge1 === 'number',
       `a chat job succeeds; its student serves generation and was scored by ROUGE (${cdone.status}, ${cm.task})`, cdone.error);

    // Classification as generative SFT in ChatML: the student carries the ChatML template and
    // classifies with it.
    const fj = await client.fineTuning.jobs.create({ model: 'tiny', training_file: train.id, validation_file: dev.id,
        chat_format: 'chatml', activate: true,
        method: { type: 'bitnet_sft', bitnet_sft: { distill: { steps: 8 } } }, hyperparameters: { batch_size: 4 } });
    const fdone = await waitFor(client, fj.id, ['succeeded'], 120);
    const fm = fdone.fine_tuned_model ? await client.models.retrieve(fdone.fine_tuned_model) : {};
    const tpl = '<|im_start|>user\nReview: {text}\nSentiment:<|im_end|>\n<|im_start|>assistant\n';
    const gguf = path.join(env.DATA, 'jobs', fj.id, 'out', 'student.gguf');
    ok(fdone.status === 'succeeded' && fs.existsSync(gguf) && fs.readFileSync(gguf).includes(Buffer.from(tpl)),
       'a chat_format job succeeds and its student file carries the ChatML template',
       { status: fdone.status, error: fdone.error, model: fm.id });
    let cls = {};
    for (let i = 0; i < 100; i++) { // activation loads in the background
        cls = await fetch(`${client.baseURL}/classify`, { method: 'POST', body: JSON.stringify({ input: 'a gorgeous film' }) }).then((x) => x.json());
        if (cls.model === fm.id) break;
        await sleep(100);
    }
    ok(cls.model === fm.id && ['positive', 'negative'].includes(cls.data && cls.data[0].label),
       'the activated ChatML student classifies', cls);
    await expectError(client.fineTuning.jobs.create({ ...spec(undefined), chat_format: 'jinja' }), 400, 'chat_format', 'chat_format "jinja"');
    await expectError(client.fineTuning.jobs.create({ model: 'tiny', training_file: chat.id, chat_format: 'chatml',
        method: { type: 'bitnet_sft' } }), 400, 'not chat', 'chat_format on chat data');

    // Bad input.
    const many = {};
    for (let i = 0; i < 17; i++) many[`k${i}`] = 'v';
    await expectError(client.fineTuning.jobs.create({ ...spec(many) }), 400, 'at most 16', '17 metadata pairs');
    await expectError(client.fineTuning.jobs.create({ ...spec({ ['k'.repeat(65)]: 'v' }) }), 400, 'at most 64', 'a 65-character metadata key');
    await expectError(client.fineTuning.jobs.create({ ...spec({ k: 'v'.repeat(513) }) }), 400, 'metadata.k', 'a 513-character metadata value');
    await expectError(client.fineTuning.jobs.create({ ...spec({ k: 5 }) }), 400, 'metadata.k', 'a number as a metadata value');
    await expectError(client.fineTuning.jobs.create({ ...spec(undefined), hyperparameters: { learning_rate: 'auto' } }), 400,
        'hyperparameters.learning_rate', '"auto" learning_rate');
    await expectError(client.fineTuning.jobs.checkpoints.list(b.id, { after: 'ftckpt-nope' }), 400, 'after', 'a foreign checkpoint cursor');
    await expectError(client.fineTuning.jobs.pause('ftjob-nope'), 404, 'ftjob-nope', 'pausing an unknown job');
    ok((await ids({})).length === 5, 'refused requests created no job (A, B, C, the chat and ChatML jobs)');

    ok((await stopDaemon()) === 0, 'daemon exits 0');
    console.log(`1..${n}`);
    process.exit(failed ? 1 : 0);
}

main().catch((e) => {
    console.log(`not ok ${n + 1} - unexpected: ${e && e.stack ? e.stack : e}`);
    console.log(`1..${n + 1}`);
    if (daemon) daemon.kill('SIGKILL');
    process.exit(1);
});
