//! The one tokenizer of the search index, used when an event is indexed, when its postings
//! are removed (re-tokenized from the stored JSON, so it must be deterministic), for the
//! query and for live matching.
//!
//! Text is split into whitespace chunks; a chunk that is a URL gives its host (without
//! `www.`), the host's labels but the last, and the words of its path. Other chunks are
//! folded (NFKD, combining marks dropped, lowercase) and split at Unicode word boundaries
//! (UAX #29). Runs of characters from scripts written without spaces (Han, Hiragana,
//! Katakana, Thai, Lao, Khmer, Myanmar) give overlapping character bigrams (a lone
//! character gives itself), so any word of two or more characters is found. Segments
//! without a letter or digit (punctuation, `#`, emoji) give nothing.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// Tokens longer than this (bytes) are dropped: base64 blobs, bech32 strings and hashes
/// would only bloat the index.
pub const MAX_TOKEN_BYTES: usize = 48;

/// Bumped whenever tokens change: a stored index of another version must be rebuilt.
pub const VERSION: u32 = 1;

/// Is `c` from a script written without spaces between words?
pub fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF      // Thai, Lao
        | 0x1000..=0x109F    // Myanmar
        | 0x1780..=0x17FF    // Khmer
        | 0x2E80..=0x2FDF    // CJK radicals
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x3100..=0x312F    // Bopomofo
        | 0x31F0..=0x31FF    // Katakana extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified
        | 0xF900..=0xFAFF    // CJK compatibility
        | 0xFF66..=0xFF9F    // half-width Katakana
        | 0x20000..=0x3134F) // CJK extensions B–G
}

/// Tokens end to end in one string: no allocation per token (a note has a hundred or more).
#[derive(Debug, Default, Clone)]
pub struct TokenBuf {
    text: String,
    ends: Vec<u32>,
}

impl TokenBuf {
    /// Room for tokens of about `bytes` of text.
    pub fn with_capacity(bytes: usize) -> TokenBuf {
        TokenBuf {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(bytes / 5 + 4),
        }
    }

    pub fn push(&mut self, t: &str) {
        self.text.push_str(t);
        self.ends.push(self.text.len() as u32);
    }

    fn push_chars(&mut self, cs: &[char]) {
        self.text.extend(cs);
        self.ends.push(self.text.len() as u32);
    }

    /// An ASCII word, lowercased on the way in.
    fn push_ascii_lower(&mut self, b: &[u8]) {
        self.text
            .extend(b.iter().map(|&x| char::from(x.to_ascii_lowercase())));
        self.ends.push(self.text.len() as u32);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The tokens in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        let mut start = 0usize;
        self.ends.iter().map(move |&e| {
            let t = &self.text[start..e as usize];
            start = e as usize;
            t
        })
    }
}

/// Appends the tokens of `text` to `out`.
pub fn tokenize(text: &str, out: &mut TokenBuf) {
    let mut folded = String::new();
    let mut latin = Vec::new();
    for chunk in chunks(text) {
        if let Some(rest) = strip_scheme(chunk) {
            url(rest, out);
            continue;
        }
        if chunk.is_ascii() {
            ascii_words(chunk.as_bytes(), out);
            continue;
        }
        if fold_latin(chunk, &mut latin) {
            ascii_words(&latin, out);
            continue;
        }
        folded.clear();
        fold_into(chunk, &mut folded);
        words(&folded, out);
    }
}

/// First code point of [`LATIN`]: Latin-1 Supplement and Latin Extended-A/B.
const LATIN_FROM: u32 = 0xC0;
const LATIN_TO: u32 = 0x24F;

/// For each of U+00C0..=U+024F, the one ASCII letter `fold_into` makes of it (`é` → `e`,
/// `Ñ` → `n`), or 0 when it makes something else (`ß`, `æ`, `Ĳ` → `ij`). Computed from
/// `fold_into` itself, so the two cannot disagree.
fn latin_table() -> &'static [u8] {
    static TABLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (LATIN_FROM..=LATIN_TO)
            .map(|cp| {
                let mut f = String::new();
                if let Some(c) = char::from_u32(cp) {
                    fold_into(c.encode_utf8(&mut [0; 4]), &mut f);
                }
                match f.as_bytes() {
                    [b] if b.is_ascii_alphanumeric() => *b,
                    _ => 0,
                }
            })
            .collect()
    })
}

