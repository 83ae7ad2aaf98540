//! Conversions by click id: the conversion links trackers call, where a bot's click ids
//! point, the conversions waiting for a dialog to get theirs, and applying each exactly once.
//!
//! | key | record |
//! |---|---|
//! | `clink:{conversionId}` | a conversion link ([`PostbackLink`]: its id and bot) |
//! | `click:{botId}:{field}:{value}` | [`Claim`] as text (`5001 4002`): the chat whose dialog got this click id last, then those before |
//! | `clicks:{botId}:n`, `clicks:{botId}:{slot}` | the claims, for erasing them with the bot |
//! | `wait:{botId}:{field}:{value}` | [`Waiting`] conversions for a click id no dialog has yet |
//! | `waits:{botId}:n`, `…:{slot}`, `…:cursor`, `…:live` | them in arrival order (expiry), and how many wait |
//! | `waited:{botId}:n`, `…:{slot}` | every click id conversions ever waited for, for erasing them with the bot |
//! | `claimed:n`, `claimed:{slot}`, `claimed:cursor` | [`ClickClaimed`]: dialogs that got a click id conversions wait for, until the conversions component has applied them |
//!
//! A click id that is not a plain `A-Z a-z 0-9 _ -` word of at most 64 bytes is keyed by its
//! SHA-256 instead (`h.` and 32 hex digits), so a key stays short and valid.
//!
//! **Why nothing is lost or applied twice.** A write that gives a dialog a click id points
//! the click id at the chat *before* it writes the dialog, and reads the conversions waiting
//! for that click id *after*. A conversion reads where its click id points and applies to
//! that dialog only when the dialog carries the click id (checked inside the dialog's own
//! compare-and-swap); otherwise it waits, and *after* waiting looks again. Of a dialog write
//! and a conversion racing, one of the two later reads sees the other's earlier write, so the
//! conversion is applied by one side or both; a dialog remembers the conversions applied to
//! it ([`crate::conversion`]), in the same write, so a second application changes nothing.
//! The dialog components only note that conversions wait ([`ClickClaimed`], written to
//! `claimed` before they hand it to the conversions component by chaining); a note the chain
//! did not clear within a minute is applied by the retry sweep, as handoffs are.
//!
//! Two dialogs getting one click id: the last to get it receives its conversions (and when it
//! does not carry it, because its write failed or it changed click id, the one before it);
//! the earlier chats are listed with the pointer, logged as `click_id_shared`, and the
//! conversion's answer says `clickIdShared`. A dialog that gives up a click id keeps the
//! conversions it had.

use funnelhooks_core::log::Level;
use funnelhooks_core::{Error, Kind, Timestamp};
use funnelhooks_store::{GetMany, Index, Kv, Modified, Records, Seen, read_counter};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::auto::AutoActions;
use crate::bots::{Bot, PostbackLink, StepKind, bot_of_link_id, new_link_id, valid_link_id};
use crate::clicks::{
    CLAIMED_GRACE_MS, Claim, ClickClaimed, any_waiting, claim, claim_key, click_suffix,
    click_value, conversion_link_key, cursor_key, live_key, wait_key,
};
use crate::conversion::{Conversion, Known, effect};
use crate::handoff::StepReached;
use crate::model::Dialog;
use crate::params::Param;
use crate::repo::Repo;
use crate::update::StepRef;

/// Most conversion links per bot.
pub const MAX_CONVERSION_LINKS: usize = 20;
/// How long a conversion waits for a dialog to get its click id.
pub const WAIT_MS: i64 = 7 * 24 * 3_600_000;
/// Most conversions waiting per bot; past it a conversion for an unknown click id is refused
/// (429) until some are applied or expire.
pub const MAX_WAITING_PER_BOT: i64 = 10_000;
/// Most conversions waiting for one click id.
pub const MAX_WAITING_PER_CLICK: usize = 20;
/// How many dialogs saving Auto Actions indexes by click id at once (see
/// [`Repo::index_click_ids`]).
pub const INDEX_BATCH: usize = 1_000;

const NOT_CARRIED: &str = "conversion_not_carried";
const REPEAT: &str = "conversion_repeat";

