//! `retention.rules`: a map of named blocks, which the flat key table cannot describe.
//!
//! ```text
//! retention {
//!     rules {
//!         oldnotes { kinds = "1, 6, 7"  maxAgeSeconds = 7776000 }
//!         reactions { kinds = "7"  maxEventsPerPubkey = 5000  archive = "/var/lib/wok/archive" }
//!     }
//!     maxDbBytes = 0
//! }
//! ```
//! The key table holds `retention.rules` as one string: the canonical text of the block's
//! members ([`Rules::canonical`]), so `--set`, reload diffs and rendering keep working on
//! plain settings. [`Rules::parse_text`] reads that text back (it is taoCONFIG too).

use super::tao::{self, Object, ValueKind};
use crate::nostr::kinds::{self, KindClass};

/// One named rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// Inclusive kind ranges, as written (`"1, 6-7"` → `[(1,1), (6,7)]`).
    pub kinds: Vec<(u64, u64)>,
    /// Prune events whose created_at is older than now minus this.
    pub max_age_seconds: Option<u64>,
    /// Keep the newest N per author across the rule's kinds.
    pub max_events_per_pubkey: Option<u64>,
    /// Directory receiving pruned events as rotating `.jsonl.zst` files (None: no archive).
    pub archive: Option<String>,
}

/// Every rule, in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules(pub Vec<Rule>);

/// Most kind ranges in one rule: each costs a seek per pruning slice.
const MAX_RANGES: usize = 256;

impl Rule {
    /// Whether this rule prunes `kind`. Replaceable and addressable kinds only when the rule
    /// names them explicitly: as a single kind or in a range lying wholly in that kind's
    /// class (`30000-39999`); a range across classes (`0-9999`) covers only its regular
    /// kinds, so a broad rule never removes someone's current profile or follow list. (wok
    /// deletes superseded versions when the newer one is written, so there are none to prune.)
    pub fn covers(&self, kind: u64) -> bool {
        self.kinds.iter().any(|&(lo, hi)| {
            if kind < lo || kind > hi {
                return false;
            }
            match kinds::classify(kind) {
                KindClass::Replaceable | KindClass::Addressable => {
                    lo == hi || (kinds::classify(lo) == kinds::classify(kind) && same_class(lo, hi))
                }
                KindClass::Ephemeral => false,
                KindClass::Regular => true,
            }
        })
    }

    /// The NIP-11 `retention` entry: `{"kinds":[1,[6,7]],"time":secs}` / `"count":n`.
    pub fn nip11(&self) -> serde_json::Value {
        let kinds: Vec<serde_json::Value> = self
            .kinds
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    serde_json::json!(lo)
                } else {
                    serde_json::json!([lo, hi])
                }
            })
            .collect();
        let mut o = serde_json::json!({ "kinds": kinds });
        if let Some(t) = self.max_age_seconds {
            o["time"] = serde_json::json!(t);
        }
        if let Some(c) = self.max_events_per_pubkey {
            o["count"] = serde_json::json!(c);
        }
        o
    }
}

/// Whether every kind in `lo..=hi` has the same class (the class ranges of NIP-01 are
/// contiguous, except 0 and 3, which are single replaceable kinds).
fn same_class(lo: u64, hi: u64) -> bool {
    let c = kinds::classify(lo);
    if c != kinds::classify(hi) {
        return false;
    }
    match c {
        // 10000-19999 is contiguous; 0 and 3 stand alone (1 and 2 between them are regular).
        KindClass::Replaceable => lo >= 10_000 || lo == hi,
        _ => true,
    }
}

/// `"1, 6-7, 30000-39999"` → ranges; errors name the bad part.
pub fn parse_kinds(s: &str) -> Result<Vec<(u64, u64)>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let num = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("'{part}' is not a kind or a range of kinds (like 6-7)"))
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let k = num(part)?;
                (k, k)
            }
        };
        if lo > hi {
            return Err(format!("range '{part}' ends before it starts"));
        }
        if hi > 65_535 {
            return Err(format!("'{part}': kinds go up to 65535"));
        }
        out.push((lo, hi));
    }
    if out.is_empty() {
        return Err("kinds is empty: list the kinds the rule applies to".into());
    }
    if out.len() > MAX_RANGES {
        return Err(format!("more than {MAX_RANGES} kind ranges"));
    }
    Ok(out)
}

