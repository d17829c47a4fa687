//! NIP-13 proof of work: an event's difficulty is the number of leading zero bits of its
//! id, and its `nonce` tag (`["nonce", "<n>", "<target>"]`) commits to the target the miner
//! aimed at. A relay asking for N bits refuses ids with fewer, and refuses a committed target
//! below N even when the id happens to clear it (a lucky low-target miner was not trying to
//! meet this relay's bar: NIP-13 lets relays insist on the commitment). Checked before the
//! signature: counting zero bits is far cheaper than a Schnorr verify.

use std::cell::RefCell;

use crate::config::Config;
use crate::nostr::Event;

/// Leading zero bits of an id (0..=256).
pub fn difficulty(id: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for b in id {
        if *b == 0 {
            bits += 8;
        } else {
            return bits + b.leading_zeros();
        }
    }
    bits
}

/// Parses `relay.pow.kindDifficulty`: `kind:bits` pairs separated by commas (spaces
/// allowed), e.g. `"1:20, 7:0"`. A malformed pair is an error naming it.
pub fn parse_kind_difficulty(s: &str) -> Result<Vec<(u64, u32)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, d) = part
            .split_once(':')
            .ok_or_else(|| format!("`{part}` is not kind:bits"))?;
        let kind = k
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("`{part}`: kind is not a number"))?;
        let bits = d
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|b| *b <= 256)
            .ok_or_else(|| format!("`{part}`: bits must be 0..256"))?;
        out.push((kind, bits));
    }
    Ok(out)
}

thread_local! {
    /// The last `kindDifficulty` string seen by this thread and its parse, so a message
    /// costs a string compare, not a parse (the config is re-read per message).
    static KINDS: RefCell<(String, Vec<(u64, u32)>)> = const { RefCell::new((String::new(), Vec::new())) };
}

/// The difficulty `kind` must meet under `cfg` (0 = none).
pub fn required(cfg: &Config, kind: u64) -> u32 {
    let p = &cfg.relay.pow;
    let global = u32::try_from(p.min_difficulty.min(256)).unwrap_or(256);
    if p.kind_difficulty.trim().is_empty() {
        return global;
    }
    KINDS.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != p.kind_difficulty {
            let parsed = parse_kind_difficulty(&p.kind_difficulty).unwrap_or_else(|e| {
                log::warn!("relay.pow.kindDifficulty ignored: {e}");
                Vec::new()
            });
            *c = (p.kind_difficulty.clone(), parsed);
        }
        c.1.iter()
            .find(|(k, _)| *k == kind)
            .map_or(global, |(_, d)| *d)
    })
}

/// `Err(reason)` (an `OK false` message with the `pow:` prefix) when `ev` falls short of
/// what its kind needs.
pub fn check(cfg: &Config, ev: &Event) -> Result<(), String> {
    let need = required(cfg, ev.kind);
    if need == 0 {
        return Ok(());
    }
    let have = difficulty(&ev.id);
    if have < need {
        return Err(format!("pow: difficulty {have} is less than {need}"));
    }
    let Some(nonce) = ev.tags.find("nonce") else {
        return Err(format!(
            "pow: missing nonce tag committing to a target of at least {need} (NIP-13)"
        ));
    };
    match nonce.get(2).and_then(|t| t.trim().parse::<u32>().ok()) {
        None => Err("pow: nonce tag has no committed target (its third element)".into()),
        Some(t) if t < need => Err(format!("pow: committed target {t} is less than {need}")),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_bits() {
        let mut id = [0xffu8; 32];
        assert_eq!(difficulty(&id), 0);
        id[0] = 0;
        id[1] = 0x0f;
        assert_eq!(difficulty(&id), 12);
        assert_eq!(difficulty(&[0; 32]), 256);
        // NIP-13's example: 000000000e9d… has 36 leading zero bits.
        let mut ex = [0u8; 32];
        ex[4] = 0x0e;
        assert_eq!(difficulty(&ex), 36);
    }

    #[test]
    fn kind_overrides() {
        assert_eq!(
            parse_kind_difficulty(" 1:20, 7:0 ,"),
            Ok(vec![(1, 20), (7, 0)])
        );
        assert!(parse_kind_difficulty("1=20").is_err());
        assert!(parse_kind_difficulty("x:2").is_err());
        assert!(parse_kind_difficulty("1:300").is_err());
        let mut cfg = Config::default();
        cfg.relay.pow.min_difficulty = 8;
        cfg.relay.pow.kind_difficulty = "1:20, 7:0".into();
        assert_eq!(required(&cfg, 1), 20);
        assert_eq!(required(&cfg, 7), 0);
        assert_eq!(required(&cfg, 30023), 8);
    }
}
