/*
 * engine/tokenizer.h — byte-level BPE tokenizer, identical to Hugging Face `tokenizers` for
 * byte-level BPE models (Qwen2/Qwen3, GPT-2, Llama 3 style).
 *
 * Encode: added/special tokens are matched first (leftmost-longest, on the raw text), the rest
 * is NFC-normalised (when the tokenizer says so, utf8proc), split by the pre-tokenizer regex
 * (PCRE2 with UTF + UCP, JIT-compiled), each piece's UTF-8 bytes mapped to the byte-level
 * alphabet and merged by BPE rank (lowest rank first, leftmost on ties). Decode: token bytes
 * concatenated, invalid UTF-8 replaced by U+FFFD per maximal subpart (Rust's from_utf8_lossy).
 *
 * An eng_tok is immutable after creation; encode/decode may run on several threads at once
 * (each call allocates its own match data). The last error message is kept per object for
 * creation failures only (use the err buffer); encode/decode errors are returned as statuses.
 */
#ifndef BD_ENGINE_TOKENIZER_H
#define BD_ENGINE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct eng_tok;

/* GPT-2's pre-tokenizer regex (ByteLevel with use_regex = true). */
#define ENG_TOK_GPT2_REGEX                                                                         \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

struct eng_tok_added {
    const char *content; /* literal text, matched before pre-tokenization */
    int32_t id;
    int special; /* skipped by decode when asked to skip special tokens */
};

/* Everything a tokenizer is made of (all borrowed during eng_tok_create). */
struct eng_tok_spec {
    const char *const *vocab; /* [n_vocab] byte-level token strings by id (NULL = hole) */
    int32_t n_vocab;
    const char *const *merges; /* [n_merges] "left right" in rank order */
    int32_t n_merges;
    const struct eng_tok_added *added;
    int32_t n_added;
    const char *regex; /* pre-tokenizer split pattern (Isolated) */
    int nfc;           /* NFC normaliser */
    int add_prefix_space;
};

int eng_tok_create(const struct eng_tok_spec *spec, struct eng_tok **out, char *err);
/* tokenizer.json (file, or a directory holding one). */
int eng_tok_load_json(const char *path, struct eng_tok **out, char *err);
/* GPT-2's encoder.json + vocab.bpe (ByteLevel, add_prefix_space false, <|endoftext|> special). */
int eng_tok_load_gpt2(const char *encoder_json, const char *vocab_bpe, struct eng_tok **out,
                      char *err);
void eng_tok_free(struct eng_tok *t);

/* Encode len bytes of UTF-8 text. *ids (malloc'd, caller frees) gets *n ids. ENG_ETOKENIZER
 * for invalid UTF-8 input. */
int eng_tok_encode(const struct eng_tok *t, const char *text, size_t len, int32_t **ids, size_t *n);
/* Decode ids into malloc'd, NUL-terminated UTF-8 (*out, caller frees; *len without the NUL).
 * Unknown ids give ENG_EINVAL. */
int eng_tok_decode(const struct eng_tok *t, const int32_t *ids, size_t n, int skip_special,
                   char **out, size_t *len);

/* Accessors (for the student file writer). Strings are borrowed from the tokenizer. */
int32_t eng_tok_vocab_size(const struct eng_tok *t);            /* max id + 1 (incl. added) */
const char *eng_tok_token(const struct eng_tok *t, int32_t id); /* byte-level form or NULL */
int32_t eng_tok_merge_count(const struct eng_tok *t);
const char *eng_tok_merge(const struct eng_tok *t, int32_t rank); /* "left right" */
int32_t eng_tok_added_count(const struct eng_tok *t);
const struct eng_tok_added *eng_tok_added_at(const struct eng_tok *t, int32_t i);
const char *eng_tok_regex(const struct eng_tok *t);
int eng_tok_nfc(const struct eng_tok *t);
int eng_tok_add_prefix_space(const struct eng_tok *t);
/* id of a token given in its text form (added token or byte-level vocab), or -1. */
int32_t eng_tok_find(const struct eng_tok *t, const char *text);

#endif
