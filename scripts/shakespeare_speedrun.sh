#!/usr/bin/env bash
# Time to quality on tinyshakespeare, on nanoGPT's split: the tokenizer and the model see the first
# 90% of the file; the score is bits per byte on the last 10% (nanoGPT's `val.bin`), every byte
# predicted once by `hone eval`'s rolling windows. Prints the wall time of each step and the score.
# nanoGPT's CPU recipe for shakespeare_char reaches 1.8857 nats per character = 2.72 bits per byte
# on the same text.
#
# Usage: scripts/shakespeare_speedrun.sh [path/to/tinyshakespeare.txt] [key=value ...] (config overrides)
# Env: HONE (default target/release/hone), RUNS (default runs), CONFIG (default
# scripts/shakespeare.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="../shared/data/pretrain/tinyshakespeare.txt"
SETTINGS=()
for a in "$@"; do
  case $a in
    --set) ;;
    *=*) SETTINGS+=("$a") ;;
    *) SRC=$a ;;
  esac
done
if [ ! -f "$SRC" ]; then
  echo "tinyshakespeare not found at $SRC; pass its path (karpathy/char-rnn data/tinyshakespeare/input.txt)" >&2
  exit 2
fi
HONE="${HONE:-target/release/hone}"
RUNS="${RUNS:-runs}"
CONFIG="${CONFIG:-scripts/shakespeare.toml}"
[ -x "$HONE" ] || cargo build --release -q -p hone
NAME=$(sed -n 's/^name = "\(.*\)"/\1/p' "$CONFIG" | head -1)
for a in "${SETTINGS[@]}"; do case $a in run.name=*) NAME=${a#run.name=} ;; esac; done
RUN="$RUNS/$NAME"
rm -rf "$RUN"
mkdir -p "$RUN/text"
# nanoGPT: n = len(data); train = data[:int(n*0.9)]; val = data[int(n*0.9):] (the file is ASCII).
n=$(wc -c <"$SRC")
cut=$((n * 9 / 10))
head -c "$cut" "$SRC" >"$RUN/text/train.txt"
mkdir -p "$RUN/text/train"
split -l 200 -d -a 4 --additional-suffix=.txt "$RUN/text/train.txt" "$RUN/text/train/part-"
tail -c +"$((cut + 1))" "$SRC" >"$RUN/text/val.txt"
cat >"$RUN/text/val.toml" <<TOML
name = "shakespeare_val"
description = "The last 10% of tinyshakespeare (nanoGPT's validation split); bits per byte"
kind = "loglikelihood_rolling"
source = "val.txt"
metric = "bits_per_byte"

[loglikelihood_rolling]
text_field = "text"
TOML
SETS=(--set "run.root=$RUNS")
for a in "${SETTINGS[@]}"; do SETS+=(--set "$a"); done
now() { date +%s.%N; }
dt() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }
t0=$(now)
"$HONE" tokenizer train -c "$CONFIG" "${SETS[@]}" "$RUN/text/train.txt" >"$RUN/tokenizer.log" 2>&1
t1=$(now)
"$HONE" data prepare -c "$CONFIG" "${SETS[@]}" "$RUN/text/train" >"$RUN/data.log" 2>&1
t2=$(now)
"$HONE" pretrain -c "$CONFIG" "${SETS[@]}" >"$RUN/pretrain.log" 2>&1
t3=$(now)
"$HONE" eval -c "$CONFIG" "${SETS[@]}" -m "$RUN/pretrain" -t "$RUN/text/val.toml" -o "$RUN/eval" >"$RUN/eval.log" 2>&1
t4=$(now)
bpb=$(awk '/"name": "bits_per_byte"/ { f = 1 } f && /"value"/ { gsub(/[^0-9.eE+-]/, "", $2); print $2; exit }' \
  "$RUN/eval/shakespeare_val.json")
grep -h "^pretrain: .*parameters" "$RUN/pretrain.log" | head -1
printf 'tokenizer %.1f s, data %.1f s, pretrain %.1f s, eval %.1f s\n' \
  "$(dt "$t0" "$t1")" "$(dt "$t1" "$t2")" "$(dt "$t2" "$t3")" "$(dt "$t3" "$t4")"
printf 'held-out (last 10%%) bits per byte: %s; time to train (tokenizer + data + pretrain): %.1f s\n' \
  "$bpb" "$(dt "$t0" "$t3")"
