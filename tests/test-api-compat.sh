#!/bin/sh
# tests/test-api-compat.sh — vLLM's POST /classify and Hugging Face TEI's POST /predict against a
# live daemon serving the demo student, read by python3's stdlib HTTP client (the checker below).
# Each answer is checked field by field against the shapes the other projects document:
#   vLLM  vllm/entrypoints/pooling/classify/protocol.py at vllm-project/vllm@dff4cad35b4f
#         (ClassificationData: index, label, probs, num_classes; ClassificationResponse: id,
#         object "list", created, model, data, usage = UsageInfo), request fields from
#         vllm/entrypoints/pooling/base/protocol.py (truncate_prompt_tokens >= -1,
#         truncation_side "left" | "right", use_activation);
#   TEI   router/src/http/types.rs at huggingface/text-embeddings-inference@265deb2ad692
#         (PredictRequest: inputs, truncate, truncation_direction, raw_scores; PredictInput's
#         grammar: "a", ["a"], ["a","b"], [["a"],["a","b"]]; Prediction: score, label;
#         PredictResponse: one list or a list per input) and router/src/http/server.rs at
#         @bc0fa321bfeb (predictions sorted by score, highest first; ErrorResponse
#         {error, error_type} with validation 413, empty 400, overloaded 429, backend 424),
# and every probability against /v1/classify's for the same input.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/daemon.sh"
B=${top_builddir:-.}
M=$top_srcdir/models/demo/student.gguf
T=$(mktemp -d /tmp/bd-test-compat-XXXXXX)
PID=""
trap 'kill -9 $PID 2>/dev/null; rm -rf "$T"' EXIT

need python3

bd_daemon "$T" --model "$M"
ok $? "daemon serving the demo student"

# The checker prints TAP lines without numbers ("ok - ..." / "not ok - ..."); they are counted here.
python3 - "$(cat "$T/port")" >"$T/out.txt" 2>&1 <<'EOF'
import http.client, json, math, sys, time

port = int(sys.argv[1])

def post(path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", path, body if isinstance(body, str) else json.dumps(body),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r.getheader("Content-Type"), json.loads(data)

def get(path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", path)
    r = c.getresponse()
    return json.loads(r.read())

def check(cond, name):
    print(("ok - " if cond else "not ok - ") + name)
    sys.stdout.flush()

TEXTS = ["a gorgeous, witty film", "dull and lifeless", "it is neither here nor there"]
TOL = 1e-6   # same engine, same inputs: scores agree to float rounding
labels = [m for m in get("/v1/models")["data"] if m["id"] == "student"][0]["labels"]
check(labels == ["negative", "positive"], "the demo student's labels, in class order: %s" % labels)
st, ct, ref = post("/v1/classify", {"input": TEXTS})
check(st == 200, "/v1/classify answers (the reference)")
ref_probs = [[d["probs"][l] for l in labels] for d in ref["data"]]

def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    return [x / sum(e) for x in e]

def close(a, b, tol=TOL):
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))

# ---- vLLM POST /classify ----------------------------------------------------------------------
now = time.time()
st, ct, r = post("/classify", {"model": "student", "input": TEXTS})
check(st == 200 and ct.startswith("application/json"), "vLLM /classify: 200 JSON")
check(set(r) == {"id", "object", "created", "model", "data", "usage"},
      "ClassificationResponse has exactly id, object, created, model, data, usage: %s" % sorted(r))
