#!/usr/bin/env python3
"""A small byte-level BPE tokenizer.json for the trainer's tests and CI runs (no PyTorch needed).

    python3 tools/make_byte_tokenizer.py ../shared/data/sst2/sentence/stsa.binary.train \
        N_MERGES > tests/fixtures/train/tok-bytes.json

Vocabulary: the 256 byte symbols of GPT-2's byte-level alphabet, then N_MERGES merges learned by
plain BPE (most frequent pair, ties by first occurrence) on the pre-tokenized training text,
then "<|endoftext|>" as a special added token. Pre-tokenizer: ByteLevel with GPT-2's regex, so
the engine's tokenizer (engine/tokenizer.c) reads it like any Hugging Face byte-level BPE file.
"""
import collections
import json
import re
import sys


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


PAT = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def main():
    path, nm = sys.argv[1], int(sys.argv[2])
    b2u = bytes_to_unicode()
    words = collections.Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = line[2:].strip() if line[:1].isdigit() else line.strip()
            for w in PAT.findall("Review: " + text + "\nSentiment: positive negative"):
                words[tuple(b2u[b] for b in w.encode("utf-8"))] += 1
    vocab = [b2u[b] for b in range(256)]
    merges = []
    words = dict(words)
    for _ in range(nm):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: kv[1])[0]
        merges.append(best)
        vocab.append(best[0] + best[1])
        nw = {}
        for w, c in words.items():
            o, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    o.append(w[i] + w[i + 1])
                    i += 2
                else:
                    o.append(w[i])
                    i += 1
            nw[tuple(o)] = nw.get(tuple(o), 0) + c
        words = nw
    eos = len(vocab)
    tok = {
        "version": "1.0",
        "truncation": None, "padding": None,
        "added_tokens": [{"id": eos, "content": "<|endoftext|>", "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(vocab)},
                  "merges": [[a, b] for a, b in merges]},
    }
    json.dump(tok, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
