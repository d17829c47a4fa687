//! A thin, allocation-free view over simd-json's tape. The tape is a flat array of nodes in
//! document order, where arrays and objects carry their total node count, so walking and
//! skipping are plain index arithmetic.

use simd_json::{Buffers, Node, StaticNode, Tape};

/// Nesting bound for every message we parse: the deepest legitimate Nostr message
/// (`["EVENT",{"tags":[["e","…"]]}]`) is 4 levels, so 16 leaves room and bounds the
/// parser's stack on hostile input.
const MAX_DEPTH: usize = 16;

/// One JSON value on the tape (its head node plus every node nested in it).
#[derive(Clone, Copy)]
pub struct Json<'t, 'i> {
    nodes: &'t [Node<'i>],
}

impl<'t, 'i> Json<'t, 'i> {
    fn at(nodes: &'t [Node<'i>]) -> Option<Self> {
        let len = span(nodes.first()?);
        Some(Json {
            nodes: nodes.get(..len)?,
        })
    }

    fn head(&self) -> &Node<'i> {
        // `at` only builds non-empty views.
        &self.nodes[0]
    }

    pub fn as_str(&self) -> Option<&'i str> {
        match self.head() {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    /// A non-negative integer; floats and negative numbers are not.
    pub fn as_u64(&self) -> Option<u64> {
        match self.head() {
            Node::Static(StaticNode::U64(n)) => Some(*n),
            Node::Static(StaticNode::I64(n)) => u64::try_from(*n).ok(),
            _ => None,
        }
    }

    /// Why this is not what [`Json::as_u64`] takes, for error messages: "was negative",
    /// "was not a whole number", "was out of range", "was a string, not a number", ….
    pub fn not_u64_reason(&self) -> &'static str {
        match self.head() {
            Node::Static(StaticNode::I64(n)) if *n < 0 => "was negative",
            Node::Static(StaticNode::F64(f)) if f.fract() == 0.0 && *f < 0.0 => "was negative",
            Node::Static(StaticNode::F64(f)) if f.fract() == 0.0 => "was out of range",
            Node::Static(StaticNode::F64(f)) if f.is_finite() => "was not a whole number",
            Node::String(_) => "was a string, not a number",
            Node::Static(StaticNode::Null) => "was null, not a number",
            Node::Static(StaticNode::Bool(_)) => "was a boolean, not a number",
            Node::Array { .. } | Node::Object { .. } => "was not a number",
            _ => "was not an integer",
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.head() {
            Node::Static(StaticNode::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn is_object(&self) -> bool {
        matches!(self.head(), Node::Object { .. })
    }

    pub fn is_array(&self) -> bool {
        matches!(self.head(), Node::Array { .. })
    }

    /// The elements of an array, or `None` if this is not an array.
    pub fn array(&self) -> Option<Elems<'t, 'i>> {
        match self.head() {
            Node::Array { len, .. } => Some(Elems {
                rest: &self.nodes[1..],
                left: *len,
            }),
            _ => None,
        }
    }

    /// The `(key, value)` members of an object, or `None` if this is not an object.
    pub fn object(&self) -> Option<Members<'t, 'i>> {
        match self.head() {
            Node::Object { len, .. } => Some(Members {
                rest: &self.nodes[1..],
                left: *len,
            }),
            _ => None,
        }
    }
}

/// Nodes occupied by the value starting at `n`.
fn span(n: &Node<'_>) -> usize {
    match n {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

pub struct Elems<'t, 'i> {
    rest: &'t [Node<'i>],
    left: usize,
}

impl Elems<'_, '_> {
    pub fn len(&self) -> usize {
        self.left
    }

    pub fn is_empty(&self) -> bool {
        self.left == 0
    }
}

impl<'t, 'i> Iterator for Elems<'t, 'i> {
    type Item = Json<'t, 'i>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let v = Json::at(self.rest)?;
        self.rest = &self.rest[v.nodes.len()..];
        self.left -= 1;
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

pub struct Members<'t, 'i> {
    rest: &'t [Node<'i>],
    left: usize,
}

impl Members<'_, '_> {
    pub fn len(&self) -> usize {
        self.left
    }

    pub fn is_empty(&self) -> bool {
        self.left == 0
    }
}

impl<'t, 'i> Iterator for Members<'t, 'i> {
    type Item = (&'i str, Json<'t, 'i>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let key = match self.rest.first()? {
            Node::String(s) => *s,
            _ => return None,
        };
        let v = Json::at(&self.rest[1..])?;
        self.rest = &self.rest[1 + v.nodes.len()..];
        self.left -= 1;
        Some((key, v))
    }
}

/// Why a message was not JSON we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError(pub String);

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reusable simd-json parser: keeps its scratch buffers and tape allocation across
/// messages, so a stage thread parses without allocating in steady state.
pub struct JsonParser {
    buffers: Buffers,
    tape: Option<Tape<'static>>,
    /// A copy of the message being parsed (simd-json parses in place; the caller's bytes
    /// stay as sent, for error messages).
    pub(crate) scratch: Vec<u8>,
    /// The longest input parsed since the buffers were last new: they grow with it (a
    /// 100 KB message of 50,000 values takes 3.5 MB of tape and buffers) and stay grown.
    largest: usize,
}

/// Inputs up to this long leave buffers small enough to keep however long a thread idles.
pub const KEEP_INPUT: usize = 16 * 1024;

impl Default for JsonParser {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonParser {
    pub fn new() -> Self {
        JsonParser {
            buffers: Buffers::with_max_depth(4096, MAX_DEPTH),
            tape: Some(Tape::null().reset()),
            scratch: Vec::new(),
            largest: 0,
        }
    }

    /// Whether the buffers were grown by an input longer than [`KEEP_INPUT`].
    pub fn holds_large(&self) -> bool {
        self.largest > KEEP_INPUT
    }

    /// Gives back buffers grown by a long input (an idle stage thread calls this: what a
    /// burst of big messages grew is not held until the next one, per thread).
    pub fn trim(&mut self) {
        if self.holds_large() {
            *self = JsonParser::new();
        }
    }

    /// Bytes the tape holds (tests).
    #[cfg(test)]
    fn tape_bytes(&self) -> usize {
        self.tape
            .as_ref()
            .map_or(0, |t| t.0.capacity() * std::mem::size_of::<Node>())
    }

    /// Parses `input` in place (simd-json unescapes strings into it) and hands the root
    /// value to `f`.
    pub fn parse<'a, R>(
        &mut self,
        input: &'a mut [u8],
        f: impl FnOnce(Json<'_, 'a>) -> R,
    ) -> Result<R, JsonError> {
        self.largest = self.largest.max(input.len());
        let mut tape: Tape<'a> = self.tape.take().unwrap_or_else(Tape::null).reset();
        let res = simd_json::fill_tape(input, &mut self.buffers, &mut tape);
        let out = match res {
            Ok(()) => match Json::at(&tape.0) {
                Some(root) => Ok(f(root)),
                None => Err(JsonError("empty document".into())),
            },
            Err(e) => Err(JsonError(describe(&e))),
        };
        self.tape = Some(tape.reset());
        out
    }
}

fn describe(e: &simd_json::Error) -> String {
    use simd_json::ErrorType as T;
    match e.error() {
        T::InvalidUtf8 | T::InvalidUnicodeEscape | T::InvalidUnicodeCodepoint => {
            "invalid unicode (lone surrogates are not accepted)".into()
        }
        T::DepthLimitExceeded => "nesting too deep".into(),
        _ => format!("invalid JSON at byte {}", e.index()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_trim_gives_back_what_a_long_input_grew() {
        let mut p = JsonParser::new();
        let mut small = br#"["EVENT",{"kind":1}]"#.to_vec();
        p.parse(&mut small, |_| ()).expect("small");
        let kept = p.tape_bytes();
        p.trim();
        assert!(!p.holds_large());
        assert_eq!(p.tape_bytes(), kept, "a short input's buffers are kept");

        let mut long = format!("[{}1]", "1,".repeat(40_000)).into_bytes();
        p.parse(&mut long, |root| root.array().map(|a| a.len()))
            .expect("long");
        assert!(p.holds_large());
        assert!(p.tape_bytes() > 40_000 * std::mem::size_of::<Node>());
        p.trim();
        assert!(!p.holds_large());
        assert!(
            p.tape_bytes() <= kept.max(4096),
            "tape {} after the trim",
            p.tape_bytes()
        );
        // Still a parser.
        let got = p.parse(&mut small, |root| root.array().map(|a| a.len()));
        assert_eq!(got.expect("parses"), Some(2));
    }

    #[test]
    fn walks_nested_values() {
        let mut p = JsonParser::new();
        let mut buf = br#"["A",{"k":[1,"x",{"z":null}],"n":-3},7]"#.to_vec();
        let got = p
            .parse(&mut buf, |root| {
                let mut it = root.array().expect("array");
                assert_eq!(it.len(), 3);
                assert_eq!(it.next().and_then(|v| v.as_str()), Some("A"));
                let obj = it.next().expect("obj");
                let members: Vec<_> = obj.object().expect("object").collect();
                assert_eq!(members.len(), 2);
                assert_eq!(members[0].0, "k");
                assert_eq!(members[0].1.array().map(|a| a.len()), Some(3));
                assert_eq!(members[1].1.as_u64(), None);
                it.next().and_then(|v| v.as_u64())
            })
            .expect("parse");
        assert_eq!(got, Some(7));
    }

    #[test]
    fn reuses_buffers_and_reports_errors() {
        let mut p = JsonParser::new();
        for _ in 0..3 {
            let mut bad = b"[1,".to_vec();
            assert!(p.parse(&mut bad, |_| ()).is_err());
            let mut good = b"[\"\\u00e9\"]".to_vec();
            let s = p
                .parse(&mut good, |r| {
                    r.array()
                        .and_then(|mut a| a.next())
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                })
                .expect("parse");
            assert_eq!(s.as_deref(), Some("é"));
        }
        let mut deep = vec![b'['; 100];
        deep.extend(vec![b']'; 100]);
        assert!(p.parse(&mut deep, |_| ()).is_err());
        let mut lone = br#"["\ud800"]"#.to_vec();
        assert!(p.parse(&mut lone, |_| ()).is_err());
    }
}
