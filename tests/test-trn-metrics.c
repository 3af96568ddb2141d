/*
 * tests/test-trn-metrics.c — evaluation metrics against known values.
 *
 * ROUGE: values computed by hand (rouge_score rules, no stemmer), worked out in the comments.
 * BLEU: sacrebleu 2.6.0 corpus_bleu / sentence_bleu of the pairs in
 * tests/fixtures/train/metrics.json (tools/make_train_fixtures.py), and 13a tokenizations.
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tap.h"
#include "train/metrics.h"

#define ROUGE_TOL 1e-9
#define BLEU_TOL 1e-6 /* absolute, on the 0..100 scale */

struct rcase {
    const char *pred, *ref;
    double r1, r2, rl, rlsum;
};

/* 1. p = the cat sat on the mat (6), r = the cat was on the mat (6): unigram hits the x2, cat,
 *    on, mat = 5 -> 5/6; bigrams the-cat, on-the, the-mat = 3 of 5 each -> 0.6; LCS
 *    "the cat on the mat" = 5 -> 5/6; one sentence each so Lsum = L.
 * 2. sentences p = [the cat sat][it was happy] (6 tokens), r = [the cat was on the mat][the cat
 *    was happy] (10). R1: hits the, cat, was, happy = 4: P 4/6, R 4/10, F 0.5. R2: the-cat,
 *    was-happy = 2 of 5 and 9: F = 2(2/5)(2/9)/(2/5+2/9) = 2/7. L: LCS "the cat was happy" = 4
 *    -> F 0.5. Lsum: ref sentence 1 unions {the, cat} and {was} -> 3 hits (candidate counts of
 *    the, cat, was drop to 0); sentence 2 unions {the, cat} and {was, happy} -> only happy left
 *    -> 4 hits: F 0.5.
 * 3. case-folded identical -> 1; 4. disjoint -> 0; 5. empty prediction -> 0.
 * 6. p = "a b c\nd e", r = "a b\nc d e": L over "a b c d e" both = 1; Lsum: ref [a b] with
 *    [a b c] -> a b; ref [c d e] unions {c} and {d e} -> c d e: 5 hits -> 1.
 * 7. p = "b a", r = "a b": R1 1, R2 0, L: LCS 1 -> 0.5. */
static const struct rcase RC[] = {
    {"the cat sat on the mat", "the cat was on the mat", 5.0 / 6, 0.6, 5.0 / 6, 5.0 / 6},
    {"the cat sat.\nit was happy.", "the cat was on the mat.\nthe cat was happy.", 0.5, 2.0 / 7,
     0.5, 0.5},
    {"A B C D E F", "a b c d e f", 1, 1, 1, 1},
    {"nothing in common", "totally different words here", 0, 0, 0, 0},
    {"", "a reference", 0, 0, 0, 0},
    {"a b c\nd e", "a b\nc d e", 1, 1, 1, 1},
    {"b a", "a b", 1, 0, 0.5, 0.5},
};

static void rouge(void)
{
    for (size_t i = 0; i < sizeof(RC) / sizeof(RC[0]); i++) {
        struct trn_rouge r;
        int rc = trn_rouge_score(RC[i].pred, RC[i].ref, &r);
        int ok = rc == 0 && fabs(r.r1 - RC[i].r1) < ROUGE_TOL &&
                 fabs(r.r2 - RC[i].r2) < ROUGE_TOL && fabs(r.rl - RC[i].rl) < ROUGE_TOL &&
                 fabs(r.rlsum - RC[i].rlsum) < ROUGE_TOL;
        TAP_OK(ok, "ROUGE case %zu: 1/2/L/Lsum = %.6f %.6f %.6f %.6f (want %.6f %.6f %.6f %.6f)",
               i + 1, r.r1, r.r2, r.rl, r.rlsum, RC[i].r1, RC[i].r2, RC[i].rl, RC[i].rlsum);
    }
}

static void tok13a(void)
{
    static const char *const c[][2] = {
        {"Hello, world.", "Hello , world ."},
        {"It costs $1,200.50 today.", "It costs $ 1,200.50 today ."},
        {"A 3-4 win (really)!", "A 3 - 4 win ( really ) !"},
        {"don't stop-gap &amp; go", "don't stop-gap & go"},
        {"line one\nline two", "line one line two"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        char *t = trn_bleu_tok13a(c[i][0]);
        TAP_OK(t && !strcmp(t, c[i][1]), "13a tokenization %zu: \"%s\" (want \"%s\")", i + 1,
               t ? t : "(null)", c[i][1]);
        free(t);
    }
}

static void bleu(void)
{
    char path[4096];
    const char *top = getenv("top_srcdir");
    snprintf(path, sizeof(path), "%s/tests/fixtures/train/metrics.json", top ? top : ".");
    json_t *m = json_load_file(path, 0, NULL);
    json_t *pairs = json_object_get(m, "pairs"), *sent = json_object_get(m, "bleu_sentence");
    if (!TAP_OK(m && json_array_size(pairs) > 0 && json_object_get(m, "bleu_corpus"),
                "metrics.json has sacrebleu references"))
        return;
    struct trn_bleu_stats corpus = {0};
    for (size_t i = 0; i < json_array_size(pairs); i++) {
        const char *p = json_string_value(json_array_get(json_array_get(pairs, i), 0));
        const char *r = json_string_value(json_array_get(json_array_get(pairs, i), 1));
        struct trn_bleu_stats one = {0};
        trn_bleu_add(&corpus, p, r);
        trn_bleu_add(&one, p, r);
        double want = json_number_value(json_array_get(sent, i)), got = trn_bleu_score(&one, 1);
        TAP_OK(fabs(got - want) < BLEU_TOL, "sentence BLEU %zu: %.6f (sacrebleu %.6f)", i + 1, got,
               want);
    }
    double want = json_number_value(json_object_get(m, "bleu_corpus"));
    double got = trn_bleu_score(&corpus, 0);
    TAP_OK(fabs(got - want) < BLEU_TOL, "corpus BLEU %.6f (sacrebleu %.6f)", got, want);
    struct trn_bleu_stats same = {0};
    trn_bleu_add(&same, "the quick brown fox jumps", "the quick brown fox jumps");
    TAP_OK(fabs(trn_bleu_score(&same, 0) - 100.0) < 1e-9, "identical 5-token pair: BLEU 100");
    json_decref(m);
}

int main(void)
{
    rouge();
    tok13a();
    bleu();
    return tap_done();
}
