// tests/npm/openai-chat.cjs — the OpenAI Node SDK (npm `openai`, pinned in package.json) as the
// client of bitdistilld's /v1/chat/completions and /v1/completions. Prints TAP lines (no plan:
// tests/test-api-chat.sh counts them). Usage: node openai-chat.cjs BASE_URL MODEL
'use strict';
const OpenAI = require('openai').default;

const [base, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base, apiKey: 'unused', maxRetries: 0 });
let n = 0;
function ok(cond, name) {
  n++;
  console.log(`${cond ? 'ok' : 'not ok'} ${n} - sdk: ${name}`);
}
const msgs = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: [{ type: 'text', text: 'Say hi ' }, { type: 'text', text: 'twice.' }] },
];

async function badRequest(body, param, name) {
  try {
    await client.chat.completions.create(body);
    ok(false, `${name}: refused`);
  } catch (e) {
    const p = e.error && e.error.param;
    ok(e.status === 400 && typeof p === 'string' && p.startsWith(param),
      `${name}: 400 naming ${param} (got ${e.status} ${p}: ${e.error && e.error.message})`);
  }
}

async function main() {
  const base1 = { model, messages: msgs, max_tokens: 8, temperature: 0 };
  const r = await client.chat.completions.create(base1);
  const text = r.choices[0].message.content;
  ok(r.object === 'chat.completion' && r.choices.length === 1 &&
     r.choices[0].message.role === 'assistant' && typeof text === 'string' &&
     ['stop', 'length'].includes(r.choices[0].finish_reason),
     `non-stream answer in OpenAI's shape (finish ${r.choices[0].finish_reason})`);
  ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0 &&
     r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens,
     `usage ${JSON.stringify(r.usage)}`);

  // stream with usage: same greedy text, usage in the last chunk
  const stream = await client.chat.completions.create({ ...base1, stream: true,
    stream_options: { include_usage: true } });
  let streamed = '', role = null, usage = null, finish = null, chunks = 0;
  for await (const ch of stream) {
    chunks++;
    if (ch.usage) usage = ch.usage;
    for (const c of ch.choices) {
      if (c.delta.role) role = c.delta.role;
      if (c.delta.content) streamed += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  ok(streamed === text && role === 'assistant' && finish === r.choices[0].finish_reason,
     `stream (${chunks} chunks) gives the non-stream text ${JSON.stringify(text)}`);
  ok(usage && usage.completion_tokens === r.usage.completion_tokens &&
     usage.prompt_tokens === r.usage.prompt_tokens, `stream usage ${JSON.stringify(usage)}`);

  // n = 3 with a seed: distinct choices, each reproducible
  const nb = { model, messages: msgs, max_tokens: 6, temperature: 1.5, seed: 11, n: 3 };
  const a = await client.chat.completions.create(nb);
  const b = await client.chat.completions.create(nb);
  const ta = a.choices.map((c) => c.message.content), tb = b.choices.map((c) => c.message.content);
  ok(a.choices.length === 3 && a.choices.every((c, i) => c.index === i),
     'n = 3 gives choices 0, 1, 2');
  ok(new Set(ta).size >= 2, `n = 3 choices differ: ${JSON.stringify(ta)}`);
  ok(JSON.stringify(ta) === JSON.stringify(tb), 'the same seed gives the same 3 choices');
  // choice i samples with seed + i from the copied KV cache: alone with that seed it is the same
  const one = await client.chat.completions.create({ ...nb, n: 1, seed: 12 });
  ok(one.choices[0].message.content === ta[1],
     'choice 1 of n = 3 (seed 11) = a single request with seed 12 (the KV cache copy is exact)');
  const allLength = a.choices.every((c) => c.finish_reason === 'length');
  ok(allLength ? a.usage.completion_tokens === 18 : a.usage.completion_tokens >= 3,
     `usage counts the tokens of all choices (${a.usage.completion_tokens})`);

  // logprobs: greedy picks the most likely token, which heads top_logprobs
  const lp = await client.chat.completions.create({ ...base1, logprobs: true, top_logprobs: 3 });
  const content = lp.choices[0].logprobs.content;
  ok(content.length === lp.usage.completion_tokens,
     `one logprob entry per generated token (${content.length})`);
  ok(content.every((e) => e.top_logprobs.length === 3 && e.logprob <= 0 &&
     Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-6 &&
     e.top_logprobs[0].token === e.token && e.top_logprobs[1].logprob <= e.top_logprobs[0].logprob),
     'greedy tokens are the top alternative, logprobs sorted and <= 0');
  ok(content.map((e) => e.token).join('') === lp.choices[0].message.content,
     'the entries\' tokens spell the content');

  // stop string: the text is cut before it
  if (text.length >= 2) {
    const stop = text.slice(Math.floor(text.length / 2));
    const s = await client.chat.completions.create({ ...base1, stop: [stop] });
    ok(s.choices[0].message.content === text.slice(0, text.indexOf(stop)) &&
       s.choices[0].finish_reason === 'stop', `stop ${JSON.stringify(stop)} cuts the text`);
  } else {
    console.log(`ok ${++n} # SKIP greedy text too short for a stop string (${JSON.stringify(text)})`);
  }

  // legacy completions: n and logprobs
  const c = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 4,
    temperature: 1, seed: 3, n: 2, logprobs: 2 });
  ok(c.choices.length === 2 && c.choices.every((x) => x.logprobs &&
     x.logprobs.tokens.length === x.logprobs.token_logprobs.length &&
     x.logprobs.top_logprobs.every((t) => Object.keys(t).length <= 2) &&
     x.logprobs.tokens.join('') === x.text),
     'completions: n = 2 with logprobs (tokens spell the text)');

  await badRequest({ model, max_tokens: 4 }, 'messages', 'no messages');
  await badRequest({ model, messages: msgs, n: 9 }, 'n', 'n = 9');
  await badRequest({ model, messages: [{ role: 'user', content: [{ type: 'image_url',
    image_url: { url: 'x' } }] }] }, 'messages[0].content[0]', 'an image part');
  await badRequest({ model, messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role',
    'an unknown role');
  await badRequest({ model, messages: msgs, top_logprobs: 30, logprobs: true }, 'top_logprobs',
    'top_logprobs = 30');
  await badRequest({ model, messages: msgs, temperature: 5 }, 'temperature', 'temperature = 5');
}

main().catch((e) => {
  console.log(`not ok ${++n} - sdk: unexpected error ${e.stack || e}`);
});
