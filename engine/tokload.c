/*
 * engine/tokload.c — building an eng_tok from Hugging Face tokenizer.json, or from GPT-2's
 * original encoder.json + vocab.bpe. Only byte-level BPE pipelines are accepted; anything
 * else (WordPiece, Unigram, byte fallback, other normalizers or pre-tokenizers) is refused
 * with a message naming the field.
 */
#include "config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/err.h"
#include "engine/tokenizer.h"

/* vocab object {token: id} -> array by id (strings borrowed from the JSON). */
static int vocab_array(json_t *vocab, const char *what, const char ***out, int32_t *n, char *err)
{
    const char *key;
    json_t *v;
    json_int_t mx = -1;
    *out = NULL;
    if (!json_is_object(vocab) || json_object_size(vocab) == 0)
        return eng_fail(err, ENG_ETOKENIZER, "%s: model.vocab must be a non-empty object", what);
    json_object_foreach(vocab, key, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (1 << 24))
            return eng_fail(err, ENG_ETOKENIZER, "%s: vocab entry '%s' has no valid id", what, key);
        if (json_integer_value(v) > mx)
            mx = json_integer_value(v);
    }
    const char **a = calloc((size_t)mx + 1, sizeof(*a));
    if (!a)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    json_object_foreach(vocab, key, v)
    {
        json_int_t id = json_integer_value(v);
        if (a[id]) {
            int rc = eng_fail(err, ENG_ETOKENIZER, "%s: id %lld is given to both '%s' and '%s'",
                              what, (long long)id, a[id], key);
            free(a);
            return rc;
        }
        a[id] = key;
    }
    *out = a;
    *n = (int32_t)mx + 1;
    return 0;
}

static int check_empty_str(json_t *m, const char *k, const char *what, char *err)
{
    json_t *v = json_object_get(m, k);
    if (v && !json_is_null(v) && !(json_is_string(v) && !json_string_value(v)[0]))
        return eng_fail(err, ENG_EUNSUPPORTED, "%s: model.%s is not supported", what, k);
    return 0;
}

static int parse_pretok(json_t *pt, const char *what, const char **regex, int *prefix, char *err)
{
    const char *ty = json_string_value(json_object_get(pt, "type"));
    *regex = NULL;
    *prefix = 0;
    if (!ty)
        return eng_fail(err, ENG_EUNSUPPORTED, "%s: a pre_tokenizer is required (byte-level BPE)",
                        what);
    if (!strcmp(ty, "ByteLevel")) {
        json_t *ur = json_object_get(pt, "use_regex");
        *prefix = json_is_true(json_object_get(pt, "add_prefix_space"));
        if (ur && !json_is_true(ur))
            return eng_fail(err, ENG_EUNSUPPORTED,
                            "%s: ByteLevel pre-tokenizer without a regex "
                            "and without a Split before it",
                            what);
        *regex = ENG_TOK_GPT2_REGEX;
        return 0;
    }
    if (strcmp(ty, "Sequence"))
        return eng_fail(err, ENG_EUNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported", what,
                        ty);
    json_t *seq = json_object_get(pt, "pretokenizers"), *p;
    size_t i;
    int have_bl = 0;
    json_array_foreach(seq, i, p)
    {
        const char *t = json_string_value(json_object_get(p, "type"));
        if (t && !strcmp(t, "Split") && !*regex && !have_bl) {
            json_t *pat = json_object_get(p, "pattern");
            const char *re = json_string_value(json_object_get(pat, "Regex"));
            const char *beh = json_string_value(json_object_get(p, "behavior"));
            if (!re || !beh || strcmp(beh, "Isolated") ||
                json_is_true(json_object_get(p, "invert")))
                return eng_fail(err, ENG_EUNSUPPORTED,
                                "%s: only Split{Regex, Isolated, invert "
                                "false} is supported",
                                what);
            *regex = re;
        } else if (t && !strcmp(t, "ByteLevel") && !have_bl) {
            have_bl = 1;
            *prefix = json_is_true(json_object_get(p, "add_prefix_space"));
            if (json_is_true(json_object_get(p, "use_regex"))) {
                if (*regex)
                    return eng_fail(err, ENG_EUNSUPPORTED,
                                    "%s: Split followed by a ByteLevel "
                                    "with use_regex is not supported",
                                    what);
                *regex = ENG_TOK_GPT2_REGEX;
            }
        } else {
            return eng_fail(err, ENG_EUNSUPPORTED,
                            "%s: pre_tokenizer step %zu ('%s') is not "
                            "supported",
                            what, i, t ? t : "?");
        }
    }
    if (!have_bl || !*regex)
        return eng_fail(err, ENG_EUNSUPPORTED,
                        "%s: pre_tokenizer must end in ByteLevel after a "
                        "regex Split",
                        what);
    return 0;
}

