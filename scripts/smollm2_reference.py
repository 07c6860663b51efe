#!/usr/bin/env python3
"""Reference outputs of SmolLM2-135M-Instruct from `transformers` and `tokenizers`, for hone's
import tests (crates/hone-model/tests/import.rs).

Reads the GGUF file (transformers dequantises it; needs `accelerate` and `gguf`) and writes into OUT:
- hf/: a Hugging Face folder of the same weights (F32 safetensors, config, tokenizer files);
- reference.json: for 5 prompts the token ids, the last position's top-20 and a fixed slice of every
  position's logits (the small copy committed as tests/fixtures/smollm2_reference.json holds these),
  the greedy 64-token continuation of the first prompt, the chat template rendered by
  `apply_chat_template` on 20 conversations, and the ids of 1,000 lines of varied text;
- logits-<i>.f32: every logit of prompt i (little-endian f32, [positions, vocab]).

    python scripts/smollm2_reference.py SmolLM2-135M-Instruct.Q4_1.gguf OUT [TEXT_FILES...]
"""
import gzip
import json
import os
import sys

import numpy as np
import tokenizers
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

gguf_path, out = sys.argv[1], sys.argv[2]
text_files = sys.argv[3:]
os.makedirs(out, exist_ok=True)
d, f = os.path.split(os.path.abspath(gguf_path))
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
loaded = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
# `save_pretrained` refuses a model loaded from GGUF; a fresh model of the same config with its
# weights copied in saves a plain folder.
cfg = LlamaConfig(**{k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"})
model = LlamaForCausalLM(cfg)
model.load_state_dict(loaded.state_dict(), strict=False)
model.tie_weights()
model.eval()
hf = os.path.join(out, "hf")
model.save_pretrained(hf, safe_serialization=True)
tok.save_pretrained(hf)
# transformers' GGUF converter drops the digit split that `tokenizer.ggml.pre = smollm` names (llama.cpp
# splits every digit before GPT-2's regex); SmolLM2's own tokenizer.json has it. Put it back, so the
# folder's tokenizer is the model's, and take every id below from it with `tokenizers`.
tj_path = os.path.join(hf, "tokenizer.json")
with open(tj_path) as fh:
    tj = json.load(fh)
tj["pre_tokenizer"] = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    ],
}
with open(tj_path, "w") as fh:
    json.dump(tj, fh, ensure_ascii=False)
tok = AutoTokenizer.from_pretrained(hf)
raw = tokenizers.Tokenizer.from_file(tj_path)

prompts = [
    "The capital of France is",
    "Once upon a time, there was a little robot who",
    "def fibonacci(n):\n    if n < 2:\n        return n",
    "12 + 35 = 47. 1234567 digits, émigré naïve 🦀 東京",
    "Question: Which gas do plants take in from the air to make food?\nAnswer:",
]
ref = {"texts": [], "slice": [0, 1, 2, 100, 1000, 5000, 20000, 49151]}
with torch.no_grad():
    for i, t in enumerate(prompts):
        ids = tok(t, add_special_tokens=False)["input_ids"]
        logits = model(torch.tensor([ids])).logits[0]
        logits.numpy().astype("<f4").tofile(os.path.join(out, f"logits-{i}.f32"))
        top = torch.topk(logits[-1], 20)
        ref["texts"].append(
            {
                "text": t,
                "ids": ids,
                "top_ids": top.indices.tolist(),
                "top_logits": top.values.tolist(),
                "slice_logits": logits[:, ref["slice"]].tolist(),
            }
        )
    ids = tok(prompts[1], add_special_tokens=False, return_tensors="pt")["input_ids"]
    gen = model.generate(ids, max_new_tokens=64, do_sample=False, eos_token_id=None, pad_token_id=2)
    ref["greedy"] = {"prompt_ids": ids[0].tolist(), "new_ids": gen[0, ids.shape[1]:].tolist()}
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    gen = model.generate(ids, max_new_tokens=20, do_sample=False)
    ref["chat"] = {
        "prompt": prompt,
        "prompt_ids": ids[0].tolist(),
        "answer_ids": gen[0, ids.shape[1]:].tolist(),
        "answer": tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True),
    }

# 20 conversations: with and without a system prompt, multi-turn, with and without the generation prompt.
convs = []
for k in range(20):
    c = []
    if k % 3 == 0:
        c.append({"role": "system", "content": f"You are terse. Rule {k}."})
    for turn in range(1 + k % 4):
        c.append({"role": "user", "content": f"  Question {k}.{turn}: what is {k} + {turn}? \n"})
        if turn < k % 4 or k % 2 == 0:
            c.append({"role": "assistant", "content": f"It is {k + turn}. 🦀"})
    convs.append({"messages": c, "add_generation_prompt": k % 2 == 1})
ref["templates"] = [
    {**c, "rendered": tok.apply_chat_template(c["messages"], tokenize=False, add_generation_prompt=c["add_generation_prompt"])}
    for c in convs
]

# 1,000 lines of varied text: the given files' lines (prose, math, code, other languages) cut to 300 chars.
lines = []
for path in text_files:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh):
            if path.endswith((".jsonl", ".jsonl.gz")):
                try:
                    v = json.loads(line)
                    line = next(x for x in v.values() if isinstance(x, str))
                except Exception:
                    continue
            line = line.strip("\n")[:300]
            if line.strip():
                lines.append(line)
            if n > 400:
                break
lines += ["x = [i**2 for i in range(10)]  # squares", "Ünïcödé — “quotes” … 𝔘𝔫𝔦", "  leading spaces\tand tabs  ",
          "日本語のテキストと한국어 텍스트", "<|im_start|>user\nhi<|im_end|>", "1,234,567.89 + 0.001 = ?"]
lines = lines[:1000]
ref["lines"] = [{"text": t, "ids": raw.encode(t, add_special_tokens=False).ids} for t in lines]
with open(os.path.join(out, "reference.json"), "w") as fh:
    json.dump(ref, fh)
small = {k: ref[k] for k in ("texts", "slice", "chat")}
with open(os.path.join(out, "reference_small.json"), "w") as fh:
    json.dump(small, fh)
print(ref["chat"]["answer"], len(ref["lines"]), "lines")
