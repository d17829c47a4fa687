//! The pure part of hot reload: which keys need a restart, and what changed.

use super::keys::Config;
use super::schema::keys;

/// strfry's noReload keys (the "R" column): changes only apply after a restart.
pub fn no_reload_keys() -> impl Iterator<Item = &'static str> {
    keys().iter().filter(|k| k.no_reload).map(|k| k.name)
}

/// Compares the running config with a freshly loaded one. Returns the config to
/// switch to (noReload keys keep their old value) and one log line per changed
/// key, worded like strfry's:
/// `'relay.port' changed but is a noReload field. Ignoring.` or
/// `'relay.info.name' changed from 'a' to 'b'`.
pub fn diff_reload(old: &Config, new: &Config) -> (Config, Vec<String>) {
    let mut effective = new.clone();
    let mut log = Vec::new();
    for k in keys() {
        let before = k.get(old);
        let after = k.get(new);
        if before == after {
            continue;
        }
        if k.no_reload {
            k.set(&mut effective, before);
            log.push(format!(
                "'{}' changed but is a noReload field. Ignoring.",
                k.name
            ));
        } else {
            log.push(format!("'{}' changed from '{before}' to '{after}'", k.name));
        }
    }
    (effective, log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_config_logs_nothing() {
        let cfg = Config::default();
        let (eff, log) = diff_reload(&cfg, &cfg.clone());
        assert_eq!(eff, cfg);
        assert!(log.is_empty());
    }

    #[test]
    fn restart_keys_are_held_back() {
        let old = Config::default();
        let mut new = old.clone();
        new.relay.port = 8888;
        new.relay.info.name = "b".into();
        new.relay.num_threads.ingester = 9;
        new.relay.max_filter_limit = 10;
        let (eff, log) = diff_reload(&old, &new);
        assert_eq!(eff.relay.port, 7777);
        assert_eq!(eff.relay.num_threads.ingester, 3);
        assert_eq!(eff.relay.info.name, "b");
        assert_eq!(eff.relay.max_filter_limit, 10);
        assert_eq!(
            log,
            [
                "'relay.port' changed but is a noReload field. Ignoring.",
                "'relay.maxFilterLimit' changed from '500' to '10'",
                "'relay.info.name' changed from 'wok' to 'b'",
                "'relay.numThreads.ingester' changed but is a noReload field. Ignoring.",
            ]
        );
    }

    #[test]
    fn no_reload_list() {
        let r: Vec<&str> = no_reload_keys().collect();
        assert_eq!(r.len(), 15);
        assert!(r.contains(&"db") && r.contains(&"relay.compression.slidingWindow"));
        assert!(!r.contains(&"relay.info.name"));
    }
}
