/*
 * tests/test-trn-data.c — datasets, task templates and encoding on the real files of
 * ../shared/data (README there): SST-2 in both formats, MNLI/QNLI json, CNN/DM jsonl, a corpus;
 * verbalizer tokens, truncation (the input is cut, never the summary), packing, shuffling.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/err.h"
#include "engine/tokenizer.h"
#include "tests/tap.h"
#include "train/data.h"

static char data[600];

static const char *dp(const char *rel)
{
    static char b[800];
    snprintf(b, sizeof(b), "%s/%s", data, rel);
    return b;
}

static void load(const char *task, const char *rel, size_t max, size_t want_n, int lab0,
                 int want_lab0)
{
    struct trn_task t;
    struct trn_dataset *d = NULL;
    char err[ENG_ERR_LEN] = "";
    trn_task_defaults(task, &t, err);
    int rc = trn_dataset_load(dp(rel), &t, max, &d, err);
    size_t c0 = 0;
    for (size_t i = 0; d && i < d->n; i++)
        c0 += d->ex[i].label == lab0;
    TAP_OK(rc == 0 && d->n == want_n && (want_lab0 < 0 || c0 == (size_t)want_lab0),
           "%s %s: %zu examples (want %zu), %zu with label %d (%s)", task, rel, d ? d->n : 0,
           want_n, c0, lab0, err);
    trn_dataset_free(d);
}

/* Chat JSONL (OpenAI's fine-tuning format) into ChatML examples, one per assistant message of
 * weight 1, and their encoding: the loss (targets >= 0 in a batch) covers the reply and the end
 * token only. The expected strings are Qwen's ChatML written out by hand. */
static void test_chat(const struct eng_tok *tok)
{
    static const char *good =
        "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":\"1+1?\"},{\"role\":\"assistant\",\"content\":\"2\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"and \"},"
        "{\"type\":\"text\",\"text\":\"2+2?\"}]},{\"role\":\"assistant\",\"content\":\"4\"}]}\n"
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\","
        "\"content\":\"skip me\",\"weight\":0},{\"role\":\"user\",\"content\":\"again\"},"
        "{\"role\":\"assistant\",\"content\":\"hello\"}]}\n";
    char path[] = "/tmp/bd-test-chat-XXXXXX.jsonl", err[ENG_ERR_LEN] = "";
    int fd = mkstemps(path, 6);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!TAP_OK(f != NULL, "temporary chat file"))
        return;
    fputs(good, f);
    fclose(f);
    struct trn_task t;
    struct trn_dataset *d = NULL;
    trn_task_defaults("chat", &t, err);
    int rc = trn_dataset_load(path, &t, 0, &d, err);
    TAP_OK(rc == 0 && d->n == 3,
           "two conversations with 2 + 1 weighted assistant messages give "
           "3 examples (%zu; %s)",
           d ? d->n : 0, err);
    if (!rc && d->n == 3) {
        TAP_OK(!strcmp(d->ex[0].text,
                       "<|im_start|>system\nBe brief.<|im_end|>\n"
                       "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n") &&
                   !strcmp(d->ex[0].target, "2"),
               "first turn: the conversation so far in ChatML, then the reply as the target");
        TAP_OK(!strcmp(d->ex[1].text, "<|im_start|>system\nBe brief.<|im_end|>\n"
                                      "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n2"
                                      "<|im_end|>\n<|im_start|>user\nand 2+2?<|im_end|>\n"
                                      "<|im_start|>assistant\n") &&
                   !strcmp(d->ex[1].target, "4"),
               "second turn: earlier replies are context (text parts joined)");
        TAP_OK(!strcmp(d->ex[2].text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
                                      "skip me<|im_end|>\n<|im_start|>user\nagain<|im_end|>\n"
                                      "<|im_start|>assistant\n") &&
                   !strcmp(d->ex[2].target, "hello"),
               "a weight-0 reply is context only, not an example");
        trn_task_resolve(&t, tok, -1, err);
        int32_t *ids = NULL, *pids = NULL;
        int n = 0, np = 0, pn = 0, pnp = 0;
        rc = trn_encode(&t, tok, &d->ex[2], 256, 1, &ids, &n, &np);
        trn_encode(&t, tok, &d->ex[2], 256, 0, &pids, &pn, &pnp);
        char *rep = NULL, *pr = NULL;
        size_t rl = 0, pl = 0;
        if (!rc) {
            eng_tok_decode(tok, ids + np, (size_t)(n - np - 1), 0, &rep, &rl);
            eng_tok_decode(tok, ids, (size_t)np, 0, &pr, &pl);
        }
        TAP_OK(rc == 0 && pn == np && rep && !strcmp(rep, "hello") && ids[n - 1] == t.eos && pr &&
                   !strcmp(pr, d->ex[2].text),
               "encoded: the prompt, then the reply without a leading space (\"%s\") and the end "
               "token %d",
               rep ? rep : "", t.eos);
        free(ids);
        free(pids);
        free(rep);
        free(pr);
    }
    trn_dataset_free(d);
    static const char *const bad[][2] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "no assistant message"},
        {"{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "role must be"},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]}]}",
         "content must be"},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":\"x\",\"weight\":2}]}",
         "weight must be 0 or 1"},
        {"{\"prompt\":\"x\",\"completion\":\"y\"}", "non-empty \"messages\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f = fopen(path, "w");
        fprintf(f, "%s\n%s\n", "{\"messages\":[{\"role\":\"assistant\",\"content\":\"ok\"}]}",
                bad[i][0]);
        fclose(f);
        d = NULL;
        err[0] = 0;
        rc = trn_dataset_load(path, &t, 0, &d, err);
        TAP_OK(rc && strstr(err, ":2:") && strstr(err, bad[i][1]),
               "bad chat line 2 refused, "
               "naming the line and '%s' (%s)",
               bad[i][1], err);
        trn_dataset_free(d);
    }
    unlink(path);
}

