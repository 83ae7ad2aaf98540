//! A conversion reported by click id (a tracker's or affiliate program's postback), read from
//! whatever names its sender uses, and what its bot's action for its event type does to the
//! dialog ([`Effect`]). Which dialog, and applying it exactly once, is [`crate::conversions`].
//!
//! A repeated conversion is applied once, as Keitaro counts them: with a transaction id, one
//! per click id, event type and transaction id; without one, once per click id and event
//! type, unless the action repeats (`resale` and `rebill` do by default), when each arrival
//! counts. A dialog remembers its latest [`MAX_REMEMBERED_CONVERSIONS`] conversions for this.

use std::collections::BTreeMap;

use funnelhooks_core::{Error, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::auto::{Action, ParamNames, Source, source};
use crate::limits::MAX_VALUE_LEN;
use crate::model::{Dialog, FieldType, FieldValue};
use crate::params::Param;
use crate::typed::typed_text;
use crate::update::{StepRef, Update};

/// How many conversions a dialog remembers (what it shows, and how repeats are recognised).
pub const MAX_REMEMBERED_CONVERSIONS: usize = 32;

/// A conversion as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversion {
    /// Given on arrival: tells this arrival from a repeat of it.
    pub id: String,
    /// The click id it is for.
    pub click_id: String,
    /// The event type, in lower case.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The transaction id, if the sender gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// The parameters its action reads (`payout`, `currency`), by the action's names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// When it arrived.
    pub at: Timestamp,
}

/// What a dialog remembers of a conversion applied to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversionMark {
    /// What makes a repeat the same conversion (see the module's rule).
    pub key: String,
    /// The arrival that was applied.
    pub id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The transaction id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// When the conversion arrived.
    pub at: Timestamp,
    /// The step it moved the dialog to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    /// The delivery of that step's webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// The custom fields it set or added to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

fn text(name: &str, value: &Param) -> Result<String, Error> {
    match value {
        Param::Text(s) | Param::Json(Json::String(s)) => Ok(s.trim().to_string()),
        Param::Json(j @ (Json::Number(_) | Json::Bool(_))) => Ok(j.to_string()),
        Param::Json(_) => Err(Error::invalid(
            "bad_value",
            name,
            "expected text, a number or a boolean",
        )),
    }
}

/// The value of the first of `names` among `params` (letter case ignored; the last
/// occurrence of a name wins, as in a postback), with the name it was found under.
fn first_of<'a>(params: &'a [(String, Param)], names: &[String]) -> Option<(&'a str, &'a Param)> {
    names.iter().find_map(|n| {
        params
            .iter()
            .rev()
            .find(|(p, _)| p.eq_ignore_ascii_case(n))
            .map(|(p, v)| (p.as_str(), v))
    })
}

