//! The Nostr core: events, filters and client/relay messages. Pure (sans-IO): no sockets,
//! no LMDB, no clock; everything here is testable and fuzzable on its own.

pub mod bech32;
pub mod diagnose;
pub mod event;
pub mod filter;
pub mod hex;
pub mod json;
pub mod jsonl;
pub mod kinds;
pub mod message;
pub mod tags;
pub mod tape;

pub use event::{Event, Invalid, Limits, TimeWindow};
pub use tape::JsonParser;
pub mod sign;
pub mod verify;
pub use filter::{EventView, Filter, FilterError};
pub use message::{decode, ClientMsg, DecodeLimits, MsgError, SubId};
