//! Reading the file and the environment, and turning every problem into a
//! [`ConfigError`] that names the key it is about.

use std::fmt::Write as _;
use std::path::Path;

use ::config::{Environment, File, FileFormat};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use super::names::entry_label;
use super::validate::validate;
use super::{
    ActiveLevel, Config, EndOn, GpioBackend, LocationKind, Protocol, Pull, ReadMode, ReaderKind,
    Target, Terminator, UnknownAsset,
};
use crate::decode::ChafonVariant;

/// One problem with the configuration, naming the key it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// Dotted key path, e.g. `readers[1].location` (with the reader's name where known).
    pub key: String,
    pub message: String,
}

/// Every problem found; never empty.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// `CUSTODYD__MQTT__URL` overrides `[mqtt] url`. A double underscore separates
/// levels because key names contain single ones (`keep_alive`).
const ENV_PREFIX: &str = "CUSTODYD";
const ENV_SEPARATOR: &str = "__";

/// The key of problems with the file as a whole.
const FILE_KEY: &str = "(file)";

/// Reads `path`, applies `CUSTODYD__SECTION__KEY` overrides from the process
/// environment and validates the result.
///
/// A file that does not deserialize reports its first such problem (serde
/// stops there); a file that does reports every validation problem at once.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let env = std::env::vars_os().map(|(k, v)| {
        (
            k.to_string_lossy().into_owned(),
            v.to_string_lossy().into_owned(),
        )
    });
    load_with_env(path, env)
}

/// [`load`] with the environment passed in, so tests need not change the
/// process environment under each other.
pub(super) fn load_with_env(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigErrors> {
    // (dotted key, variable) of every override, to say where a bad value came from.
    let mut overrides = Vec::new();
    let mut env_map = ::config::Map::new();
    for (var, value) in env {
        if let Some(key) = env_key(&var) {
            overrides.push((key, var.clone()));
            env_map.insert(var, value);
        }
    }

    let result = read(path, env_map).and_then(|config| {
        let errors = validate(&config);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    });
    result.map_err(|mut errors| {
        for error in &mut errors {
            let from_env = overrides
                .iter()
                .find(|(key, _)| key == &error.key || key.starts_with(&format!("{}.", error.key)));
            if let Some((_, var)) = from_env {
                let _ = write!(error.message, " (set by environment variable {var})");
            }
        }
        ConfigErrors(errors)
    })
}

/// The dotted key an environment variable overrides, as the `config` crate
/// derives it (it lower-cases the whole name), or `None` for other variables.
fn env_key(var: &str) -> Option<String> {
    let var = var.to_lowercase();
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}").to_lowercase();
    Some(var.strip_prefix(&prefix)?.replace(ENV_SEPARATOR, "."))
}

/// The file with the overrides applied, deserialized but not yet validated.
fn read(path: &Path, env: ::config::Map<String, String>) -> Result<Config, Vec<ConfigError>> {
    let file_error = |message: String| {
        vec![ConfigError {
            key: FILE_KEY.into(),
            message: format!("{}: {message}", path.display()),
        }]
    };
    // Read here rather than by the crate, so that the message says why
    // (missing, permission denied) and names the path.
    let text =
        std::fs::read_to_string(path).map_err(|e| file_error(format!("cannot read: {e}")))?;
    let raw = ::config::Config::builder()
        .add_source(File::from_str(&text, FileFormat::Toml))
        .add_source(
            Environment::with_prefix(ENV_PREFIX)
                .separator(ENV_SEPARATOR)
                .source(Some(env)),
        )
        .build()
        .map_err(|e| match e {
            ::config::ConfigError::FileParse { cause, .. } => {
                file_error(syntax_error(&text, cause.as_ref()))
            }
            other => vec![describe(other, None)],
        })?;
    raw.clone()
        .try_deserialize()
        .map_err(|e| vec![describe(e, Some(&raw))])
}