impl Conversion {
    /// Reads a conversion from its parameters. Its event type's action (if the bot has one)
    /// says which other parameters to keep. Errors name the parameter.
    pub fn read(
        params: &[(String, Param)],
        names: &ParamNames,
        action: impl Fn(&str) -> Option<Action>,
        at: Timestamp,
    ) -> Result<(Conversion, Option<Action>), Error> {
        let wanted = |role: &str, list: &[String]| {
            Error::malformed(
                "missing_param",
                list.first().map_or(role, String::as_str),
                format!(
                    "the {role} is missing: send it as one of {}",
                    list.join(", ")
                ),
            )
        };
        let (name, value) = first_of(params, &names.click_id)
            .filter(|(n, v)| text(n, v).is_ok_and(|t| !t.is_empty()))
            .ok_or_else(|| wanted("click id", &names.click_id))?;
        let click_id = text(name, value)?;
        if crate::clicks::click_value(&click_id).is_none() {
            return Err(Error::invalid(
                "unfilled_macro",
                name,
                format!(
                    "{click_id:?} is a tracker macro that was not filled in: the tracker's postback URL names a macro it does not know"
                ),
            ));
        }
        if click_id.len() > MAX_VALUE_LEN {
            return Err(Error::invalid(
                "bad_click_id",
                name,
                format!("a click id is 1 to {MAX_VALUE_LEN} bytes"),
            ));
        }
        let (name, value) = first_of(params, &names.event_type)
            .ok_or_else(|| wanted("event type", &names.event_type))?;
        let event_type = text(name, value)?.to_ascii_lowercase();
        if event_type.is_empty() || event_type.len() > 64 {
            return Err(Error::invalid(
                "bad_type",
                name,
                "an event type is 1 to 64 bytes",
            ));
        }
        let tid = match first_of(params, &names.tid) {
            Some((name, value)) => {
                let t = text(name, value)?;
                if t.len() > 256 {
                    return Err(Error::invalid(
                        "bad_tid",
                        name,
                        "a transaction id is at most 256 bytes",
                    ));
                }
                // An unfilled macro (`{tid}`) is no transaction id: every conversion sent
                // with it would be one.
                crate::clicks::click_value(&t).map(str::to_string)
            }
            None => None,
        };
        let action = action(&event_type);
        let mut kept = BTreeMap::new();
        for value in action
            .iter()
            .flat_map(|a| a.set.values().chain(a.add.values()))
        {
            if let Source::Param(want) = source(value)
                && let Some((name, v)) = first_of(params, &[want.to_string()])
            {
                let t = text(name, v)?;
                if t.len() > MAX_VALUE_LEN {
                    return Err(Error::invalid(
                        "value_too_long",
                        name,
                        format!("the limit is {MAX_VALUE_LEN} bytes"),
                    ));
                }
                kept.insert(want.to_string(), t);
            }
        }
        let conversion = Conversion {
            id: funnelhooks_core::new_id(),
            click_id,
            event_type,
            tid,
            params: kept,
            at,
        };
        Ok((conversion, action))
    }

    /// What makes a repeat of this conversion the same one under `action` (see the module).
    pub fn key(&self, action: &Action) -> String {
        let click = crate::clicks::click_short(&self.click_id);
        match (&self.tid, action.repeat) {
            (Some(tid), _) => format!("tid:{click}:{}:{tid}", self.event_type),
            (None, false) => format!("once:{click}:{}", self.event_type),
            (None, true) => format!("id:{}", self.id),
        }
    }
}

/// What a conversion does to its dialog, checked before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    /// The step, status and fields it sets.
    pub update: Update,
    /// What it adds to number fields.
    pub add: BTreeMap<String, serde_json::Number>,
    /// Parameters the action reads that the conversion did not carry (their fields are left
    /// as they are).
    pub missing: Vec<String>,
    /// What the dialog will remember of it.
    pub mark: ConversionMark,
}

/// What `action` does with `conversion`, for a bot with field types `fields`; `step` is the
/// action's step as the bot has it now. Errors name the conversion's parameter at fault.
pub fn effect(
    conversion: &Conversion,
    action: &Action,
    fields: &BTreeMap<String, FieldType>,
    step: Option<StepRef>,
) -> Result<Effect, Error> {
    let mut update = Update {
        step,
        status: action.status,
        ..Update::default()
    };
    let mut missing = Vec::new();
    // The value `value` gives for field `key` of type `kind`; `None` when it names a parameter
    // the conversion did not carry. An error names the parameter it came from.
    let mut typed = |key: &str, value: &str, kind: Option<FieldType>| {
        let (at, text) = match source(value) {
            Source::Literal(t) => (key.to_string(), t.to_string()),
            Source::Time => (key.to_string(), conversion.at.iso()),
            Source::Param(p) => match conversion.params.get(p) {
                Some(v) => (p.to_string(), v.clone()),
                None => {
                    if !missing.iter().any(|m| m == p) {
                        missing.push(p.to_string());
                    }
                    return Ok(None);
                }
            },
        };
        typed_text(&at, &text, kind).map(Some)
    };
    for (key, value) in &action.set {
        if let Some(v) = typed(key, value, fields.get(key).copied())? {
            update.fields.insert(key.clone(), v);
        }
    }
    let mut add = BTreeMap::new();
    for (key, value) in &action.add {
        if let Some(FieldValue::Number(n)) = typed(key, value, Some(FieldType::Number))? {
            add.insert(key.clone(), n);
        }
    }
    let mark = ConversionMark {
        key: conversion.key(action),
        id: conversion.id.clone(),
        event_type: conversion.event_type.clone(),
        tid: conversion.tid.clone(),
        at: conversion.at,
        step_id: update.step.as_ref().map(|s| s.id.clone()),
        delivery: None,
        fields: update.fields.keys().chain(add.keys()).cloned().collect(),
    };
    Ok(Effect {
        update,
        add,
        missing,
        mark,
    })
}

