#!/usr/bin/env python3
"""Writes crates/hone-gguf/tests/fixtures/types.gguf with gguf-py's own writer (metadata of every
value type; a tensor of every ggml type hone-gguf reads, 2-D, with made-up but valid blocks) and
types.json with what gguf-py's reader and dequantiser make of it, for the Rust tests to compare.

    python3 -m venv .venv && .venv/bin/pip install gguf numpy
    .venv/bin/python scripts/make_gguf_fixture.py
"""

import json
import pathlib

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import quants

out = pathlib.Path(__file__).resolve().parent.parent / "crates/hone-gguf/tests/fixtures"
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)


def blocks(qtype, rows, cols):
    """Valid quantised bytes for a [rows, cols] tensor: quantised random floats where gguf-py can
    quantise the type, else random bytes with finite f16 scales written in."""
    per, size = gguf.GGML_QUANT_SIZES[qtype]
    data = rng.normal(0, 1, (rows, cols)).astype(np.float32)
    try:
        return quants.quantize(data, qtype)
    except NotImplementedError:
        pass
    raw = rng.integers(0, 256, (rows, cols // per, size), dtype=np.uint8)
    scale = lambda: np.frombuffer(np.float16(rng.uniform(0.001, 0.1)).tobytes(), dtype=np.uint8)
    for r in range(rows):
        for b in range(cols // per):
            if qtype in (Q.Q4_K, Q.Q5_K):
                raw[r, b, 0:2] = scale()
                raw[r, b, 2:4] = scale()
            elif qtype == Q.Q6_K:
                raw[r, b, 208:210] = scale()
    return raw.reshape(rows, cols // per * size)


w = gguf.GGUFWriter(out / "types.gguf", "llama")
w.add_uint32("llama.block_count", 2)
w.add_int32("test.i32", -7)
w.add_float32("test.f32", 0.25)
w.add_float64("test.f64", -1.5)
w.add_bool("test.bool", True)
w.add_uint64("test.u64", 1 << 40)
w.add_string("tokenizer.chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}")
w.add_array("tokenizer.ggml.tokens", ["<s>", "a", "ü", "Ġthe"])
w.add_array("tokenizer.ggml.scores", [0.0, -1.0, -2.5, -3.0])
shapes = {Q.F32: (3, 64), Q.F16: (2, 64), Q.BF16: (2, 64), Q.Q8_0: (3, 64), Q.Q4_0: (2, 64), Q.Q4_1: (2, 96),
          Q.Q4_K: (2, 512), Q.Q5_K: (3, 256), Q.Q6_K: (2, 512)}
for qtype, (rows, cols) in shapes.items():
    name = f"t.{qtype.name.lower()}"
    if qtype in (Q.F32, Q.F16):
        data = rng.normal(0, 1, (rows, cols)).astype(np.float32 if qtype == Q.F32 else np.float16)
        w.add_tensor(name, data)
    else:
        w.add_tensor(name, blocks(qtype, rows, cols), raw_dtype=qtype)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

r = gguf.GGUFReader(out / "types.gguf")
expect = {"metadata": {}, "tensors": {}}
for k in ["llama.block_count", "test.i32", "test.f32", "test.f64", "test.bool", "test.u64", "general.architecture",
          "tokenizer.chat_template"]:
    f = r.fields[k]
    v = f.parts[f.data[0]]
    expect["metadata"][k] = bytes(v).decode() if f.types[0] == gguf.GGUFValueType.STRING else v.tolist()[0]
f = r.fields["tokenizer.ggml.tokens"]
expect["metadata"]["tokenizer.ggml.tokens"] = [bytes(f.parts[i]).decode() for i in f.data]
for t in r.tensors:
    vals = quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
    expect["tensors"][t.name] = {"type": t.tensor_type.name, "shape": [int(x) for x in reversed(t.shape)],
                                 "values": [float(x) for x in vals]}
(out / "types.json").write_text(json.dumps(expect))
print(f"wrote {out / 'types.gguf'} ({(out / 'types.gguf').stat().st_size} bytes) and types.json")

# With SmolLM2-135M-Instruct's GGUF at hand (see ../shared/data/MANIFEST.md), record what gguf-py reads
# in it for the test that opens the real file (skipped when the file is absent).
import os

real = os.environ.get("HONE_SMOLLM2_GGUF")
if real:
    r = gguf.GGUFReader(real)
    facts = {"metadata": {}, "tensors": {}, "tensor_count": len(r.tensors)}
    for k in ["general.architecture", "llama.block_count", "llama.embedding_length", "llama.attention.head_count",
              "llama.attention.head_count_kv", "llama.rope.freq_base", "llama.context_length"]:
        f = r.fields[k]
        v = f.parts[f.data[0]]
        facts["metadata"][k] = bytes(v).decode() if f.types[0] == gguf.GGUFValueType.STRING else v.tolist()[0]
    facts["metadata"]["tokens"] = len(r.fields["tokenizer.ggml.tokens"].data)
    facts["metadata"]["chat_template_len"] = len(bytes(r.fields["tokenizer.chat_template"].parts[-1]))
    for t in r.tensors:
        if t.name in ("token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_norm.weight", "blk.29.ffn_down.weight"):
            v = quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1)
            facts["tensors"][t.name] = {"type": t.tensor_type.name, "shape": [int(x) for x in reversed(t.shape)],
                                        "first": [float(x) for x in v[:16]], "sum": float(v.sum()),
                                        "sum_sq": float((v * v).sum())}
    (out / "smollm2.json").write_text(json.dumps(facts, indent=1))
    print(f"wrote {out / 'smollm2.json'}")
