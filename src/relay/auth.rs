//! NIP-42 authentication and the read restrictions built on it (strfry's
//! `relay.auth.*`): restricted kinds are served only to an authenticated reader, and with
//! `restrictReadToInvolvedPubkey` only to their author or a `p`-tagged recipient.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use crate::config::Config;
use crate::nostr::filter::EventView;
use crate::nostr::{kinds, Event, Filter};

/// What a subscription may read, fixed when it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadAuth {
    pub restricted: Arc<Vec<u64>>,
    pub authed: Option<[u8; 32]>,
    pub involved_only: bool,
}

impl ReadAuth {
    pub fn open() -> ReadAuth {
        ReadAuth {
            restricted: Arc::new(Vec::new()),
            authed: None,
            involved_only: false,
        }
    }

    /// May this reader see `ev`?
    pub fn may_read<E: EventView + ?Sized>(&self, ev: &E) -> bool {
        if !self.restricted.contains(&ev.kind()) {
            return true;
        }
        let Some(pk) = &self.authed else { return false };
        !self.involved_only
            || ev.pubkey() == pk
            || ev
                .packed_tags()
                .any(|(n, v)| n == b'p' && v == pk.as_slice())
    }

    /// May this reader see every event `f` matches (so a precomputed set, such as a stored
    /// negentropy tree, can answer it without checking event by event)?
    pub fn sees_all_of(&self, f: &Filter) -> bool {
        self.restricted.is_empty()
            || (self.authed.is_some() && !self.involved_only)
            || f.kinds
                .as_ref()
                .is_some_and(|k| k.iter().all(|x| !self.restricted.contains(x)))
    }

    /// Does every filter ask only for restricted kinds (so the REQ needs AUTH up front)?
    pub fn fully_restricted(&self, filters: &[Filter]) -> bool {
        !self.restricted.is_empty()
            && !filters.is_empty()
            && filters.iter().all(|f| {
                f.kinds
                    .as_ref()
                    .is_some_and(|k| !k.is_empty() && k.iter().all(|x| self.restricted.contains(x)))
            })
    }

    /// COUNT over restricted kinds must be scoped to the reader (authors or #p).
    pub fn count_allowed(&self, filters: &[Filter]) -> bool {
        let Some(pk) = &self.authed else { return true };
        if !self.involved_only {
            return true;
        }
        filters.iter().all(|f| {
            let touches = f
                .kinds
                .as_ref()
                .is_none_or(|k| k.iter().any(|x| self.restricted.contains(x)));
            !touches
                || f.authors
                    .as_ref()
                    .is_some_and(|a| a.len() == 1 && a[0] == *pk)
                || f.tags
                    .iter()
                    .any(|t| t.name == b'p' && t.values.len() == 1 && t.values[0] == pk.as_slice())
        })
    }
}

/// `relay.auth.restrictedReadKinds` ("4, 1059").
pub fn restricted_kinds(cfg: &Config) -> Vec<u64> {
    cfg.relay
        .auth
        .restricted_read_kinds
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// strfry's URL normalisation for the `relay` tag: scheme, path, query and fragment
/// dropped, host:port lower-cased.
pub fn normalise_url(u: &str) -> String {
    let rest = u.split_once("://").map_or(u, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    host.to_ascii_lowercase()
}

/// A fresh, unguessable challenge (128 bits from the process's random SipHash keys).
pub fn challenge(conn: u64) -> String {
    let mut out = String::with_capacity(32);
    for i in 0..2u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(conn);
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Checks an AUTH event (already id- and signature-checked) against the session; the
/// error strings are strfry's.
pub fn check_auth_event(
    ev: &Event,
    challenge: Option<&str>,
    already: bool,
    service_url: &str,
) -> Result<(), String> {
    if service_url.is_empty() {
        return Err("relay needs serviceUrl to be configured before AUTH can work".into());
    }
    if ev.kind != kinds::KIND_AUTH {
        return Err("wrong event kind, expected 22242".into());
    }
    let Some(challenge) = challenge else {
        return Err("no auth status available for connection".into());
    };
    if already {
        return Err("already authenticated".into());
    }
    if ev.tags.find("challenge").and_then(|t| t.value()) != Some(challenge) {
        return Err("challenge string mismatch".into());
    }
    let relay = ev
        .tags
        .find("relay")
        .and_then(|t| t.value())
        .map(normalise_url);
    if relay.as_deref() != Some(normalise_url(service_url).as_str()) {
        return Err(format!(
            "incorrect or missing relay tag, expected: {service_url}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_normalise() {
        assert_eq!(
            normalise_url("wss://Relay.Example.com:443/path?q#f"),
            "relay.example.com:443"
        );
        assert_eq!(normalise_url("relay.example.com"), "relay.example.com");
    }

    #[test]
    fn challenges_differ() {
        assert_ne!(challenge(1), challenge(1));
        assert_eq!(challenge(2).len(), 32);
    }
}
