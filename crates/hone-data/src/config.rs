//! Typed configuration: every section is a plain struct whose fields carry a documented default
//! (declared with [`config_section!`]), loaded from TOML and overridden with `--set section.key=value`.
//!
//! Loading works on TOML value trees so that errors can be precise: the defaults are serialised to a
//! tree, the user's file and the overrides are checked key by key against it (an unknown key lists the
//! valid ones, a value of the wrong type names the expected type and the default), and only then is
//! the merged tree deserialised into the typed struct. The resolved config is written back as TOML
//! with each field's documentation as a comment, so a run directory explains itself.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Write as _;
use std::path::Path;
use toml::Value;

/// A configuration struct whose fields have documented defaults.
pub trait Documented: Serialize + DeserializeOwned + Default {
    /// `(dotted key, documentation)` for every leaf field, in declaration order.
    fn docs() -> Vec<(String, &'static str)>;
}

/// Declares a configuration section: a struct with a documented default for every field.
///
/// ```
/// hone_data::config_section! {
///     /// Example section.
///     pub struct Example {
///         /// How many things.
///         count: usize = 3,
///         /// Their name.
///         name: String = "x".to_string(),
///     }
/// }
/// assert_eq!(Example::default().count, 3);
/// ```
#[macro_export]
macro_rules! config_section {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )*
        }
        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }
        impl $crate::config::Documented for $name {
            fn docs() -> Vec<(String, &'static str)> {
                vec![ $( (stringify!($field).to_string(), concat!($($doc, "\n"),+).trim()), )* ]
            }
        }
    };
    // A section that embeds another one's fields under its own keys (`..name: Type = default` last):
    // the shared training-loop settings every stage section carries.
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $field:ident : $ty:ty = $default:expr,
            )*
            ..$flat:ident : $fty:ty = $fdefault:expr $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        // No `deny_unknown_fields`: serde does not support it beside `flatten`. Unknown keys are still
        // refused, by `load` checking every key against the defaults tree before deserialising.
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(default)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )*
            #[serde(flatten)]
            pub $flat: $fty,
        }
        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* $flat: $fdefault }
            }
        }
        impl $crate::config::Documented for $name {
            fn docs() -> Vec<(String, &'static str)> {
                let mut out = vec![ $( (stringify!($field).to_string(), concat!($($doc, "\n"),+).trim()), )* ];
                out.extend(<$fty as $crate::config::Documented>::docs());
                out
            }
        }
    };
}

/// Declares a root configuration made of sections, each a [`Documented`] struct.
#[macro_export]
macro_rules! config_root {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $( $(#[doc = $doc:literal])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }
        impl $crate::config::Documented for $name {
            fn docs() -> Vec<(String, &'static str)> {
                let mut out = Vec::new();
                $(
                    for (k, d) in <$ty as $crate::config::Documented>::docs() {
                        out.push((format!("{}.{}", stringify!($field), k), d));
                    }
                )*
                out
            }
        }
    };
    // A root whose sections continue in another root (`..name: Type` last), e.g. one section per
    // registered training stage.
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $( $(#[doc = $doc:literal])* $field:ident : $ty:ty, )*
            ..$flat:ident : $fty:ty $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(default)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
            #[serde(flatten)]
            pub $flat: $fty,
        }
        impl $crate::config::Documented for $name {
            fn docs() -> Vec<(String, &'static str)> {
                let mut out = Vec::new();
                $(
                    for (k, d) in <$ty as $crate::config::Documented>::docs() {
                        out.push((format!("{}.{}", stringify!($field), k), d));
                    }
                )*
                out.extend(<$fty as $crate::config::Documented>::docs());
                out
            }
        }
    };
}

/// A configuration error, worded for the person who wrote the file or the flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: unknown key `{key}`. Valid keys:\n{valid}")]
    UnknownKey { origin: String, key: String, valid: String },
    #[error("{origin}: `{key}` expects {expected} (default: {default}), got `{got}`")]
    WrongType { origin: String, key: String, expected: String, default: String, got: String },
    #[error("--set `{0}`: expected `section.key=value`")]
    BadOverride(String),
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("cannot read config file {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Loads a config: defaults, then the TOML file (if any), then `--set` overrides, in that order.
pub fn load<T: Documented>(file: Option<&Path>, overrides: &[String]) -> Result<T, ConfigError> {
    load_layered(&[], file, overrides)
}

/// Like [`load`], with TOML `layers` (origin, text) applied over the defaults before the file, in
/// order: built-in presets that a user's file and `--set` then refine. Every layer is checked like a
/// user's file.
pub fn load_layered<T: Documented>(
    layers: &[(&str, &str)],
    file: Option<&Path>,
    overrides: &[String],
) -> Result<T, ConfigError> {
    let defaults = Value::try_from(T::default()).expect("config defaults serialise to TOML");
    let mut merged = defaults.clone();
    for (origin, text) in layers {
        let layer: toml::Table = toml::from_str(text)
            .map_err(|e| ConfigError::Invalid { origin: origin.to_string(), message: e.to_string() })?;
        merge_checked::<T>(&mut merged, &defaults, &Value::Table(layer), "", origin)?;
    }
    if let Some(path) = file {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: origin.clone(), source })?;
        let user: toml::Table = toml::from_str(&text)
            .map_err(|e| ConfigError::Invalid { origin: origin.clone(), message: e.to_string() })?;
        merge_checked::<T>(&mut merged, &defaults, &Value::Table(user), "", &origin)?;
    }
    for ov in overrides {
        apply_override::<T>(&mut merged, &defaults, ov)?;
    }
    let origin = file.map(|p| p.display().to_string()).unwrap_or_else(|| "config".to_string());
    merged.try_into().map_err(|e: toml::de::Error| ConfigError::Invalid { origin, message: e.to_string() })
}

