#!/usr/bin/env python3
"""A hone model beside the libraries people load it with: `hone export` writes a Hugging Face folder
(and, with --gguf, GGUF files), and this checks that
- `transformers` (`AutoTokenizer`, `AutoModelForCausalLM`) tokenizes the texts and renders the chat
  prompt as hone does, gives the same logits (max |difference| at most 1e-4 of the largest |logit|)
  and the same greedy chat answer of 64 tokens (stop tokens held back until then on every side);
- llama.cpp (`llama-cpp-python`) tokenizes the texts as hone does and, on the F32 file, gives the same
  logits (within 1e-4 of the largest) and answers the chat prompt greedily with the same 32 tokens
  (and reports how close the Q8_0 file comes).

    cargo build --release && cargo build --release -p hone-model --example dump_logits
    python scripts/check_export.py runs/default/dpo [--gguf] [--hf-type bf16] [--work DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HONE = os.path.join(HERE, "target", "release", "hone")
DUMP = os.path.join(HERE, "target", "release", "examples", "dump_logits")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", help="anything hone opens with -m: a stage folder, checkpoint, HF folder or GGUF")
    ap.add_argument("--gguf", action="store_true", help="also check llama.cpp on F32 and Q8_0 GGUF exports")
    ap.add_argument("--hf-type", default="f32", choices=["f32", "bf16"],
                    help="weights of the Hugging Face export; with bf16, hone's side is the exported folder itself")
    ap.add_argument("--work", help="folder for the exports (default: a temporary one)")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="hone-export-")
    os.makedirs(work, exist_ok=True)
    hf = os.path.join(work, "hf")
    subprocess.run([HONE, "export", a.model, "--format", "hf", "--type", a.hf_type, "--out", hf, "--force"],
                   check=True, stdout=subprocess.DEVNULL)
    ref_path = os.path.join(work, "hone.json")
    # bf16 weights are not the model's own: both sides then run the rounded weights of the export.
    subprocess.run([DUMP, hf if a.hf_type == "bf16" else a.model, ref_path], check=True)
    ref = json.load(open(ref_path))
    failures = []

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(hf)
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    print(f"transformers: {type(model).__name__} from {hf}")
    worst = 0.0
    for t in ref["texts"]:
        ids = tok(t["text"])["input_ids"]
        if ids != t["ids"]:
            failures.append(f"transformers tokenizes {t['text']!r} as {ids}, hone as {t['ids']}")
            continue
        with torch.no_grad():
            got = model(torch.tensor([ids])).logits[0].numpy()
        want = np.array(t["logits"], dtype=np.float32)
        rel = float(np.abs(got - want).max() / np.abs(want).max())
        worst = max(worst, rel)
        if rel > 1e-4 or (got.argmax(-1) != want.argmax(-1)).any():
            failures.append(f"logits of {t['text']!r}: max difference {rel:.2e} of the largest, or another argmax")
    print(f"logits: {len(ref['texts'])} texts, max |difference| {worst:.2e} of the largest |logit|")
    chat = ref["chat"]
    prompt = tok.apply_chat_template(chat["messages"], add_generation_prompt=True, tokenize=True)
    if hasattr(prompt, "input_ids"):
        prompt = prompt["input_ids"]
    prompt = list(prompt)
    if prompt != chat["prompt_ids"]:
        failures.append(f"chat prompt: transformers {prompt}, hone {chat['prompt_ids']}")
    with torch.no_grad():
        # 64 tokens exactly, stop tokens held back until then (as hone's dump does).
        out = model.generate(torch.tensor([chat["prompt_ids"]]), max_new_tokens=64, min_new_tokens=64,
                             do_sample=False)
    tokens = out[0, len(chat["prompt_ids"]):].tolist()
    eos = model.generation_config.eos_token_id
    stops = set(eos if isinstance(eos, list) else [eos])
    same = tokens == chat["tokens"]
    print(f"greedy chat answer: {len(tokens)} tokens from transformers, {len(chat['tokens'])} from hone, "
          f"{'the same' if same else 'DIFFERENT'}: {chat['text']!r}")
    if not same:
        failures.append(f"greedy answer: transformers {tokens}, hone {chat['tokens']}")

    if a.gguf:
        from llama_cpp import Llama

        for ty in ["f32", "q8_0"]:
            path = os.path.join(work, f"model-{ty}.gguf")
            r = subprocess.run([HONE, "export", a.model, "--format", "gguf", "--type", ty, "--out", path, "--force"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                # A refusal (e.g. rows that are not whole Q8_0 blocks) is hone's answer, named.
                print(f"llama.cpp {ty}: not exported: {r.stderr.strip()}")
                if ty == "f32":
                    failures.append(f"the F32 GGUF export failed: {r.stderr.strip()}")
                continue
            # F32 keys and values in its cache (F16 by default, which alone moves logits by ~1e-3).
            llm = Llama(model_path=path, n_ctx=512, n_threads=2, logits_all=True, type_k=0, type_v=0, verbose=False)
            worst, same_ids = 0.0, True
            for t in ref["texts"]:
                ids = llm.tokenize(t["text"].encode(), add_bos=llm.metadata.get("tokenizer.ggml.add_bos_token") == "true",
                                   special=True)
                if ids != t["ids"]:
                    same_ids = False
                    failures.append(f"llama.cpp ({ty}) tokenizes {t['text']!r} as {ids}, hone as {t['ids']}")
                llm.reset()
                llm.eval(t["ids"])
                got = np.array(llm.scores[: len(t["ids"])], dtype=np.float32)
                want = np.array(t["logits"], dtype=np.float32)
                worst = max(worst, float(np.abs(got - want).max() / np.abs(want).max()))
            print(f"llama.cpp {ty}: logits within {worst:.2e} of the largest |logit| of hone's")
            if ty == "f32" and worst > 1e-4:
                failures.append(f"llama.cpp f32 logits differ from hone's by {worst:.2e} of the largest")
            llm.reset()
            llm.eval(chat["prompt_ids"])
            got = []
            for _ in range(32):
                scores = np.array(llm.scores[llm.n_tokens - 1])
                scores[list(stops)] = -np.inf  # held back, as on the other sides
                nxt = int(np.argmax(scores))
                got.append(nxt)
                llm.eval([nxt])
            n = min(32, len(chat["tokens"]))
            shared = next((i for i, (x, y) in enumerate(zip(got, chat["tokens"])) if x != y), min(len(got), n))
            print(f"llama.cpp {ty}: tokenization {'the same' if same_ids else 'DIFFERENT'}; "
                  f"greedy answer shares its first {shared} of {n} tokens with hone's")
            if ty == "f32" and got[:n] != chat["tokens"][:n]:
                failures.append(f"llama.cpp f32 greedy answer: {got[:n]}, hone {chat['tokens'][:n]}")
    for f in failures:
        print("FAIL:", f)
    print("all checks passed" if not failures else f"{len(failures)} checks failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
