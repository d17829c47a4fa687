pub mod bench;
pub mod config;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod gen;
pub mod logging;
pub mod mesh;
pub mod nostr;
pub mod policy;
pub mod relay;
pub mod search;
pub mod store;

/// The git commit this build comes from (short hash), or "unknown" (see `build.rs`).
pub const GIT_COMMIT: &str = env!("WOK_GIT_COMMIT");

/// `0.1.0 (abc1234)`: the version with the commit, for `--version` and the landing page.
pub const LONG_VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (", env!("WOK_GIT_COMMIT"), ")");
