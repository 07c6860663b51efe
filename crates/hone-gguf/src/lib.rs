//! GGUF, llama.cpp's model file: a header (magic `GGUF`, version 2 or 3, tensor and metadata
//! counts), typed metadata key/values (architecture, hyper-parameters, the tokenizer's vocabulary,
//! merges and chat template), a tensor table (name, shape, ggml type, offset) and the tensor data,
//! aligned to `general.alignment` (32 by default). Spec: `docs/gguf.md` in the ggml repository.
//!
//! Nothing the file claims is trusted before it is checked against the file: every count and length
//! must fit in the bytes that remain before anything is allocated for it, nesting of arrays is
//! bounded, and a tensor's data must lie inside the file. Errors name the file and what was being
//! read. Tensors are read one at a time ([`Gguf::tensor_f32`]), so opening a file costs its header.
//! [`write::Writer`] writes the format (F32, F16, Q8_0 tensors).

pub mod quant;
pub mod write;

use anyhow::{Context, Result, bail};
pub use quant::GgmlType;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    /// The value as an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64).or(match *self {
                Value::I8(v) => Some(v as f64),
                Value::I16(v) => Some(v as f64),
                Value::I32(v) => Some(v as f64),
                Value::I64(v) => Some(v as f64),
                _ => None,
            }),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        if let Value::String(s) = self { Some(s) } else { None }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        if let Value::Array(a) = self { Some(a) } else { None }
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the fastest-varying (a PyTorch `[out, in]` matrix is `[in, out]`).
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// The shape in PyTorch order (slowest-varying first).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// An opened GGUF file: its metadata and tensor table.
#[derive(Debug)]
pub struct Gguf {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the data section.
    pub data_start: u64,
    file_len: u64,
}

/// Deepest nesting of metadata arrays accepted (the spec's files nest one level).
const MAX_NESTING: usize = 4;
/// Most dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;

/// A reader that knows how many bytes remain, so claimed counts can be checked before allocating.
struct Src<R> {
    r: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Src<R> {
    fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        if self.remaining() < N as u64 {
            bail!("the file ends inside {what} (at byte {})", self.pos);
        }
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).with_context(|| format!("reading {what} at byte {}", self.pos))?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    /// A count of items each taking at least `min_bytes`, checked against what remains.
    fn count(&mut self, what: &str, min_bytes: u64) -> Result<usize> {
        let at = self.pos;
        let n = self.u64(what)?;
        if n.saturating_mul(min_bytes.max(1)) > self.remaining() {
            bail!("{what} at byte {at} claims {n}, more than the {} bytes left in the file hold", self.remaining());
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.count(what, 1)?;
        let mut b = vec![0u8; n];
        self.r.read_exact(&mut b).with_context(|| format!("reading {what} at byte {}", self.pos))?;
        let at = self.pos;
        self.pos += n as u64;
        String::from_utf8(b).map_err(|e| anyhow::anyhow!("{what} at byte {at} is not UTF-8 ({e})"))
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<Value> {
        let w = |s: &str| format!("the value of `{key}` ({s})");
        Ok(match ty {
            0 => Value::U8(self.bytes::<1>(&w("u8"))?[0]),
            1 => Value::I8(self.bytes::<1>(&w("i8"))?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.bytes(&w("u16"))?)),
            3 => Value::I16(i16::from_le_bytes(self.bytes(&w("i16"))?)),
            4 => Value::U32(self.u32(&w("u32"))?),
            5 => Value::I32(i32::from_le_bytes(self.bytes(&w("i32"))?)),
            6 => Value::F32(f32::from_le_bytes(self.bytes(&w("f32"))?)),
            7 => match self.bytes::<1>(&w("bool"))?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => bail!("the value of `{key}` is a bool of byte {b}, not 0 or 1"),
            },
            8 => Value::String(self.string(&w("string"))?),
            9 => {
                if depth >= MAX_NESTING {
                    bail!("`{key}` nests arrays deeper than {MAX_NESTING}");
                }
                let elem = self.u32(&w("array element type"))?;
                let min = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8..=12 => 8,
                    other => bail!("`{key}` is an array of unknown type {other}"),
                };
                let n = self.count(&w("array length"), min)?;
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(self.value(elem, key, depth + 1)?);
                }
                Value::Array(out)
            }
            10 => Value::U64(self.u64(&w("u64"))?),
            11 => Value::I64(i64::from_le_bytes(self.bytes(&w("i64"))?)),
            12 => Value::F64(f64::from_le_bytes(self.bytes(&w("f64"))?)),
            other => bail!("`{key}` has unknown value type {other}"),
        })
    }
}

