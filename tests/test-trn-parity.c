/*
 * tests/test-trn-parity.c — the trainer against independent references:
 *  - its forward against the engine's FP forward (same checkpoint) and against the PyTorch
 *    BitLinear+SubLN student logits of tools/make_engine_fixtures.py;
 *  - one BitDistill step (CE + lambda*LD + gamma*AD, BitLinear with STE, SubLN) against
 *    tools/make_train_fixtures.py: every loss, the gradient of every student tensor, and the
 *    weights after 3 AdamW steps (warm-up + cosine lr, clipping, decoupled weight decay).
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "engine/model.h"
#include "engine/student.h"
#include "tests/tap.h"
#include "train/model.h"
#include "train/step.h"

#define LOSS_TOL 1e-4 /* relative error of each loss */
#define GRAD_TOL 1e-3 /* normalised error |a-b|/|b| of each gradient tensor */
#define ADAM_TOL 1e-4 /* normalised error of each tensor after 3 AdamW steps */
#define FWD_TOL 1e-4  /* max abs logit error vs the engine / PyTorch */

static char pbuf[4096];

static const char *fx(const char *sub, const char *rel)
{
    const char *top = getenv("top_srcdir");
    snprintf(pbuf, sizeof(pbuf), "%s/tests/fixtures/%s/%s", top ? top : ".", sub, rel);
    return pbuf;
}

static float *read_f32(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *b = malloc((size_t)sz);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (n)
        *n = (size_t)sz / sizeof(float);
    return b;
}

/* |a-b| / max(|b|, tiny) over n floats */
static double nerr(const float *a, const float *b, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return sqrt(d) / (sqrt(s) > 1e-30 ? sqrt(s) : 1e-30);
}

static double maxabs(const float *a, const float *b, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++)
        e = fmax(e, fabs((double)a[i] - b[i]));
    return e;
}

static void first_mismatches(const float *a, const float *b, size_t n)
{
    int shown = 0;
    for (size_t i = 0; i < n && shown < 4; i++)
        if (fabs((double)a[i] - b[i]) > 1e-3 * (fabs(b[i]) + 1e-3)) {
            TAP_DIAG("  [%zu] got %.7g want %.7g", i, a[i], b[i]);
            shown++;
        }
}

/* ---------------------------------------------------------------- forward vs engine */

static void fwd_vs_engine(const char *name)
{
    char err[ENG_ERR_LEN] = "";
    struct trn_model *t = NULL;
    struct eng_model *e = NULL;
    struct eng_ctx *c = NULL;
    int32_t tok[13] = {5, 17, 3, 99, 42, 7, 0, 1, 2, 64, 33, 12, 8};
    int rc = trn_model_load_hf(fx("engine", name), &t, err);
    if (!TAP_OK(rc == 0, "%s: trainer loads the checkpoint (%s)", name, err))
        return;
    rc = eng_model_load_hf(fx("engine", name), &e, err);
    int V = trn_model_config(t)->vocab;
    float *lg = malloc((size_t)13 * V * sizeof(float));
    if (!rc)
        rc = eng_ctx_create(e, 16, &c);
    if (!rc)
        rc = eng_ctx_forward(c, tok, 13, lg, 1);
    int rt = trn_model_forward(t, tok, 1, 13);
    double d = rc || rt ? 1e9 : maxabs(trn_model_logits(t), lg, (size_t)13 * V);
    TAP_OK(d < FWD_TOL, "%s: trainer forward == engine forward, max abs err %.3g < %g", name, d,
           FWD_TOL);
    /* B=2 rows of the same tokens give the same logits (batch indexing) */
    int32_t tok2[26];
    memcpy(tok2, tok, sizeof(tok));
    memcpy(tok2 + 13, tok, sizeof(tok));
    rt = trn_model_forward(t, tok2, 2, 13);
    d = rc || rt ? 1e9 : maxabs(trn_model_logits(t) + (size_t)13 * V, lg, (size_t)13 * V);
    TAP_OK(d < FWD_TOL, "%s: second row of a batch of 2, max abs err %.3g", name, d);
    /* The engine over the trainer's parameters in place (what evaluation uses): the same fp32
     * weights, so the same logits to the bit. */
    struct eng_model *em = NULL;
    struct eng_ctx *cm = NULL;
    float *lm = malloc((size_t)13 * V * sizeof(float));
    int rm = trn_model_engine(t, &em, err);
    if (!rm)
        rm = eng_ctx_create(em, 16, &cm);
    if (!rm)
        rm = eng_ctx_forward(cm, tok, 13, lm, 1);
    d = rc || rm ? 1e9 : maxabs(lm, lg, (size_t)13 * V);
    TAP_OK(d == 0,
           "%s: engine over the trainer's parameters == engine from the file, max abs "
           "diff %.3g (%s)",
           name, d, rm ? err : "");
    eng_ctx_free(cm);
    eng_model_free(em);
    free(lm);
    free(lg);
    eng_ctx_free(c);
    eng_model_free(e);
    trn_model_free(t);
}