fn sum(a: &serde_json::Number, b: &serde_json::Number) -> Option<serde_json::Number> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x.checked_add(y).map(Into::into);
    }
    // Money: kept to six decimal places, so that cents stay exact where f64 would print
    // 30.000000000000004 (docs/auto-actions.md).
    let total = a.as_f64()? + b.as_f64()?;
    let kept = if total.abs() < 1e12 {
        (total * 1e6).round() / 1e6
    } else {
        total
    };
    serde_json::Number::from_f64(kept)
}

/// How a remembered conversion stands against one being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Not applied to this dialog yet.
    New,
    /// This very arrival, applied by an earlier write of the same change.
    Itself,
    /// Another arrival of the same conversion was applied.
    Repeat,
    /// This very arrival, applied by another writer (with its own step entry).
    Elsewhere,
}

impl Dialog {
    /// Whether `mark`'s conversion was applied to the dialog already, and by which arrival.
    pub fn seen_conversion(&self, mark: &ConversionMark) -> Known {
        let text = |c: &Json, k: &str| c.get(k).and_then(Json::as_str).map(str::to_string);
        match self
            .conversions
            .iter()
            .find(|c| text(c, "key").as_deref() == Some(&mark.key))
        {
            None => Known::New,
            Some(c) if text(c, "id").as_deref() == Some(&mark.id) => {
                if text(c, "delivery") == mark.delivery {
                    Known::Itself
                } else {
                    Known::Elsewhere
                }
            }
            Some(_) => Known::Repeat,
        }
    }

