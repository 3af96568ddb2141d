#!/bin/sh
# tests/test-api-pairs.sh — sentence-pair classification served (issue #19 item 3): a student of
# a pair task (here QNLI's template and label words, made from the demo teacher by
# `bitdistill convert`, so the weights are the demo's and only the task differs) answers
#   - /v1/classify with "text_pair", TEI's /predict with "inputs": [a, b] and batches of pairs,
#     each probability equal (CLS_PROB_TOL) to the CPU reference: `bitdistill classify` on the
#     same file with the template "{text}", given the QNLI template filled by hand here;
#   - `bitdistill eval --task qnli` (the trainer's fill of {text} and {text_b}) counts exactly
#     the pairs serving gets right;
#   - a pair too long for the context is cut by the trainer's rule (first text, then second;
#     from the ends, or the starts with TEI's truncation_direction "left"), re-derived here
#     from the rule as docs/api.md states it with the daemon's /tokenize, and answers what the
#     CPU reference answers for the cut prompt;
#   - pairs batch in the scheduler: concurrent clients get the answers of sequential ones;
#   - the refusals: one text to the pair model (400 naming text_pair / inputs / input), a pair
#     to the one-slot demo student (400), text_pair not shaped as input (400).
# TEI's shapes as in tests/test-api-compat.sh (router/src/http/types.rs, PredictInput's grammar
# "a", ["a"], ["a","b"], [["a","b"], ...]; predictions sorted by score, highest first).
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/daemon.sh"
B=${top_builddir:-.}
BD="$B/bitdistill"
M="$top_srcdir/models/demo"
CLS_PROB_TOL=1e-5
T=$(mktemp -d /tmp/bd-test-pairs-XXXXXX)
PID=""
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT

need python3

TPL=$(printf 'Question: {text}\nSentence: {text_b}\nDoes the sentence answer the question?')
"$BD" convert --model "$M/teacher" --out "$T/qnli.gguf" --ternary --template "$TPL" \
    --label entailment=' yes' --label not_entailment=' no' >/dev/null 2>"$T/err"
ok $? "a QNLI student from the demo teacher ($(tail -c 200 "$T/err"))"

"$BD" classify --model "$T/qnli.gguf" "a question" >/dev/null 2>"$T/err"
[ $? -ne 0 ] && grep -q '{text_b}' "$T/err"
ok $? "bitdistill classify (one text) refuses the pair template, naming {text_b}: $(head -c 200 "$T/err")"

cat >"$T/pairs.jsonl" <<'EOF'
{"text": "What did the critic think of the film?", "text_b": "The critic called it a gorgeous, witty film.", "label": "entailment"}
{"text": "Where was the treaty signed?", "text_b": "The weather was cold that winter.", "label": "not_entailment"}
{"text": "Who wrote the novel?", "text_b": "The novel was written by a young teacher from the north.", "label": "entailment"}
{"text": "How many people live in the city?", "text_b": "It is dull and lifeless.", "label": "not_entailment"}
{"text": "Qu'a dit le critique ?", "text_b": "Le critique a trouvé le film très réussi — «magnifique».", "label": "entailment"}
{"text": "When did the war end?", "text_b": "The war ended in the spring after four long years.", "label": "entailment"}
EOF

bd_daemon "$T" --model "$T/qnli.gguf,$M/student.gguf"
ok $? "daemon serving the QNLI student and the one-slot demo student"

python3 - "$U" "$BD" "$T/qnli.gguf" "$TPL" "$T/pairs.jsonl" "$CLS_PROB_TOL" >"$T/out.txt" 2>&1 <<'EOF'
import json, math, subprocess, sys, threading, urllib.error, urllib.request

url, bd, gguf, tpl, pairs_file, tol = sys.argv[1:7]
tol = float(tol)
PAIRS = [json.loads(l) for l in open(pairs_file, encoding="utf-8")]
Q = [p["text"] for p in PAIRS]
S = [p["text_b"] for p in PAIRS]
LABELS = ["entailment", "not_entailment"]

