//! The template engine every funnelhooks text goes through: send-webhook URLs, headers and
//! bodies, call-hook requests and bot messages ("Hello, {{name}}").
//!
//! # Syntax
//! - `{name}` (Chatterfy's Send Webhook step) and `{{name}}` / `{{ name }}` (Chatterfy's
//!   messages and links) are the same variable. Names and how they resolve: see [`name`].
//! - Modifiers follow `|`: `raw` (no escaping), `default: VALUE` (used when the name has no
//!   value; `"quoted text"`, a number, `true`/`false` or a bare word), and date forms for
//!   moments such as `createdAt`: `iso` (the default, `2024-03-10T17:49:32.806Z`), `unix`
//!   (seconds), `unix_ms`, `date` (`2024-03-10`), `datetime` (`2024-03-10 17:49:32`), `show`
//!   (`10/03/2024 17:49:32 UTC`). Example: `{{ createdAt | unix }}`, `{tracker.sub1|default:none}`.
//! - A `{` or `{{` that does not open a well-formed tag is text: JSON bodies, CSS, a lone `{`
//!   or `}}` pass through untouched. `{{ "any text" }}` writes its text as is, which is how to
//!   put a literal `{chatId}` in the output: `{{ "{chatId}" }}`.
//!
//! # Escaping
//! Each value is escaped for where it lands ([`escape::Slot`]), decided when the template is
//! parsed for a [`Target`]: URL path segments, query and fragment are percent-encoded (only
//! RFC 3986 unreserved bytes stay bare, space is `%20`); in JSON a variable inside a string
//! becomes string content and one outside a string becomes a JSON value (text quoted, numbers
//! bare, missing `null`); form bodies use form encoding; header values must not contain CR, LF
//! or NUL (an error); plain text is written as is.
//!
//! # Use
//! Parse once, render many: a [`Template`] is a plain value to store and reuse, and rendering
//! borrows the context, allocating nothing but the output (and the missing-names list, only
//! when a name is missing).

mod builtin;
pub mod datetime;
pub mod error;
pub mod escape;
pub mod name;
pub mod parse;
pub mod value;

pub use datetime::DateForm;
pub use error::{ErrorKind, TemplateError};
pub use escape::Slot;
pub use name::{Builtin, KeyMatch, Name, match_key};
pub use parse::{Part, Tag, Target};
pub use value::{Context, MapContext, OwnedValue, Value};

use std::fmt::Write as _;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    target: Target,
    parts: Vec<Part>,
    capacity: usize,
}

/// A render's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered<'t> {
    /// The text.
    pub output: String,
    /// Names that had no value and no default, as written in the template, in order.
    pub missing: Vec<&'t str>,
}

/// Something worth a second look in a template, with its byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// Start byte.
    pub offset: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// What it is.
    pub kind: LintKind,
    /// A sentence for people.
    pub message: String,
}

impl Lint {
    fn new((offset, end): (usize, usize), kind: LintKind, message: String) -> Self {
        Self {
            offset,
            end,
            kind,
            message,
        }
    }
}

/// Kinds of lint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LintKind {
    /// A name that is neither a built-in nor known to the caller (a custom field of the bot).
    UnknownName,
    /// `{{ name` with no closing `}}`: rendered as text.
    UnclosedTag,
    /// `{name` that is not a variable (no closing `}`, or not a name and modifiers within):
    /// rendered as text, which a tracker reads as a broken parameter.
    MalformedVariable,
    /// A variable in a URL's scheme or host.
    VariableInHost,
    /// `raw` in a URL or JSON, where an unescaped value can break the structure.
    RawValue,
    /// A field name that matches a custom field only by letter case (it is used).
    FieldCase,
    /// A field name that matches several custom fields by letter case (none is used).
    AmbiguousField,
}

/// Whether the caller knows a name (a custom field of the bot, of the dialog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// Yes, as written.
    Yes,
    /// No.
    No,
    /// Only as this key, which differs in letter case.
    AsKey(String),
    /// As several keys that differ from it and each other only in letter case.
    Ambiguous(Vec<String>),
}

impl LintKind {
    /// The kind as an API shows it: `unknown_name`, `unclosed_tag`, `variable_in_host`,
    /// `raw_value`.
    pub fn code(self) -> &'static str {
        match self {
            LintKind::UnknownName => "unknown_name",
            LintKind::UnclosedTag => "unclosed_tag",
            LintKind::MalformedVariable => "malformed_variable",
            LintKind::VariableInHost => "variable_in_host",
            LintKind::RawValue => "raw_value",
            LintKind::FieldCase => "field_case",
            LintKind::AmbiguousField => "ambiguous_field",
        }
    }
}

