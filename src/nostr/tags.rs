//! Event tags, stored flat (one string arena plus field offsets) so a parsed event costs a
//! few allocations however many tags it has, and the indexable subset packed as strfry's
//! PackedEvent does: `name(1) len(1) value(len)`, with `e`/`p` values as 32 raw bytes.

use super::hex;

/// All tags of an event, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags {
    text: String,
    /// `(start, end)` of every field in `text`.
    fields: Vec<(u32, u32)>,
    /// End index into `fields` of each tag.
    ends: Vec<u32>,
}

impl Tags {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Tag<'_>> + '_ {
        (0..self.ends.len()).map(move |i| self.tag(i))
    }

    fn tag(&self, i: usize) -> Tag<'_> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Tag {
            text: &self.text,
            fields: &self.fields[start..self.ends[i] as usize],
        }
    }

    pub(crate) fn push_field(&mut self, s: &str) {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        self.fields.push((start, self.text.len() as u32));
    }

    pub(crate) fn end_tag(&mut self) {
        self.ends.push(self.fields.len() as u32);
    }

    /// Builds tags from owned strings (tests, generators, CLI).
    pub fn from_vecs<S: AsRef<str>>(tags: &[Vec<S>]) -> Tags {
        let mut t = Tags::default();
        for tag in tags {
            for f in tag {
                t.push_field(f.as_ref());
            }
            t.end_tag();
        }
        t
    }

    pub fn to_vecs(&self) -> Vec<Vec<String>> {
        self.iter()
            .map(|t| t.fields().map(str::to_owned).collect())
            .collect()
    }

    /// The first tag named `name`.
    pub fn find(&self, name: &str) -> Option<Tag<'_>> {
        self.iter().find(|t| t.name() == name)
    }
}

/// One tag: a non-empty list of strings.
#[derive(Clone, Copy)]
pub struct Tag<'a> {
    text: &'a str,
    fields: &'a [(u32, u32)],
}

impl<'a> Tag<'a> {
    pub fn get(&self, i: usize) -> Option<&'a str> {
        let &(s, e) = self.fields.get(i)?;
        self.text.get(s as usize..e as usize)
    }

    pub fn name(&self) -> &'a str {
        self.get(0).unwrap_or("")
    }

    /// Element 1, the value strfry indexes and validates.
    pub fn value(&self) -> Option<&'a str> {
        self.get(1)
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn fields(&self) -> impl Iterator<Item = &'a str> + 'a {
        let text = self.text;
        self.fields
            .iter()
            .map(move |&(s, e)| text.get(s as usize..e as usize).unwrap_or(""))
    }
}

/// Longest tag value that is indexed (its length must fit the one-byte length prefix).
pub const MAX_INDEXED_VALUE: usize = 255;

/// Is this tag name indexed, and is its value a fixed 32-byte id?
pub fn indexed_name(name: &str) -> Option<(u8, bool)> {
    match name.as_bytes() {
        [c] => Some((*c, *c == b'e' || *c == b'p')),
        _ => None,
    }
}

/// Appends the packed form of one tag value if its name is indexed. Returns false (and
/// appends nothing) for an `e`/`p` value that is not 64 hex digits; values over 255 bytes
/// are skipped, not indexed.
pub fn pack_tag(out: &mut Vec<u8>, name: &str, value: &str) -> bool {
    let Some((c, fixed)) = indexed_name(name) else {
        return true;
    };
    if fixed {
        let Some(raw) = hex::decode_any::<32>(value.as_bytes()) else {
            return false;
        };
        out.push(c);
        out.push(32);
        out.extend_from_slice(&raw);
    } else if value.len() <= MAX_INDEXED_VALUE {
        out.push(c);
        out.push(value.len() as u8);
        out.extend_from_slice(value.as_bytes());
    }
    true
}

/// The packed indexable tags of an event (see the module comment).
#[derive(Clone, Copy, Debug)]
pub struct PackedTags<'a>(pub &'a [u8]);

impl<'a> Iterator for PackedTags<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (&name, rest) = self.0.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let len = len as usize;
        if rest.len() < len {
            // Truncated record: stop rather than read past it.
            self.0 = &[];
            return None;
        }
        let (value, rest) = rest.split_at(len);
        self.0 = rest;
        Some((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_tags_round_trip() {
        let v = vec![
            vec!["e".to_string(), "x".repeat(3)],
            vec!["t".into()],
            vec!["".into(), "".into(), "z".into()],
        ];
        let t = Tags::from_vecs(&v);
        assert_eq!(t.len(), 3);
        assert_eq!(t.to_vecs(), v);
        let second = t.iter().nth(1).expect("tag");
        assert_eq!(second.name(), "t");
        assert_eq!(second.value(), None);
        assert_eq!(t.find("").map(|t| t.len()), Some(3));
    }

    #[test]
    fn packs_only_indexable_values() {
        let mut out = Vec::new();
        assert!(pack_tag(&mut out, "p", &"ab".repeat(32)));
        assert!(pack_tag(&mut out, "t", "nostr"));
        assert!(pack_tag(&mut out, "tt", "multi-letter"));
        assert!(pack_tag(&mut out, "r", &"x".repeat(256)));
        assert!(!pack_tag(&mut out, "e", "abcd"));
        let got: Vec<_> = PackedTags(&out).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (b'p', &[0xab; 32][..]));
        assert_eq!(got[1], (b't', &b"nostr"[..]));
        assert_eq!(PackedTags(&out[..out.len() - 1]).count(), 1);
    }
}