check(isinstance(r["id"], str) and r["id"].startswith("classify-"), "id 'classify-...'")
check(r["object"] == "list", "object 'list'")
check(isinstance(r["created"], int) and abs(r["created"] - now) < 60, "created: unix seconds")
check(r["model"] == "student", "model: the model that answered")
check(len(r["data"]) == 3, "one ClassificationData per input")
for i, d in enumerate(r["data"]):
    check(set(d) == {"index", "label", "probs", "num_classes"},
          "data[%d] has exactly index, label, probs, num_classes" % i)
    check(d["index"] == i and d["num_classes"] == 2 and isinstance(d["probs"], list)
          and len(d["probs"]) == 2, "data[%d]: index %d, num_classes 2, 2 probs" % (i, i))
    check(close(d["probs"], ref_probs[i]),
          "data[%d].probs in class order equal /v1/classify's: %s vs %s" % (i, d["probs"], ref_probs[i]))
    check(d["label"] == labels[d["probs"].index(max(d["probs"]))] == ref["data"][i]["label"],
          "data[%d].label is the argmax class (%s)" % (i, d["label"]))
u = r["usage"]
check(set(u) == {"prompt_tokens", "total_tokens", "completion_tokens", "prompt_tokens_details"}
      and u["prompt_tokens"] == u["total_tokens"] == ref["usage"]["prompt_tokens"]
      and u["completion_tokens"] == 0 and u["prompt_tokens_details"] is None,
      "usage is UsageInfo with /v1/classify's prompt tokens: %s" % u)
st, _, r1 = post("/classify", {"input": TEXTS[1]})
check(st == 200 and len(r1["data"]) == 1 and close(r1["data"][0]["probs"], ref_probs[1]),
      "input as one string; the active classification model without 'model'")
st, _, rl = post("/classify", {"input": TEXTS, "use_activation": False})
logits = [d["probs"] for d in rl["data"]] if st == 200 else []
check(st == 200 and all(close(softmax(l), p, 1e-5) for l, p in zip(logits, ref_probs))
      and any(abs(x) > 1.0 for l in logits for x in l),
      "use_activation false: raw logits whose softmax is /v1/classify's probs")
# truncation: refused by default, as vLLM refuses a prompt longer than max_model_len
long_text = "dull and lifeless, " * 400 + "a gorgeous, witty film, " * 150  # each part > 512 tokens
st, _, e = post("/classify", {"input": long_text})
check(st == 400 and set(e) == {"error"} and set(e["error"]) == {"message", "type", "param", "code"}
      and "context" in e["error"]["message"],
      "too long without truncate_prompt_tokens: 400 in the OpenAI error shape: %s" % e)
st, _, tl = post("/classify", {"input": long_text, "truncate_prompt_tokens": 24})
st2, _, tr = post("/classify", {"input": long_text, "truncate_prompt_tokens": 24,
                                "truncation_side": "right"})
check(st == 200 and st2 == 200 and 20 <= tl["usage"]["prompt_tokens"] <= 24
      and 20 <= tr["usage"]["prompt_tokens"] <= 24,
      "truncate_prompt_tokens 24: at most 24 tokens, template included (%s, %s)"
      % (tl.get("usage"), tr.get("usage")))
check(st == 200 and st2 == 200 and tl["data"][0]["label"] == "positive"
      and tr["data"][0]["label"] == "negative",
      "left (default) keeps the end ('a gorgeous, witty film'), right keeps the start ('dull')")
st, _, t1 = post("/classify", {"input": long_text, "truncate_prompt_tokens": -1})
check(st == 200 and t1["usage"]["prompt_tokens"] <= 512,
      "truncate_prompt_tokens -1: cut to the model's context (%s)" % t1.get("usage"))
for body, field, want in [({"input": "x", "truncate_prompt_tokens": 0}, "truncate_prompt_tokens", 400),
                          ({"input": "x", "truncation_side": "middle"}, "truncation_side", 400),
                          ({"input": "x", "bogus": 1}, "bogus", 400),
                          ({"input": [1, 2]}, "input", 400),
                          ({"input": []}, "input", 400),
                          ({"input": ["x"] * 257}, "input", 413),
                          ({"input": "x", "model": "nope"}, "model", 404)]:
    st, _, e = post("/classify", body)
    check(st == want and e["error"]["param"] == field,
          "%s -> %d naming '%s': %s" % (json.dumps(body)[:60], want, field, e["error"]["message"]))

