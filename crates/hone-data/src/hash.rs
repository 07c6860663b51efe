//! Hashes: sha256 of files (for MANIFESTs and shard indexes) and the seeded document hash that assigns
//! documents to the validation split.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("{}: read error", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A number in [0, 1) fixed by the seed and the document's text: the document goes to the validation
/// split when it falls below the validation fraction. Depending on the text alone (not its position)
/// keeps a document's split stable when files are reordered or added.
pub fn split_point(seed: u64, text: &str) -> f64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(text.as_bytes());
    let d = h.finalize();
    let x = u64::from_le_bytes(d[..8].try_into().expect("8 bytes"));
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_deterministic_seeded_and_uniform() {
        assert_eq!(split_point(1, "abc"), split_point(1, "abc"));
        assert_ne!(split_point(1, "abc"), split_point(2, "abc"));
        let below = (0..10_000).filter(|i| split_point(7, &format!("doc {i}")) < 0.1).count();
        assert!((850..1150).contains(&below), "{below}");
    }
}
