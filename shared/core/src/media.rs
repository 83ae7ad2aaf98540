//! What a request body is, from its `Content-Type` and its first byte: the two shapes every
//! public route reads (JSON and forms), with the same forgiveness everywhere.

use crate::error::{Error, Kind};

/// How to read a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// Nothing but white space.
    Empty,
    /// A JSON document (`application/json`, `*+json`, or an object sent as anything else).
    Json,
    /// `application/x-www-form-urlencoded` (also a body with no content type).
    Form,
}

/// How `body`, sent as `content_type`, is to be read; a multipart body or another type that
/// is not a JSON object is a 415 naming `content-type`.
pub fn classify(content_type: Option<&str>, body: &[u8]) -> Result<BodyKind, Error> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Ok(BodyKind::Empty);
    }
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if media == "application/json" || media.ends_with("+json") {
        return Ok(BodyKind::Json);
    }
    if media == "application/x-www-form-urlencoded" || media.is_empty() {
        return Ok(BodyKind::Form);
    }
    // A JSON object sent as text/plain (or anything) is still unambiguous.
    if trimmed.starts_with(b"{") && !media.starts_with("multipart/") {
        return Ok(BodyKind::Json);
    }
    Err(Error::new(
        Kind::UnsupportedMedia,
        "unsupported_media_type",
        format!(
            "content type {media:?} is not read here; send application/json or application/x-www-form-urlencoded"
        ),
    )
    .at("content-type"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms_and_the_rest() {
        assert_eq!(classify(None, b"  ").unwrap(), BodyKind::Empty);
        assert_eq!(
            classify(Some("application/json; charset=utf-8"), b"{}").unwrap(),
            BodyKind::Json
        );
        assert_eq!(
            classify(Some("text/plain"), b"{\"a\":1}").unwrap(),
            BodyKind::Json
        );
        assert_eq!(classify(None, b"a=1").unwrap(), BodyKind::Form);
        let e = classify(Some("multipart/form-data; boundary=x"), b"--x").unwrap_err();
        assert_eq!(
            (e.kind, e.code),
            (Kind::UnsupportedMedia, "unsupported_media_type")
        );
        assert_eq!(
            classify(Some("application/xml"), b"<a/>").unwrap_err().kind,
            Kind::UnsupportedMedia
        );
    }
}
