/*
 * train/data.c — tasks, dataset readers, example encoding and corpus packing (data.h).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "engine/classify.h"
#include "engine/err.h"
#include "train/data.h"
#include "util/grow.h"

/* ------------------------------------------------------------------ tasks */

static void set_labels(struct trn_task *t, int n, const char *const *names,
                       const char *const *words)
{
    t->nlabels = n;
    for (int i = 0; i < n; i++) {
        snprintf(t->labels[i], sizeof(t->labels[i]), "%s", names[i]);
        snprintf(t->words[i], sizeof(t->words[i]), "%s", words[i]);
    }
}

int trn_task_defaults(const char *name, struct trn_task *t, char *err)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->max_target = 128;
    t->eos = -1;
    if (!strcmp(name, "sst2")) {
        static const char *const n[] = {"negative", "positive"}, *const w[] = {" negative",
                                                                               " positive"};
        t->kind = TRN_TASK_CLS;
        snprintf(t->template, sizeof(t->template), "Review: {text}\nSentiment:");
        set_labels(t, 2, n, w);
    } else if (!strcmp(name, "mnli")) {
        static const char *const n[] = {"entailment", "neutral", "contradiction"};
        static const char *const w[] = {" yes", " maybe", " no"};
        t->kind = TRN_TASK_CLS;
        snprintf(t->template, sizeof(t->template),
                 "Premise: {text}\nHypothesis: {text_b}\nDoes the premise entail the "
                 "hypothesis?");
        set_labels(t, 3, n, w);
    } else if (!strcmp(name, "qnli")) {
        static const char *const n[] = {"entailment", "not_entailment"};
        static const char *const w[] = {" yes", " no"};
        t->kind = TRN_TASK_CLS;
        snprintf(t->template, sizeof(t->template),
                 "Question: {text}\nSentence: {text_b}\nDoes the sentence answer the question?");
        set_labels(t, 2, n, w);
    } else if (!strcmp(name, "cnndm") || !strcmp(name, "summarization")) {
        t->kind = TRN_TASK_SUM;
        snprintf(t->template, sizeof(t->template), "{text}\nTL;DR:");
    } else if (!strcmp(name, "chat")) {
        t->kind = TRN_TASK_SUM;
        t->chat = 1;
        t->max_target = 256;
        snprintf(t->template, sizeof(t->template), "{text}");
    } else if (!strcmp(name, "classification")) {
        t->kind = TRN_TASK_CLS;
        snprintf(t->template, sizeof(t->template), "{text}\nLabel:");
    } else {
        return eng_fail(err, ENG_EINVAL,
                        "unknown task type '%s' (sst2, mnli, qnli, cnndm, chat, "
                        "classification, summarization)",
                        name);
    }
    return 0;
}

/* First token of text, or -1. */
static int32_t first_token(const struct eng_tok *tok, const char *text)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (eng_tok_encode(tok, text, strlen(text), &ids, &n) || n == 0) {
        free(ids);
        return -1;
    }
    int32_t r = ids[0];
    free(ids);
    return r;
}

int trn_task_chatml(struct trn_task *t, char *err)
{
    char tpl[sizeof(t->template)];
    if (t->chat)
        return eng_fail(err, ENG_ECONFIG, "chat_format: a chat task is ChatML already");
    if (snprintf(tpl, sizeof(tpl), "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n",
                 t->template) >= (int)sizeof(tpl))
        return eng_fail(err, ENG_ECONFIG, "chat_format: the task template is too long");
    memcpy(t->template, tpl, sizeof(tpl));
    t->chatml = t->kind == TRN_TASK_SUM;
    for (int i = 0; i < t->nlabels; i++)
        if (t->words[i][0] == ' ')
            memmove(t->words[i], t->words[i] + 1, strlen(t->words[i]));
    return 0;
}

