#!/usr/bin/env python3
"""PyTorch eager reference of the GPU trainer's step, for tokens/s against bench-cuda-train.

    python3 tools/bench_cuda_torch.py MODEL_DIR B T ACCUM STEPS

Same step as train/cuda_bench.c, built from tools/make_train_fixtures.py (the CPU trainer's
PyTorch reference): the teacher = MODEL_DIR (fp32 master weights, forward under bf16 autocast),
the student = its copy with SubLN and BitLinear (STE), losses CE + 10*LD + 1e5*AD (cosine
relation, last layer, split_heads 1), AdamW (foreach) with clipping at 1.0; and continued
pre-training (student, CE only). Matrix products run in bf16 (torch.autocast), as in the C
backend's bf16 mode. Prints one JSON line per mode, like bench-cuda-train.
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_train_fixtures as ref  # noqa: E402


def main():
    d, B, T, accum, steps = sys.argv[1], *map(int, sys.argv[2:6])
    from safetensors.torch import load_file
    torch.set_default_device("cuda")
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg.setdefault("rope_parameters", {"rope_theta": cfg.get("rope_theta", 10000.0)})
    tsd = {k: v.float().cuda() for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
    ssd = {k: v.clone().requires_grad_(True) for k, v in tsd.items()}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        ssd[p + "self_attn.attn_sub_norm.weight"] = torch.ones(
            cfg["num_attention_heads"] * cfg["head_dim"], requires_grad=True)
        ssd[p + "mlp.ffn_sub_norm.weight"] = torch.ones(cfg["intermediate_size"],
                                                        requires_grad=True)
    V = cfg["vocab_size"]
    g = torch.Generator(device="cuda").manual_seed(7)
    tok = torch.randint(0, V, (B, T), generator=g)
    target = torch.cat([tok[:, 1:], torch.full((B, 1), -1)], 1)
    lc = {"tau": 5.0, "layer": -1, "split_heads": 1, "rel": "cosine", "t_r": 1.0,
          "lambda": 10.0, "gamma": 1e5}
    L = cfg["num_hidden_layers"]
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    lin = L * (cfg["hidden_size"] * (2 * H * D + 2 * KV * D) +
               3 * cfg["hidden_size"] * cfg["intermediate_size"]) + V * cfg["hidden_size"]
    att = L * T * H * D
    for mode in ("distill", "pretrain"):
        params = list(ssd.values())
        decay = [p for p in params if p.dim() == 2]
        nodecay = [p for p in params if p.dim() != 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                 {"params": nodecay, "weight_decay": 0.0}], lr=1e-5,
                                foreach=True)
        t0 = None
        for k in range(steps + 1):
            if k == 1:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            for _ in range(accum):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    if mode == "distill":
                        ce, ld, ad, loss = ref.losses(ssd, tsd, cfg, tok, target, lc)
                    else:
                        sl, _ = ref.forward(ssd, cfg, tok, True, True)
                        m = target.reshape(-1) >= 0
                        loss = torch.nn.functional.cross_entropy(
                            sl.reshape(-1, V)[m].float(), target.reshape(-1)[m])
                        ce = loss
                (loss / accum).backward()
            gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        fpt = 6 * lin + 12 * att + ((2 * lin + 4 * att) if mode == "distill" else 0)
        ntok = B * T * accum * steps
        print(json.dumps({"impl": "pytorch-eager", "mode": mode, "B": B, "T": T, "accum": accum,
                          "steps": steps, "tokens_per_s": round(ntok / dt, 1),
                          "tflops": round(fpt * ntok / dt / 1e12, 1),
                          "mfu": round(fpt * ntok / dt / 989e12, 3), "ce": float(ce),
                          "grad_norm": float(gn)}), flush=True)
        del opt
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
