//! wok's configuration: strfry.conf compatible.
//!
//! * [`tao`]: a taoCONFIG parser producing a position-annotated value tree.
//! * `keys.rs`: the declarative table of every key (strfry name, type,
//!   default, restart flag, doc), which generates [`Config`] and its sections.
//! * [`load`]: find the file (`--config`, `$STRFRY_CONFIG`, `/etc/strfry.conf`,
//!   `./strfry.conf`, else the embedded `strfry-compat.conf`), parse it, warn
//!   about unknown keys, reject wrongly typed ones, apply `--set` overrides.
//! * [`diff_reload`]: what a hot reload changes, keeping noReload keys.

mod error;
mod keys;
mod overrides;
mod reload;
mod render;
pub mod retention;
mod schema;
pub mod tao;
mod typed;

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use error::{ConfigError, ErrorKind, Pos};
pub use keys::*;
pub use overrides::{apply_override, apply_overrides, parse_override_value};
pub use reload::{diff_reload, no_reload_keys};
pub use render::render_conf;
pub use schema::{
    key, keys, sections, DefaultValue, KeyDef, KeyOrigin, KeyType, SectionDef, Setting,
};

/// wok's default config file, compiled in; used when no file is found.
pub const EMBEDDED_CONF: &str = include_str!("../../strfry-compat.conf");

/// The file name shown in positions and warnings for [`EMBEDDED_CONF`].
pub const EMBEDDED_NAME: &str = "<embedded strfry-compat.conf>";

/// Config files larger than this are refused.
pub const MAX_CONFIG_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// The config files tried, in order, when neither `--config` nor
/// `$STRFRY_CONFIG` is given.
pub const DEFAULT_PATHS: [&str; 2] = ["/etc/strfry.conf", "./strfry.conf"];

/// What `load` needs from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// `--config`
    pub config_path: Option<PathBuf>,
    /// `--set` entries, `key=value` (or `key`, `value` as two entries).
    pub overrides: Vec<String>,
}

/// Where the config came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    /// No file was found: the compiled-in `strfry-compat.conf`.
    Embedded,
}

/// A loaded config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub config: Config,
    pub source: ConfigSource,
    /// Non-fatal problems (unknown keys, fallback to the embedded config), to log.
    pub warnings: Vec<String>,
    /// The file's mtime read *before* its text, so a watcher comparing against it sees
    /// any edit that landed after the read (an edit during start-up is not missed).
    pub stamp: Option<std::time::SystemTime>,
}

impl Config {
    /// The value of a key (dotted `relay.port` or internal `relay__port`) as
    /// plain text: `7777`, `true`, `strfry default`.
    pub fn get_display(&self, key_name: &str) -> Option<String> {
        key(key_name).map(|k| k.get(self).to_string())
    }

    /// The value of a key (dotted or internal name).
    pub fn get_setting(&self, key_name: &str) -> Option<Setting> {
        key(key_name).map(|k| k.get(self))
    }
}

/// Picks the config file like strfry: `explicit` (`--config`), then
/// `env_value` (`$STRFRY_CONFIG`, if non-empty), then the first of
/// [`DEFAULT_PATHS`] for which `exists` is true; otherwise the embedded config.
/// An explicit or environment path is used even if it does not exist (reading
/// it then fails with a clear error).
pub fn resolve_path(
    explicit: Option<&Path>,
    env_value: Option<&OsStr>,
    exists: impl Fn(&Path) -> bool,
) -> ConfigSource {
    if let Some(p) = explicit {
        return ConfigSource::File(p.to_path_buf());
    }
    if let Some(v) = env_value.filter(|v| !v.is_empty()) {
        return ConfigSource::File(PathBuf::from(v));
    }
    DEFAULT_PATHS
        .iter()
        .map(Path::new)
        .find(|p| exists(p))
        .map_or(ConfigSource::Embedded, |p| {
            ConfigSource::File(p.to_path_buf())
        })
}

/// Finds, reads and parses the config, then applies the overrides.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let env = std::env::var_os("STRFRY_CONFIG");
    let source = resolve_path(opts.config_path.as_deref(), env.as_deref(), Path::is_file);
    load_source(&source, &opts.overrides)
}

/// Reads and parses a given source, then applies the overrides. Also the entry
/// point for reloads.
pub fn load_source(source: &ConfigSource, overrides: &[String]) -> Result<Loaded, ConfigError> {
    let stamp = match source {
        ConfigSource::File(path) => std::fs::metadata(path).and_then(|m| m.modified()).ok(),
        ConfigSource::Embedded => None,
    };
    let (mut config, warnings) = match source {
        ConfigSource::File(path) => {
            let text = read_config_file(path)?;
            parse_str(&text, &path.display().to_string())?
        }
        ConfigSource::Embedded => {
            let (config, mut warnings) = parse_str(EMBEDDED_CONF, EMBEDDED_NAME)?;
            warnings.insert(
                0,
                "no config file found (--config, $STRFRY_CONFIG, /etc/strfry.conf, ./strfry.conf); using built-in defaults"
                    .to_string(),
            );
            (config, warnings)
        }
    };
    apply_overrides(&mut config, overrides)?;
    Ok(Loaded {
        config,
        source: source.clone(),
        warnings,
        stamp,
    })
}

/// Parses config text. `file_name` is used in error positions and warnings.
/// Returns the config (defaults for keys not in the text) and the warnings.
pub fn parse_str(text: &str, file_name: &str) -> Result<(Config, Vec<String>), ConfigError> {
    let tree = tao::parse(text, file_name)?;
    typed::from_tree(&tree)
}

/// Reads a config file as UTF-8, refusing files over [`MAX_CONFIG_FILE_SIZE`].
pub fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let io_err = |what: String| {
        ConfigError::new(
            ErrorKind::Io,
            format!("{}: cannot read config file: {what}", path.display()),
        )
    };
    let file = std::fs::File::open(path).map_err(|e| io_err(e.to_string()))?;
    let mut buf = Vec::new();
    file.take(MAX_CONFIG_FILE_SIZE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(e.to_string()))?;
    if buf.len() as u64 > MAX_CONFIG_FILE_SIZE {
        return Err(io_err(format!(
            "larger than {} MiB",
            MAX_CONFIG_FILE_SIZE / (1024 * 1024)
        )));
    }
    String::from_utf8(buf).map_err(|e| {
        io_err(format!(
            "not valid UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

impl Config {
    /// The per-event size limits of `events.*`, for every place that parses events.
    pub fn event_limits(&self) -> crate::nostr::Limits {
        let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        crate::nostr::Limits {
            max_event_size: n(self.events.max_event_size),
            max_num_tags: n(self.events.max_num_tags),
            max_tag_val_size: n(self.events.max_tag_val_size),
        }
    }
}
