//! Postback links: made, imported from Chatterfy, listed and revoked.

use super::*;

impl<'a, K: Kv> Repo<'a, K> {
    /// Creates a postback link for the bot.
    pub fn create_link(&self, bot_id: &str, now: Timestamp) -> Result<PostbackLink, Error> {
        let link = PostbackLink {
            id: new_link_id(bot_id),
            bot_id: bot_id.to_string(),
            created_at: now,
        };
        self.list_link(bot_id, &link.id, now)?;
        self.records().put(&link_key(&link.id), &link)?;
        Ok(link)
    }

    /// Adds `link_id` to the bot's links (once), within [`MAX_LINKS`].
    pub(super) fn list_link(
        &self,
        bot_id: &str,
        link_id: &str,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.modify_bot(bot_id, now, |bot| {
            if bot.links.iter().any(|l| l == link_id) {
                return Ok(());
            }
            if bot.links.len() >= MAX_LINKS {
                return Err(too_many_links());
            }
            bot.links.push(link_id.to_string());
            Ok(())
        })?;
        Ok(())
    }

    /// Imports postback link `link_id` (a Chatterfy link's id, so its trackers keep working
    /// with only the origin changed) for the bot; `true` when it is new. Importing it again
    /// into the same bot changes nothing; an id in use by another bot is refused.
    pub fn import_link(
        &self,
        bot_id: &str,
        link_id: &str,
        now: Timestamp,
    ) -> Result<(PostbackLink, bool), Error> {
        if !valid_link_id(link_id) {
            return Err(Error::invalid(
                "bad_postback_id",
                "postbackId",
                "a postback id is 16 to 64 of A-Z a-z 0-9 - _ (Chatterfy's are UUID-shaped)",
            ));
        }
        if let Some(why) = guessable_link_id(link_id, bot_id) {
            return Err(Error::invalid(
                "guessable_postback_id",
                "postbackId",
                format!("this postback id cannot be a link: {why}"),
            ));
        }
        self.bot(bot_id)?;
        let key = link_key(link_id);
        let fresh = PostbackLink {
            id: link_id.to_string(),
            bot_id: bot_id.to_string(),
            created_at: now,
        };
        // An election settles two imports of one id at once: one bot gets it.
        let (link, modified) = self.records().upsert(
            &key,
            &format!("{key}:born"),
            || fresh.clone(),
            |l: &mut PostbackLink| Ok::<_, Error>(l.clone()),
        )?;
        if link.bot_id != bot_id {
            return Err(Error::conflict(
                "postback_id_in_use",
                "this postback id is in use by another bot; revoke it there first",
            )
            .at("postbackId"));
        }
        let created = modified == Modified::Created;
        if let Err(e) = self.list_link(bot_id, link_id, now) {
            // Not the bot's: the id stays free.
            if created {
                self.forget_link(link_id)?;
            }
            return Err(e);
        }
        Ok((link, created))
    }

    pub(super) fn forget_link(&self, link_id: &str) -> Result<(), Error> {
        let key = link_key(link_id);
        self.kv.delete(&key)?;
        self.kv.delete(&format!("{key}:born"))?;
        Ok(())
    }

    /// The bot's postback links, oldest first.
    pub fn links(&self, bot: &Bot) -> Result<Vec<PostbackLink>, Error> {
        let mut out = Vec::with_capacity(bot.links.len());
        for id in &bot.links {
            if let Some(link) = self.records().get(&link_key(id))? {
                out.push(link);
            }
        }
        Ok(out)
    }

    /// Revokes a link: from now on it is a 404, like an id that never existed.
    pub fn revoke_link(&self, bot_id: &str, link_id: &str, now: Timestamp) -> Result<(), Error> {
        self.modify_bot(bot_id, now, |bot| {
            let before = bot.links.len();
            bot.links.retain(|l| l != link_id);
            if bot.links.len() == before {
                return Err(link_missing());
            }
            Ok(())
        })?;
        self.forget_link(link_id)
    }

    /// The newest postbacks `bot`'s links refused ([`crate::refused`]), newest first, from
    /// position `before`; and where the next page starts.
    pub fn refused_postbacks(
        &self,
        bot: &Bot,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<u64>), Error> {
        funnelhooks_core::refused::refused(
            self.kv,
            &crate::refused::refused_list(&bot.id),
            before,
            limit,
        )
    }
}
