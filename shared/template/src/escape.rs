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

/// The first control character but tab in `s` (CR, LF, NUL among them), which a header
/// value must never carry.
pub fn header_breaker(s: &str) -> Option<char> {
    s.chars().find(|c| c.is_ascii_control() && *c != '\t')
}

/// Whether `s` is exactly one JSON value (surrounding whitespace allowed), nested at most
/// 128 levels: what `raw` may write into a JSON body unquoted.
pub fn is_json_value(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = skip_ws(b, 0);
    if !json_value(b, &mut i, 0) {
        return false;
    }
    skip_ws(b, i) == b.len()
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

fn json_value(b: &[u8], i: &mut usize, depth: usize) -> bool {
    if depth > 128 {
        return false;
    }
    match b.get(*i) {
        Some(b'{') => json_container(b, i, depth, b'}', true),
        Some(b'[') => json_container(b, i, depth, b']', false),
        Some(b'"') => json_string_at(b, i),
        Some(b't') => json_word(b, i, b"true"),
        Some(b'f') => json_word(b, i, b"false"),
        Some(b'n') => json_word(b, i, b"null"),
        Some(b'-' | b'0'..=b'9') => json_number(b, i),
        _ => false,
    }
}

fn json_word(b: &[u8], i: &mut usize, word: &[u8]) -> bool {
    let ok = b[*i..].starts_with(word);
    *i += word.len();
    ok
}

fn json_number(b: &[u8], i: &mut usize) -> bool {
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if b.get(*i) == Some(&b'-') {
        *i += 1;
    }
    if b.get(*i) == Some(&b'0') {
        *i += 1;
    } else if !digits(i) {
        return false;
    }
    if b.get(*i) == Some(&b'.') {
        *i += 1;
        if !digits(i) {
            return false;
        }
    }
    if matches!(b.get(*i), Some(b'e' | b'E')) {
        *i += 1;
        if matches!(b.get(*i), Some(b'+' | b'-')) {
            *i += 1;
        }
        if !digits(i) {
            return false;
        }
    }
    true
}

fn json_string_at(b: &[u8], i: &mut usize) -> bool {
    *i += 1;
    while let Some(&c) = b.get(*i) {
        *i += 1;
        match c {
            b'"' => return true,
            b'\\' => match b.get(*i) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => *i += 1,
                Some(b'u')
                    if b.len() >= *i + 5 && b[*i + 1..*i + 5].iter().all(u8::is_ascii_hexdigit) =>
                {
                    *i += 5
                }
                _ => return false,
            },
            0..0x20 => return false,
            _ => {}
        }
    }
    false
}

fn json_container(b: &[u8], i: &mut usize, depth: usize, close: u8, object: bool) -> bool {
    *i = skip_ws(b, *i + 1);
    if b.get(*i) == Some(&close) {
        *i += 1;
        return true;
    }
    loop {
        if object {
            if b.get(*i) != Some(&b'"') || !json_string_at(b, i) {
                return false;
            }
            *i = skip_ws(b, *i);
            if b.get(*i) != Some(&b':') {
                return false;
            }
            *i = skip_ws(b, *i + 1);
        }
        if !json_value(b, i, depth + 1) {
            return false;
        }
        *i = skip_ws(b, *i);
        match b.get(*i) {
            Some(b',') => *i = skip_ws(b, *i + 1),
            Some(&c) if c == close => {
                *i += 1;
                return true;
            }
            _ => return false,
        }
    }
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