int trn_task_resolve(struct trn_task *t, const struct eng_tok *tok, int eos_id, char *err)
{
    if (!strstr(t->template, "{text}"))
        return eng_fail(err, ENG_ECONFIG, "task template has no {text}: \"%s\"", t->template);
    if (t->kind == TRN_TASK_CLS) {
        if (t->nlabels < 2)
            return eng_fail(err, ENG_ECONFIG, "a classification task needs >= 2 labels");
        for (int i = 0; i < t->nlabels; i++) {
            t->label_tok[i] = first_token(tok, t->words[i]);
            if (t->label_tok[i] < 0)
                return eng_fail(err, ENG_ECONFIG, "label word \"%s\" does not tokenize",
                                t->words[i]);
            for (int j = 0; j < i; j++)
                if (t->label_tok[j] == t->label_tok[i])
                    return eng_fail(err, ENG_ECONFIG,
                                    "label words \"%s\" and \"%s\" start with "
                                    "the same token %d: choose verbalizers that differ in "
                                    "their first token",
                                    t->words[j], t->words[i], (int)t->label_tok[i]);
        }
    }
    t->eos = t->chat || t->chat_tpl || t->chatml ? eng_tok_find(tok, "<|im_end|>") : -1;
    if (t->eos < 0 && t->chat_tpl) /* the end of turn of Llama 3's and Phi's templates */
        t->eos = eng_tok_find(tok, "<|eot_id|>") >= 0 ? eng_tok_find(tok, "<|eot_id|>")
                                                      : eng_tok_find(tok, "<|end|>");
    if (t->eos < 0)
        t->eos = eos_id;
    if (t->eos < 0)
        t->eos = eng_tok_find(tok, "<|endoftext|>");
    if (t->eos < 0)
        t->eos = eng_tok_find(tok, "<|im_end|>");
    if (t->kind == TRN_TASK_SUM && t->eos < 0)
        return eng_fail(err, ENG_ECONFIG,
                        "summarization needs an EOS token (eos_token_id or "
                        "<|endoftext|> in the tokenizer)");
    return 0;
}

/* ------------------------------------------------------------------ datasets */

static int label_of(const struct trn_task *t, json_t *v, const char *what, size_t line, int *label,
                    char *err)
{
    if (json_is_integer(v)) {
        json_int_t k = json_integer_value(v);
        if (k < 0 || k >= t->nlabels)
            return eng_fail(err, ENG_EINVAL, "%s:%zu: label %lld outside the task's %d labels",
                            what, line, (long long)k, t->nlabels);
        *label = (int)k;
        return 0;
    }
    const char *s = json_string_value(v);
    if (s) {
        for (int i = 0; i < t->nlabels; i++)
            if (!strcmp(s, t->labels[i])) {
                *label = i;
                return 0;
            }
        /* "0"/"1" strings */
        char *end;
        long k = strtol(s, &end, 10);
        if (*s && !*end && k >= 0 && k < t->nlabels) {
            *label = (int)k;
            return 0;
        }
        return eng_fail(err, ENG_EINVAL,
                        "%s:%zu: label \"%s\" is not in the task's label set "
                        "(%s, %s%s)",
                        what, line, s, t->labels[0], t->labels[1], t->nlabels > 2 ? ", ..." : "");
    }
    return eng_fail(err, ENG_EINVAL, "%s:%zu: missing or invalid label", what, line);
}

static const char *jstr(json_t *o, const char *const *keys)
{
    for (; *keys; keys++) {
        const char *s = json_string_value(json_object_get(o, *keys));
        if (s)
            return s;
    }
    return NULL;
}

static int push(struct trn_dataset *d, const char *a, const char *b, const char *target, int label)
{
    if (UTIL_GROW(d->ex, d->cap, d->n + 1, 256))
        return ENG_ENOMEM;
    struct trn_example *e = &d->ex[d->n];
    e->text = strdup(a);
    e->text_b = b ? strdup(b) : NULL;
    e->target = target ? strdup(target) : NULL;
    e->label = label;
    if (!e->text || (b && !e->text_b) || (target && !e->target)) {
        free(e->text);
        free(e->text_b);
        free(e->target);
        return ENG_ENOMEM;
    }
    d->n++;
    return 0;
}

