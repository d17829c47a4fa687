//! `wok router <config>`: many stream links in one process, from strfry's router config
//! (taoCONFIG):
//!
//! ```text
//! connectionTimeout = 20
//! verbose = true
//! streams {
//!     mesh { dir = "both", urls = ["ws://a", "ws://b"], filter = {"kinds": [1]},
//!            pluginDown = "…", pluginUp = "…" }
//! }
//! ```
//!
//! Every (group, URL) pair is one [`stream`](super::stream) link on its own thread, so one
//! slow or dead peer never holds up another, and each link keeps its own no-echo memory:
//! an event that came down from A is sent up to B but never back to A. The file is
//! re-read when it changes (polled once a second): a group whose `dir`, `filter` or plugins
//! changed is reconnected, added or removed URLs start or stop only their own link, other
//! links are left alone; a file that no longer parses is logged and ignored.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::ScopedJoinHandle;
use std::time::{Duration, SystemTime};

use super::stream::{self, StreamOptions};
use super::sync::Dir;
use crate::config::tao::{self, ValueKind};
use crate::nostr::{Filter, JsonParser, Limits};
use crate::store::Store;

#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    /// Seconds for connecting and handshaking, and the longest wait between reconnects.
    pub connection_timeout: u64,
    pub verbose: bool,
    pub groups: BTreeMap<String, Group>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub dir: Dir,
    pub urls: Vec<String>,
    pub filter: Filter,
    pub plugin_down: String,
    pub plugin_up: String,
}

impl Group {
    /// Everything but the URL list: a change here reconnects the whole group.
    fn same_links(&self, other: &Group) -> bool {
        self.dir == other.dir
            && self.filter == other.filter
            && self.plugin_down == other.plugin_down
            && self.plugin_up == other.plugin_up
    }
}

/// Parses and checks a router config. Errors name the file, line and key.
pub fn parse_config(text: &str, file: &str) -> Result<RouterConfig, String> {
    let top = tao::parse(text, file).map_err(|e| e.to_string())?;
    let mut cfg = RouterConfig {
        connection_timeout: 20,
        verbose: true,
        groups: BTreeMap::new(),
    };
    let at = |m: &tao::Member| format!("{}:{}", m.key_pos.file, m.key_pos.line);
    for (key, m) in &top {
        match (key.as_str(), &m.value.kind) {
            ("connectionTimeout", ValueKind::UInt(n)) if *n > 0 => cfg.connection_timeout = *n,
            ("connectionTimeout", _) => {
                return Err(format!(
                    "{}: connectionTimeout must be a positive number of seconds",
                    at(m)
                ))
            }
            ("verbose", ValueKind::Bool(b)) => cfg.verbose = *b,
            ("verbose", _) => return Err(format!("{}: verbose must be true or false", at(m))),
            ("streams", ValueKind::Object(groups)) => {
                for (name, g) in groups {
                    let group = parse_group(name, g).map_err(|e| format!("{}: {e}", at(g)))?;
                    cfg.groups.insert(name.clone(), group);
                }
            }
            ("streams", _) => return Err(format!("{}: streams must be an object", at(m))),
            (other, _) => return Err(format!("{}: unknown router config key '{other}'", at(m))),
        }
    }
    Ok(cfg)
}

fn parse_group(name: &str, m: &tao::Member) -> Result<Group, String> {
    let ValueKind::Object(items) = &m.value.kind else {
        return Err(format!("stream group '{name}' must be an object"));
    };
    let mut dir = None;
    let mut urls = Vec::new();
    let mut filter = Filter::all();
    let (mut plugin_down, mut plugin_up) = (String::new(), String::new());
    for (key, v) in items {
        let bad = |what: &str| format!("stream group '{name}': {key} must be {what}");
        match (key.as_str(), &v.value.kind) {
            ("dir", ValueKind::String(s)) => {
                dir = Some(match s.as_str() {
                    "down" => Dir::Down,
                    "up" => Dir::Up,
                    "both" => Dir::Both,
                    _ => return Err(bad("\"down\", \"up\" or \"both\"")),
                })
            }
            ("urls", ValueKind::Array(list)) => {
                for u in list {
                    let ValueKind::String(u) = &u.kind else {
                        return Err(bad("an array of ws:// or wss:// URLs"));
                    };
                    if !(u.starts_with("ws://") || u.starts_with("wss://")) {
                        return Err(format!(
                            "stream group '{name}': '{u}' is not a ws:// or wss:// URL"
                        ));
                    }
                    if !urls.contains(u) {
                        urls.push(u.clone());
                    }
                }
            }
            ("filter", ValueKind::Object(_)) => {
                filter = parse_filter(&v.value.render())
                    .map_err(|e| format!("stream group '{name}': bad filter: {e}"))?;
            }
            ("pluginDown", ValueKind::String(s)) => plugin_down = s.clone(),
            ("pluginUp", ValueKind::String(s)) => plugin_up = s.clone(),
            ("dir", _) => return Err(bad("\"down\", \"up\" or \"both\"")),
            ("urls", _) => return Err(bad("an array of ws:// or wss:// URLs")),
            ("filter", _) => return Err(bad("a filter object")),
            ("pluginDown" | "pluginUp", _) => return Err(bad("a string")),
            (other, _) => {
                return Err(format!("stream group '{name}': unknown key '{other}'"));
            }
        }
    }
    let Some(dir) = dir else {
        return Err(format!("stream group '{name}': dir is required"));
    };
    if urls.is_empty() {
        return Err(format!(
            "stream group '{name}': urls is required and must not be empty"
        ));
    }
    Ok(Group {
        dir,
        urls,
        filter,
        plugin_down,
        plugin_up,
    })
}

