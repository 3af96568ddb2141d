#!/usr/bin/env python3
"""The PyTorch baseline a user would pick for BitDistill, for tokens/s against bench-cuda-train.

    python3 tools/bench_hf_bitdistill.py MODEL_DIR B T ACCUM STEPS [eager|compile|both] [MODES]

Hugging Face transformers' Qwen3ForCausalLM with SDPA attention: the teacher is MODEL_DIR as
loaded (fp32 master weights), the student its copy in which every decoder projection (q, k, v,
o, gate, up, down) is a BitLinear (absmean ternary weights, per-token absmax INT8 activations,
straight-through estimators) and a SubLN (RMSNorm) sits before o_proj and before down_proj, as
in the BitNet Distillation paper and the BitNet repository's training code. Losses as ours
(jobs/train/step.c, tools/make_train_fixtures.py): CE + 10 * logits KL at tau 5 (no tau^2)
+ 1e5 * MiniLM-v2 relation KL (cosine relations, t_r 1, split_heads 1) of the last layer's
Q/K/V states (after QK-norm, before RoPE); continued pre-training is CE alone. Everything under
bf16 autocast, fused AdamW (lr 1e-5, weight decay 0.01 on matrices), clipping at 1.0.
`compile` wraps both models in torch.compile (default mode). MODES: distill,pretrain (default)
or one of them. Tokens are random, as in
bench-cuda-train. One warm-up optimizer step (compilation happens there), then STEPS timed
steps. Prints one JSON line per (implementation, mode) with tokens/s, MFU (the FLOP count of
jobs/train/cuda_bench.c) and the peak memory: allocated (peak_gib, tensors alone) and held by
the caching allocator (peak_reserved_gib: what the GPU had to have, less the CUDA context that
bench-cuda-train's device_used_gib counts too).

With BENCH_LOCK=FILE and BENCH_PEERS=N set, N runs (say distill and pretrain, one process
each) compile side by side on the host's cores and still time their steps with the GPU to
themselves: each waits after its warm-up step until all N have warmed up (a barrier of files
in FILE.ready/, at most 15 minutes), then takes an exclusive flock(2) on FILE, runs one more
untimed step (the wait emptied the allocator's cache) and times its steps.
"""
import fcntl
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BitLinear(nn.Linear):
    """nn.Linear with absmean ternary weights and per-token absmax INT8 activations (STE)."""

    def forward(self, x):
        w = self.weight
        s = w.abs().mean()
        wq = (w / (s + 1e-5)).round().clamp(-1, 1) * s
        w = w + (wq - w).detach()
        g = x.abs().amax(-1, keepdim=True)
        xq = (x * (127.0 / (g + 1e-5))).round().clamp(-128, 127) * (g / 127.0)
        x = x + (xq - x).detach()
        return F.linear(x, w, self.bias)


class SubLN(nn.Module):
    """RMSNorm in front of a projection (the paper's SubLN)."""

    def __init__(self, width, proj, eps):
        super().__init__()
        self.norm = nn.RMSNorm(width, eps=eps)
        self.proj = proj

    def forward(self, x):
        return self.proj(self.norm(x))


def bitlinear_of(lin):
    b = BitLinear(lin.in_features, lin.out_features, bias=lin.bias is not None,
                  device=lin.weight.device, dtype=lin.weight.dtype)
    b.weight.data.copy_(lin.weight.data)
    if lin.bias is not None:
        b.bias.data.copy_(lin.bias.data)
    return b


def make_student(teacher, cfg):
    import copy
    s = copy.deepcopy(teacher)
    eps = cfg.rms_norm_eps
    for layer in s.model.layers:
        a, m = layer.self_attn, layer.mlp
        for n in ("q_proj", "k_proj", "v_proj"):
            setattr(a, n, bitlinear_of(getattr(a, n)))
        a.o_proj = SubLN(a.o_proj.in_features, bitlinear_of(a.o_proj), eps).cuda()
        for n in ("gate_proj", "up_proj"):
            setattr(m, n, bitlinear_of(getattr(m, n)))
        m.down_proj = SubLN(m.down_proj.in_features, bitlinear_of(m.down_proj), eps).cuda()
    s.requires_grad_(True)
    return s


def hook_states(model, store):
    """The last layer's Q/K/V states (after QK-norm, before RoPE) as [B, T, C] into store."""
    a = model.model.layers[-1].self_attn
    def keep(name):
        def h(_mod, _inp, out):
            store[name] = out.reshape(out.shape[0], out.shape[1], -1)
        return h
    a.q_norm.register_forward_hook(keep("q"))
    a.k_norm.register_forward_hook(keep("k"))
    a.v_proj.register_forward_hook(keep("v"))


def relation(s, t):
    """KL(R_t || R_s) of cosine relations, batchmean over B*T rows (split_heads 1, t_r 1)."""
    B, T, _ = s.shape
    def logrel(x):
        a = F.normalize(x.float(), dim=-1)
        return F.log_softmax(a @ a.transpose(-1, -2), -1)
    return F.kl_div(logrel(s), logrel(t), log_target=True, reduction="sum") / (B * T)


