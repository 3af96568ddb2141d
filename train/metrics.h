/*
 * train/metrics.h — summarization metrics of the evaluation stage.
 *
 * ROUGE follows Google's rouge_score (the reference of the CNN/DM literature) with
 * use_stemmer=False: text lower-cased, every character outside [a-z0-9] a separator; ROUGE-N
 * F-measure on clipped n-gram counts, ROUGE-L on the LCS of the whole token lists, ROUGE-Lsum on
 * the summary-level union LCS over newline-separated sentences. BLEU follows sacrebleu 2.x
 * defaults: the 13a tokenizer (mteval-v13a), n-grams 1..4, brevity penalty, "exp" smoothing;
 * corpus BLEU sums the statistics of all pairs (effective order off), sentence BLEU uses the
 * effective order as sacrebleu.sentence_bleu does. Scores: ROUGE in [0, 1], BLEU in [0, 100].
 */
#ifndef BD_JOBS_TRAIN_METRICS_H
#define BD_JOBS_TRAIN_METRICS_H

struct trn_rouge {
    double r1, r2, rl, rlsum; /* F-measures */
};

/* ROUGE of one prediction against one reference (both UTF-8, borrowed). 0 or ENG_ENOMEM. */
int trn_rouge_score(const char *pred, const char *ref, struct trn_rouge *out);

/* BLEU sufficient statistics (accumulate over a corpus). */
struct trn_bleu_stats {
    long long correct[4], total[4];
    long long sys_len, ref_len;
};

/* Add one pair's statistics to s. 0 or ENG_ENOMEM. */
int trn_bleu_add(struct trn_bleu_stats *s, const char *pred, const char *ref);
/* BLEU of the statistics; effective_order as sacrebleu's sentence_bleu. */
double trn_bleu_score(const struct trn_bleu_stats *s, int effective_order);

/* The 13a tokenization of line (malloc'd, tokens separated by single spaces). */
char *trn_bleu_tok13a(const char *line);

#endif
