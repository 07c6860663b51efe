//! Writing GGUF v3 files: metadata, the tensor table and tensor data aligned to 32 bytes, with
//! tensors stored as F32, F16 or Q8_0 (quantised as llama.cpp's `quantize_row_q8_0_ref`: one f16
//! scale `max|x| / 127` per block of 32, values rounded to the nearest integer). Used to export
//! models and by tests that need a GGUF file of their own.

use crate::{GgmlType, Value};
use anyhow::{Result, bail};
use half::f16;

/// Alignment of the tensor data (GGUF's default `general.alignment`).
pub const ALIGNMENT: usize = 32;

/// A GGUF file being assembled in memory.
#[derive(Debug, Default)]
pub struct Writer {
    metadata: Vec<(String, Value)>,
    /// (name, ggml dims: fastest-varying first, type, encoded bytes)
    tensors: Vec<(String, Vec<u64>, GgmlType, Vec<u8>)>,
}

/// Q8_0 encoding of `x` (a multiple of 32 values): per block, an f16 scale then 32 signed bytes.
pub fn quantize_q8_0(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(x.len() / 32 * 34);
    for block in x.chunks(32) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    }
    out
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Adds a metadata key (in order; a key given twice is an error at [`Writer::to_bytes`]).
    pub fn meta(&mut self, key: &str, value: Value) -> &mut Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Adds tensor `name` of PyTorch-order `shape` (slowest-varying first) from row-major `data`,
    /// stored as `ty` (F32, F16 or Q8_0; Q8_0 needs rows that are a multiple of 32).
    pub fn tensor(&mut self, name: &str, shape: &[usize], data: &[f32], ty: GgmlType) -> Result<&mut Self> {
        let n: usize = shape.iter().product();
        anyhow::ensure!(n == data.len(), "tensor `{name}`: shape {shape:?} holds {n} values, {} given", data.len());
        let bytes = match ty {
            GgmlType::F32 => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            GgmlType::F16 => data.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect(),
            GgmlType::Q8_0 => {
                let row = *shape.last().unwrap_or(&0);
                anyhow::ensure!(
                    row.is_multiple_of(32),
                    "tensor `{name}`: rows of {row} values cannot be stored as Q8_0 (blocks of 32)"
                );
                quantize_q8_0(data)
            }
            other => bail!("tensor `{name}`: writing {other:?} is not supported (F32, F16, Q8_0 are)"),
        };
        let dims = shape.iter().rev().map(|&d| d as u64).collect();
        self.tensors.push((name.to_string(), dims, ty, bytes));
        Ok(self)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut keys: Vec<&str> = self.metadata.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            bail!("metadata key `{}` given twice", w[0]);
        }
        let mut o = Vec::new();
        o.extend_from_slice(b"GGUF");
        o.extend_from_slice(&3u32.to_le_bytes());
        o.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        o.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            string(&mut o, k);
            o.extend_from_slice(&type_code(v)?.to_le_bytes());
            value(&mut o, v)?;
        }
        let mut offset = 0usize;
        for (name, dims, ty, bytes) in &self.tensors {
            string(&mut o, name);
            o.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                o.extend_from_slice(&d.to_le_bytes());
            }
            o.extend_from_slice(&ty.code().to_le_bytes());
            o.extend_from_slice(&(offset as u64).to_le_bytes());
            offset += bytes.len().next_multiple_of(ALIGNMENT);
        }
        o.resize(o.len().next_multiple_of(ALIGNMENT), 0);
        for (_, _, _, bytes) in &self.tensors {
            o.extend_from_slice(bytes);
            o.resize(o.len().next_multiple_of(ALIGNMENT), 0);
        }
        Ok(o)
    }
}

fn string(o: &mut Vec<u8>, s: &str) {
    o.extend_from_slice(&(s.len() as u64).to_le_bytes());
    o.extend_from_slice(s.as_bytes());
}

fn type_code(v: &Value) -> Result<u32> {
    Ok(match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    })
}

fn value(o: &mut Vec<u8>, v: &Value) -> Result<()> {
    match v {
        Value::U8(x) => o.push(*x),
        Value::I8(x) => o.push(*x as u8),
        Value::U16(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => o.push(u8::from(*x)),
        Value::String(s) => string(o, s),
        Value::U64(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => o.extend_from_slice(&x.to_le_bytes()),
        Value::Array(items) => {
            let ty = match items.first() {
                Some(first) => type_code(first)?,
                None => 4,
            };
            for it in items {
                anyhow::ensure!(type_code(it)? == ty, "a GGUF array holds values of one type");
            }
            o.extend_from_slice(&ty.to_le_bytes());
            o.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for it in items {
                value(o, it)?;
            }
        }
    }
    Ok(())
}
