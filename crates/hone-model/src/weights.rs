//! Weight files: safetensors with Hugging Face `LlamaForCausalLM` names and PyTorch layouts, so a
//! hone checkpoint opens in `transformers` and a Llama-family checkpoint opens in hone. Also the
//! generic named-f32-tensor files the optimizer state uses.

use crate::config::LlamaConfig;
use crate::llama::Llama;
use burn::tensor::Device;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::{BTreeMap, HashMap};

/// One named f32 tensor on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// How weights are stored in a safetensors file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAs {
    F32,
    /// bfloat16, rounded to nearest even (half the bytes; what most Hugging Face checkpoints hold).
    Bf16,
}

/// Serialises named f32 tensors as a safetensors file (little-endian f32), with optional metadata.
pub fn write_f32(
    tensors: &BTreeMap<String, HostTensor>,
    metadata: Option<HashMap<String, String>>,
) -> anyhow::Result<Vec<u8>> {
    write_as(tensors, metadata, StoreAs::F32)
}

/// Serialises named f32 tensors as a safetensors file, each stored `as_`.
pub fn write_as(
    tensors: &BTreeMap<String, HostTensor>,
    metadata: Option<HashMap<String, String>>,
    as_: StoreAs,
) -> anyhow::Result<Vec<u8>> {
    let encode = |x: &f32| -> Vec<u8> {
        match as_ {
            StoreAs::F32 => x.to_le_bytes().to_vec(),
            StoreAs::Bf16 => half::bf16::from_f32(*x).to_le_bytes().to_vec(),
        }
    };
    let dtype = match as_ {
        StoreAs::F32 => Dtype::F32,
        StoreAs::Bf16 => Dtype::BF16,
    };
    let bytes: Vec<(&String, &Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|(k, t)| (k, &t.shape, t.data.iter().flat_map(encode).collect())).collect();
    let views = bytes
        .iter()
        .map(|(k, shape, b)| Ok(((*k).clone(), TensorView::new(dtype, shape.to_vec(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, metadata)?)
}

/// Reads every tensor of a safetensors file as f32 (F32, F16 and BF16 are accepted). `origin` names
/// the file in errors.
pub fn read_f32(bytes: &[u8], origin: &str) -> anyhow::Result<BTreeMap<String, HostTensor>> {
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| anyhow::anyhow!("{origin}: not a valid safetensors file: {e}"))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data = to_f32(&view).map_err(|e| anyhow::anyhow!("{origin}: tensor `{name}`: {e}"))?;
        out.insert(name, HostTensor { shape: view.shape().to_vec(), data });
    }
    Ok(out)
}

fn to_f32(view: &TensorView<'_>) -> anyhow::Result<Vec<f32>> {
    let b = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::BF16 => b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        other => anyhow::bail!("dtype {other:?} is not a float type hone reads"),
    })
}

/// The model's parameters as a safetensors file with Hugging Face names. A tied model writes no
/// `lm_head.weight`, as `save_pretrained` does.
pub fn model_to_safetensors(model: &Llama) -> anyhow::Result<Vec<u8>> {
    model_to_safetensors_as(model, StoreAs::F32)
}

/// [`model_to_safetensors`] with the weights stored `as_`.
pub fn model_to_safetensors_as(model: &Llama, as_: StoreAs) -> anyhow::Result<Vec<u8>> {
    let tensors = model
        .params()
        .into_iter()
        .map(|(spec, p)| (spec.name, HostTensor { shape: spec.shape, data: p.to_vec() }))
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    write_as(&tensors, Some(meta), as_)
}

/// A model from a safetensors file with Hugging Face names. Every expected tensor must be present
/// with the expected shape; errors name `origin` and the tensor. Extra tensors (e.g. `lm_head.weight`
/// in a tied checkpoint, rotary buffers) are ignored.
pub fn model_from_safetensors(
    bytes: &[u8],
    config: &LlamaConfig,
    device: &Device,
    origin: &str,
) -> anyhow::Result<Llama> {
    let mut tensors = read_f32(bytes, origin)?;
    model_from_tensors(&mut tensors, config, device, origin)
}

/// A model from named host tensors (see [`model_from_safetensors`]); the used tensors are removed.
pub fn model_from_tensors(
    tensors: &mut BTreeMap<String, HostTensor>,
    config: &LlamaConfig,
    device: &Device,
    origin: &str,
) -> anyhow::Result<Llama> {
    Llama::build(config, device, |spec| {
        let t = tensors
            .remove(&spec.name)
            .ok_or_else(|| anyhow::anyhow!("{origin}: missing tensor `{}` (shape {:?})", spec.name, spec.shape))?;
        anyhow::ensure!(
            t.shape == spec.shape,
            "{origin}: tensor `{}` has shape {:?}, the model config expects {:?}",
            spec.name,
            t.shape,
            spec.shape
        );
        Ok(t.data)
    })
}

/// Reads a model file from disk.
pub fn load_model(path: &std::path::Path, config: &LlamaConfig, device: &Device) -> anyhow::Result<Llama> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    model_from_safetensors(&bytes, config, device, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_files_hold_each_weight_rounded_to_bfloat16() {
        let t = BTreeMap::from([(
            "w".to_string(),
            HostTensor { shape: vec![2, 3], data: vec![1.0, -2.5, 1.234_567_8, 1e-8, 65504.0, -0.333_333] },
        )]);
        let bytes = write_as(&t, None, StoreAs::Bf16).unwrap();
        assert!(bytes.len() < write_f32(&t, None).unwrap().len());
        let back = read_f32(&bytes, "t").unwrap();
        let want: Vec<f32> = t["w"].data.iter().map(|x| half::bf16::from_f32(*x).to_f32()).collect();
        assert_eq!(back["w"].data, want);
        assert_eq!(back["w"].shape, vec![2, 3]);
        // The nearest bfloat16: 1.2345678 is 1.234375 (seven fraction bits).
        assert_eq!(back["w"].data[2], 1.234375);
    }
}