fn parse_filter(json: &str) -> Result<Filter, String> {
    let mut bytes = json.as_bytes().to_vec();
    let f = JsonParser::new()
        .parse(&mut bytes, |v| Filter::from_json(v, usize::MAX))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if f.since != 0 || f.until != u64::MAX || f.limit.is_some() {
        // A live link carries new events; these would silently drop some.
        return Err("since, until and limit have no meaning for a live stream".into());
    }
    Ok(f)
}

/// What the links share, taken from the wok config.
pub struct RouterSettings {
    pub limits: Limits,
    pub plugin_timeout: Duration,
}

struct Link<'s> {
    stop: Arc<AtomicBool>,
    handle: ScopedJoinHandle<'s, ()>,
}

/// Reads and parses the router config at `path`, with its mtime (what reloads watch).
pub fn load(path: &Path) -> Result<(RouterConfig, Option<SystemTime>), String> {
    let stamp = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read router config {}: {e}", path.display()))?;
    Ok((parse_config(&text, &path.display().to_string())?, stamp))
}

/// Runs the router from `loaded` (what [`load`] gave for `path`) until `stop` is set,
/// reloading `path` when it changes. A link whose writes the store refuses (full disk or
/// map) stops the router with that error: every link writes to the same store.
pub fn run(
    store: &Store,
    path: &Path,
    loaded: (RouterConfig, Option<SystemTime>),
    settings: &RouterSettings,
    stop: &AtomicBool,
) -> Result<(), String> {
    let (mut cfg, mut stamp) = loaded;
    let fatal_slot: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let fatal = &fatal_slot;
    let verbose = Arc::new(AtomicBool::new(cfg.verbose));
    std::thread::scope(|scope| {
        let mut links: BTreeMap<(String, String), Link<'_>> = BTreeMap::new();
        let mut retiring: Vec<Link<'_>> = Vec::new();
        let start = |group: &str, g: &Group, url: &str, timeout: u64| {
            let link_stop = Arc::new(AtomicBool::new(false));
            let mut o = StreamOptions::new(url, g.dir, settings.limits);
            o.filter = g.filter.clone();
            o.plugin_down = g.plugin_down.clone();
            o.plugin_up = g.plugin_up.clone();
            o.plugin_timeout = settings.plugin_timeout;
            o.connect_timeout = Duration::from_secs(timeout);
            o.max_backoff = Duration::from_secs(timeout);
            o.name = format!("router {group} {url}");
            o.verbose = verbose.clone();
            let flag = link_stop.clone();
            let handle = scope.spawn(move || match stream::run(store, &o, &flag) {
                Ok(s) => log::info!(
                    "{}: stopped: {} events down{}, {} up ({} refused), {} reconnects",
                    o.name,
                    s.down,
                    s.blocked_note(),
                    s.up,
                    s.up_rejected,
                    s.reconnects
                ),
                Err(e) if e.starts_with(stream::STORAGE_FULL) => {
                    if let Ok(mut f) = fatal.lock() {
                        f.get_or_insert(format!("{}: {e}", o.name));
                    }
                }
                Err(e) => log::error!("{}: {e}", o.name),
            });
            Link {
                stop: link_stop,
                handle,
            }
        };
        for (name, g) in &cfg.groups {
            for url in &g.urls {
                let link = start(name, g, url, cfg.connection_timeout);
                links.insert((name.clone(), url.clone()), link);
            }
        }
        log::info!("router: {} groups, {} links", cfg.groups.len(), links.len());
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            if fatal.lock().is_ok_and(|f| f.is_some()) {
                break;
            }
            retiring.retain(|l| !l.handle.is_finished());
            let now_stamp = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            if now_stamp == stamp {
                continue;
            }
            stamp = now_stamp;
            let new = match load(path) {
                Ok((c, _)) => c,
                Err(e) => {
                    log::error!("router: {e}; keeping the running config");
                    continue;
                }
            };
            if new == cfg {
                continue;
            }
            verbose.store(new.verbose, Ordering::Relaxed);
            // A changed connectionTimeout applies to links started from now on.
            let keep = |group: &str, url: &str| {
                let (Some(old), Some(g)) = (cfg.groups.get(group), new.groups.get(group)) else {
                    return false;
                };
                old.same_links(g) && g.urls.iter().any(|u| u == url)
            };
            let gone: Vec<_> = links.keys().filter(|(g, u)| !keep(g, u)).cloned().collect();
            for key in &gone {
                if let Some(link) = links.remove(key) {
                    log::info!("router: stopping {} {}", key.0, key.1);
                    link.stop.store(true, Ordering::Relaxed);
                    retiring.push(link);
                }
            }
            for (name, g) in &new.groups {
                for url in &g.urls {
                    if let std::collections::btree_map::Entry::Vacant(slot) =
                        links.entry((name.clone(), url.clone()))
                    {
                        log::info!("router: starting {name} {url}");
                        slot.insert(start(name, g, url, new.connection_timeout));
                    }
                }
            }
            cfg = new;
            log::info!(
                "router: config reloaded: {} groups, {} links",
                cfg.groups.len(),
                links.len()
            );
        }
        for link in links.values() {
            link.stop.store(true, Ordering::Relaxed);
        }
    });
    let taken = fatal_slot.lock().map(|mut f| f.take());
    match taken {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strfrys_example() {
        let cfg = parse_config(
            r#"
            connectionTimeout = 20
            streams {
                ## Fetch events from a relay
                fetch { dir = "down", urls = [ "wss://relay.example.com" ], filter = { "kinds": [0, 3] } }
                mesh {
                    dir = "both"
                    urls = [ "ws://a:7777" "ws://b:7777" ]
                    pluginUp = "/usr/local/bin/up.sh"
                }
            }
            "#,
            "r.conf",
        )
        .expect("parses");
        assert_eq!(cfg.connection_timeout, 20);
        assert!(cfg.verbose);
        assert_eq!(cfg.groups["fetch"].dir, Dir::Down);
        assert_eq!(cfg.groups["fetch"].filter.kinds, Some(vec![0, 3]));
        assert_eq!(cfg.groups["mesh"].urls, ["ws://a:7777", "ws://b:7777"]);
        assert_eq!(cfg.groups["mesh"].plugin_up, "/usr/local/bin/up.sh");
        assert_eq!(cfg.groups["mesh"].filter, Filter::all());
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let cases = [
            ("streams { a { urls = [\"ws://x\"] } }", "dir is required"),
            ("streams { a { dir = \"down\" } }", "urls is required"),
            (
                "streams { a { dir = \"sideways\", urls = [\"ws://x\"] } }",
                "dir must be",
            ),
            (
                "streams { a { dir = \"up\", urls = [\"http://x\"] } }",
                "not a ws://",
            ),
            (
                "streams { a { dir = \"up\", urls = [\"ws://x\"], filter = {\"kinds\": \"1\"} } }",
                "bad filter",
            ),
            (
                "streams { a { dir = \"up\", urls = [\"ws://x\"], filter = {\"since\": 5} } }",
                "live stream",
            ),
            (
                "streams { a { dir = \"up\", urls = [\"ws://x\"], plugin = \"x\" } }",
                "unknown key",
            ),
            ("conectionTimeout = 5", "unknown router config key"),
            ("connectionTimeout = 0", "positive"),
            ("streams = 3", "must be an object"),
            ("streams { a { ", "r.conf"),
        ];
        for (text, want) in cases {
            let e = parse_config(text, "r.conf").expect_err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn only_url_lists_can_change_without_reconnecting_a_group() {
        let a = parse_config(
            "streams { g { dir = \"both\", urls = [\"ws://a\"] } }",
            "r.conf",
        )
        .expect("a");
        let b = parse_config(
            "streams { g { dir = \"both\", urls = [\"ws://a\", \"ws://b\"] } }",
            "r.conf",
        )
        .expect("b");
        let c = parse_config(
            "streams { g { dir = \"down\", urls = [\"ws://a\"] } }",
            "r.conf",
        )
        .expect("c");
        assert!(a.groups["g"].same_links(&b.groups["g"]));
        assert!(!a.groups["g"].same_links(&c.groups["g"]));
    }
}
