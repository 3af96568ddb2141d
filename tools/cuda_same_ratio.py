#!/usr/bin/env python3
"""tools/cuda_same_ratio.py — the same-call ratios of `tools/cuda_device_run.sh ... same`:
ours (bench-cuda-train's JSON lines) against the compiled transformers baseline
(tools/bench_hf_bitdistill.py's), per mode: tokens/s, MFU and memory (ours: device_used_gib;
the baseline's allocated and reserved peaks).

    tools/cuda_same_ratio.py OURS.txt HF-MODE.txt [HF-MODE.txt ...]
"""
import json
import sys


def runs(path, key):
    """The JSON lines of path that carry key, by mode."""
    out = {}
    for line in open(path, errors="replace"):
        line = line.strip()
        if line.startswith("{"):
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if key in r and "mode" in r:
                out[r["mode"]] = r
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ours = runs(sys.argv[1], "device_used_gib")
    base = {}
    for p in sys.argv[2:]:
        base.update(runs(p, "peak_gib"))
    print("| mode | ours tok/s (MFU) | baseline tok/s (MFU) | ratio | memory ours / baseline "
          "allocated (reserved) |")
    print("|---|---|---|---|---|")
    for mode in ("distill", "pretrain"):
        o, b = ours.get(mode), base.get(mode)
        if not o or not b:
            print(f"| {mode} | {'missing' if not o else o['tokens_per_s']} | "
                  f"{'missing' if not b else b['tokens_per_s']} | - | - |")
            continue
        print(f"| {mode} | {o['tokens_per_s']:,.0f} ({100 * o['mfu']:.1f}%) | "
              f"{b['tokens_per_s']:,.0f} ({100 * b['mfu']:.1f}%) | "
              f"{o['tokens_per_s'] / b['tokens_per_s']:.2f}x | {o['device_used_gib']:.2f} / "
              f"{b['peak_gib']:.2f} ({b.get('peak_reserved_gib', float('nan')):.2f}) GiB |")


if __name__ == "__main__":
    main()
