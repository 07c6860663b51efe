#!/usr/bin/env bash
# Training throughput of hone (burn Flex) against PyTorch, eager and under torch.compile (with
# AdamW(fused=True)), for the identical model and step, on the same number of threads. The two run one after the other (never at once: they would share the
# cores), alternating for ROUNDS rounds, and every figure printed is the median over rounds (each
# round's figure is itself the median step after warmup). Prints tokens/s of each, the ratio, the
# effective GFLOP/s and model FLOPs utilisation against the machine's measured f32 matmul peak (the
# best single 1024³ or 2048³ product through torch, burn Flex, or the `gemm` crate called directly), and peak RSS of each process, after the CPU model
# and the SIMD level each side ran at (hone's own loops, its GEMM, PyTorch's kernels).
#
# Usage: scripts/bench_train.sh [--preset tiny] [--vocab 4096] [--batch 16] [--seq 128] [--steps 10]
# Needs: a venv with torch at .venv (python3 -m venv .venv && .venv/bin/pip install torch numpy), or
# PYTHON=/path/to/python, and /usr/bin/time. THREADS (default 2) sets both sides' thread count;
# ROUNDS (default 3) the number of alternations; COMPILE=0 leaves out the torch.compile column;
# UNFUSED=1 adds hone with HONE_FUSED=0 (burn's plain ops) to each round. HONE_BIN runs another build
# of the benchmark instead of building this one; HONE_BASE adds a column "hone-base" that runs another
# build side by side (e.g. one without the x86-v4 feature:
#   cargo build --release -p hone-train --example bench_train --no-default-features \
#     --target-dir target-avx2 && HONE_BASE=target-avx2/release/examples/bench_train scripts/bench_train.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-3}"
UNFUSED="${UNFUSED:-0}"
COMPILE="${COMPILE:-1}"
PY="${PYTHON:-.venv/bin/python}"
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="${HONE_BIN:-}"
if [ -z "$BIN" ]; then
  cargo build --release -q -p hone-train --example bench_train
  BIN="$TARGET/release/examples/bench_train"
fi
out=$(mktemp -d)
run_hone() { # name, extra env
  local name=$1; shift
  local bin="$BIN"
  [ "$name" = hone-base ] && bin="$HONE_BASE"
  echo "  $name (burn Flex), RAYON_NUM_THREADS=$THREADS ..." >&2
  env "$@" RAYON_NUM_THREADS=$THREADS /usr/bin/time -v "$bin" "${ARGS[@]}" \
    >"$out/$name.$r.json" 2>"$out/$name.$r.err" || { cat "$out/$name.$r.err" >&2; exit 1; }
}
ARGS=("$@")
names="hone pytorch"
[ -n "${HONE_BASE:-}" ] && names="hone hone-base pytorch"
[ "$UNFUSED" = 1 ] && names="${names/ pytorch/ hone-unfused pytorch}"
[ "$COMPILE" = 1 ] && names="$names pytorch-compile"
run_torch() { # name, extra args
  local name=$1; shift
  echo "  $name, torch.set_num_threads($THREADS) ..." >&2
  OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS /usr/bin/time -v "$PY" scripts/bench_train_torch.py --threads "$THREADS" "$@" "${ARGS[@]}" \
    >"$out/$name.$r.json" 2>"$out/$name.$r.err" || { cat "$out/$name.$r.err" >&2; exit 1; }
}
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  run_hone hone HONE_FUSED=1
  [ -n "${HONE_BASE:-}" ] && run_hone hone-base HONE_FUSED=1
  [ "$UNFUSED" = 1 ] && run_hone hone-unfused HONE_FUSED=0
  run_torch pytorch
  [ "$COMPILE" = 1 ] && run_torch pytorch-compile --compile
done
"$PY" - "$out" "$ROUNDS" $names <<'PYEOF'
import json, re, statistics, sys
d, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def rss(f):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f).read())
    return int(m.group(1)) / 1024 if m else float("nan")
runs = {n: [json.load(open(f"{d}/{n}.{r}.json")) | {"rss": rss(f"{d}/{n}.{r}.err")} for r in range(1, rounds + 1)] for n in names}
med = lambda n, k: statistics.median(x[k] for x in runs[n])
h, t = runs["hone"][0], runs["pytorch"][0]
peak = max(med("hone", "matmul_gflops"), med("hone", "gemm_gflops"), med("pytorch", "matmul_gflops"))
fpt = h["flops_per_token"]
levels = ", ".join(f"{n} loops {runs[n][0].get('simd', '?')} GEMM {runs[n][0].get('gemm_simd', '?')}" for n in names if n.startswith("hone"))
print(f"cpu: {h.get('cpu', '?')}; SIMD: {levels}, torch {t.get('simd', '?')} (torch {t['torch']})")
print(f"model: {h['params']/1e6:.2f}M parameters (torch counts {t['params']/1e6:.2f}M), {fpt/1e6:.1f} MFLOP/token, {h['threads']} threads, {rounds} rounds (medians)")
print(f"matmul peak (f32, best single product): burn Flex {med('hone', 'matmul_gflops'):.1f} GFLOP/s, gemm crate {med('hone', 'gemm_gflops'):.1f}, torch {med('pytorch', 'matmul_gflops'):.1f} -> peak {peak:.1f}")
for n in names:
    tps = med(n, "tokens_per_s")
    each = " ".join(f"{x['tokens_per_s']:.0f}" for x in runs[n])
    print(f"{n:13} {tps:7.0f} tokens/s  {med(n, 'step_s'):.3f} s/step  {tps * fpt / 1e9:5.1f} GFLOP/s  MFU {100 * tps * fpt / 1e9 / peak:5.1f}%  peak RSS {med(n, 'rss'):6.0f} MiB  loss {runs[n][-1]['first_loss']:.3f} -> {runs[n][-1]['last_loss']:.3f}  (rounds: {each})")
for n in names:
    if n.startswith("hone"):
        for peer in [p for p in names if p.startswith("pytorch")]:
            print(f"ratio {n}/{peer}: {med(n, 'tokens_per_s') / med(peer, 'tokens_per_s'):.2f}x")
PYEOF
