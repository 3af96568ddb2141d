/*
 * train/data.h — task formulation and datasets of the trainer (DESIGN.md §1 "Task
 * formulation", §5 "Datasets").
 *
 * A task turns an example into tokens: classification fills a template ("Review: {text}\n
 * Sentiment:") and predicts the first token of the label's verbalizer (" positive"); CE, LD and
 * accuracy are taken at that one position. Summarization is "{text}\nTL;DR:" followed by the
 * summary and EOS, with loss over the summary tokens. The prompt is encoded as one string (as
 * the engine's classifier does); when prompt + target exceed max_len the input text is cut from
 * its end (never the summary, which is itself capped at max_target tokens).
 *
 * Datasets: JSONL ({"text"|"sentence","label"}, {"premise"|"text_a","hypothesis"|"text_b",
 * "label"}, {"article","summary"|"highlights"}), JSON objects of such records ({idx: {...}}) or
 * arrays, GLUE TSV with a header row (sentence<TAB>label), and the SST-2 sentence format
 * ("1 text" per line). Labels are integers (index into the label set) or strings (names of the
 * label set); any other value fails the load naming the line. A corpus (stage 2) is plain text
 * or JSONL {"text"}: documents are encoded, joined with EOS and packed into rows of max_len+1.
 *
 * Chat (task "chat", OpenAI's fine-tuning format): JSONL lines {"messages": [{"role", "content",
 * "weight"?}, ...]} with roles system (developer), user and assistant; content a string or an
 * array of {"type":"text","text"} parts. Conversations are written in ChatML
 * ("<|im_start|>ROLE\nCONTENT<|im_end|>\n", Qwen's format without a default system prompt), and
 * every assistant message (unless "weight": 0) becomes one example: the conversation before it
 * plus "<|im_start|>assistant\n" as the prompt, its content then <|im_end|> as the target, so the
 * loss falls on assistant turns only.
 */
#ifndef BD_JOBS_TRAIN_DATA_H
#define BD_JOBS_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer.h"

#define TRN_MAX_LABELS 16

enum trn_task_kind { TRN_TASK_CLS = 0, TRN_TASK_SUM = 1 };

struct trn_task {
    enum trn_task_kind kind;
    char name[32];      /* "sst2", "mnli", "qnli", "cnndm", "classification"... */
    char template[512]; /* "{text}" and optionally "{text_b}" */
    int nlabels;
    char labels[TRN_MAX_LABELS][64];     /* label names, e.g. "positive" */
    char words[TRN_MAX_LABELS][64];      /* verbalizers, e.g. " positive" */
    int32_t label_tok[TRN_MAX_LABELS];   /* first token of each verbalizer (after resolve) */
    int32_t eos;                         /* end of summary token (after resolve) */
    int max_target;                      /* summarization: summary tokens kept */
    int chat;                            /* "chat": ChatML conversations (kind SUM, eos
                                          * <|im_end|> when the tokenizer has it) */
    const struct trn_chat_tpl *chat_tpl; /* prompt_format "chat_template": the base model's
                                          * template (borrowed) or NULL: plain prompts */
    int chatml;                          /* summaries as ChatML replies (trn_task_chatml):
                                          * no leading space, eos <|im_end|> */
};

/*
 * prompt_format "chat_template" (as the BitNet repository's BitDistill code trains tasks as
 * generative SFT through Qwen's chat template): the filled task template is the user turn of a
 * one-message conversation rendered by the base model's own chat template (jinja/) with
 * add_generation_prompt; the answer is what the template renders after that prompt for an
 * assistant turn holding the label word (without its leading space; loss on its first token) or
 * the summary (loss on all of it, the template's end-of-turn tokens included). The student
 * carries the template and serving renders requests the same way (engine/registry.h).
 */
struct trn_chat_tpl;

/* The chat_template of HF directory dir (tokenizer_config.json), parsed; bos_id/eos_id (-1:
 * none) give the template's bos_token/eos_token through tok (borrowed). *out owns the template
 * text (trn_chat_tpl_text). ENG_ECONFIG naming dir when it has no chat_template or the engine
 * cannot render it. */
int trn_chat_tpl_load(const char *dir, const struct eng_tok *tok, int bos_id, int eos_id,
                      struct trn_chat_tpl **out, char *err);
