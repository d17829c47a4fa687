//! From the generic taoCONFIG tree to a typed [`Config`].
//!
//! Known keys must have the right type (an error otherwise, naming the dotted
//! key and the value's position). Unknown keys are kept out of the `Config` and
//! reported as warnings with their line, plus a suggestion when a known key is
//! close (strfry ignores them silently).

use super::error::{ConfigError, ErrorKind, Pos};
use super::keys::Config;
use super::schema::{keys, sections, KeyType, Setting};
use super::tao::{Object, Value, ValueKind};
use std::sync::OnceLock;

const MAX_SUGGESTIONS: usize = 100;

/// The one key whose value is a block of named blocks, not a scalar.
pub(crate) const RULES_KEY: &str = "retention.rules";

/// Builds a `Config` from a parsed tree, starting from the defaults.
pub(crate) fn from_tree(root: &Object) -> Result<(Config, Vec<String>), ConfigError> {
    let mut cfg = Config::default();
    let mut warnings: Vec<(Pos, String)> = Vec::new();
    walk(root, "", &mut cfg, &mut warnings)?;
    warnings.sort_by_key(|(p, _)| (p.line, p.col));
    Ok((cfg, warnings.into_iter().map(|(_, w)| w).collect()))
}

/// Why a strfry key set away from its default does nothing in wok, if it does nothing.
fn inert(key: &str, cfg: &Config) -> Option<&'static str> {
    match key {
        "events.ephemeralEventsLifetimeSeconds"
            if cfg.events.ephemeral_events_lifetime_seconds != 300 =>
        {
            Some("has no effect in wok: ephemeral events are delivered live and never stored")
        }
        _ => None,
    }
}

/// What is wrong with a value its key's type allows but its meaning does not (wok's
/// structured string keys), so `config check` and a reload catch it instead of the relay.
fn bad_value(key: &str, cfg: &Config) -> Option<String> {
    let m = &cfg.relay.management;
    match key {
        "relay.management.writeAccess" => {
            crate::policy::access::WriteMode::parse(&m.write_access).err()
        }
        "relay.management.adminPubkeys" => crate::policy::access::parse_admins(&m.admin_pubkeys)
            .1
            .first()
            .map(|e| format!("relay.management.adminPubkeys: {e}")),
        "relay.pow.kindDifficulty" => {
            crate::policy::pow::parse_kind_difficulty(&cfg.relay.pow.kind_difficulty)
                .err()
                .map(|e| format!("relay.pow.kindDifficulty: {e}"))
        }
        _ => None,
    }
}

fn walk(
    obj: &Object,
    prefix: &str,
    cfg: &mut Config,
    warnings: &mut Vec<(Pos, String)>,
) -> Result<(), ConfigError> {
    for (name, member) in obj {
        let dotted = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let pos = &member.key_pos;
        if name.contains('.') {
            // A quoted name such as "relay.port" is one member, not a path.
            let shown = if prefix.is_empty() {
                format!("\"{name}\"")
            } else {
                format!("{prefix}.\"{name}\"")
            };
            warnings.push((
                pos.clone(),
                format!(
                    "{}:{}: unknown config key '{shown}' (ignored); a quoted name containing dots is a single key, write it without quotes to mean a dotted path",
                    pos.file, pos.line
                ),
            ));
            continue;
        }
        if dotted == RULES_KEY {
            // A map of named blocks: kept as its canonical text (config/retention.rs).
            let rules = match &member.value.kind {
                ValueKind::Object(obj) => super::retention::Rules::from_object(obj),
                ValueKind::String(s) => super::retention::Rules::parse_text(s),
                other => Err(format!(
                    "expected a block of named rules, got {}",
                    other.describe()
                )),
            };
            cfg.retention.rules = rules
                .map_err(|msg| {
                    ConfigError::at(ErrorKind::Type, member.value.pos.clone(), msg)
                        .with_key(&dotted)
                })?
                .canonical();
            continue;
        }
        if let Some(k) = keys().iter().find(|k| k.name == dotted) {
            let setting = convert(k.ty, &member.value).map_err(|msg| {
                ConfigError::at(ErrorKind::Type, member.value.pos.clone(), msg).with_key(&dotted)
            })?;
            k.set(cfg, setting);
            if let Some(msg) = bad_value(&dotted, cfg) {
                return Err(
                    ConfigError::at(ErrorKind::Type, member.value.pos.clone(), msg)
                        .with_key(&dotted),
                );
            }
            if let Some(why) = inert(&dotted, cfg) {
                warnings.push((
                    pos.clone(),
                    format!("{}:{}: {dotted} {why}", pos.file, pos.line),
                ));
            }
            continue;
        }
        if sections().iter().any(|s| s.name == dotted) {
            match &member.value.kind {
                ValueKind::Object(inner) => walk(inner, &dotted, cfg, warnings)?,
                other => {
                    return Err(ConfigError::at(
                        ErrorKind::Type,
                        member.value.pos.clone(),
                        format!(
                            "expected an object (a section of keys), got {}",
                            other.describe()
                        ),
                    )
                    .with_key(&dotted))
                }
            }
            continue;
        }
        let mut msg = format!(
            "{}:{}: unknown config key '{dotted}' (ignored)",
            pos.file, pos.line
        );
        // Suggestions cost an edit distance per known key; a hostile file with
        // endless unknown keys only gets them for the first few.
        let suggestion = if warnings.len() < MAX_SUGGESTIONS {
            suggest(&dotted)
        } else {
            None
        };
        if let Some(s) = suggestion {
            msg.push_str(&format!("; did you mean '{s}'?"));
        }
        warnings.push((pos.clone(), msg));
    }
    Ok(())
}

