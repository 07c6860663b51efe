#!/usr/bin/env python3
"""Checks that a tokenizer.json written by hone encodes identically in Hugging Face `tokenizers` (Python).

Usage:
    pip install tokenizers
    python3 scripts/check_tokenizer.py runs/default/tokenizer.json TEXT_FILE [--lines 5000] [--hone target/release/hone]

TEXT_FILE is plain text (one sample per line) or JSONL/JSONL.gz with a `text` field (each line of each
document becomes a sample). The script encodes the samples with hone (`hone tokenizer encode --json`)
and with Python, compares the ids and the decoded text, and exits non-zero on any difference.
"""

import argparse
import gzip
import json
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer


def samples(path, limit):
    opener = gzip.open if path.endswith(".gz") else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if path.endswith((".jsonl", ".jsonl.gz")):
                text = json.loads(line).get("text", "")
                out.extend(l for l in text.split("\n") if l.strip())
            elif line.strip():
                out.append(line.rstrip("\n"))
            if len(out) >= limit:
                break
    return out[:limit]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tokenizer")
    ap.add_argument("text")
    ap.add_argument("--lines", type=int, default=5000)
    ap.add_argument("--hone", default="target/release/hone")
    a = ap.parse_args()

    lines = samples(a.text, a.lines)
    tricky = ["emoji 🦀🚀👩‍👩‍👧 👍🏽", "CJK 中文字符 日本語 한국어", "e\u0301 vs é, שלום مرحبا", "  spaces\tand tabs  "]
    lines += tricky
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        tmp = f.name
    out = subprocess.run([a.hone, "tokenizer", "encode", "-t", a.tokenizer, "--file", tmp, "--json"],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    rust = [json.loads(l) for l in out]

    tok = Tokenizer.from_file(a.tokenizer)
    py = [e.ids for e in tok.encode_batch(lines, add_special_tokens=False)]
    assert len(rust) == len(py) == len(lines), (len(rust), len(py), len(lines))

    diffs = [i for i, (r, p) in enumerate(zip(rust, py)) if r != p]
    bad_decode = [i for i, (l, p) in enumerate(zip(lines, py)) if tok.decode(p, skip_special_tokens=False) != l]
    n_tokens = sum(len(p) for p in py)
    print(f"{len(lines)} lines, {n_tokens} tokens: {len(diffs)} lines with different ids, "
          f"{len(bad_decode)} lines that do not round-trip in Python")
    for i in diffs[:5]:
        print(f"  line {i}: {lines[i]!r}\n    hone   {rust[i]}\n    python {py[i]}")
    sys.exit(1 if diffs or bad_decode else 0)


if __name__ == "__main__":
    main()
