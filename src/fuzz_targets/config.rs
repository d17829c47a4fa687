//! Fuzzes the strfry.conf (taoCONFIG) parser `crate::config::parse_str` on arbitrary UTF-8 text.
//!
//! Checks: no panic (and no hang / runaway allocation) on any input; errors format; and for
//! any input that parses, `render_conf` round-trips: the rendered file parses again, without
//! warnings, to an equal `Config`. Non-UTF-8 inputs are skipped (config files are text).

use crate::config::{parse_str, render_conf};

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cfg = match parse_str(text, "fuzz.conf") {
        Ok((cfg, _warnings)) => cfg,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let rendered = render_conf(&cfg);
    match parse_str(&rendered, "rendered.conf") {
        Ok((back, warnings)) => {
            assert!(warnings.is_empty(), "rendered config warns: {warnings:?}");
            assert_eq!(back, cfg, "render_conf round trip changed the config");
        }
        Err(e) => panic!("rendered config does not parse: {e}\n{rendered}"),
    }
}
