#!/usr/bin/env python3
"""Reference fixtures for the trainer (tests/test-trn-parity.c, tests/test-trn-metrics.c).

Run where PyTorch and transformers are (any CPU is enough; the GPU host has them):
    python3 tools/make_train_fixtures.py OUTDIR
and copy OUTDIR/* to tests/fixtures/train/.

What it writes:
  teacher/, student/      HF dirs (config.json + model.safetensors, fp32). Random-init Qwen3 of
                          odd shapes (hidden 40, inter 72, 2 layers, 5 heads, 1 kv head, hd 8,
                          vocab 97); the student is another init plus SubLN weights (random
                          around 1 so a misplaced SubLN is caught).
  ref.bin + ref.json      float32 arrays (offsets in floats) named in ref.json: per case the
                          inputs, the losses, the gradient of every student tensor, and for case
                          "cosine" the weights after 3 AdamW steps.
  metrics.json            ROUGE (torchmetrics, no stemmer) and BLEU (sacrebleu, 13a) of fixed
                          pairs, when those packages are present.

The step is the DESIGN.md §1 method written independently of the C code: BitLinear via
x + (q(x) - x).detach() for both weights (absmean ternary, per tensor) and activations (absmax
INT8, per token), SubLN before o_proj and down_proj, CE over target rows, LD = KL(teacher ||
student) at tau (no tau^2), AD = MiniLM-v2 relations (Algorithm 1 "cosine" or eq. 12 "scaled").
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

EPS_Q = 1e-5
torch.set_default_dtype(torch.float32)


def wq(W):
    d = W.abs().mean()
    q = torch.clamp(torch.round(W / (d + EPS_Q)), -1, 1) * d
    return W + (q - W).detach()


def aq(x):
    g = x.abs().amax(dim=-1, keepdim=True)
    q = torch.clamp(torch.round(127.0 * x / (g + EPS_Q)), -128, 127) * g / 127.0
    return x + (q - x).detach()


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, theta):  # x [B, H, T, D]
    D, T = x.shape[-1], x.shape[-2]
    inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    f = torch.outer(torch.arange(T).float(), inv)
    emb = torch.cat([f, f], -1)
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * emb.cos() + torch.cat([-x2, x1], -1) * emb.sin()


def forward(sd, cfg, tok, quant, subln):
    """tok [B, T] -> logits [B, T, V], states {layer: (qn, kn, v)} each [B, T, heads*hd]."""
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps, theta = cfg["rms_norm_eps"], cfg["rope_parameters"]["rope_theta"]
    B, T = tok.shape
    lin = (lambda x, W: aq(x) @ wq(W).T) if quant else (lambda x, W: x @ W.T)
    E = sd["model.embed_tokens.weight"]
    h = E[tok]
    mask = torch.full((T, T), float("-inf")).triu(1)
    states = {}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms(h, sd[p + "input_layernorm.weight"], eps)
        q = lin(x, sd[p + "self_attn.q_proj.weight"]).view(B, T, H, D)
        k = lin(x, sd[p + "self_attn.k_proj.weight"]).view(B, T, KV, D)
        v = lin(x, sd[p + "self_attn.v_proj.weight"]).view(B, T, KV, D)
        qn = rms(q, sd[p + "self_attn.q_norm.weight"], eps)
        kn = rms(k, sd[p + "self_attn.k_norm.weight"], eps)
        states[i] = (qn.reshape(B, T, H * D), kn.reshape(B, T, KV * D), v.reshape(B, T, KV * D))
        qr = rope(qn.transpose(1, 2), theta)
        kr = rope(kn.transpose(1, 2), theta).repeat_interleave(H // KV, 1)
        vv = v.transpose(1, 2).repeat_interleave(H // KV, 1)
        a = torch.softmax(qr @ kr.transpose(-1, -2) / math.sqrt(D) + mask, -1) @ vv
        o = a.transpose(1, 2).reshape(B, T, H * D)
        if subln:
            o = rms(o, sd[p + "self_attn.attn_sub_norm.weight"], eps)
        h = h + lin(o, sd[p + "self_attn.o_proj.weight"])
        x = rms(h, sd[p + "post_attention_layernorm.weight"], eps)
        m = F.silu(lin(x, sd[p + "mlp.gate_proj.weight"])) * lin(x, sd[p + "mlp.up_proj.weight"])
        if subln:
            m = rms(m, sd[p + "mlp.ffn_sub_norm.weight"], eps)
        h = h + lin(m, sd[p + "mlp.down_proj.weight"])
    h = rms(h, sd["model.norm.weight"], eps)
    head = sd.get("lm_head.weight", E)
    return h @ head.T, states


def relation(s, t, S, kind, t_r):
    """Algorithm 1 (cosine) / eq. 12 (scaled): KL(R_t || R_s), batchmean over B*S*T rows."""
    B, T, Cs = s.shape

    def logrel(x):
        C = x.shape[-1]
        a = x.view(B, T, S, C // S).transpose(1, 2)
        if kind == "cosine":
            a = F.normalize(a, dim=-1)
            z = a @ a.transpose(-1, -2) / t_r
        else:
            z = a @ a.transpose(-1, -2) / math.sqrt(C // S)
        return F.log_softmax(z, -1)

    ls, lt = logrel(s), logrel(t)
    return F.kl_div(ls, lt, log_target=True, reduction="sum") / (B * S * T)


def losses(ssd, tsd, cfg, tok, target, lc):
    sl, sst = forward(ssd, cfg, tok, True, True)
    with torch.no_grad():
        tl, tst = forward(tsd, cfg, tok, False, False)
    V = sl.shape[-1]
    m = target.reshape(-1) >= 0
    sl2, tl2 = sl.reshape(-1, V)[m], tl.reshape(-1, V)[m]
    ce = F.cross_entropy(sl2, target.reshape(-1)[m])
    tau = lc["tau"]
    ld = F.kl_div(F.log_softmax(sl2 / tau, -1), F.log_softmax(tl2 / tau, -1), log_target=True,
                  reduction="none").sum(-1).mean()
    L = cfg["num_hidden_layers"]
    layers = list(range(L)) if lc["layer"] == -2 else [L - 1 if lc["layer"] < 0 else lc["layer"]]
    ad = sum(relation(sst[l][w], tst[l][w], lc["split_heads"], lc["rel"], lc["t_r"])
             for l in layers for w in range(3))
    return ce, ld, ad, ce + lc["lambda"] * ld + lc["gamma"] * ad


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/train"
    os.makedirs(out, exist_ok=True)
    from safetensors.torch import save_file
    cfg = {
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 1, "eos_token_id": 2, "head_dim": 8, "hidden_act": "silu",
        "hidden_size": 40, "initializer_range": 0.02, "intermediate_size": 72,
        "max_position_embeddings": 64, "model_type": "qwen3", "num_attention_heads": 5,
        "num_hidden_layers": 2, "num_key_value_heads": 1, "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "tie_word_embeddings": True, "torch_dtype": "float32", "vocab_size": 97,
        "use_sliding_window": False, "sliding_window": None,
    }
    H, I, V, L = 40, 72, 97, 2
    QD, KD = 40, 8

    def init(seed, subln):
        g = torch.Generator().manual_seed(seed)
        sd = {"model.embed_tokens.weight": 0.5 * torch.randn(V, H, generator=g)}
        for i in range(L):
            p = f"model.layers.{i}."
            shapes = [("input_layernorm.weight", (H,)), ("self_attn.q_proj.weight", (QD, H)),
                      ("self_attn.k_proj.weight", (KD, H)), ("self_attn.v_proj.weight", (KD, H)),
                      ("self_attn.q_norm.weight", (8,)), ("self_attn.k_norm.weight", (8,)),
                      ("self_attn.o_proj.weight", (H, QD)),
                      ("post_attention_layernorm.weight", (H,)),
                      ("mlp.gate_proj.weight", (I, H)), ("mlp.up_proj.weight", (I, H)),
                      ("mlp.down_proj.weight", (H, I))]
            if subln:
                shapes += [("self_attn.attn_sub_norm.weight", (QD,)),
                           ("mlp.ffn_sub_norm.weight", (I,))]
            for n, s in shapes:
                if len(s) == 1:
                    sd[p + n] = 1.0 + 0.2 * torch.randn(*s, generator=g)
                else:
                    sd[p + n] = torch.randn(*s, generator=g) / math.sqrt(s[1])
        sd["model.norm.weight"] = 1.0 + 0.2 * torch.randn(H, generator=g)
        return sd

    tsd, ssd = init(11, False), init(12, True)
    for name, sd in (("teacher", tsd), ("student", ssd)):
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(d, "model.safetensors"),
                  metadata={"format": "pt"})
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)

    g = torch.Generator().manual_seed(5)
    B, T = 2, 7
    tok = torch.randint(0, V, (B, T), generator=g)
    target = torch.full((B, T), -1, dtype=torch.int64)
    target[0, 3:6] = tok[0, 4:7]
    target[1, 1:6] = tok[1, 2:7]

    arrays, blob = {}, []

    def put(name, t):
        t = t.detach().to(torch.float32).contiguous().reshape(-1)
        arrays[name] = {"off": sum(x.numel() for x in blob), "n": t.numel()}
        blob.append(t)

    put("tok", tok.float())
    put("target", target.float())
    cases = {
        "cosine": {"lambda": 2.0, "gamma": 30.0, "tau": 5.0, "layer": -1, "split_heads": 2,
                   "rel": "cosine", "t_r": 1.0},
        "scaled_all": {"lambda": 1.0, "gamma": 3.0, "tau": 2.0, "layer": -2, "split_heads": 1,
                       "rel": "scaled", "t_r": 1.0},
    }
    adam = {"lr": 3e-3, "min_lr": 3e-4, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
            "weight_decay": 0.1, "clip": 1.0, "warmup": 2, "total": 4, "steps": 3}
    names = list(ssd.keys())
    for cn, lc in cases.items():
        params = {k: v.clone().requires_grad_(True) for k, v in ssd.items()}
        ce, ld, ad, loss = losses(params, tsd, cfg, tok, target, lc)
        loss.backward()
        put(cn + ".losses", torch.tensor([ce.item(), ld.item(), ad.item(), loss.item()]))
        print(cn, "ce", ce.item(), "ld", ld.item(), "ad", ad.item(), "loss", loss.item())
        for k in names:
            put(cn + ".grad." + k, params[k].grad)
        if cn != "cosine":
            continue
        decay = [params[k] for k in names if params[k].ndim == 2]
        nodecay = [params[k] for k in names if params[k].ndim == 1]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": adam["weight_decay"]},
                                 {"params": nodecay, "weight_decay": 0.0}], lr=adam["lr"],
                                betas=(adam["beta1"], adam["beta2"]), eps=adam["eps"])
        lrs, step_losses = [], []
        for s in range(adam["steps"]):
            if s < adam["warmup"]:
                lr = adam["lr"] * (s + 1) / adam["warmup"]
            else:
                p = (s - adam["warmup"]) / max(1, adam["total"] - adam["warmup"])
                lr = adam["min_lr"] + 0.5 * (adam["lr"] - adam["min_lr"]) * (1 + math.cos(math.pi * p))
            for gr in opt.param_groups:
                gr["lr"] = lr
            lrs.append(lr)
            opt.zero_grad()
            ce, ld, ad, loss = losses(params, tsd, cfg, tok, target, lc)
            step_losses.append(loss.item())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(params.values()), adam["clip"])
            opt.step()
        put("adam.lrs", torch.tensor(lrs))
        put("adam.losses", torch.tensor(step_losses))
        for k in names:
            put("adam.after." + k, params[k])
    torch.cat(blob).numpy().tofile(os.path.join(out, "ref.bin"))
    with open(os.path.join(out, "ref.json"), "w") as f:
        json.dump({"torch": torch.__version__, "B": B, "T": T, "cases": cases, "adam": adam,
                   "tensors": names, "arrays": arrays}, f, indent=1)

    # ---------------------------------------------------------------- metrics references
    pairs = [
        ("the cat sat on the mat.\nit was happy.", "the cat was on the mat.\nthe cat was happy."),
        ("Police arrested 3 men on Friday, officials said.",
         "Three men were arrested by police on Friday."),
        ("A B C D E F", "a b c d e f"),
        ("nothing in common", "totally different words here"),
        ("It's 3.5% of the U.S. budget -- about $1,200 per person!",
         "It is 3.5% of the U.S. budget, about $1,200 per person."),
    ]
    met = {"pairs": [[p, r] for p, r in pairs]}
    try:
        import sacrebleu
        met["bleu_corpus"] = sacrebleu.corpus_bleu([p for p, _ in pairs], [[r for _, r in pairs]]).score
        met["bleu_sentence"] = [sacrebleu.sentence_bleu(p, [r]).score for p, r in pairs]
        met["sacrebleu"] = sacrebleu.__version__
    except Exception as e:  # noqa: BLE001
        print("no sacrebleu:", e)
    try:
        from torchmetrics.text.rouge import ROUGEScore
        rs = ROUGEScore(rouge_keys=("rouge1", "rouge2", "rougeL", "rougeLsum"))
        met["rouge"] = []
        for p, r in pairs:
            sc = rs(p, r)
            met["rouge"].append({k: float(v) for k, v in sc.items() if k.endswith("fmeasure")})
        met["rouge_impl"] = "torchmetrics"
    except Exception as e:  # noqa: BLE001
        print("no torchmetrics rouge:", e)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(met, f, indent=1)
    print(json.dumps({k: v for k, v in met.items() if k != "pairs"}, indent=1))


if __name__ == "__main__":
    main()
