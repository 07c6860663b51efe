//! Batch-1 decoding on the host: one token through every layer in plain loops (RMSNorm, the
//! matrix-vector products of [`crate::hostmat`] on the model's own f32 weights or on its Q8_0
//! copies, RoPE, attention over a host KV cache, SwiGLU), with no tensor operations between the
//! products. Decoding one token is a few hundred small operations; through burn each costs more in
//! dispatch and allocation than in arithmetic (a profile of decoding spent more time scheduling than
//! multiplying). The prompt is still processed by the model's batched forward pass, whose KV cache
//! this continues; tests check the two paths against each other.

use crate::config::LlamaConfig;
use crate::hostmat::{F32Matrix, HostMatrix, dot};
use crate::llama::{KvCache, Llama};
use crate::q8::QMatrix;
use burn::tensor::Tensor;
use std::sync::{Arc, Mutex};

/// The host-side state of one sequence: its keys and values per layer, `[len, kv_heads · head_dim]`.
pub struct HostCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
}

impl HostCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One layer's matrices: the query, key and value projections as one matrix and the gate and up
/// projections as another (each one product over the same input: fewer parallel regions per
/// token, each larger), the output and down projections.
struct LayerMats {
    qkv: HostMatrix,
    o: HostMatrix,
    gate_up: HostMatrix,
    down: HostMatrix,
    /// Rows of the query and key projections, and of the gate projection.
    nq: usize,
    nk: usize,
    ngate: usize,
}

/// Everything batch-1 decoding reads: the matrices, norms, rotary tables, the embedding.
pub struct HostDecoder {
    cfg: LlamaConfig,
    layers: Vec<LayerMats>,
    head: HostMatrix,
    input_norms: Vec<Vec<f32>>,
    post_norms: Vec<Vec<f32>>,
    q_norms: Vec<Option<(Vec<f32>, Vec<f32>)>>,
    norm: Vec<f32>,
    /// `[max_positions, head_dim]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// `[vocab, hidden]`, read in place.
    embed: F32Matrix,
}

fn host1(t: &Tensor<1>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_into_vec::<f32>().expect("f32")
}

fn host2(t: &Tensor<2>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_into_vec::<f32>().expect("f32")
}

/// `x · w / sqrt(mean(x²) + eps)`, in place.
fn rms_norm(x: &mut [f32], w: &[f32], eps: f64) {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let r = 1.0 / (ms + eps as f32).sqrt();
    for (v, w) in x.iter_mut().zip(w) {
        *v = *v * r * w;
    }
}

