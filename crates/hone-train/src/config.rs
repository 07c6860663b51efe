//! Configuration sections of training: `[optim]` (optimizer, schedule, clipping, the non-finite
//! guard) shared by every stage, and `[pretrain]` (data, batch shape, eval and checkpoint cadence).

hone_data::config_section! {
    /// Optimizer, learning-rate schedule, clipping and the non-finite guard.
    pub struct OptimConfig {
        /// `adamw`, or `muon` (Muon for hidden 2-D weight matrices, AdamW for embeddings, norms and
        /// the output head, as in modded-nanogpt / nanochat).
        optimizer: String = "adamw".to_string(),
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
        schedule: String = "cosine".to_string(),
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
        on_nonfinite: String = "stop".to_string(),
    }
}

hone_data::config_section! {
    /// The pretraining stage: next-token prediction on packed token shards.
    pub struct PretrainConfig {
        /// Folder of token shards (from `hone prepare`); empty = `<run dir>/data`.
        data_dir: String = String::new(),
        /// Optimizer steps to train.
        steps: u64 = 2000,
        /// Rows per micro-batch.
        batch_size: usize = 16,
        /// Tokens per row (the context length trained).
        seq_len: usize = 128,
        /// Micro-batches accumulated into one optimizer step.
        grad_accum: usize = 1,
        /// Evaluate held-out loss and bits per byte every N steps (and at the end); 0 = only at the end.
        eval_every: u64 = 100,
        /// Held-out rows per evaluation (fixed windows from the start of the validation split).
        eval_rows: usize = 64,
        /// Write a checkpoint every N steps (and at the end); 0 = only at the end.
        checkpoint_every: u64 = 200,
        /// Checkpoints kept (the newest), besides the final one.
        keep_last: usize = 3,
        /// Seed of the initial weights and of the data order (a pure function of seed and step).
        seed: u64 = 0,
        /// Device: `cpu` (burn Flex), `cuda[:N]` or `wgpu` (when built with those features).
        device: String = "cpu".to_string(),
        /// Append a metrics line every N steps.
        log_every: u64 = 10,
    }
}

impl OptimConfig {
    /// Checks the choices that are strings, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            matches!(self.optimizer.as_str(), "adamw" | "muon"),
            "optim.optimizer: `{}` is not one of adamw, muon",
            self.optimizer
        );
        anyhow::ensure!(
            matches!(self.schedule.as_str(), "cosine" | "wsd" | "constant"),
            "optim.schedule: `{}` is not one of cosine, wsd, constant",
            self.schedule
        );
        anyhow::ensure!(
            matches!(self.on_nonfinite.as_str(), "stop" | "skip"),
            "optim.on_nonfinite: `{}` is not one of stop, skip",
            self.on_nonfinite
        );
        anyhow::ensure!((0.0..1.0).contains(&self.beta1), "optim.beta1 must be in [0, 1)");
        anyhow::ensure!((0.0..1.0).contains(&self.beta2), "optim.beta2 must be in [0, 1)");
        anyhow::ensure!((0.0..=1.0).contains(&self.decay_fraction), "optim.decay_fraction must be in [0, 1]");
        Ok(())
    }
}

impl PretrainConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.steps > 0, "pretrain.steps must be positive");
        anyhow::ensure!(self.batch_size > 0, "pretrain.batch_size must be positive");
        anyhow::ensure!(self.seq_len > 0, "pretrain.seq_len must be positive");
        anyhow::ensure!(self.grad_accum > 0, "pretrain.grad_accum must be positive");
        anyhow::ensure!(self.keep_last > 0, "pretrain.keep_last must be positive");
        Ok(())
    }
}