/// A conversion waiting for its click id, and its place in the bot's waiting list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiting {
    /// The conversion.
    pub conversion: Conversion,
    /// Its slot in `waits:{botId}`.
    pub slot: u64,
    /// What makes a repeat of it the same conversion ([`Conversion::key`]): a copy that
    /// arrives while it waits takes no place of its own.
    #[serde(default)]
    pub key: String,
    /// The chat whose dialog is applying it, and since when: one dialog applies it, even
    /// when several get its click id at once; a chat that took it and died is passed over
    /// after [`TAKE_MS`], unless its dialog has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_by: Option<i64>,
    /// Which call took it (two calls for one chat must not share it: one of them may give
    /// it up while the other applies it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub taken_token: String,
    /// When it was taken, in Unix milliseconds.
    #[serde(default)]
    pub taken_at: i64,
}

/// How long a waiting conversion taken by one dialog is kept from the others.
pub const TAKE_MS: i64 = 60_000;

/// What [`Repo::apply_waiting`] did: each conversion's outcome by arrival id, the step entries
/// to deliver, and whether the dialog carried the click id.
struct AppliedWaiting {
    outcomes: Vec<(String, Outcome)>,
    reached: Vec<StepReached>,
    carried: bool,
}

/// What became of a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Applied to the dialog with its click id.
    Applied,
    /// Applied before (the same transaction id, or a once-only type): nothing changed.
    Repeat,
    /// No dialog has its click id yet: applied when one gets it, or dropped at expiry.
    Waiting,
    /// The bot has no action for its event type: nothing to do.
    Ignored,
}

/// What a conversion did, for its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// What became of it.
    pub outcome: Outcome,
    /// The conversion as read.
    pub conversion: Conversion,
    /// The step it moved the dialog to.
    pub step_id: Option<String>,
    /// Parameters its action reads that it did not carry.
    pub missing: Vec<String>,
    /// Until when it waits.
    pub expires_at: Option<Timestamp>,
    /// How many other dialogs got the same click id before.
    pub shared: usize,
    /// Step entries to deliver (the send-webhook steps it moved dialogs into).
    pub reached: Vec<StepReached>,
}

enum Applied {
    Yes {
        step_id: Option<String>,
        missing: Vec<String>,
    },
    Repeat,
    NotCarried,
}

fn conversion_link_missing() -> Error {
    Error::not_found(
        "unknown_conversion_link",
        "no conversion link with this id; it may have been revoked",
    )
}

