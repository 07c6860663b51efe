//! Arguments shared by the subcommands that read the configuration.

use crate::config::HoneConfig;
use anyhow::{Context, Result};
use clap::Args;
use hone_data::config::{self, Documented};
use std::path::PathBuf;

/// `--config FILE` and repeated `--set section.key=value`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// TOML config file; fields left out keep their defaults.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one field, e.g. `--set tokenizer.vocab_size=8192` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl ConfigArgs {
    /// Loads the config, with `extra` overrides (from a subcommand's own flags) applied last.
    pub fn load(&self, extra: &[String]) -> Result<HoneConfig> {
        let mut sets = self.set.clone();
        sets.extend_from_slice(extra);
        Ok(config::load::<HoneConfig>(self.config.as_deref(), &sets)?)
    }
}

/// Prints the given sections of the resolved config as a table on stderr and writes the whole
/// config to `<run dir>/config.toml`.
pub fn announce(cfg: &HoneConfig, sections: &[&str]) -> Result<()> {
    print_sections(cfg, sections);
    let dir = cfg.run_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating run directory {}", dir.display()))?;
    hone_data::atomic::write_atomic(&dir.join("config.toml"), config::to_commented_toml(cfg).as_bytes())
        .with_context(|| format!("writing {}/config.toml", dir.display()))?;
    debug_assert!(!HoneConfig::docs().is_empty());
    Ok(())
}

/// Prints the given sections of the resolved config as a table on stderr (commands that read a run
/// without changing it print, but do not rewrite its `config.toml`).
pub fn print_sections(cfg: &HoneConfig, sections: &[&str]) {
    let table = config::table(cfg);
    let mut lines = table.lines();
    let mut out = String::new();
    for l in lines.by_ref().take(2) {
        out.push_str(l);
        out.push('\n');
    }
    for l in lines {
        if sections.iter().any(|s| l.starts_with(&format!("{s}."))) {
            out.push_str(l);
            out.push('\n');
        }
    }
    eprintln!("{out}");
}

/// Quotes a list of paths as a TOML array literal for a `--set` override.
pub fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml::Value::String(s.clone()).to_string()).collect();
    format!("[{}]", quoted.join(", "))
}