/// Checks a value against a key's type, strfry-style: uint64 keys need a
/// non-negative integer, bools `true`/`false`, strings a string.
pub(crate) fn convert(ty: KeyType, value: &Value) -> Result<Setting, String> {
    let got = match (ty, &value.kind) {
        (KeyType::U64, ValueKind::UInt(n)) => return Ok(Setting::U64(*n)),
        (KeyType::U64, ValueKind::Int(n)) if *n >= 0 => return Ok(Setting::U64(n.unsigned_abs())),
        (KeyType::Bool, ValueKind::Bool(b)) => return Ok(Setting::Bool(*b)),
        (KeyType::Str, ValueKind::String(s)) => return Ok(Setting::Str(s.clone())),
        (_, other) => other.describe(),
    };
    Err(format!("expected {}, got {got}", ty.expected()))
}

/// The known key or section closest to `unknown`, if it is close enough to be
/// a likely typo (or differs only in case, or is a key's last component used
/// in the wrong place).
pub(crate) fn suggest(unknown: &str) -> Option<&'static str> {
    if unknown.len() > 200 {
        return None;
    }
    if let Some(c) = closest(unknown) {
        return Some(c);
    }
    // `port = 7777` at the top level: suggest the one key with that last name.
    let lower = unknown.to_ascii_lowercase();
    let last = lower.rsplit('.').next().unwrap_or("");
    let mut matches = keys().iter().filter(|k| {
        k.name
            .rsplit('.')
            .next()
            .is_some_and(|n| n.eq_ignore_ascii_case(last))
    });
    match (matches.next(), matches.next()) {
        (Some(k), None) => Some(k.name),
        _ => None,
    }
}

/// The first known key or section at the least edit distance from `unknown` (case
/// aside), if that distance is small for its length: at most a quarter of it, 1 to 3.
fn closest(unknown: &str) -> Option<&'static str> {
    let lower: Vec<char> = unknown.to_ascii_lowercase().chars().collect();
    let limit = (lower.len() / 4).clamp(1, 3);
    let mut best: Option<(usize, &'static str)> = None;
    for (name, chars) in candidates() {
        // Only a name strictly closer than the best so far replaces it. Bounding the
        // distance lets most names out after a length comparison or a few rows of the
        // table: a file of unknown keys cost one full table per key per known name,
        // which was most of the config fuzz target's time.
        let max = match best {
            Some((0, _)) => break,
            Some((d, _)) => d - 1,
            None => limit,
        };
        if let Some(d) = osa_within(&lower, chars, max) {
            best = Some((d, name));
        }
    }
    best.map(|(_, c)| c)
}