impl<K: Kv> Repo<'_, K> {
    fn waits(&self, bot: &str) -> Index<'_> {
        Index::new(self.kv, format!("waits:{bot}"))
    }

    // ---- conversion links

    /// Creates a conversion link for the bot.
    pub fn create_conversion_link(
        &self,
        bot_id: &str,
        now: Timestamp,
    ) -> Result<PostbackLink, Error> {
        let link = PostbackLink {
            id: new_link_id(bot_id),
            bot_id: bot_id.to_string(),
            created_at: now,
        };
        self.modify_bot(bot_id, now, |bot| {
            if bot.conversion_links.len() >= MAX_CONVERSION_LINKS {
                return Err(Error::new(
                    Kind::Invalid,
                    "too_many_conversion_links",
                    format!(
                        "a bot has at most {MAX_CONVERSION_LINKS} conversion links; revoke one first"
                    ),
                ));
            }
            bot.conversion_links.push(link.id.clone());
            Ok(())
        })?;
        Records::new(self.kv).put(&conversion_link_key(&link.id), &link)?;
        Ok(link)
    }

    /// The bot's conversion links, oldest first.
    pub fn conversion_links(&self, bot: &Bot) -> Result<Vec<PostbackLink>, Error> {
        let mut out = Vec::new();
        for id in &bot.conversion_links {
            if let Some(link) = Records::new(self.kv).get(&conversion_link_key(id))? {
                out.push(link);
            }
        }
        Ok(out)
    }

    /// Revokes a conversion link: from now on it is a 404.
    pub fn revoke_conversion_link(
        &self,
        bot_id: &str,
        link_id: &str,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.modify_bot(bot_id, now, |bot| {
            let before = bot.conversion_links.len();
            bot.conversion_links.retain(|l| l != link_id);
            if bot.conversion_links.len() == before {
                return Err(conversion_link_missing());
            }
            Ok(())
        })?;
        self.kv.delete(&conversion_link_key(link_id))?;
        Ok(())
    }

    // ---- Auto Actions

    /// Saves the bot's Auto Actions (checked by [`AutoActions::from_json`]) and points the
    /// click ids of up to [`INDEX_BATCH`] of its dialogs not indexed yet at them, applying
    /// conversions that waited for them; returns the saved settings, how many dialogs are left
    /// to index (call again for them), and the step entries to deliver.
    pub fn put_auto_actions(
        &self,
        bot_id: &str,
        body: &serde_json::Value,
        now: Timestamp,
    ) -> Result<(AutoActions, u64, Vec<StepReached>), Error> {
        let bot = self.bot(bot_id)?;
        let auto = AutoActions::from_json(body, &bot.steps, &bot.field_types())?;
        let field_changed = bot.click_id_field() != Some(auto.click_id_field.as_str());
        let stored = serde_json::to_value(&auto).unwrap_or_default();
        let bot = self.modify_bot(bot_id, now, |b| {
            b.auto_actions = Some(stored.clone());
            Ok(b.clone())
        })?;
        if field_changed {
            self.kv.delete(&format!("clicks:{bot_id}:indexed"))?;
        }
        let (left, reached) = self.index_click_ids(&bot, &auto, now)?;
        Ok((auto, left, reached))
    }

    /// Points the click ids of the bot's dialogs created before Auto Actions were set up at
    /// their chats, [`INDEX_BATCH`] dialogs a call, from where the last call stopped, and
    /// applies conversions waiting for them; returns how many dialogs may be left, and the
    /// step entries to deliver.
    fn index_click_ids(
        &self,
        bot: &Bot,
        auto: &AutoActions,
        now: Timestamp,
    ) -> Result<(u64, Vec<StepReached>), Error> {
        let done_key = format!("clicks:{}:indexed", bot.id);
        let mut after: u64 = Records::new(self.kv).get(&done_key)?.unwrap_or(0);
        let (mut indexed, mut reached) = (0, Vec::new());
        let last = |repo: &Self| -> Result<u64, Error> {
            Ok(Index::new(repo.kv, format!("dlgs:{}", bot.id)).peek_last_slot()?)
        };
        while indexed < INDEX_BATCH {
            let page = self.dialogs(bot, after, 100)?;
            for d in &page.items {
                let Some(value) = d.tracker.get(&auto.click_id_field) else {
                    continue;
                };
                let Some(value) = click_value(value) else {
                    continue;
                };
                let suffix = click_suffix(&auto.click_id_field, value);
                // A pointer made since is newer than this dialog's click id.
                if Claim::read(self.kv, &claim_key(&bot.id, &suffix))?.is_some() {
                    continue;
                }
                claim(self.kv, bot, &auto.click_id_field, d.chat_id, value)?;
                if any_waiting(self.kv, &bot.id, &suffix)? {
                    let done = self.apply_waiting(bot, auto, d.chat_id, &suffix, now)?;
                    reached.extend(done.reached);
                }
            }
            indexed += page.items.len().max(1);
            match page.next {
                Some(next) => after = next,
                None => {
                    after = last(self)?;
                    Records::new(self.kv).put(&done_key, &after)?;
                    return Ok((0, reached));
                }
            }
        }
        Records::new(self.kv).put(&done_key, &after)?;
        Ok((last(self)?.saturating_sub(after), reached))
    }

    /// How many conversions wait for their click id in the bot.
    pub fn waiting_conversions(&self, bot: &Bot) -> Result<i64, Error> {
        Ok(read_counter(self.kv.get(&live_key(&bot.id))?.as_deref()).max(0))
    }

    /// Applies the conversions waiting for the click id a dialog just got, then clears its
    /// note. Returns how many were applied, and the step entries to deliver.
    pub fn click_claimed(
        &self,
        claimed: &ClickClaimed,
        now: Timestamp,
    ) -> Result<(usize, Vec<StepReached>), Error> {
        let mut result = (0, Vec::new());
        if let Ok(bot) = self.bot(&claimed.bot_id)
            && let Some(auto) = bot.auto()
        {
            let key = claim_key(&bot.id, &claimed.suffix);
            let claim = Claim::read(self.kv, &key)?.unwrap_or(Claim {
                chat_id: claimed.chat_id,
                shared_with: Vec::new(),
            });
            let done = self.apply_to_claim(&bot, &auto, &claim, &claimed.suffix, now)?;
            let applied = done.outcomes.iter();
            result = (
                applied.filter(|(_, o)| *o == Outcome::Applied).count(),
                done.reached,
            );
        }
        if let Some(slot) = claimed.slot {
            Index::new(self.kv, "claimed".into()).remove(slot)?;
        }
        Ok(result)
    }

    /// Whether notes of [`ClickClaimed`] are left past the cursor (two reads: the retry sweep
    /// asks before it chains to the conversions component).
    pub fn claims_waiting(&self) -> Result<bool, Error> {
        let last = Index::new(self.kv, "claimed".into()).peek_last_slot()?;
        let cursor: u64 = Records::new(self.kv).get("claimed:cursor")?.unwrap_or(0);
        Ok(last > cursor)
    }

    /// Notes of [`ClickClaimed`] older than [`CLAIMED_GRACE_MS`] (their chained request was
    /// lost), up to `limit`, oldest first; moves the cursor past those handled before.
    pub fn stale_claims(&self, now: Timestamp, limit: usize) -> Result<Vec<ClickClaimed>, Error> {
        let index = Index::new(self.kv, "claimed".into());
        let last = index.peek_last_slot()?;
        let records = Records::new(self.kv);
        let cursor: u64 = records.get("claimed:cursor")?.unwrap_or(0);
        let (mut handled_to, mut slot, mut stale) = (cursor, cursor, Vec::new());
        while slot < last && stale.len() < limit && slot - cursor < 1_000 {
            slot += 1;
            let Some(text) = index.get(slot)? else {
                if stale.is_empty() {
                    handled_to = slot;
                }
                continue;
            };
            match serde_json::from_str::<ClickClaimed>(&text) {
                Ok(c) if c.at_ms > now.0 - CLAIMED_GRACE_MS => break,
                Ok(mut c) => {
                    c.slot = Some(slot);
                    stale.push(c);
                }
                Err(_) => index.remove(slot)?,
            }
        }
        if handled_to > cursor {
            records.put("claimed:cursor", &handled_to)?;
        }
        Ok(stale)
    }

    /// Applies the conversions waiting for `suffix` to the chat `claim` points at, or, when
    /// that dialog does not carry the click id, to the first of the chats before it that does.
    fn apply_to_claim(
        &self,
        bot: &Bot,
        auto: &AutoActions,
        claim: &Claim,
        suffix: &str,
        now: Timestamp,
    ) -> Result<AppliedWaiting, Error> {
        let mut last = None;
        for chat in std::iter::once(claim.chat_id).chain(claim.shared_with.iter().copied()) {
            let done = self.apply_waiting(bot, auto, chat, suffix, now)?;
            if done.carried {
                return Ok(done);
            }
            last = Some(done);
        }
        Ok(last.unwrap_or(AppliedWaiting {
            outcomes: Vec::new(),
            reached: Vec::new(),
            carried: false,
        }))
    }

    /// Applies the conversions waiting for the click id of `suffix` to chat `chat`, oldest
    /// first, while its dialog carries the click id.
    fn apply_waiting(
        &self,
        bot: &Bot,
        auto: &AutoActions,
        chat: i64,
        suffix: &str,
        now: Timestamp,
    ) -> Result<AppliedWaiting, Error> {
        let key = wait_key(&bot.id, suffix);
        // Read once: the stale takers are judged from it, and the take below is prepared
        // from it (its compare-and-swap reads again only when the list changed).
        let raw = self.kv.get(&key)?;
        let seen: Vec<Waiting> = Records::parse(&key, raw.clone())?.unwrap_or_default();
        let mut done = Vec::new();
        // Taken by another chat long ago: applied there (its dialog has it) or left by a
        // writer that died.
        let mut applied_elsewhere = Vec::new();
        for w in &seen {
            if let Some(other) = w.taken_by
                && w.taken_at + TAKE_MS <= now.0
                && self.has_conversion(bot, other, &w.conversion.id)?
            {
                applied_elsewhere.push(w.slot);
            }
        }
        let token = funnelhooks_core::new_id();
        done.extend(applied_elsewhere.iter().copied());
        // What this chat takes, in one compare-and-swap: so that two dialogs getting the
        // click id at once never both apply a conversion.
        let seen_bytes = match &raw {
            Some(bytes) => Seen::Bytes(bytes),
            None => Seen::Absent,
        };
        let list = Records::new(self.kv)
            .modify_seen(&key, seen_bytes, |list: &mut Vec<Waiting>| {
                let mut mine = Vec::new();
                for w in list.iter_mut() {
                    let free = w.taken_token == token
                        || w.taken_by.is_none()
                        || (w.taken_at + TAKE_MS <= now.0 && !applied_elsewhere.contains(&w.slot));
                    if free {
                        w.taken_by = Some(chat);
                        w.taken_token = token.clone();
                        w.taken_at = now.0;
                        mine.push(w.clone());
                    }
                }
                Ok::<_, Error>(mine)
            })?
            .unwrap_or_default();
        let mut out = AppliedWaiting {
            outcomes: Vec::new(),
            reached: Vec::new(),
            carried: true,
        };
        for (i, w) in list.iter().enumerate() {
            let c = &w.conversion;
            if c.at.0 + WAIT_MS <= now.0 {
                done.push(w.slot);
                continue;
            }
            match self.apply_conversion(bot, auto, chat, c, now) {
                Ok((Applied::Yes { .. }, r)) => {
                    out.outcomes.push((c.id.clone(), Outcome::Applied));
                    out.reached.extend(r);
                    done.push(w.slot);
                }
                Ok((Applied::Repeat, _)) => {
                    out.outcomes.push((c.id.clone(), Outcome::Repeat));
                    done.push(w.slot);
                }
                // Not this dialog's (any more): they go on waiting, free for another.
                Ok((Applied::NotCarried, _)) => {
                    out.carried = false;
                    let untouched: Vec<u64> = list[i..].iter().map(|w| w.slot).collect();
                    Records::new(self.kv).modify(&key, |all: &mut Vec<Waiting>| {
                        for w in all.iter_mut() {
                            if untouched.contains(&w.slot) && w.taken_token == token {
                                w.taken_by = None;
                                w.taken_token.clear();
                            }
                        }
                        Ok::<_, Error>(())
                    })?;
                    break;
                }
                Err(e) if e.kind.is_transient() => return Err(e),
                Err(e) => {
                    // The bot changed since it arrived (its action or step removed, a field
                    // retyped), or the dialog cannot take it: it can never apply. Said, and
                    // dropped.
                    dropped(&bot.id, chat, c, &e);
                    done.push(w.slot);
                }
            }
        }
        self.unwait(&bot.id, suffix, &done)?;
        Ok(out)
    }

    /// Whether chat `chat`'s dialog had conversion `id` applied.
    fn has_conversion(&self, bot: &Bot, chat: i64, id: &str) -> Result<bool, Error> {
        let Some(d) = self.find_dialog(bot, chat)? else {
            return Ok(false);
        };
        Ok(d.conversions
            .iter()
            .any(|c| c.get("id").and_then(serde_json::Value::as_str) == Some(id)))
    }

    /// Removes the waiting conversions in `slots` of the click id `suffix`.
    fn unwait(&self, bot: &str, suffix: &str, slots: &[u64]) -> Result<(), Error> {
        if slots.is_empty() {
            return Ok(());
        }
        let removed = Records::new(self.kv)
            .modify(&wait_key(bot, suffix), |list: &mut Vec<Waiting>| {
                let before = list.len();
                list.retain(|w| !slots.contains(&w.slot));
                Ok::<_, Error>(before - list.len())
            })?
            .unwrap_or(0);
        let waits = self.waits(bot);
        for slot in slots {
            waits.remove(*slot)?;
        }
        // Only the writer that removed them counts them out.
        if removed > 0 {
            self.kv.increment(&live_key(bot), -(removed as i64))?;
        }
        Ok(())
    }

    /// Drops conversions that waited past [`WAIT_MS`], oldest first, looking at up to
    /// `max` of them. A dialog that got a click id meanwhile gets its conversions instead.
    fn expire_waiting(&self, bot: &Bot, now: Timestamp, max: u64) -> Result<(), Error> {
        let waits = self.waits(&bot.id);
        let last = waits.peek_last_slot()?;
        let records = Records::new(self.kv);
        let cursor: u64 = records.get(&cursor_key(&bot.id))?.unwrap_or(0);
        let mut handled = cursor;
        while handled < last && handled - cursor < max {
            let slot = handled + 1;
            match waits.get(slot)? {
                // Taken by a conversion still writing itself down (its slot is named last),
                // or removed: among the newest, wait for it; older, it was removed.
                None if last - slot < RECENT_SLOTS => break,
                None => {}
                Some(suffix) => {
                    let list: Vec<Waiting> = records
                        .get(&wait_key(&bot.id, &suffix))?
                        .unwrap_or_default();
                    match list.iter().find(|w| w.slot == slot) {
                        Some(w) if w.conversion.at.0 + WAIT_MS > now.0 => break,
                        Some(_) => {
                            // A chained note that never arrived must not cost a conversion.
                            if let (Some(auto), Some(claim)) = (
                                bot.auto(),
                                Claim::read(self.kv, &claim_key(&bot.id, &suffix))?,
                            ) {
                                self.apply_to_claim(bot, &auto, &claim, &suffix, now)?;
                            }
                            let list: Vec<Waiting> = records
                                .get(&wait_key(&bot.id, &suffix))?
                                .unwrap_or_default();
                            let stale: Vec<u64> = list
                                .iter()
                                .filter(|w| w.conversion.at.0 + WAIT_MS <= now.0)
                                .map(|w| w.slot)
                                .collect();
                            self.unwait(&bot.id, &suffix, &stale)?;
                            waits.remove(slot)?;
                        }
                        None => waits.remove(slot)?,
                    }
                }
            }
            handled = slot;
        }
        if handled > cursor {
            records.put(&cursor_key(&bot.id), &handled)?;
        }
        Ok(())
    }

    /// Adds `c` (whose repeats have `key`) to the conversions waiting for the click id of
    /// `suffix`; a copy of one already waiting takes no place.
    fn wait(
        &self,
        bot: &Bot,
        suffix: &str,
        c: &Conversion,
        key: &str,
        now: Timestamp,
    ) -> Result<(), Error> {
        let live = || -> Result<i64, Error> {
            Ok(read_counter(self.kv.get(&live_key(&bot.id))?.as_deref()))
        };
        if live()? >= MAX_WAITING_PER_BOT {
            self.expire_waiting(bot, now, 1_000)?;
            if live()? >= MAX_WAITING_PER_BOT {
                return Err(Error::new(
                    Kind::RateLimited,
                    "too_many_waiting_conversions",
                    format!(
                        "{MAX_WAITING_PER_BOT} conversions of this bot wait for dialogs with their click ids; this one cannot wait too (are the dialogs started with the click id in tracker fields?)"
                    ),
                )
                .retry_after(3_600));
            }
        }
        let record = wait_key(&bot.id, suffix);
        // The slot is taken first and named last, so that the expiry walk never passes a
        // conversion whose entry is not written yet (see `expire_waiting`).
        let waits = self.waits(&bot.id);
        let slot = waits.reserve()?;
        // A few expired ones go with every fourth arrival: the walk costs reads.
        if slot.is_multiple_of(4) {
            self.expire_waiting(bot, now, 16)?;
        }
        let waiting = Waiting {
            conversion: c.clone(),
            slot,
            key: key.to_string(),
            taken_by: None,
            taken_token: String::new(),
            taken_at: 0,
        };
        let once = !key.starts_with("id:");
        let added = Records::new(self.kv).upsert(
            &record,
            &format!("{record}:born"),
            Vec::new,
            |list: &mut Vec<Waiting>| {
                if list.iter().any(|w| w.slot == slot) {
                    return Ok(Some(true));
                }
                if once && list.iter().any(|w| w.key == key) {
                    return Ok(None);
                }
                if list.len() >= MAX_WAITING_PER_CLICK {
                    return Ok(Some(false));
                }
                list.push(waiting.clone());
                Ok::<_, Error>(Some(true))
            },
        );
        match added {
            // A copy of one waiting: that one stands for it.
            Ok((None, _)) => Ok(()),
            Ok((Some(true), modified)) => {
                self.kv.increment(&live_key(&bot.id), 1)?;
                self.kv.set(&waits.slot_key(slot), suffix.as_bytes())?;
                if modified == Modified::Created {
                    Index::new(self.kv, format!("waited:{}", bot.id)).add(suffix)?;
                }
                Ok(())
            }
            Ok((Some(false), _)) => Err(Error::new(
                Kind::RateLimited,
                "too_many_waiting_conversions",
                format!("{MAX_WAITING_PER_CLICK} conversions wait for this click id already"),
            )
            .retry_after(3_600)),
            Err(e) => Err(e),
        }
    }

    /// Applies `c` to chat `chat`'s dialog if it carries `c`'s click id, once.
    fn apply_conversion(
        &self,
        bot: &Bot,
        auto: &AutoActions,
        chat: i64,
        c: &Conversion,
        now: Timestamp,
    ) -> Result<(Applied, Option<StepReached>), Error> {
        let action = auto.action(&c.event_type).ok_or_else(|| {
            Error::conflict(
                "no_action",
                format!("the bot has no action for {:?} any more", c.event_type),
            )
        })?;
        let step = match &action.step_id {
            None => None,
            Some(id) => Some(
                self.step::<IgnoredAny>(bot, id)
                    .map(|s| StepRef {
                        id: s.id,
                        key: s.key,
                        sends_webhook: s.kind == StepKind::SendWebhook,
                    })
                    .map_err(|_| {
                        Error::conflict(
                            "unknown_step",
                            format!(
                                "the action for {:?} moves to step {id}, which the bot no longer has",
                                c.event_type
                            ),
                        )
                    })?,
            ),
        };
        let effect = effect(c, action, &bot.field_types(), step)?;
        let handoff = match &effect.update.step {
            // The webhook renders with this conversion's own values, over whatever a later
            // one wrote before it was delivered.
            Some(s) if s.sends_webhook => Some(self.handoffs().hand_off_entry(
                &bot.id,
                chat,
                &s.id,
                effect.update.fields.clone(),
                now,
            )?),
            _ => None,
        };
        let delivery = handoff.as_ref().map(|h| h.entry.id.as_str());
        let field = &auto.click_id_field;
        let not_carried = || Error::conflict(NOT_CARRIED, "the dialog does not carry the click id");
        let change = |d: &mut Dialog| {
            if d.tracker.get(field).and_then(|v| click_value(v)) != Some(c.click_id.as_str()) {
                return Err(not_carried());
            }
            let mut mark = effect.mark.clone();
            mark.delivery = delivery.map(str::to_string);
            match d.seen_conversion(&mark) {
                Known::Repeat => Err(Error::conflict(REPEAT, "applied before")),
                // Applied by another writer, whose step entry is the one delivered.
                Known::Elsewhere => Ok(false),
                Known::Itself => Ok(delivery.is_some()),
                Known::New => {
                    d.convert(&effect, delivery, now)?;
                    Ok(delivery.is_some())
                }
            }
        };
        match self.change_dialog(bot, chat, Seen::Unknown, now, Some(not_carried()), &change) {
            Ok((dialog, _, entered)) => {
                // The counters as this conversion left them, for its webhook (the chained
                // delivery; one recovered by the sweep renders them as they are then).
                let handoff = handoff.filter(|_| entered).map(|mut h| {
                    for key in effect.add.keys() {
                        if let Some(v) = dialog.fields.get(key) {
                            h.entry.fields.insert(key.clone(), v.clone());
                        }
                    }
                    h
                });
                Ok((
                    Applied::Yes {
                        step_id: effect.mark.step_id.clone(),
                        missing: effect.missing.clone(),
                    },
                    handoff,
                ))
            }
            Err(e) if e.code == NOT_CARRIED => Ok((Applied::NotCarried, None)),
            Err(e) if e.code == REPEAT => Ok((Applied::Repeat, None)),
            Err(e) => Err(e),
        }
    }

    /// The bot behind conversion link `link_id` (read with it in one round trip when the id
    /// names the bot).
    fn bot_behind_conversion_link(&self, link_id: &str) -> Result<Bot, Error>
    where
        K: GetMany,
    {
        if !valid_link_id(link_id) {
            return Err(conversion_link_missing());
        }
        let link_key = conversion_link_key(link_id);
        let guess = bot_of_link_id(link_id).map(|b| format!("bot:{b}"));
        let mut keys = vec![link_key.as_str()];
        keys.extend(guess.as_deref());
        let found = self.kv.get_many(&keys)?;
        let mut found = found.into_iter();
        let link: PostbackLink = Records::parse(&link_key, found.next().flatten())?
            .ok_or_else(conversion_link_missing)?;
        let bot_key = format!("bot:{}", link.bot_id);
        let bot: Option<Bot> = match (guess, found.next().flatten()) {
            (Some(g), Some(bytes)) if g == bot_key => Records::parse(&bot_key, Some(bytes))?,
            _ => Records::new(self.kv).get(&bot_key)?,
        };
        bot.ok_or_else(conversion_link_missing)
    }

    /// A conversion through conversion link `link_id`: applied to the dialog with its click
    /// id, or waiting for one. Bad input is refused before anything is written; once it is
    /// applied or waiting, what fails after is logged, not answered (a tracker that saw an
    /// error would send it again).
    pub fn convert(
        &self,
        link_id: &str,
        params: Vec<(String, Param)>,
        now: Timestamp,
    ) -> Result<Converted, Error>
    where
        K: GetMany,
    {
        let bot = self.bot_behind_conversion_link(link_id)?;
        let auto = bot.auto().unwrap_or_default();
        let (conversion, action) =
            Conversion::read(&params, &auto.params, |t| auto.action(t).cloned(), now)?;
        let mut done = Converted {
            outcome: Outcome::Ignored,
            conversion,
            step_id: None,
            missing: Vec::new(),
            expires_at: None,
            shared: 0,
            reached: Vec::new(),
        };
        let Some(action) = action else {
            return Ok(done);
        };
        let c = done.conversion.clone();
        // Checked before anything is written: a bad payout is the tracker's to fix now.
        effect(&c, &action, &bot.field_types(), None)?;
        let suffix = click_suffix(&auto.click_id_field, &c.click_id);
        let claim = Claim::read(self.kv, &claim_key(&bot.id, &suffix))?;
        if let Some(claim) = &claim {
            done.shared = claim.shared_with.len();
            // Conversions left waiting for this click id (their dialog's note was lost with
            // its instance) go first: they came first.
            if any_waiting(self.kv, &bot.id, &suffix)? {
                let earlier = self.apply_to_claim(&bot, &auto, claim, &suffix, now);
                match earlier {
                    Ok(e) => done.reached.extend(e.reached),
                    Err(e) => failed_after(&bot.id, &c, &e),
                }
            }
            for chat in std::iter::once(claim.chat_id).chain(claim.shared_with.iter().copied()) {
                match self.apply_conversion(&bot, &auto, chat, &c, now) {
                    Ok((Applied::Yes { step_id, missing }, reached)) => {
                        done.outcome = Outcome::Applied;
                        done.step_id = step_id;
                        done.missing = missing;
                        done.reached.extend(reached);
                        return Ok(done);
                    }
                    Ok((Applied::Repeat, _)) => {
                        done.outcome = Outcome::Repeat;
                        return Ok(done);
                    }
                    Ok((Applied::NotCarried, _)) => {}
                    Err(e) => return Err(not_applicable(&bot.id, &c, e)),
                }
            }
        }
        self.wait(&bot, &suffix, &c, &c.key(&action), now)?;
        done.outcome = Outcome::Waiting;
        done.expires_at = Some(Timestamp(now.0 + WAIT_MS));
        // A dialog may have got the click id while this one was being put to wait.
        let after = Claim::read(self.kv, &claim_key(&bot.id, &suffix)).and_then(|claim| {
            claim
                .map(|claim| self.apply_to_claim(&bot, &auto, &claim, &suffix, now))
                .transpose()
        });
        match after {
            Ok(Some(applied)) => {
                done.reached.extend(applied.reached);
                if let Some((_, outcome)) = applied.outcomes.iter().find(|(id, _)| *id == c.id) {
                    done.outcome = *outcome;
                    done.expires_at = None;
                    if *outcome == Outcome::Applied {
                        done.step_id = action.step_id.clone();
                    }
                }
            }
            Ok(None) => {}
            Err(e) => failed_after(&bot.id, &c, &e),
        }
        Ok(done)
    }
}

