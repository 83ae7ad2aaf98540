//! Where a bot's click ids point, and what the dialog components do with them: point a click
//! id at the chat whose dialog gets it (before that write), note that conversions wait for it
//! (after), and forget it with the dialog. Applying conversions is
//! [`crate::conversions`]'s; this is the part the dialog path shares with it, over the store
//! alone. Keys are listed in [`crate::conversions`].

use funnelhooks_core::log::Level;
use funnelhooks_core::{Error, Timestamp};
use funnelhooks_store::{Cleanup, Index, Kv};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bots::Bot;
use crate::model::Dialog;

/// Most earlier chats a claim remembers.
const MAX_SHARED: usize = 5;

/// Where a click id points. Stored as the chat ids in plain text, newest first: the dialog
/// components write it on their hot path, and a JSON record cost them 8 KB of code.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The chat whose dialog got the click id last.
    pub chat_id: i64,
    /// Chats that had it before, newest first.
    pub shared_with: Vec<i64>,
}

impl Claim {
    pub(crate) fn read(kv: &dyn Kv, key: &str) -> Result<Option<Claim>, Error> {
        let Some(bytes) = kv.get(key)? else {
            return Ok(None);
        };
        let mut chats = std::str::from_utf8(&bytes)
            .unwrap_or_default()
            .split(' ')
            .filter_map(|c| c.parse::<i64>().ok());
        Ok(chats.next().map(|chat_id| Claim {
            chat_id,
            shared_with: chats.collect(),
        }))
    }

    pub(crate) fn text(&self) -> String {
        let mut out = self.chat_id.to_string();
        for c in &self.shared_with {
            out.push(' ');
            out.push_str(&c.to_string());
        }
        out
    }
}

/// A dialog got a click id conversions wait for: what update-dialog and bots-api hand the
/// conversions component (by Spin's local chaining) after answering, so that applying them
/// lives in one component. If the chain is lost, the next conversion for the click id applies
/// them, or they expire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClickClaimed {
    /// The bot.
    pub bot_id: String,
    /// The chat whose dialog got the click id.
    pub chat_id: i64,
    /// The click id's key suffix.
    pub suffix: String,
    /// When, in Unix milliseconds.
    #[serde(default)]
    pub at_ms: i64,
    /// Its note in `claimed`, if writing it worked.
    #[serde(default)]
    pub slot: Option<u64>,
}

/// How long a [`ClickClaimed`] note may wait for its chained request before the retry sweep
/// applies it.
pub const CLAIMED_GRACE_MS: i64 = 60_000;

pub(crate) fn conversion_link_key(id: &str) -> String {
    format!("clink:{id}")
}

/// `{field}:{value}`, the part of a click id's keys after the bot.
pub(crate) fn click_suffix(field: &str, value: &str) -> String {
    format!("{field}:{}", click_short(value))
}

/// A click id as keys and marks carry it: itself when it is a plain word of at most 64
/// bytes, else `h.` and 32 hex digits of its SHA-256.
pub(crate) fn click_short(value: &str) -> String {
    let plain = value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        value.to_string()
    } else {
        let digest = Sha256::digest(value.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("h.{hex}")
    }
}

pub(crate) fn claim_key(bot: &str, suffix: &str) -> String {
    format!("click:{bot}:{suffix}")
}

pub(crate) fn wait_key(bot: &str, suffix: &str) -> String {
    format!("wait:{bot}:{suffix}")
}

pub(crate) fn live_key(bot: &str) -> String {
    format!("waits:{bot}:live")
}

pub(crate) fn cursor_key(bot: &str) -> String {
    format!("waits:{bot}:cursor")
}

/// The cleanup jobs and keys that erase a bot's click ids and waiting conversions.
pub(crate) fn cleanups(bot: &Bot) -> (Vec<String>, Vec<Cleanup>) {
    if bot.auto_actions.is_none() && bot.conversion_links.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let id = &bot.id;
    let mut extra: Vec<String> = bot
        .conversion_links
        .iter()
        .map(|l| conversion_link_key(l))
        .collect();
    extra.extend([live_key(id), cursor_key(id), format!("clicks:{id}:indexed")]);
    let job = |index: String, keys: Vec<String>| Cleanup {
        what: format!("bot {id}"),
        extra: Vec::new(),
        index,
        keys,
        listed: Vec::new(),
        done: 0,
    };
    let jobs = vec![
        job(format!("clicks:{id}"), vec![format!("click:{id}:{{}}")]),
        job(
            format!("waited:{id}"),
            vec![format!("wait:{id}:{{}}"), format!("wait:{id}:{{}}:born")],
        ),
        // Its slots only: the records are erased through `waited`.
        job(format!("waits:{id}"), Vec::new()),
    ];
    (extra, jobs)
}

