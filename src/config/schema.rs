//! The machinery behind the key table in `keys.rs`.
//!
//! [`config_section!`] turns a nested, declarative description of the config
//! (one line per key) into:
//! * the typed structs (`Config`, `RelayConfig`, …) with snake_case fields,
//! * their `Default` impls (strfry's defaults),
//! * a flat list of [`KeyDef`]s (dotted strfry name, type, default, restart
//!   flag, origin, doc text, getter and setter) and of [`SectionDef`]s.
//!
//! Everything else (file loading, `--set`, reload diffs, `get_display`, the
//! rendered default config) is driven by that list, so adding a key means
//! adding one line to `keys.rs`.

use std::fmt;
use std::sync::OnceLock;

use super::keys::Config;

/// The type of a config key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// A non-negative integer (strfry's `uint64`).
    U64,
    Bool,
    Str,
}

impl KeyType {
    /// The phrase used in type errors: "expected a non-negative integer".
    pub fn expected(self) -> &'static str {
        match self {
            KeyType::U64 => "a non-negative integer",
            KeyType::Bool => "true or false",
            KeyType::Str => "a string",
        }
    }
}

/// Whether a key comes from strfry or is wok's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// A key strfry knows, with strfry's name and (but for `relay.info.name` and
    /// `relay.info.description`) strfry's default.
    Strfry,
    /// A wok extension; strfry would ignore it.
    Wok,
}

/// The value of one key, detached from the `Config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    U64(u64),
    Bool(bool),
    Str(String),
}

impl Setting {
    pub fn key_type(&self) -> KeyType {
        match self {
            Setting::U64(_) => KeyType::U64,
            Setting::Bool(_) => KeyType::Bool,
            Setting::Str(_) => KeyType::Str,
        }
    }
}

/// Plain rendering, as strfry logs values: `7777`, `true`, `strfry default`.
impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Setting::U64(n) => write!(f, "{n}"),
            Setting::Bool(b) => write!(f, "{b}"),
            Setting::Str(s) => f.write_str(s),
        }
    }
}

/// A key's default, as written in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    U64(u64),
    Bool(bool),
    Str(&'static str),
}

impl DefaultValue {
    pub fn to_setting(self) -> Setting {
        match self {
            DefaultValue::U64(n) => Setting::U64(n),
            DefaultValue::Bool(b) => Setting::Bool(b),
            DefaultValue::Str(s) => Setting::Str(s.to_string()),
        }
    }
}

/// One row of the key table.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    /// strfry's dotted name, e.g. `relay.numThreads.ingester`.
    pub name: &'static str,
    /// The Rust field path, e.g. `relay.num_threads.ingester`.
    pub rust_path: &'static str,
    pub ty: KeyType,
    pub default: DefaultValue,
    /// strfry's `noReload`: a change needs a restart (the "R" column).
    pub no_reload: bool,
    pub origin: KeyOrigin,
    /// One-line description (used for the rendered default config).
    pub doc: &'static str,
    pub(crate) getter: fn(&Config) -> Setting,
    pub(crate) setter: fn(&mut Config, Setting) -> bool,
}

impl KeyDef {
    /// Reads this key from `cfg`.
    pub fn get(&self, cfg: &Config) -> Setting {
        (self.getter)(cfg)
    }

    /// Writes this key in `cfg`. Returns false (and changes nothing) if the
    /// setting has the wrong type.
    pub fn set(&self, cfg: &mut Config, value: Setting) -> bool {
        (self.setter)(cfg, value)
    }

    /// strfry's internal name, as used in its log lines: `relay__port`.
    pub fn internal_name(&self) -> String {
        self.name.replace('.', "__")
    }
}

/// A section (nested block) of the config, e.g. `relay.auth`.
#[derive(Debug, Clone, Copy)]
pub struct SectionDef {
    pub name: &'static str,
    pub doc: &'static str,
}

/// A Rust type that can back a config key.
pub(crate) trait Field: Sized {
    /// How the default is written in the table.
    type Literal;
    const TYPE: KeyType;
    fn from_literal(lit: Self::Literal) -> Self;
    fn default_value(lit: Self::Literal) -> DefaultValue;
    fn to_setting(&self) -> Setting;
    fn from_setting(s: Setting) -> Option<Self>;
}