/// Slots among the newest this many of a bot's waiting list are not passed by the expiry
/// walk while empty: their conversion may still be writing itself down.
const RECENT_SLOTS: u64 = 16;

fn dropped(bot: &str, chat: i64, c: &Conversion, e: &Error) {
    if let Some(line) = funnelhooks_core::log::line(Level::Warn, "conversion_dropped") {
        line.str("bot", bot)
            .num("chat", chat)
            .str("type", &c.event_type)
            .str("code", e.code)
            .str("error", &e.message)
            .emit();
    }
}

/// A failure after the conversion was applied or put to wait: logged; the answer stands.
fn failed_after(bot: &str, c: &Conversion, e: &Error) {
    if let Some(line) = funnelhooks_core::log::line(Level::Warn, "conversion_followup_failed") {
        line.str("bot", bot)
            .str("type", &c.event_type)
            .str("code", e.code)
            .str("error", &e.message)
            .emit();
    }
}

/// An error from applying a conversion to its dialog, as its sender sees it: the store's
/// troubles as they are, anything about the dialog (its size, its fields) or the bot's
/// settings as one `409` that tells nothing of the dialog; the operator's log has the rest.
fn not_applicable(bot: &str, c: &Conversion, e: Error) -> Error {
    if e.kind.is_transient() {
        return e;
    }
    if let Some(line) = funnelhooks_core::log::line(Level::Warn, "conversion_not_applicable") {
        line.str("bot", bot)
            .str("type", &c.event_type)
            .str("code", e.code)
            .str("error", &e.message)
            .emit();
    }
    Error::conflict(
        "conversion_not_applicable",
        "the conversion cannot be applied to the dialog with its click id (the bot's settings or the dialog do not allow it); the operator's log says why",
    )
}
