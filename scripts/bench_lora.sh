#!/usr/bin/env bash
# LoRA fine-tuning throughput of hone against PyTorch + peft on the identical setup: the same model
# in F32, the same adapter (rank, alpha, target modules), batch and sequence length, random tokens,
# cross-entropy over every position, AdamW, activation checkpointing off on both sides (or on on
# both with --checkpointing), the same number of threads. The two run one after the other (never at once), alternating for ROUNDS
# rounds; every figure is the median over rounds of each round's median step. Prints the CPU model
# and SIMD level each side ran at, tokens/s, the ratio, and peak RSS of each process.
#
# Usage: scripts/bench_lora.sh MODEL [--rank 16] [--alpha 32] [--batch 4] [--seq 512] [--steps 5]
#        [--checkpointing]
# MODEL: anything hone opens (a GGUF file, a Hugging Face folder, a checkpoint); PyTorch reads its
# `hone export --format hf`. Needs a venv with torch, transformers and peft at .venv (or PYTHON=...)
# and /usr/bin/time. THREADS (default 2), ROUNDS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-3}"
PY="${PYTHON:-.venv/bin/python}"
MODEL="$1"; shift
ARGS=("$@")
cargo build --release -q -p hone-train --example bench_lora
cargo build --release -q -p hone
out=$(mktemp -d)
target/release/hone export "$MODEL" --format hf --out "$out/hf" --force >/dev/null
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r/$ROUNDS: hone, RAYON_NUM_THREADS=$THREADS ..." >&2
  RAYON_NUM_THREADS=$THREADS /usr/bin/time -v target/release/examples/bench_lora "$MODEL" "${ARGS[@]}" \
    >"$out/hone.$r.json" 2>"$out/hone.$r.err" || { cat "$out/hone.$r.err" >&2; exit 1; }
  echo "round $r/$ROUNDS: pytorch+peft, torch.set_num_threads($THREADS) ..." >&2
  OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS /usr/bin/time -v "$PY" scripts/bench_lora_torch.py "$out/hf" \
    --threads "$THREADS" "${ARGS[@]}" >"$out/torch.$r.json" 2>"$out/torch.$r.err" \
    || { cat "$out/torch.$r.err" >&2; exit 1; }
done
"$PY" - "$out" "$ROUNDS" <<'PYEOF'
import json, re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def runs(name):
    rs = []
    for r in range(1, rounds + 1):
        j = json.loads(open(f"{out}/{name}.{r}.json").read().strip().splitlines()[-1])
        err = open(f"{out}/{name}.{r}.err").read()
        j["rss_mib"] = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) / 1024
        rs.append(j)
    return rs
h, t = runs("hone"), runs("torch")
med = lambda rs, k: statistics.median(x[k] for x in rs)
print(f"CPU: {h[0]['cpu']}; hone SIMD {h[0]['simd']} (GEMM {h[0]['gemm_simd']}); PyTorch {t[0]['torch']} SIMD {t[0]['simd']}; {h[0]['threads']} threads")
print(f"model: {h[0]['params']/1e6:.1f}M parameters, adapter {h[0]['trained_params']} (hone) / {t[0]['trained_params']} (peft) trained; "
      f"activation checkpointing {'on' if h[0]['checkpointing'] else 'off'} (hone) / {'on' if t[0]['checkpointing'] else 'off'} (PyTorch)")
print(f"{'':14} {'tokens/s':>10} {'s/step':>8} {'peak RSS':>10}   (medians of {rounds} rounds)")
for name, rs in [("hone", h), ("pytorch+peft", t)]:
    print(f"{name:14} {med(rs, 'tokens_per_s'):10.0f} {med(rs, 'step_s'):8.3f} {med(rs, 'rss_mib'):8.0f} MiB")
print(f"hone / pytorch+peft: {med(h, 'tokens_per_s') / med(t, 'tokens_per_s'):.2f}x tokens/s, "
      f"{med(h, 'rss_mib') / med(t, 'rss_mib'):.2f}x peak RSS")
PYEOF
