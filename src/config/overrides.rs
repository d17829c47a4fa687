//! `--set key=value` overrides, applied after the config file (and again on
//! every reload).

use super::error::{ConfigError, ErrorKind};
use super::keys::Config;
use super::schema::{key, KeyType, Setting};

/// Applies `--set` entries in order. Each entry is `key=value` (split at the
/// first `=`); an entry without `=` takes the next entry as its value, which
/// covers the `--set key value` form.
pub fn apply_overrides(cfg: &mut Config, overrides: &[String]) -> Result<(), ConfigError> {
    let mut it = overrides.iter();
    while let Some(entry) = it.next() {
        match entry.split_once('=') {
            Some((k, v)) => apply_override(cfg, k, v)?,
            None => match it.next() {
                Some(v) => apply_override(cfg, entry, v)?,
                None => {
                    return Err(ConfigError::new(
                        ErrorKind::BadOverride,
                        format!("--set {entry}: expected key=value"),
                    ))
                }
            },
        }
    }
    Ok(())
}

/// Applies one override. `key` is dotted (`relay.port`) or strfry's internal
/// form (`relay__port`).
pub fn apply_override(cfg: &mut Config, key_name: &str, value: &str) -> Result<(), ConfigError> {
    let k = key(key_name).ok_or_else(|| {
        ConfigError::new(
            ErrorKind::UnknownOverride,
            format!("unknown config key for --set override: {key_name}"),
        )
    })?;
    let mut setting = parse_override_value(k.ty, value)
        .map_err(|msg| ConfigError::new(ErrorKind::BadOverride, msg).with_key(k.name))?;
    if k.name == super::typed::RULES_KEY {
        // Checked and stored in canonical form, as from a file.
        let rules = super::retention::Rules::parse_text(value)
            .map_err(|msg| ConfigError::new(ErrorKind::BadOverride, msg).with_key(k.name))?;
        setting = Setting::Str(rules.canonical());
    }
    k.set(cfg, setting);
    Ok(())
}

/// Parses a `--set` value: uint64 must be all digits; bool accepts
/// 1/0/true/false/yes/no/on/off in any case; strings are taken verbatim.
pub fn parse_override_value(ty: KeyType, value: &str) -> Result<Setting, String> {
    match ty {
        KeyType::U64 => {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "--set value '{value}' is not a non-negative integer (digits only)"
                ));
            }
            value.parse::<u64>().map(Setting::U64).map_err(|_| {
                format!("--set value '{value}' is too large for a 64-bit unsigned integer")
            })
        }
        KeyType::Bool => match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Setting::Bool(true)),
            "0" | "false" | "no" | "off" => Ok(Setting::Bool(false)),
            _ => Err(format!(
                "--set value '{value}' is not a boolean (use true/false, yes/no, on/off or 1/0)"
            )),
        },
        KeyType::Str => Ok(Setting::Str(value.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(entries: &[&str]) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        let v: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        apply_overrides(&mut cfg, &v).map(|()| cfg)
    }

    #[test]
    fn forms_and_types() {
        let cfg = set(&[
            "relay.port=1",
            "relay__bind=0.0.0.0",
            "relay.info.name",
            "a=b c",
            "db=",
        ])
        .expect("ok");
        assert_eq!(cfg.relay.port, 1);
        assert_eq!(cfg.relay.bind, "0.0.0.0");
        assert_eq!(cfg.relay.info.name, "a=b c");
        assert_eq!(cfg.db, "");
        let cfg = set(&["relay.info.description=x=y", "relay.port=2", "relay.port=3"]).expect("ok");
        assert_eq!(cfg.relay.info.description, "x=y");
        assert_eq!(cfg.relay.port, 3, "later overrides win");
    }

    #[test]
    fn bool_spellings() {
        for (v, want) in [
            ("1", true),
            ("0", false),
            ("true", true),
            ("FALSE", false),
            ("Yes", true),
            ("no", false),
            ("ON", true),
            ("off", false),
        ] {
            assert_eq!(
                parse_override_value(KeyType::Bool, v),
                Ok(Setting::Bool(want)),
                "{v}"
            );
        }
        for v in ["", "2", "y", "enabled", " true"] {
            assert!(parse_override_value(KeyType::Bool, v).is_err(), "{v}");
        }
    }

    #[test]
    fn uint_must_be_digits() {
        assert_eq!(
            parse_override_value(KeyType::U64, "007"),
            Ok(Setting::U64(7))
        );
        assert_eq!(
            parse_override_value(KeyType::U64, "18446744073709551615"),
            Ok(Setting::U64(u64::MAX))
        );
        for v in [
            "",
            "-1",
            "+1",
            "1.0",
            "1e3",
            " 1",
            "0x10",
            "18446744073709551616",
            "abc",
        ] {
            assert!(parse_override_value(KeyType::U64, v).is_err(), "{v}");
        }
        let err = set(&["relay.port=abc"]).expect_err("bad uint");
        assert_eq!(err.kind, ErrorKind::BadOverride);
        assert_eq!(
            err.to_string(),
            "relay.port: --set value 'abc' is not a non-negative integer (digits only)"
        );
    }

    #[test]
    fn unknown_and_malformed() {
        let err = set(&["relay.prot=1"]).expect_err("unknown");
        assert_eq!(err.kind, ErrorKind::UnknownOverride);
        assert_eq!(
            err.to_string(),
            "unknown config key for --set override: relay.prot"
        );
        assert_eq!(
            set(&["relay=1"]).expect_err("section").kind,
            ErrorKind::UnknownOverride
        );
        assert_eq!(
            set(&["=1"]).expect_err("empty").kind,
            ErrorKind::UnknownOverride
        );
        let err = set(&["relay.port"]).expect_err("no value");
        assert_eq!(err.kind, ErrorKind::BadOverride);
        assert_eq!(err.to_string(), "--set relay.port: expected key=value");
    }
}