/// A tracker value as a click id: trimmed; `None` when empty, or a tracker macro that was
/// never filled in (`{subid}`).
pub(crate) fn click_value(value: &str) -> Option<&str> {
    let v = value.trim();
    let unfilled_macro = v.starts_with('{') && v.ends_with('}');
    (!v.is_empty() && !unfilled_macro).then_some(v)
}

/// Before a write gives chat `chat` click id `value` (see [`click_value`]): points the
/// click id at it. Returns the click id's key suffix.
pub(crate) fn claim(
    kv: &dyn Kv,
    bot: &Bot,
    field: &str,
    chat: i64,
    value: &str,
) -> Result<String, Error> {
    let suffix = click_suffix(field, value);
    let key = claim_key(&bot.id, &suffix);
    let before = Claim::read(kv, &key)?;
    if before.as_ref().is_some_and(|c| c.chat_id == chat) {
        return Ok(suffix);
    }
    let mut shared_with = Vec::new();
    if let Some(c) = &before {
        shared_with.push(c.chat_id);
        shared_with.extend(c.shared_with.iter().filter(|s| **s != chat));
        shared_with.truncate(MAX_SHARED);
        if let Some(line) = funnelhooks_core::log::line(Level::Warn, "click_id_shared") {
            line.str("bot", &bot.id)
                .num("chat", chat)
                .num("before", c.chat_id)
                .str(
                    "then",
                    "conversions for this click id go to the newer dialog",
                )
                .emit();
        }
    }
    let claim = Claim {
        chat_id: chat,
        shared_with,
    };
    kv.set(&key, claim.text().as_bytes())?;
    if before.is_none() {
        Index::new(kv, format!("clicks:{}", bot.id)).add(&suffix)?;
    }
    Ok(suffix)
}

/// After a dialog erased: its click id no longer points at it.
pub(crate) fn unclaim(kv: &dyn Kv, bot: &Bot, dialog: &Dialog) -> Result<(), Error> {
    let Some(field) = bot.click_id_field() else {
        return Ok(());
    };
    let Some(value) = dialog.tracker.get(field).and_then(|v| click_value(v)) else {
        return Ok(());
    };
    let key = claim_key(&bot.id, &click_suffix(field, value));
    let Some(mut claim) = Claim::read(kv, &key)? else {
        return Ok(());
    };
    claim.shared_with.retain(|c| *c != dialog.chat_id);
    if claim.chat_id == dialog.chat_id {
        match claim.shared_with.first().copied() {
            Some(next) => {
                claim.chat_id = next;
                claim.shared_with.remove(0);
            }
            None => {
                kv.delete(&key)?;
                return Ok(());
            }
        }
    }
    kv.set(&key, claim.text().as_bytes())?;
    Ok(())
}

/// Whether conversions wait for the click id of `suffix` (read as bytes: the dialog
/// components do not apply them themselves, see [`ClickClaimed`]).
pub(crate) fn any_waiting(kv: &dyn Kv, bot: &str, suffix: &str) -> Result<bool, Error> {
    // A list emptied by the conversions applied is `[]`.
    let list = kv.get(&wait_key(bot, suffix))?;
    Ok(list.is_some_and(|l| {
        let json = funnelhooks_store::strip_ops(&l);
        json.iter().any(|b| !b" \t\r\n[]".contains(b))
    }))
}

/// After a dialog write gave chat `chat` the click id of `suffix` and conversions wait
/// for it: the note for the conversions component, written down first so that the retry
/// sweep applies it if the chained request is lost.
pub(crate) fn note_claimed(
    kv: &dyn Kv,
    bot: &str,
    chat: i64,
    suffix: String,
    now: Timestamp,
) -> Result<ClickClaimed, Error> {
    let mut claimed = ClickClaimed {
        bot_id: bot.to_string(),
        chat_id: chat,
        suffix,
        at_ms: now.0,
        slot: None,
    };
    let text = serde_json::to_string(&claimed).unwrap_or_default();
    claimed.slot = Some(Index::new(kv, "claimed".into()).add(&text)?);
    Ok(claimed)
}
