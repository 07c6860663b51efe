#!/usr/bin/env bash
# Training throughput of hone (burn Flex) against PyTorch for the identical model and step, on the
# same number of threads, run one after the other (never at once: they would share the cores).
# Prints tokens/s of each, the ratio, model FLOPs utilisation against the machine's measured f32
# matmul peak (the better of the two libraries' 1024³ matmul rates), and peak RSS of each process.
#
# Usage: scripts/bench_train.sh [--preset tiny] [--vocab 4096] [--batch 16] [--seq 128] [--steps 10]
# Needs: a venv with torch at .venv (python3 -m venv .venv && .venv/bin/pip install torch numpy),
# and /usr/bin/time. THREADS (default 2) sets both sides' thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"
PY="${PYTHON:-.venv/bin/python}"
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p hone-train --example bench_train
out=$(mktemp -d)
echo "hone (burn Flex), RAYON_NUM_THREADS=$THREADS ..." >&2
RAYON_NUM_THREADS=$THREADS /usr/bin/time -v "$TARGET/release/examples/bench_train" "$@" \
  >"$out/hone.json" 2>"$out/hone.err" || { cat "$out/hone.err" >&2; exit 1; }
echo "PyTorch, torch.set_num_threads($THREADS) ..." >&2
OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS /usr/bin/time -v "$PY" scripts/bench_train_torch.py --threads "$THREADS" "$@" \
  >"$out/torch.json" 2>"$out/torch.err" || { cat "$out/torch.err" >&2; exit 1; }
"$PY" - "$out" <<'PYEOF'
import json, re, sys
d = sys.argv[1]
h = json.load(open(f"{d}/hone.json"))
t = json.load(open(f"{d}/torch.json"))
def rss(f):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f).read())
    return int(m.group(1)) / 1024 if m else float("nan")
peak = max(h["matmul_gflops"], t["matmul_gflops"])
fpt = h["flops_per_token"]
print(f"model: {h['params']/1e6:.2f}M parameters (torch counts {t['params']/1e6:.2f}M), {fpt/1e6:.1f} MFLOP/token, {h['threads']} threads")
print(f"matmul peak (1024^3 f32): burn Flex {h['matmul_gflops']:.1f} GFLOP/s, torch {t['matmul_gflops']:.1f} GFLOP/s -> peak {peak:.1f}")
for name, r, f in (("hone", h, "hone.err"), ("pytorch", t, "torch.err")):
    mfu = r["tokens_per_s"] * fpt / 1e9 / peak
    print(f"{name:8} {r['tokens_per_s']:8.0f} tokens/s  {r['step_s']:.3f} s/step  MFU {100*mfu:5.1f}%  peak RSS {rss(f'{d}/{f}'):7.0f} MiB  loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}")
print(f"ratio hone/pytorch: {h['tokens_per_s']/t['tokens_per_s']:.2f}x")
PYEOF
