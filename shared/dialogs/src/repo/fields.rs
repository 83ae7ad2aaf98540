//! Custom field definitions of a bot.

use super::*;

impl<'a, K: Kv> Repo<'a, K> {
    /// Defines or redefines a custom field; `true` when it is new.
    pub fn put_field(
        &self,
        bot_id: &str,
        key: &str,
        def: FieldDef,
        now: Timestamp,
    ) -> Result<bool, Error> {
        self.modify_bot(bot_id, now, |bot| {
            if !bot.fields.contains_key(key) && bot.fields.len() >= MAX_FIELDS {
                return Err(Error::invalid(
                    "too_many_fields",
                    "key",
                    format!("a bot defines at most {MAX_FIELDS} custom fields"),
                ));
            }
            Ok(bot.fields.insert(key.to_string(), def.clone()).is_none())
        })
    }

    /// Removes a custom field definition (values already stored in dialogs stay).
    pub fn delete_field(&self, bot_id: &str, key: &str, now: Timestamp) -> Result<(), Error> {
        self.modify_bot(bot_id, now, |bot| {
            bot.fields.remove(key).map(|_| ()).ok_or_else(field_missing)
        })
    }
}