/// A TOML syntax error as `line L, column C: what`. The parser's own rendering
/// quotes the offending line, which may hold `password = ...`; this never does.
fn syntax_error(text: &str, cause: &(dyn std::error::Error + 'static)) -> String {
    let Some(e) = cause.downcast_ref::<toml::de::Error>() else {
        return format!("not valid TOML: {cause}");
    };
    let message = e.message().trim_end();
    let Some(before) = e.span().and_then(|span| text.get(..span.start)) else {
        return format!("not valid TOML: {message}");
    };
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("not valid TOML at line {line}, column {column}: {message}")
}

/// One deserialization error of the `config` crate as a [`ConfigError`] whose
/// key is the dotted path the crate tracked, extended by the unknown key
/// itself, and with array entries labelled by their `name` (looked up in
/// `raw`) as the validation errors are.
fn describe(error: ::config::ConfigError, raw: Option<&::config::Config>) -> ConfigError {
    use ::config::ConfigError as E;
    let (key, message) = match error {
        E::NotFound(key) => (key, "is required but missing".to_string()),
        E::Type {
            unexpected,
            expected,
            key,
            ..
        } => {
            // serde says `struct GatewayConfig`; the file calls it a table.
            let expected = if expected.starts_with("struct ") {
                "a table"
            } else {
                expected
            };
            (
                key.unwrap_or_default(),
                format!("invalid type: {unexpected}, expected {expected}"),
            )
        }
        E::At { error, key, .. } => {
            let key = key.unwrap_or_default();
            match *error {
                E::Message(message) => refine(key, message),
                other => (key, other.to_string()),
            }
        }
        E::Message(message) => refine(String::new(), message),
        other => (String::new(), other.to_string()),
    };
    let key = dot_after_index(&key);
    let key = match raw {
        Some(raw) => label_entries(&key, raw),
        None => key,
    };
    ConfigError {
        key: if key.is_empty() { FILE_KEY.into() } else { key },
        message,
    }
}

/// Rewrites serde's custom messages that know more than their key: an
/// unknown field names the key itself, and an enum lists what it accepts.
fn refine(key: String, message: String) -> (String, String) {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once('`') {
            let key = if key.is_empty() {
                field.to_string()
            } else {
                format!("{key}.{field}")
            };
            let expected = expected.trim_start_matches(", ");
            return (key, format!("unknown key; {expected}"));
        }
    }
    // "enum Protocol does not have variant constructor em4200"
    if let Some((enum_name, value)) = message
        .strip_prefix("enum ")
        .and_then(|rest| rest.split_once(" does not have variant constructor "))
    {
        if let Some(variants) = variants_of(enum_name) {
            let expected = variants.join(", ");
            return (
                key,
                format!("unknown value {value:?}; expected one of: {expected}"),
            );
        }
    }
    // "value of enum Protocol should be represented by either string or table ..."
    if let Some((enum_name, _)) = message
        .strip_prefix("value of enum ")
        .and_then(|rest| rest.split_once(' '))
    {
        if let Some(variants) = variants_of(enum_name) {
            let expected = variants.join(", ");
            return (key, format!("expected a string, one of: {expected}"));
        }
    }
    if message.contains("expected a duration") {
        return (
            key,
            format!("{message}, such as \"250ms\", \"5s\" or \"1m 30s\""),
        );
    }
    (key, message)
}

/// The accepted spellings of the configuration's enums, by Rust type name
/// (which is what the `config` crate's messages name).
fn variants_of(enum_name: &str) -> Option<&'static [&'static str]> {
    Some(match enum_name {
        "LocationKind" => serde_names::<LocationKind>(),
        "Protocol" => serde_names::<Protocol>(),
        "MqttVersion" => serde_names::<super::MqttVersion>(),
        "ReadMode" => serde_names::<ReadMode>(),
        "ChafonVariant" => serde_names::<ChafonVariant>(),
        "Target" => serde_names::<Target>(),
        "Terminator" => serde_names::<Terminator>(),
        "ReaderKind" => serde_names::<ReaderKind>(),
        "ReaderRole" => serde_names::<super::ReaderRole>(),
        "EndOn" => serde_names::<EndOn>(),
        "Side" => serde_names::<super::Side>(),
        "GpioBackend" => serde_names::<GpioBackend>(),
        "ActiveLevel" => serde_names::<ActiveLevel>(),
        "Pull" => serde_names::<Pull>(),
        "UnknownAsset" => serde_names::<UnknownAsset>(),
        _ => return None,
    })
}

/// `readers[0]protocol` becomes `readers[0].protocol`: the crate (0.15)
/// joins an array index and the key after it without a dot.
fn dot_after_index(key: &str) -> String {
    let mut fixed = String::with_capacity(key.len() + 2);
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        fixed.push(c);
        if c == ']' && chars.peek().is_some_and(|&next| next != '[' && next != '.') {
            fixed.push('.');
        }
    }
    fixed
}

/// `readers[0].protocol` becomes `readers[0] (door1-em).protocol` when the
/// entry has a usable `name`.
fn label_entries(key: &str, raw: &::config::Config) -> String {
    for section in ["readers", "locations"] {
        let Some((index, tail)) = key
            .strip_prefix(section)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.split_once(']'))
        else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        if let Ok(name) = raw.get_string(&format!("{section}[{index}].name")) {
            return format!("{}{tail}", entry_label(section, index, &name));
        }
    }
    key.to_string()
}

/// The names serde hands a deserializer for `T`: an enum's variants or a
/// struct's fields, spelled as in the file. Derived rather than listed, so
/// messages and tests cannot fall behind the types.
pub(super) fn serde_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("names only"))
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = variants;
            Err(de::Error::custom("names only"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("names only"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map identifier ignored_any
        }
    }

    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut names));
    names
}
