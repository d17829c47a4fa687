//! The client side: talking to other relays (`sync`, `stream`, `router`; `upload` and
//! `download` live in the CLI). Blocking, one connection per caller thread.

pub mod range;
pub mod router;
pub mod stream;
pub mod sync;
pub mod ws;