/* GLUE's own field names for pair tasks: QNLI {question, sentence}, MRPC/RTE-style {sentence1,
 * sentence2}, QQP-style {question1, question2}: first and second text in that order. */
static void glue_pairs(void)
{
    char err[ENG_ERR_LEN] = "", path[] = "/tmp/bd-trn-data-pairs-XXXXXX.jsonl";
    int fd = mkstemps(path, 6);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!TAP_OK(f != NULL, "temporary pair file"))
        return;
    fputs("{\"question\": \"Who won?\", \"sentence\": \"Ann won.\", \"label\": \"entailment\"}\n"
          "{\"sentence1\": \"A cat.\", \"sentence2\": \"An animal.\", \"label\": 1}\n"
          "{\"question1\": \"Why?\", \"question2\": \"How?\", \"label\": 0}\n",
          f);
    fclose(f);
    struct trn_task t;
    struct trn_dataset *d = NULL;
    trn_task_defaults("qnli", &t, err);
    int rc = trn_dataset_load(path, &t, 0, &d, err);
    TAP_OK(rc == 0 && d->n == 3 && !strcmp(d->ex[0].text, "Who won?") && d->ex[0].text_b &&
               !strcmp(d->ex[0].text_b, "Ann won.") && !strcmp(d->ex[1].text, "A cat.") &&
               !strcmp(d->ex[1].text_b, "An animal.") && !strcmp(d->ex[2].text, "Why?") &&
               !strcmp(d->ex[2].text_b, "How?"),
           "GLUE pair fields: question+sentence, sentence1/2, question1/2 read in order (%s)", err);
    trn_dataset_free(d);
    unlink(path);
}

