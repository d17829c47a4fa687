//! Policy: may this IP, connection or pubkey do this now? Used by the relay's stages and by
//! the mesh commands (`stream`, `sync`, `router`), so the client side never reaches into the
//! relay's internals. Checks here are O(1) per message and take no global lock on the hot
//! path: state is per thread or lock-free.

pub mod access;
pub mod bucket;
pub mod limits;
pub mod manage;
pub mod plugin;
pub mod pow;

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
