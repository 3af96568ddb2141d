/*
 * engine/bpetrain.h — training a byte-level BPE vocabulary, written as a Hugging Face
 * tokenizer.json of Qwen2/Qwen3 shape (loads in eng_tok_load_json and in HF `tokenizers`).
 *
 * Two phases. Counting: each input is split into blocks of about 256 KiB at line starts that are
 * also pre-tokenizer boundaries; worker threads validate every line (a line that is not UTF-8
 * is skipped and counted), NFC-normalise it, split it with Qwen2's pre-tokenizer regex and count
 * the distinct pieces ("words") in a per-thread hash map. The blocks are cut where the regex and
 * NFC cannot join across the cut, so the counts equal those of the whole file at once and do not
 * depend on the thread count. Merging (one thread): every word is a run of token ids, starting
 * from its bytes; pair counts are kept in a hash map with, per pair, the words holding it; each
 * merge rewrites only those words and adjusts the counts of the pairs next to each occurrence.
 * The best pair comes from a max-heap with lazy deletion (an entry whose count went stale is
 * re-queued when it surfaces).
 *
 * Merge rule (deterministic): the pair with the larger count wins; on equal counts the pair
 * whose left token's bytes are lexicographically smaller (memcmp order, a prefix before its
 * extensions), then whose right token's bytes are smaller. In a word, occurrences are merged
 * left to right without overlap ("a a a" -> "aa a"). Should the merged bytes already name a
 * token (reached earlier by another split, "ab"+"c" and "a"+"bc"; never seen in 20000 random
 * corpora nor in real text, but handled as HF's trainer does), the merge is recorded and reuses
 * that id, and a pair merged before that shows up again is merged again but not recorded twice;
 * the vocabulary grows by one token per recorded merge otherwise. Training
 * stops when the vocabulary reaches vocab_size - ENG_BPE_N_SPECIAL tokens, when no pair is
 * left, or when the best pair is seen fewer than min_frequency times.
 *
 * Ids: 0..255 the bytes in GPT-2 bytes_to_unicode order (as Qwen2), then merged tokens in the
 * order they were made, then the special tokens <|endoftext|>, <|im_start|>, <|im_end|>.
 * Not thread-safe: one thread drives an eng_bpe (it runs its own workers inside add calls).
 */
#ifndef BD_ENGINE_BPETRAIN_H
#define BD_ENGINE_BPETRAIN_H

#include <stddef.h>
#include <stdint.h>

/* Qwen2/Qwen3's pre-tokenizer regex (Split, Isolated), as in their tokenizer.json. */
#define ENG_BPE_QWEN2_REGEX                                                                        \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"                           \
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

#define ENG_BPE_N_SPECIAL 3 /* <|endoftext|>, <|im_start|>, <|im_end|> */
#define ENG_BPE_MAX_VOCAB (1 << 24)

struct eng_bpe;

struct eng_bpe_opts {
    int32_t vocab_size;     /* total, special tokens included: 256 + ENG_BPE_N_SPECIAL .. 2^24 */
    uint64_t min_frequency; /* never merge a pair seen fewer times (0 and 1: any pair) */
    int threads;            /* counting workers, 1..256 */
    size_t block_bytes;     /* counting block size in bytes; 0 = 256 KiB (tests: tiny) */
};

/* What was read and made (counters are totals over every add call). */
struct eng_bpe_stats {
    uint64_t files, bytes, lines, bad_lines; /* bad_lines: not UTF-8, skipped */
    uint64_t pieces;                         /* pre-tokenized pieces counted */
    uint64_t words;                          /* distinct pieces (after eng_bpe_train) */
    int32_t merges, vocab;                   /* vocab: tokens incl. specials (after train) */
    double count_s, merge_s;                 /* wall seconds of the two phases */
};

/* Validates opts (message in err, ENG_ERR_LEN bytes) and returns a trainer in *out. */
int eng_bpe_create(const struct eng_bpe_opts *opts, struct eng_bpe **out, char *err);
void eng_bpe_free(struct eng_bpe *b); /* NULL is a no-op */
/* The last error message (names the file or option), "" if none; borrowed from b. */
const char *eng_bpe_errmsg(const struct eng_bpe *b);

/* Count the words of one file ("-" = stdin). Lines that are not valid UTF-8 are skipped; if
 * warn is non-NULL it gets one line per file that had any ("'f.txt': skipped 3 lines that are
 * not valid UTF-8, the first is line 17"). ENG_EIO if the file cannot be read. */
int eng_bpe_add_file(struct eng_bpe *b, const char *path, void (*warn)(const char *msg));
/* Same for n bytes in memory (borrowed); name is used in messages. */
int eng_bpe_add_text(struct eng_bpe *b, const char *name, const char *text, size_t n,
                     void (*warn)(const char *msg));
/* Count one already pre-tokenized word (n raw bytes, any content) count times. */
int eng_bpe_add_word(struct eng_bpe *b, const char *bytes, size_t n, uint64_t count);

/* Learn the merges from the words counted so far. Once only; adds are refused after it. */
int eng_bpe_train(struct eng_bpe *b);

/* Results (after eng_bpe_train). Token bytes are raw (not byte-level) and borrowed from b. */
int32_t eng_bpe_vocab_size(const struct eng_bpe *b); /* merged vocab + specials */
const char *eng_bpe_token(const struct eng_bpe *b, int32_t id, size_t *n);
int32_t eng_bpe_merge_count(const struct eng_bpe *b);
void eng_bpe_merge(const struct eng_bpe *b, int32_t rank, int32_t *left, int32_t *right);
void eng_bpe_get_stats(const struct eng_bpe *b, struct eng_bpe_stats *st);
/* The distinct words counted (after eng_bpe_train; raw bytes, borrowed), in no fixed order. */
uint64_t eng_bpe_word_count(const struct eng_bpe *b);
const char *eng_bpe_word(const struct eng_bpe *b, uint64_t i, size_t *n, uint64_t *count);

/* Write tokenizer.json to path (through path.tmp + rename). After eng_bpe_train. */
int eng_bpe_save_json(struct eng_bpe *b, const char *path);

/* `bitdistill tokenizer-train` (engine/bpecli.c): 0 ok, 1 failure, 2 usage error. */
int eng_cli_tokenizer_train(int argc, char **argv);

#endif