static int parse_norm(json_t *n, const char *what, int *nfc, char *err)
{
    *nfc = 0;
    if (!n || json_is_null(n))
        return 0;
    const char *ty = json_string_value(json_object_get(n, "type"));
    if (ty && !strcmp(ty, "NFC")) {
        *nfc = 1;
        return 0;
    }
    if (ty && !strcmp(ty, "Sequence")) {
        json_t *a = json_object_get(n, "normalizers"), *x;
        size_t i;
        json_array_foreach(a, i, x)
        {
            int sub;
            int rc = parse_norm(x, what, &sub, err);
            if (rc)
                return rc;
            *nfc |= sub;
        }
        return 0;
    }
    return eng_fail(err, ENG_EUNSUPPORTED, "%s: normalizer '%s' is not supported (NFC only)", what,
                    ty ? ty : "?");
}

int eng_tok_load_json(const char *path, struct eng_tok **out, char *err)
{
    char buf[4096];
    struct stat sb;
    json_error_t je;
    struct eng_tok_spec sp = {0};
    const char **vocab = NULL, **merges = NULL;
    char **mbuf = NULL;
    struct eng_tok_added *added = NULL;
    json_t *root;
    int rc = 0;

    *out = NULL;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        snprintf(buf, sizeof(buf), "%s/tokenizer.json", path);
    else
        snprintf(buf, sizeof(buf), "%s", path);
    root = json_load_file(buf, 0, &je);
    if (!root)
        return eng_fail(err, ENG_ETOKENIZER, "cannot read '%s': %s (line %d)", buf, je.text,
                        je.line);
    json_t *model = json_object_get(root, "model");
    const char *mt = json_string_value(json_object_get(model, "type"));
    if (!json_is_object(model) || (mt && strcmp(mt, "BPE"))) {
        rc = eng_fail(err, ENG_EUNSUPPORTED, "'%s': model type '%s' is not supported (BPE only)",
                      buf, mt ? mt : "?");
        goto out;
    }
    if (json_is_true(json_object_get(model, "byte_fallback"))) {
        rc = eng_fail(err, ENG_EUNSUPPORTED, "'%s': BPE byte_fallback is not supported", buf);
        goto out;
    }
    if ((rc = check_empty_str(model, "continuing_subword_prefix", buf, err)) ||
        (rc = check_empty_str(model, "end_of_word_suffix", buf, err)) ||
        (rc = vocab_array(json_object_get(model, "vocab"), buf, &vocab, &sp.n_vocab, err)) ||
        (rc = parse_norm(json_object_get(root, "normalizer"), buf, &sp.nfc, err)) ||
        (rc = parse_pretok(json_object_get(root, "pre_tokenizer"), buf, &sp.regex,
                           &sp.add_prefix_space, err)))
        goto out;
    json_t *jm = json_object_get(model, "merges"), *x;
    if (!json_is_array(jm)) {
        rc = eng_fail(err, ENG_ETOKENIZER, "'%s': model.merges must be an array", buf);
        goto out;
    }
    size_t nm = json_array_size(jm), i;
    merges = calloc(nm + 1, sizeof(*merges));
    mbuf = calloc(nm + 1, sizeof(*mbuf));
    if (!merges || !mbuf) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto out;
    }
    json_array_foreach(jm, i, x)
    {
        if (json_is_string(x)) {
            merges[i] = json_string_value(x);
        } else if (json_is_array(x) && json_array_size(x) == 2 &&
                   json_is_string(json_array_get(x, 0)) && json_is_string(json_array_get(x, 1))) {
            const char *a = json_string_value(json_array_get(x, 0)),
                       *b = json_string_value(json_array_get(x, 1));
            size_t la = strlen(a), lb = strlen(b);
            mbuf[i] = malloc(la + lb + 2);
            if (!mbuf[i]) {
                rc = eng_fail(err, ENG_ENOMEM, "out of memory");
                goto out;
            }
            memcpy(mbuf[i], a, la);
            mbuf[i][la] = ' ';
            memcpy(mbuf[i] + la + 1, b, lb + 1);
            merges[i] = mbuf[i];
        } else {
            rc = eng_fail(err, ENG_ETOKENIZER, "'%s': merge %zu is neither \"a b\" nor [a, b]", buf,
                          i);
            goto out;
        }
    }
    sp.merges = merges;
    sp.n_merges = (int32_t)nm;
    json_t *ja = json_object_get(root, "added_tokens");
    size_t na = json_array_size(ja);
    added = calloc(na + 1, sizeof(*added));
    if (!added) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto out;
    }
    json_array_foreach(ja, i, x)
    {
        json_t *id = json_object_get(x, "id");
        const char *c = json_string_value(json_object_get(x, "content"));
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= (1 << 24) || !c || !c[0]) {
            rc = eng_fail(err, ENG_ETOKENIZER,
                          "'%s': added_tokens[%zu] needs an id and a "
                          "non-empty content",
                          buf, i);
            goto out;
        }
        added[i] = (struct eng_tok_added){c, (int32_t)json_integer_value(id),
                                          json_is_true(json_object_get(x, "special"))};
    }
    sp.added = added;
    sp.n_added = (int32_t)na;
    sp.vocab = vocab;
    rc = eng_tok_create(&sp, out, err);
    if (rc) {
        char tmp[ENG_ERR_LEN];
        snprintf(tmp, sizeof(tmp), "%s", err);
        snprintf(err, ENG_ERR_LEN, "'%.200s': %.300s", buf, tmp);
    }