impl Template {
    /// Parses `source` for `target`. Errors name the byte offset.
    pub fn parse(source: &str, target: Target) -> Result<Self, TemplateError> {
        let parts = parse::parse(source, target)?;
        if target == Target::Header {
            for part in &parts {
                let (offset, text) = match part {
                    Part::Text(a, b) => (*a, &source[*a..*b]),
                    Part::Literal(s) => (0, s.as_str()),
                    Part::Tag(_) => continue,
                };
                if let Some(at) = text.find(|c: char| c.is_ascii_control() && c != '\t') {
                    return Err(TemplateError::new(offset + at, ErrorKind::HeaderText));
                }
            }
        }
        let mut capacity = 0;
        for p in &parts {
            capacity += match p {
                Part::Text(a, b) => b - a,
                Part::Literal(s) => s.len(),
                Part::Tag(_) => 24,
            };
        }
        Ok(Self {
            source: source.to_string(),
            target,
            parts,
            capacity,
        })
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What it renders.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Its variables, in order.
    pub fn tags(&self) -> impl Iterator<Item = &Tag> {
        self.parts.iter().filter_map(|p| match p {
            Part::Tag(t) => Some(t),
            _ => None,
        })
    }

    /// Renders against `ctx`.
    pub fn render<C: Context + ?Sized>(&self, ctx: &C) -> Result<Rendered<'_>, TemplateError> {
        self.render_within(ctx, usize::MAX)
    }

    /// Renders against `ctx`, failing with [`ErrorKind::TooLong`] as soon as the output
    /// passes `limit` bytes (a template repeating a long value thousands of times stops
    /// there instead of filling memory).
    pub fn render_within<C: Context + ?Sized>(
        &self,
        ctx: &C,
        limit: usize,
    ) -> Result<Rendered<'_>, TemplateError> {
        let mut output = String::with_capacity(self.capacity.min(limit));
        let mut missing = Vec::new();
        self.write_parts(ctx, &mut output, &mut missing, limit)?;
        Ok(Rendered { output, missing })
    }

    /// Renders against `ctx`, appending to `out` and to `missing`.
    pub fn render_into<'t, C: Context + ?Sized>(
        &'t self,
        ctx: &C,
        out: &mut String,
        missing: &mut Vec<&'t str>,
    ) -> Result<(), TemplateError> {
        self.write_parts(ctx, out, missing, usize::MAX)
    }

    fn write_parts<'t, C: Context + ?Sized>(
        &'t self,
        ctx: &C,
        out: &mut String,
        missing: &mut Vec<&'t str>,
        limit: usize,
    ) -> Result<(), TemplateError> {
        for part in &self.parts {
            if out.len() > limit {
                return Err(TemplateError::new(0, ErrorKind::TooLong { limit }));
            }
            match part {
                Part::Text(a, b) => out.push_str(&self.source[*a..*b]),
                Part::Literal(s) => out.push_str(s),
                Part::Tag(tag) => {
                    let value = match tag.name.resolve(ctx) {
                        Some(v) => Some(v),
                        None => {
                            if tag.default.is_none() {
                                missing.push(&self.source[tag.name_span.0..tag.name_span.1]);
                            }
                            tag.default.as_ref().map(OwnedValue::as_value)
                        }
                    };
                    match value {
                        Some(v) => self.write_value(tag, v, out)?,
                        None if tag.slot == Slot::JsonValue => out.push_str("null"),
                        None => {}
                    }
                }
            }
        }
        if out.len() > limit {
            return Err(TemplateError::new(0, ErrorKind::TooLong { limit }));
        }
        Ok(())
    }

    fn write_value(
        &self,
        tag: &Tag,
        value: Value<'_>,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        let json_value = tag.slot == Slot::JsonValue;
        let mut buf = datetime::Buf::new();
        match value {
            Value::Str(s) => {
                if tag.slot == Slot::UrlPath && !tag.raw && escape::is_dot_segment(s) {
                    return Err(self.value_error(tag, |name| ErrorKind::DotSegment { name }));
                }
                if tag.slot == Slot::Header && escape::header_breaker(s).is_some() {
                    return Err(self.value_error(tag, |name| ErrorKind::HeaderBreak { name }));
                }
                match tag.slot {
                    // Raw in JSON writes a JSON value as one (`[1,2]`, `{"a":1}`, `12.5`); any
                    // other text is still quoted, so a value can never add members or close
                    // the document. Inside a JSON string raw changes nothing.
                    Slot::JsonValue if tag.raw && escape::is_json_value(s) => out.push_str(s),
                    Slot::JsonValue | Slot::JsonString => escape::push(tag.slot, s, out),
                    _ if tag.raw => out.push_str(s),
                    _ => escape::push(tag.slot, s, out),
                }
            }
            // Digits, '-', '.', 'e', "true"/"false" need no escaping in any slot.
            Value::Int(n) => {
                buf.push_int(n, 1);
                out.push_str(buf.as_str());
            }
            Value::Num(n) => {
                if json_value && !n.is_finite() {
                    out.push_str("null");
                } else {
                    let _ = write!(out, "{n}");
                }
            }
            Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            Value::Time(ms) => {
                let for_url = tag.slot.is_url() && !tag.raw;
                datetime::format(ms, tag.date, for_url, &mut buf);
                let numeric = matches!(tag.date, DateForm::Unix | DateForm::UnixMs);
                let in_json = matches!(tag.slot, Slot::JsonValue | Slot::JsonString);
                if (tag.raw && !in_json) || for_url || (json_value && numeric) {
                    out.push_str(buf.as_str());
                } else {
                    escape::push(tag.slot, buf.as_str(), out);
                }
            }
        }
        Ok(())
    }

    fn value_error(&self, tag: &Tag, kind: impl FnOnce(String) -> ErrorKind) -> TemplateError {
        let name = self.source[tag.name_span.0..tag.name_span.1].to_string();
        TemplateError::new(tag.span.0, kind(name))
    }

    /// The first place where the template is not what its author meant to write: a `{{`
    /// or `{` that opens a variable and does not close one. Saving such a template is refused
    /// (it would send its braces as text).
    pub fn malformed(&self) -> Option<Lint> {
        self.lint(|_| Known::Yes)
            .into_iter()
            .find(|l| matches!(l.kind, LintKind::UnclosedTag | LintKind::MalformedVariable))
    }

    /// Reports unknown names (builtins are always known; `known` decides the rest), unclosed
    /// tags, variables in a URL's host, and `raw` where it can break a URL or JSON.
    pub fn lint(&self, known: impl Fn(&Name) -> Known) -> Vec<Lint> {
        let mut lints = Vec::new();
        for part in &self.parts {
            match part {
                Part::Tag(tag) => self.lint_tag(tag, &known, &mut lints),
                Part::Text(a, b) => lint_text(&self.source[*a..*b], *a, &mut lints),
                Part::Literal(_) => {}
            }
        }
        lints
    }

    fn lint_tag(&self, tag: &Tag, known: &impl Fn(&Name) -> Known, lints: &mut Vec<Lint>) {
        let written = &self.source[tag.name_span.0..tag.name_span.1];
        let knowledge = match tag.name {
            Name::Builtin(_) => Known::Yes,
            _ => known(&tag.name),
        };
        let lint = match knowledge {
            Known::Yes => None,
            Known::No => Some((
                LintKind::UnknownName,
                format!(
                    "unknown name {written:?}: not a built-in ({}) nor a known field",
                    Builtin::ALL.map(Builtin::as_str).join(", ")
                ),
            )),
            Known::AsKey(key) => Some((
                LintKind::FieldCase,
                format!(
                    "{written:?} matches the custom field {key:?} only by letter case; it is used, but write {key:?}"
                ),
            )),
            Known::Ambiguous(keys) => Some((
                LintKind::AmbiguousField,
                format!(
                    "{written:?} matches several custom fields by letter case ({}); none is used: write one exactly",
                    keys.join(", ")
                ),
            )),
        };
        if let Some((kind, message)) = lint {
            lints.push(Lint::new(tag.name_span, kind, message));
        }
        if tag.slot == Slot::UrlAuthority {
            lints.push(Lint::new(
                tag.span,
                LintKind::VariableInHost,
                format!(
                    "{written:?} is in the URL's scheme or host: a value there decides where the request goes"
                ),
            ));
        }
        let breaks = tag.slot.is_url() || matches!(tag.slot, Slot::JsonString | Slot::JsonValue);
        if tag.raw && breaks {
            lints.push(Lint::new(
                tag.span,
                LintKind::RawValue,
                format!("{written:?} is raw: an unescaped value can break the URL or JSON"),
            ));
        }
    }
}

