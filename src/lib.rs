pub mod config;
pub mod nostr;
pub mod logging;