impl HostDecoder {
    /// The decoder of `model`: its Q8_0 copies when it has some ([`Llama::quantize_q8`]), otherwise
    /// its f32 weights read in place. `None` unless the model lives on Flex without autodiff.
    pub fn new(model: &Llama) -> Option<HostDecoder> {
        let embed = F32Matrix::of(&[&model.embed_tokens])?;
        let (layers, head) = match model.q8_weights() {
            Some(q8) => {
                let q = |m: &Arc<QMatrix>| HostMatrix::Q8(m.clone());
                let layers = q8
                    .layers()
                    .iter()
                    .map(|m| LayerMats {
                        qkv: HostMatrix::Q8(Arc::new(QMatrix::stack(&[&m[0], &m[1], &m[2]]))),
                        o: q(&m[3]),
                        gate_up: HostMatrix::Q8(Arc::new(QMatrix::stack(&[&m[4], &m[5]]))),
                        down: q(&m[6]),
                        nq: m[0].rows,
                        nk: m[1].rows,
                        ngate: m[4].rows,
                    })
                    .collect();
                (layers, q(q8.head()))
            }
            None => {
                let f = |ts: &[&Tensor<2>]| F32Matrix::of(ts).map(HostMatrix::F32);
                let layers = model
                    .layers
                    .iter()
                    .map(|l| {
                        let (a, m) = (&l.self_attn, &l.mlp);
                        Some(LayerMats {
                            qkv: f(&[&a.q_proj, &a.k_proj, &a.v_proj])?,
                            o: f(&[&a.o_proj])?,
                            gate_up: f(&[&m.gate_proj, &m.up_proj])?,
                            down: f(&[&m.down_proj])?,
                            nq: a.q_proj.dims()[0],
                            nk: a.k_proj.dims()[0],
                            ngate: m.gate_proj.dims()[0],
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                (layers, f(&[model.lm_head.as_ref().unwrap_or(&model.embed_tokens)])?)
            }
        };
        let (cos, sin) = model.rope_tables();
        Some(HostDecoder {
            cfg: model.config.clone(),
            layers,
            head,
            input_norms: model.layers.iter().map(|l| host1(&l.input_layernorm)).collect(),
            post_norms: model.layers.iter().map(|l| host1(&l.post_attention_layernorm)).collect(),
            q_norms: model
                .layers
                .iter()
                .map(|l| match (&l.self_attn.q_norm, &l.self_attn.k_norm) {
                    (Some(q), Some(k)) => Some((host1(q), host1(k))),
                    _ => None,
                })
                .collect(),
            norm: host1(&model.norm),
            cos: host2(&cos),
            sin: host2(&sin),
            embed,
        })
    }

    /// The host copy of row 0 of a model's KV cache (a batch of one).
    pub fn cache_from(&self, cache: &KvCache) -> HostCache {
        let (nkv, hd) = (self.cfg.num_key_value_heads, self.cfg.head_dim());
        let mut k = Vec::new();
        let mut v = Vec::new();
        for (kt, vt) in cache.layer_tensors() {
            // [1, kv_heads, len, head_dim] → [len, kv_heads · head_dim]
            let len = kt.dims()[2];
            let to_rows = |t: &Tensor<4>| {
                let d = t.to_data().convert::<f32>().try_into_vec::<f32>().expect("f32");
                let mut out = vec![0f32; len * nkv * hd];
                for h in 0..nkv {
                    for p in 0..len {
                        out[(p * nkv + h) * hd..(p * nkv + h + 1) * hd]
                            .copy_from_slice(&d[(h * len + p) * hd..(h * len + p + 1) * hd]);
                    }
                }
                out
            };
            k.push(to_rows(&kt));
            v.push(to_rows(&vt));
        }
        HostCache { k, v, len: cache.len() }
    }

    /// HF's rotate-half RoPE of one head at position `pos`, in place.
    fn rope(&self, x: &mut [f32], pos: usize) {
        let hd = x.len();
        let half = hd / 2;
        let (cos, sin) = (&self.cos[pos * hd..(pos + 1) * hd], &self.sin[pos * hd..(pos + 1) * hd]);
        for i in 0..half {
            let (x1, x2) = (x[i], x[i + half]);
            x[i] = x1 * cos[i] - x2 * sin[i];
            x[i + half] = x2 * cos[i + half] + x1 * sin[i + half];
        }
    }

    /// Logits `[vocab]` of `token` at the next position of `cache`, which it extends.
    pub fn step(&self, token: u32, cache: &mut HostCache) -> Vec<f32> {
        self.step_batch(&[token], &mut [cache])
    }

    /// One token for each of several independent sequences (each at its own position in its own
    /// cache): logits `[n, vocab]`. The matrix products run once over all `n` rows (each weight read
    /// once per step, not once per sequence: what makes serving several clients at a time cheaper
    /// than serving them in turn); attention runs per sequence over its own cache.
    pub fn step_batch(&self, tokens: &[u32], caches: &mut [&mut HostCache]) -> Vec<f32> {
        assert_eq!(tokens.len(), caches.len(), "one cache per token");
        let x = self.rows(tokens, caches, false);
        self.head.matmul(&x, tokens.len())
    }

    /// Multiply-adds of the matrix products for one token.
    pub fn macs_per_token(&self) -> usize {
        self.head.len()
            + self.layers.iter().map(|m| m.qkv.len() + m.o.len() + m.gate_up.len() + m.down.len()).sum::<usize>()
    }

    /// An empty cache, to prefill on the host.
    pub fn new_cache(&self) -> HostCache {
        let l = self.layers.len();
        HostCache { k: vec![Vec::new(); l], v: vec![Vec::new(); l], len: 0 }
    }

    /// `tokens` of one sequence appended to `cache` (its next positions, attending causally) in one
    /// pass: the logits `[vocab]` after the last. The same products in the same order as stepping
    /// the tokens one at a time, so the same bits; for short prompts this beats the model's batched
    /// forward pass, whose per-operation overhead dominates at a few dozen tokens.
    pub fn prefill(&self, tokens: &[u32], cache: &mut HostCache) -> Vec<f32> {
        let hidden = self.cfg.hidden_size;
        let x = self.rows(tokens, &mut [cache], true);
        self.head.matmul(&x[x.len() - hidden..], 1)
    }

    /// The final-norm hidden states `[n, hidden]` of `tokens`: row `r` of sequence `caches[r]`, or,
    /// with `one_sequence`, consecutive positions of `caches[0]`.
    fn rows(&self, tokens: &[u32], caches: &mut [&mut HostCache], one_sequence: bool) -> Vec<f32> {
        let c = &self.cfg;
        let n = tokens.len();
        let (nh, hd) = (c.num_attention_heads, c.head_dim());
        let hidden = c.hidden_size;
        // [n, hidden]
        let mut x = Vec::with_capacity(n * hidden);
        for &t in tokens {
            assert!((t as usize) < self.embed.rows, "token {t} is past the vocabulary");
            x.extend_from_slice(self.embed.row(t as usize));
        }
        for (l, m) in self.layers.iter().enumerate() {
            let mut h = x.clone();
            for h in h.chunks_mut(hidden) {
                rms_norm(h, &self.input_norms[l], c.rms_norm_eps);
            }
            let qkv = m.qkv.matmul(&h, n); // [n, (heads + 2 kv_heads) · head_dim]
            let width = m.qkv.rows();
            let mut out = vec![0f32; n * nh * hd]; // [n, heads · head_dim]
            if one_sequence {
                // Consecutive positions of one sequence, in order (each attends to those before).
                let base = caches[0].len;
                for r in 0..n {
                    let row = &qkv[r * width..(r + 1) * width];
                    self.attend(l, m, row, caches[0], base + r, &mut out[r * nh * hd..(r + 1) * nh * hd]);
                }
            } else {
                // Independent sequences: their attention in parallel, one row per part.
                let rows: Vec<Mutex<(&mut HostCache, &mut [f32])>> =
                    caches.iter_mut().zip(out.chunks_mut(nh * hd)).map(|(c, o)| Mutex::new((&mut **c, o))).collect();
                crate::spin::run(n, &|r| {
                    let mut g = rows[r].lock().unwrap_or_else(|e| e.into_inner());
                    let (cache, o) = &mut *g;
                    let pos = cache.len;
                    self.attend(l, m, &qkv[r * width..(r + 1) * width], cache, pos, o);
                });
            }
            for (x, a) in x.iter_mut().zip(m.o.matmul(&out, n)) {
                *x += a;
            }
            let mut h = x.clone();
            for h in h.chunks_mut(hidden) {
                rms_norm(h, &self.post_norms[l], c.rms_norm_eps);
            }
            let gu = m.gate_up.matmul(&h, n); // [n, 2 · intermediate]
            let mut a = Vec::with_capacity(n * m.ngate); // [n, intermediate]
            for r in gu.chunks(2 * m.ngate) {
                let (g, u) = r.split_at(m.ngate);
                a.extend(g.iter().zip(u).map(|(g, u)| g / (1.0 + (-g).exp()) * u));
            }
            for (x, d) in x.iter_mut().zip(m.down.matmul(&a, n)) {
                *x += d;
            }
        }
        if one_sequence {
            caches[0].len += n;
        } else {
            for cache in caches.iter_mut() {
                cache.len += 1;
            }
        }
        for x in x.chunks_mut(hidden) {
            rms_norm(x, &self.norm, c.rms_norm_eps);
        }
        x
    }

    /// Attention of one sequence's position `pos` (its cache holds the positions before it): RoPE (and QK-norm) on its query and key, the key
    /// and value appended to layer `l` of `cache`, the heads' outputs written to `out: [heads · head_dim]`.
    fn attend(&self, l: usize, m: &LayerMats, qkv: &[f32], cache: &mut HostCache, pos: usize, out: &mut [f32]) {
        let c = &self.cfg;
        let (nh, nkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim());
        let group = nh / nkv;
        let scale = 1.0 / (hd as f32).sqrt();
        let (nq, nk) = (m.nq, m.nk);
        let mut q = qkv[..nq].to_vec();
        let mut k = qkv[nq..nq + nk].to_vec();
        let v = &qkv[nq + nk..];
        for hq in 0..nh {
            let qh = &mut q[hq * hd..(hq + 1) * hd];
            if let Some((qn, _)) = &self.q_norms[l] {
                rms_norm(qh, qn, c.rms_norm_eps);
            }
            self.rope(qh, pos);
        }
        for hk in 0..nkv {
            let kh = &mut k[hk * hd..(hk + 1) * hd];
            if let Some((_, kn)) = &self.q_norms[l] {
                rms_norm(kh, kn, c.rms_norm_eps);
            }
            self.rope(kh, pos);
        }
        cache.k[l].extend_from_slice(&k);
        cache.v[l].extend_from_slice(v);
        let (ks, vs) = (&cache.k[l], &cache.v[l]);
        let len = pos + 1;
        let mut scores = vec![0f32; len];
        for hq in 0..nh {
            let kvh = hq / group;
            let qh = &q[hq * hd..(hq + 1) * hd];
            for (t, s) in scores.iter_mut().enumerate() {
                *s = dot(qh, &ks[(t * nkv + kvh) * hd..(t * nkv + kvh + 1) * hd]) * scale;
            }
            let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut z = 0f32;
            for s in scores.iter_mut() {
                *s = (*s - top).exp();
                z += *s;
            }
            let o = &mut out[hq * hd..(hq + 1) * hd];
            o.fill(0.0);
            for (t, s) in scores.iter().enumerate() {
                let p = s / z;
                for (o, v) in o.iter_mut().zip(&vs[(t * nkv + kvh) * hd..(t * nkv + kvh + 1) * hd]) {
                    *o += p * v;
                }
            }
        }
    }
}
