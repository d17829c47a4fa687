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

/// A checked view of a stored record; borrowing the map, so copy out what must outlive
/// the transaction.
///
/// The fields are read straight from the `PackedEvent` table with a bounds check per field
/// ([`Record::read`]) rather than through the generic FlatBuffers verifier: every query
/// reads one record per candidate, and the verifier's walk was about a third of a COUNT
/// over 10k reactions. The table is still written by FlatBuffers' builder, and a property
/// test holds this reader to the verified one.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    id: &'a [u8; 32],
    pubkey: &'a [u8; 32],
    created_at: u64,
    kind: u64,
    expiration: u64,
    tags: &'a [u8],
}

/// `PackedEvent`'s fields in schema order (their slots in the vtable).
const F_ID: usize = 0;
const F_PUBKEY: usize = 1;
const F_CREATED_AT: usize = 2;
const F_KIND: usize = 3;
const F_EXPIRATION: usize = 4;
const F_TAGS: usize = 5;

impl<'a> Record<'a> {
    /// Checks every offset it follows: a corrupt value is an error, not a panic.
    pub fn read(buf: &'a [u8]) -> Result<Record<'a>, StoreError> {
        read_packed(buf).ok_or_else(|| StoreError::Corrupt("event record: bad layout".into()))
    }

    pub fn expiration(&self) -> Option<u64> {
        Some(self.expiration).filter(|&e| e != 0)
    }

    /// Expired (NIP-40) at `now`: never served, even before it is purged.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expiration().is_some_and(|e| e <= now)
    }

    pub fn tags_bytes(&self) -> &'a [u8] {
        self.tags
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    )))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// FlatBuffers' table layout: the root offset leads to the table, whose first word is the
/// signed distance back to its vtable (byte length, table length, then one u16 offset per
/// field, 0 = absent and so the default).
fn read_packed(b: &[u8]) -> Option<Record<'_>> {
    let table = usize::try_from(u32_at(b, 0)?).ok()?;
    // Both below 2^32: no overflow in i64.
    let vtable = usize::try_from(table as i64 - i64::from(u32_at(b, table)? as i32)).ok()?;
    let vt_len = u16_at(b, vtable)?;
    let table_len = u16_at(b, vtable + 2)?;
    // The field offsets, and the table's bytes that they index.
    let slots = b.get(vtable + 4..vtable.checked_add(vt_len.max(4))?)?;
    let tb = b.get(table..table.checked_add(table_len)?)?;
    let (id, pubkey) = (
        field(slots, tb, F_ID, 32)??.try_into().ok()?,
        field(slots, tb, F_PUBKEY, 32)??.try_into().ok()?,
    );
    let u64_field = |slot| -> Option<u64> {
        Some(match field(slots, tb, slot, 8)? {
            None => 0,
            Some(v) => u64::from_le_bytes(v.try_into().ok()?),
        })
    };
    let tags = match field(slots, tb, F_TAGS, 4)? {
        None => &[][..],
        Some(v) => {
            // The vector's offset counts from where it is stored.
            let at = v.as_ptr() as usize - b.as_ptr() as usize;
            let vec =
                at.checked_add(usize::try_from(u32::from_le_bytes(v.try_into().ok()?)).ok()?)?;
            let len = usize::try_from(u32_at(b, vec)?).ok()?;
            b.get(vec + 4..(vec + 4).checked_add(len)?)?
        }
    };
    Some(Record {
        id,
        pubkey,
        created_at: u64_field(F_CREATED_AT)?,
        kind: u64_field(F_KIND)?,
        expiration: u64_field(F_EXPIRATION)?,
        tags,
    })
}

/// Field `slot`'s `size` bytes inside the table: `Some(None)` when the vtable leaves it
/// out (its default), `None` when its offset points outside the table.
#[inline(always)]
fn field<'a>(slots: &[u8], table: &'a [u8], slot: usize, size: usize) -> Option<Option<&'a [u8]>> {
    let Some(&[lo, hi]) = slots.get(2 * slot..2 * slot + 2) else {
        return Some(None);
    };
    match usize::from(u16::from_le_bytes([lo, hi])) {
        0 => Some(None),
        off => table.get(off..off.checked_add(size)?).map(Some),
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
        self.created_at
    }
    fn kind(&self) -> u64 {
        self.kind
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

    /// The reader agrees with FlatBuffers' verified accessors on every record the builder
    /// makes (with and without tags, expiry, zero defaults the builder leaves out).
    #[test]
    fn reads_what_the_verified_accessors_read() {
        proptest::proptest!(|(k in 1u8..200, created_at in proptest::prelude::any::<u64>(),
                              kind in proptest::prop_oneof![proptest::strategy::Just(0u64), 0u64..70_000],
                              exp in proptest::option::of(0u64..u64::MAX / 2),
                              ntags in 0usize..4)| {
            let mut tags: Vec<Vec<String>> = (0..ntags)
                .map(|i| vec!["t".to_string(), format!("tag{i}")])
                .collect();
            if let Some(e) = exp {
                tags.push(vec!["expiration".to_string(), e.to_string()]);
            }
            let tags: Vec<Vec<&str>> = tags.iter().map(|t| t.iter().map(String::as_str).collect()).collect();
            let ev = Keys::from_secret([k; 32])
                .expect("key")
                .sign(created_at, kind, Tags::from_vecs(&tags), "", &Limits::default())
                .expect("sign");
            let buf = encode(&ev);
            let fb = flatbuffers::root::<fb::PackedEvent>(&buf).expect("verified");
            let r = Record::read(&buf).expect("read");
            proptest::prop_assert_eq!(r.id(), &fb.id().0);
            proptest::prop_assert_eq!(r.pubkey(), &fb.pubkey().0);
            proptest::prop_assert_eq!(r.created_at(), fb.created_at());
            proptest::prop_assert_eq!(r.kind(), fb.kind());
            proptest::prop_assert_eq!(r.expiration, fb.expiration());
            proptest::prop_assert_eq!(r.tags_bytes(), fb.tags().map(|v| v.bytes()).unwrap_or(&[]));
        });
    }

    /// Damaged records (bytes flipped, cut short, garbage) are refused or read within
    /// bounds, never a panic; whatever the verifier accepts reads the same.
    #[test]
    fn damaged_records_never_panic() {
        let ev = Keys::from_secret([9; 32])
            .expect("key")
            .sign(
                7,
                30023,
                Tags::from_vecs(&[vec!["t", "x"], vec!["expiration", "99999"]]),
                "",
                &Limits::default(),
            )
            .expect("sign");
        let good = encode(&ev);
        proptest::proptest!(|(flips in proptest::collection::vec((0usize..512, proptest::prelude::any::<u8>()), 1..6),
                              cut in 0usize..512,
                              junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200))| {
            let mut buf = good.clone();
            for (at, x) in flips {
                let n = buf.len();
                buf[at % n] ^= x;
            }
            buf.truncate(cut.max(1));
            if let (Ok(fb), Ok(r)) = (flatbuffers::root::<fb::PackedEvent>(&buf), Record::read(&buf)) {
                proptest::prop_assert_eq!(r.id(), &fb.id().0);
                proptest::prop_assert_eq!(r.kind(), fb.kind());
                proptest::prop_assert_eq!(r.tags_bytes(), fb.tags().map(|v| v.bytes()).unwrap_or(&[]));
            }
            let _ = Record::read(&junk);
        });
    }
}
