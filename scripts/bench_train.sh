#!/usr/bin/env bash
# Training throughput of hone (burn Flex) against PyTorch for the identical model and step, on the
# same number of threads. The two run one after the other (never at once: they would share the
# cores), alternating for ROUNDS rounds, and every figure printed is the median over rounds (each
# round's figure is itself the median step after warmup). Prints tokens/s of each, the ratio, the
# effective GFLOP/s and model FLOPs utilisation against the machine's measured f32 matmul peak (the
# better of the two libraries' 1024³ matmul rates), and peak RSS of each process.
#
# Usage: scripts/bench_train.sh [--preset tiny] [--vocab 4096] [--batch 16] [--seq 128] [--steps 10]
# Needs: a venv with torch at .venv (python3 -m venv .venv && .venv/bin/pip install torch numpy), or
# PYTHON=/path/to/python, and /usr/bin/time. THREADS (default 2) sets both sides' thread count;
# ROUNDS (default 3) the number of alternations; UNFUSED=1 adds hone with HONE_FUSED=0 (burn's plain
# ops) to each round.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-3}"
UNFUSED="${UNFUSED:-0}"
PY="${PYTHON:-.venv/bin/python}"
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p hone-train --example bench_train
out=$(mktemp -d)
run_hone() { # name, extra env
  local name=$1; shift
  echo "  $name (burn Flex), RAYON_NUM_THREADS=$THREADS ..." >&2
  env "$@" RAYON_NUM_THREADS=$THREADS /usr/bin/time -v "$TARGET/release/examples/bench_train" "${ARGS[@]}" \
    >"$out/$name.$r.json" 2>"$out/$name.$r.err" || { cat "$out/$name.$r.err" >&2; exit 1; }
}
ARGS=("$@")
names="hone pytorch"
[ "$UNFUSED" = 1 ] && names="hone hone-unfused pytorch"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  run_hone hone HONE_FUSED=1
  [ "$UNFUSED" = 1 ] && run_hone hone-unfused HONE_FUSED=0
  echo "  pytorch, torch.set_num_threads($THREADS) ..." >&2
  OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS /usr/bin/time -v "$PY" scripts/bench_train_torch.py --threads "$THREADS" "$@" \
    >"$out/pytorch.$r.json" 2>"$out/pytorch.$r.err" || { cat "$out/pytorch.$r.err" >&2; exit 1; }
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
peak = max(med("hone", "matmul_gflops"), med("pytorch", "matmul_gflops"))
fpt = h["flops_per_token"]
print(f"model: {h['params']/1e6:.2f}M parameters (torch counts {t['params']/1e6:.2f}M), {fpt/1e6:.1f} MFLOP/token, {h['threads']} threads, {rounds} rounds (medians)")
print(f"matmul peak (1024^3 f32): burn Flex {med('hone', 'matmul_gflops'):.1f} GFLOP/s, torch {med('pytorch', 'matmul_gflops'):.1f} GFLOP/s -> peak {peak:.1f}")
for n in names:
    tps = med(n, "tokens_per_s")
    each = " ".join(f"{x['tokens_per_s']:.0f}" for x in runs[n])
    print(f"{n:13} {tps:7.0f} tokens/s  {med(n, 'step_s'):.3f} s/step  {tps * fpt / 1e9:5.1f} GFLOP/s  MFU {100 * tps * fpt / 1e9 / peak:5.1f}%  peak RSS {med(n, 'rss'):6.0f} MiB  loss {runs[n][-1]['first_loss']:.3f} -> {runs[n][-1]['last_loss']:.3f}  (rounds: {each})")
for n in names:
    if n != "pytorch":
        print(f"ratio {n}/pytorch: {med(n, 'tokens_per_s') / med('pytorch', 'tokens_per_s'):.2f}x")
PYEOF
