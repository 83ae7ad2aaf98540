//! The keys bots, postback links, steps and dialogs are stored under (the table is in
//! [`crate::repo`]), shared by the repository and the per-part layout of hosts without
//! atomics ([`crate::split`]).

/// Where a bot record is kept.
pub(crate) fn bot_key(id: &str) -> String {
    format!("bot:{id}")
}

/// Where a postback link record is kept.
pub(crate) fn link_key(id: &str) -> String {
    format!("link:{id}")
}

/// Where a step record is kept.
pub fn step_key(bot: &str, id: &str) -> String {
    format!("step:{bot}:{id}")
}

/// Where a chat's dialog is kept.
pub(crate) fn dialog_key(bot: &str, chat: i64) -> String {
    format!("dlg:{bot}:{chat}")
}

/// [`dialog_key`] with `{}` for the chat id (a cleanup job's template).
pub(crate) fn dialog_key_template(bot: &str) -> String {
    format!("dlg:{bot}:{{}}")
}
