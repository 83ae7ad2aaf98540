//! A bot's steps.

use super::*;

impl<'a, K: Kv> Repo<'a, K> {
    /// Creates or replaces a step; `true` when it is new.
    pub fn put_step<W: Serialize + DeserializeOwned>(
        &self,
        bot_id: &str,
        step_id: &str,
        input: StepInput<W>,
        now: Timestamp,
    ) -> Result<(Step<W>, bool), Error> {
        if !is_uuid(step_id) {
            return Err(Error::invalid(
                "bad_step_id",
                "stepId",
                format!("{step_id:?} is not a UUID"),
            ));
        }
        let created = self.modify_bot(bot_id, now, |bot| {
            if bot.steps.iter().any(|s| s == step_id) {
                return Ok(false);
            }
            if bot.steps.len() >= MAX_STEPS {
                return Err(Error::new(
                    Kind::Invalid,
                    "too_many_steps",
                    format!("a bot has at most {MAX_STEPS} steps"),
                ));
            }
            bot.steps.push(step_id.to_string());
            Ok(true)
        })?;
        // Only when it was first created matters of the old record.
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Created {
            created_at: Timestamp,
        }
        let old = self.records().get::<Created>(&step_key(bot_id, step_id))?;
        let step = Step {
            id: step_id.to_string(),
            key: input.key,
            kind: input.kind,
            webhook: input.webhook,
            webhook_gone: false,
            created_at: old.map_or(now, |o| o.created_at),
            updated_at: now,
        };
        self.records().put(&step_key(bot_id, step_id), &step)?;
        Ok((step, created))
    }

    /// Marks a send-webhook step's webhook as gone (its receiver answered 410).
    pub fn mark_webhook_gone(&self, bot_id: &str, step_id: &str) -> Result<(), Error> {
        // Changed as raw JSON: the config is kept exactly as stored.
        self.records()
            .modify(&step_key(bot_id, step_id), |s: &mut serde_json::Value| {
                s["webhookGone"] = true.into();
                Ok::<_, Error>(())
            })?;
        Ok(())
    }

    /// The step with its webhook config read as `W`, or a 404.
    pub fn step<W: DeserializeOwned>(&self, bot: &Bot, step_id: &str) -> Result<Step<W>, Error> {
        self.find_step(bot, step_id)?.ok_or_else(step_missing)
    }

    /// The step record as stored, as plain JSON, without the bot (the retry sweep reading
    /// a signing secret); `None` when it was deleted.
    pub fn step_json(
        &self,
        bot_id: &str,
        step_id: &str,
    ) -> Result<Option<serde_json::Value>, Error> {
        Ok(self.records().get(&step_key(bot_id, step_id))?)
    }

    /// What moving a dialog to step `step_id` needs to know of it (its config skipped, not
    /// parsed), or `None` when the bot has no such step.
    pub fn step_ref(&self, bot: &Bot, step_id: &str) -> Result<Option<StepRef>, Error> {
        Ok(self
            .find_step::<IgnoredAny>(bot, step_id)?
            .map(StepRef::from))
    }

    /// [`Repo::step_ref`] from the step's record as read already (`None`: absent).
    pub(super) fn step_ref_seen(
        &self,
        bot: &Bot,
        step_id: &str,
        record: Option<&[u8]>,
    ) -> Result<Option<StepRef>, Error> {
        if !bot.steps.iter().any(|s| s == step_id) {
            return Ok(None);
        }
        let step: Option<Step<IgnoredAny>> =
            Records::parse(&step_key(&bot.id, step_id), record.map(<[u8]>::to_vec))?;
        Ok(step.map(StepRef::from))
    }

    pub(super) fn find_step<W: DeserializeOwned>(
        &self,
        bot: &Bot,
        step_id: &str,
    ) -> Result<Option<Step<W>>, Error> {
        if !bot.steps.iter().any(|s| s == step_id) {
            return Ok(None);
        }
        Ok(self.records().get(&step_key(&bot.id, step_id))?)
    }

    /// The bot's steps, in the order they were created.
    pub fn steps<W: DeserializeOwned>(&self, bot: &Bot) -> Result<Vec<Step<W>>, Error> {
        let mut out = Vec::with_capacity(bot.steps.len());
        for id in &bot.steps {
            if let Some(step) = self.records().get(&step_key(&bot.id, id))? {
                out.push(step);
            }
        }
        Ok(out)
    }

    /// Deletes a step. Dialogs on it keep its id and key.
    pub fn delete_step(&self, bot_id: &str, step_id: &str, now: Timestamp) -> Result<(), Error> {
        self.modify_bot(bot_id, now, |bot| {
            // Conversions would have nowhere to move their dialogs: say which action first.
            let actions = bot.auto_actions.as_ref().and_then(|a| a["actions"].as_array());
            if let Some(i) = actions
                .into_iter()
                .flatten()
                .position(|a| a["stepId"].as_str() == Some(step_id))
            {
                return Err(Error::conflict(
                    "step_in_auto_actions",
                    format!(
                        "Auto Actions move dialogs to this step (actions[{i}]); change that action first"
                    ),
                )
                .at("stepId"));
            }
            let before = bot.steps.len();
            bot.steps.retain(|s| s != step_id);
            if bot.steps.len() == before {
                return Err(step_missing());
            }
            Ok(())
        })?;
        self.kv.delete(&step_key(bot_id, step_id))?;
        Ok(())
    }
}

impl From<Step<IgnoredAny>> for StepRef {
    fn from(s: Step<IgnoredAny>) -> Self {
        StepRef {
            id: s.id,
            key: s.key,
            sends_webhook: s.kind == StepKind::SendWebhook,
        }
    }
}