/* BitLinear + SubLN forward vs the PyTorch student of the engine fixtures (fp32 head). */
static void fwd_student(void)
{
    char err[ENG_ERR_LEN] = "";
    struct trn_model *t = NULL;
    json_t *refs = json_load_file(fx("engine", "refs.json"), 0, NULL);
    json_t *r = json_object_get(json_object_get(refs, "models"), "qwen3-student");
    json_t *jt = json_object_get(r, "tokens");
    int n = (int)json_array_size(jt), rc;
    int32_t tok[64];
    size_t nr = 0;
    for (int i = 0; i < n && i < 64; i++)
        tok[i] = (int32_t)json_integer_value(json_array_get(jt, (size_t)i));
    float *ref = read_f32(fx("engine", "qwen3-student.fphead.bin"), &nr);
    rc = trn_model_load_hf(fx("engine", "qwen3-student"), &t, err);
    if (TAP_OK(rc == 0 && ref && n > 0 && n <= 64, "student fixture loads (%s)", err)) {
        trn_model_set_quant(t, 1);
        rc = trn_model_forward(t, tok, 1, n);
        int V = trn_model_config(t)->vocab;
        double d = rc || nr != (size_t)n * V ? 1e9 : maxabs(trn_model_logits(t), ref, nr);
        TAP_OK(d < FWD_TOL * 10, "BitLinear+SubLN forward vs PyTorch student: max abs err %.3g", d);
        /* The student evaluation's path: the engine over the latent weights in place, made
         * ternary with its INT8 head, against PyTorch's INT8-head student. */
        struct eng_model *fp = NULL, *st = NULL;
        struct eng_ctx *c = NULL;
        size_t nq = 0;
        float *q8 = read_f32(fx("engine", "qwen3-student.q8head_aq.bin"), &nq);
        float *lg = malloc((size_t)n * V * sizeof(float));
        rc = trn_model_engine(t, &fp, err);
        if (!rc)
            rc = eng_student_from_fp(fp, ENG_HEAD_Q8, &st, err);
        if (!rc)
            rc = eng_ctx_create(st, n, &c);
        if (!rc)
            rc = eng_ctx_forward(c, tok, n, lg, 1);
        d = rc || !q8 || nq != (size_t)n * V ? 1e9 : maxabs(lg, q8, nq);
        TAP_OK(d < 2e-2,
               "engine student over the trainer's latent weights vs PyTorch INT8-head "
               "student: max abs err %.3g (%s)",
               d, rc ? err : "");
        eng_ctx_free(c);
        eng_model_free(st);
        eng_model_free(fp);
        free(lg);
        free(q8);
    }
    free(ref);
    trn_model_free(t);
    json_decref(refs);
}

/* ---------------------------------------------------------------- BitDistill step vs PyTorch */

static json_t *ref;
static float *refbin;

static const float *arr(const char *name, size_t *n)
{
    json_t *a = json_object_get(json_object_get(ref, "arrays"), name);
    if (!a)
        return NULL;
    if (n)
        *n = (size_t)json_integer_value(json_object_get(a, "n"));
    return refbin + json_integer_value(json_object_get(a, "off"));
}

static void load_case(const char *cn, struct trn_loss_cfg *lc)
{
    json_t *c = json_object_get(json_object_get(ref, "cases"), cn);
    lc->lambda = (float)json_number_value(json_object_get(c, "lambda"));
    lc->gamma = (float)json_number_value(json_object_get(c, "gamma"));
    lc->tau = (float)json_number_value(json_object_get(c, "tau"));
    lc->layer = (int)json_integer_value(json_object_get(c, "layer"));
    lc->split_heads = (int)json_integer_value(json_object_get(c, "split_heads"));
    lc->rel = strcmp(json_string_value(json_object_get(c, "rel")), "cosine") ? TRN_REL_SCALED
                                                                             : TRN_REL_COSINE;
    lc->t_r = (float)json_number_value(json_object_get(c, "t_r"));
}