def check(cond, name):
    print(("ok - " if cond else "not ok - ") + name)
    sys.stdout.flush()

def post(path, body):
    req = urllib.request.Request(url + path, method="POST", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)

def fill(a, b):  # the task template as the trainer fills it, bytes in, str out
    return tpl.replace("{text_b}", "\0B").replace("{text}", "\0A") \
              .replace("\0A", a.decode()).replace("\0B", b.decode())

def cpu_reference(prompts):
    """`bitdistill classify` on the QNLI file with the template "{text}": probs in LABELS order."""
    r = subprocess.run([bd, "classify", "--model", gguf, "--template", "{text}", "--"] + prompts,
                       capture_output=True, text=True, timeout=300)
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    return [[row["probs"][l] for l in LABELS] for row in rows], [row["label"] for row in rows]

def close(a, b):
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))

def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    return [x / sum(e) for x in e]

ref, ref_label = cpu_reference([fill(q.encode(), s.encode()) for q, s in zip(Q, S)])
check(len(ref) == len(PAIRS), "the CPU reference classifies every filled prompt")

# ---- /v1/classify with text_pair ---------------------------------------------------------
st, r = post("/v1/classify", {"model": "qnli", "input": Q, "text_pair": S})
ok = st == 200 and len(r["data"]) == len(PAIRS)
for i, d in enumerate(r["data"] if ok else []):
    ok = ok and d["index"] == i and close([d["probs"][l] for l in LABELS], ref[i]) \
        and d["label"] == ref_label[i] and d["truncated"] is False
check(ok, "/v1/classify input + text_pair lists: every pair's probs and label = the CPU "
          "reference on the filled template (%s)" % (r if not ok else "6 pairs"))
served_correct = sum(d["label"] == p["label"] for d, p in zip(r["data"], PAIRS)) if ok else -1
prompt_tokens = r["usage"]["prompt_tokens"] if ok else -1
tok_total = sum(len(post("/tokenize", {"model": "qnli", "content": fill(q.encode(), s.encode())})[1]
                     ["tokens"]) for q, s in zip(Q, S))
check(prompt_tokens == tok_total,
      "usage.prompt_tokens counts the filled templates' tokens: %d vs %d" % (prompt_tokens, tok_total))
st, r = post("/v1/classify", {"model": "qnli", "input": Q[4], "text_pair": S[4]})
check(st == 200 and close([r["data"][0]["probs"][l] for l in LABELS], ref[4]),
      "/v1/classify one pair as two strings (non-ASCII text)")

# ---- TEI /predict --------------------------------------------------------------------------
def is_predictions(lst, ref_row):
    ok = isinstance(lst, list) and len(lst) == 2
    ok = ok and all(isinstance(p, dict) and set(p) == {"label", "score"} for p in lst)
    ok = ok and lst[0]["score"] >= lst[1]["score"] and {p["label"] for p in lst} == set(LABELS)
    if ok and ref_row is not None:
        ok = all(abs(p["score"] - ref_row[LABELS.index(p["label"])]) <= tol for p in lst)
    return ok

st, r = post("/predict", {"model": "qnli", "inputs": [Q[0], S[0]]})
check(st == 200 and is_predictions(r, ref[0]),
      "TEI /predict inputs [a, b]: one pair, [{label, score}] highest first = the reference: %s" % r)
st, r = post("/predict", {"model": "qnli", "inputs": [[q, s] for q, s in zip(Q, S)]})
check(st == 200 and len(r) == len(PAIRS) and all(is_predictions(r[i], ref[i])
                                                  for i in range(len(PAIRS))),
      "TEI batch of pairs [[a, b], ...]: one list per pair, in order, = the reference")
st, r = post("/predict", {"model": "qnli", "inputs": [[Q[1], S[1]]]})
check(st == 200 and len(r) == 1 and is_predictions(r[0], ref[1]), "a batch of one pair")
st, r = post("/predict", {"model": "qnli", "inputs": [[q, s] for q, s in zip(Q, S)],
                          "raw_scores": True})
