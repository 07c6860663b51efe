//! Batch-1 decoding on the host with Q8_0 weights: one token through every layer in plain loops
//! (RMSNorm, the Q8_0 matrix products of [`crate::q8`], RoPE, attention over a host KV cache,
//! SwiGLU), with no tensor operations between the products. Decoding one token is a few hundred
//! small operations; through burn each costs more in dispatch and allocation than in arithmetic
//! (a profile of `--q8` decoding spent more time scheduling than multiplying). The prompt is still
//! processed by the model's batched forward pass, whose KV cache this continues; tests check the
//! two paths against each other.

use crate::config::LlamaConfig;
use crate::llama::{KvCache, Llama, Q8Weights};
use crate::q8::QMatrix;
use crate::simd_fn;
use burn::tensor::Tensor;
use std::sync::Arc;

simd_fn! {
    /// `Σ a·b` over two equal-length slices, in 8 partial sums.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0f32; 8];
        let chunks = n / 8;
        for c in 0..chunks {
            for j in 0..8 {
                acc[j] += a[c * 8 + j] * b[c * 8 + j];
            }
        }
        let mut s: f32 = acc.iter().sum();
        for i in chunks * 8..n {
            s += a[i] * b[i];
        }
        s
    }
}

/// The host-side state of one sequence: its keys and values per layer, `[len, kv_heads · head_dim]`.
pub struct HostCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
}

/// What decoding needs beyond the Q8_0 matrices: norms, rotary tables, the embedding.
pub struct HostDecoder {
    cfg: LlamaConfig,
    q8: Arc<Q8Weights>,
    input_norms: Vec<Vec<f32>>,
    post_norms: Vec<Vec<f32>>,
    q_norms: Vec<Option<(Vec<f32>, Vec<f32>)>>,
    norm: Vec<f32>,
    /// Per layer, the query, key and value projections stacked, and the gate and up projections:
    /// each one product over the same input (fewer parallel regions per token, each larger).
    qkv: Vec<QMatrix>,
    gate_up: Vec<QMatrix>,
    /// `[max_positions, head_dim]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    embed: Tensor<2>,
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
    /// The decoder of `model`, which must have Q8_0 copies ([`Llama::quantize_q8`]).
    pub fn new(model: &Llama) -> Option<HostDecoder> {
        let q8 = model.q8_weights()?;
        let (cos, sin) = model.rope_tables();
        let qkv = q8.layers().iter().map(|m| QMatrix::stack(&[&m[0], &m[1], &m[2]])).collect();
        let gate_up = q8.layers().iter().map(|m| QMatrix::stack(&[&m[4], &m[5]])).collect();
        Some(HostDecoder {
            cfg: model.config.clone(),
            q8,
            qkv,
            gate_up,
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
            embed: model.embed_tokens.clone(),
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
        let c = &self.cfg;
        let (nh, nkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim());
        let group = nh / nkv;
        let pos = cache.len;
        let idx = Tensor::<1, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(vec![token as i64], [1]),
            &self.embed.device(),
        );
        let mut x = host2(&self.embed.clone().select(0, idx));
        let scale = 1.0 / (hd as f32).sqrt();
        for (l, m) in self.q8.layers().iter().enumerate() {
            let mut h = x.clone();
            rms_norm(&mut h, &self.input_norms[l], c.rms_norm_eps);
            let qkv = self.qkv[l].matmul(&h, 1);
            let (nq, nk) = (m[0].rows, m[1].rows);
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
            let mut out = vec![0f32; nh * hd];
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
                for (t, s) in scores.iter().enumerate() {
                    let p = s / z;
                    for (o, v) in o.iter_mut().zip(&vs[(t * nkv + kvh) * hd..(t * nkv + kvh + 1) * hd]) {
                        *o += p * v;
                    }
                }
            }
            for (x, a) in x.iter_mut().zip(m[3].matmul(&out, 1)) {
                *x += a;
            }
            let mut h = x.clone();
            rms_norm(&mut h, &self.post_norms[l], c.rms_norm_eps);
            let gu = self.gate_up[l].matmul(&h, 1);
            let (g, u) = gu.split_at(m[4].rows);
            let a: Vec<f32> = g.iter().zip(u).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            for (x, d) in x.iter_mut().zip(m[6].matmul(&a, 1)) {
                *x += d;
            }
        }
        cache.len += 1;
        rms_norm(&mut x, &self.norm, c.rms_norm_eps);
        self.q8.head().matmul(&x, 1)
    }
}