/// Parses `--set` overrides only (no file), onto defaults.
pub fn from_overrides<T: Documented>(overrides: &[String]) -> Result<T, ConfigError> {
    load(None, overrides)
}

fn valid_keys<T: Documented>() -> String {
    T::docs().iter().map(|(k, d)| format!("  {k:<32} {}", first_line(d))).collect::<Vec<_>>().join("\n")
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn merge_checked<T: Documented>(
    target: &mut Value,
    defaults: &Value,
    user: &Value,
    prefix: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    let (Value::Table(t), Value::Table(d), Value::Table(u)) = (target, defaults, user) else {
        unreachable!("merge_checked is called on tables")
    };
    for (k, uv) in u {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        let Some(dv) = d.get(k) else {
            return Err(ConfigError::UnknownKey { origin: origin.to_string(), key, valid: valid_keys::<T>() });
        };
        if dv.is_table() {
            if !uv.is_table() {
                return Err(wrong_type(origin, &key, dv, uv));
            }
            merge_checked::<T>(t.get_mut(k).expect("same shape as defaults"), dv, uv, &key, origin)?;
        } else {
            t.insert(k.clone(), coerce(dv, uv.clone()).ok_or_else(|| wrong_type(origin, &key, dv, uv))?);
        }
    }
    Ok(())
}

fn apply_override<T: Documented>(merged: &mut Value, defaults: &Value, ov: &str) -> Result<(), ConfigError> {
    let origin = format!("--set {ov}");
    let (key, raw) = ov.split_once('=').ok_or_else(|| ConfigError::BadOverride(ov.to_string()))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(ConfigError::BadOverride(ov.to_string()));
    }
    let mut d = defaults;
    let mut t = merged;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let unknown =
            || ConfigError::UnknownKey { origin: origin.clone(), key: key.to_string(), valid: valid_keys::<T>() };
        let dv = d.get(part).ok_or_else(unknown)?;
        let last = i + 1 == parts.len();
        if last {
            if dv.is_table() {
                return Err(unknown());
            }
            let parsed = parse_value(raw.trim());
            let v = coerce(dv, parsed.clone()).ok_or_else(|| wrong_type(&origin, key, dv, &parsed))?;
            t.as_table_mut().expect("same shape as defaults").insert(part.to_string(), v);
            return Ok(());
        }
        if !dv.is_table() {
            return Err(unknown());
        }
        d = dv;
        t = t.get_mut(part).expect("same shape as defaults");
    }
    unreachable!()
}

/// A `--set` value: a TOML literal when it parses as one (`3`, `1e-3`, `true`, `["a", "b"]`, `"quoted"`),
/// otherwise the raw text as a string, so `--set data.format=jsonl` needs no quotes.
fn parse_value(raw: &str) -> Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| Value::String(raw.to_string())),
        Err(_) => Value::String(raw.to_string()),
    }
}

