#!/usr/bin/env python3
"""PyTorch + peft side of the LoRA fine-tuning benchmark (see scripts/bench_lora.sh).

The same model (a Hugging Face folder, e.g. `hone export` of SmolLM2-135M-Instruct) in F32 through
`transformers` (its default "sdpa" attention), a `peft` LoRA adapter of the same rank, alpha and
target modules, and the same step: a batch of random tokens, cross-entropy over every position,
backward into the adapter only, global-norm clipping to 1.0, AdamW (lr 1e-4, betas 0.9/0.95, weight
decay 0.1, as hone's defaults). `--checkpointing`: gradient checkpointing of every decoder layer
(`gradient_checkpointing_enable`, non-reentrant), as hone's flag of the same name; off otherwise.

Prints one JSON line: tokens/s and seconds per step (median after warmup) and the SIMD level
PyTorch's kernels use. Peak RSS is measured by the caller (/usr/bin/time).
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=32.0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--targets", default="all")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpointing", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    targets = (["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
               if a.targets == "all" else a.targets.split(","))
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    if a.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, LoraConfig(r=a.rank, lora_alpha=a.alpha, lora_dropout=0.0, target_modules=targets))
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    times, first, last = [], None, None
    for i in range(a.steps + a.warmup):
        ids = torch.randint(0, vocab, (a.batch, a.seq + 1), generator=g)
        t = time.perf_counter()
        logits = model(input_ids=ids[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t
        first = loss.item() if first is None else first
        last = loss.item()
        if i >= a.warmup:
            times.append(dt)
        print(f"step {i}: loss {last:.4f}, {dt:.3f} s", file=__import__("sys").stderr)
    step_s = statistics.median(times)
    print(json.dumps({
        "impl": "pytorch+peft",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "simd": torch.backends.cpu.get_cpu_capability(),
        "params": sum(p.numel() for p in model.parameters()),
        "trained_params": sum(p.numel() for p in trained),
        "checkpointing": a.checkpointing,
        "step_s": step_s,
        "tokens_per_s": a.batch * a.seq / step_s,
        "first_loss": first,
        "last_loss": last,
    }))


if __name__ == "__main__":
    main()