def mark_ready(folder, name):
    """Counts this process in the barrier of folder (also when it fails: peers go on)."""
    os.makedirs(folder, exist_ok=True)
    open(os.path.join(folder, f"{name}.{os.getpid()}"), "w").close()


def barrier(folder, n, name):
    """Marks this run warmed up in folder and waits until n runs have (15 minutes at most)."""
    mark_ready(folder, name)
    t = time.perf_counter()
    while len(os.listdir(folder)) < n and time.perf_counter() - t < 900:
        time.sleep(0.2)


def main():
    d, B, T, accum, steps = sys.argv[1], *map(int, sys.argv[2:6])
    which = sys.argv[6] if len(sys.argv) > 6 else "both"
    from transformers import AutoConfig, Qwen3ForCausalLM
    torch.backends.cuda.matmul.allow_tf32 = True
    cfg = AutoConfig.from_pretrained(d)
    V, L = cfg.vocab_size, cfg.num_hidden_layers
    H, KV, D = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    lin = L * (cfg.hidden_size * (2 * H * D + 2 * KV * D) +
               3 * cfg.hidden_size * cfg.intermediate_size) + V * cfg.hidden_size
    att = L * T * H * D
    g = torch.Generator(device="cuda").manual_seed(7)
    tok = torch.randint(0, V, (B, T), generator=g, device="cuda")
    target = torch.cat([tok[:, 1:], torch.full((B, 1), -100, device="cuda")], 1).reshape(-1)
    impls = ["eager", "compile"] if which == "both" else [which]
    modes = (sys.argv[7] if len(sys.argv) > 7 else "distill,pretrain").split(",")
    for impl in impls:
        for mode in modes:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            teacher = Qwen3ForCausalLM.from_pretrained(d, torch_dtype=torch.float32,
                                                       attn_implementation="sdpa").cuda()
            teacher.requires_grad_(False).eval()
            student = make_student(teacher, cfg).train()
            ts, ss = {}, {}
            if mode == "distill":
                hook_states(teacher, ts)
                hook_states(student, ss)
            else:
                del teacher
                teacher = None
            smod, tmod = student, teacher
            if impl == "compile":
                smod = torch.compile(student)
                tmod = torch.compile(teacher) if teacher is not None else None
            params = [p for p in student.parameters()]
            opt = torch.optim.AdamW(
                [{"params": [p for p in params if p.dim() == 2], "weight_decay": 0.01},
                 {"params": [p for p in params if p.dim() != 2], "weight_decay": 0.0}],
                lr=1e-5, fused=True)
            t0, tc = None, time.perf_counter()
            lock = None
            # with peers, a second untimed step after the wait refills the emptied cache
            warm = 2 if os.environ.get("BENCH_LOCK") else 1
            for k in range(steps + warm):
                if k == 1 and warm == 2:
                    torch.cuda.synchronize()
                    tw = time.perf_counter()
                    # while peers warm up, hold only weights and moments
                    opt.zero_grad(set_to_none=True)
                    torch.cuda.empty_cache()
                    barrier(os.environ["BENCH_LOCK"] + ".ready",
                            int(os.environ.get("BENCH_PEERS", "1")), mode)
                    lock = open(os.environ["BENCH_LOCK"], "a")
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    tc += time.perf_counter() - tw  # the wait is not warm-up
                if k == warm:
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    tc = t0 - tc
                opt.zero_grad(set_to_none=True)
                for _ in range(accum):
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        sl = smod(input_ids=tok).logits.reshape(-1, V).float()
                        ce = F.cross_entropy(sl, target, ignore_index=-100)
                        loss = ce
                        if mode == "distill":
                            with torch.no_grad():
                                tl = tmod(input_ids=tok).logits.reshape(-1, V).float()
                            m = target >= 0
                            ld = F.kl_div(F.log_softmax(sl[m] / 5.0, -1),
                                          F.log_softmax(tl[m] / 5.0, -1), log_target=True,
                                          reduction="none").sum(-1).mean()
                            ad = sum(relation(ss[w], ts[w]) for w in ("q", "k", "v"))
                            loss = ce + 10.0 * ld + 1e5 * ad
                    (loss / accum).backward()
                gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
            torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            if lock is not None:
                lock.close()  # releases the flock
            fpt = 6 * lin + 12 * att + ((2 * lin + 4 * att) if mode == "distill" else 0)
            ntok = B * T * accum * steps
            print(json.dumps({"impl": "hf-sdpa-" + impl, "mode": mode, "B": B, "T": T,
                              "accum": accum, "steps": steps,
                              "tokens_per_s": round(ntok / dt, 1),
                              "tflops": round(fpt * ntok / dt / 1e12, 1),
                              "mfu": round(fpt * ntok / dt / 989e12, 3),
                              "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                              "peak_reserved_gib":
                                  round(torch.cuda.max_memory_reserved() / 2**30, 2),
                              "warmup_s": round(tc, 1), "ce": float(ce),
                              "grad_norm": float(gn)}), flush=True)
            del opt, student, teacher, smod, tmod
            torch.cuda.empty_cache()


if __name__ == "__main__":
    if os.environ.get("BENCH_LOCK"):
        import atexit
        atexit.register(mark_ready, os.environ["BENCH_LOCK"] + ".ready", "exit")
    main()
