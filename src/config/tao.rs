//! A parser for the subset of taoCONFIG (taocpp/config) that strfry.conf files use.
//!
//! The result is a generic tree of [`Value`]s; every value (and every member
//! name) remembers where it came from. Assignments, merges, appends and
//! deletions are applied while parsing, in source order, so "last assignment
//! wins" falls out naturally.
//!
//! Supported: an implicit top-level object (or one wrapped in `{}`), optional
//! commas plus one trailing comma, `=` or `:` separators, `name { … }` and
//! `name [ … ]` (implicit addition = merge/append), `+=` on objects and arrays,
//! dotted names, bare/`"double"`/`'single'` quoted names, `#`, `//` and
//! `/* */` comments, JSON/JAXN values (null, booleans, unsigned/signed
//! integers, doubles incl. `+1`, `.5`, `1.`, hex, `NaN`, `Infinity`; strings
//! with JSON and JAXN escapes), and `x = delete`.
//!
//! Not supported (reported as `unsupported taoCONFIG feature: …` at the exact
//! position): references `(x)`, extensions `(env …)`, `(include …)`, `*`
//! wildcards and array indices in names, value additions `1 + 2`, `+=` on an
//! existing scalar, and binary values `$…`.
//!
//! Nesting is bounded by [`MAX_DEPTH`]; no input makes the parser panic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use super::error::{ConfigError, ErrorKind, Pos};

/// Deepest nesting of objects/arrays (and dotted-name components) accepted.
pub const MAX_DEPTH: usize = 64;

/// The members of an object, by name.
pub type Object = BTreeMap<String, Member>;

/// A parsed value and where it starts in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub pos: Pos,
}

/// An object member: the position of its name plus its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub key_pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    Null,
    Bool(bool),
    /// A non-negative integer that fits in a u64.
    UInt(u64),
    /// A negative integer (or `-0`) that fits in an i64.
    Int(i64),
    /// Any other number (fractions, exponents, integers too large for 64 bits).
    Double(f64),
    String(String),
    Array(Vec<Value>),
    Object(Object),
}

impl ValueKind {
    /// A short description used in error messages ("got string").
    pub fn describe(&self) -> &'static str {
        match self {
            ValueKind::Null => "null",
            ValueKind::Bool(_) => "boolean",
            ValueKind::UInt(_) => "integer",
            ValueKind::Int(n) if *n >= 0 => "integer",
            ValueKind::Int(_) => "negative integer",
            ValueKind::Double(_) => "floating-point number",
            ValueKind::String(_) => "string",
            ValueKind::Array(_) => "array",
            ValueKind::Object(_) => "object",
        }
    }
}

impl Value {
    /// Compact JSON-like rendering (object members sorted by name). Meant for
    /// tests and debugging output.
    pub fn render(&self) -> String {
        let mut out = String::new();
        render_into(&self.kind, &mut out);
        out
    }
}

/// Renders an object the way [`Value::render`] does.
pub fn render_object(obj: &Object) -> String {
    let mut out = String::new();
    render_object_into(obj, &mut out);
    out
}

fn render_into(kind: &ValueKind, out: &mut String) {
    match kind {
        ValueKind::Null => out.push_str("null"),
        ValueKind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        ValueKind::UInt(n) => {
            let _ = write!(out, "{n}");
        }
        ValueKind::Int(n) => {
            let _ = write!(out, "{n}");
        }
        ValueKind::Double(d) => {
            let _ = write!(out, "{d:?}");
        }
        ValueKind::String(s) => out.push_str(&quote_json(s)),
        ValueKind::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render_into(&v.kind, out);
            }
            out.push(']');
        }
        ValueKind::Object(obj) => render_object_into(obj, out),
    }
}

fn render_object_into(obj: &Object, out: &mut String) {
    out.push('{');
    for (i, (k, m)) in obj.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&quote_json(k));
        out.push(':');
        render_into(&m.value.kind, out);
    }
    out.push('}');
}

/// Quotes a string as a JSON string literal.
pub fn quote_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parses a taoCONFIG document into its top-level object.
pub fn parse(text: &str, file: &str) -> Result<Object, ConfigError> {
    let mut p = Parser {
        text,
        src: text.as_bytes(),
        i: 0,
        line: 1,
        col: 1,
        file: Arc::from(file),
    };
    // A UTF-8 byte order mark is not content.
    if text.starts_with('\u{feff}') {
        p.i = 3;
    }
    let mut root = Object::new();
    p.skip_ws()?;
    if p.peek() == Some(b'{') {
        // Classic JSON layout: the whole file is one object.
        let open = p.pos();
        p.bump();
        p.parse_members(&mut root, 0, "", Some(open))?;
        p.skip_ws()?;
        if p.peek().is_some() {
            return Err(p.err(format!(
                "unexpected {} after the closing '}}' of the top-level object",
                p.describe_here()
            )));
        }
    } else {
        p.parse_members(&mut root, 0, "", None)?;
    }
    Ok(root)
}

/// One component of a (possibly dotted) member name.
#[derive(Debug, Clone)]
struct KeyPart {
    name: String,
    pos: Pos,
}

/// Names of taoCONFIG value and member extensions, to word the error for `( … )`.
const EXTENSIONS: &[&str] = &[
    "binary",
    "cbor",
    "copy",
    "default",
    "delete",
    "env",
    "env?",
    "include",
    "include?",
    "jaxn",
    "json",
    "msgpack",
    "parse",
    "permanent",
    "print",
    "read",
    "schema",
    "setenv",
    "shell",
    "split",
    "string",
    "temporary",
    "ubjson",
];