/// Converts `v` to the type of the default `d`, or `None` when they are incompatible. Integers are
/// accepted where floats are expected; a bare word is accepted where a list of strings is expected.
fn coerce(d: &Value, v: Value) -> Option<Value> {
    match (d, v) {
        (Value::Float(_), Value::Integer(i)) => Some(Value::Float(i as f64)),
        (Value::Array(_), Value::String(s)) => {
            Some(Value::Array(s.split(',').filter(|x| !x.is_empty()).map(|x| Value::String(x.to_string())).collect()))
        }
        (Value::Array(da), Value::Array(va)) => {
            // An empty default says nothing about the element type; otherwise check each element.
            match da.first() {
                None => Some(Value::Array(va)),
                Some(proto) => va.into_iter().map(|x| coerce(proto, x)).collect::<Option<Vec<_>>>().map(Value::Array),
            }
        }
        (d, v) if std::mem::discriminant(d) == std::mem::discriminant(&v) => Some(v),
        _ => None,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "true or false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

fn wrong_type(origin: &str, key: &str, d: &Value, got: &Value) -> ConfigError {
    ConfigError::WrongType {
        origin: origin.to_string(),
        key: key.to_string(),
        expected: type_name(d).to_string(),
        default: d.to_string(),
        got: got.to_string(),
    }
}

/// Flattens a config into `(key, value, doc)` rows in declaration order.
pub fn rows<T: Documented>(cfg: &T) -> Vec<(String, String, &'static str)> {
    let v = Value::try_from(cfg).expect("config serialises to TOML");
    T::docs()
        .into_iter()
        .map(|(k, doc)| {
            let mut cur = &v;
            for part in k.split('.') {
                cur = cur.get(part).unwrap_or(cur);
            }
            (k, cur.to_string(), doc)
        })
        .collect()
}

/// Renders the resolved config as an aligned table: key, value, and the first line of its doc.
pub fn table<T: Documented>(cfg: &T) -> String {
    let rows = rows(cfg);
    let kw = rows.iter().map(|r| r.0.len()).max().unwrap_or(3).max(3);
    let vw = rows.iter().map(|r| r.1.len().min(48)).max().unwrap_or(5).max(5);
    let mut out = String::new();
    let _ = writeln!(out, "{:<kw$}  {:<vw$}  about", "key", "value");
    let _ = writeln!(out, "{}  {}  {}", "-".repeat(kw), "-".repeat(vw), "-".repeat(5));
    for (k, v, d) in rows {
        let v = if v.chars().count() > 48 { format!("{}…", v.chars().take(47).collect::<String>()) } else { v };
        let _ = writeln!(out, "{k:<kw$}  {v:<vw$}  {}", first_line(d));
    }
    out
}

/// Renders the resolved config as TOML with every field's documentation as a comment above it.
/// Loading the result with [`load`] gives back the same config.
pub fn to_commented_toml<T: Documented>(cfg: &T) -> String {
    let docs: std::collections::HashMap<String, &str> = T::docs().into_iter().collect();
    let v = Value::try_from(cfg).expect("config serialises to TOML");
    let mut out = String::from("# hone configuration: every field with its resolved value.\n");
    write_table(&mut out, &v, "", &docs);
    out
}

fn write_table(out: &mut String, v: &Value, prefix: &str, docs: &std::collections::HashMap<String, &str>) {
    let Value::Table(t) = v else { return };
    let key_of = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    for (k, val) in t.iter().filter(|(_, v)| !v.is_table()) {
        if let Some(doc) = docs.get(&key_of(k)) {
            for line in doc.lines() {
                let _ = writeln!(out, "# {}", line.trim());
            }
        }
        let _ = writeln!(out, "{} = {}", toml_key(k), val);
    }
    for (k, val) in t.iter().filter(|(_, v)| v.is_table()) {
        let _ = writeln!(out, "\n[{}]", key_of(k));
        write_table(out, val, &key_of(k), docs);
    }
}

fn toml_key(k: &str) -> String {
    if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') { k.to_string() } else { format!("{k:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::config_section! {
        /// Test section.
        pub struct Inner {
            /// Vocabulary size.
            vocab_size: usize = 512,
            /// Learning rate.
            lr: f64 = 1e-3,
            /// Input files.
            inputs: Vec<String> = vec![],
            /// A name.
            name: String = "tiny".to_string(),
            /// A switch.
            enabled: bool = true,
        }
    }
    crate::config_section! {
        /// Another.
        pub struct Other {
            /// Seed.
            seed: u64 = 7,
        }
    }
    crate::config_root! {
        /// Root.
        pub struct Root {
            inner: Inner,
            other: Other,
        }
    }

    crate::config_section! {
        /// Shared part.
        pub struct Shared {
            /// Steps.
            steps: u64 = 10,
            /// Rate.
            lr: f64 = 0.5,
        }
    }
    crate::config_section! {
        /// A section embedding the shared part.
        pub struct WithShared {
            /// Own field.
            own: usize = 1,
            ..shared: Shared = Shared { steps: 300, ..Shared::default() },
        }
    }
    crate::config_root! {
        /// Sections continued elsewhere.
        pub struct Tail {
            a: WithShared,
        }
    }
    crate::config_root! {
        /// Root with a flattened tail.
        pub struct Outer {
            other: Other,
            ..tail: Tail,
        }
    }

    #[test]
    fn flattened_fields_keep_their_keys() {
        let c: Outer = from_overrides(&s(&["a.steps=7", "a.own=2", "other.seed=1"])).unwrap();
        assert_eq!((c.tail.a.shared.steps, c.tail.a.own, c.other.seed), (7, 2, 1));
        assert_eq!(c.tail.a.shared.lr, 0.5, "the embedded default is kept");
        assert_eq!(Outer::default().tail.a.shared.steps, 300, "the embedding section's default wins");
        let keys: Vec<String> = Outer::docs().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["other.seed", "a.own", "a.steps", "a.lr"]);
        let e = from_overrides::<Outer>(&s(&["a.stepz=7"])).unwrap_err().to_string();
        assert!(e.contains("unknown key `a.stepz`") && e.contains("a.steps"), "{e}");
        let e = from_overrides::<Outer>(&s(&["a.steps=x"])).unwrap_err().to_string();
        assert!(e.contains("`a.steps` expects an integer"), "{e}");
        let text = to_commented_toml(&c);
        assert!(text.contains("# Steps.\nsteps = 7"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, &text).unwrap();
        assert_eq!(load::<Outer>(Some(&p), &[]).unwrap(), c);
        let t = table(&c);
        assert!(t.contains("a.steps") && t.contains("7"), "{t}");
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn defaults_and_overrides() {
        let c: Root =
            from_overrides(&s(&["inner.vocab_size=1024", "inner.lr=1", "inner.name=big", "other.seed=3"])).unwrap();
        assert_eq!(c.inner.vocab_size, 1024);
        assert_eq!(c.inner.lr, 1.0);
        assert_eq!(c.inner.name, "big");
        assert_eq!(c.other.seed, 3);
        let c: Root = from_overrides(&s(&["inner.inputs=a.txt,b.txt", "inner.enabled=false"])).unwrap();
        assert_eq!(c.inner.inputs, vec!["a.txt", "b.txt"]);
        assert!(!c.inner.enabled);
        let c: Root = from_overrides(&s(&[r#"inner.inputs=["x y.txt"]"#])).unwrap();
        assert_eq!(c.inner.inputs, vec!["x y.txt"]);
    }

    #[test]
    fn unknown_key_lists_valid_keys() {
        let e = from_overrides::<Root>(&s(&["inner.vocab=3"])).unwrap_err().to_string();
        assert!(e.contains("unknown key `inner.vocab`"), "{e}");
        assert!(e.contains("inner.vocab_size") && e.contains("other.seed"), "{e}");
        let e = from_overrides::<Root>(&s(&["nope.x=3"])).unwrap_err().to_string();
        assert!(e.contains("unknown key `nope.x`"), "{e}");
    }

    #[test]
    fn wrong_type_names_expected_type() {
        let e = from_overrides::<Root>(&s(&["inner.vocab_size=big"])).unwrap_err().to_string();
        assert!(e.contains("`inner.vocab_size` expects an integer (default: 512)"), "{e}");
        let e = from_overrides::<Root>(&s(&["inner.enabled=3"])).unwrap_err().to_string();
        assert!(e.contains("true or false"), "{e}");
        let e = from_overrides::<Root>(&s(&["inner.vocab_size"])).unwrap_err().to_string();
        assert!(e.contains("section.key=value"), "{e}");
        // A negative number for an unsigned field is caught when the typed struct is built.
        let e = from_overrides::<Root>(&s(&["inner.vocab_size=-1"])).unwrap_err().to_string();
        assert!(e.contains("vocab_size"), "{e}");
    }

    #[test]
    fn file_then_overrides_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[inner]\nvocab_size = 2048\nname = \"file\"\n").unwrap();
        let c: Root = load(Some(&p), &s(&["inner.name=flag"])).unwrap();
        assert_eq!((c.inner.vocab_size, c.inner.name.as_str()), (2048, "flag"));
        let text = to_commented_toml(&c);
        assert!(text.contains("# Vocabulary size."), "{text}");
        std::fs::write(&p, &text).unwrap();
        let back: Root = load(Some(&p), &[]).unwrap();
        assert_eq!(back, c);
        std::fs::write(&p, "[inner]\nvocab_sise = 1\n").unwrap();
        let e = load::<Root>(Some(&p), &[]).unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("inner.vocab_sise"), "{e}");
    }

    #[test]
    fn table_lists_every_key() {
        let t = table(&Root::default());
        for (k, _) in Root::docs() {
            assert!(t.contains(&k), "{k} missing from\n{t}");
        }
    }
}
