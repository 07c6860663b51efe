//! A frozen reference model's numbers, computed once and cached in the stage folder: preference
//! stages that regularise toward a reference (DPO, KTO) score every training example with it before
//! training, keyed by the reference's weights and the tokens, so a resumed run reuses them and the
//! reference never changes mid-run.

use hone_model::Llama;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// The key of a reference computation: sha256 of the reference's weights and of `tokens` (anything
/// serialisable that fixes what is scored).
pub fn key(reference: &Llama, tokens: &impl Serialize) -> anyhow::Result<String> {
    let weights = hone_model::weights::model_to_safetensors(reference)?;
    let tokens = serde_json::to_vec(tokens)?;
    Ok(hone_data::hash::sha256_hex(
        &[hone_data::hash::sha256_hex(&weights), hone_data::hash::sha256_hex(&tokens)].concat().into_bytes(),
    ))
}

/// Something cached under a key.
pub trait Keyed: Serialize + DeserializeOwned {
    fn key(&self) -> &str;
}

/// The value cached at `path` when its key is `key`, else `compute()`'s, written there atomically.
/// Returns it and whether it was reused.
pub fn cached<T: Keyed>(
    path: &Path,
    key: &str,
    compute: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, bool)> {
    if let Ok(bytes) = std::fs::read(path)
        && let Ok(r) = serde_json::from_slice::<T>(&bytes)
        && r.key() == key
    {
        return Ok((r, true));
    }
    let r = compute()?;
    hone_data::atomic::write_atomic(path, &serde_json::to_vec(&r)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok((r, false))
}
