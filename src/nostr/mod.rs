//! The Nostr core: events, filters and client/relay messages. Pure (sans-IO): no sockets,
//! no LMDB, no clock; everything here is testable and fuzzable on its own.

pub mod event;
pub mod hex;
pub mod json;
pub mod kinds;
pub mod tags;
pub mod tape;

pub use event::{Event, Invalid, Limits, TimeWindow};
pub use tape::JsonParser;
pub mod sign;
pub mod verify;
