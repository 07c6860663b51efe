//! Helpers shared by the model's integration tests.

use hone_model::LlamaConfig;
use hone_model::burn::tensor::{Device, Tensor};
use hone_model::lora::Lora;
use rand::{Rng, SeedableRng};

/// Draws every `B` matrix of `lora` uniformly in ±0.3 from ChaCha8(`seed`): a fresh adapter's `B` is
/// zero, which would hide a wrong `A` path.
pub fn random_b(lora: &mut Lora, device: &Device, seed: u64) {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    lora.update(device, &mut |s, p| {
        let v: Vec<f32> = if s.name.contains("lora_B") {
            (0..p.numel()).map(|_| r.random_range(-0.3..0.3)).collect()
        } else {
            p.to_vec()
        };
        Ok(p.like(Tensor::<1>::from_floats(v.as_slice(), &device.clone().without_autodiff())))
    })
    .unwrap();
}

/// A tiny model's config: 4 query heads over 2 key-value heads, 64 positions, untied output, the
/// rest as given.
pub fn tiny_config(vocab: usize, hidden: usize, intermediate: usize, layers: usize, qk_norm: bool) -> LlamaConfig {
    LlamaConfig {
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: intermediate,
        num_hidden_layers: layers,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        max_position_embeddings: 64,
        rms_norm_eps: 1e-5,
        rope_theta: 10000.0,
        tie_word_embeddings: false,
        qk_norm,
        initializer_range: 0.2,
        head_dim: None,
        rope_scaling: None,
    }
}