impl Gguf {
    /// Reads the header, metadata and tensor table of `path`.
    pub fn open(path: &Path) -> Result<Gguf> {
        Self::read_header(path).with_context(|| format!("{}: not a readable GGUF file", path.display()))
    }

    fn read_header(path: &Path) -> Result<Gguf> {
        let f = File::open(path).context("cannot open")?;
        let len = f.metadata().context("cannot stat")?.len();
        let mut s = Src { r: BufReader::new(f), pos: 0, len };
        let magic = s.bytes::<4>("the magic number")?;
        if &magic != b"GGUF" {
            bail!("it starts with {magic:?}, not `GGUF`");
        }
        let version = s.u32("the version")?;
        if !(2..=3).contains(&version) {
            bail!("GGUF version {version} is not supported (2 and 3 are)");
        }
        // A tensor entry takes at least 8 (name length) + 4 + 8 + 4 + 8 bytes; a key/value 8 + 4 + 1.
        let n_tensors = s.count("the tensor count", 32)?;
        let n_kv = s.count("the metadata count", 13)?;
        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = s.string(&format!("metadata key {i}"))?;
            let ty = s.u32(&format!("the type of `{key}`"))?;
            let v = s.value(ty, &key, 0)?;
            metadata.insert(key, v);
        }
        let mut tensors = Vec::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = s.string(&format!("tensor {i}'s name"))?;
            let n_dims = s.u32(&format!("`{name}`'s dimension count"))?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                bail!("tensor `{name}` has {n_dims} dimensions (1 to {MAX_DIMS})");
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(s.u64(&format!("`{name}`'s shape"))?);
            }
            let code = s.u32(&format!("`{name}`'s type"))?;
            let ty = GgmlType::from_code(code).with_context(|| format!("tensor `{name}`"))?;
            let offset = s.u64(&format!("`{name}`'s offset"))?;
            tensors.push(TensorInfo { name, dims, ty, offset });
        }
        let align = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 16 => a,
                _ => bail!("general.alignment is {v:?}, not a power of two up to 65536"),
            },
        };
        let data_start = s.pos.div_ceil(align) * align;
        let g = Gguf { path: path.to_path_buf(), version, metadata, tensors, data_start, file_len: len };
        for t in &g.tensors {
            let (start, end) = g.span(t)?;
            if end > len {
                bail!("tensor `{}`'s data (bytes {start}..{end}) runs past the end of the file ({len} bytes)", t.name);
            }
        }
        Ok(g)
    }

    /// Absolute byte range of a tensor's data.
    fn span(&self, t: &TensorInfo) -> Result<(u64, u64)> {
        let n = t
            .dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| anyhow::anyhow!("tensor `{}`'s shape {:?} overflows", t.name, t.dims))?;
        let bytes = t.ty.bytes_for(n).with_context(|| format!("tensor `{}`", t.name))?;
        let start = self
            .data_start
            .checked_add(t.offset)
            .ok_or_else(|| anyhow::anyhow!("tensor `{}`: offset overflows", t.name))?;
        let end = start.checked_add(bytes).ok_or_else(|| anyhow::anyhow!("tensor `{}`: size overflows", t.name))?;
        Ok((start, end))
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The data of tensor `name`, dequantised to f32, in its memory order (row-major over
    /// [`TensorInfo::shape`]).
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.tensor(name).ok_or_else(|| anyhow::anyhow!("{}: no tensor `{name}`", self.path.display()))?;
        let (start, end) = self.span(t).with_context(|| self.path.display().to_string())?;
        debug_assert!(end <= self.file_len, "checked at open");
        let mut f = File::open(&self.path).with_context(|| format!("{}: cannot open", self.path.display()))?;
        f.seek(SeekFrom::Start(start)).with_context(|| format!("{}: seeking to `{name}`", self.path.display()))?;
        let mut raw = vec![0u8; (end - start) as usize];
        f.read_exact(&mut raw).with_context(|| format!("{}: reading `{name}`", self.path.display()))?;
        let mut out = vec![0f32; t.elements() as usize];
        quant::dequantize(t.ty, &raw, &mut out).with_context(|| format!("{}: tensor `{name}`", self.path.display()))?;
        Ok(out)
    }
}
