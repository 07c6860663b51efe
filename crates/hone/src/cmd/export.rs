//! `hone export MODEL --format hf|gguf --out PATH`: a model (any `-m` hone opens) as a self-contained
//! Hugging Face folder (`config.json` with its special token ids, `generation_config.json`, F32
//! `model.safetensors`, tokenizer files with the chat template) or a llama.cpp GGUF file (F32, F16
//! or Q8_0 matrices; the tokenizer and chat template in its metadata).

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Hf,
    Gguf,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
pub enum TensorType {
    F32,
    F16,
    /// Hugging Face folders only.
    Bf16,
    /// GGUF only.
    #[value(name = "q8_0")]
    Q8_0,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The model: a checkpoint or stage folder, a Hugging Face folder or a GGUF file.
    pub model: PathBuf,
    #[arg(long, value_enum)]
    pub format: Format,
    /// How weights are stored: hf f32 or bf16; gguf f32, f16 or q8_0 (matrices; norms stay F32).
    #[arg(long = "type", value_enum, default_value = "f32")]
    pub ty: TensorType,
    /// The folder (hf) or file (gguf) to write.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Write into a folder that is not empty (its files of the same names are replaced), or over an
    /// existing file.
    #[arg(long)]
    pub force: bool,
}

/// Refuses a storage type the format does not take, and to write over what is there without
/// `--force`: a non-empty folder (hf) or a file (gguf).
fn check_out(a: &ExportArgs) -> Result<()> {
    match (a.format, a.ty) {
        (Format::Hf, TensorType::F16 | TensorType::Q8_0) => {
            anyhow::bail!("--type {:?}: a Hugging Face folder stores f32 or bf16 weights", a.ty)
        }
        (Format::Gguf, TensorType::Bf16) => anyhow::bail!("--type bf16: GGUF files are written as f32, f16 or q8_0"),
        _ => {}
    }
    if a.force {
        return Ok(());
    }
    match a.format {
        Format::Hf => {
            if a.out.is_file() {
                anyhow::bail!("{}: is a file; --format hf writes a folder", a.out.display());
            }
            let busy = std::fs::read_dir(&a.out).map(|mut d| d.next().is_some()).unwrap_or(false);
            anyhow::ensure!(
                !busy,
                "{}: the folder is not empty; choose an empty or new folder, or pass --force to replace its files",
                a.out.display()
            );
        }
        Format::Gguf => anyhow::ensure!(
            !a.out.exists(),
            "{}: exists; choose another name, or pass --force to replace it",
            a.out.display()
        ),
    }
    Ok(())
}

pub fn run(a: ExportArgs) -> Result<()> {
    check_out(&a)?;
    let device = hone_model::device::select("cpu")?;
    let m = hone_model::load(&a.model, &device).with_context(|| format!("opening {}", a.model.display()))?;
    match a.format {
        Format::Hf => {
            let as_ = match a.ty {
                TensorType::F32 => hone_model::weights::StoreAs::F32,
                TensorType::Bf16 => hone_model::weights::StoreAs::Bf16,
                other => anyhow::bail!("--type {other:?}: a Hugging Face folder stores f32 or bf16 weights"),
            };
            std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
            for (name, bytes) in hone_model::import::save::checkpoint_files_as(&m, as_)? {
                let path = a.out.join(&name);
                hone_data::atomic::write_atomic(&path, &bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Format::Gguf => {
            let ty = match a.ty {
                TensorType::F32 => hone_gguf::GgmlType::F32,
                TensorType::F16 => hone_gguf::GgmlType::F16,
                TensorType::Q8_0 => hone_gguf::GgmlType::Q8_0,
                TensorType::Bf16 => anyhow::bail!("--type bf16: GGUF files are written as f32, f16 or q8_0"),
            };
            let bytes = hone_model::export::gguf_bytes(&m.model, &m.tokenizer, m.template.source(), ty)?;
            hone_data::atomic::write_atomic(&a.out, &bytes).with_context(|| format!("writing {}", a.out.display()))?;
        }
    }
    println!("{}", a.out.display());
    Ok(())
}
