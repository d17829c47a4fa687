//! The fuzz targets' bodies, one `run(data)` per target. The libFuzzer binaries in `fuzz/`
//! are one line each around these, and `tests/fuzz_corpus.rs` runs every seed
//! (`fuzz/seeds/<target>/`) and every past crash (`fuzz/regressions/<target>/`) through the
//! same functions on stable without libFuzzer, so there is one copy of each body.
//!
//! Not product code: a body panics (asserts) when a property it checks fails, which is how
//! a fuzzer reports it. Nothing in the relay or the CLI calls these.

pub mod client_msg;
pub mod config;
pub mod event;
pub mod filter;
pub mod http;
pub mod import_line;
pub mod nip77;
pub mod router_config;
pub mod ws_frames;

/// A target's body: panics when a property fails.
pub type Target = fn(&[u8]);

/// Every target by its name (the binary's name in `fuzz/Cargo.toml` and its directory under
/// `fuzz/seeds/` and `fuzz/regressions/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("client_msg", client_msg::run),
    ("config", config::run),
    ("event", event::run),
    ("filter", filter::run),
    ("http", http::run),
    ("import_line", import_line::run),
    ("nip77", nip77::run),
    ("router_config", router_config::run),
    ("ws_frames", ws_frames::run),
];
