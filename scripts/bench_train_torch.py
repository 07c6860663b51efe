#!/usr/bin/env python3
"""PyTorch side of the training-throughput benchmark (see scripts/bench_train.sh).

The same Llama-style model as hone (RMSNorm, rotate-half RoPE, SwiGLU, grouped-query attention, no
biases, untied head) at the same config, trained with the same step: batch of random tokens,
cross-entropy, backward, global-norm clipping to 1.0, AdamW (decay on 2-D matrices only). Attention
uses F.scaled_dot_product_attention (is_causal), as Hugging Face's default "sdpa" path does.

With --compile the model goes through torch.compile (Inductor's C++ code for the CPU) and AdamW
runs its fused kernel (fused=True): the fastest plain-PyTorch setup for this step. Compilation happens
in the warmup steps, which are not timed.

Prints one JSON line: tokens/s, seconds per step (median after warmup), the SIMD level PyTorch's
kernels use, and the measured f32 matrix-multiply peak of this machine through torch.matmul.
"""

import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {  # hidden, intermediate, layers, heads, kv heads (as hone's presets)
    "micro": (64, 176, 2, 4, 2),
    "tiny": (256, 688, 4, 4, 2),
    "small": (512, 1376, 6, 8, 4),
    "gpt2-small": (768, 2048, 12, 12, 12),
}


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, d, inter, nh, nkv, eps):
        super().__init__()
        self.nh, self.nkv, self.hd = nh, nkv, d // nh
        self.input_layernorm = RMSNorm(d, eps)
        self.q_proj = nn.Linear(d, nh * self.hd, bias=False)
        self.k_proj = nn.Linear(d, nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(d, nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(nh * self.hd, d, bias=False)
        self.post_attention_layernorm = RMSNorm(d, eps)
        self.gate_proj = nn.Linear(d, inter, bias=False)
        self.up_proj = nn.Linear(d, inter, bias=False)
        self.down_proj = nn.Linear(inter, d, bias=False)

    def forward(self, x, cos, sin):
        b, s, d = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(b, s, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(b, s, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(b, s, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.nh // self.nkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o_proj(o.transpose(1, 2).reshape(b, s, d))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, vocab, d, inter, layers, nh, nkv, max_pos, eps=1e-5, theta=10000.0):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(Block(d, inter, nh, nkv, eps) for _ in range(layers))
        self.norm = RMSNorm(d, eps)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        hd = d // nh
        inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.arange(max_pos, dtype=torch.float64)[:, None] * inv[None, :]
        emb = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", emb.cos().float(), persistent=False)
        self.register_buffer("sin", emb.sin().float(), persistent=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids):
        s = ids.shape[1]
        cos, sin = self.cos[:s], self.sin[:s]
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.norm(x))


def matmul_peak(n=1024, reps=10):
    """GFLOP/s of the fastest of `reps` n×n products into a preallocated output."""
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    for _ in range(3):
        torch.matmul(a, b, out=c)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=0, help="0 keeps the preset's width")
    ap.add_argument("--intermediate", type=int, default=0, help="0 keeps the preset's width")
    ap.add_argument("--compile", action="store_true", help="torch.compile(model) and AdamW(fused=True)")
    a = ap.parse_args()
    if a.compile:
        a.warmup = max(a.warmup, 3)  # the first calls compile forward and backward
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d, inter, layers, nh, nkv = PRESETS[a.preset]
    d, inter = a.hidden or d, a.intermediate or inter
    model = Llama(a.vocab, d, inter, layers, nh, nkv, max(a.seq, 1024))
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "embed" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-3,
        betas=(0.9, 0.95),
        eps=1e-8,
        **({"fused": True} if a.compile else {}),
    )
    step_model = torch.compile(model) if a.compile else model
    gen = torch.Generator().manual_seed(0)
    times, losses = [], []
    for step in range(a.warmup + a.steps):
        ids = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=gen)
        t = time.perf_counter()
        logits = step_model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.perf_counter() - t
        losses.append(loss.item())
        if step >= a.warmup:
            times.append(dt)
    step_s = statistics.median(times)
    print(
        json.dumps(
            {
                "impl": "pytorch-compile" if a.compile else "pytorch",
                "torch": torch.__version__,
                "simd": torch.backends.cpu.get_cpu_capability(),
                "threads": torch.get_num_threads(),
                "params": sum(p.numel() for p in model.parameters()),
                "step_s": step_s,
                "tokens_per_s": a.batch * a.seq / step_s,
                "matmul_gflops": max(matmul_peak(1024, 10), matmul_peak(2048, 3)),
                "first_loss": losses[0],
                "last_loss": losses[-1],
            }
        )
    )


if __name__ == "__main__":
    main()