fn is_ident_first(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_other(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn join_key(prefix: &str, parts: &[KeyPart]) -> String {
    let mut s = String::from(prefix);
    for p in parts {
        if !s.is_empty() {
            s.push('.');
        }
        s.push_str(&p.name);
    }
    s
}

struct Parser<'a> {
    text: &'a str,
    src: &'a [u8],
    i: usize,
    line: u32,
    col: u32,
    file: Arc<str>,
}

impl<'a> Parser<'a> {
    fn pos(&self) -> Pos {
        Pos::new(self.file.clone(), self.line, self.col)
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.i).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.src.get(self.i.saturating_add(n)).copied()
    }

    /// Consumes one byte, keeping line and (character) column up to date.
    fn bump(&mut self) {
        if let Some(&b) = self.src.get(self.i) {
            self.i += 1;
            if b == b'\n' {
                self.line = self.line.saturating_add(1);
                self.col = 1;
            } else if b & 0xC0 != 0x80 {
                // Count only the first byte of each UTF-8 sequence.
                self.col = self.col.saturating_add(1);
            }
        }
    }

    fn err(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(ErrorKind::Syntax, self.pos(), msg)
    }

    fn unsupported(pos: Pos, what: &str) -> ConfigError {
        ConfigError::at(
            ErrorKind::Unsupported,
            pos,
            format!("unsupported taoCONFIG feature: {what}"),
        )
    }

    fn too_deep(pos: Pos) -> ConfigError {
        ConfigError::at(
            ErrorKind::TooDeep,
            pos,
            format!("nesting too deep (more than {MAX_DEPTH} levels)"),
        )
    }

    /// Describes the character at the cursor for error messages.
    fn describe_here(&self) -> String {
        match self.text.get(self.i..).and_then(|s| s.chars().next()) {
            None => "end of input".to_string(),
            Some(c) => format!("'{}'", c.escape_debug()),
        }
    }

    fn slice(&self, from: usize, to: usize) -> Result<&'a str, ConfigError> {
        self.text
            .get(from..to)
            .ok_or_else(|| self.err("internal error: invalid text boundary"))
    }

    /// Skips whitespace and all three kinds of comments.
    fn skip_ws(&mut self) -> Result<(), ConfigError> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.bump(),
                Some(b'#') => self.skip_line(),
                Some(b'/') => match self.peek_at(1) {
                    Some(b'/') => self.skip_line(),
                    Some(b'*') => {
                        let start = self.pos();
                        self.bump();
                        self.bump();
                        loop {
                            match self.peek() {
                                None => {
                                    return Err(ConfigError::at(
                                        ErrorKind::Syntax,
                                        start,
                                        "unterminated /* comment",
                                    ))
                                }
                                Some(b'*') if self.peek_at(1) == Some(b'/') => {
                                    self.bump();
                                    self.bump();
                                    break;
                                }
                                Some(_) => self.bump(),
                            }
                        }
                    }
                    _ => return Ok(()),
                },
                _ => return Ok(()),
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(b) = self.peek() {
            if b == b'\n' {
                break;
            }
            self.bump();
        }
    }

    /// Reads `[A-Za-z_][A-Za-z0-9_-]*` (the caller checked the first byte).
    fn read_ident(&mut self) -> Result<&'a str, ConfigError> {
        let start = self.i;
        while let Some(b) = self.peek() {
            if is_ident_other(b) {
                self.bump();
            } else {
                break;
            }
        }
        self.slice(start, self.i)
    }

    /// True (and consumed) if the cursor is at `word` not followed by a name character.
    fn eat_keyword(&mut self, word: &str) -> bool {
        let w = word.as_bytes();
        let end = self.i.saturating_add(w.len());
        if self.src.get(self.i..end) != Some(w) {
            return false;
        }
        if self.src.get(end).is_some_and(|&b| is_ident_other(b)) {
            return false;
        }
        for _ in 0..w.len() {
            self.bump();
        }
        true
    }

    /// Builds the error for `(` where a member or value was expected.
    fn paren_error(&self) -> ConfigError {
        let pos = self.pos();
        let rest = self.text.get(self.i + 1..).unwrap_or("");
        let rest = rest.trim_start_matches([' ', '\t']);
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '?' | '.'))
            .take(40)
            .collect();
        if EXTENSIONS.contains(&word.as_str()) {
            Self::unsupported(pos, &format!("extension ({word} ...)"))
        } else if word.is_empty() {
            Self::unsupported(pos, "reference or extension in parentheses")
        } else {
            Self::unsupported(pos, &format!("reference ({word})"))
        }
    }

    /// Parses members into `obj` until `}` (if `open` is given) or end of input.
    /// `depth` is the nesting depth of `obj`; `ctx` its dotted name.
    fn parse_members(
        &mut self,
        obj: &mut Object,
        depth: usize,
        ctx: &str,
        open: Option<Pos>,
    ) -> Result<(), ConfigError> {
        loop {
            self.skip_ws()?;
            match (self.peek(), &open) {
                (None, None) => return Ok(()),
                (None, Some(open)) => {
                    return Err(self.err(format!(
                        "unexpected end of input: missing '}}' for the object opened at line {}, column {}",
                        open.line, open.col
                    )))
                }
                (Some(b'}'), Some(_)) => {
                    self.bump();
                    return Ok(());
                }
                _ => {}
            }
            self.parse_member(obj, depth, ctx)?;
            self.skip_ws()?;
            if self.peek() == Some(b',') {
                self.bump();
            }
        }
    }

    fn parse_key(&mut self) -> Result<Vec<KeyPart>, ConfigError> {
        let mut parts: Vec<KeyPart> = Vec::new();
        loop {
            let pos = self.pos();
            let name = match self.peek() {
                Some(b) if is_ident_first(b) => self.read_ident()?.to_string(),
                Some(b'"' | b'\'') => self.parse_string()?,
                Some(b'*') => return Err(Self::unsupported(pos, "'*' wildcard in a member name")),
                Some(b) if !parts.is_empty() && b.is_ascii_digit() => {
                    return Err(Self::unsupported(
                        pos,
                        "array index in a dotted member name",
                    ))
                }
                Some(b'-') if !parts.is_empty() => {
                    return Err(Self::unsupported(pos, "'-' in a dotted member name"))
                }
                _ => {
                    return Err(self.err(format!(
                        "expected a member name, found {}",
                        self.describe_here()
                    )))
                }
            };
            parts.push(KeyPart { name, pos });
            if parts.len() > MAX_DEPTH {
                return Err(Self::too_deep(self.pos()));
            }
            if self.peek() == Some(b'.') {
                self.bump();
            } else {
                return Ok(parts);
            }
        }
    }

    fn parse_member(
        &mut self,
        obj: &mut Object,
        depth: usize,
        ctx: &str,
    ) -> Result<(), ConfigError> {
        if self.peek() == Some(b'(') {
            return Err(self.paren_error());
        }
        let start = self.pos();
        let parts = self.parse_key()?;
        let target_depth = depth.saturating_add(parts.len());
        if target_depth > MAX_DEPTH {
            return Err(Self::too_deep(start));
        }
        self.skip_ws()?;
        match self.peek() {
            Some(b'=' | b':') => {
                self.bump();
                self.skip_ws()?;
                if self.eat_keyword("delete") {
                    return delete(obj, &parts, ctx);
                }
                let child_ctx = join_key(ctx, &parts);
                let value = self.parse_value(target_depth, &child_ctx)?;
                self.check_no_addition()?;
                let (parent, last) = parent_mut(obj, &parts, ctx)?;
                parent.insert(
                    last.name.clone(),
                    Member {
                        key_pos: last.pos.clone(),
                        value,
                    },
                );
                Ok(())
            }
            Some(b'+') if self.peek_at(1) == Some(b'=') => {
                self.bump();
                self.bump();
                self.skip_ws()?;
                self.append(obj, &parts, target_depth, ctx)
            }
            Some(b'{' | b'[') => self.append(obj, &parts, target_depth, ctx),
            _ => Err(self.err(format!(
                "expected '=', ':', '+=' or '{{' after member name '{}', found {}",
                join_key(ctx, &parts),
                self.describe_here()
            ))),
        }
    }

    /// `name += value`, `name { … }`, `name [ … ]`: merge objects, append arrays.
    fn append(
        &mut self,
        obj: &mut Object,
        parts: &[KeyPart],
        target_depth: usize,
        ctx: &str,
    ) -> Result<(), ConfigError> {
        let child_ctx = join_key(ctx, parts);
        let vpos = self.pos();
        match self.peek() {
            Some(b'{') => {
                self.bump();
                let (parent, last) = parent_mut(obj, parts, ctx)?;
                let member = parent.entry(last.name.clone()).or_insert_with(|| Member {
                    key_pos: last.pos.clone(),
                    value: Value {
                        kind: ValueKind::Object(Object::new()),
                        pos: vpos.clone(),
                    },
                });
                match &mut member.value.kind {
                    ValueKind::Object(o) => {
                        self.parse_members(o, target_depth, &child_ctx, Some(vpos))?
                    }
                    other => {
                        return Err(ConfigError::at(
                            ErrorKind::Syntax,
                            vpos,
                            format!(
                                "cannot merge an object into '{child_ctx}', which is {}",
                                with_article(other.describe())
                            ),
                        ))
                    }
                }
            }
            Some(b'[') => {
                self.bump();
                let (parent, last) = parent_mut(obj, parts, ctx)?;
                let member = parent.entry(last.name.clone()).or_insert_with(|| Member {
                    key_pos: last.pos.clone(),
                    value: Value {
                        kind: ValueKind::Array(Vec::new()),
                        pos: vpos.clone(),
                    },
                });
                match &mut member.value.kind {
                    ValueKind::Array(items) => {
                        self.parse_elements(items, target_depth, &child_ctx, vpos)?
                    }
                    other => {
                        return Err(ConfigError::at(
                            ErrorKind::Syntax,
                            vpos,
                            format!(
                                "cannot append an array to '{child_ctx}', which is {}",
                                with_article(other.describe())
                            ),
                        ))
                    }
                }
            }
            _ => {
                let value = self.parse_value(target_depth, &child_ctx)?;
                self.check_no_addition()?;
                let (parent, last) = parent_mut(obj, parts, ctx)?;
                if let Some(existing) = parent.get(&last.name) {
                    return Err(Self::unsupported(
                        vpos,
                        &format!(
                            "'+=' adding {} to '{child_ctx}', which is already {}",
                            with_article(value.kind.describe()),
                            with_article(existing.value.kind.describe())
                        ),
                    ));
                }
                // Adding to nothing is the same as assigning.
                parent.insert(
                    last.name.clone(),
                    Member {
                        key_pos: last.pos.clone(),
                        value,
                    },
                );
            }
        }
        self.check_no_addition()
    }

    /// After a value: a `+` (not `+=`) means a taoCONFIG value addition.
    fn check_no_addition(&mut self) -> Result<(), ConfigError> {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.bump();
        }
        if self.peek() == Some(b'+') && self.peek_at(1) != Some(b'=') {
            return Err(Self::unsupported(self.pos(), "value addition with '+'"));
        }
        Ok(())
    }

    /// Parses array elements after `[` up to and including `]`.
    fn parse_elements(
        &mut self,
        items: &mut Vec<Value>,
        depth: usize,
        ctx: &str,
        open: Pos,
    ) -> Result<(), ConfigError> {
        loop {
            self.skip_ws()?;
            match self.peek() {
                None => {
                    return Err(self.err(format!(
                        "unexpected end of input: missing ']' for the array opened at line {}, column {}",
                        open.line, open.col
                    )))
                }
                Some(b']') => {
                    self.bump();
                    return Ok(());
                }
                _ => {}
            }
            let v = self.parse_value(depth.saturating_add(1), ctx)?;
            self.check_no_addition()?;
            items.push(v);
            self.skip_ws()?;
            if self.peek() == Some(b',') {
                self.bump();
            }
        }
    }

    /// Parses one value that sits at nesting depth `depth`.
    fn parse_value(&mut self, depth: usize, ctx: &str) -> Result<Value, ConfigError> {
        let pos = self.pos();
        if depth > MAX_DEPTH {
            return Err(Self::too_deep(pos));
        }
        let kind = match self.peek() {
            None => return Err(self.err("expected a value, found end of input")),
            Some(b'{') => {
                self.bump();
                let mut obj = Object::new();
                self.parse_members(&mut obj, depth, ctx, Some(pos.clone()))?;
                ValueKind::Object(obj)
            }
            Some(b'[') => {
                self.bump();
                let mut items = Vec::new();
                self.parse_elements(&mut items, depth, ctx, pos.clone())?;
                ValueKind::Array(items)
            }
            Some(b'"' | b'\'') => ValueKind::String(self.parse_string()?),
            Some(b'(') => return Err(self.paren_error()),
            Some(b'$') => return Err(Self::unsupported(pos, "binary value ($...)")),
            Some(b'-' | b'+' | b'.' | b'0'..=b'9') => self.parse_number()?,
            Some(b) if is_ident_first(b) => {
                let word = self.read_ident()?;
                match word {
                    "null" => ValueKind::Null,
                    "true" => ValueKind::Bool(true),
                    "false" => ValueKind::Bool(false),
                    "NaN" => ValueKind::Double(f64::NAN),
                    "Infinity" => ValueKind::Double(f64::INFINITY),
                    "delete" => {
                        return Err(ConfigError::at(
                            ErrorKind::Syntax,
                            pos,
                            "'delete' is only allowed directly after '=' or ':'",
                        ))
                    }
                    _ => {
                        return Err(ConfigError::at(
                            ErrorKind::Syntax,
                            pos,
                            format!("expected a value, found '{word}' (strings must be quoted)"),
                        ))
                    }
                }
            }
            Some(_) => {
                return Err(self.err(format!("expected a value, found {}", self.describe_here())))
            }
        };
        Ok(Value { kind, pos })
    }

    fn parse_number(&mut self) -> Result<ValueKind, ConfigError> {
        let pos = self.pos();
        let start = self.i;
        let bad = |msg: &str| ConfigError::at(ErrorKind::Syntax, pos.clone(), msg.to_string());
        let neg = match self.peek() {
            Some(b'-') => {
                self.bump();
                true
            }
            Some(b'+') => {
                self.bump();
                false
            }
            _ => false,
        };
        if self.eat_keyword("Infinity") {
            return Ok(ValueKind::Double(if neg {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }));
        }
        if self.eat_keyword("NaN") {
            return Ok(ValueKind::Double(f64::NAN));
        }
        if self.peek() == Some(b'0') && matches!(self.peek_at(1), Some(b'x' | b'X')) {
            self.bump();
            self.bump();
            let mut v: u64 = 0;
            let mut n = 0usize;
            while let Some(b) = self.peek() {
                let d = match b {
                    b'0'..=b'9' => b - b'0',
                    b'a'..=b'f' => b - b'a' + 10,
                    b'A'..=b'F' => b - b'A' + 10,
                    _ => break,
                };
                v = v
                    .checked_mul(16)
                    .and_then(|v| v.checked_add(u64::from(d)))
                    .ok_or_else(|| bad("hexadecimal number too large"))?;
                n += 1;
                self.bump();
            }
            if n == 0 {
                return Err(bad("invalid number: expected hex digits after '0x'"));
            }
            self.check_number_end(&pos)?;
            return if !neg {
                Ok(ValueKind::UInt(v))
            } else if v <= i64::MAX as u64 {
                Ok(ValueKind::Int(-(v as i64)))
            } else if v == i64::MAX as u64 + 1 {
                Ok(ValueKind::Int(i64::MIN))
            } else {
                Err(bad("hexadecimal number too small"))
            };
        }
        let int_start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.bump();
        }
        let int_digits = self.i - int_start;
        if int_digits > 1 && self.src.get(int_start) == Some(&b'0') {
            return Err(bad("invalid number: leading zeros are not allowed"));
        }
        let mut is_float = false;
        let mut frac_digits = 0;
        if self.peek() == Some(b'.') {
            is_float = true;
            self.bump();
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.bump();
                frac_digits += 1;
            }
        }
        if int_digits == 0 && frac_digits == 0 {
            return Err(bad("invalid number"));
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            is_float = true;
            self.bump();
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.bump();
            }
            let exp_start = self.i;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.bump();
            }
            if self.i == exp_start {
                return Err(bad("invalid number: missing exponent digits"));
            }
        }
        self.check_number_end(&pos)?;
        let text = self.slice(start, self.i)?;
        if !is_float {
            let digits = self.slice(int_start, self.i)?;
            if let Ok(v) = digits.parse::<u64>() {
                if !neg {
                    return Ok(ValueKind::UInt(v));
                }
                if v <= i64::MAX as u64 {
                    return Ok(ValueKind::Int(-(v as i64)));
                }
                if v == i64::MAX as u64 + 1 {
                    return Ok(ValueKind::Int(i64::MIN));
                }
            }
            // Too large for 64 bits: fall through to a double, as JSON parsers do.
        }
        text.parse::<f64>()
            .map(ValueKind::Double)
            .map_err(|_| bad("invalid number"))
    }

    /// A number must not run straight into a name or another dot (`0.0.0.0`).
    fn check_number_end(&self, pos: &Pos) -> Result<(), ConfigError> {
        match self.peek() {
            Some(b) if is_ident_other(b) || b == b'.' => Err(ConfigError::at(
                ErrorKind::Syntax,
                pos.clone(),
                format!(
                    "invalid number: unexpected {} (quote the value if it is meant to be a string)",
                    self.describe_here()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Parses a `"…"` or `'…'` string with JSON and JAXN escapes.
    fn parse_string(&mut self) -> Result<String, ConfigError> {
        let start = self.pos();
        let quote = match self.peek() {
            Some(q @ (b'"' | b'\'')) => q,
            _ => return Err(self.err("expected a string")),
        };
        self.bump();
        let mut out = String::new();
        let mut run = self.i;
        loop {
            match self.peek() {
                None => {
                    return Err(ConfigError::at(
                        ErrorKind::Syntax,
                        start,
                        "unterminated string",
                    ))
                }
                Some(b) if b == quote => {
                    out.push_str(self.slice(run, self.i)?);
                    self.bump();
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(self.slice(run, self.i)?);
                    self.bump();
                    self.parse_escape(&mut out)?;
                    run = self.i;
                }
                Some(b'\n' | b'\r') => {
                    return Err(ConfigError::at(
                        ErrorKind::Syntax,
                        start,
                        "unterminated string: line ended before the closing quote",
                    ))
                }
                Some(b) if b < 0x20 => {
                    return Err(self.err("control character in string (use an escape sequence)"))
                }
                Some(_) => self.bump(),
            }
        }
    }

    /// Parses an escape; the cursor is just past the backslash.
    fn parse_escape(&mut self, out: &mut String) -> Result<(), ConfigError> {
        let pos = self.pos();
        let Some(b) = self.peek() else {
            return Err(self.err("unterminated string"));
        };
        let simple = match b {
            b'"' => Some('"'),
            b'\'' => Some('\''),
            b'\\' => Some('\\'),
            b'/' => Some('/'),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            b'n' => Some('\n'),
            b'r' => Some('\r'),
            b't' => Some('\t'),
            b'v' => Some('\u{b}'),
            b'0' => Some('\0'),
            _ => None,
        };
        if let Some(c) = simple {
            self.bump();
            out.push(c);
            return Ok(());
        }
        if b != b'u' {
            return Err(ConfigError::at(
                ErrorKind::Syntax,
                pos,
                format!(
                    "invalid escape sequence '\\{}'",
                    self.describe_here().trim_matches('\'')
                ),
            ));
        }
        self.bump();
        let bad_unicode =
            |msg: &str| ConfigError::at(ErrorKind::Syntax, pos.clone(), msg.to_string());
        if self.peek() == Some(b'{') {
            // JAXN \u{X...}
            self.bump();
            let mut cp: u32 = 0;
            let mut n = 0;
            loop {
                match self.peek() {
                    Some(b'}') if n > 0 => {
                        self.bump();
                        break;
                    }
                    Some(h) if h.is_ascii_hexdigit() && n < 6 => {
                        cp = cp * 16 + hex_val(h);
                        n += 1;
                        self.bump();
                    }
                    _ => return Err(bad_unicode("invalid \\u{...} escape")),
                }
            }
            let c = char::from_u32(cp)
                .ok_or_else(|| bad_unicode("invalid Unicode code point in \\u{...} escape"))?;
            out.push(c);
            return Ok(());
        }
        let hi = self
            .read_hex4()
            .ok_or_else(|| bad_unicode("expected 4 hex digits after \\u"))?;
        let cp = if (0xD800..0xDC00).contains(&hi) {
            if self.peek() != Some(b'\\') || self.peek_at(1) != Some(b'u') {
                return Err(bad_unicode("unpaired surrogate in \\u escape"));
            }
            self.bump();
            self.bump();
            let lo = self
                .read_hex4()
                .ok_or_else(|| bad_unicode("expected 4 hex digits after \\u"))?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(bad_unicode("unpaired surrogate in \\u escape"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else if (0xDC00..0xE000).contains(&hi) {
            return Err(bad_unicode("unpaired surrogate in \\u escape"));
        } else {
            hi
        };
        let c = char::from_u32(cp).ok_or_else(|| bad_unicode("invalid \\u escape"))?;
        out.push(c);
        Ok(())
    }

    fn read_hex4(&mut self) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..4 {
            let h = self.peek().filter(u8::is_ascii_hexdigit)?;
            v = v * 16 + hex_val(h);
            self.bump();
        }
        Some(v)
    }
}

/// "integer" -> "an integer", "string" -> "a string", "null" -> "null".
pub(crate) fn with_article(desc: &str) -> String {
    match desc.as_bytes().first() {
        _ if desc == "null" => desc.to_string(),
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => format!("an {desc}"),
        _ => format!("a {desc}"),
    }
}

fn hex_val(h: u8) -> u32 {
    match h {
        b'0'..=b'9' => u32::from(h - b'0'),
        b'a'..=b'f' => u32::from(h - b'a' + 10),
        b'A'..=b'F' => u32::from(h - b'A' + 10),
        _ => 0,
    }
}

/// Walks to the object that holds the last component of `parts`, creating
/// missing intermediate objects. Returns that object and the last component.
fn parent_mut<'t, 'k>(
    obj: &'t mut Object,
    parts: &'k [KeyPart],
    ctx: &str,
) -> Result<(&'t mut Object, &'k KeyPart), ConfigError> {
    let Some((last, parents)) = parts.split_last() else {
        return Err(ConfigError::new(ErrorKind::Syntax, "empty member name"));
    };
    let mut cur = obj;
    for (i, p) in parents.iter().enumerate() {
        let m = cur.entry(p.name.clone()).or_insert_with(|| Member {
            key_pos: p.pos.clone(),
            value: Value {
                kind: ValueKind::Object(Object::new()),
                pos: p.pos.clone(),
            },
        });
        match &mut m.value.kind {
            ValueKind::Object(o) => cur = o,
            other => {
                return Err(ConfigError::at(
                    ErrorKind::Syntax,
                    p.pos.clone(),
                    format!(
                        "'{}' is {}, not an object, so it cannot have a member '{}'",
                        join_key(ctx, &parts[..=i]),
                        with_article(other.describe()),
                        parts.get(i + 1).map_or("", |k| k.name.as_str())
                    ),
                ))
            }
        }
    }
    Ok((cur, last))
}

/// `name = delete`: removes the member if it exists.
fn delete(obj: &mut Object, parts: &[KeyPart], ctx: &str) -> Result<(), ConfigError> {
    let Some((last, parents)) = parts.split_last() else {
        return Ok(());
    };
    let mut cur = obj;
    for (i, p) in parents.iter().enumerate() {
        match cur.get_mut(&p.name).map(|m| &mut m.value.kind) {
            None => return Ok(()),
            Some(ValueKind::Object(o)) => cur = o,
            Some(other) => {
                return Err(ConfigError::at(
                    ErrorKind::Syntax,
                    p.pos.clone(),
                    format!(
                        "'{}' is {}, not an object, so it has no member '{}' to delete",
                        join_key(ctx, &parts[..=i]),
                        with_article(other.describe()),
                        parts.get(i + 1).map_or("", |k| k.name.as_str())
                    ),
                ))
            }
        }
    }
    cur.remove(&last.name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> String {
        match parse(text, "t.conf") {
            Ok(o) => render_object(&o),
            Err(e) => panic!("unexpected error for {text:?}: {e}"),
        }
    }

    fn e(text: &str) -> ConfigError {
        match parse(text, "t.conf") {
            Ok(o) => panic!("expected an error for {text:?}, got {}", render_object(&o)),
            Err(e) => e,
        }
    }

    fn at(err: &ConfigError) -> (u32, u32) {
        err.pos.as_ref().map_or((0, 0), |p| (p.line, p.col))
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(p(""), "{}");
        assert_eq!(p("   \n\t\r\n"), "{}");
        assert_eq!(p("{}"), "{}");
        assert_eq!(p("# only a comment"), "{}");
        assert_eq!(p("\u{feff}a = 1"), r#"{"a":1}"#);
    }

    #[test]
    fn implicit_and_explicit_top_level_object() {
        assert_eq!(p("a = 1\nb = 2"), r#"{"a":1,"b":2}"#);
        assert_eq!(p("{ a = 1, b = 2 }"), r#"{"a":1,"b":2}"#);
        assert_eq!(
            p(" \n{\"a\": 1, \"b\": [true, null]}\n"),
            r#"{"a":1,"b":[true,null]}"#
        );
        assert_eq!(e("{ a = 1 } b = 2").kind, ErrorKind::Syntax);
        assert_eq!(e("{ a = 1").kind, ErrorKind::Syntax);
        assert_eq!(e("a = 1 }").kind, ErrorKind::Syntax);
    }

    #[test]
    fn separators_and_commas() {
        assert_eq!(p("a: 1, b = 2,"), r#"{"a":1,"b":2}"#);
        assert_eq!(p("a=1 b=2 c:3"), r#"{"a":1,"b":2,"c":3}"#);
        assert_eq!(p("x { a = 1, }"), r#"{"x":{"a":1}}"#);
        assert_eq!(p("x = [1, 2, 3,]"), r#"{"x":[1,2,3]}"#);
        assert_eq!(p("x = [1 2 3]"), r#"{"x":[1,2,3]}"#);
        assert_eq!(p("x = [1, 2 3]"), r#"{"x":[1,2,3]}"#);
        assert_eq!(p("x = []"), r#"{"x":[]}"#);
        // Only one comma, and never a leading one.
        assert_eq!(at(&e("a = 1,, b = 2")), (1, 7));
        assert_eq!(at(&e("x = [1,,2]")), (1, 8));
        assert_eq!(at(&e("x = [,]")), (1, 6));
        assert_eq!(at(&e("{,}")), (1, 2));
        assert_eq!(at(&e("a 1")), (1, 3));
    }

    #[test]
    fn member_names() {
        assert_eq!(
            p(r#""a b" = 1 'c.d' = 2 e_f-g = 3"#),
            r#"{"a b":1,"c.d":2,"e_f-g":3}"#
        );
        assert_eq!(
            p("null = 1 true = 2 false = 3"),
            r#"{"false":3,"null":1,"true":2}"#
        );
        assert_eq!(p(r#""\u0041" = 1"#), r#"{"A":1}"#);
        assert_eq!(e("1a = 2").kind, ErrorKind::Syntax);
        assert_eq!(e("-a = 2").kind, ErrorKind::Syntax);
    }

    #[test]
    fn comments_of_each_kind() {
        let text = "# hash\na = 1 # trailing\n// slashes\nb = 2 // trailing\n/* block\n spanning */ c = /* inline */ 3\nd = \"# not a comment // nor /* this */\"";
        assert_eq!(
            p(text),
            r##"{"a":1,"b":2,"c":3,"d":"# not a comment // nor /* this */"}"##
        );
        assert_eq!(
            p("a = [1 # one\n 2 // two\n /* three */ 3]"),
            r#"{"a":[1,2,3]}"#
        );
        assert_eq!(p("a /* x */ = /* y */ 1"), r#"{"a":1}"#);
        let err = e("a = 1\n  /* never closed");
        assert_eq!(at(&err), (2, 3));
        assert!(err.message.contains("unterminated"));
        assert_eq!(at(&e("a = 1 / 2")), (1, 7));
    }

    #[test]
    fn blocks_merge() {
        assert_eq!(p("r { a = 1 } r { b = 2 }"), r#"{"r":{"a":1,"b":2}}"#);
        assert_eq!(p("r { a = 1 b = 2 } r { a = 3 }"), r#"{"r":{"a":3,"b":2}}"#);
        assert_eq!(
            p("r { s { a = 1 } } r { s { b = 2 } }"),
            r#"{"r":{"s":{"a":1,"b":2}}}"#
        );
        // '=' with an object replaces, the block form merges.
        assert_eq!(p("r { a = 1 } r = { b = 2 }"), r#"{"r":{"b":2}}"#);
        assert_eq!(p("r = { a = 1 } r { b = 2 }"), r#"{"r":{"a":1,"b":2}}"#);
        assert_eq!(
            p("r { s = { a = 1 } } r { s = { b = 2 } }"),
            r#"{"r":{"s":{"b":2}}}"#
        );
        assert_eq!(e("r = 1 r { a = 2 }").kind, ErrorKind::Syntax);
    }

    #[test]
    fn dotted_names() {
        assert_eq!(p("a.b.c = 1"), r#"{"a":{"b":{"c":1}}}"#);
        assert_eq!(p("a { b = 1 } a.c = 2 a.b = 3"), r#"{"a":{"b":3,"c":2}}"#);
        assert_eq!(
            p("a.b { c = 1 } a { b { d = 2 } }"),
            r#"{"a":{"b":{"c":1,"d":2}}}"#
        );
        assert_eq!(p(r#"a."x.y".'z' = 1"#), r#"{"a":{"x.y":{"z":1}}}"#);
        assert_eq!(
            p("relay { info { name = \"x\" } } relay.info.description = \"y\""),
            r#"{"relay":{"info":{"description":"y","name":"x"}}}"#
        );
        let err = e("a = 1\na.b = 2");
        assert_eq!(at(&err), (2, 1));
        assert!(
            err.message.contains("'a' is an integer, not an object"),
            "{}",
            err.message
        );
        // No whitespace around the dot.
        assert_eq!(e("a . b = 1").kind, ErrorKind::Syntax);
    }

    #[test]
    fn plus_equals_and_implicit_addition() {
        assert_eq!(p("a = [1] a += [2 3] a [4]"), r#"{"a":[1,2,3,4]}"#);
        assert_eq!(p("a [1] a [2]"), r#"{"a":[1,2]}"#);
        assert_eq!(p("o = { x = 1 } o += { y = 2 }"), r#"{"o":{"x":1,"y":2}}"#);
        assert_eq!(p("o { l = [1] } o { l += [2] }"), r#"{"o":{"l":[1,2]}}"#);
        // Adding to nothing assigns, including scalars.
        assert_eq!(p("n += 5 s += 'x'"), r#"{"n":5,"s":"x"}"#);
        assert_eq!(p("a = [1] a = delete a += [2]"), r#"{"a":[2]}"#);
        assert_eq!(e("a = [1] a += { b = 1 }").kind, ErrorKind::Syntax);
        assert_eq!(e("a = { } a += [1]").kind, ErrorKind::Syntax);
        let err = e("n = 1\nn += 2");
        assert_eq!(err.kind, ErrorKind::Unsupported);
        assert_eq!(at(&err), (2, 6));
    }

    #[test]
    fn delete_and_last_assignment_wins() {
        assert_eq!(p("a = 1 a = 2 a = 'three'"), r#"{"a":"three"}"#);
        assert_eq!(p("a = 1 b = 2 a = delete"), r#"{"b":2}"#);
        assert_eq!(p("a { b = 1 c = 2 } a.b = delete"), r#"{"a":{"c":2}}"#);
        assert_eq!(p("a = delete x.y.z = delete"), "{}");
        assert_eq!(p("a = delete a = 5"), r#"{"a":5}"#);
        assert_eq!(p("deleted = 1 deleteme = delete"), r#"{"deleted":1}"#);
        assert_eq!(e("a = [delete]").kind, ErrorKind::Syntax);
        assert_eq!(e("a = 1 a.b = delete").kind, ErrorKind::Syntax);
    }

    #[test]
    fn literals_and_numbers() {
        assert_eq!(
            p("a = null b = true c = false"),
            r#"{"a":null,"b":true,"c":false}"#
        );
        assert_eq!(
            p("a = 0 b = 18446744073709551615"),
            r#"{"a":0,"b":18446744073709551615}"#
        );
        assert_eq!(
            p("a = -1 b = -9223372036854775808"),
            r#"{"a":-1,"b":-9223372036854775808}"#
        );
        assert_eq!(
            p("a = 18446744073709551616"),
            r#"{"a":1.8446744073709552e19}"#
        );
        assert_eq!(
            p("a = 1.5 b = -2.5e3 c = 1E-2 d = 0.0"),
            r#"{"a":1.5,"b":-2500.0,"c":0.01,"d":0.0}"#
        );
        assert_eq!(
            p("a = +7 b = .5 c = 5. d = 0x1F e = -0x10"),
            r#"{"a":7,"b":0.5,"c":5.0,"d":31,"e":-16}"#
        );
        assert_eq!(p("a = Infinity b = -Infinity"), r#"{"a":inf,"b":-inf}"#);
        assert!(matches!(
            parse("a = NaN", "t").ok().and_then(|o| o.get("a").map(|m| m.value.kind.clone())),
            Some(ValueKind::Double(d)) if d.is_nan()
        ));
        assert!(matches!(
            parse("a = -0", "t")
                .ok()
                .and_then(|o| o.get("a").map(|m| m.value.kind.clone())),
            Some(ValueKind::Int(0))
        ));
        for bad in [
            "a = 01",
            "a = 1.2.3",
            "a = 0.0.0.0",
            "a = 1e",
            "a = -",
            "a = .",
            "a = 0x",
            "a = 12abc",
            "a = tru",
            "a = True",
            "a = 0x1ffffffffffffffff",
        ] {
            let err = e(bad);
            assert_eq!(err.kind, ErrorKind::Syntax, "{bad}");
            assert_eq!(at(&err), (1, 5), "{bad}: {err}");
        }
        assert!(e("bind = 0.0.0.0").message.contains("quote the value"));
        assert!(e("bind = localhost").message.contains("must be quoted"));
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(p(r#"a = "x\"y\\z\/""#), r#"{"a":"x\"y\\z/"}"#);
        assert_eq!(p(r#"a = "\b\f\n\r\t""#), r#"{"a":"\u0008\u000c\n\r\t"}"#);
        assert_eq!(p(r#"a = "\u00e9\u20AC""#), r#"{"a":"é€"}"#);
        assert_eq!(p(r#"a = "\ud83d\ude00""#), r#"{"a":"😀"}"#);
        assert_eq!(p(r#"a = "\u{1F600}\u{41}""#), r#"{"a":"😀A"}"#);
        assert_eq!(p(r#"a = 'it\'s "quoted"'"#), r#"{"a":"it's \"quoted\""}"#);
        assert_eq!(p(r#"a = '\v\0'"#), r#"{"a":"\u000b\u0000"}"#);
        assert_eq!(p("a = \"héllo wörld ✓\""), r#"{"a":"héllo wörld ✓"}"#);
        assert_eq!(p("a = ''"), r#"{"a":""}"#);
        for (bad, col) in [
            (r#"a = "\ud83d""#, 7),
            (r#"a = "\ude00""#, 7),
            (r#"a = "\ud83d\u0041""#, 7),
            (r#"a = "\u12""#, 7),
            (r#"a = "\q""#, 7),
            (r#"a = "\u{110000}""#, 7),
            (r#"a = "\u{D800}""#, 7),
            (r#"a = "\u{}""#, 7),
        ] {
            let err = e(bad);
            assert_eq!(at(&err), (1, col), "{bad}: {err}");
        }
        let err = e("a = 1\nb = \"open\nc = 2");
        assert_eq!(at(&err), (2, 5));
        assert!(err.message.contains("unterminated"));
        assert_eq!(at(&e("a = 'open")), (1, 5));
        assert_eq!(at(&e("a = \"x\u{1}y\"")), (1, 7));
    }

    #[test]
    fn arrays_and_nested_values() {
        assert_eq!(
            p("a = [[1, [2]], {x = 1, y: [true]}, 'z']"),
            r#"{"a":[[1,[2]],{"x":1,"y":[true]},"z"]}"#
        );
        assert_eq!(p("a = [{ b.c = 1 }]"), r#"{"a":[{"b":{"c":1}}]}"#);
        assert_eq!(p("a = { b = { c = { } } }"), r#"{"a":{"b":{"c":{}}}}"#);
        let err = e("a = [1, 2\n");
        assert!(err.message.contains("missing ']'"), "{}", err.message);
        assert_eq!(at(&err), (2, 1));
        let err = e("a {\n b = 1\n");
        assert!(err.message.contains("line 1, column 3"), "{}", err.message);
    }

    #[test]
    fn positions_are_recorded() {
        let root =
            parse("a = 1\n  b {\n    c = 'x'\n  }\n\td = [ 7 ]", "f.conf").unwrap_or_default();
        let a = &root["a"];
        assert_eq!(
            (
                a.key_pos.line,
                a.key_pos.col,
                a.value.pos.line,
                a.value.pos.col
            ),
            (1, 1, 1, 5)
        );
        let b = &root["b"];
        assert_eq!((b.key_pos.line, b.key_pos.col, b.value.pos.col), (2, 3, 5));
        let ValueKind::Object(bo) = &b.value.kind else {
            panic!("b is not an object")
        };
        let c = &bo["c"];
        assert_eq!(
            (
                c.key_pos.line,
                c.key_pos.col,
                c.value.pos.line,
                c.value.pos.col
            ),
            (3, 5, 3, 9)
        );
        assert_eq!(&*c.value.pos.file, "f.conf");
        let ValueKind::Array(items) = &root["d"].value.kind else {
            panic!("d is not an array")
        };
        assert_eq!((items[0].pos.line, items[0].pos.col), (5, 8));
        // Columns count characters, not bytes.
        let root = parse("s = 'ééé' t = 1", "f").unwrap_or_default();
        assert_eq!(root["t"].key_pos.col, 11);
    }

    #[test]
    fn error_positions_exact() {
        let err = e("a = 1\nb = 2\n  c = @");
        assert_eq!(err.to_string(), "t.conf:3:7: expected a value, found '@'");
        let err = e("relay {\n  port = 7777\n  bind ! \"x\"\n}");
        assert_eq!(at(&err), (3, 8));
        assert!(err.message.contains("'relay.bind'"), "{}", err.message);
        let err = e("x = [1 2\n 3 }");
        assert_eq!(at(&err), (2, 4));
    }

    #[test]
    fn unsupported_features_are_reported() {
        for (text, pos, needle) in [
            ("a = (b)", (1, 5), "reference (b)"),
            ("a = (env \"HOME\")", (1, 5), "extension (env ...)"),
            (
                "(include \"other.conf\")",
                (1, 1),
                "extension (include ...)",
            ),
            (
                "x {\n  (include \"o\")\n}",
                (2, 3),
                "extension (include ...)",
            ),
            ("a.*.b = 1", (1, 3), "wildcard"),
            ("* = 1", (1, 1), "wildcard"),
            ("a.0 = 1", (1, 3), "array index"),
            ("a.- = 1", (1, 3), "'-'"),
            ("a = 1 + 2", (1, 7), "value addition"),
            ("a = 'x' +\n 'y'", (1, 9), "value addition"),
            ("a = [1] + [2]", (1, 9), "value addition"),
            ("a = [1 + 2]", (1, 8), "value addition"),
            ("a = $DEADBEEF", (1, 5), "binary"),
        ] {
            let err = e(text);
            assert_eq!(err.kind, ErrorKind::Unsupported, "{text}: {err}");
            assert_eq!(at(&err), pos, "{text}: {err}");
            assert!(
                err.message.starts_with("unsupported taoCONFIG feature: "),
                "{err}"
            );
            assert!(err.message.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn depth_is_bounded() {
        let ok = format!(
            "a = {}1{}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(parse(&ok, "t").is_ok());
        for text in [
            format!("a = {}", "[".repeat(100_000)),
            format!("a = {}", "{ b = ".repeat(100_000)),
            "a { ".repeat(100_000),
            format!("{} = 1", vec!["k"; 100_000].join(".")),
            format!("{} = 1", vec!["k"; MAX_DEPTH + 1].join(".")),
            format!("a {{ {} = 1 }}", vec!["k"; MAX_DEPTH].join(".")),
            format!("a = {}", "[{ x ".repeat(50_000)),
            format!("a {}", "[".repeat(100_000)),
        ] {
            let err = e(&text);
            assert_eq!(err.kind, ErrorKind::TooDeep, "{err}");
        }
        assert!(parse(&format!("{} = 1", vec!["k"; MAX_DEPTH].join(".")), "t").is_ok());
    }

    #[test]
    fn garbage_never_panics() {
        // A tiny deterministic generator over an alphabet that hits every branch.
        let alphabet: Vec<&str> = vec![
            "{",
            "}",
            "[",
            "]",
            "=",
            ":",
            "+=",
            "+",
            ",",
            ".",
            " ",
            "\n",
            "\t",
            "a",
            "b.c",
            "\"",
            "'",
            "\\",
            "\\u",
            "d83d",
            "{1F600}",
            "1",
            "-",
            "0x",
            "e",
            "#",
            "//",
            "/*",
            "*/",
            "*",
            "(",
            ")",
            "$",
            "delete",
            "true",
            "null",
            "NaN",
            "é",
            "\u{0}",
            "\r",
            "0",
            "9999999999999999999999",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let mut s = String::new();
            let len = (state % 24) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let _ = parse(&s, "fuzz");
        }
        // Every prefix of a realistic file, too.
        let text = include_str!("../../tests/data/strfry.conf");
        for (i, _) in text.char_indices() {
            let _ = parse(&text[..i], "prefix");
        }
    }
}