static int load_pair(struct trn_model **s, struct trn_model **t)
{
    char err[ENG_ERR_LEN] = "";
    int rc = trn_model_load_hf(fx("train", "student"), s, err);
    if (!rc)
        rc = trn_model_load_hf(fx("train", "teacher"), t, err);
    if (rc)
        TAP_DIAG("cannot load the train fixtures: %s", err);
    if (!rc)
        trn_model_set_quant(*s, 1);
    return rc;
}

static void step_case(const char *cn, struct trn_batch *b)
{
    struct trn_model *s = NULL, *t = NULL;
    struct trn_loss_cfg lc;
    struct trn_losses L;
    char err[ENG_ERR_LEN] = "", key[160];
    load_case(cn, &lc);
    if (load_pair(&s, &t)) {
        TAP_OK(0, "%s: models load", cn);
        return;
    }
    TAP_OK(trn_model_has_subln(s) && !trn_model_has_subln(t),
           "%s: student has SubLN, teacher "
           "not",
           cn);
    trn_model_zero_grad(s);
    int rc = trn_step_losses(s, t, b, &lc, 1, 1.0f, &L, err);
    TAP_OK(rc == 0, "%s: step runs (%s)", cn, err);
    snprintf(key, sizeof(key), "%s.losses", cn);
    const float *rl = arr(key, NULL);
    double got[4] = {L.ce, L.ld, L.ad, L.loss};
    const char *ln[4] = {"CE", "LD", "AD", "total"};
    for (int i = 0; i < 4; i++) {
        double re = fabs(got[i] - rl[i]) / fabs(rl[i]);
        TAP_OK(re < LOSS_TOL, "%s: %s %.7g vs PyTorch %.7g (rel err %.2g)", cn, ln[i], got[i],
               (double)rl[i], re);
    }
    json_t *names = json_object_get(ref, "tensors");
    for (size_t i = 0; i < json_array_size(names); i++) {
        const char *nm = json_string_value(json_array_get(names, i));
        const struct trn_tensor *tt = trn_model_find(s, nm);
        size_t n = 0;
        snprintf(key, sizeof(key), "%s.grad.%s", cn, nm);
        const float *rg = arr(key, &n);
        if (!tt || !rg || tt->n != n) {
            TAP_OK(0, "%s: gradient of %s present with %zu elements", cn, nm, n);
            continue;
        }
        const float *g = trn_model_grads(s) + tt->off;
        double e = nerr(g, rg, n);
        if (!TAP_OK(e < GRAD_TOL, "%s: grad %s normalised err %.3g < %g", cn, nm, e, GRAD_TOL))
            first_mismatches(g, rg, n);
    }
    trn_model_free(s);
    trn_model_free(t);
}

