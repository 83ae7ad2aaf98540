//! Refused postbacks, per bot: the newest [`KEEP_REFUSED`] updateDialog requests that a bot's
//! links refused, with why and what was sent, so a marketer sees what a tracker sends wrong
//! (`userBalance=5,000`, a date Chatterfy would take, a step deleted since). Written only when
//! a postback is refused: an accepted postback's path has no write more.
//!
//! Keys: the index `refused:{botId}` holds each entry's JSON in its slot.

use funnelhooks_core::{Error, Timestamp};
use funnelhooks_store::{Cleanup, Index, Kv, Records, StoreError};

use crate::bots::PostbackLink;
use crate::keys::{bot_key, link_key};

/// How many refused postbacks a bot keeps.
pub const KEEP_REFUSED: u64 = 100;
/// How much of what was sent (query or body) an entry keeps, in bytes.
pub const MAX_REFUSED_SENT: usize = 1024;

fn index<'a>(kv: &'a dyn Kv, bot: &str) -> Index<'a> {
    Index::new(kv, format!("refused:{bot}"))
}

/// The bot whose link `link_id` is, when the link and its bot exist now (two reads, on the
/// refused path only). The id alone is not enough: a postback can be refused before its link
/// is read (a body that is not JSON), and anyone who knows a bot's id could make one up.
pub fn bot_of_link(kv: &dyn Kv, link_id: &str) -> Result<Option<String>, Error> {
    let Some(link) = Records::new(kv).get::<PostbackLink>(&link_key(link_id))? else {
        return Ok(None);
    };
    Ok(kv.get(&bot_key(&link.bot_id))?.map(|_| link.bot_id))
}

/// One refused postback: when, the status, the error's code, field and message, the method
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

/// Keeps `refusal` for `bot`, dropping the oldest past [`KEEP_REFUSED`]. The entry is
/// written as JSON text by hand: update-dialog, which writes it, has no room for a serialiser
/// of its own.
pub fn record_refused(kv: &dyn Kv, bot: &str, refusal: &Refusal) -> Result<(), StoreError> {
    let text = |v: &str| serde_json::to_string(v).unwrap_or_default();
    let entry = format!(
        r#"{{"at":{},"status":{},"code":{},"field":{},"message":{},"method":{},"sent":{}}}"#,
        text(&refusal.at.iso()),
        refusal.status,
        text(refusal.code),
        refusal.field.map_or_else(|| "null".to_string(), text),
        text(refusal.message),
        text(refusal.method),
        text(funnelhooks_core::text::cut_at(
            refusal.sent,
            MAX_REFUSED_SENT
        )),
    );
    let index = index(kv, bot);
    let slot = index.add(&entry)?;
    if slot > KEEP_REFUSED {
        index.remove(slot - KEEP_REFUSED)?;
    }
    Ok(())
}

/// Up to `limit` refused postbacks of `bot` older than position `before` (`None`: from the
/// newest), newest first, each a JSON object with its `position`; and where the next page
/// starts. Handed on as text, never parsed (the component that lists them stays small).
pub fn refused(
    kv: &dyn Kv,
    bot: &str,
    before: Option<u64>,
    limit: usize,
) -> Result<(Vec<String>, Option<u64>), Error> {
    // Read without writing (a list must not create the counter), and only within the kept
    // window: older places are gone, and a cursor into them would page through nothing.
    let index = index(kv, bot);
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

/// The cleanup of a deleted bot's refused postbacks: only the kept window is walked.
pub fn refused_cleanup(kv: &dyn Kv, bot: &str) -> Result<Cleanup, StoreError> {
    let index = index(kv, bot);
    Ok(Cleanup {
        what: format!("refused postbacks of bot {bot}"),
        extra: Vec::new(),
        index: format!("refused:{bot}"),
        keys: Vec::new(),
        listed: Vec::new(),
        done: index.peek_last_slot()?.saturating_sub(KEEP_REFUSED),
    })
}
