#!/usr/bin/env python3
"""A LoRA adapter trained by hone beside `peft`: a stage trained with `<stage>.lora_rank` > 0 saves
PEFT's `adapter_config.json` + `adapter_model.safetensors`, and this checks that
- `peft` (`PeftModel.from_pretrained`) loads the adapter onto its base model in `transformers` and
  gives hone's logits (max |difference| at most 1e-4 of the largest |logit|) and hone's greedy chat
  answer of 64 tokens;
- `transformers` alone opens the adapter folder (`AutoModelForCausalLM.from_pretrained` on it, its
  PEFT integration reading `base_model_name_or_path`) with the same logits, when the base is a
  folder `transformers` opens (an imported model, a pretraining checkpoint);
- the merged export (`hone export ADAPTER --format hf`) gives the same logits without `peft`.

The base model is exported by `hone export` first when it is itself an adapter (a stage trained
with LoRA on a stage trained with LoRA), so `peft` sees the weights hone merged.

    cargo build --release && cargo build --release -p hone-model --example dump_logits
    python scripts/check_lora.py runs/default/sft [--work DIR]
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


def adapter_dir(path):
    """The checkpoint folder holding the adapter: the folder itself, or a stage folder's `final`."""
    for d in [path, os.path.join(path, "final")]:
        if os.path.isfile(os.path.join(d, "adapter_config.json")):
            return os.path.realpath(d)
    sys.exit(f"{path}: no adapter_config.json here or in its final checkpoint; was the stage trained with lora_rank > 0?")


def logits_of(model, ids, torch):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def compare(name, model, ref, torch, failures):
    worst = 0.0
    for t in ref["texts"]:
        got = logits_of(model, t["ids"], torch)
        want = np.array(t["logits"], dtype=np.float32)
        rel = float(np.abs(got - want).max() / np.abs(want).max())
        worst = max(worst, rel)
        if rel > 1e-4 or (got.argmax(-1) != want.argmax(-1)).any():
            failures.append(f"{name}: logits of {t['text']!r}: max difference {rel:.2e} of the largest, or another argmax")
    print(f"{name}: {len(ref['texts'])} texts, logits within {worst:.2e} of the largest |logit| of hone's")
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("adapter", help="a LoRA stage folder or checkpoint")
    ap.add_argument("--work", help="folder for the exports (default: a temporary one)")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="hone-lora-")
    os.makedirs(work, exist_ok=True)
    ad = adapter_dir(a.adapter)
    cfg = json.load(open(os.path.join(ad, "adapter_config.json")))
    base = cfg["base_model_name_or_path"]
    print(f"adapter {ad}: r={cfg['r']}, lora_alpha={cfg['lora_alpha']}, targets {cfg['target_modules']}, base {base}")
    ref_path = os.path.join(work, "hone.json")
    subprocess.run([DUMP, ad, ref_path], check=True)
    ref = json.load(open(ref_path))
    # The base as transformers opens it: exported by hone (merging any adapter of its own).
    base_hf = os.path.join(work, "base")
    subprocess.run([HONE, "export", base, "--format", "hf", "--out", base_hf, "--force"], check=True,
                   stdout=subprocess.DEVNULL)
    failures = []

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    base_model = AutoModelForCausalLM.from_pretrained(base_hf, dtype=torch.float32).eval()
    model = PeftModel.from_pretrained(base_model, ad).eval()
    print(f"peft: {type(model).__name__} over {type(base_model).__name__}, "
          f"{sum(p.numel() for n, p in model.named_parameters() if 'lora_' in n)} adapter parameters")
    compare("peft", model, ref, torch, failures)
    chat = ref["chat"]
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([chat["prompt_ids"]]), max_new_tokens=64, min_new_tokens=64,
                             do_sample=False)
    tokens = out[0, len(chat["prompt_ids"]):].tolist()
    same = tokens == chat["tokens"]
    print(f"peft greedy chat answer: {len(tokens)} tokens, {'the same as' if same else 'DIFFERENT from'} hone's: "
          f"{chat['text']!r}")
    if not same:
        failures.append(f"peft greedy answer: {tokens}, hone {chat['tokens']}")

    # transformers alone, reading base_model_name_or_path (a folder it opens when the base is not an
    # adapter itself).
    if not os.path.isfile(os.path.join(base, "adapter_config.json")):
        direct = AutoModelForCausalLM.from_pretrained(ad, dtype=torch.float32).eval()
        compare("transformers on the adapter folder", direct, ref, torch, failures)
    else:
        print("transformers on the adapter folder: skipped (its base is an adapter; peft loads onto its export)")

    merged = os.path.join(work, "merged")
    subprocess.run([HONE, "export", ad, "--format", "hf", "--out", merged, "--force"], check=True,
                   stdout=subprocess.DEVNULL)
    compare("merged export", AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval(), ref, torch,
            failures)
    tok = AutoTokenizer.from_pretrained(merged)
    for t in ref["texts"]:
        if tok(t["text"])["input_ids"] != t["ids"]:
            failures.append(f"tokenizer of the merged export: {t['text']!r}")
    for f in failures:
        print("FAIL:", f)
    print("all checks passed" if not failures else f"{len(failures)} checks failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
