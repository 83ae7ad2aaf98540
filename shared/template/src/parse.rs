//! Parsing: text and tags, each tag's slot decided from the text before it.
//!
//! A tag is `{{ name | modifier | modifier: arg }}` (spaces optional) or `{name|modifier}`
//! (no spaces). A `{` or `{{` that does not start a well-formed tag is plain text, so JSON
//! bodies, CSS and lone braces pass through untouched. `{{ "..." }}` writes the quoted text as
//! is: the way to put literal braces next to a variable (`{{"{"}}{chatId}{{"}"}}`).

use crate::datetime::DateForm;
use crate::error::{ErrorKind, TemplateError};
use crate::escape::Slot;
use crate::name::{Name, is_name_byte};
use crate::value::OwnedValue;

/// What a template produces, which decides how values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A URL (path segments, query, fragment escaped by position).
    Url,
    /// A JSON document.
    Json,
    /// An `application/x-www-form-urlencoded` body.
    Form,
    /// One HTTP header value.
    Header,
    /// Plain text: a message, a `text/plain` body.
    Text,
}

/// A variable in the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    /// Byte range of the whole tag in the source.
    pub span: (usize, usize),
    /// Byte range of the name in the source.
    pub name_span: (usize, usize),
    /// What it looks up.
    pub name: Name,
    /// Where its value lands.
    pub slot: Slot,
    /// Written unescaped.
    pub raw: bool,
    /// Used when there is no value.
    pub default: Option<OwnedValue>,
    /// Date form for moments.
    pub date: DateForm,
    /// `{{ ... }}` rather than `{ ... }`.
    pub double: bool,
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Text copied as is (a byte range of the source).
    Text(usize, usize),
    /// A quoted literal, `{{ "..." }}`, copied as is.
    Literal(String),
    /// A variable.
    Tag(Tag),
}

/// Where in a URL / JSON document the text so far has left us.
#[derive(Debug, Clone, Copy)]
enum Position {
    Url(UrlPart),
    Json { in_string: bool, escaped: bool },
    Fixed(Slot),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum UrlPart {
    Start,
    Colon,
    ColonSlash,
    Authority,
    Path,
    Query,
    Fragment,
}

impl Position {
    fn new(target: Target) -> Self {
        match target {
            Target::Url => Position::Url(UrlPart::Start),
            Target::Json => Position::Json {
                in_string: false,
                escaped: false,
            },
            Target::Form => Position::Fixed(Slot::Form),
            Target::Header => Position::Fixed(Slot::Header),
            Target::Text => Position::Fixed(Slot::Text),
        }
    }

    fn advance(&mut self, text: &str) {
        match self {
            Position::Url(part) => {
                for b in text.bytes() {
                    *part = match (*part, b) {
                        (UrlPart::Fragment, _) => UrlPart::Fragment,
                        (_, b'#') => UrlPart::Fragment,
                        (UrlPart::Query, _) => UrlPart::Query,
                        (_, b'?') => UrlPart::Query,
                        (UrlPart::Start, b':') => UrlPart::Colon,
                        (UrlPart::Colon, b'/') => UrlPart::ColonSlash,
                        (UrlPart::ColonSlash, b'/') => UrlPart::Authority,
                        // A path with no scheme and host before it ("/x", "relative/x").
                        (UrlPart::Start | UrlPart::Authority, b'/') => UrlPart::Path,
                        (UrlPart::Colon | UrlPart::ColonSlash, _) => UrlPart::Start,
                        (p, _) => p,
                    };
                }
            }
            Position::Json { in_string, escaped } => {
                for b in text.bytes() {
                    if *escaped {
                        *escaped = false;
                    } else if *in_string && b == b'\\' {
                        *escaped = true;
                    } else if b == b'"' {
                        *in_string = !*in_string;
                    }
                }
            }
            Position::Fixed(_) => {}
        }
    }