fn render_kinds(k: &[(u64, u64)]) -> String {
    k.iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Rules {
    /// Reads the `rules { … }` block. Errors say `rules.NAME.key: why` (the caller adds the
    /// file position).
    pub fn from_object(obj: &Object) -> Result<Rules, String> {
        let mut rules = Vec::new();
        for (name, m) in obj {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(format!(
                    "rule name '{name}': use letters, digits, '_' and '-'"
                ));
            }
            let ValueKind::Object(body) = &m.value.kind else {
                return Err(format!(
                    "rules.{name}: expected a block {{ kinds = \"…\" … }}, got {}",
                    m.value.kind.describe()
                ));
            };
            let mut rule = Rule {
                name: name.clone(),
                kinds: Vec::new(),
                max_age_seconds: None,
                max_events_per_pubkey: None,
                archive: None,
            };
            let mut have_kinds = false;
            for (k, v) in body {
                let at = format!("rules.{name}.{k}");
                let uint = || match v.value.kind {
                    ValueKind::UInt(n) if n > 0 => Ok(n),
                    ValueKind::UInt(_) => Err(format!("{at}: must be at least 1")),
                    ref other => Err(format!(
                        "{at}: expected a positive integer, got {}",
                        other.describe()
                    )),
                };
                let string = || match &v.value.kind {
                    ValueKind::String(s) => Ok(s.clone()),
                    other => Err(format!("{at}: expected a string, got {}", other.describe())),
                };
                match k.as_str() {
                    "kinds" => {
                        rule.kinds = parse_kinds(&string()?).map_err(|e| format!("{at}: {e}"))?;
                        have_kinds = true;
                    }
                    "maxAgeSeconds" => rule.max_age_seconds = Some(uint()?),
                    "maxEventsPerPubkey" => rule.max_events_per_pubkey = Some(uint()?),
                    "archive" => {
                        let s = string()?;
                        rule.archive = (!s.is_empty()).then_some(s);
                    }
                    _ => {
                        return Err(format!(
                            "{at}: unknown rule key (kinds, maxAgeSeconds, maxEventsPerPubkey, archive)"
                        ))
                    }
                }
            }
            if !have_kinds {
                return Err(format!("rules.{name}: kinds is missing"));
            }
            rules.push(rule);
        }
        Ok(Rules(rules))
    }

    /// Parses [`Rules::canonical`] text (or any taoCONFIG member list of the same shape).
    pub fn parse_text(text: &str) -> Result<Rules, String> {
        let tree = tao::parse(text, "retention.rules").map_err(|e| e.to_string())?;
        Rules::from_object(&tree)
    }

    /// One line of taoCONFIG members, e.g.
    /// `oldnotes { kinds = "1, 6, 7" maxAgeSeconds = 7776000 }`; empty for no rules.
    pub fn canonical(&self) -> String {
        let mut out = Vec::new();
        for r in &self.0 {
            let mut s = format!(
                "{} {{ kinds = {}",
                r.name,
                tao::quote_json(&render_kinds(&r.kinds))
            );
            if let Some(t) = r.max_age_seconds {
                s.push_str(&format!(" maxAgeSeconds = {t}"));
            }
            if let Some(c) = r.max_events_per_pubkey {
                s.push_str(&format!(" maxEventsPerPubkey = {c}"));
            }
            if let Some(a) = &r.archive {
                s.push_str(&format!(" archive = {}", tao::quote_json(a)));
            }
            s.push_str(" }");
            out.push(s);
        }
        out.join(" ")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some rule prunes `kind` (what the size budget may remove).
    pub fn any_covers(&self, kind: u64) -> bool {
        self.0.iter().any(|r| r.covers(kind))
    }
}

impl super::Config {
    /// The parsed `retention.rules` (a value that does not parse, which only `--set` can
    /// produce, is logged by the caller and counts as no rules).
    pub fn retention_rules(&self) -> Result<Rules, String> {
        if self.retention.rules.trim().is_empty() {
            return Ok(Rules::default());
        }
        Rules::parse_text(&self.retention.rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_lists_and_ranges() {
        assert_eq!(
            parse_kinds("1, 6-7, 30000-39999"),
            Ok(vec![(1, 1), (6, 7), (30000, 39999)])
        );
        assert!(parse_kinds("7-6").is_err());
        assert!(parse_kinds("x").is_err());
        assert!(parse_kinds("").is_err());
        assert!(parse_kinds("70000").is_err());
    }

    #[test]
    fn round_trip_and_errors() {
        let text = r#"oldnotes { kinds = "1, 6, 7"  maxAgeSeconds = 7776000 }
            reactions { kinds = "7"  maxEventsPerPubkey = 5000 archive = "/tmp/a" }"#;
        let r = Rules::parse_text(text).expect("parses");
        assert_eq!(r.0.len(), 2);
        assert_eq!(r.0[0].name, "oldnotes");
        assert_eq!(r.0[1].max_events_per_pubkey, Some(5000));
        assert_eq!(Rules::parse_text(&r.canonical()), Ok(r.clone()));
        for bad in [
            r#"a { maxAgeSeconds = 5 }"#,
            r#"a { kinds = "1" maxAgeSeconds = 0 }"#,
            r#"a { kinds = "1" maxAgeSeconds = "5" }"#,
            r#"a { kinds = "1" maxAge = 5 }"#,
            r#"a = 5"#,
        ] {
            assert!(Rules::parse_text(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_file_render_set_and_reload() {
        let text = r#"
            retention {
                rules {
                    oldnotes { kinds = "1, 6, 7"  maxAgeSeconds = 7776000 }
                    reactions { kinds = "7"  maxEventsPerPubkey = 5000 }
                }
                maxDbBytes = 0
            }"#;
        let (cfg, warnings) = crate::config::parse_str(text, "t.conf").expect("parses");
        assert!(warnings.is_empty(), "{warnings:?}");
        let rules = cfg.retention_rules().expect("rules");
        assert_eq!(rules.0.len(), 2);
        // The rendered file reads back the same.
        let rendered = crate::config::render_conf(&cfg);
        let (back, _) = crate::config::parse_str(&rendered, "r.conf").expect("rendered parses");
        assert_eq!(back, cfg);
        // --set takes the same text, checked.
        let mut c2 = crate::config::Config::default();
        crate::config::apply_override(
            &mut c2,
            "retention.rules",
            r#"a { kinds = "7" maxAgeSeconds = 5 }"#,
        )
        .expect("set");
        assert_eq!(c2.retention_rules().map(|r| r.0.len()), Ok(1));
        assert!(crate::config::apply_override(&mut c2, "retention.rules", "a { }").is_err());
        // A change is live (not a noReload key).
        let (eff, log) = crate::config::diff_reload(&c2, &cfg);
        assert_eq!(eff.retention.rules, cfg.retention.rules);
        assert_eq!(log.len(), 1, "{log:?}");
        // A bad rule in a file is an error naming it.
        let bad = "retention { rules { x { kinds = \"1\" maxAge = 3 } } }";
        let e = crate::config::parse_str(bad, "b.conf").expect_err("bad rule");
        assert!(e.to_string().contains("rules.x.maxAge"), "{e}");
    }

    #[test]
    fn replaceable_kinds_need_naming() {
        let r = |k: &str| Rule {
            name: "r".into(),
            kinds: parse_kinds(k).expect("kinds"),
            max_age_seconds: None,
            max_events_per_pubkey: None,
            archive: None,
        };
        let broad = r("0-39999");
        assert!(broad.covers(1) && broad.covers(7));
        assert!(!broad.covers(0) && !broad.covers(3) && !broad.covers(10002));
        assert!(!broad.covers(30023) && !broad.covers(20001));
        assert!(r("0, 3").covers(0) && r("0,3").covers(3));
        assert!(r("30000-39999").covers(30023));
        assert!(r("10000-19999").covers(10002));
        assert!(!r("0-3").covers(3));
    }
}
