//! Refused postbacks, per bot (see [`funnelhooks_core::refused`]): a bot's postback links'
//! refusals, kept under `refused:{botId}` (`userBalance=5,000`, a date Chatterfy would take,
//! a step deleted since).

use funnelhooks_core::Error;
use funnelhooks_store::{Kv, Records};

use crate::bots::PostbackLink;
use crate::keys::{bot_key, link_key};

/// The list of bot `bot`'s refused postbacks.
pub fn refused_list(bot: &str) -> String {
    format!("refused:{bot}")
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