ok = st == 200 and len(r) == len(PAIRS)
for i in range(len(PAIRS) if ok else 0):
    by = {p["label"]: p["score"] for p in r[i]}
    raw = [by[l] for l in LABELS]
    ok = ok and is_predictions(r[i], None) and close(softmax(raw), ref[i]) \
        and abs(sum(raw) - 1) > 1e-3
check(ok, "raw_scores on pairs: logits, sorted, whose softmax is the reference")

# ---- the trainer's evaluation counts the same correct pairs ----------------------------------
ev = subprocess.run([bd, "eval", "--model", gguf, "--task", "qnli", "--data", pairs_file],
                    capture_output=True, text=True, timeout=300)
try:
    acc = json.loads(ev.stdout.strip().splitlines()[-1])
    got = round(acc["accuracy"] * acc["n"])
except Exception:
    acc, got = ev.stdout + ev.stderr, None
check(got == served_correct and acc["n"] == len(PAIRS),
      "bitdistill eval --task qnli: %s of %d correct, serving %d" % (got, len(PAIRS), served_correct))

# ---- truncation: the trainer's rule ---------------------------------------------------------
def ntok(text):
    st, r = post("/tokenize", {"model": "qnli", "content": text})
    return len(r["tokens"])

def cut_right(s, n):
    while n > 0 and (s[n] & 0xC0) == 0x80:
        n -= 1
    return n

def cut_left(s, n):
    while 0 < n < len(s) and (s[len(s) - n] & 0xC0) == 0x80:
        n -= 1
    return n