impl Field for u64 {
    type Literal = u64;
    const TYPE: KeyType = KeyType::U64;
    fn from_literal(lit: u64) -> u64 {
        lit
    }
    fn default_value(lit: u64) -> DefaultValue {
        DefaultValue::U64(lit)
    }
    fn to_setting(&self) -> Setting {
        Setting::U64(*self)
    }
    fn from_setting(s: Setting) -> Option<u64> {
        match s {
            Setting::U64(n) => Some(n),
            _ => None,
        }
    }
}

impl Field for bool {
    type Literal = bool;
    const TYPE: KeyType = KeyType::Bool;
    fn from_literal(lit: bool) -> bool {
        lit
    }
    fn default_value(lit: bool) -> DefaultValue {
        DefaultValue::Bool(lit)
    }
    fn to_setting(&self) -> Setting {
        Setting::Bool(*self)
    }
    fn from_setting(s: Setting) -> Option<bool> {
        match s {
            Setting::Bool(b) => Some(b),
            _ => None,
        }
    }
}

impl Field for String {
    type Literal = &'static str;
    const TYPE: KeyType = KeyType::Str;
    fn from_literal(lit: &'static str) -> String {
        lit.to_string()
    }
    fn default_value(lit: &'static str) -> DefaultValue {
        DefaultValue::Str(lit)
    }
    fn to_setting(&self) -> Setting {
        Setting::Str(self.clone())
    }
    fn from_setting(s: Setting) -> Option<String> {
        match s {
            Setting::Str(v) => Some(v),
            _ => None,
        }
    }
}

struct Table {
    keys: Vec<KeyDef>,
    sections: Vec<SectionDef>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut keys = Vec::new();
        let mut sections = Vec::new();
        Config::collect(&mut keys, &mut sections);
        Table { keys, sections }
    })
}

/// Every key, in table order (each section's own keys, then its subsections).
pub fn keys() -> &'static [KeyDef] {
    &table().keys
}

/// Every section (nested block), in table order.
pub fn sections() -> &'static [SectionDef] {
    &table().sections
}

/// Finds a key by its dotted name (`relay.port`) or strfry's internal name
/// (`relay__port`).
pub fn key(name: &str) -> Option<&'static KeyDef> {
    let dotted;
    let name = if name.contains("__") {
        dotted = name.replace("__", ".");
        dotted.as_str()
    } else {
        name
    };
    keys().iter().find(|k| k.name == name)
}

