//! Fuzzes the strfry.conf (taoCONFIG) parser `crate::config::parse_str` on arbitrary UTF-8 text.
//!
//! Checks: no panic (and no hang / runaway allocation) on any input; errors format; and for
//! any input that parses, `render_conf` round-trips: the rendered file parses again to an
//! equal `Config`, with no warning the input did not already get (a setting that has no
//! effect in wok, such as `events.ephemeralEventsLifetimeSeconds`, is kept by the render and
//! rightly warned about again: fuzz/regressions/config/). Non-UTF-8 inputs are skipped
//! (config files are text).

use crate::config::{parse_str, render_conf};

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (cfg, warnings) = match parse_str(text, "fuzz.conf") {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let rendered = render_conf(&cfg);
    match parse_str(&rendered, "rendered.conf") {
        Ok((back, again)) => {
            let before: Vec<&str> = warnings.iter().map(|w| what(w)).collect();
            for w in &again {
                assert!(before.contains(&what(w)), "rendered config warns anew: {w}");
            }
            assert_eq!(back, cfg, "render_conf round trip changed the config");
        }
        Err(e) => panic!("rendered config does not parse: {e}\n{rendered}"),
    }
}

/// A warning without its `file:line: ` prefix.
fn what(w: &str) -> &str {
    w.splitn(3, ':').nth(2).unwrap_or(w).trim_start()
}
