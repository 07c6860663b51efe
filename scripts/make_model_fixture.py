#!/usr/bin/env python3
"""Writes crates/hone-model/tests/fixtures/llama_tiny.safetensors: the reference numbers hone's
transformer must reproduce.

A tiny Llama-style decoder is written here in plain PyTorch, operation for operation as Hugging Face's
modeling_llama.py (RMSNorm, rotate-half RoPE, SwiGLU, grouped-query attention via repeat_kv, optional
QK-norm as in Qwen3, optional tied embeddings). For two variants ("gqa": untied, no QK-norm; "tied_qk":
tied embeddings + QK-norm) the fixture holds, under "<variant>/":

  param/<hf name>   the weights (float32, Linear weights [out, in])
  grad/<hf name>    d(loss)/d(weight)
  logits            [batch, seq, vocab] for `inputs`
  loss              [1] mean cross-entropy of `targets`
  adamw_losses      [10] the loss before each of 10 AdamW steps on the same batch

and at the top level `inputs`, `targets` ([batch, seq] token ids stored as float32, exact for these
small integers). The configs are in the metadata as JSON (`config.<variant>`), along with the AdamW
settings (`adamw`).

AdamW semantics: torch.optim.AdamW (decoupled decay p *= 1 - lr*wd, bias-corrected moments, eps added
to the bias-corrected sqrt(v)), with two parameter groups matching hone's default: weight decay on
2-D weight matrices other than the token embedding (attention/MLP projections and an untied
lm_head), none on norm gains and the embedding (and so none on a tied embedding/head).

Usage (PyTorch from PyPI; not needed to run the tests):
    python3 -m venv .venv && .venv/bin/pip install torch safetensors numpy
    .venv/bin/python scripts/make_model_fixture.py
"""

import json
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

SEED = 1234
BATCH, SEQ = 2, 8
ADAMW = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, steps=10)

BASE = dict(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=16,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    tie_word_embeddings=False,
    qk_norm=False,
    initializer_range=0.02,
)
VARIANTS = {
    "gqa": dict(BASE),
    "tied_qk": dict(BASE, tie_word_embeddings=True, qk_norm=True),
}


def param_specs(c):
    """(name, shape, kind) in hone's canonical order; kind is embedding|norm|matrix|head."""
    d, i = c["hidden_size"], c["intermediate_size"]
    hd = d // c["num_attention_heads"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    out = [("model.embed_tokens.weight", (c["vocab_size"], d), "embedding")]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}"
        out += [
            (f"{p}.input_layernorm.weight", (d,), "norm"),
            (f"{p}.self_attn.q_proj.weight", (nh * hd, d), "matrix"),
            (f"{p}.self_attn.k_proj.weight", (nkv * hd, d), "matrix"),
            (f"{p}.self_attn.v_proj.weight", (nkv * hd, d), "matrix"),
            (f"{p}.self_attn.o_proj.weight", (d, nh * hd), "matrix"),
        ]
        if c["qk_norm"]:
            out += [(f"{p}.self_attn.q_norm.weight", (hd,), "norm"), (f"{p}.self_attn.k_norm.weight", (hd,), "norm")]
        out += [
            (f"{p}.post_attention_layernorm.weight", (d,), "norm"),
            (f"{p}.mlp.gate_proj.weight", (i, d), "matrix"),
            (f"{p}.mlp.up_proj.weight", (i, d), "matrix"),
            (f"{p}.mlp.down_proj.weight", (d, i), "matrix"),
        ]
    out.append(("model.norm.weight", (d,), "norm"))
    if not c["tie_word_embeddings"]:
        out.append(("lm_head.weight", (c["vocab_size"], d), "head"))
    return out


def init_params(c, gen):
    # Larger than a training init so that logits, gradients and the AdamW trace are far from trivial;
    # norm gains are perturbed around 1 so their gradients are tested too.
    params = {}
    for name, shape, kind in param_specs(c):
        if kind == "norm":
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            t = 0.2 * torch.randn(shape, generator=gen)
        params[name] = t.float().requires_grad_(True)
    return params


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_tables(c, seq):
    hd = c["hidden_size"] // c["num_attention_heads"]
    inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = torch.arange(seq, dtype=torch.float64)[:, None] * inv[None, :]
    emb = torch.cat((ang, ang), dim=-1)
    return emb.cos().float(), emb.sin().float()