/* The same from template text (copied), e.g. a student file's tokenizer.chat_template; `from`
 * names it in messages. */
int trn_chat_tpl_parse(const char *text, const char *from, const struct eng_tok *tok, int bos_id,
                       int eos_id, struct trn_chat_tpl **out, char *err);
void trn_chat_tpl_free(struct trn_chat_tpl *c);
/* The template's source text (borrowed from c). */
const char *trn_chat_tpl_text(const struct trn_chat_tpl *c);
/* Render the conversation [{"role": "user", "content": user}] (+ {"role": "assistant",
 * "content": reply} when reply is not NULL) with add_generation_prompt when reply is NULL.
 * *out is malloc'd. ENG_EINVAL with the template's message when it refuses the input. */
int trn_chat_render(const struct trn_chat_tpl *c, const char *user, const char *reply, char **out,
                    char *err);
/* Use template c (borrowed; must outlive t) for task t's prompts: ENG_ECONFIG for a "chat"
 * task (its conversations are ChatML) or a template whose rendering of an answer does not
 * start with its generation prompt. */
int trn_task_chat_template(struct trn_task *t, const struct trn_chat_tpl *c, char *err);
/* *out (malloc'd) = what the template renders after the generation prompt of user turn `user`
 * when the assistant answers `reply` (e.g. "positive<|im_end|>\n"). */
int trn_chat_reply(const struct trn_chat_tpl *c, const char *user, const char *reply, char **out,
                   char *err);

/* Defaults of a named task ("sst2", "mnli", "qnli", "cnndm", "chat"; "classification" and
 * "summarization" need labels/template from the config). ENG_EINVAL for an unknown name. */
int trn_task_defaults(const char *name, struct trn_task *t, char *err);
/* Tokenize the verbalizers (first tokens must differ) and find EOS (eos_id, or the tokenizer's
 * "<|endoftext|>" / "<|im_end|>"). */
int trn_task_resolve(struct trn_task *t, const struct eng_tok *tok, int eos_id, char *err);

/* A task as generative SFT in ChatML (the job's "chat_format": "chatml", as the BitNet
 * repository's BitDistill code trains with Qwen's chat template): the prompt becomes the user turn
 * "<|im_start|>user\n" + template + "<|im_end|>\n<|im_start|>assistant\n"; a classification
 * answer is the verbalizer without its leading space, a summary the assistant's reply (no leading
 * space, ended by <|im_end|>). The exported student carries that template, so serving (and a
 * ChatML chat template rendering the same user turn) formats requests the same way. ENG_ECONFIG
 * for a template too long. */
int trn_task_chatml(struct trn_task *t, char *err);

struct trn_example {
    char *text, *text_b; /* owned */
    char *target;        /* summary (owned) or NULL */
    int label;           /* classification: label index; -1 otherwise */
};

struct trn_dataset {
    struct trn_example *ex;
    size_t n, cap;
};

/* Load up to max_examples (0 = all) examples of task t from path. */
int trn_dataset_load(const char *path, const struct trn_task *t, size_t max_examples,
                     struct trn_dataset **out, char *err);
void trn_dataset_free(struct trn_dataset *d);

/* Encode one example: *ids (malloc'd) = prompt (+ target when with_target), *n tokens,
 * *nprompt prompt tokens. Targets of row t are ids[t+1] for t >= nprompt-1. */
int trn_encode(const struct trn_task *t, const struct eng_tok *tok, const struct trn_example *e,
               int max_len, int with_target, int32_t **ids, int *n, int *nprompt);

/* A packed corpus: `ntok` tokens read from path until `budget` tokens (0 = whole file). */
struct trn_corpus {
    int32_t *tok;
    size_t ntok;
};
int trn_corpus_load(const char *path, const struct eng_tok *tok, int32_t eos, size_t budget,
                    struct trn_corpus **out, char *err);
void trn_corpus_free(struct trn_corpus *c);

/* Deterministic RNG (splitmix64); its state is part of a checkpoint. */
uint64_t trn_rng_next(uint64_t *state);
/* perm[n] = a permutation of 0..n-1 drawn from seed (Fisher-Yates). */
void trn_shuffle(size_t *perm, size_t n, uint64_t seed);

#endif