/* A message's text: content as a string, or the concatenated "text" of its parts. NULL when it
 * is neither (or a part is not text). Returns a new string. */
static char *chat_content(json_t *c)
{
    if (json_is_string(c))
        return strdup(json_string_value(c));
    if (!json_is_array(c))
        return NULL;
    size_t i, n = 0;
    json_t *p;
    json_array_foreach(c, i, p)
    {
        const char *tx = json_string_value(json_object_get(p, "text"));
        const char *ty = json_string_value(json_object_get(p, "type"));
        if (!tx || (ty && strcmp(ty, "text")))
            return NULL;
        n += strlen(tx);
    }
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    s[0] = 0;
    json_array_foreach(c, i, p) strcat(s, json_string_value(json_object_get(p, "text")));
    return s;
}

/* Append "<|im_start|>ROLE\nCONTENT<|im_end|>\n" (content NULL: the header only) to *buf. */
static int chatml_append(char **buf, size_t *len, const char *role, const char *content)
{
    size_t add = strlen(role) + (content ? strlen(content) : 0) + 32;
    char *nb = realloc(*buf, *len + add);
    if (!nb)
        return ENG_ENOMEM;
    *buf = nb;
    if (content)
        *len += (size_t)snprintf(nb + *len, add, "<|im_start|>%s\n%s<|im_end|>\n", role, content);
    else
        *len += (size_t)snprintf(nb + *len, add, "<|im_start|>%s\n", role);
    return 0;
}

/* A chat record: one example per assistant message (see data.h). */
static int add_chat(struct trn_dataset *d, json_t *o, const char *what, size_t line, char *err)
{
    json_t *msgs = json_object_get(o, "messages"), *m;
    char *conv = NULL;
    size_t i, len = 0, before = d->n;
    int rc = 0;
    if (!json_is_array(msgs) || !json_array_size(msgs))
        return eng_fail(err, ENG_EINVAL,
                        "%s:%zu: a chat record needs a non-empty \"messages\" "
                        "array",
                        what, line);
    json_array_foreach(msgs, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *w = json_object_get(m, "weight");
        char *content = chat_content(json_object_get(m, "content"));
        if (!role || (strcmp(role, "system") && strcmp(role, "developer") && strcmp(role, "user") &&
                      strcmp(role, "assistant")))
            rc = eng_fail(err, ENG_EINVAL,
                          "%s:%zu: message %zu: role must be \"system\", "
                          "\"user\" or \"assistant\"%s%s",
                          what, line, i + 1, role ? ", not " : "", role ? role : "");
        else if (!content)
            rc = eng_fail(err, ENG_EINVAL,
                          "%s:%zu: message %zu: content must be a string or "
                          "an array of text parts (tool calls are not supported)",
                          what, line, i + 1);
        else if (w &&
                 (!json_is_integer(w) || json_integer_value(w) < 0 || json_integer_value(w) > 1))
            rc = eng_fail(err, ENG_EINVAL, "%s:%zu: message %zu: weight must be 0 or 1", what, line,
                          i + 1);
        else if (!strcmp(role, "assistant") && (!w || json_integer_value(w) == 1)) {
            size_t l0 = len;
            rc = chatml_append(&conv, &len, "assistant", NULL);
            if (!rc && (rc = push(d, conv, NULL, content, -1)))
                eng_fail(err, rc, "out of memory");
            len = l0;
            conv[len] = 0;
        }
        if (!rc)
            rc = chatml_append(&conv, &len, !strcmp(role, "developer") ? "system" : role, content);
        free(content);
        if (rc)
            break;
    }
    free(conv);
    if (!rc && d->n == before)
        rc = eng_fail(err, ENG_EINVAL,
                      "%s:%zu: the conversation has no assistant message to "
                      "learn from (with weight 1)",
                      what, line);
    return rc;
}

