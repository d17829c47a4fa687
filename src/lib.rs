pub mod nostr;
pub mod logging;
