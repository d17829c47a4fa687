//! BIP-340 signature checks. secp256k1 0.33 with `std` keeps its context in a thread-local,
//! so each stage thread verifies on its own context with no locking. Parsing the x-only
//! public key (a field square root) is ~10% of a verify, and busy relays see the same
//! authors again and again, so each thread keeps a small direct-mapped cache of parsed keys.

use std::cell::RefCell;

use secp256k1::{schnorr, XOnlyPublicKey};

use super::event::{Event, Invalid};

/// Entries in each thread's cache (a power of two). Pubkeys are uniformly random, so their
/// first bytes index the table directly.
const CACHE_SLOTS: usize = 1024;

struct PubkeyCache {
    slots: Vec<Option<([u8; 32], XOnlyPublicKey)>>,
}

impl PubkeyCache {
    fn new() -> Self {
        PubkeyCache {
            slots: vec![None; CACHE_SLOTS],
        }
    }

    fn get(&mut self, raw: &[u8; 32]) -> Option<XOnlyPublicKey> {
        let i = u16::from_le_bytes([raw[0], raw[1]]) as usize & (CACHE_SLOTS - 1);
        match &self.slots[i] {
            Some((k, pk)) if k == raw => Some(*pk),
            _ => {
                let pk = XOnlyPublicKey::from_byte_array(*raw).ok()?;
                self.slots[i] = Some((*raw, pk));
                Some(pk)
            }
        }
    }
}

thread_local! {
    static CACHE: RefCell<PubkeyCache> = RefCell::new(PubkeyCache::new());
}

/// Allocates this thread's key cache (~100 KB) now: a stage thread calls it when it starts,
/// so the relay's heap does not step up later, once per thread, at each one's first verify.
pub fn warm_cache() {
    CACHE.with(|_| ());
}

/// Verifies `sig` over the 32-byte `id` by `pubkey`, using the thread's key cache.
pub fn verify_schnorr(id: &[u8; 32], pubkey: &[u8; 32], sig: &[u8; 64]) -> bool {
    let pk = CACHE.with(|c| c.borrow_mut().get(pubkey));
    let Some(pk) = pk else { return false };
    let sig = schnorr::Signature::from_byte_array(*sig);
    schnorr::verify(&sig, id, &pk).is_ok()
}

/// Same without the cache: the baseline the benches compare against.
pub fn verify_schnorr_uncached(id: &[u8; 32], pubkey: &[u8; 32], sig: &[u8; 64]) -> bool {
    let Ok(pk) = XOnlyPublicKey::from_byte_array(*pubkey) else {
        return false;
    };
    schnorr::verify(&schnorr::Signature::from_byte_array(*sig), id, &pk).is_ok()
}

/// The id and signature checks strfry runs after structural validation, in its order.
pub fn check_event(ev: &Event) -> Result<(), Invalid> {
    ev.check_id()?;
    if verify_schnorr(&ev.id, &ev.pubkey, &ev.sig) {
        Ok(())
    } else {
        Err(Invalid("bad signature".into()))
    }
}