static int add_record(struct trn_dataset *d, const struct trn_task *t, json_t *o, const char *what,
                      size_t line, char *err)
{
    if (t->chat)
        return json_is_object(o) ? add_chat(d, o, what, line, err)
                                 : eng_fail(err, ENG_EINVAL,
                                            "%s:%zu: a chat record must be a "
                                            "JSON object",
                                            what, line);
    static const char *const ka[] = {"text",      "sentence",  "text_a",  "premise", "question",
                                     "sentence1", "question1", "article", NULL};
    static const char *const kb[] = {"text_b", "hypothesis", "sentence2", "question2", NULL};
    static const char *const ks[] = {"summary", "highlights", NULL};
    const char *a = jstr(o, ka), *b = jstr(o, kb), *s = jstr(o, ks);
    int label = -1, rc;
    if (!json_is_object(o) || !a)
        return eng_fail(err, ENG_EINVAL,
                        "%s:%zu: record has no text field (text, sentence, text_a, premise, "
                        "question, sentence1, question1, article)",
                        what, line);
    /* GLUE's QNLI names its pair {question, sentence}: the question is the first text */
    static const char *const kq[] = {"question", NULL}, *const kqs[] = {"sentence", NULL};
    if (!b && jstr(o, kq) && jstr(o, kqs)) {
        a = jstr(o, kq);
        b = jstr(o, kqs);
    }
    if (t->kind == TRN_TASK_CLS) {
        if ((rc = label_of(t, json_object_get(o, "label"), what, line, &label, err)))
            return rc;
    } else if (!s) {
        return eng_fail(err, ENG_EINVAL, "%s:%zu: record has no summary", what, line);
    }
    if (strstr(t->template, "{text_b}") && !b)
        return eng_fail(err, ENG_EINVAL,
                        "%s:%zu: the task needs a second text (text_b, "
                        "hypothesis, sentence2, question2, or GLUE QNLI's question + sentence)",
                        what, line);
    if ((rc = push(d, a, b, s, label)))
        return eng_fail(err, rc, "out of memory");
    return 0;
}

static int utf8_valid(const char *text)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
    utf8proc_int32_t cp;
    for (size_t len = strlen(text); len > 0;) {
        utf8proc_ssize_t k = utf8proc_iterate(p, (utf8proc_ssize_t)len, &cp);
        if (k <= 0)
            return 0;
        p += k;
        len -= (size_t)k;
    }
    return 1;
}

/* json_pack failed on a row's two fields: either one is not UTF-8 (a format error naming the
 * line) or memory ran out. */
static int pack_fail(const char *path, size_t line, const char *a, const char *b, char *err)
{
    if (!utf8_valid(a) || !utf8_valid(b))
        return eng_fail(err, ENG_EFORMAT, "%s:%zu: not valid UTF-8 text", path, line);
    return eng_fail(err, ENG_ENOMEM, "out of memory");
}

