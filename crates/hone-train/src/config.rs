//! `[optim]`: the optimizer, schedule, clipping and the non-finite guard, shared by every stage (a
//! stage's own section may replace the learning rate and warmup).

use serde::{Deserialize, Serialize};

hone_data::config_section! {
    /// Optimizer, learning-rate schedule, clipping and the non-finite guard.
    pub struct OptimConfig {
        /// `adamw`, or `muon` (Muon for hidden 2-D weight matrices, AdamW for embeddings, norms and
        /// the output head, as in modded-nanogpt / nanochat).
        optimizer: OptimizerKind = OptimizerKind::Adamw,
        /// Peak learning rate of AdamW (for every parameter under `adamw`; embeddings, norms and head
        /// under `muon`).
        lr: f64 = 3e-3,
        /// AdamW β₁.
        beta1: f64 = 0.9,
        /// AdamW β₂.
        beta2: f64 = 0.95,
        /// AdamW ε, added to the bias-corrected √v.
        eps: f64 = 1e-8,
        /// Decoupled weight decay (p ← p·(1 − lr·wd)) on 2-D weight matrices.
        weight_decay: f64 = 0.1,
        /// Also decay the token embedding (off by default, as is usual).
        decay_embeddings: bool = false,
        /// Also decay RMSNorm gains (off by default).
        decay_norms: bool = false,
        /// Peak learning rate of Muon (hidden matrices), in units of the orthogonalised update.
        muon_lr: f64 = 0.02,
        /// Muon momentum (Nesterov).
        muon_momentum: f64 = 0.95,
        /// Newton–Schulz iterations that orthogonalise Muon's update.
        muon_ns_steps: usize = 5,
        /// Learning-rate schedule: `cosine` (warmup, then cosine to min_lr_ratio), `wsd`
        /// (warmup-stable-decay: warmup, flat, then linear to min_lr_ratio), or `constant` (warmup, flat).
        schedule: ScheduleKind = ScheduleKind::Cosine,
        /// Linear warmup steps from 0 to the peak.
        warmup_steps: u64 = 100,
        /// Final learning rate as a fraction of the peak.
        min_lr_ratio: f64 = 0.1,
        /// `wsd`: fraction of the steps spent in the final decay.
        decay_fraction: f64 = 0.2,
        /// Clip the global gradient norm (over all parameters together) to this value; 0 = no clipping.
        grad_clip: f64 = 1.0,
        /// When the loss or gradient norm is not finite: `stop` (error naming the step) or `skip`
        /// (leave weights and optimizer state unchanged for that step and continue).
        on_nonfinite: OnNonFinite = OnNonFinite::Stop,
    }
}

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adamw,
    Muon,
}

/// The shape of the learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Cosine,
    Wsd,
    Constant,
}

/// What the loop does at a non-finite loss or gradient norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnNonFinite {
    Stop,
    Skip,
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OptimizerKind::Adamw => "adamw",
            OptimizerKind::Muon => "muon",
        })
    }
}

impl OptimConfig {
    /// Checks the ranges serde cannot, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!((0.0..1.0).contains(&self.beta1), "optim.beta1 must be in [0, 1)");
        anyhow::ensure!((0.0..1.0).contains(&self.beta2), "optim.beta2 must be in [0, 1)");
        anyhow::ensure!((0.0..=1.0).contains(&self.decay_fraction), "optim.decay_fraction must be in [0, 1]");
        Ok(())
    }
}