/// `{{` opening a name that is never closed, and `{` before a name that does not make a
/// variable, in a text part starting at byte `base` (a text part holds no tag).
fn lint_text(text: &str, base: usize, lints: &mut Vec<Lint>) {
    let bytes = text.as_bytes();
    for (at, pair) in bytes.windows(2).enumerate() {
        let opens_name = pair[0] == b'{' && (pair[1].is_ascii_alphabetic() || pair[1] == b'_');
        if opens_name && (at == 0 || bytes[at - 1] != b'{') {
            let shown: String = text[at..].chars().take(40).collect();
            lints.push(Lint::new(
                (base + at, base + at + 1),
                LintKind::MalformedVariable,
                format!(
                    "\"{{\" starts a variable that is not closed or not well-formed ({shown:?}): \
                     a variable is {{name}} or {{name|modifier}}; a literal brace is {{{{\"{{\"}}}}"
                ),
            ));
        }
    }
    let mut from = 0;
    while let Some(k) = text[from..].find("{{") {
        let at = from + k;
        let rest = text[at + 2..].trim_start();
        if rest
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        {
            lints.push(Lint::new(
                (base + at, base + at + 2),
                LintKind::UnclosedTag,
                "\"{{\" opens a variable that is never closed with \"}}\"; it is written as text"
                    .into(),
            ));
        }
        from = at + 2;
    }
}
