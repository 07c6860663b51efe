//! Built-in pipeline presets: TOML layers applied over the defaults, under a user's `--config` and
//! `--set`. Each file in `crates/hone/presets/` documents what it is sized for.

pub const PRESETS: &[(&str, &str)] = &[
    ("default", include_str!("../../presets/default.toml")),
    ("quick", include_str!("../../presets/quick.toml")),
    ("cpu-large", include_str!("../../presets/cpu-large.toml")),
    ("gpu", include_str!("../../presets/gpu.toml")),
    ("smollm2", include_str!("../../presets/smollm2.toml")),
];

/// The TOML text of a preset.
pub fn preset(name: &str) -> anyhow::Result<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).ok_or_else(|| {
        anyhow::anyhow!(
            "--preset {name}: no such preset (available: {})",
            PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        )
    })
}