int main(void)
{
    const char *top = getenv("top_srcdir");
    char err[ENG_ERR_LEN] = "", tokp[600];
    struct stat st;
    snprintf(data, sizeof(data), "%s", tap_data_dir());
    static const char *const needs[] = {"sst2/sentence/stsa.binary.dev",
                                        "sst2/sentence/stsa.binary.train",
                                        "sst2/glue/dev.tsv",
                                        "sst2/glue/train.tsv",
                                        "mnli/validation.json",
                                        "qnli/validation.json",
                                        "cnndm/validation.jsonl",
                                        "corpus/wikitext2/valid.txt"};
    for (size_t i = 0; i < sizeof(needs) / sizeof(needs[0]); i++)
        if (stat(dp(needs[i]), &st)) {
            TAP_SKIP("needs ../shared/data/%s (not at %s; set SHARED_DATA)", needs[i],
                     dp(needs[i]));
            return tap_done();
        }
    /* counts from ../shared/data/README.md; label balances counted with awk/jq */
    load("sst2", "sst2/sentence/stsa.binary.dev", 0, 872, 0, 428);
    load("sst2", "sst2/sentence/stsa.binary.train", 0, 6920, 1, 3610);
    load("sst2", "sst2/glue/dev.tsv", 0, 872, 0, 428);
    load("sst2", "sst2/glue/train.tsv", 1000, 1000, -1, -1);
    /* the GLUE files name their columns differently (train: sentence, dev: content): the text
     * must be the sentence, never the label column */
    {
        struct trn_task t;
        struct trn_dataset *d = NULL;
        trn_task_defaults("sst2", &t, err);
        int rc = trn_dataset_load(dp("sst2/glue/dev.tsv"), &t, 0, &d, err);
        size_t short_texts = 0;
        for (size_t i = 0; d && i < d->n; i++)
            short_texts += strlen(d->ex[i].text) < 3;
        TAP_OK(rc == 0 && d->n && !strcmp(d->ex[0].text, "one long string of cliches .") &&
                   short_texts == 0,
               "glue dev.tsv: texts from the 'content' column ('%s', %zu texts under 3 bytes)",
               d && d->n ? d->ex[0].text : "", short_texts);
        trn_dataset_free(d);
    }
    load("mnli", "mnli/validation.json", 0, 1000, 2, 320); /* contradiction */
    load("qnli", "qnli/validation.json", 0, 1000, 1, 496); /* not_entailment */
    load("cnndm", "cnndm/validation.jsonl", 0, 100, -1, -1);
    glue_pairs();

    snprintf(tokp, sizeof(tokp), "%s/tests/fixtures/train/tok-bytes.json", top ? top : ".");
    struct eng_tok *tok = NULL;
    if (!TAP_OK(eng_tok_load_json(tokp, &tok, err) == 0, "test tokenizer loads (%s)", err))
        return tap_done();
    /* classification: prompt + the verbalizer's first token */
    struct trn_task t;
    trn_task_defaults("sst2", &t, err);
    int rc = trn_task_resolve(&t, tok, -1, err);
    TAP_OK(rc == 0 && t.label_tok[0] != t.label_tok[1] && t.eos == 506,
           "sst2 verbalizers resolve to distinct first tokens %d/%d, EOS %d (%s)", t.label_tok[0],
           t.label_tok[1], t.eos, err);
    struct trn_example e = {.text = "a gripping , funny movie .", .label = 1};
    int32_t *ids = NULL, *pids = NULL;
    int n = 0, np = 0, pn = 0, pnp = 0;
    rc = trn_encode(&t, tok, &e, 64, 1, &ids, &n, &np);
    trn_encode(&t, tok, &e, 64, 0, &pids, &pn, &pnp);
    char *txt = NULL;
    size_t tl = 0;
    if (!rc)
        eng_tok_decode(tok, ids, (size_t)np, 0, &txt, &tl);
    TAP_OK(rc == 0 && n == np + 1 && ids[np] == t.label_tok[1] && pn == np &&
               !memcmp(ids, pids, (size_t)np * sizeof(int32_t)) && txt &&
               !strcmp(txt, "Review: a gripping , funny movie .\nSentiment:"),
           "classification: template filled, prompt + label token (\"%s\")", txt ? txt : "");
    free(ids);
    free(pids);
    free(txt);
    /* truncation: a long review is cut to fit; the label token stays */
    char longt[4000];
    for (int i = 0; i < 3990; i++)
        longt[i] = "abcdefgh "[i % 9];
    longt[3990] = 0;
    e.text = longt;
    rc = trn_encode(&t, tok, &e, 40, 1, &ids, &n, &np);
    TAP_OK(rc == 0 && n <= 40 && n >= 30 && ids[n - 1] == t.label_tok[1],
           "a 4000-byte review is cut to %d <= 40 tokens, label kept", n);
    txt = NULL;
    if (!rc)
        eng_tok_decode(tok, ids, (size_t)np, 0, &txt, &tl);
    TAP_OK(txt && strstr(txt, "\nSentiment:") && !strncmp(txt, "Review: abcdefgh", 16),
           "truncation cuts the input's end, the template's suffix stays");
    free(txt);
    free(ids);
    /* summarization: article cut, summary + EOS kept whole */
    struct trn_task s;
    trn_task_defaults("cnndm", &s, err);
    s.max_target = 12;
    trn_task_resolve(&s, tok, -1, err);
    struct trn_example se = {.text = longt, .target = "police said", .label = -1};
    rc = trn_encode(&s, tok, &se, 60, 1, &ids, &n, &np);
    txt = NULL;
    if (!rc)
        eng_tok_decode(tok, ids + np, (size_t)(n - np - 1), 0, &txt, &tl);
    TAP_OK(rc == 0 && n <= 60 && ids[n - 1] == s.eos && txt && !strcmp(txt, " police said"),
           "summarization: article cut to fit 60, summary \"%s\" + EOS whole", txt ? txt : "");
    free(txt);
    free(ids);
    /* corpus packing */
    struct trn_corpus *c = NULL;
    rc = trn_corpus_load(dp("corpus/wikitext2/valid.txt"), tok, 506, 5000, &c, err);
    TAP_OK(rc == 0 && c->ntok >= 5000 && c->ntok < 5000 + 16384,
           "corpus: %zu tokens for a "
           "5000-token budget (%s)",
           c ? c->ntok : 0, err);
    trn_corpus_free(c);
    /* shuffling: a permutation, deterministic per seed */
    size_t p1[1000], p2[1000], p3[1000];
    int seen[1000] = {0}, perm = 1;
    trn_shuffle(p1, 1000, 42);
    trn_shuffle(p2, 1000, 42);
    trn_shuffle(p3, 1000, 43);
    for (int i = 0; i < 1000; i++)
        seen[p1[i]]++;
    for (int i = 0; i < 1000; i++)
        perm &= seen[i] == 1;
    TAP_OK(perm && !memcmp(p1, p2, sizeof(p1)) && memcmp(p1, p3, sizeof(p1)),
           "shuffle: a permutation, same for the same seed, different for another");
    test_chat(tok);
    /* chat_format "chatml": the sst2 prompt as a ChatML user turn, the answer without its space */
    trn_task_defaults("sst2", &t, err);
    rc = trn_task_chatml(&t, err) || trn_task_resolve(&t, tok, -1, err);
    e.text = "a fine film";
    e.label = 0;
    ids = NULL;
    if (!rc)
        rc = trn_encode(&t, tok, &e, 64, 1, &ids, &n, &np);
    txt = NULL;
    if (!rc)
        eng_tok_decode(tok, ids, (size_t)n, 0, &txt, &tl);
    TAP_OK(rc == 0 && !strcmp(t.words[0], "negative") && txt &&
               !strcmp(txt, "<|im_start|>user\nReview: a fine film\nSentiment:<|im_end|>\n"
                            "<|im_start|>assistant\nn"),
           "chat_format chatml: \"%s\" (prompt + the first token of 'negative')", txt ? txt : "");
    free(ids);
    free(txt);
    /* chat_format "chatml" on a summarization task: the article is the user turn (its end cut to
     * fit), the summary the assistant's reply with no leading space, ended by <|im_end|> */
    eng_tok_free(tok);
    tok = NULL; /* the demo tokenizer: <|im_end|> is one of its special tokens */
    snprintf(tokp, sizeof(tokp), "%s/models/demo/tokenizer.json", top ? top : ".");
    rc = eng_tok_load_json(tokp, &tok, err);
    trn_task_defaults("cnndm", &t, err);
    snprintf(t.template, sizeof(t.template), "Summarize:\n{text}");
    rc = rc || trn_task_chatml(&t, err) || trn_task_resolve(&t, tok, 8189, err);
    int32_t im_end = tok ? eng_tok_find(tok, "<|im_end|>") : -1;
    e.text = "one two three four five six seven eight nine ten eleven twelve";
    e.target = "short";
    ids = NULL;
    txt = NULL;
    if (!rc)
        rc = trn_encode(&t, tok, &e, 20, 1, &ids, &n, &np);
    if (!rc)
        eng_tok_decode(tok, ids, (size_t)np, 0, &txt, &tl);
    TAP_OK(rc == 0 && t.chatml && t.eos == im_end && im_end >= 0 && n <= 20 &&
               ids[n - 1] == im_end && txt &&
               !strncmp(txt, "<|im_start|>user\nSummarize:\none two",
                        strlen("<|im_start|>user\nSummarize:\none two")) &&
               strlen(txt) > 40 &&
               !strcmp(txt + strlen(txt) - 33, "<|im_end|>\n<|im_start|>assistant\n") &&
               !strstr(txt, "twelve"),
           "chat_format chatml, summarization: prompt \"%s\" (article cut, turn kept), eos "
           "<|im_end|> %d",
           txt ? txt : "", (int)im_end);
    free(txt);
    txt = NULL;
    if (!rc)
        eng_tok_decode(tok, ids + np, (size_t)(n - np - 1), 0, &txt, &tl);
    TAP_OK(rc == 0 && txt && !strcmp(txt, "short"), "the reply is \"%s\" (no leading space)",
           txt ? txt : "");
    free(ids);
    free(txt);
    eng_tok_free(tok);
    return tap_done();
}
