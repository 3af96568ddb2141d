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

/* template: text with one "{text}" (borrowed, copied); words[n]: label words, e.g. " positive".
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
