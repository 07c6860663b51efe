//! Token shards: the prepared form of a pretraining corpus, read by the training stages.
//!
//! A data directory holds, per split (`train`, `val`), raw little-endian token files (`u16` when the
//! vocabulary fits, else `u32`) in which every document starts with BOS, a `.idx` file per shard with
//! the token offset of each document (`u64` LE), and one `index.json` describing everything: dtype,
//! tokenizer hash, sources with their sha256, and per shard its token, document and text-byte counts
//! and sha256. Shards are memory-mapped, so opening a corpus costs nothing and reading it is a copy.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::path::{Path, PathBuf};

pub const INDEX_FILE: &str = "index.json";
pub const FORMAT: &str = "hone-shards-1";

/// Token width on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    U16,
    U32,
}

impl Dtype {
    /// The narrowest width that holds every id of a vocabulary.
    pub fn for_vocab(vocab_size: usize) -> Dtype {
        if vocab_size <= 1 << 16 { Dtype::U16 } else { Dtype::U32 }
    }
    pub fn bytes(self) -> usize {
        match self {
            Dtype::U16 => 2,
            Dtype::U32 => 4,
        }
    }
    /// Little-endian bytes of `tokens` at this width.
    pub fn encode(self, tokens: &[u32]) -> Vec<u8> {
        match self {
            Dtype::U16 => tokens.iter().flat_map(|&t| (t as u16).to_le_bytes()).collect(),
            Dtype::U32 => tokens.iter().flat_map(|&t| t.to_le_bytes()).collect(),
        }
    }
}

/// The two splits of a prepared corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }
}

/// One shard file and what is in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Token file, relative to the data directory.
    pub file: String,
    /// Document offsets file, relative to the data directory.
    pub offsets_file: String,
    pub tokens: u64,
    pub documents: u64,
    /// UTF-8 bytes of the documents' text, for bits per byte.
    pub text_bytes: u64,
    /// sha256 of the token file.
    pub sha256: String,
}

/// Totals and shards of one split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    pub tokens: u64,
    pub documents: u64,
    pub text_bytes: u64,
    pub shards: Vec<ShardInfo>,
}

impl SplitInfo {
    pub fn push(&mut self, s: ShardInfo) {
        self.tokens += s.tokens;
        self.documents += s.documents;
        self.text_bytes += s.text_bytes;
        self.shards.push(s);
    }
}

/// An input file of the corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub format: String,
    pub documents: u64,
}

/// `index.json`: the description of a prepared corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardIndex {
    pub format: String,
    pub dtype: Dtype,
    pub vocab_size: usize,
    pub bos_id: u32,
    pub tokenizer_sha256: String,
    pub val_fraction: f64,
    pub seed: u64,
    pub sources: Vec<SourceInfo>,
    pub train: SplitInfo,
    pub val: SplitInfo,
    pub skipped_empty: u64,
    pub skipped_invalid: u64,
}

impl ShardIndex {
    pub fn split(&self, s: Split) -> &SplitInfo {
        match s {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    pub fn load(dir: &Path) -> Result<ShardIndex> {
        let p = dir.join(INDEX_FILE);
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("{}: cannot read; run `hone data prepare` to create it", p.display()))?;
        let idx: ShardIndex =
            serde_json::from_str(&text).with_context(|| format!("{}: not a valid shard index", p.display()))?;
        if idx.format != FORMAT {
            bail!("{}: format `{}` is not `{FORMAT}`; re-run `hone data prepare`", p.display(), idx.format);
        }
        Ok(idx)
    }
}

/// Writes one shard (tokens + document offsets) atomically and describes it. Documents are streamed
/// to the file one by one, so no second copy of the shard is held in memory.
pub fn write_shard(dir: &Path, name: &str, dtype: Dtype, docs: &[Vec<u32>], text_bytes: u64) -> Result<ShardInfo> {
    use std::io::Write;
    let file = format!("{name}.bin");
    let offsets_file = format!("{name}.idx");
    let mut offsets = Vec::with_capacity(docs.len() * 8);
    let mut pos = 0u64;
    let mut hasher = Sha256::new();
    crate::atomic::write_atomic_with(&dir.join(&file), |f| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        for d in docs {
            offsets.extend_from_slice(&pos.to_le_bytes());
            pos += d.len() as u64;
            let bytes = dtype.encode(d);
            hasher.update(&bytes);
            w.write_all(&bytes)?;
        }
        w.flush()
    })
    .with_context(|| format!("writing {file}"))?;
    let sha256 = hex::encode(hasher.finalize());
    crate::atomic::write_atomic(&dir.join(&offsets_file), &offsets)
        .with_context(|| format!("writing {offsets_file}"))?;
    Ok(ShardInfo { file, offsets_file, tokens: pos, documents: docs.len() as u64, text_bytes, sha256 })
}

/// A memory-mapped shard.
struct MappedShard {
    map: Option<memmap2::Mmap>,
    start: u64,
    len: u64,
    doc_offsets: Vec<u64>,
}

/// The tokens of one split, read across shard boundaries as one stream.
pub struct SplitTokens {
    dtype: Dtype,
    shards: Vec<MappedShard>,
    info: SplitInfo,
}