/// A chunk of ASCII and accented Latin letters folded to ASCII (what `fold_into` would
/// make of it, without its NFKD pass); false if some character folds to anything else.
/// European text mostly takes this path: its words then go through `ascii_words`.
fn fold_latin(chunk: &str, out: &mut Vec<u8>) -> bool {
    let table = latin_table();
    out.clear();
    for c in chunk.chars() {
        let cp = c as u32;
        if cp < 0x80 {
            out.push((cp as u8).to_ascii_lowercase());
        } else if (LATIN_FROM..=LATIN_TO).contains(&cp) {
            match table[(cp - LATIN_FROM) as usize] {
                0 => return false,
                b => out.push(b),
            }
        } else {
            return false;
        }
    }
    true
}

/// UAX #29 word classes of ASCII (no whitespace: chunks are split at it first).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// ALetter, Numeric, ExtendNumLet (`_`): any two adjacent join (WB5, 8-10, 13a-b).
    Letter,
    Digit,
    Under,
    /// MidLetter (`:`): joins letter–letter (WB6-7).
    MidLetter,
    /// MidNumLet and Single_Quote (`.`, `'`): letter–letter and digit–digit (WB6-7, 11-12).
    MidNumLet,
    /// MidNum (`,`, `;`): digit–digit (WB11-12).
    MidNum,
    Other,
}

fn class(b: u8) -> Class {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' => Class::Letter,
        b'0'..=b'9' => Class::Digit,
        b'_' => Class::Under,
        b':' => Class::MidLetter,
        b'.' | b'\'' => Class::MidNumLet,
        b',' | b';' => Class::MidNum,
        _ => Class::Other,
    }
}

/// `words` for an ASCII chunk without whitespace, without the generic UAX #29 tables, the
/// folding pass or a string per segment: the same tokens (a property test compares them),
/// several times faster on the text most notes are made of.
fn ascii_words(b: &[u8], out: &mut TokenBuf) {
    let word = |c: Class| matches!(c, Class::Letter | Class::Digit | Class::Under);
    let mut i = 0;
    while i < b.len() {
        let c = class(b[i]);
        if !word(c) {
            i += 1;
            continue;
        }
        let (start, mut alnum, mut prev) = (i, c != Class::Under, c);
        i += 1;
        while i < b.len() {
            let c = class(b[i]);
            if word(c) {
                alnum |= c != Class::Under;
                prev = c;
                i += 1;
                continue;
            }
            let next = b.get(i + 1).map_or(Class::Other, |&n| class(n));
            let joins = match c {
                Class::MidLetter => prev == Class::Letter && next == Class::Letter,
                Class::MidNumLet => {
                    (prev == Class::Letter && next == Class::Letter)
                        || (prev == Class::Digit && next == Class::Digit)
                }
                Class::MidNum => prev == Class::Digit && next == Class::Digit,
                _ => false,
            };
            if !joins {
                break;
            }
            // The middle character and the letter or digit after it.
            prev = next;
            i += 2;
        }
        if alnum && i - start <= MAX_TOKEN_BYTES {
            out.push_ascii_lower(&b[start..i]);
        }
    }
}

/// `text` folded: compatibility decomposition, combining marks dropped, lowercase.
pub fn fold_into(text: &str, out: &mut String) {
    // ASCII has nothing to decompose: most text skips the NFKD pass.
    if text.is_ascii() {
        out.extend(text.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        return;
    }
    for c in text.nfkd().filter(|c| !is_combining_mark(*c)) {
        out.extend(c.to_lowercase());
    }
}

/// The rest of a chunk that starts with `http://` or `https://` (any case) and has at least
/// eight bytes. (Compared in place: this runs for every word of every note.)
fn strip_scheme(chunk: &str) -> Option<&str> {
    let b = chunk.as_bytes();
    if b.len() < 8 || !chunk.is_char_boundary(8) {
        return None;
    }
    if b[..8].eq_ignore_ascii_case(b"https://") {
        chunk.get(8..)
    } else if b[..7].eq_ignore_ascii_case(b"http://") {
        chunk.get(7..)
    } else {
        None
    }
}

/// `str::split_whitespace` (Unicode White_Space, empty pieces skipped), with a byte test
/// for ASCII and a char decode only at non-ASCII bytes.
fn chunks(text: &str) -> impl Iterator<Item = &str> {
    let b = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        // The width of the whitespace character at `i`, or 0.
        let space_at = |i: usize| -> usize {
            match b[i] {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C => 1,
                x if x < 0x80 => 0,
                _ => match text[i..].chars().next() {
                    Some(c) if c.is_whitespace() => c.len_utf8(),
                    _ => 0,
                },
            }
        };
        while i < b.len() {
            let w = space_at(i);
            if w == 0 {
                break;
            }
            i += w;
        }
        if i >= b.len() {
            return None;
        }
        let start = i;
        while i < b.len() && space_at(i) == 0 {
            // Step over a whole character (non-ASCII bytes come in UTF-8 sequences).
            i += match b[i] {
                x if x < 0x80 => 1,
                x if x >= 0xF0 => 4,
                x if x >= 0xE0 => 3,
                _ => 2,
            };
        }
        Some(&text[start..i.min(b.len())])
    })
}

