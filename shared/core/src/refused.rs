//! Refused requests kept for the people who set the sender up: the newest [`KEEP_REFUSED`]
//! requests a bot's postback links or a call-tracking service's ingest URLs refused, with
//! why and what was sent, so a marketer sees what a tracker or a telephony side sends wrong.
//! Written only when a request is refused: an accepted one's path has no write more.
//!
//! Each list is an [`Index`] (`refused:{botId}`, `refused-calls:{serviceId}`) holding each
//! entry's JSON in its slot.

use funnelhooks_store::{Cleanup, Index, Kv, StoreError};

use crate::{Error, Timestamp};

/// How many refused requests a list keeps.
pub const KEEP_REFUSED: u64 = 100;
/// How much of what was sent (query or body) an entry keeps, in bytes.
pub const MAX_REFUSED_SENT: usize = 1024;

/// One refused request: when, the status, the error's code, field and message, the method
/// and what was sent (the query, or the body of a POST), cut at [`MAX_REFUSED_SENT`].
pub struct Refusal<'a> {
    /// When it came.
    pub at: Timestamp,
    /// The answer's status.
    pub status: u16,
    /// The error's code.
    pub code: &'a str,
    /// The parameter at fault, if one.
    pub field: Option<&'a str>,
    /// The error's sentence.
    pub message: &'a str,
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The query, or the body.
    pub sent: &'a str,
}

/// Keeps `refusal` in the list `list`, dropping the oldest past [`KEEP_REFUSED`]. The entry
/// is written as JSON text by hand: update-dialog, which writes it, has no room for a
/// serialiser of its own.
pub fn record_refused(kv: &dyn Kv, list: &str, refusal: &Refusal) -> Result<(), StoreError> {
    let text = |v: &str| serde_json::to_string(v).unwrap_or_default();
    let entry = format!(
        r#"{{"at":{},"status":{},"code":{},"field":{},"message":{},"method":{},"sent":{}}}"#,
        text(&refusal.at.iso()),
        refusal.status,
        text(refusal.code),
        refusal.field.map_or_else(|| "null".to_string(), text),
        text(refusal.message),
        text(refusal.method),
        text(crate::text::cut_at(refusal.sent, MAX_REFUSED_SENT)),
    );
    let index = Index::new(kv, list.to_string());
    let slot = index.add(&entry)?;
    if slot > KEEP_REFUSED {
        index.remove(slot - KEEP_REFUSED)?;
    }
    Ok(())
}

/// Up to `limit` entries of the list `list` older than position `before` (`None`: from the
/// newest), newest first, each a JSON object with its `position`; and where the next page
/// starts. Handed on as text, never parsed (the components that list them stay small).
pub fn refused(
    kv: &dyn Kv,
    list: &str,
    before: Option<u64>,
    limit: usize,
) -> Result<(Vec<String>, Option<u64>), Error> {
    // Read without writing (a list must not create the counter), and only within the kept
    // window: older places are gone, and a cursor into them would page through nothing.
    let index = Index::new(kv, list.to_string());
    let last = index.peek_last_slot()?;
    let oldest_kept = last.saturating_sub(KEEP_REFUSED);
    let page = index.page_newest_first(Some(before.unwrap_or(last + 1)), limit)?;
    let next = page.next.filter(|n| *n > oldest_kept + 1);
    let items = page
        .slots
        .iter()
        .zip(&page.items)
        .filter_map(|(slot, text)| {
            let rest = text.strip_prefix('{')?;
            Some(format!(r#"{{"position":{slot},{rest}"#))
        })
        .collect();
    Ok((items, next))
}

/// What was sent, as an entry keeps it: the query, the body, or both (space between).
pub fn sent(query: &str, body: &[u8]) -> String {
    let body = String::from_utf8_lossy(body);
    match (query.is_empty(), body.is_empty()) {
        (_, true) => query.to_string(),
        (true, false) => body.into_owned(),
        (false, false) => format!("{query} {body}"),
    }
}

/// `{"items": [...], "nextCursor": ...}` of a page from [`refused`], as JSON text.
pub fn page_text(items: &[String], next: Option<u64>) -> String {
    let next = next.map_or_else(|| "null".to_string(), |n| format!(r#""{n}""#));
    format!(r#"{{"items":[{}],"nextCursor":{next}}}"#, items.join(","))
}

/// The cleanup of the list `list` (its owner deleted, `what` it was): only the kept window
/// is walked.
pub fn refused_cleanup(kv: &dyn Kv, list: &str, what: String) -> Result<Cleanup, StoreError> {
    let index = Index::new(kv, list.to_string());
    Ok(Cleanup {
        what,
        extra: Vec::new(),
        index: list.to_string(),
        keys: Vec::new(),
        listed: Vec::new(),
        done: index.peek_last_slot()?.saturating_sub(KEEP_REFUSED),
    })
}