/// Declares one config section (and, recursively, its subsections).
///
/// ```text
/// config_section! {
///     path () prefix ()
///     /// docs
///     pub struct Config {
///         field: u64 = 1 => "strfryName", strfry|wok, restart|live, "one-line doc";
///         …
///         [sub_field: SubStruct => "subName", "section doc"] { <same shape, without `pub struct`> }
///     }
/// }
/// ```
/// Within a section, plain keys come first, then subsections.
macro_rules! config_section {
    (@name ($($pre:literal)*) $key:literal) => { concat!($($pre, ".",)* $key) };
    (@rust ($($p:ident)*) $f:ident) => { concat!($(stringify!($p), ".",)* stringify!($f)) };
    (@field $c:ident ($($p:ident)*) $f:ident) => { $c $(.$p)* .$f };
    (@origin strfry) => { $crate::config::schema::KeyOrigin::Strfry };
    (@origin wok) => { $crate::config::schema::KeyOrigin::Wok };
    (@reload restart) => { true };
    (@reload live) => { false };
    (@child ($($p:ident)*) ($($pre:literal)*) $sfield:ident $skey:literal $SName:ident { $($inner:tt)* }) => {
        config_section! {
            path ($($p)* $sfield) prefix ($($pre)* $skey)
            #[doc = concat!("The `", config_section!(@name ($($pre)*) $skey), "` section.")]
            pub struct $SName { $($inner)* }
        }
    };
    (
        path $path:tt prefix $prefix:tt
        $(#[$meta:meta])*
        pub struct $Name:ident {
            $( $field:ident : $ty:ty = $default:expr => $key:literal, $origin:ident, $reload:ident, $doc:literal; )*
            $( [$sfield:ident : $SName:ident => $skey:literal, $sdoc:literal] { $($inner:tt)* } )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $Name {
            $(
                #[doc = concat!("`", config_section!(@name $prefix $key), "`: ", $doc)]
                pub $field: $ty,
            )*
            $(
                #[doc = concat!("`", config_section!(@name $prefix $skey), "`: ", $sdoc)]
                pub $sfield: $SName,
            )*
        }

        impl Default for $Name {
            fn default() -> Self {
                $Name {
                    $( $field: <$ty as $crate::config::schema::Field>::from_literal($default), )*
                    $( $sfield: <$SName as Default>::default(), )*
                }
            }
        }

        impl $Name {
            #[allow(unused_variables, clippy::ptr_arg)]
            pub(crate) fn collect(
                keys: &mut Vec<$crate::config::schema::KeyDef>,
                sections: &mut Vec<$crate::config::schema::SectionDef>,
            ) {
                $(
                    keys.push($crate::config::schema::KeyDef {
                        name: config_section!(@name $prefix $key),
                        rust_path: config_section!(@rust $path $field),
                        ty: <$ty as $crate::config::schema::Field>::TYPE,
                        default: <$ty as $crate::config::schema::Field>::default_value($default),
                        no_reload: config_section!(@reload $reload),
                        origin: config_section!(@origin $origin),
                        doc: $doc,
                        getter: |c: &Config| {
                            $crate::config::schema::Field::to_setting(&config_section!(@field c $path $field))
                        },
                        setter: |c: &mut Config, v: $crate::config::schema::Setting| {
                            match <$ty as $crate::config::schema::Field>::from_setting(v) {
                                Some(x) => {
                                    let slot: &mut $ty = &mut config_section!(@field c $path $field);
                                    *slot = x;
                                    true
                                }
                                None => false,
                            }
                        },
                    });
                )*
                $(
                    sections.push($crate::config::schema::SectionDef {
                        name: config_section!(@name $prefix $skey),
                        doc: $sdoc,
                    });
                    <$SName>::collect(keys, sections);
                )*
            }
        }

        $( config_section! { @child $path $prefix $sfield $skey $SName { $($inner)* } } )*
    };
}

pub(crate) use config_section;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn table_is_consistent_with_defaults() {
        let cfg = Config::default();
        let strfry = keys()
            .iter()
            .filter(|k| k.origin == KeyOrigin::Strfry)
            .count();
        assert_eq!(strfry, 60, "strfry has 60 keys");
        let mut names = HashSet::new();
        for k in keys() {
            assert!(names.insert(k.name), "duplicate key {}", k.name);
            assert_eq!(k.get(&cfg), k.default.to_setting(), "{}", k.name);
            assert_eq!(k.get(&cfg).key_type(), k.ty, "{}", k.name);
            assert!(!k.doc.is_empty(), "{} has no doc", k.name);
            let section = k.name.rsplit_once('.').map(|(s, _)| s);
            if let Some(section) = section {
                assert!(
                    sections().iter().any(|s| s.name == section),
                    "{} has no section",
                    k.name
                );
            }
        }
        for s in sections() {
            assert!(!names.contains(s.name), "section {} is also a key", s.name);
        }
    }

    #[test]
    fn getters_and_setters_hit_the_right_field() {
        let mut cfg = Config::default();
        for (i, k) in keys().iter().enumerate() {
            let v = match k.ty {
                KeyType::U64 => Setting::U64(1000 + i as u64),
                KeyType::Bool => Setting::Bool(!matches!(k.default, DefaultValue::Bool(true))),
                KeyType::Str => Setting::Str(format!("value {i}")),
            };
            assert!(k.set(&mut cfg, v.clone()));
            assert_eq!(k.get(&cfg), v);
            // The wrong type is refused.
            let wrong = match k.ty {
                KeyType::Str => Setting::U64(1),
                _ => Setting::Str("x".into()),
            };
            assert!(!k.set(&mut cfg, wrong));
            assert_eq!(k.get(&cfg), v);
        }
        // Every key changed, and no two keys share a field.
        for (i, k) in keys().iter().enumerate() {
            let expected = match k.ty {
                KeyType::U64 => Setting::U64(1000 + i as u64),
                KeyType::Bool => Setting::Bool(!matches!(k.default, DefaultValue::Bool(true))),
                KeyType::Str => Setting::Str(format!("value {i}")),
            };
            assert_eq!(k.get(&cfg), expected, "{}", k.name);
        }
        let idx = keys()
            .iter()
            .position(|k| k.name == "relay.numThreads.reqWorker");
        assert_eq!(
            Some(cfg.relay.num_threads.req_worker),
            idx.map(|i| 1000 + i as u64)
        );
        assert_eq!(
            key("relay.numThreads.reqWorker").map(|k| k.rust_path),
            Some("relay.num_threads.req_worker")
        );
    }

    #[test]
    fn lookup_by_dotted_and_internal_name() {
        assert_eq!(key("relay.port").map(|k| k.name), Some("relay.port"));
        assert_eq!(key("relay__port").map(|k| k.name), Some("relay.port"));
        assert_eq!(
            key("relay__info__name").map(|k| k.name),
            Some("relay.info.name")
        );
        assert_eq!(key("db").map(|k| k.internal_name()), Some("db".to_string()));
        assert_eq!(
            key("relay.numThreads.ingester").map(|k| k.internal_name()),
            Some("relay__numThreads__ingester".to_string())
        );
        assert!(key("relay").is_none());
        assert!(key("relay.prot").is_none());
        assert!(key("").is_none());
    }

    #[test]
    fn restart_flags_match_strfry() {
        let r: Vec<&str> = keys()
            .iter()
            .filter(|k| k.no_reload)
            .map(|k| k.name)
            .collect();
        assert_eq!(
            r,
            [
                "db",
                "dbParams.maxreaders",
                "dbParams.mapsize",
                "dbParams.noReadAhead",
                "relay.bind",
                "relay.port",
                "relay.nofiles",
                "relay.maxWebsocketPayloadSize",
                "relay.autoPingSeconds",
                "relay.compression.enabled",
                "relay.compression.slidingWindow",
                "relay.numThreads.ingester",
                "relay.numThreads.reqWorker",
                "relay.numThreads.reqMonitor",
                "relay.numThreads.negentropy",
            ]
        );
        // wok's own keys all take effect live.
        assert!(keys()
            .iter()
            .all(|k| k.origin == KeyOrigin::Strfry || !k.no_reload));
        let wok: Vec<&str> = keys()
            .iter()
            .filter(|k| k.origin == KeyOrigin::Wok)
            .map(|k| k.name)
            .collect();
        assert_eq!(
            wok,
            [
                "events.compression",
                "retention.maxDbBytes",
                "retention.rules",
                "relay.maxFilterValues",
                "relay.maxFilterValuesPerConnection",
                "relay.maxFilterValuesTotal",
                "relay.maxTotalPendingOutboundBytes",
                "relay.maxMessagesInFlightPerConnection",
                "relay.maxBytesInFlightPerConnection",
                "relay.busyAtMessagesInFlight",
                "relay.busyLaneNice",
                "relay.batchScheduling",
                "relay.negentropy.idleTimeoutSeconds",
                "relay.metrics.enabled",
                "relay.metrics.bearerToken",
                "relay.pow.minDifficulty",
                "relay.pow.kindDifficulty",
                "relay.management.adminPubkeys",
                "relay.management.writeAccess",
                "relay.management.restrictReads",
                "relay.management.maxBodyBytes",
                "relay.limits.enabled",
                "relay.limits.ipv6PrefixLength",
                "relay.limits.exemptLoopback",
                "relay.limits.exemptCidrs",
                "relay.limits.exemptPubkeys",
                "relay.limits.eventsPerSecondPerIp",
                "relay.limits.eventsBurstPerIp",
                "relay.limits.eventsPerSecondPerConnection",
                "relay.limits.eventsBurstPerConnection",
                "relay.limits.eventsPerSecondPerPubkey",
                "relay.limits.eventsBurstPerPubkey",
                "relay.limits.reqsPerSecondPerIp",
                "relay.limits.reqsBurstPerIp",
                "relay.limits.reqsPerSecondPerConnection",
                "relay.limits.reqsBurstPerConnection",
                "relay.limits.reqsPerSecondPerPubkey",
                "relay.limits.reqsBurstPerPubkey",
                "relay.limits.negOpensPerSecondPerIp",
                "relay.limits.negOpensBurstPerIp",
                "relay.limits.negOpensPerSecondPerConnection",
                "relay.limits.negOpensBurstPerConnection",
                "relay.limits.negOpensPerSecondPerPubkey",
                "relay.limits.negOpensBurstPerPubkey",
                "relay.limits.maxSubscriptionsPerIp",
                "relay.limits.bytesPerSecondPerIp",
                "relay.limits.bytesBurstPerIp",
                "relay.limits.bytesPerSecondPerConnection",
                "relay.limits.bytesBurstPerConnection",
                "relay.limits.maxConnectionsPerIp",
                "relay.limits.newConnectionsPerSecondPerIp",
                "relay.limits.newConnectionsBurstPerIp",
                "relay.limits.violationsBeforeDisconnect",
                "relay.limits.violationWindowSeconds",
                "relay.limits.cooldownSeconds",
                "relay.limits.maxCooldownSeconds",
                "search.enabled",
                "search.kinds",
            ]
        );
    }
}
