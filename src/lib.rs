pub mod config;
pub mod logging;
pub mod nostr;
pub mod store;
