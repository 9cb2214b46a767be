//! The SDK's error type: a message that reaches the host's log and the plugin's caller.

use serde::de::DeserializeOwned;

/// An error a plugin returns; the host records its message with tenant and plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this message.
    pub fn msg(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error { message }
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::msg(message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::msg(e.to_string())
    }
}

impl From<aer_wire::DecodeError> for Error {
    fn from(e: aer_wire::DecodeError) -> Self {
        Error::msg(e.to_string())
    }
}

/// Parse a plugin configuration from JSON; an empty or blank text gives `C::default()`.
///
/// Errors name the offending field, e.g. ``invalid type: string "x", expected u64 at
/// line 1 column 17``; use `#[serde(deny_unknown_fields)]` to reject misspelt keys.
pub fn parse_config<C: DeserializeOwned + Default>(config: &str) -> Result<C> {
    if config.trim().is_empty() {
        return Ok(C::default());
    }
    serde_json::from_str(config).map_err(|e| Error::msg(format!("invalid configuration: {e}")))
}
