//! Forward passes over packed rows (several examples in one row, each attending only to itself).
//! Waits on `hone_model::llama::Layout`; until then packing is refused with a clear error.

use burn::tensor::{Int, Tensor};
use hone_model::Llama;

/// Logits `[rows, seq, vocab]` of packed rows; `segments[r * seq + t]` is token t's example.
pub fn forward_packed(
    _model: &Llama,
    _ids: Tensor<2, Int>,
    _segments: &[u32],
    _rows: usize,
    _seq: usize,
) -> anyhow::Result<Tensor<3>> {
    anyhow::bail!("packing is not available in this build: set packing = false")
}