/// Host (and its labels but the TLD) and path words of a URL without its scheme.
fn url(rest: &str, out: &mut TokenBuf) {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, path) = rest.split_at(end);
    let host = host.rsplit('@').next().unwrap_or(host);
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    if !host.is_empty() && host.len() <= MAX_TOKEN_BYTES && host.is_ascii() {
        out.push(host);
        let labels: Vec<&str> = host.split('.').collect();
        if labels.len() > 1 {
            for l in &labels[..labels.len() - 1] {
                if !l.is_empty() {
                    out.push(l);
                }
            }
        }
    }
    // Path words: separators become spaces, then the ordinary rules.
    let spaced: String = path
        .chars()
        .map(|c| {
            if matches!(c, '/' | '?' | '#' | '&' | '=' | '-' | '_' | '.' | '+' | '%') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let mut folded = String::new();
    fold_into(&spaced, &mut folded);
    for w in folded.split_whitespace() {
        words(w, out);
    }
}

/// Word-boundary segments of folded text; unspaced runs as bigrams.
fn words(folded: &str, out: &mut TokenBuf) {
    let mut run: Vec<char> = Vec::new();
    for seg in folded.split_word_bounds() {
        if seg.chars().all(is_unspaced) {
            run.extend(seg.chars());
            continue;
        }
        flush_run(&mut run, out);
        if !seg.chars().any(is_unspaced) {
            if seg.chars().any(char::is_alphanumeric) {
                push_segment(seg, out);
            }
            continue;
        }
        // Mixed segments (rare: a Latin word glued to kana) split into their parts.
        let mut word = String::new();
        for c in seg.chars() {
            if is_unspaced(c) {
                push_word(&mut word, out);
                run.push(c);
            } else {
                flush_run(&mut run, out);
                if c.is_alphanumeric() || (!word.is_empty() && is_inner(c)) {
                    word.push(c);
                } else {
                    push_word(&mut word, out);
                }
            }
        }
        push_word(&mut word, out);
    }
    flush_run(&mut run, out);
}

/// Characters kept inside a word (`e.g.`, `don't`, `example.com`), trimmed at its ends.
fn is_inner(c: char) -> bool {
    matches!(c, '.' | '\'' | '’')
}

fn push_word(word: &mut String, out: &mut TokenBuf) {
    push_segment(word, out);
    word.clear();
}

fn push_segment(seg: &str, out: &mut TokenBuf) {
    let w = seg.trim_end_matches(is_inner);
    if !w.is_empty() && w.len() <= MAX_TOKEN_BYTES {
        if w.contains('’') {
            out.push(&w.replace('’', "'"));
        } else {
            out.push(w);
        }
    }
}

fn flush_run(run: &mut Vec<char>, out: &mut TokenBuf) {
    match run.len() {
        0 => {}
        1 => out.push_chars(run),
        _ => {
            for pair in run.windows(2) {
                out.push_chars(pair);
            }
        }
    }
    run.clear();
}

/// Tokens of `text`, in order (tests and queries).
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = TokenBuf::default();
    tokenize(text, &mut out);
    out.iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_case_and_diacritics() {
        assert_eq!(tokens("Café au LAIT!"), ["cafe", "au", "lait"]);
        assert_eq!(tokens("Ærø naïve résumé"), ["ærø", "naive", "resume"]);
        assert_eq!(tokens("ＮＯＳＴＲ"), ["nostr"], "full-width folds (NFKD)");
        assert_eq!(tokens("don't stop"), ["don't", "stop"]);
    }

    #[test]
    fn hashtags_emoji_punctuation() {
        assert_eq!(tokens("#nostr is 🔥🔥 great!!!"), ["nostr", "is", "great"]);
        assert!(tokens("🎉 … --- !!!").is_empty());
        assert_eq!(tokens("v1.2 3,5"), ["v1.2", "3,5"]);
    }

    #[test]
    fn cjk_and_thai_bigrams() {
        assert_eq!(tokens("東京都"), ["東京", "京都"]);
        assert_eq!(tokens("猫"), ["猫"]);
        // A query word of two characters is one of the text's bigrams.
        let text = tokens("私は東京に住んでいます");
        assert!(text.contains(&"東京".to_string()), "{text:?}");
        let thai = tokens("สวัสดีครับ");
        assert!(thai.len() > 2, "{thai:?}");
        for q in tokens("ครับ") {
            assert!(thai.contains(&q), "{q} in {thai:?}");
        }
        assert_eq!(tokens("nostrの日本"), ["nostr", "の日", "日本"]);
    }

    #[test]
    fn urls() {
        let t = tokens("see https://www.Blog.Example.com:443/posts/rust-search?x=1 now");
        assert_eq!(
            t,
            [
                "see",
                "blog.example.com",
                "blog",
                "example",
                "posts",
                "rust",
                "search",
                "x",
                "1",
                "now"
            ]
        );
        // The host typed as a word finds it.
        assert_eq!(tokens("blog.example.com"), ["blog.example.com"]);
    }

    #[test]
    fn every_latin_letter_folds_as_nfkd_does() {
        for cp in LATIN_FROM..=LATIN_TO {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            for text in [format!("x{c}y"), format!("{c}"), format!("1.{c}.2 {c}'s")] {
                let mut fast = TokenBuf::default();
                tokenize(&text, &mut fast);
                let mut slow = TokenBuf::default();
                for chunk in text.split_whitespace() {
                    let mut folded = String::new();
                    fold_into(chunk, &mut folded);
                    words(&folded, &mut slow);
                }
                assert!(
                    fast.iter().eq(slow.iter()),
                    "{text:?}: {fast:?} vs {slow:?}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn chunks_are_split_whitespace(s in "[a \t\n\u{85}\u{a0}\u{2003}\u{3000}é日🤙\u{b}\u{c}\u{1c}-]{0,24}") {
            proptest::prop_assert!(chunks(&s).eq(s.split_whitespace()), "{:?}", s);
        }

        #[test]
        fn strip_scheme_is_case_insensitive_and_exact(s in "(?i)(https?://|htt|ht)?[a-zé/:.]{0,10}") {
            let lower = s.get(..8).map(str::to_ascii_lowercase);
            let want = match lower.as_deref() {
                Some(l) if l.starts_with("https://") => s.get(8..),
                Some(l) if l.starts_with("http://") => s.get(7..),
                _ => None,
            };
            proptest::prop_assert_eq!(strip_scheme(&s), want);
        }

        /// Accented Latin folded by the table gives exactly the tokens of NFKD folding.
        #[test]
        fn latin_fast_path_matches_folding(s in "[aZé ÑüÀßæĲſǅ'.,_:1-]{0,20}") {
            let mut fast = TokenBuf::default();
            tokenize(&s, &mut fast);
            let mut slow = TokenBuf::default();
            for chunk in s.split_whitespace() {
                let mut folded = String::new();
                fold_into(chunk, &mut folded);
                words(&folded, &mut slow);
            }
            proptest::prop_assert!(fast.iter().eq(slow.iter()), "{:?} vs {:?}", fast, slow);
        }

        /// The ASCII fast path gives exactly the tokens of the general path (so an index
        /// built before it still removes cleanly).
        #[test]
        fn ascii_fast_path_matches_uax29(s in "[aZq09_.:',;#/!\"-]{0,24}") {
            let mut fast = TokenBuf::default();
            ascii_words(s.as_bytes(), &mut fast);
            let mut slow = TokenBuf::default();
            words(&s.to_ascii_lowercase(), &mut slow);
            proptest::prop_assert!(fast.iter().eq(slow.iter()), "{:?} vs {:?}", fast, slow);
        }
    }

    #[test]
    fn long_junk_dropped() {
        let blob = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(tokens(&format!("x {blob} y")), ["x", "y"]);
    }
}
