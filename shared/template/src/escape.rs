//! Escaping a value for the spot it lands in, appended straight to the output string.
//! Runs of bytes that need no escaping are copied as one slice; a run always starts and ends
//! next to an ASCII byte or a multi-byte character's first byte, so slicing is always valid.

/// Where a variable sits, decided at parse time from the template text around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// In a URL's scheme or host: risky, escaped like a path segment so it cannot change the
    /// URL's structure.
    UrlAuthority,
    /// In a URL path: one segment, `/` escaped.
    UrlPath,
    /// In a URL query (a name or a value).
    UrlQuery,
    /// In a URL fragment.
    UrlFragment,
    /// Inside a JSON string literal.
    JsonString,
    /// Where a JSON value goes (outside any string): text is quoted, numbers stay numbers,
    /// a missing value is `null`.
    JsonValue,
    /// In an `application/x-www-form-urlencoded` body.
    Form,
    /// In an HTTP header value: written as is; CR, LF and NUL are an error.
    Header,
    /// Plain text (a message): written as is.
    Text,
}

impl Slot {
    /// Whether the slot is part of a URL.
    pub fn is_url(self) -> bool {
        matches!(
            self,
            Slot::UrlAuthority | Slot::UrlPath | Slot::UrlQuery | Slot::UrlFragment
        )
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// What each byte becomes in a URL (`Keep`), a form body (`Keep`, or `+` for space) or
/// as `%XX`; a table is measurably faster than comparisons on the render path.
const URL_SAFE: [bool; 256] = table(b"-._~");
const FORM_SAFE: [bool; 256] = table(b"*-._");

const fn table(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// "%00" to "%FF", so an escape is one slice copy.
const PCT: &str = {
    const BYTES: [u8; 768] = {
        let mut t = [0u8; 768];
        let mut b = 0;
        while b < 256 {
            t[b * 3] = b'%';
            t[b * 3 + 1] = HEX[b >> 4];
            t[b * 3 + 2] = HEX[b & 15];
            b += 1;
        }
        t
    };
    match std::str::from_utf8(&BYTES) {
        Ok(s) => s,
        Err(_) => panic!("escape table is ASCII"),
    }
};

fn pct(b: u8) -> &'static str {
    let i = usize::from(b) * 3;
    &PCT[i..i + 3]
}

/// Appends `s`, copying runs of bytes `safe` keeps and passing every other byte to `escape`.
fn escape_runs(s: &str, out: &mut String, safe: &[bool; 256], escape: impl Fn(u8) -> &'static str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let run = bytes[start..]
            .iter()
            .position(|&b| !safe[usize::from(b)])
            .map_or(bytes.len(), |p| start + p);
        if run > start {
            out.push_str(&s[start..run]);
        }
        if run == bytes.len() {
            break;
        }
        out.push_str(escape(bytes[run]));
        start = run + 1;
    }
}

/// Appends `s` percent-encoded (everything but RFC 3986 unreserved bytes; space is `%20`).
pub fn percent(s: &str, out: &mut String) {
    escape_runs(s, out, &URL_SAFE, pct);
}

/// Appends `s` as an `application/x-www-form-urlencoded` value (space is `+`).
pub fn form(s: &str, out: &mut String) {
    escape_runs(s, out, &FORM_SAFE, |b| if b == b' ' { "+" } else { pct(b) });
}

/// Bytes a JSON string can hold as they are: not `"`, `\\` or a control character.
const JSON_SAFE: [bool; 256] = {
    let mut t = [true; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = false;
        b += 1;
    }
    t[b'"' as usize] = false;
    t[b'\\' as usize] = false;
    t
};

/// Appends `s` as the content of a JSON string (no quotes).
pub fn json_string(s: &str, out: &mut String) {
    escape_runs(s, out, &JSON_SAFE, |b| match b {
        b'"' => "\\\"",
        b'\\' => "\\\\",
        b'\n' => "\\n",
        b'\r' => "\\r",
        b'\t' => "\\t",
        _ => {
            const CONTROL: [&str; 32] = [
                "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006",
                "\\u0007", "\\u0008", "\\u0009", "\\u000A", "\\u000B", "\\u000C", "\\u000D",
                "\\u000E", "\\u000F", "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014",
                "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019", "\\u001A", "\\u001B",
                "\\u001C", "\\u001D", "\\u001E", "\\u001F",
            ];
            CONTROL[usize::from(b & 31)]
        }
    });
}

/// The first CR, LF or NUL in `s`, which a header value must never carry.
pub fn header_breaker(s: &str) -> Option<char> {
    s.chars().find(|c| matches!(c, '\r' | '\n' | '\0'))
}

/// Whether `s` is a dot segment, which URL parsers resolve away even when percent-encoded
/// (`..`, `%2E%2E`), so no escaping can keep it in a path.
pub fn is_dot_segment(s: &str) -> bool {
    s == "." || s == ".."
}

/// Appends `s` escaped for `slot`. Header values must be checked with [`header_breaker`] first.
pub fn push(slot: Slot, s: &str, out: &mut String) {
    match slot {
        Slot::UrlAuthority | Slot::UrlPath | Slot::UrlQuery | Slot::UrlFragment => percent(s, out),
        Slot::JsonString => json_string(s, out),
        Slot::JsonValue => {
            out.push('"');
            json_string(s, out);
            out.push('"');
        }
        Slot::Form => form(s, out),
        Slot::Header | Slot::Text => out.push_str(s),
    }
}
