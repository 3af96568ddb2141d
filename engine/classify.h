/*
 * engine/classify.h — classification by verbalizer: fill the task template with the input,
 * run one forward pass, read the logits of each label word's first token at the last position,
 * softmax over the labels (DESIGN.md §1 "Task formulation"). No decoding.
 */
#ifndef BD_ENGINE_CLASSIFY_H
#define BD_ENGINE_CLASSIFY_H

#include "engine/model.h"
#include "engine/tokenizer.h"

struct eng_classifier;

/*
 * The task template tpl with every "{text}" replaced by a[0..alen) and every "{text_b}" (the
 * second text of a sentence-pair task: MNLI's hypothesis, QNLI's sentence) by b[0..blen), or by
 * nothing when b is NULL. The one filling rule of training (train/data.c), evaluation
 * (train/eval.c) and serving (eng_served_prompt_pair). Returns a malloc'd string or NULL (out of
 * memory).
 */
char *eng_template_fill(const char *tpl, const char *a, size_t alen, const char *b, size_t blen);

/* 1 if tpl has a "{text_b}" slot: the task classifies sentence pairs. */
int eng_template_is_pair(const char *tpl);

/* The longest prefix of s of at most n bytes that ends on a UTF-8 character boundary (s[n]
 * readable: s is NUL-terminated or longer than n). */
size_t eng_utf8_cut(const char *s, size_t n);

/* The longest suffix of s[0..total) of at most n bytes that starts on a character boundary. */
size_t eng_utf8_cut_left(const char *s, size_t total, size_t n);

/* Encode the prompt of the texts a[0..alen) and b[0..blen) (b NULL: none) into *ids[*n]
 * (malloc'd); 0 or a status. */
typedef int (*eng_fit_encode_fn)(void *arg, const char *a, size_t alen, const char *b, size_t blen,
                                 int32_t **ids, size_t *n);

/*
 * The one truncation rule of a filled template, shared by training (trn_encode) and serving
 * (sched.c, sentence pairs): encode the whole texts; while the prompt has more than `room`
 * tokens, shrink the first text by its share of the excess (cut = over * len / tokens + 1 bytes,
 * at a UTF-8 boundary) until it is empty, then the second; at most 128 rounds. With left the
 * start of each text is cut instead of its end (the kept part is its last *alen bytes).
 * In: *alen, *blen the texts' lengths; out: the bytes kept of each. On 0, *ids[*n] holds the
 * prompt (the caller frees it). Returns ENG_ERANGE when even empty texts do not fit (nothing
 * allocated) or the encoder's status.
 */
int eng_fit_texts(const char *a, size_t *alen, const char *b, size_t *blen, size_t room, int left,
                  eng_fit_encode_fn encode, void *arg, int32_t **ids, size_t *n);

/* template: text with one "{text}" and no "{text_b}" (borrowed, copied); words[n]: label words, e.g. " positive".
 * Each word's first token is its label row; two labels sharing a first token are refused.
 * model and tok are borrowed and must outlive the classifier. */
int eng_classifier_create(struct eng_model *m, const struct eng_tok *tok, const char *template,
                          const char *const *words, int n, struct eng_classifier **out, char *err);
void eng_classifier_free(struct eng_classifier *c);

/* The one scoring rule of verbalizer classification, shared by `bitdistill classify` and
 * `bitdistill eval` (eng_classify), serving (sched.c) and the trainer's evaluation: probs[n] =
 * softmax of the label logits lg[n] (in double, stored as float); returns the chosen label, the
 * first maximum of lg (as torch.argmax). probs may equal lg. n >= 1. */
int eng_label_scores(const float *lg, int n, float *probs);

/* probs[n] = softmax over the label tokens' logits; *best = argmax. Not thread-safe per object
 * (one context inside). err gets the message on failure. */
int eng_classify(struct eng_classifier *c, const char *text, float *probs, int *best, char *err);

#endif