static void adam_case(struct trn_batch *b)
{
    struct trn_model *s = NULL, *t = NULL;
    struct trn_loss_cfg lc;
    struct trn_losses L;
    char err[ENG_ERR_LEN] = "", key[160];
    json_t *a = json_object_get(ref, "adam");
    struct trn_adamw_cfg ac = {
        .lr = (float)json_number_value(json_object_get(a, "lr")),
        .min_lr = (float)json_number_value(json_object_get(a, "min_lr")),
        .beta1 = (float)json_number_value(json_object_get(a, "beta1")),
        .beta2 = (float)json_number_value(json_object_get(a, "beta2")),
        .eps = (float)json_number_value(json_object_get(a, "eps")),
        .weight_decay = (float)json_number_value(json_object_get(a, "weight_decay")),
        .clip = (float)json_number_value(json_object_get(a, "clip")),
        .warmup = (long)json_integer_value(json_object_get(a, "warmup")),
        .total = (long)json_integer_value(json_object_get(a, "total")),
    };
    int steps = (int)json_integer_value(json_object_get(a, "steps"));
    load_case("cosine", &lc);
    if (load_pair(&s, &t)) {
        TAP_OK(0, "adam: models load");
        return;
    }
    size_t np = trn_model_nparams(s);
    float *m = calloc(np, sizeof(float)), *v = calloc(np, sizeof(float));
    const float *rlr = arr("adam.lrs", NULL), *rloss = arr("adam.losses", NULL);
    for (int k = 0; k < steps; k++) {
        float lr = trn_lr_at(&ac, k);
        TAP_OK(fabsf(lr - rlr[k]) <= 1e-6f * rlr[k], "adam step %d: lr %.6g == %.6g", k, lr,
               (double)rlr[k]);
        trn_model_zero_grad(s);
        int rc = trn_step_losses(s, t, b, &lc, 1, 1.0f, &L, err);
        double re = fabs(L.loss - rloss[k]) / fabs(rloss[k]);
        TAP_OK(rc == 0 && re < LOSS_TOL, "adam step %d: loss %.7g vs %.7g (rel %.2g)", k, L.loss,
               (double)rloss[k], re);
        trn_adamw_update(s, m, v, k + 1, lr, &ac, NULL);
    }
    json_t *names = json_object_get(ref, "tensors");
    for (size_t i = 0; i < json_array_size(names); i++) {
        const char *nm = json_string_value(json_array_get(names, i));
        const struct trn_tensor *tt = trn_model_find(s, nm);
        size_t n = 0;
        snprintf(key, sizeof(key), "adam.after.%s", nm);
        const float *rw = arr(key, &n);
        if (!tt || !rw || tt->n != n) {
            TAP_OK(0, "adam: %s present", nm);
            continue;
        }
        const float *w = trn_model_params(s) + tt->off;
        double e = nerr(w, rw, n);
        if (!TAP_OK(e < ADAM_TOL, "after %d AdamW steps: %s normalised err %.3g < %g", steps, nm, e,
                    ADAM_TOL))
            first_mismatches(w, rw, n);
    }
    free(m);
    free(v);
    trn_model_free(s);
    trn_model_free(t);
}

/* A target id past the vocabulary fails the step with EINVAL naming it (CE would read past
 * the row's logits), and the same models then step normally. */
static void bad_target_case(struct trn_batch *b)
{
    struct trn_model *s = NULL, *t = NULL;
    struct trn_loss_cfg lc;
    struct trn_losses L;
    char err[ENG_ERR_LEN] = "";
    load_case("cosine", &lc);
    if (load_pair(&s, &t)) {
        TAP_OK(0, "bad target: models load");
        return;
    }
    int V = trn_model_config(s)->vocab, n = b->B * b->T, keep = b->target[n - 1];
    b->target[n - 1] = V;
    int rc = trn_step_losses(s, t, b, &lc, 1, 1.0f, &L, err);
    TAP_OK(rc == ENG_EINVAL && strstr(err, "target id") && strstr(err, "outside the vocabulary"),
           "bad target: id %d of vocabulary %d fails with EINVAL (%s)", V, V, err);
    b->target[n - 1] = keep;
    trn_model_zero_grad(s);
    rc = trn_step_losses(s, t, b, &lc, 1, 1.0f, &L, err);
    TAP_OK(rc == 0 && isfinite(L.loss), "bad target: the models then step (loss %.6g) %s", L.loss,
           rc ? err : "");
    trn_model_free(s);
    trn_model_free(t);
}

int main(void)
{
    fwd_vs_engine("qwen3-f32");
    fwd_vs_engine("llama-f32");
    fwd_student();

    ref = json_load_file(fx("train", "ref.json"), 0, NULL);
    refbin = read_f32(fx("train", "ref.bin"), NULL);
    if (!ref || !refbin)
        TAP_BAIL("missing tests/fixtures/train/ref.json or ref.bin");
    int B = (int)json_integer_value(json_object_get(ref, "B"));
    int T = (int)json_integer_value(json_object_get(ref, "T"));
    int32_t *tok = malloc((size_t)B * T * sizeof(int32_t)), *tg = malloc((size_t)B * T * 4);
    int32_t len[8];
    const float *ft = arr("tok", NULL), *fg = arr("target", NULL);
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int32_t)ft[i];
        tg[i] = (int32_t)fg[i];
    }
    for (int i = 0; i < B; i++)
        len[i] = T;
    struct trn_batch b = {.B = B, .T = T, .tok = tok, .target = tg, .len = len};
    step_case("cosine", &b);
    step_case("scaled_all", &b);
    adam_case(&b);
    bad_target_case(&b);
    free(tok);
    free(tg);
    free(refbin);
    json_decref(ref);
    return tap_done();
}
