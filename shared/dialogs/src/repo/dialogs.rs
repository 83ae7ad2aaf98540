//! Dialogs: updateDialog postbacks, the bot engine's start, reading, listing and erasing.

use super::*;

/// Dialogs with their places in the bot's list, and where the next page starts.
type Placed = (Vec<(u64, Dialog)>, Option<u64>);

/// A postback that found its dialog on a webhook step had written no handoff, and the dialog
/// has left the step since: made again with one.
const HANDOFF_NEEDED: &str = "handoff_needed";

/// Whether the dialog `record` (as stored: JSON, perhaps after a line of operation ids) is on
/// step `step`. Its own `stepId` is the record's first: the members holding others'
/// (`conversions`, `history`) come after it, and text values are JSON-escaped.
fn on_step(record: &[u8], step: &str) -> bool {
    let Some(at) = find(record, br#""stepId":"#) else {
        return false;
    };
    let value = &record[at + br#""stepId":"#.len()..];
    value.first() == Some(&b'"')
        && value[1..].starts_with(step.as_bytes())
        && value.get(1 + step.len()) == Some(&b'"')
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// How many places of a bot's list one search call looks at.
pub const MAX_SEARCHED: usize = 1_000;

/// How many places a search reads at a time.
const SEARCH_BATCH: usize = 100;

impl<'a, K: Kv> Repo<'a, K> {
    /// The bot behind link `link_id` and the postback's parameters checked against it, and
    /// the dialog's record when it could be read with them (see [`Repo::bot_behind`]).
    pub(super) fn read_postback(
        &self,
        link_id: &str,
        params: Vec<(String, Param)>,
    ) -> Result<(Bot, Update, Option<SeenDialog>), Error>
    where
        K: GetMany,
    {
        if !valid_link_id(link_id) {
            return Err(link_missing());
        }
        // Step ids are UUIDs: any other text names no step and is not read.
        let named_step = step_id_of(&params).filter(|id| is_uuid(id));
        let (bot, seen, seen_step) =
            self.bot_behind(link_id, chat_id_of(&params), named_step.as_deref())?;
        let fields = bot.field_types();
        let step = |id: &str| match &seen_step {
            Some(bytes) if named_step.as_deref() == Some(id) => {
                self.step_ref_seen(&bot, id, bytes.as_deref())
            }
            _ => self.step_ref(&bot, id),
        };
        let schema = BotSchema {
            fields: &fields,
            step: &step,
            auto: bot.auto_actions.as_ref(),
        };
        let update = parse_update(params, &schema)?;
        Ok((bot, update, seen))
    }

    /// The bot behind link `link_id`, read with the link in one round trip when the id names
    /// the bot (and the link record agrees), else after it. A link whose bot is gone is as
    /// unknown as any other. With them, when the host reads them in the same round trip,
    /// `chat`'s dialog record and step `step`'s (`None`: absent): the postback's write can
    /// then be prepared before its compare-and-swap reads the record, a new chat's is not
    /// read again, and the step the postback names is not read on its own.
    pub(super) fn bot_behind(
        &self,
        link_id: &str,
        chat: Option<i64>,
        step: Option<&str>,
    ) -> Result<(Bot, Option<SeenDialog>, Option<SeenStep>), Error>
    where
        K: GetMany,
    {
        let link_key = link_key(link_id);
        let (link, named) = match bot_of_link_id(link_id) {
            Some(named) => {
                let bot_key = bot_key(&named);
                let dialog = chat.map(|c| dialog_key(&named, c));
                let step = step.map(|s| step_key(&named, s));
                let extra: Vec<&str> = dialog.iter().chain(&step).map(String::as_str).collect();
                let (found, extra) = self.kv.get_many_and(&[&link_key, &bot_key], &extra)?;
                let mut found = found.into_iter();
                let link = Records::parse::<PostbackLink>(&link_key, found.next().flatten())?;
                let bot = found.next().flatten();
                let (mut seen, mut seen_step) = (None, None);
                if let Some(mut extra) = extra.map(Vec::into_iter) {
                    if dialog.is_some() {
                        seen = chat.zip(extra.next());
                    }
                    seen_step = step.and(extra.next());
                }
                (link, Some((named, bot_key, bot, seen, seen_step)))
            }
            None => (self.records().get(&link_key)?, None),
        };
        let link = link.ok_or_else(link_missing)?;
        let (bot, seen, seen_step) = match named {
            Some((named, key, bot, seen, seen_step)) if named == link.bot_id => {
                (Records::parse(&key, bot)?, seen, seen_step)
            }
            _ => (self.records().get(&bot_key(&link.bot_id))?, None, None),
        };
        Ok((bot.ok_or_else(link_missing)?, seen, seen_step))
    }

    /// An updateDialog postback through link `link_id`: all of it is applied or none. A new
    /// dialog is created only within `limits`, asked for only when they matter (a bot closed
    /// to new dialogs, an admission check): reading them costs the host a lookup.
    pub fn postback(
        &self,
        link_id: &str,
        params: Vec<(String, Param)>,
        now: Timestamp,
        limits: &dyn Fn() -> DialogLimits,
    ) -> Result<Postback, Error>
    where
        K: GetMany,
    {
        let (bot, update, seen) = self.read_postback(link_id, params)?;
        if update.is_empty() {
            return Ok(Postback {
                dialog: None,
                update,
                created: false,
                entered_step: None,
                step_entry: None,
                click_claimed: None,
            });
        }
        let seen = match &seen {
            Some((chat, record)) if *chat == update.chat_id => match record {
                Some(bytes) => Seen::Bytes(bytes),
                None => Seen::Absent,
            },
            _ => Seen::Unknown,
        };
        let refusal = bot
            .admission
            .may_refuse(now)
            .then(limits)
            .and_then(|l| bot.admission.refusal(now, l));
        let (done, slot) = self.apply_update(
            &bot,
            update,
            seen,
            refusal,
            ChangedBy::Postback(link_id),
            now,
        )?;
        if let Some(slot) = slot
            && slot.is_multiple_of(ADMISSION_CHECK_EVERY)
        {
            self.admit(&bot, slot, now, limits())?;
        }
        Ok(done)
    }

    /// The management API moving chat `chat`'s dialog to a step and/or a status (the
    /// console's "Move to step"), as a postback would: a send-webhook step's entry is handed
    /// off the same way. The dialog must exist.
    pub fn move_dialog(
        &self,
        bot: &Bot,
        chat: i64,
        step: Option<StepRef>,
        status: Option<Status>,
        now: Timestamp,
    ) -> Result<Postback, Error> {
        if step.is_none() && status.is_none() {
            return Err(Error::invalid(
                "missing_field",
                "stepId",
                "give stepId, status or both: where the dialog moves",
            ));
        }
        self.dialog(bot, chat)?;
        let update = Update {
            chat_id: chat,
            step,
            status,
            ..Update::default()
        };
        // Erased in between: not created again.
        let gone = Error::not_found(
            "unknown_dialog",
            format!("this bot has no dialog with chat {chat}"),
        );
        let (done, _) =
            self.apply_update(bot, update, Seen::Unknown, Some(gone), ChangedBy::Api, now)?;
        Ok(done)
    }

    /// Applies a validated update to the dialog (created unless `refusal`), handing off the
    /// entry of a send-webhook step it moves into first; returns what was done and the new
    /// dialog's slot in its bot's list, if this created it.
    fn apply_update(
        &self,
        bot: &Bot,
        update: Update,
        seen: Seen<'_>,
        refusal: Option<Error>,
        by: ChangedBy<'_>,
        now: Timestamp,
    ) -> Result<(Postback, Option<u64>), Error> {
        // A tracker repeating the postback that moved the dialog into its webhook step (seen
        // on that step as it was just read) enters nothing: no handoff is written for it. If
        // the dialog moved away in between, the change finds it and is made again with one.
        let already_there = match (&update.step, &seen) {
            (Some(s), Seen::Bytes(record)) => s.sends_webhook && on_step(record, &s.id),
            _ => false,
        };
        let done = if already_there {
            match self.apply_update_with(bot, &update, seen, refusal.clone(), by, now, false) {
                // Read again: what was seen is stale.
                Err(e) if e.code == HANDOFF_NEEDED => {
                    self.apply_update_with(bot, &update, Seen::Unknown, refusal, by, now, true)
                }
                done => done,
            }
        } else {
            self.apply_update_with(bot, &update, seen, refusal, by, now, true)
        };
        done.map(|(d, slot)| (d.with_update(update), slot))
    }

    /// [`Repo::apply_update`], with a handoff written first when `hand_off` and the update
    /// moves into a send-webhook step; without one, a change that would enter the step fails
    /// with [`HANDOFF_NEEDED`] and writes nothing.
    #[allow(clippy::too_many_arguments)]
    fn apply_update_with(
        &self,
        bot: &Bot,
        update: &Update,
        seen: Seen<'_>,
        refusal: Option<Error>,
        by: ChangedBy<'_>,
        now: Timestamp,
        hand_off: bool,
    ) -> Result<(Postback, Option<u64>), Error> {
        // Handed off before the dialog changes: once the move is written, its delivery can
        // no longer be lost (see `handoff`).
        let handoff = match &update.step {
            Some(s) if s.sends_webhook && hand_off => Some(self.handoffs().hand_off_entry(
                &bot.id,
                update.chat_id,
                &s.id,
                Default::default(),
                now,
            )?),
            _ => None,
        };
        let change = |d: &mut Dialog| {
            let before = d.step_id.clone();
            // This postback's own earlier write, applied again (see `Records::repeatable`):
            // the move it made is still this postback's.
            let moved_before = handoff
                .as_ref()
                .is_some_and(|h| d.step_deliveries.contains(&h.entry.id));
            // Noted as it was before: only what this change really changes is named.
            let entry = d.change_entry(update, by, now);
            d.apply(update, now)?;
            d.remember(entry);
            let entered = update.step.is_some() && (d.step_id != before || moved_before);
            if entered && handoff.is_none() && update.step.as_ref().is_some_and(|s| s.sends_webhook)
            {
                return Err(Error::new(
                    Kind::Conflict,
                    HANDOFF_NEEDED,
                    "the dialog left the step",
                ));
            }
            if let (true, Some(h)) = (entered, &handoff) {
                d.entered_webhook_step(&h.entry.id);
            }
            Ok(entered)
        };
        // Pointed at the chat before the dialog gets it (see `crate::conversions`).
        let click = self.click_to_claim(bot, update.chat_id, &update.tracker)?;
        let (dialog, slot, entered) =
            self.change_dialog(bot, update.chat_id, seen, now, refusal, &change)?;
        let click_claimed = self.conversions_waiting(bot, update.chat_id, click, now);
        let entered_step = update.step.clone().filter(|_| entered);
        let step_entry = handoff.filter(|_| entered);
        let done = Postback {
            dialog: Some(dialog),
            // Set by `apply_update`, which owns it.
            update: Update::default(),
            entered_step,
            step_entry,
            created: slot.is_some(),
            click_claimed,
        };
        Ok((done, slot))
    }

    /// When the bot has Auto Actions and `tracker` gives chat `chat` a click id: points the
    /// click id at the chat, and returns its key suffix for [`Repo::conversions_waiting`].
    pub(super) fn click_to_claim(
        &self,
        bot: &Bot,
        chat: i64,
        tracker: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<String>, Error> {
        let Some(field) = bot.click_id_field() else {
            return Ok(None);
        };
        match tracker.get(field).and_then(|v| clicks::click_value(v)) {
            Some(value) => Ok(Some(clicks::claim(self.kv, bot, field, chat, value)?)),
            None => Ok(None),
        }
    }

    /// After a dialog got the click id of `suffix`: whether conversions wait for it. The
    /// dialog's write has landed, so a failure here is logged, not returned (the conversions
    /// go on waiting).
    pub(super) fn conversions_waiting(
        &self,
        bot: &Bot,
        chat: i64,
        suffix: Option<String>,
        now: Timestamp,
    ) -> Option<ClickClaimed> {
        let suffix = suffix?;
        let noted = clicks::any_waiting(self.kv, &bot.id, &suffix).and_then(|waiting| {
            waiting
                .then(|| clicks::note_claimed(self.kv, &bot.id, chat, suffix, now))
                .transpose()
        });
        match noted {
            Ok(claimed) => claimed,
            Err(e) => {
                if let Some(line) = funnelhooks_core::log::line(
                    funnelhooks_core::log::Level::Warn,
                    "waiting_conversions_failed",
                ) {
                    line.str("bot", &bot.id)
                        .num("chat", chat)
                        .str("error", &e.message)
                        .emit();
                }
                None
            }
        }
    }

    /// The bot engine starting (or refreshing) a dialog; `true` when it was created.
    pub fn start_dialog(
        &self,
        bot_id: &str,
        chat: i64,
        start: &Start,
        now: Timestamp,
    ) -> Result<(Dialog, bool), Error> {
        let s = self.start_dialog_with(bot_id, chat, start, now)?;
        Ok((s.dialog, s.created))
    }

    /// The bot engine starting (or refreshing) a dialog, with its `/start` payload read by
    /// the bot's rule and the conversions waiting for its click id applied.
    pub fn start_dialog_with(
        &self,
        bot_id: &str,
        chat: i64,
        start: &Start,
        now: Timestamp,
    ) -> Result<Started, Error> {
        let bot = self.bot(bot_id)?;
        let mut start = start.clone();
        let payload = match &start.start_payload {
            Some(p) => Some(crate::auto::read_start_payload(
                p,
                bot.auto_actions.as_ref(),
                "startPayload",
            )?),
            None => None,
        };
        for (k, v) in payload.iter().flat_map(|p| &p.tracker) {
            start.tracker.entry(k.clone()).or_insert_with(|| v.clone());
        }
        start.validate()?;
        let click = self.click_to_claim(&bot, chat, &start.tracker)?;
        // The bot engine starting a chat is always admitted: only postback links are limited.
        let (dialog, slot, _) = self.change_dialog(&bot, chat, Seen::Unknown, now, None, &|d| {
            d.start(&start, now).map(|()| false)
        })?;
        let click_claimed = self.conversions_waiting(&bot, chat, click, now);
        Ok(Started {
            dialog,
            created: slot.is_some(),
            payload,
            click_claimed,
        })
    }

    /// Changes (or creates) the dialog with `change`; `seen` is what a read just before
    /// found at its key, `refusal` the error a creation gets, if creating is not allowed
    /// now. Returns the dialog, its slot in the bot's list when this call created it, and
    /// what `change` said.
    pub(crate) fn change_dialog(
        &self,
        bot: &Bot,
        chat: i64,
        seen: Seen<'_>,
        now: Timestamp,
        refusal: Option<Error>,
        // Not generic: one copy of the compare-and-swap however many callers a component has.
        change: &dyn Fn(&mut Dialog) -> Result<bool, Error>,
    ) -> Result<(Dialog, Option<u64>, bool), Error> {
        if !self.kv.atomic() {
            let (dialog, created, entered) = split::change(self.kv, bot, chat, refusal, change)?;
            if !created {
                return Ok((dialog, None, entered));
            }
            let slot = self.dialogs_index(&bot.id).add(&chat.to_string())?;
            self.kv.set(
                &format!("{}:slot", dialog_key(&bot.id, chat)),
                slot.to_string().as_bytes(),
            )?;
            return Ok((dialog, Some(slot), entered));
        }
        let key = dialog_key(&bot.id, chat);
        // Set by `create`, which the upsert calls just before changing the fresh record.
        let fresh = std::cell::Cell::new(false);
        let born_slot = std::cell::Cell::new(None);
        // A dialog's change sets values and adds to sets: applied again, it gives the same
        // dialog, so a write that cannot be confirmed is applied again rather than failed.
        let records = Records::repeatable(self.kv);
        let ((mut dialog, entered), modified) = records.upsert_born(
            &key,
            &format!("{key}:born"),
            seen,
            || {
                fresh.set(true);
                Dialog::pending(&bot.id, chat, now)
            },
            |d: &mut Dialog| {
                if let (true, Some(e)) = (fresh.replace(false), &refusal) {
                    return Err(e.clone());
                }
                let entered = change(d)?;
                Ok::<_, Error>((d.clone(), entered))
            },
            // The creator keeps the dialog's place in the bot's list in the record, and the
            // list's entry is written with it, in one round trip.
            |d: &mut Dialog| {
                let index = self.dialogs_index(&bot.id);
                let slot = index.reserve()?;
                d.list_slot = Some(slot);
                born_slot.set(Some(slot));
                Ok(vec![(index.slot_key(slot), chat.to_string().into_bytes())])
            },
        )?;
        // Set only by a creation (`born` runs just before the creating write).
        let slot = born_slot.get();
        debug_assert_eq!(slot.is_some(), modified == Modified::Created);
        if slot.is_some() {
            dialog.list_slot = slot;
        }
        Ok((dialog, slot, entered))
    }

    /// After a postback created a dialog in `slot` of the bot's list: every
    /// [`ADMISSION_CHECK_EVERY`] creations, counts
    /// this minute's new dialogs and the bot's total against `limits`, and closes the bot to
    /// new dialogs for the rest of the minute (or for good, at the total) when past them.
    pub(super) fn admit(
        &self,
        bot: &Bot,
        slot: u64,
        now: Timestamp,
        limits: DialogLimits,
    ) -> Result<(), Error> {
        let minute = now.0.div_euclid(60_000);
        self.records().modify(&bot_key(&bot.id), |b: &mut Bot| {
            let a = &mut b.admission;
            if a.minute != minute {
                a.minute = minute;
                a.first_slot = slot;
            } else if limits.per_minute > 0 && slot - a.first_slot >= limits.per_minute {
                a.closed_until = (minute + 1) * 60_000;
            }
            a.full = limits.total > 0 && slot >= limits.total;
            Ok::<_, Error>(())
        })?;
        Ok(())
    }

    /// The dialog, or a 404.
    pub fn dialog(&self, bot: &Bot, chat: i64) -> Result<Dialog, Error> {
        self.find_dialog(bot, chat)?.ok_or_else(|| {
            Error::not_found("unknown_dialog", "this bot has no dialog with this chat").at("chatId")
        })
    }

    pub(crate) fn find_dialog(&self, bot: &Bot, chat: i64) -> Result<Option<Dialog>, Error> {
        if self.kv.atomic() {
            Ok(self.records().get(&dialog_key(&bot.id, chat))?)
        } else {
            Ok(split::load(self.kv, bot, chat)?)
        }
    }

    /// Dialogs that [`Dialog::matches`] `query`, after place `after`: at most `limit`, looking
    /// at no more than [`MAX_SEARCHED`] places of the bot's list a call. The next page goes on
    /// from where this one stopped looking, so a page may hold none and still have a next.
    pub fn search_dialogs(
        &self,
        bot: &Bot,
        after: u64,
        limit: usize,
        query: &str,
    ) -> Result<Page<Dialog>, Error> {
        let (mut items, mut next) = (Vec::new(), Some(after));
        while let Some(from) = next {
            if items.len() >= limit || from - after >= MAX_SEARCHED as u64 {
                break;
            }
            let (found, more) = self.dialogs_at(bot, from, SEARCH_BATCH)?;
            next = more;
            let last = found.len();
            for (i, (slot, d)) in found.into_iter().enumerate() {
                if !d.matches(query) {
                    continue;
                }
                items.push(d);
                if items.len() == limit {
                    // Full: the next page starts just after this dialog.
                    if i + 1 < last || more.is_some() {
                        next = Some(slot);
                    }
                    break;
                }
            }
        }
        Ok(Page { items, next })
    }

    /// A page of the bot's dialogs, oldest first.
    pub fn dialogs(&self, bot: &Bot, after: u64, limit: usize) -> Result<Page<Dialog>, Error> {
        let (items, next) = self.dialogs_at(bot, after, limit)?;
        Ok(Page {
            items: items.into_iter().map(|(_, d)| d).collect(),
            next,
        })
    }

    /// Up to `limit` dialogs after place `after`, with their places, and where the next page
    /// starts.
    fn dialogs_at(&self, bot: &Bot, after: u64, limit: usize) -> Result<Placed, Error> {
        let page = self
            .dialogs_index(&bot.id)
            .page(after, limit.min(MAX_PAGE))?;
        let mut items = Vec::with_capacity(page.items.len());
        for (chat, slot) in page.items.iter().zip(&page.slots) {
            // A creator that took a place and then failed to write leaves a place whose
            // dialog, created again later, lives in another: list it only there.
            if let Ok(chat) = chat.parse()
                && let Some(d) = self.find_dialog(bot, chat)?
                && d.list_slot.is_none_or(|s| s == *slot)
            {
                items.push((*slot, d));
            }
        }
        Ok((items, page.next))
    }

    /// Erases the dialog and everything stored for it, or a 404.
    pub fn erase_dialog(&self, bot: &Bot, chat: i64) -> Result<(), Error> {
        let dialog = self.dialog(bot, chat)?;
        clicks::unclaim(self.kv, bot, &dialog)?;
        let slot = match dialog.list_slot {
            Some(slot) => Some(slot),
            // Dialogs created before the place was kept in the record, and the split layout.
            None => self
                .kv
                .get(&format!("{}:slot", dialog_key(&bot.id, chat)))?
                .and_then(|s| std::str::from_utf8(&s).ok().and_then(|s| s.parse().ok())),
        };
        if let Some(slot) = slot {
            self.dialogs_index(&bot.id).remove(slot)?;
        }
        self.erase_dialog_keys(bot, chat)
    }

    pub(super) fn erase_dialog_keys(&self, bot: &Bot, chat: i64) -> Result<(), Error> {
        let key = dialog_key(&bot.id, chat);
        if !self.kv.atomic() {
            split::erase(self.kv, bot, chat)?;
        }
        self.kv.delete(&key)?;
        self.kv.delete(&format!("{key}:slot"))?;
        self.kv.delete(&format!("{key}:born"))?;
        Ok(())
    }
}