# ---- TEI POST /predict -------------------------------------------------------------------------
def is_predictions(lst, ref_row, scores_are_probs=True):
    ok = isinstance(lst, list) and len(lst) == 2
    ok = ok and all(isinstance(p, dict) and set(p) == {"label", "score"} for p in lst)
    ok = ok and all(lst[k]["score"] >= lst[k + 1]["score"] for k in range(len(lst) - 1))
    if ok and scores_are_probs:
        ok = all(abs(p["score"] - ref_row[labels.index(p["label"])]) <= TOL for p in lst)
    return ok

st, ct, r = post("/predict", {"inputs": TEXTS[0]})
check(st == 200 and ct.startswith("application/json") and is_predictions(r, ref_probs[0]),
      "TEI /predict, one string: [{label, score}] highest first, scores = /v1/classify's: %s" % r)
st, _, r = post("/predict", {"inputs": [TEXTS[1]]})
check(st == 200 and is_predictions(r, ref_probs[1]),
      "inputs [\"a\"] is one sequence (TEI's grammar), not a batch")
st, _, r = post("/predict", {"inputs": [[t] for t in TEXTS]})
check(st == 200 and isinstance(r, list) and len(r) == 3
      and all(is_predictions(r[i], ref_probs[i]) for i in range(3)),
      "a batch [[a],[b],[c]]: one prediction list per input, in input order")
st, _, r = post("/predict", {"inputs": [[TEXTS[0]]]})
check(st == 200 and len(r) == 1 and is_predictions(r[0], ref_probs[0]),
      "a batch of one is still a list of lists")
st, _, r = post("/predict", {"inputs": [[t] for t in TEXTS], "raw_scores": True})
ok_raw = st == 200 and all(is_predictions(r[i], None, False) for i in range(3))
if ok_raw:
    for i in range(3):
        by = {p["label"]: p["score"] for p in r[i]}
        ok_raw = ok_raw and close([by[l] for l in labels], logits[i], 1e-5)
check(ok_raw, "raw_scores: the logits (those of vLLM's use_activation false), sorted")
st, _, e = post("/predict", {"inputs": long_text})
check(st == 400 and set(e) == {"error", "error_type"} and e["error_type"] == "validation"
      and "context" in e["error"],
      "too long without truncate: refused in TEI's error shape: %s" % e)
st, _, r = post("/predict", {"inputs": long_text, "truncate": True})
check(st == 200 and r[0]["label"] == "negative", "truncate true cuts the end by default (keeps 'dull')")
for side in ["Left", "left"]:
    st, _, r = post("/predict", {"inputs": long_text, "truncate": True, "truncation_direction": side})
    check(st == 200 and r[0]["label"] == "positive",
          "truncation_direction %s keeps the end ('a gorgeous, witty film')" % side)
for body, want, etype in [({"inputs": []}, 400, "empty"),
                          ({"inputs": ["a", "b"]}, 400, "validation"),
                          ({"inputs": [["a", "b"]]}, 400, "validation"),
                          ({"inputs": ["a", "b", "c"]}, 400, "validation"),
                          ({"inputs": 5}, 400, "validation"),
                          ({"inputs": "x", "truncate": "yes"}, 400, "validation"),
                          ({"inputs": "x", "extra": 1}, 400, "validation"),
                          ({"inputs": [["x"]] * 257}, 413, "validation")]:
    st, _, e = post("/predict", body)
    check(st == want and set(e) == {"error", "error_type"} and e["error_type"] == etype,
          "%s -> %d, error_type %s: %s" % (json.dumps(body)[:50], want, etype, e))
st, _, e = post("/predict", "{not json")
check(st == 400 and set(e) == {"error", "error_type"}, "bad JSON -> 400 in TEI's shape")
EOF
relay_end $? "$T/out.txt" "$PID"
done_testing
