//! Configuration errors: every one names the key (or file) and what was expected.

/// A configuration problem, always naming the key (or file) and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not valid TOML.
    #[error("{source_name}: not valid TOML: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    /// A key is unknown or has the wrong type.
    #[error("{source_name}: `{key}`: {message}")]
    Schema {
        source_name: String,
        key: String,
        message: String,
    },
    /// A value is out of range or contradicts another setting.
    #[error("`{key}`: {message}")]
    Invalid { key: String, message: String },
    /// A `--set` override is malformed.
    #[error("--set {text}: {message}")]
    Override { text: String, message: String },
    /// The preset name is unknown.
    #[error("unknown preset `{name}`; known presets: {known}")]
    UnknownPreset { name: String, known: String },
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }
}
