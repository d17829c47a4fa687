//! Fuzzes `wok router`'s config parse and checks (`mesh::router::parse_config`) on arbitrary
//! UTF-8 text (taoCONFIG, as `config`, with the router's keys and a filter inside).
//!
//! Checks, for any input that parses:
//! - every group has a direction and at least one URL, its URLs are `ws://` or `wss://` and
//!   unique, and its filter has no `since`, `until` or `limit` (a live link drops nothing);
//! - written back as a JSON-layout file (the filter as its canonical `to_json`), the config
//!   parses again to an equal `RouterConfig`.

use std::fmt::Write;

use crate::config::tao::quote_json;
use crate::mesh::router::{parse_config, RouterConfig};
use crate::mesh::sync::Dir;

fn render(cfg: &RouterConfig) -> String {
    let mut out = format!(
        "{{\"connectionTimeout\":{},\"verbose\":{},\"streams\":{{",
        cfg.connection_timeout, cfg.verbose
    );
    for (i, (name, g)) in cfg.groups.iter().enumerate() {
        let dir = match g.dir {
            Dir::Down => "down",
            Dir::Up => "up",
            Dir::Both => "both",
            Dir::None => panic!("group {name:?} parsed with dir none"),
        };
        let urls: Vec<String> = g.urls.iter().map(|u| quote_json(u)).collect();
        let _ = write!(
            out,
            "{}{}:{{\"dir\":\"{dir}\",\"urls\":[{}],\"filter\":{},\"pluginDown\":{},\"pluginUp\":{}}}",
            if i > 0 { "," } else { "" },
            quote_json(name),
            urls.join(","),
            g.filter.to_json(),
            quote_json(&g.plugin_down),
            quote_json(&g.plugin_up),
        );
    }
    out.push_str("}}");
    out
}

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cfg = match parse_config(text, "router.conf") {
        Ok(cfg) => cfg,
        Err(e) => {
            assert!(!e.is_empty());
            return;
        }
    };
    assert!(cfg.connection_timeout > 0);
    for (name, g) in &cfg.groups {
        assert!(!g.urls.is_empty(), "group {name:?} has no URL");
        for (i, u) in g.urls.iter().enumerate() {
            assert!(u.starts_with("ws://") || u.starts_with("wss://"), "{u:?}");
            assert!(!g.urls[..i].contains(u), "{u:?} twice");
        }
        let f = &g.filter;
        assert!(f.since == 0 && f.until == u64::MAX && f.limit.is_none());
    }
    let rendered = render(&cfg);
    match parse_config(&rendered, "rendered.conf") {
        Ok(back) => assert_eq!(back, cfg, "round trip changed the config:\n{rendered}"),
        Err(e) => panic!("rendered router config does not parse: {e}\n{rendered}"),
    }
}