def repeat_kv(x, n_rep):
    b, nkv, s, hd = x.shape
    return x[:, :, None, :, :].expand(b, nkv, n_rep, s, hd).reshape(b, nkv * n_rep, s, hd)


def forward(P, c, ids):
    b, s = ids.shape
    d, nh, nkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd, eps = d // nh, c["rms_norm_eps"]
    cos, sin = rope_tables(c, s)
    mask = torch.full((s, s), float("-inf")).triu(1)
    x = P["model.embed_tokens.weight"][ids]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}"
        h = rms_norm(x, P[f"{p}.input_layernorm.weight"], eps)
        q = (h @ P[f"{p}.self_attn.q_proj.weight"].T).view(b, s, nh, hd).transpose(1, 2)
        k = (h @ P[f"{p}.self_attn.k_proj.weight"].T).view(b, s, nkv, hd).transpose(1, 2)
        v = (h @ P[f"{p}.self_attn.v_proj.weight"].T).view(b, s, nkv, hd).transpose(1, 2)
        if c["qk_norm"]:
            q = rms_norm(q, P[f"{p}.self_attn.q_norm.weight"], eps)
            k = rms_norm(k, P[f"{p}.self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k, v = repeat_kv(k, nh // nkv), repeat_kv(v, nh // nkv)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask
        o = F.softmax(att, dim=-1) @ v
        x = x + o.transpose(1, 2).reshape(b, s, d) @ P[f"{p}.self_attn.o_proj.weight"].T
        h = rms_norm(x, P[f"{p}.post_attention_layernorm.weight"], eps)
        g = F.silu(h @ P[f"{p}.mlp.gate_proj.weight"].T) * (h @ P[f"{p}.mlp.up_proj.weight"].T)
        x = x + g @ P[f"{p}.mlp.down_proj.weight"].T
    x = rms_norm(x, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if c["tie_word_embeddings"] else P["lm_head.weight"]
    return x @ head.T


def loss_of(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def main():
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, BASE["vocab_size"], (BATCH, SEQ + 1), generator=gen)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    out = {"inputs": inputs.float().contiguous(), "targets": targets.float().contiguous()}
    meta = {"adamw": json.dumps(ADAMW), "seed": str(SEED)}
    for vname, c in VARIANTS.items():
        meta[f"config.{vname}"] = json.dumps(c)
        P = init_params(c, gen)
        for k, t in P.items():
            out[f"{vname}/param/{k}"] = t.detach().clone()
        logits = forward(P, c, inputs)
        loss = loss_of(logits, targets)
        loss.backward()
        out[f"{vname}/logits"] = logits.detach().contiguous()
        out[f"{vname}/loss"] = loss.detach().reshape(1)
        for k, t in P.items():
            out[f"{vname}/grad/{k}"] = t.grad.detach().clone()
            t.grad = None

        kinds = {n: k for n, _, k in param_specs(c)}
        decay = [P[n] for n in P if kinds[n] in ("matrix", "head")]
        no_decay = [P[n] for n in P if kinds[n] not in ("matrix", "head")]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": ADAMW["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
            lr=ADAMW["lr"],
            betas=ADAMW["betas"],
            eps=ADAMW["eps"],
            foreach=False,
        )
        trace = []
        for _ in range(ADAMW["steps"]):
            opt.zero_grad()
            l = loss_of(forward(P, c, inputs), targets)
            l.backward()
            trace.append(l.item())
            opt.step()
        out[f"{vname}/adamw_losses"] = torch.tensor(trace, dtype=torch.float32)
        print(f"{vname}: loss {loss.item():.6f}, AdamW trace {trace[0]:.5f} -> {trace[-1]:.5f}")

    path = os.path.join(os.path.dirname(__file__), "..", "crates", "hone-model", "tests", "fixtures", "llama_tiny.safetensors")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(out, path, metadata=meta)
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
