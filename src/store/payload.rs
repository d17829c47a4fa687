//! EventPayload values: `0x00‖json`, or `0x01‖dictId(u32 LE)‖zstd` (strfry's layout,
//! written by `dict compress` and, with `events.compression`, by the write path).
//!
//! Payloads are decoded only here (through `Store::payload`), so every reader decompresses
//! the same way.

use std::borrow::Cow;
use std::sync::Arc;

use super::dict::{DictId, Dictionary};
use super::{Result, StoreError};

pub const RAW: u8 = 0x00;
pub const ZSTD_DICT: u8 = 0x01;

pub fn encode_raw(json: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(json.len() + 1);
    v.push(RAW);
    v.extend_from_slice(json);
    v
}

/// A stored payload, split but not decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    Raw(&'a [u8]),
    Zstd { dict: DictId, frame: &'a [u8] },
}

pub fn parse(buf: &[u8]) -> Result<Payload<'_>> {
    match buf.split_first() {
        Some((&RAW, json)) => Ok(Payload::Raw(json)),
        Some((&ZSTD_DICT, rest)) => {
            let (id, frame) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| StoreError::Corrupt("compressed payload too short".into()))?;
            Ok(Payload::Zstd {
                dict: DictId::from_le_bytes(*id),
                frame,
            })
        }
        Some((t, _)) => Err(StoreError::Corrupt(format!(
            "unknown payload type {t:#04x}"
        ))),
        None => Err(StoreError::Corrupt("empty payload".into())),
    }
}

/// The JSON of a stored payload; `dict` supplies the dictionary of a compressed one.
pub fn decode(
    buf: &[u8],
    dict: impl FnOnce(DictId) -> Result<Arc<Dictionary>>,
) -> Result<Cow<'_, [u8]>> {
    match parse(buf)? {
        Payload::Raw(json) => Ok(Cow::Borrowed(json)),
        Payload::Zstd { dict: id, frame } => Ok(Cow::Owned(dict(id)?.decompress(frame)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_shapes() {
        assert_eq!(parse(b"\x00{}").expect("raw"), Payload::Raw(b"{}"));
        assert_eq!(
            parse(b"\x01\x02\x00\x00\x00zz").expect("zstd"),
            Payload::Zstd {
                dict: 2,
                frame: b"zz"
            }
        );
        assert!(parse(b"\x01\x02\x00").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"\x07").is_err());
        let missing = decode(b"\x01\x09\x00\x00\x00zz", |id| {
            Err(StoreError::MissingDictionary(id))
        });
        assert!(matches!(missing, Err(StoreError::MissingDictionary(9))));
    }
}