    fn slot(&self) -> Slot {
        match *self {
            Position::Url(
                UrlPart::Start | UrlPart::Colon | UrlPart::ColonSlash | UrlPart::Authority,
            ) => Slot::UrlAuthority,
            Position::Url(UrlPart::Path) => Slot::UrlPath,
            Position::Url(UrlPart::Query) => Slot::UrlQuery,
            Position::Url(UrlPart::Fragment) => Slot::UrlFragment,
            Position::Json {
                in_string: true, ..
            } => Slot::JsonString,
            Position::Json { .. } => Slot::JsonValue,
            Position::Fixed(slot) => slot,
        }
    }
}

/// Splits `src` into parts for `target`.
pub fn parse(src: &str, target: Target) -> Result<Vec<Part>, TemplateError> {
    let bytes = src.as_bytes();
    let mut parts = Vec::new();
    let mut pos = Position::new(target);
    let mut text_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'{' {
            i += 1;
            continue;
        }
        let found = if bytes.get(i + 1) == Some(&b'{') {
            double_tag(src, i)?
        } else {
            None
        }
        .or_else(|| single_tag(src, i));
        let Some((end, body)) = found else {
            i += 1;
            continue;
        };
        if text_start < i {
            pos.advance(&src[text_start..i]);
            parts.push(Part::Text(text_start, i));
        }
        match body {
            TagBody::Literal(s) => {
                pos.advance(&s);
                parts.push(Part::Literal(s));
            }
            TagBody::Var(mut tag) => {
                tag.span = (i, end);
                // An escaped value cannot move the position: '/', '?', '#' and '"' are escaped.
                tag.slot = pos.slot();
                parts.push(Part::Tag(tag));
            }
        }
        i = end;
        text_start = end;
    }
    if text_start < bytes.len() {
        parts.push(Part::Text(text_start, bytes.len()));
    }
    Ok(parts)
}

enum TagBody {
    Literal(String),
    Var(Tag),
}

/// `{{ ... }}` at `start`. `Ok(None)`: not a tag (plain text). `Err`: a tag that is wrong.
fn double_tag(src: &str, start: usize) -> Result<Option<(usize, TagBody)>, TemplateError> {
    let bytes = src.as_bytes();
    let mut i = skip_spaces(bytes, start + 2);
    match bytes.get(i) {
        Some(b'"') => {
            let (lit, after) = quoted(src, i)?;
            let j = skip_spaces(bytes, after);
            if bytes.get(j..j + 2) == Some(b"}}") {
                return Ok(Some((j + 2, TagBody::Literal(lit))));
            }
            return Ok(None);
        }
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {}
        _ => return Ok(None),
    }
    // Only a closed tag is a tag; `{{ name` with no `}}` is text (the lint reports it).
    let Some(close) = find_close(src, i) else {
        return Ok(None);
    };
    let name_start = i;
    while i < close && is_name_byte(bytes[i]) {
        i += 1;
    }
    let name_text = &src[name_start..i];
    let name = Name::parse(name_text)
        .ok_or_else(|| TemplateError::new(name_start, ErrorKind::BadName(name_text.to_string())))?;
    let mut tag = new_tag(name, (name_start, i), true);
    i = skip_spaces(bytes, i);
    while i < close {
        if bytes[i] != b'|' {
            return Err(TemplateError::new(
                i,
                ErrorKind::Unexpected(src[i..close].trim_end().to_string()),
            ));
        }
        i = modifier(src, skip_spaces(bytes, i + 1), close, &mut tag)?;
        i = skip_spaces(bytes, i);
    }
    Ok(Some((close + 2, TagBody::Var(tag))))
}

/// `{name|mod}` at `start`: a tag only if it is well-formed and has no spaces.
fn single_tag(src: &str, start: usize) -> Option<(usize, TagBody)> {
    let bytes = src.as_bytes();
    let first = *bytes.get(start + 1)?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let mut i = start + 1;
    while i < bytes.len() && is_name_byte(bytes[i]) {
        i += 1;
    }
    let name = Name::parse(&src[start + 1..i])?;
    let mut tag = new_tag(name, (start + 1, i), false);
    let close = loop {
        match bytes.get(i)? {
            b'}' => break i,
            b'|' => {
                let stop = src[i..].find('}')? + i;
                if src[i..stop].contains(' ') || src[i..stop].contains('{') {
                    return None;
                }
                i = modifier(src, i + 1, stop, &mut tag).ok()?;
            }
            _ => return None,
        }
    };
    Some((close + 1, TagBody::Var(tag)))
}

