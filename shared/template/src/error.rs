//! The crate's one error type: what went wrong and at which byte of the template.

use std::fmt;

/// A template that cannot be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset into the template where the problem starts.
    pub offset: usize,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// The kinds of template errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// `{{ }}` with a bad or missing name.
    BadName(String),
    /// A modifier nobody knows.
    UnknownModifier(String),
    /// `default` without a value, or a value that does not parse.
    BadDefault(String),
    /// A quoted string that never ends.
    UnterminatedString,
    /// Something after the name and modifiers that does not belong there.
    Unexpected(String),
    /// A value of `.` or `..` as a URL path segment, which would move the URL up a level.
    DotSegment {
        /// The variable whose value it was.
        name: String,
    },
    /// CR, LF or NUL written into a header template itself.
    HeaderText,
    /// A value that would put CR, LF or NUL into a header.
    HeaderBreak {
        /// The variable whose value it was.
        name: String,
    },
    /// The rendered text grew past the bound its caller set.
    TooLong {
        /// The bound, in bytes.
        limit: usize,
    },
}

impl TemplateError {
    pub(crate) fn new(offset: usize, kind: ErrorKind) -> Self {
        Self { offset, kind }
    }

    /// A short machine-readable code (`unknown_modifier`).
    pub fn code(&self) -> &'static str {
        match self.kind {
            ErrorKind::BadName(_) => "bad_name",
            ErrorKind::UnknownModifier(_) => "unknown_modifier",
            ErrorKind::BadDefault(_) => "bad_default",
            ErrorKind::UnterminatedString => "unterminated_string",
            ErrorKind::Unexpected(_) => "unexpected",
            ErrorKind::DotSegment { .. } => "dot_segment",
            ErrorKind::HeaderText => "header_text",
            ErrorKind::HeaderBreak { .. } => "header_break",
            ErrorKind::TooLong { .. } => "too_long",
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: ", self.offset)?;
        match &self.kind {
            ErrorKind::BadName(n) => write!(
                f,
                "{n:?} is not a variable name (letters, digits, '_', '-', one '.' after fields, details or tracker)"
            ),
            ErrorKind::UnknownModifier(m) => write!(
                f,
                "unknown modifier {m:?} (known: raw, default, iso, unix, unix_ms, date, datetime, show)"
            ),
            ErrorKind::BadDefault(why) => write!(f, "bad default: {why}"),
            ErrorKind::UnterminatedString => write!(f, "a quoted string is not closed"),
            ErrorKind::Unexpected(what) => write!(f, "unexpected {what:?}"),
            ErrorKind::DotSegment { name } => write!(
                f,
                "the value of {name} is a dot segment (\".\" or \"..\"), which would change the URL's path"
            ),
            ErrorKind::HeaderText => write!(
                f,
                "a header value must not contain a control character (CR, LF, NUL...)"
            ),
            ErrorKind::HeaderBreak { name } => write!(
                f,
                "the value of {name} contains a control character (CR, LF, NUL...), which a header value must not carry"
            ),
            ErrorKind::TooLong { limit } => write!(
                f,
                "the rendered text is longer than {limit} bytes; nothing is sent rather than a cut request"
            ),
        }
    }
}

impl std::error::Error for TemplateError {}
