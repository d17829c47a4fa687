//! The packed event record (FlatBuffers table `PackedEvent`, schema/records.fbs), built on
//! write and read in place from the map for planning and filter matching.

use flatbuffers::FlatBufferBuilder;

use super::fb;
use super::StoreError;
use crate::nostr::filter::EventView;
use crate::nostr::tags::PackedTags;
use crate::nostr::Event;

/// Serialises the record for `ev`.
pub fn encode(ev: &Event) -> Vec<u8> {
    let mut b = FlatBufferBuilder::with_capacity(128 + ev.packed_tags().0.len());
    let tags = b.create_vector(ev.packed_tags().0);
    let id = fb::Bytes32(ev.id);
    let pubkey = fb::Bytes32(ev.pubkey);
    let rec = fb::PackedEvent::create(
        &mut b,
        &fb::PackedEventArgs {
            id: Some(&id),
            pubkey: Some(&pubkey),
            created_at: ev.created_at,
            kind: ev.kind,
            expiration: ev.expiration.unwrap_or(0),
            tags: Some(tags),
        },
    );
    b.finish(rec, None);
    b.finished_data().to_vec()
}

/// A verified view of a stored record; borrowing the map, so copy out what must outlive
/// the transaction.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    rec: fb::PackedEvent<'a>,
    id: &'a [u8; 32],
    pubkey: &'a [u8; 32],
}

impl<'a> Record<'a> {
    /// Verifies the buffer first: a corrupt value is an error, not a panic.
    pub fn read(buf: &'a [u8]) -> Result<Record<'a>, StoreError> {
        let rec = flatbuffers::root::<fb::PackedEvent>(buf)
            .map_err(|e| StoreError::Corrupt(format!("event record: {e}")))?;
        Ok(Record {
            rec,
            id: &rec.id().0,
            pubkey: &rec.pubkey().0,
        })
    }

    pub fn expiration(&self) -> Option<u64> {
        Some(self.rec.expiration()).filter(|&e| e != 0)
    }

    /// Expired (NIP-40) at `now`: never served, even before it is purged.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expiration().is_some_and(|e| e <= now)
    }

    pub fn tags_bytes(&self) -> &'a [u8] {
        self.rec.tags().map(|v| v.bytes()).unwrap_or(&[])
    }
}

impl EventView for Record<'_> {
    fn id(&self) -> &[u8; 32] {
        self.id
    }
    fn pubkey(&self) -> &[u8; 32] {
        self.pubkey
    }
    fn created_at(&self) -> u64 {
        self.rec.created_at()
    }
    fn kind(&self) -> u64 {
        self.rec.kind()
    }
    fn packed_tags(&self) -> PackedTags<'_> {
        PackedTags(self.tags_bytes())
    }
}

/// The canonical filter text of a `NegentropyFilter` row.
pub fn negentropy_filter_text(buf: &[u8]) -> Result<String, StoreError> {
    let row = flatbuffers::root::<fb::NegentropyFilter>(buf)
        .map_err(|e| StoreError::Corrupt(format!("negentropy filter: {e}")))?;
    Ok(row.filter().to_owned())
}

/// A `NegentropyFilter` row for `filter` (canonical JSON).
pub fn encode_negentropy_filter(filter: &str) -> Vec<u8> {
    let mut b = FlatBufferBuilder::new();
    let text = b.create_string(filter);
    let row =
        fb::NegentropyFilter::create(&mut b, &fb::NegentropyFilterArgs { filter: Some(text) });
    b.finish(row, None);
    b.finished_data().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nostr::sign::Keys;
    use crate::nostr::tags::Tags;
    use crate::nostr::Limits;

    #[test]
    fn round_trip_and_corruption() {
        let tags = Tags::from_vecs(&[
            vec!["t", "x"],
            vec!["expiration", "12345"],
            vec!["p", &"cd".repeat(32)],
        ]);
        let ev = Keys::from_secret([5; 32])
            .expect("key")
            .sign(99, 30023, tags, "c", &Limits::default())
            .expect("sign");
        let buf = encode(&ev);
        let r = Record::read(&buf).expect("read");
        assert_eq!(
            (r.id(), r.pubkey(), r.created_at(), r.kind()),
            (&ev.id, &ev.pubkey, 99, 30023)
        );
        assert_eq!(r.expiration(), Some(12345));
        assert!(r.is_expired(12345) && !r.is_expired(12344));
        assert_eq!(r.tags_bytes(), ev.packed_tags().0);
        assert!(Record::read(&buf[..buf.len() / 2]).is_err());
        assert!(Record::read(&[]).is_err());
    }
}
