//! The client side: talking to other relays (`sync`, and later `stream`, `router`,
//! `upload`, `download`). Blocking, one connection per caller thread.

pub mod range;
pub mod stream;
pub mod sync;
pub mod ws;
