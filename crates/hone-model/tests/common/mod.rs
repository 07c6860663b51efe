//! Helpers shared by the model's integration tests.

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
