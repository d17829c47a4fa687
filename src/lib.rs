pub mod bench;
pub mod config;
pub mod gen;
pub mod logging;
pub mod mesh;
pub mod nostr;
pub mod relay;
pub mod store;