/* The whole file, NUL-terminated (malloc'd), or NULL with errno (ENOMEM when out of memory). */
static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0, r;
    char *b = malloc(cap + 1);
    while (b && (r = fread(b + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            char *nb = realloc(b, cap * 2 + 1);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!b) {
        errno = ENOMEM;
        return NULL;
    }
    b[len] = 0;
    *n = len;
    return b;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int trn_dataset_load(const char *path, const struct trn_task *t, size_t max_examples,
                     struct trn_dataset **out, char *err)
{
    size_t len = 0, line = 0;
    int rc = 0;
    *out = NULL;
    char *buf = read_all(path, &len);
    if (!buf && errno == ENOMEM)
        return eng_fail(err, ENG_ENOMEM, "out of memory reading dataset '%s'", path);
    if (!buf)
        return eng_fail(err, ENG_EIO, "cannot read dataset '%s'", path);
    struct trn_dataset *d = calloc(1, sizeof(*d));
    if (!d) {
        free(buf);
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    }
    if (ends_with(path, ".json")) {
        json_error_t je;
        json_t *root = json_loads(buf, 0, &je), *v;
        const char *key;
        size_t i;
        if (!root) {
            rc = eng_fail(err, ENG_EFORMAT, "%s:%d: %s", path, je.line, je.text);
        } else if (json_is_object(root)) {
            json_object_foreach(root, key, v)
            {
                if ((rc = add_record(d, t, v, path, ++line, err)) ||
                    (max_examples && d->n >= max_examples))
                    break;
            }
        } else if (json_is_array(root)) {
            json_array_foreach(root, i, v)
            {
                if ((rc = add_record(d, t, v, path, ++line, err)) ||
                    (max_examples && d->n >= max_examples))
                    break;
            }
        } else {
            rc = eng_fail(err, ENG_EFORMAT, "%s: expected an object or array of records", path);
        }
        json_decref(root);
    } else {
        int tsv = ends_with(path, ".tsv"), jsonl = ends_with(path, ".jsonl");
        int col_text = 0, col_label = 1;
        char *save = NULL;
        for (char *ln = strtok_r(buf, "\n", &save); ln && !rc; ln = strtok_r(NULL, "\n", &save)) {
            line++;
            size_t l = strlen(ln);
            if (l && ln[l - 1] == '\r')
                ln[--l] = 0;
            if (!l)
                continue;
            if (jsonl) {
                json_error_t je;
                json_t *o = json_loads(ln, 0, &je);
                if (!o)
                    rc = eng_fail(err, ENG_EFORMAT, "%s:%zu: %s", path, line, je.text);
                else
                    rc = add_record(d, t, o, path, line, err);
                json_decref(o);
            } else if (tsv) {
                char *c[8] = {0};
                int nc = 0;
                for (char *p = ln; p && nc < 8; nc++) {
                    c[nc] = p;
                    p = strchr(p, '\t');
                    if (p)
                        *p++ = 0;
                }
                if (line == 1) { /* header: a text column by name, else the one non-label */
                    int found = -1;
                    for (int k = 0; k < nc; k++) {
                        if (!strcmp(c[k], "sentence") || !strcmp(c[k], "text") ||
                            !strcmp(c[k], "content") || !strcmp(c[k], "review"))
                            found = k;
                        if (!strcmp(c[k], "label"))
                            col_label = k;
                    }
                    if (found < 0 && nc == 2)
                        found = col_label == 0 ? 1 : 0;
                    if (found < 0 || found == col_label) {
                        rc = eng_fail(err, ENG_EFORMAT,
                                      "%s:1: the header names no text column "
                                      "(sentence, text, content or review) besides label",
                                      path);
                        break;
                    }
                    col_text = found;
                    continue;
                }
                if (col_text >= nc || col_label >= nc) {
                    rc = eng_fail(err, ENG_EFORMAT, "%s:%zu: expected the header's columns", path,
                                  line);
                    break;
                }
                json_t *o = json_pack("{s:s,s:s}", "text", c[col_text], "label", c[col_label]);
                rc = o ? add_record(d, t, o, path, line, err)
                       : pack_fail(path, line, c[col_text], c[col_label], err);
                json_decref(o);
            } else { /* "label text" (SST-2 sentence files) */
                if (t->kind != TRN_TASK_CLS || !isdigit((unsigned char)ln[0]) ||
                    (ln[1] != ' ' && ln[1] != '\t')) {
                    rc = eng_fail(err, ENG_EFORMAT,
                                  "%s:%zu: expected \"LABEL text\" (or use "
                                  ".jsonl/.json/.tsv)",
                                  path, line);
                    break;
                }
                char lab[2] = {ln[0], 0};
                json_t *o = json_pack("{s:s,s:s}", "text", ln + 2, "label", lab);
                rc = o ? add_record(d, t, o, path, line, err)
                       : pack_fail(path, line, ln + 2, lab, err);
                json_decref(o);
            }
            if (max_examples && d->n >= max_examples)
                break;
        }
    }
    free(buf);
    if (!rc && d->n == 0)
        rc = eng_fail(err, ENG_EINVAL, "dataset '%s' has no examples", path);
    if (rc) {
        trn_dataset_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void trn_dataset_free(struct trn_dataset *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->ex[i].text);
        free(d->ex[i].text_b);
        free(d->ex[i].target);
    }
    free(d->ex);
    free(d);
}

/* ------------------------------------------------------------------ encoding */

/* prompt_format "chat_template": the summary's tokens as the template renders them after the
 * generation prompt (the reply and the template's end of turn), the summary cut from its end
 * until they fit max_target. The rendering is taken with the whole input as the user turn. */
static int chat_target(const struct trn_task *t, const struct eng_tok *tok,
                       const struct trn_example *e, int32_t **tg, size_t *ntg)
{
    char cerr[ENG_ERR_LEN], *user = eng_template_fill(t->template, e->text, strlen(e->text),
                                                      e->text_b, e->text_b ? strlen(e->text_b) : 0);
    size_t sl = strlen(e->target);
    int rc = user ? 0 : ENG_ENOMEM;
    char *s = user ? strdup(e->target) : NULL;
    if (user && !s)
        rc = ENG_ENOMEM;
    *tg = NULL;
    for (int iter = 0; !rc && iter < 64; iter++) {
        char *reply = NULL;
        s[sl] = 0;
        if ((rc = trn_chat_reply(t->chat_tpl, user, s, &reply, cerr)))
            break;
        free(*tg);
        *tg = NULL;
        rc = eng_tok_encode(tok, reply, strlen(reply), tg, ntg);
        free(reply);
        if (rc || t->max_target < 1 || *ntg <= (size_t)t->max_target || sl == 0)
            break;
        size_t over = *ntg - (size_t)t->max_target, cut = over * sl / *ntg + 1;
        sl = eng_utf8_cut(s, sl > cut ? sl - cut : 0);
    }
    if (!rc && t->max_target >= 1 && *ntg > (size_t)t->max_target)
        rc = ENG_ERANGE; /* the template's own end of turn is longer than max_target */
    if (rc) {
        free(*tg);
        *tg = NULL;
    }
    free(s);
    free(user);
    return rc;
}

/* eng_fit_texts' encoder: the task template filled with the texts (then rendered as the user
 * turn of the chat template, for prompt_format "chat_template"), tokenized. */
struct prompt_enc {
    const struct trn_task *t;
    const struct eng_tok *tok;
};

static int prompt_encode(void *arg, const char *a, size_t alen, const char *b, size_t blen,
                         int32_t **ids, size_t *n)
{
    const struct prompt_enc *pe = arg;
    char *p = eng_template_fill(pe->t->template, a, alen, b, blen);
    int rc;
    if (!p)
        return ENG_ENOMEM;
    if (pe->t->chat_tpl) { /* the filled template is the user turn */
        char *u = p, cerr[ENG_ERR_LEN];
        rc = trn_chat_render(pe->t->chat_tpl, u, NULL, &p, cerr);
        free(u);
        if (rc)
            return rc;
    }
    rc = eng_tok_encode(pe->tok, p, strlen(p), ids, n);
    free(p);
    return rc;
}

int trn_encode(const struct trn_task *t, const struct eng_tok *tok, const struct trn_example *e,
               int max_len, int with_target, int32_t **ids, int *n, int *nprompt)
{
    int32_t *tg = NULL, *pr = NULL;
    size_t ntg = 0, npr = 0, alen = strlen(e->text), blen = e->text_b ? strlen(e->text_b) : 0;
    int rc;
    *ids = NULL;
    if (t->kind == TRN_TASK_CLS) {
        ntg = 1;
    } else if (with_target && t->chat_tpl) {
        if ((rc = chat_target(t, tok, e, &tg, &ntg)))
            return rc;
    } else if (with_target) {
        size_t sl = strlen(e->target), sp = !t->chat && !t->chatml;
        /* a summary follows "TL;DR:" after ' '; a ChatML reply starts the assistant turn */
        char *s = malloc(sl + 2);
        if (!s)
            return ENG_ENOMEM;
        s[0] = ' ';
        memcpy(s + sp, e->target, sl + 1);
        rc = eng_tok_encode(tok, s, sl + sp, &tg, &ntg);
        free(s);
        if (rc)
            return rc;
        /* summary (or reply) capped at max_target - 1 tokens, then EOS (<|im_end|>) */
        size_t keep = t->max_target > 1 ? (size_t)t->max_target - 1 : 0;
        keep = ntg < keep ? ntg : keep;
        int32_t *nt = realloc(tg, (keep + 1) * sizeof(int32_t));
        if (!nt) {
            free(tg);
            return ENG_ENOMEM;
        }
        tg = nt;
        tg[keep] = t->eos;
        ntg = keep + 1;
    }
    size_t tgt_room = with_target ? ntg : 0;
    if ((int)tgt_room >= max_len) {
        free(tg);
        return ENG_ERANGE;
    }
    /* Shrink the input text (then text_b) until the prompt fits max_len - target: the rule the
     * server applies to sentence pairs too (eng_fit_texts). */
    struct prompt_enc pe = {t, tok};
    rc = eng_fit_texts(e->text, &alen, e->text_b, &blen, (size_t)max_len - tgt_room, 0,
                       prompt_encode, &pe, &pr, &npr);
    if (rc) {
        free(tg);
        return rc;
    }
    int32_t *out = malloc((npr + tgt_room + 1) * sizeof(int32_t));
    if (!out) {
        free(pr);
        free(tg);
        return ENG_ENOMEM;
    }
    memcpy(out, pr, npr * sizeof(int32_t));
    if (with_target) {
        if (t->kind == TRN_TASK_CLS)
            out[npr] = t->label_tok[e->label];
        else
            memcpy(out + npr, tg, ntg * sizeof(int32_t));
    }
    *ids = out;
    *n = (int)(npr + tgt_room);
    *nprompt = (int)npr;
    free(pr);
    free(tg);
    return 0;
}

/* ------------------------------------------------------------------ corpus */

/* End of the paragraph starting at p: the newline before a blank (whitespace-only) line, or the
 * first line end past 16 KiB, or the end of the text. */
static char *para_end(char *p)
{
    char *q = p;
    for (;;) {
        char *nl = strchr(q, '\n');
        if (!nl)
            return q + strlen(q);
        char *r = nl + 1;
        while (*r == ' ' || *r == '\t' || *r == '\r')
            r++;
        if (*r == '\n' || !*r || nl - p > 16384)
            return nl;
        q = nl + 1;
    }
}

/* Documents of a corpus batch, encoded by worker threads (the tokenizer is read-only). */
struct doc_job {
    const struct eng_tok *tok;
    char **doc; /* [n] NUL-terminated, NULL = skipped */
    int32_t **ids;
    size_t *len;
    int *rc;
    size_t n, stride, first;
};

static void *encode_docs(void *arg)
{
    struct doc_job *j = arg;
    for (size_t i = j->first; i < j->n; i += j->stride) {
        j->ids[i] = NULL;
        j->len[i] = 0;
        j->rc[i] = j->doc[i] && *j->doc[i] ? eng_tok_encode(j->tok, j->doc[i], strlen(j->doc[i]),
                                                            &j->ids[i], &j->len[i])
                                           : 0;
    }
    return NULL;
}

enum { CORPUS_BATCH = 4096, CORPUS_THREADS = 16 };

/* Append the encoded batch to c in document order until budget; 1 when the budget is reached. */
static int corpus_append(struct trn_corpus *c, size_t *cap, int32_t eos, size_t budget,
                         struct doc_job *j, int *rc)
{
    for (size_t i = 0; i < j->n && !*rc; i++) {
        if (j->rc[i] == ENG_ETOKENIZER) /* skip a document with invalid UTF-8 */
            continue;
        if ((*rc = j->rc[i]))
            break;
        if (!j->doc[i] || !*j->doc[i] || (budget && c->ntok >= budget))
            continue;
        size_t n = j->len[i];
        if (UTIL_GROW(c->tok, *cap, c->ntok + n + 1, 1)) {
            *rc = ENG_ENOMEM;
            break;
        }
        memcpy(c->tok + c->ntok, j->ids[i], n * sizeof(int32_t));
        c->ntok += n;
        if (eos >= 0)
            c->tok[c->ntok++] = eos;
    }
    return budget && c->ntok >= budget;
}

int trn_corpus_load(const char *path, const struct eng_tok *tok, int32_t eos, size_t budget,
                    struct trn_corpus **out, char *err)
{
    size_t len = 0, cap = budget ? budget + 1024 : 1 << 20;
    char *buf = read_all(path, &len);
    if (!buf)
        return eng_fail(err, ENG_EIO, "cannot read corpus '%s'", path);
    struct trn_corpus *c = calloc(1, sizeof(*c));
    char **docs = malloc(CORPUS_BATCH * sizeof(*docs));
    int32_t **ids = malloc(CORPUS_BATCH * sizeof(*ids));
    size_t *lens = malloc(CORPUS_BATCH * sizeof(*lens));
    int *rcs = malloc(CORPUS_BATCH * sizeof(*rcs));
    json_t **js = malloc(CORPUS_BATCH * sizeof(*js));
    if (c)
        c->tok = malloc(cap * sizeof(int32_t));
    if (!c || !c->tok || !docs || !ids || !lens || !rcs || !js) {
        free(buf);
        free(docs);
        free(ids);
        free(lens);
        free(rcs);
        free(js);
        trn_corpus_free(c);
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nth = ncpu < 1 ? 1 : ncpu > CORPUS_THREADS ? CORPUS_THREADS : (int)ncpu;
    int jsonl = ends_with(path, ".jsonl"), rc = 0, full = 0;
    /* documents: JSONL lines, or paragraphs (blank-line separated) of plain text, encoded
     * CORPUS_BATCH at a time by nth threads and appended in file order */
    char *p = buf;
    while (*p && !full && !rc) {
        size_t nd = 0;
        while (*p && nd < CORPUS_BATCH) {
            if (!jsonl) {
                while (isspace((unsigned char)*p))
                    p++;
                if (!*p)
                    break;
            }
            char *end = jsonl ? strchr(p, '\n') : para_end(p);
            if (!end)
                end = p + strlen(p);
            int last = !*end;
            *end = 0;
            js[nd] = NULL;
            docs[nd] = p;
            if (jsonl) {
                js[nd] = json_loads(p, 0, NULL);
                docs[nd] = (char *)json_string_value(json_object_get(js[nd], "text"));
            }
            nd++;
            p = last ? end : end + 1;
        }
        struct doc_job jobs[CORPUS_THREADS];
        pthread_t th[CORPUS_THREADS];
        int nt = nd < 64 ? 1 : nth, started = 0;
        for (int t = 0; t < nt; t++) {
            jobs[t] = (struct doc_job){.tok = tok,
                                       .doc = docs,
                                       .ids = ids,
                                       .len = lens,
                                       .rc = rcs,
                                       .n = nd,
                                       .stride = (size_t)nt,
                                       .first = (size_t)t};
            if (t > 0 && pthread_create(&th[t], NULL, encode_docs, &jobs[t]) == 0)
                started |= 1 << t;
            else if (t > 0)
                encode_docs(&jobs[t]);
        }
        encode_docs(&jobs[0]);
        for (int t = 1; t < nt; t++)
            if (started & (1 << t))
                pthread_join(th[t], NULL);
        full = corpus_append(c, &cap, eos, budget, &jobs[0], &rc);
        for (size_t i = 0; i < nd; i++) {
            free(ids[i]);
            json_decref(js[i]);
        }
    }
    free(buf);
    free(docs);
    free(ids);
    free(lens);
    free(rcs);
    free(js);
    if (!rc && c->ntok < 2)
        rc = eng_fail(err, ENG_EINVAL, "corpus '%s' has no text", path);
    else if (rc)
        eng_fail(err, rc, "cannot tokenize corpus '%s'", path);
    if (rc) {
        trn_corpus_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void trn_corpus_free(struct trn_corpus *c)
{
    if (!c)
        return;
    free(c->tok);
    free(c);
}

/* ------------------------------------------------------------------ RNG */

uint64_t trn_rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void trn_shuffle(size_t *perm, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(trn_rng_next(&s) % i);
        size_t tmp = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = tmp;
    }
}