out:
    if (mbuf)
        for (size_t k = 0; k < nm; k++)
            free(mbuf[k]);
    free(mbuf);
    free(merges);
    free(vocab);
    free(added);
    json_decref(root);
    return rc;
}

int eng_tok_load_gpt2(const char *encoder_json, const char *vocab_bpe, struct eng_tok **out,
                      char *err)
{
    json_error_t je;
    struct eng_tok_spec sp = {0};
    const char **vocab = NULL;
    char **lines = NULL, *text = NULL;
    size_t nl = 0, cap = 0;
    int rc;
    FILE *f = NULL;
    struct eng_tok_added eot = {"<|endoftext|>", 50256, 1};

    *out = NULL;
    json_t *root = json_load_file(encoder_json, 0, &je);
    if (!root)
        return eng_fail(err, ENG_ETOKENIZER, "cannot read '%s': %s (line %d)", encoder_json,
                        je.text, je.line);
    if ((rc = vocab_array(root, encoder_json, &vocab, &sp.n_vocab, err)))
        goto out;
    f = fopen(vocab_bpe, "r");
    if (!f) {
        rc = eng_fail(err, ENG_EIO, "cannot open '%s'", vocab_bpe);
        goto out;
    }
    char *line = NULL;
    size_t lcap = 0;
    ssize_t l;
    while ((l = getline(&line, &lcap, f)) >= 0) {
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
            line[--l] = 0;
        if (l == 0 || !strncmp(line, "#version", 8))
            continue;
        if (nl == cap) {
            cap = cap ? 2 * cap : 1024;
            char **p = realloc(lines, cap * sizeof(*p));
            if (!p) {
                free(line);
                rc = eng_fail(err, ENG_ENOMEM, "out of memory");
                goto out;
            }
            lines = p;
        }
        lines[nl] = strdup(line);
        if (!lines[nl++]) {
            free(line);
            rc = eng_fail(err, ENG_ENOMEM, "out of memory");
            goto out;
        }
    }
    free(line);
    sp.vocab = vocab;
    sp.merges = (const char *const *)lines;
    sp.n_merges = (int32_t)nl;
    sp.regex = ENG_TOK_GPT2_REGEX;
    if (eot.id < sp.n_vocab && vocab[eot.id] && !strcmp(vocab[eot.id], eot.content)) {
        sp.added = &eot;
        sp.n_added = 1;
    }
    rc = eng_tok_create(&sp, out, err);
out:
    if (f)
        fclose(f);
    for (size_t i = 0; i < nl; i++)
        free(lines[i]);
    free(lines);
    free(text);
    free(vocab);
    json_decref(root);
    return rc;
}
