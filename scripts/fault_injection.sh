#!/usr/bin/env bash
# Fault injection for the whole pipeline (not part of `cargo test`): kills `hone run --preset quick`
# at every deterministic fault point (HONE_FAULT=<point>@<n>: inside checkpoint, evaluation, pipeline
# state and report writes; see crates/hone-data/src/fault.rs) and at random moments (SIGKILL), reruns
# it until it finishes, and checks that every stage's final weights and every evaluation metric equal
# those of an uninterrupted run. Then fills the disk during a checkpoint write (an injected ENOSPC)
# and checks the error says the previous checkpoint is intact and that a rerun still ends equal.
#
# Usage: scripts/fault_injection.sh [RANDOM_KILLS (default 10)]     HONE_BIN=path uses another build.
set -euo pipefail
cd "$(dirname "$0")/.."
RANDOM_KILLS="${1:-10}"
BIN="${HONE_BIN:-}"
if [ -z "$BIN" ]; then
  cargo build --release -q -p hone
  BIN="$PWD/target/release/hone"
fi
POINTS="checkpoint-files checkpoint-manifest checkpoint-rename checkpoint-final eval-result pipeline-state report"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# (The outer redirection keeps the shell's own "Aborted" notices out of the output.)
run() { { (cd "$1" && shift && exec "$BIN" run --preset quick -q "$@" >/dev/null 2>"$work/last.err"); } 2>/dev/null; }

# Final weights of every stage and every metric of every evaluation (timings left out).
fingerprint() {
  local d="$1/runs/quick"
  for m in "$d"/*/final; do
    [ -e "$m/model.safetensors" ] && sha256sum "$m/model.safetensors" | cut -d' ' -f1
  done
  python3 - "$d" <<'PY'
import glob, json, sys
for f in sorted(glob.glob(sys.argv[1] + "/eval/*/*.json")):
    r = json.load(open(f))
    print(f.split("/eval/")[1], [(m["name"], m.get("group"), m["value"]) for m in r["metrics"]])
PY
}

finish() { # reruns until the run completes (at most 5 tries)
  for _ in 1 2 3 4 5; do
    if run "$1"; then return 0; fi
  done
  echo "FAIL: $1 did not finish after 5 reruns:" >&2; cat "$work/last.err" >&2; return 1
}

mkdir -p "$work/ref"
start=$(date +%s.%N)
run "$work/ref"
ref_s=$(python3 -c "import time; print(max(1.0, time.time() - $start))")
fingerprint "$work/ref" > "$work/ref.fp"
echo "uninterrupted run: ${ref_s%.*} s, $(grep -c . "$work/ref.fp") fingerprint lines"

kills=0; fails=0
check() { # name, dir
  fingerprint "$2" > "$work/got.fp"
  if cmp -s "$work/ref.fp" "$work/got.fp"; then
    echo "  ok   $1"
  else
    echo "  FAIL $1: the resumed run differs:"; diff "$work/ref.fp" "$work/got.fp" | head -5; fails=$((fails + 1))
  fi
}

echo "deterministic fault points:"
for p in $POINTS; do
  for n in 1 2 5; do
    d="$work/$p-$n"; mkdir -p "$d"
    if HONE_FAULT="$p@$n" run "$d"; then
      echo "  --   $p@$n: not reached (the run has fewer such writes)"; continue
    fi
    grep -q "HONE_FAULT: aborting at $p" "$work/last.err" || { echo "  FAIL $p@$n: exited without the fault:"; cat "$work/last.err"; fails=$((fails + 1)); continue; }
    kills=$((kills + 1))
    finish "$d" && check "$p@$n" "$d"
  done
done

echo "random SIGKILLs:"
for i in $(seq 1 "$RANDOM_KILLS"); do
  d="$work/random-$i"; mkdir -p "$d"
  delay=$(python3 -c "import random; random.seed($i); print(round(random.uniform(0.05, $ref_s), 2))")
  (cd "$d" && exec "$BIN" run --preset quick -q >/dev/null 2>&1) & pid=$!
  sleep "$delay"
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
  finish "$d" && check "SIGKILL after ${delay} s" "$d"
done

echo "full disk during a checkpoint write:"
d="$work/enospc"; mkdir -p "$d"
if HONE_FAULT_ENOSPC=checkpoint-files run "$d"; then
  echo "  FAIL: the run succeeded with a full disk"; fails=$((fails + 1))
elif grep -q "previous checkpoint is intact" "$work/last.err"; then
  echo "  ok   error: $(grep -o 'writing the checkpoint[^;]*; the previous checkpoint is intact' "$work/last.err" | head -1)"
  finish "$d" && check "after the disk was freed" "$d"
else
  echo "  FAIL: unclear error:"; cat "$work/last.err"; fails=$((fails + 1))
fi

echo "$kills kills, $fails failures"
[ "$fails" = 0 ]
