//! Errors and source positions for the config module.
//!
//! Every failure is a value: a [`ConfigError`] displays as
//! `<file>:<line>:<col>: [<dotted.key>: ]<message>` when it has a position, and
//! as `[<dotted.key>: ]<message>` otherwise (e.g. for `--set` overrides).

use std::fmt;
use std::sync::Arc;

/// A position in a config source. Lines and columns start at 1; columns count
/// characters (Unicode scalar values), not bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    /// The file name as it was given (a path, or a label such as
    /// `<embedded strfry-compat.conf>`).
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub fn new(file: Arc<str>, line: u32, col: u32) -> Pos {
        Pos { file, line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// What went wrong, for callers that want to branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not valid taoCONFIG.
    Syntax,
    /// Valid taoCONFIG that wok does not implement (references, extensions,
    /// `*`, value additions, binary values).
    Unsupported,
    /// Objects or arrays nested deeper than [`super::tao::MAX_DEPTH`].
    TooDeep,
    /// A known key holds a value of the wrong type.
    Type,
    /// `--set` names a key that does not exist.
    UnknownOverride,
    /// `--set` is malformed or its value does not fit the key's type.
    BadOverride,
    /// The config file could not be read.
    Io,
}

/// A config error. See the module docs for the display format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub kind: ErrorKind,
    pub pos: Option<Pos>,
    /// The dotted key involved, if any (`relay.port`).
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ConfigError {
        ConfigError {
            kind,
            pos: None,
            key: None,
            message: message.into(),
        }
    }

    pub fn at(kind: ErrorKind, pos: Pos, message: impl Into<String>) -> ConfigError {
        ConfigError {
            kind,
            pos: Some(pos),
            key: None,
            message: message.into(),
        }
    }

    pub fn with_key(mut self, key: impl Into<String>) -> ConfigError {
        self.key = Some(key.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(pos) = &self.pos {
            write!(f, "{pos}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_position_and_key() {
        let e = ConfigError::at(
            ErrorKind::Type,
            Pos::new("strfry.conf".into(), 8, 12),
            "bad",
        )
        .with_key("relay.port");
        assert_eq!(e.to_string(), "strfry.conf:8:12: relay.port: bad");
    }

    #[test]
    fn display_without_position() {
        let e = ConfigError::new(ErrorKind::UnknownOverride, "nope");
        assert_eq!(e.to_string(), "nope");
        assert_eq!(e.clone().with_key("db").to_string(), "db: nope");
    }
}
