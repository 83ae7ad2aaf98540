//! The keys of a step's or call hook's delivery state and rate limit, which the delivery
//! engine writes and the repositories that delete bots and services must take away with
//! them (the state itself is `funnelhooks_delivery::state`).

use funnelhooks_store::{Kv, Records, StoreError};

/// The list of steps and hooks that are failing, paused or disabled.
pub const ATTENTION: &str = "state:attention";

/// Every key of the state and rate limit of the step or hook `{kind}:{parent}:{id}`
/// (`kind` is `step` or `hook`).
pub fn keys(kind: &str, parent: &str, id: &str) -> [String; 4] {
    let key = format!("{kind}:{parent}:{id}");
    [
        format!("state:{key}"),
        format!("state:{key}:born"),
        format!("rate:{key}"),
        format!("rate:{key}:born"),
    ]
}

/// Takes every step or hook of `parent` (a bot's steps, a service's hooks) off the list of
/// those needing attention.
pub fn unlist(kv: &dyn Kv, kind: &str, parent: &str) -> Result<(), StoreError> {
    let prefix = format!("{kind}:{parent}:");
    Records::new(kv).modify(ATTENTION, |list: &mut Vec<String>| {
        list.retain(|k| !k.starts_with(&prefix));
        Ok::<_, StoreError>(())
    })?;
    Ok(())
}
