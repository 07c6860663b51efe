//! Forward passes over packed rows: several examples share a row, each restarting its positions and
//! attending only to its own tokens (`hone_model::llama::Layout::packed`).

use burn::tensor::{Int, Tensor};
use hone_model::Llama;
use hone_model::llama::Layout;

/// Logits `[rows, seq, vocab]` of packed rows; `segments[r * seq + t]` is token t's example.
pub fn forward_packed(
    model: &Llama,
    ids: Tensor<2, Int>,
    segments: &[u32],
    rows: usize,
    seq: usize,
) -> anyhow::Result<Tensor<3>> {
    let layout = Layout::packed(segments, rows, seq, model.device());
    Ok(model.forward_with(ids, &layout))
}
