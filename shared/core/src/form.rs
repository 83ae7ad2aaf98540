//! `a=1&b=2` as trackers, PHP scripts and call trackers write it: query strings and form
//! bodies, decoded liberally where the meaning is still clear. `+` is a space, `%XX` a byte,
//! and a `%` not followed by two hex digits is a literal `%` (`details.note=100%`). What
//! cannot be read unambiguously (bytes that are not UTF-8 once decoded) is an error naming
//! the parameter.

use crate::error::Error;

/// Every `name=value` pair, in order (empty names skipped; `name` alone has an empty value).
pub fn pairs(input: &[u8]) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for piece in input.split(|b| *b == b'&') {
        if piece.is_empty() {
            continue;
        }
        let (key, value) = match piece.iter().position(|b| *b == b'=') {
            Some(i) => (&piece[..i], &piece[i + 1..]),
            None => (piece, &b""[..]),
        };
        let key = decode(key).map_err(|_| {
            Error::malformed(
                "bad_encoding",
                &String::from_utf8_lossy(key),
                "the parameter name is not UTF-8 once decoded",
            )
        })?;
        let value = decode(value).map_err(|_| {
            Error::malformed("bad_encoding", &key, "the value is not UTF-8 once decoded")
        })?;
        if !key.is_empty() {
            out.push((key, value));
        }
    }
    Ok(out)
}

/// The last value of `name` in a query string (`None` when absent or undecodable).
pub fn param(query: &str, name: &str) -> Option<String> {
    pairs(query.as_bytes())
        .ok()?
        .into_iter()
        .rev()
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// Percent-decodes liberally (see the module documentation).
pub fn decode(input: &[u8]) -> Result<String, std::string::FromUtf8Error> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                input.get(i + 1).copied().and_then(hex),
                input.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liberal_decoding_keeps_a_stray_percent_and_reads_plus_as_space() {
        let p = pairs(b"a=100%&b=John+Doe&c=%D0%9F%D1%80%D0%B8&d=50%25&e").unwrap();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("a"), Some("100%"));
        assert_eq!(get("b"), Some("John Doe"));
        assert_eq!(get("c"), Some("При"));
        assert_eq!(get("d"), Some("50%"));
        assert_eq!(get("e"), Some(""));
        assert_eq!(param("x=1&x=2", "x").as_deref(), Some("2"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_naming_the_parameter() {
        let err = pairs(b"name=%FF%FE").unwrap_err();
        assert_eq!(err.code, "bad_encoding");
        assert_eq!(err.field.as_deref(), Some("name"));
    }
}
