//! Bots: created, read, listed, renamed and deleted (their links, steps and dialogs with them).

use super::*;

impl<'a, K: Kv> Repo<'a, K> {
    /// Creates a bot named `name`.
    pub fn create_bot(&self, name: String, now: Timestamp) -> Result<Bot, Error> {
        let id = new_id();
        let slot = self.bots_index().add(&id)?;
        let bot = Bot {
            id,
            name,
            fields: Default::default(),
            steps: Vec::new(),
            links: Vec::new(),
            created_at: now,
            updated_at: now,
            slot,
            admission: Default::default(),
            auto_actions: None,
            conversion_links: Vec::new(),
        };
        self.records().put(&bot_key(&bot.id), &bot)?;
        Ok(bot)
    }

    /// Whether bot `id` exists (one read, the record not parsed: an API key's scope check).
    pub fn bot_exists(&self, id: &str) -> Result<bool, Error> {
        Ok(is_uuid(id) && self.kv.get(&bot_key(id))?.is_some())
    }

    /// The bot, or a 404.
    pub fn bot(&self, id: &str) -> Result<Bot, Error> {
        if !is_uuid(id) {
            return Err(bot_missing());
        }
        self.records().get(&bot_key(id))?.ok_or_else(bot_missing)
    }

    /// A page of bots, oldest first.
    pub fn bots(&self, after: u64, limit: usize) -> Result<Page<Bot>, Error> {
        let page = self.bots_index().page(after, limit.min(MAX_PAGE))?;
        let mut items = Vec::with_capacity(page.items.len());
        for id in page.items {
            if let Some(bot) = self.records().get(&bot_key(&id))? {
                items.push(bot);
            }
        }
        Ok(Page {
            items,
            next: page.next,
        })
    }

    /// Changes the bot with `change` (retried on concurrent writes), or a 404.
    pub fn modify_bot<R>(
        &self,
        id: &str,
        now: Timestamp,
        mut change: impl FnMut(&mut Bot) -> Result<R, Error>,
    ) -> Result<R, Error> {
        if !is_uuid(id) {
            return Err(bot_missing());
        }
        self.records()
            .modify(&bot_key(id), |bot: &mut Bot| {
                let r = change(bot)?;
                bot.updated_at = now;
                Ok::<_, Error>(r)
            })?
            .ok_or_else(bot_missing)
    }

    /// Deletes the bot and everything that belongs to it: links first (so its postbacks stop
    /// at once), then steps, dialogs and the bot.
    pub fn delete_bot(&self, id: &str) -> Result<(), Error> {
        let bot = self.bot(id)?;
        // The links, steps and dialogs go in the background (the retry sweep runs cleanup
        // jobs), a bounded stretch at a time: the job is queued first, so whatever fails
        // after it, nothing is left behind; the bot is gone for every reader at once.
        let mut extra: Vec<String> = bot.links.iter().map(|l| link_key(l)).collect();
        extra.extend(bot.links.iter().map(|l| format!("{}:born", link_key(l))));
        extra.extend(bot.steps.iter().map(|s| step_key(id, s)));
        // Each step's delivery state and rate limit, and its place among what needs
        // attention (a deleted bot needs none).
        extra.extend(
            bot.steps
                .iter()
                .flat_map(|s| funnelhooks_core::senders::keys("step", id, s)),
        );
        funnelhooks_core::senders::unlist(self.kv, "step", id)?;
        // Its conversion links, click ids and waiting conversions.
        let (conversion_keys, conversion_jobs) = clicks::cleanups(&bot);
        extra.extend(conversion_keys);
        for job in &conversion_jobs {
            Jobs::new(self.kv).add(job)?;
        }
        Jobs::new(self.kv).add(&funnelhooks_core::refused::refused_cleanup(
            self.kv,
            &crate::refused::refused_list(id),
            format!("refused postbacks of bot {id}"),
        )?)?;
        Jobs::new(self.kv).add(&Cleanup {
            what: format!("bot {id}"),
            extra,
            index: format!("dlgs:{id}"),
            keys: self.dialog_key_templates(&bot),
            listed: if self.kv.atomic() {
                Vec::new()
            } else {
                split::listed_parts(&dialog_key_template(id))
            },
            done: 0,
        })?;
        self.kv.delete(&bot_key(id))?;
        self.bots_index().remove(bot.slot)?;
        Ok(())
    }

    /// Every key a dialog of `bot` may have, with `{}` for its chat id.
    pub(super) fn dialog_key_templates(&self, bot: &Bot) -> Vec<String> {
        let base = dialog_key_template(&bot.id);
        let mut keys = vec![base.clone(), format!("{base}:slot"), format!("{base}:born")];
        if !self.kv.atomic() {
            keys.extend(split::part_templates(&base, bot));
        }
        keys
    }
}