impl SplitTokens {
    /// Tokens in the split.
    pub fn len(&self) -> u64 {
        self.info.tokens
    }
    pub fn is_empty(&self) -> bool {
        self.info.tokens == 0
    }
    pub fn num_tokens(&self) -> u64 {
        self.info.tokens
    }
    pub fn num_documents(&self) -> u64 {
        self.info.documents
    }
    /// UTF-8 bytes of the split's text; with [`Self::num_tokens`] it converts a loss per token to bits per byte.
    pub fn text_bytes(&self) -> u64 {
        self.info.text_bytes
    }

    /// Copies `out.len()` tokens starting at stream position `start`. Panics past the end, which is a
    /// caller's bug (positions come from [`Self::len`]).
    pub fn get(&self, start: u64, out: &mut [u32]) {
        assert!(
            start + out.len() as u64 <= self.len(),
            "token range {start}+{} past the end {}",
            out.len(),
            self.len()
        );
        let mut i = self.shards.partition_point(|s| s.start + s.len <= start);
        let mut pos = start;
        let mut filled = 0;
        while filled < out.len() {
            let s = &self.shards[i];
            let local = (pos - s.start) as usize;
            let n = (out.len() - filled).min(s.len as usize - local);
            let bytes = s.map.as_deref().unwrap_or(&[]);
            let dst = &mut out[filled..filled + n];
            match self.dtype {
                Dtype::U16 => {
                    for (j, d) in dst.iter_mut().enumerate() {
                        let o = (local + j) * 2;
                        *d = u16::from_le_bytes([bytes[o], bytes[o + 1]]) as u32;
                    }
                }
                Dtype::U32 => {
                    for (j, d) in dst.iter_mut().enumerate() {
                        let o = (local + j) * 4;
                        *d = u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
                    }
                }
            }
            filled += n;
            pos += n as u64;
            i += 1;
        }
    }

    /// The tokens of document `doc` (0-based across the split), BOS included.
    pub fn document(&self, doc: u64) -> Option<Vec<u32>> {
        let mut d = doc;
        for s in &self.shards {
            if d < s.doc_offsets.len() as u64 {
                let a = s.doc_offsets[d as usize];
                let b = s.doc_offsets.get(d as usize + 1).copied().unwrap_or(s.len);
                let mut out = vec![0; (b - a) as usize];
                self.get(s.start + a, &mut out);
                return Some(out);
            }
            d -= s.doc_offsets.len() as u64;
        }
        None
    }
}

/// A prepared corpus, opened for reading.
pub struct TokenData {
    pub dir: PathBuf,
    pub index: ShardIndex,
    pub bos_id: u32,
    pub vocab_size: usize,
    train: SplitTokens,
    val: SplitTokens,
}

impl TokenData {
    /// Opens the data directory written by `hone data prepare`, checking every shard's size.
    pub fn open(dir: &Path) -> Result<TokenData> {
        let index = ShardIndex::load(dir)?;
        let open_split = |info: &SplitInfo| -> Result<SplitTokens> {
            let mut shards = Vec::new();
            let mut start = 0;
            for s in &info.shards {
                let p = dir.join(&s.file);
                let f = File::open(&p).with_context(|| format!("{}: cannot open shard", p.display()))?;
                let size = f.metadata()?.len();
                if size != s.tokens * index.dtype.bytes() as u64 {
                    bail!(
                        "{}: {size} bytes, index.json says {} tokens of {:?}: the shard is truncated or stale; \
                         re-run `hone data prepare`",
                        p.display(),
                        s.tokens,
                        index.dtype
                    );
                }
                // An empty file cannot be mapped; it holds no tokens anyway.
                // SAFETY: shards are written once, atomically, and never modified in place.
                let map = if size == 0 { None } else { Some(unsafe { memmap2::Mmap::map(&f) }?) };
                let op = dir.join(&s.offsets_file);
                let ob = std::fs::read(&op).with_context(|| format!("{}: cannot read offsets", op.display()))?;
                if ob.len() as u64 != s.documents * 8 {
                    bail!(
                        "{}: holds {} offsets, index.json says {} documents",
                        op.display(),
                        ob.len() / 8,
                        s.documents
                    );
                }
                let doc_offsets =
                    ob.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
                shards.push(MappedShard { map, start, len: s.tokens, doc_offsets });
                start += s.tokens;
            }
            Ok(SplitTokens { dtype: index.dtype, shards, info: info.clone() })
        };
        let train = open_split(&index.train)?;
        let val = open_split(&index.val)?;
        Ok(TokenData { dir: dir.to_path_buf(), bos_id: index.bos_id, vocab_size: index.vocab_size, train, val, index })
    }

    pub fn split(&self, s: Split) -> &SplitTokens {
        match s {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    /// Checks every shard against the sha256 recorded in the index.
    pub fn verify(&self) -> Result<()> {
        for s in self.index.train.shards.iter().chain(&self.index.val.shards) {
            let p = self.dir.join(&s.file);
            let got = crate::hash::sha256_file(&p)?;
            if got != s.sha256 {
                bail!("{}: sha256 {got} does not match index.json ({}): the shard is corrupted", p.display(), s.sha256);
            }
        }
        Ok(())
    }
}