def fit(a, b, room, left):
    """docs/api.md: shrink the first text by its share of the excess until empty, then the second."""
    al, bl = len(a), len(b)
    for _ in range(128):
        ka, kb = (a[len(a) - al:], b[len(b) - bl:]) if left else (a[:al], b[:bl])
        p = fill(ka, kb)
        n = ntok(p)
        if n <= room or (al == 0 and bl == 0):
            break
        over, ln = n - room, (al if al else bl)
        keep = max(ln - (over * ln // n + 1), 0)
        if al:
            al = cut_left(a, keep) if left else cut_right(a, keep)
        else:
            bl = cut_left(b, keep) if left else cut_right(b, keep)
    return p, n, al, bl

CTX = 512  # the demo model's positions
longq = ("Why is the film so dull and lifeless é? " * 90).encode()  # > 512 tokens each
longs = ("The film is a gorgeous, witty delight ü. " * 90).encode()
check(ntok(fill(longq, b"")) > CTX and ntok(fill(b"", longs)) > CTX,
      "each long text alone is more than the context")
cases = [("first text cut", longq, S[0].encode()), ("both cut", longq, longs),
         ("short first text emptied, second cut", Q[0].encode(), longs)]
for name, a, b in cases:
    for left in (0, 1):
        want, n, al, bl = fit(a, b, CTX, left)
        wref, wlabel = cpu_reference([want])
        body = {"model": "qnli", "inputs": [a.decode(), b.decode()], "truncate": True}
        if left:
            body["truncation_direction"] = "left"
        st, r = post("/predict", body)
        check(st == 200 and is_predictions(r, wref[0]),
              "TEI truncate, %s%s: the answer of the prompt the trainer's rule keeps "
              "(%d tokens, %d and %d bytes kept): %s" % (name, ", left" if left else "", n, al,
                                                         bl, r if st != 200 else "ok"))
        if not left:
            st, r = post("/v1/classify", {"model": "qnli", "input": a.decode(),
                                          "text_pair": b.decode()})
            check(st == 200 and r["data"][0]["truncated"] is True
                  and r["usage"]["prompt_tokens"] == n
                  and close([r["data"][0]["probs"][l] for l in LABELS], wref[0]),
                  "/v1/classify cuts the %s pair the same way and says truncated (%s)"
                  % (name, r.get("usage")))
st, r = post("/predict", {"model": "qnli", "inputs": [longq.decode(), S[0]]})
check(st == 400 and r["error_type"] == "validation" and "context" in r["error"],
      "TEI without truncate: a long pair is refused: %s" % r)
st, r = post("/v1/classify", {"model": "qnli", "input": longq.decode(), "text_pair": S[0],
                              "truncate": False})
check(st == 400 and "context" in r["error"]["message"], "/v1/classify truncate false: refused")

# ---- batching: concurrent pairs answer as sequential ones ------------------------------------
results = [None] * 8
def worker(k):
    body = {"model": "qnli", "inputs": [[Q[(k + i) % 6], S[(k + 2 * i) % 6]] for i in range(5)]}
    results[k] = post("/predict", body)
threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ok = True
for k in range(8):
    seq = [post("/predict", {"model": "qnli", "inputs": [Q[(k + i) % 6], S[(k + 2 * i) % 6]]})
           for i in range(5)]
    st, r = results[k]
    ok = ok and st == 200 and len(r) == 5 and all(
        s == 200 and is_predictions(r[i], [x["score"] for x in sorted(one, key=lambda p:
                                                                     LABELS.index(p["label"]))])
        for i, (s, one) in enumerate(seq))
check(ok, "8 concurrent batches of crossed pairs = the same pairs sent one by one")

# ---- refusals ---------------------------------------------------------------------------------
st, r = post("/v1/classify", {"model": "qnli", "input": Q[0]})
check(st == 400 and r["error"]["param"] == "text_pair" and "{text_b}" in r["error"]["message"],
      "pair model, one text on /v1/classify: 400 naming text_pair: %s" % r)
st, r = post("/v1/classify", {"model": "qnli", "input": Q[:2], "text_pair": [S[0], None]})
check(st == 400 and r["error"]["param"] == "text_pair", "text_pair [s, null]: 400 naming text_pair")
for body, why in [({"input": Q[:2], "text_pair": S[0]}, "a string for a list"),
                  ({"input": Q[:2], "text_pair": S[:3]}, "3 for 2"),
                  ({"input": Q[0], "text_pair": [S[0]]}, "a list for a string"),
                  ({"input": Q[0], "text_pair": 5}, "a number")]:
    body["model"] = "qnli"
    st, r = post("/v1/classify", body)
    check(st == 400 and r["error"]["param"] == "text_pair",
          "text_pair %s: 400 naming text_pair: %s" % (why, r["error"]["message"]))
for inputs, why in [(Q[0], "a string"), ([Q[0]], "[a]"), ([[Q[0], S[0]], [Q[1]]], "[[a, b], [c]]")]:
    st, r = post("/predict", {"model": "qnli", "inputs": inputs})
    check(st == 400 and set(r) == {"error", "error_type"} and r["error_type"] == "validation"
          and "'inputs'" in r["error"] and "{text_b}" in r["error"],
          "pair model, TEI inputs %s: 400 validation naming inputs: %s" % (why, r))
st, r = post("/classify", {"model": "qnli", "input": Q[0]})
check(st == 400 and r["error"]["param"] == "input" and "pair" in r["error"]["message"],
      "pair model on vLLM's /classify (no pair form): 400 naming input: %s" % r)
st, r = post("/v1/classify", {"model": "student", "input": "a fine film", "text_pair": "yes"})
check(st == 400 and r["error"]["param"] == "text_pair" and "{text}" in r["error"]["message"],
      "one-slot model, text_pair: 400 naming text_pair: %s" % r)
st, r = post("/predict", {"model": "student", "inputs": [["a fine film"], ["dull", "film"]]})
check(st == 400 and r["error_type"] == "validation" and "input 1 is a pair" in r["error"],
      "one-slot model, TEI pair: 400 validation: %s" % r)
st, r = post("/v1/classify", {"model": "student", "input": "a fine film"})
check(st == 200, "the one-slot model still answers one text")
EOF
relay_end $? "$T/out.txt" "$PID"
done_testing