/// Every key and section name, in table order (keys first), with its lower-cased
/// characters: built once, not per unknown key.
fn candidates() -> &'static [(&'static str, Vec<char>)] {
    static CANDIDATES: OnceLock<Vec<(&'static str, Vec<char>)>> = OnceLock::new();
    CANDIDATES.get_or_init(|| {
        keys()
            .iter()
            .map(|k| k.name)
            .chain(sections().iter().map(|s| s.name))
            .map(|n| (n, n.to_ascii_lowercase().chars().collect()))
            .collect()
    })
}

/// The optimal-string-alignment edit distance (Levenshtein plus adjacent swaps) between
/// `a` and `b` if it is at most `max`. Only cells within `max` of the diagonal are
/// computed (a cell further off is more than `max` already), values are capped at
/// `max + 1`, and a row with no cell within `max` ends it.
fn osa_within(a: &[char], b: &[char], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let over = max + 1;
    let w = b.len() + 1;
    let mut d = vec![over; (a.len() + 1) * w];
    for (j, cell) in d.iter_mut().enumerate().take(w.min(over)) {
        *cell = j;
    }
    for i in 1..=a.len() {
        if i <= max {
            d[i * w] = i;
        }
        let mut row_min = d[i * w];
        for j in i.saturating_sub(max).max(1)..=(i + max).min(b.len()) {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            let v = v.min(over);
            d[i * w + j] = v;
            row_min = row_min.min(v);
        }
        if row_min > max {
            return None;
        }
    }
    Some(d[a.len() * w + b.len()]).filter(|&v| v <= max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tao::parse;

    fn load(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        from_tree(&parse(text, "s.conf")?)
    }

    #[test]
    fn structured_wok_values_are_checked() {
        for (text, says) in [
            (
                "relay { management { writeAccess = \"friends\" } }",
                "not public, allowlist or wot",
            ),
            (
                "relay { management { adminPubkeys = \"npub1nope\" } }",
                "adminPubkeys",
            ),
            (
                "relay { pow { kindDifficulty = \"1=20\" } }",
                "kindDifficulty",
            ),
        ] {
            let e = load(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(says), "{text}: {e}");
        }
        let (cfg, _) = load(
            "relay { management { writeAccess = \"wot\" } pow { kindDifficulty = \"1:20\" } }",
        )
        .expect("valid");
        assert_eq!(cfg.relay.management.write_access, "wot");
    }

    /// The full table: what [`osa_within`] bounds.
    fn osa_distance(a: &[char], b: &[char]) -> usize {
        let w = b.len() + 1;
        let mut d = vec![0usize; (a.len() + 1) * w];
        for i in 0..=a.len() {
            d[i * w] = i;
        }
        for (j, cell) in d.iter_mut().enumerate().take(w) {
            *cell = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut v = (d[(i - 1) * w + j] + 1)
                    .min(d[i * w + j - 1] + 1)
                    .min(d[(i - 1) * w + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[(i - 2) * w + j - 2] + 1);
                }
                d[i * w + j] = v;
            }
        }
        d[a.len() * w + b.len()]
    }

    fn dist(a: &str, b: &str) -> usize {
        let c = |s: &str| s.chars().collect::<Vec<char>>();
        osa_distance(&c(a), &c(b))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The bounded distance is the full one when that is within the bound, else none
        /// (short words over three letters, so swaps and near misses are common).
        #[test]
        fn bounded_distance_is_the_full_one(
            a in "[abc]{0,9}",
            b in "[abc]{0,9}",
            max in 0usize..5,
        ) {
            let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            let full = osa_distance(&a, &b);
            proptest::prop_assert_eq!(osa_within(&a, &b, max), (full <= max).then_some(full));
        }
    }

    #[test]
    fn distances() {
        assert_eq!(dist("", ""), 0);
        assert_eq!(dist("abc", ""), 3);
        assert_eq!(dist("relay.prot", "relay.port"), 1);
        assert_eq!(dist("kitten", "sitting"), 3);
    }

    /// [`closest`] as it was before it skipped names whose length alone rules them out:
    /// the distance to every name.
    fn closest_of_all(unknown: &str) -> Option<&'static str> {
        let lower = unknown.to_ascii_lowercase();
        let names = keys()
            .iter()
            .map(|k| k.name)
            .chain(sections().iter().map(|s| s.name));
        let mut best: Option<(usize, &'static str)> = None;
        for c in names {
            let d = dist(&lower, &c.to_ascii_lowercase());
            if best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, c));
            }
        }
        let limit = (unknown.chars().count() / 4).clamp(1, 3);
        best.filter(|&(d, _)| d <= limit).map(|(_, c)| c)
    }

    /// Bounding the distance changes no answer: every name, in capitals, with one edit
    /// (a character dropped, doubled, replaced or swapped with the next) at its start and
    /// in its middle, cut short and made longer. (Few edits per name: the full tables
    /// of the reference are slow in a debug build.)
    #[test]
    fn bounded_search_finds_what_every_name_would() {
        let (mut tried, mut found) = (0, 0);
        for (name, _) in candidates() {
            let chars: Vec<char> = name.chars().collect();
            let mut variants = vec![name.to_string(), name.to_uppercase()];
            for i in [0, chars.len() / 2] {
                let mut v = chars.clone();
                v.remove(i);
                variants.push(v.iter().collect());
                let mut v = chars.clone();
                v.insert(i, chars[i]);
                variants.push(v.iter().collect());
                let mut v = chars.clone();
                v[i] = 'é';
                variants.push(v.iter().collect());
                let mut v = chars.clone();
                v.swap(i, (i + 1).min(chars.len() - 1));
                variants.push(v.iter().collect());
            }
            for n in [1, 4] {
                variants.push(chars.iter().skip(n).collect());
                variants.push(format!("{name}{}", "x".repeat(n)));
            }
            for v in variants {
                let want = closest_of_all(&v);
                assert_eq!(closest(&v), want, "{v}");
                tried += 1;
                found += usize::from(want.is_some());
            }
        }
        assert!(tried > 1500 && found > tried / 2, "{tried} {found}");
        // A tie goes to the first name in table order, as it did.
        let tie = "relay.filterValidation.mixFiltersPerReq";
        assert_eq!(closest(tie), closest_of_all(tie));
        assert!(closest(tie).is_some());
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("relay.prot"), Some("relay.port"));
        assert_eq!(
            suggest("relay.maxfilterlimit"),
            Some("relay.maxFilterLimit")
        );
        assert_eq!(suggest("relay.auth.enable"), Some("relay.auth.enabled"));
        assert_eq!(suggest("rely"), Some("relay"));
        assert_eq!(suggest("port"), Some("relay.port"));
        assert_eq!(suggest("maxEventSize"), Some("events.maxEventSize"));
        assert_eq!(
            suggest("enabled"),
            None,
            "ambiguous: several sections have it"
        );
        assert_eq!(suggest("somethingElse"), None);
        assert_eq!(suggest(&"x".repeat(500)), None);
    }

    #[test]
    fn known_keys_are_typed() {
        let (cfg, w) =
            load("relay { port = 1234 info.name = 'n' auth { enabled = false } } db = '/x'")
                .expect("valid");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(cfg.relay.port, 1234);
        assert_eq!(cfg.relay.info.name, "n");
        assert!(!cfg.relay.auth.enabled);
        assert_eq!(cfg.db, "/x");
        assert_eq!(cfg.relay.bind, "127.0.0.1", "untouched keys keep defaults");
    }

    #[test]
    fn type_errors_name_the_key_and_position() {
        let err =
            load("relay {\n  bind = '0.0.0.0'\n  port = \"7777\"\n}").expect_err("type error");
        assert_eq!(err.kind, ErrorKind::Type);
        assert_eq!(
            err.to_string(),
            "s.conf:3:10: relay.port: expected a non-negative integer, got string"
        );
        for (text, msg) in [
            (
                "relay.port = -1",
                "relay.port: expected a non-negative integer, got negative integer",
            ),
            (
                "relay.port = 1.5",
                "relay.port: expected a non-negative integer, got floating-point number",
            ),
            (
                "relay.port = null",
                "relay.port: expected a non-negative integer, got null",
            ),
            (
                "relay.port = [1]",
                "relay.port: expected a non-negative integer, got array",
            ),
            (
                "relay.port { a = 1 }",
                "relay.port: expected a non-negative integer, got object",
            ),
            (
                "relay.auth.enabled = 1",
                "relay.auth.enabled: expected true or false, got integer",
            ),
            (
                "relay.auth.enabled = 'true'",
                "relay.auth.enabled: expected true or false, got string",
            ),
            ("db = 5", "db: expected a string, got integer"),
            (
                "relay = 5",
                "relay: expected an object (a section of keys), got integer",
            ),
            (
                "relay.info = 'x'",
                "relay.info: expected an object (a section of keys), got string",
            ),
        ] {
            let err = load(text).expect_err(text);
            assert_eq!(err.kind, ErrorKind::Type, "{text}");
            assert!(err.to_string().ends_with(msg), "{text}: {err}");
            assert_eq!(err.key.as_deref(), msg.split(':').next(), "{text}");
        }
        // -0 is a non-negative integer.
        assert_eq!(load("relay.port = -0").map(|(c, _)| c.relay.port), Ok(0));
    }

    #[test]
    fn unknown_keys_warn_with_line_and_suggestion() {
        let text = "db = './db'\nrelay {\n  prot = 1\n  whatever { deep = 1 }\n}\nfoo = 1\n\"relay.port\" = 2\n";
        let (cfg, w) = load(text).expect("valid");
        assert_eq!(
            cfg,
            Config {
                db: "./db".into(),
                ..Config::default()
            }
        );
        assert_eq!(w.len(), 4, "{w:?}");
        assert_eq!(
            w[0],
            "s.conf:3: unknown config key 'relay.prot' (ignored); did you mean 'relay.port'?"
        );
        assert_eq!(
            w[1],
            "s.conf:4: unknown config key 'relay.whatever' (ignored)"
        );
        assert_eq!(w[2], "s.conf:6: unknown config key 'foo' (ignored)");
        assert!(
            w[3].starts_with(
                "s.conf:7: unknown config key '\"relay.port\"' (ignored); a quoted name"
            ),
            "{}",
            w[3]
        );
    }

    #[test]
    fn internal_names_are_not_file_keys() {
        // strfry's `relay__port` spelling is for --set only.
        let (cfg, w) = load("relay__port = 1").expect("valid");
        assert_eq!(cfg.relay.port, 7777);
        assert_eq!(w.len(), 1);
    }
}