    /// Applies a conversion's effect; `delivery` is the step delivery handed off for it.
    /// Checked first: a number field that holds something else is an error, and nothing
    /// changes.
    pub fn convert(
        &mut self,
        effect: &Effect,
        delivery: Option<&str>,
        now: Timestamp,
    ) -> Result<(), Error> {
        let mut update = effect.update.clone();
        for (key, amount) in &effect.add {
            let current = match self.fields.get(key) {
                None => serde_json::Number::from(0),
                Some(FieldValue::Number(n)) => n.clone(),
                Some(FieldValue::Text(t))
                    if let Ok(FieldValue::Number(n)) =
                        typed_text(key, t, Some(FieldType::Number)) =>
                {
                    n
                }
                Some(_) => {
                    return Err(Error::invalid(
                        "not_a_number",
                        key,
                        "the dialog's field holds something other than a number; it cannot be added to",
                    ));
                }
            };
            let total = sum(&current, amount).ok_or_else(|| {
                Error::invalid("number_too_large", key, "the sum is out of range")
            })?;
            update.fields.insert(key.clone(), FieldValue::Number(total));
        }
        self.apply(&update, now)?;
        let mut mark = effect.mark.clone();
        mark.delivery = delivery.map(str::to_string);
        self.conversions
            .push(serde_json::to_value(&mark).unwrap_or_default());
        let extra = self
            .conversions
            .len()
            .saturating_sub(MAX_REMEMBERED_CONVERSIONS);
        self.conversions.drain(..extra);
        if let Some(d) = delivery {
            self.entered_webhook_step(d);
        }
        self.check_size()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::auto::AutoActions;

    fn params(q: &[(&str, &str)]) -> Vec<(String, Param)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), Param::Text(v.to_string())))
            .collect()
    }

    fn auto() -> AutoActions {
        let fields = BTreeMap::from([
            ("deposits".to_string(), FieldType::Number),
            ("revenue".to_string(), FieldType::Number),
            ("depositAt".to_string(), FieldType::Date),
        ]);
        AutoActions::from_json(
            &json!({"actions": [
                {"type": "sale", "status": "manual",
                 "set": {"currency": "{currency}", "depositAt": "{time}"},
                 "add": {"deposits": 1, "revenue": "{payout}"}},
                {"type": "resale", "add": {"deposits": 1, "revenue": "{payout}"}}
            ]}),
            &[],
            &fields,
        )
        .unwrap()
    }

    fn read(q: &[(&str, &str)]) -> Result<(Conversion, Option<Action>), Error> {
        let a = auto();
        Conversion::read(
            &params(q),
            &a.params,
            |t| a.action(t).cloned(),
            Timestamp(1_700_000_000_000),
        )
    }

    #[test]
    fn keitaro_and_binom_names_are_read_and_missing_ones_named() {
        let (k, a) = read(&[
            ("subid", "abc"),
            ("status", "Sale"),
            ("payout", "12.5"),
            ("tid", "t1"),
        ])
        .unwrap();
        assert_eq!(
            (k.click_id.as_str(), k.event_type.as_str()),
            ("abc", "sale")
        );
        assert_eq!(
            (k.tid.as_deref(), k.params["payout"].as_str()),
            (Some("t1"), "12.5")
        );
        assert!(a.is_some());
        let (b, _) = read(&[("cnv_id", "xyz"), ("cnv_status", "resale"), ("payout", "3")]).unwrap();
        assert_eq!(
            (b.click_id.as_str(), b.event_type.as_str()),
            ("xyz", "resale")
        );
        let e = read(&[("status", "sale")]).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("missing_param", Some("subid"))
        );
        let e = read(&[("subid", "abc")]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("status"));
    }

    #[test]
    fn a_sale_sets_fields_and_adds_to_counters_once_per_transaction() {
        let a = auto();
        let (c, action) = read(&[
            ("subid", "abc"),
            ("status", "sale"),
            ("payout", "10.10"),
            ("currency", "USD"),
            ("tid", "t1"),
        ])
        .unwrap();
        let action = action.unwrap();
        let fields = BTreeMap::from([("depositAt".to_string(), FieldType::Date)]);
        let e = effect(&c, &action, &fields, None).unwrap();
        let mut d = Dialog::pending("b", 1, Timestamp(0));
        d.convert(&e, None, Timestamp(1)).unwrap();
        assert_eq!(d.fields["deposits"], FieldValue::Number(1.into()));
        assert_eq!(d.fields["currency"], FieldValue::Text("USD".into()));
        assert_eq!(
            d.fields["depositAt"],
            FieldValue::Text("2023-11-14T22:13:20.000Z".into())
        );
        assert_eq!(d.seen_conversion(&e.mark), Known::Itself);
        let (again, _) = read(&[
            ("subid", "abc"),
            ("status", "sale"),
            ("payout", "10.10"),
            ("tid", "t1"),
        ])
        .unwrap();
        assert_eq!(
            d.seen_conversion(&effect(&again, &action, &fields, None).unwrap().mark),
            Known::Repeat
        );
        // Two resales without a transaction id both count.
        let resale = a.action("resale").unwrap();
        for payout in ["20.20", "0.1"] {
            let (r, _) =
                read(&[("subid", "abc"), ("status", "resale"), ("payout", payout)]).unwrap();
            let e = effect(&r, resale, &fields, None).unwrap();
            assert_eq!(d.seen_conversion(&e.mark), Known::New);
            d.convert(&e, None, Timestamp(2)).unwrap();
        }
        assert_eq!(d.fields["deposits"], FieldValue::Number(3.into()));
        assert_eq!(
            d.fields["revenue"],
            FieldValue::Number(serde_json::Number::from_f64(30.4).unwrap())
        );
    }

    #[test]
    fn a_bad_value_is_refused_naming_the_parameter() {
        let (c, action) =
            read(&[("subid", "abc"), ("status", "sale"), ("payout", "lots")]).unwrap();
        let e = effect(&c, &action.unwrap(), &BTreeMap::new(), None).unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("wrong_type", Some("payout")));
    }
}
