// tests/npm/hf-bpe-check.cjs — Hugging Face `tokenizers` (Rust core, Node bindings; installed
// here by deploy/setup.d/npm-tokenizers.sh) as the reference for tests/test-eng-bpetrain.c.
//
//   node hf-bpe-check.cjs TOKENIZER_JSON CASES_JSON [CORPUS_TXT]
//
// CASES_JSON is {"texts": [...], "ids": [[...], ...], "expect": [...]}: the engine's ids for each
// text and the text decoding should give back (its NFC form). Prints one JSON object: how many
// texts HF encodes to other ids (and the first such case), how many it does not decode back to
// the expected text, and, with CORPUS_TXT, the pre-tokenized word counts of that file as HF's
// normalizer + pre-tokenizer make them ({byte-level word: count}).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { Tokenizer } = require('tokenizers');

async function main() {
    const [tokPath, casesPath, corpusPath] = process.argv.slice(2);
    const tok = Tokenizer.fromFile(tokPath);
    const cases = JSON.parse(fs.readFileSync(casesPath, 'utf8'));
    const pkgPath = path.join(__dirname, 'node_modules/tokenizers/package.json');
    const pkg = JSON.parse(fs.readFileSync(pkgPath, 'utf8'));
    const out = {
        tokenizers: pkg.version,
        vocab_size: tok.getVocabSize(true),
        cases: cases.texts.length,
        hf_ids: 0,
        id_mismatch: 0,
        first_mismatch: null,
        decode_mismatch: 0,
        first_decode: null,
    };
    for (let i = 0; i < cases.texts.length; i++) {
        const text = cases.texts[i];
        const enc = await tok.encode(text, null, { addSpecialTokens: false });
        const ids = enc.getIds();
        out.hf_ids += ids.length;
        const want = cases.ids[i];
        const same = ids.length === want.length && ids.every((v, k) => v === want[k]);
        if (!same && out.id_mismatch++ === 0)
            out.first_mismatch = { index: i, text, hf: ids, engine: want };
        const dec = await tok.decode(ids, false);
        if (dec !== cases.expect[i] && out.decode_mismatch++ === 0)
            out.first_decode = { index: i, text, expect: cases.expect[i], decoded: dec };
    }
    if (corpusPath) {
        const text = fs.readFileSync(corpusPath, 'utf8');
        const norm = tok.getNormalizer().normalizeString(text);
        const words = {};
        for (const [w] of tok.getPreTokenizer().preTokenizeString(norm))
            words[w] = (words[w] || 0) + 1;
        out.words = words;
    }
    process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
    process.stdout.write(JSON.stringify({ error: String(e && e.stack ? e.stack : e) }) + '\n');
    process.exit(1);
});
