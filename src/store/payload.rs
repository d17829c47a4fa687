//! EventPayload values: `0x00‖json`, or `0x01‖dictId(u32 LE)‖zstd` written by
//! `dict compress` (strfry's layout).

use std::borrow::Cow;

use super::{Result, StoreError};

pub const RAW: u8 = 0x00;
pub const ZSTD_DICT: u8 = 0x01;

pub fn encode_raw(json: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(json.len() + 1);
    v.push(RAW);
    v.extend_from_slice(json);
    v
}

pub fn decode(buf: &[u8]) -> Result<Cow<'_, [u8]>> {
    match buf.split_first() {
        Some((&RAW, json)) => Ok(Cow::Borrowed(json)),
        Some((&ZSTD_DICT, _)) => Err(StoreError::Corrupt(
            "payload is dictionary-compressed, which this build cannot read yet".into(),
        )),
        Some((t, _)) => Err(StoreError::Corrupt(format!(
            "unknown payload type {t:#04x}"
        ))),
        None => Err(StoreError::Corrupt("empty payload".into())),
    }
}