fn new_tag(name: Name, name_span: (usize, usize), double: bool) -> Tag {
    Tag {
        span: (0, 0),
        name_span,
        name,
        slot: Slot::Text,
        raw: false,
        default: None,
        date: DateForm::Iso,
        double,
    }
}

/// Parses one modifier starting at `i` (before `end`); returns where it stopped.
fn modifier(src: &str, i: usize, end: usize, tag: &mut Tag) -> Result<usize, TemplateError> {
    let bytes = src.as_bytes();
    let mut j = i;
    while j < end && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
        j += 1;
    }
    let word = &src[i..j];
    let mut next = skip_spaces(bytes, j);
    match word {
        "raw" => tag.raw = true,
        "iso" => tag.date = DateForm::Iso,
        "unix" => tag.date = DateForm::Unix,
        "unix_ms" => tag.date = DateForm::UnixMs,
        "date" => tag.date = DateForm::Date,
        "datetime" => tag.date = DateForm::DateTime,
        "show" => tag.date = DateForm::Show,
        "default" => {
            if bytes.get(next) != Some(&b':') {
                return Err(TemplateError::new(
                    j,
                    ErrorKind::BadDefault("write default: VALUE".into()),
                ));
            }
            next = skip_spaces(bytes, next + 1);
            let (value, after) = default_value(src, next, end)?;
            tag.default = Some(value);
            next = after;
        }
        _ => {
            let shown = if word.is_empty() {
                src[i..end].trim().chars().take(20).collect()
            } else {
                word.to_string()
            };
            return Err(TemplateError::new(i, ErrorKind::UnknownModifier(shown)));
        }
    }
    Ok(next)
}

fn default_value(src: &str, i: usize, end: usize) -> Result<(OwnedValue, usize), TemplateError> {
    let bytes = src.as_bytes();
    if bytes.get(i) == Some(&b'"') {
        let (s, after) = quoted(src, i)?;
        return Ok((OwnedValue::Str(s), after));
    }
    let mut j = i;
    while j < end && bytes[j] != b'|' && bytes[j] != b' ' {
        j += 1;
    }
    let word = &src[i..j];
    if word.is_empty() {
        return Err(TemplateError::new(
            i,
            ErrorKind::BadDefault("a default needs a value".into()),
        ));
    }
    let value = if let Ok(n) = word.parse::<i64>() {
        OwnedValue::Int(n)
    } else if let Ok(n) = word
        .parse::<f64>()
        .map_err(|_| ())
        .and_then(|n: f64| if n.is_finite() { Ok(n) } else { Err(()) })
    {
        OwnedValue::Num(n)
    } else if word == "true" || word == "false" {
        OwnedValue::Bool(word == "true")
    } else {
        OwnedValue::Str(word.to_string())
    };
    Ok((value, j))
}

/// A `"..."` string at `i` with `\"` and `\\` escapes; returns it and the index after it.
fn quoted(src: &str, i: usize) -> Result<(String, usize), TemplateError> {
    let mut out = String::new();
    let mut chars = src[i + 1..].char_indices();
    while let Some((k, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1 + k + 1)),
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(TemplateError::new(i, ErrorKind::UnterminatedString))
}

/// The index of the `}}` closing a tag whose body starts at `i`, skipping quoted strings.
/// Stops at a `{` or a line break: a tag never spans them, so an unclosed `{{` stays text.
fn find_close(src: &str, mut i: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut in_quote = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quote => i += 1,
            b'"' => in_quote = !in_quote,
            b'}' if !in_quote && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            b'{' | b'\n' | b'\r' if !in_quote => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

fn skip_spaces(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
        i += 1;
    }
    i
}
