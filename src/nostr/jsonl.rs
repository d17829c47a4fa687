//! One line of a JSONL event dump (`wok import`): the parse and structure checks, without
//! the id/signature checks or the store. Pure, so the fuzzer (fuzz/fuzz_targets/import_line.rs)
//! drives exactly the code `wok import` runs per line.

use super::event::peek_id;
use super::{Event, JsonParser, Limits};

/// What one input line is.
// Events are the common case; boxing them would add an allocation per line.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Line {
    /// Empty or only whitespace: skipped, not counted as a rejection.
    Blank,
    /// Longer than the limit (bytes).
    Oversize(usize),
    /// Not JSON, or a `--fried` line without its member: always reported.
    Malformed(String),
    /// JSON that is not a valid event (with its id when it has a readable one).
    Invalid { id: Option<String>, reason: String },
    /// A structurally valid event (id and signature not yet checked).
    Event(Event),
}

/// Parses one line (without its `\n`; a trailing `\r` is dropped). `fried`: the line is
/// strfry `export --fried` output and its `fried` member is stripped first. The line is
/// parsed in place (the tape parser unescapes into it).
pub fn parse_line(
    mut line: &mut [u8],
    parser: &mut JsonParser,
    limits: &Limits,
    max_line: usize,
    fried: bool,
) -> Line {
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Line::Blank;
    }
    if line.len() > max_line {
        return Line::Oversize(line.len());
    }
    if fried {
        match strip_fried(line) {
            Some(end) => line = &mut line[..end],
            None => {
                return Line::Malformed("--fried: line does not end with a \"fried\" member".into())
            }
        }
    }
    let parsed = parser.parse(line, |v| {
        Event::from_json(v, limits).map_err(|e| (peek_id(v), e))
    });
    match parsed {
        Err(e) => Line::Malformed(format!("unparseable JSON: {e}")),
        Ok(Err((id, invalid))) => Line::Invalid {
            id,
            reason: invalid.to_string(),
        },
        Ok(Ok(ev)) => Line::Event(ev),
    }
}

/// Rewrites a strfry `export --fried` line (`{…,"fried":"<hex>"}`) in place as the plain
/// event JSON and returns its new length; `None` if the member is missing or malformed.
pub fn strip_fried(line: &mut [u8]) -> Option<usize> {
    const MEMBER: &[u8] = b",\"fried\":\"";
    let end = line.len()
        - line
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
    let body = &line[..end];
    let at = body.windows(MEMBER.len()).rposition(|w| w == MEMBER)?;
    let tail = &body[at + MEMBER.len()..];
    let hex = tail.strip_suffix(b"\"}")?;
    if hex.is_empty() || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    line[at] = b'}';
    Some(at + 1)
}
