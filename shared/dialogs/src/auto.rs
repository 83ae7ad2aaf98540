//! A bot's Auto Actions, as Chatterfy calls them: which parameters of a tracker's or affiliate
//! program's conversion carry the click id, the event type and the transaction id; what each
//! event type does to the dialog whose click id matches ([`Action`]); and how the `/start`
//! payload of the ad's deep link becomes tracker fields ([`StartRule`]). Kept in the bot
//! record (the conversion reads it with its link in one round trip), checked once when saved.

use std::collections::BTreeMap;

use funnelhooks_core::Error;
use funnelhooks_core::json::Members;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::limits::{MAX_VALUE_LEN, valid_key};
use crate::model::{FieldType, Status};

/// Most actions a bot has (one per event type).
pub const MAX_ACTIONS: usize = 50;
/// Most fields one action sets or adds to.
pub const MAX_ACTION_FIELDS: usize = 20;
/// The largest amount an action adds (a literal): sums stay far from where a double loses
/// whole units.
pub const MAX_AMOUNT: f64 = 1e12;
/// Most parameter names one role (click id, type, transaction id) is looked for under.
pub const MAX_PARAM_NAMES: usize = 10;
/// Longest `/start` payload Telegram passes to a bot.
pub const MAX_START_PAYLOAD: usize = 64;
/// The tracker field a `/start` payload is kept in as it came.
pub const START_FIELD: &str = "start";

/// Event types that, without a transaction id, apply every time unless an action says
/// otherwise: repeat deposits and rebills happen many times per click.
const REPEATING_TYPES: [&str; 2] = ["resale", "rebill"];

/// A bot's Auto Actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoActions {
    /// The tracker field that holds a dialog's click id (`clickid`).
    pub click_id_field: String,
    /// Which parameters of a conversion carry what.
    pub params: ParamNames,
    /// What each event type does, in the order they were written.
    pub actions: Vec<Action>,
    /// How a `/start` payload becomes tracker fields.
    pub start_payload: StartRule,
}

impl Default for AutoActions {
    fn default() -> Self {
        Self {
            click_id_field: "clickid".into(),
            params: ParamNames::default(),
            actions: Vec::new(),
            start_payload: StartRule::Whole,
        }
    }
}

/// The parameter names a conversion's values are looked for under, first match wins (letter
/// case ignored): Keitaro's, Binom's and the plain ones by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParamNames {
    /// The click id: `subid` (Keitaro), `cnv_id` (Binom), `clickid`, `click_id`.
    pub click_id: Vec<String>,
    /// The event type: `status` (Keitaro), `cnv_status` (Binom), `type`, `event`.
    #[serde(rename = "type")]
    pub event_type: Vec<String>,
    /// The transaction id that makes a repeated conversion recognisable: `tid`,
    /// `transaction_id`, `txid`.
    pub tid: Vec<String>,
}

impl Default for ParamNames {
    fn default() -> Self {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect();
        Self {
            click_id: names(&["subid", "cnv_id", "clickid", "click_id"]),
            event_type: names(&["status", "cnv_status", "type", "event"]),
            tid: names(&["tid", "transaction_id", "txid"]),
        }
    }
}

/// What a conversion of one event type does to its dialog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// The event type as the conversion names it (`sale`, `dep`), in lower case.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The step the dialog moves to (its send-webhook fires like any step move).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    /// The status the dialog gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Custom fields to set: a literal, `{param}` (a conversion parameter) or `{time}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Number fields to add to: a number or `{param}` (`deposits: 1`, `revenue: {payout}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Whether a conversion without a transaction id applies every time (`true`) or once per
    /// click id (`false`). With a transaction id each one applies once.
    pub repeat: bool,
}

/// How a `/start` payload (1 to 64 of `A-Z a-z 0-9 _ -`) becomes tracker fields. The payload
/// itself is always kept in `tracker.start` as well.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "form", rename_all = "camelCase")]
pub enum StartRule {
    /// The whole payload is the click id.
    Whole,
    /// Literal text and `{name}` places: `CODE-{clickid}`, `{source}-{clickid}`.
    Pattern {
        /// The pattern.
        pattern: String,
    },
    /// `key__value` pairs: `clickid__abc--source__fb`.
    #[serde(rename_all = "camelCase")]
    Pairs {
        /// Between a key and its value (`__`).
        key_separator: String,
        /// Between pairs (`--`).
        pair_separator: String,
    },
    /// A base64url JSON object of tracker fields (`eyJjbGlja2lkIjoiYWJjIn0`).
    Base64Json,
}

/// Where a value of an action comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// Written in the action.
    Literal(&'a str),
    /// The conversion parameter of this name.
    Param(&'a str),
    /// The time the conversion arrived.
    Time,
}

/// Reads an action's value: `{name}` names a conversion parameter, `{time}` the conversion's
/// time, anything else is itself.
pub fn source(value: &str) -> Source<'_> {
    match value
        .trim()
        .strip_prefix('{')
        .and_then(|v| v.strip_suffix('}'))
    {
        Some("time") => Source::Time,
        Some(name) if !name.is_empty() && !name.contains(['{', '}']) => Source::Param(name.trim()),
        _ => Source::Literal(value),
    }
}

impl AutoActions {
    /// The action for event type `event_type` (letter case ignored).
    pub fn action(&self, event_type: &str) -> Option<&Action> {
        self.actions
            .iter()
            .find(|a| a.event_type.eq_ignore_ascii_case(event_type))
    }

    /// Reads and checks Auto Actions as the API takes them: every member optional, defaults
    /// for what is left out. `steps` are the bot's step ids, `fields` its field types.
    pub fn from_json(
        body: &Json,
        steps: &[String],
        fields: &BTreeMap<String, FieldType>,
    ) -> Result<AutoActions, Error> {
        let m = Members::of(body, &["clickIdField", "params", "actions", "startPayload"])?;
        let mut auto = AutoActions::default();
        if let Some(field) = m.string("clickIdField")? {
            let field = field.trim().to_string();
            if !valid_key(&field) {
                return Err(Error::invalid(
                    "bad_key",
                    "clickIdField",
                    "a tracker field key is 1 to 64 of A-Z a-z 0-9 _ -",
                ));
            }
            auto.click_id_field = field;
        }
        if let Some(params) = m.get("params") {
            auto.params = ParamNames::from_json(params).map_err(|e| e.under("params"))?;
        }
        for (i, a) in m.array("actions")?.into_iter().flatten().enumerate() {
            let at = format!("actions[{i}]");
            if i >= MAX_ACTIONS {
                return Err(Error::invalid(
                    "too_many_actions",
                    "actions",
                    format!("a bot has at most {MAX_ACTIONS} actions"),
                ));
            }
            let action = Action::from_json(a, steps, fields).map_err(|e| e.under(&at))?;
            if auto.action(&action.event_type).is_some() {
                return Err(Error::invalid(
                    "duplicate_type",
                    &format!("{at}.type"),
                    format!(
                        "another action is for {:?} already; one action per event type",
                        action.event_type
                    ),
                ));
            }
            auto.actions.push(action);
        }
        if let Some(rule) = m.get("startPayload") {
            auto.start_payload = StartRule::from_json(rule).map_err(|e| e.under("startPayload"))?;
        }
        Ok(auto)
    }
}

impl ParamNames {
    fn from_json(body: &Json) -> Result<ParamNames, Error> {
        let m = Members::of(body, &["clickId", "type", "tid"])?;
        let mut names = ParamNames::default();
        for (member, slot) in [
            ("clickId", &mut names.click_id),
            ("type", &mut names.event_type),
            ("tid", &mut names.tid),
        ] {
            let Some(list) = m.array(member)? else {
                continue;
            };
            let mut out = Vec::new();
            for (i, n) in list.iter().enumerate() {
                let name = n.as_str().map(str::trim).unwrap_or_default();
                if !valid_key(name) {
                    return Err(Error::invalid(
                        "bad_param_name",
                        &format!("{member}[{i}]"),
                        "a parameter name is 1 to 64 of A-Z a-z 0-9 _ -",
                    ));
                }
                out.push(name.to_string());
            }
            if out.len() > MAX_PARAM_NAMES || (out.is_empty() && member != "tid") {
                return Err(Error::invalid(
                    "bad_param_names",
                    member,
                    format!("give 1 to {MAX_PARAM_NAMES} parameter names"),
                ));
            }
            *slot = out;
        }
        // One name, one role: a conversion's `status` cannot be both its click id and its type.
        for (member, list) in [("type", &names.event_type), ("tid", &names.tid)] {
            if let Some(n) = list.iter().find(|n| {
                names.click_id.iter().any(|c| c.eq_ignore_ascii_case(n))
                    || (member == "tid"
                        && names.event_type.iter().any(|t| t.eq_ignore_ascii_case(n)))
            }) {
                return Err(Error::invalid(
                    "bad_param_names",
                    member,
                    format!("{n:?} names another role already"),
                ));
            }
        }
        Ok(names)
    }
}

impl Action {
    fn from_json(
        body: &Json,
        steps: &[String],
        fields: &BTreeMap<String, FieldType>,
    ) -> Result<Action, Error> {
        let m = Members::of(body, &["type", "stepId", "status", "set", "add", "repeat"])?;
        let event_type = m.required("type", 64)?.to_ascii_lowercase();
        if !valid_key(&event_type) {
            return Err(Error::invalid(
                "bad_type",
                "type",
                "an event type is 1 to 64 of A-Z a-z 0-9 _ -",
            ));
        }
        let step_id = m.string("stepId")?.map(|s| s.trim().to_string());
        if let Some(id) = &step_id
            && !steps.iter().any(|s| s == id)
        {
            return Err(Error::invalid(
                "unknown_step",
                "stepId",
                format!("this bot has no step {id:?}"),
            ));
        }
        let status = m
            .text("status")?
            .map(|s| Status::parse_field(s, "status"))
            .transpose()?;
        let set = value_map(&m, "set", fields, false)?;
        let add = value_map(&m, "add", fields, true)?;
        if step_id.is_none() && status.is_none() && set.is_empty() && add.is_empty() {
            return Err(Error::invalid(
                "empty_action",
                "type",
                "an action moves to a step, sets a status, or sets or adds to fields",
            ));
        }
        let repeat = m
            .bool("repeat")?
            .unwrap_or(REPEATING_TYPES.contains(&event_type.as_str()));
        Ok(Action {
            event_type,
            step_id,
            status,
            set,
            add,
            repeat,
        })
    }
}

/// `set` or `add`: field keys to values; a value is text, or a number for `add`.
fn value_map(
    m: &Members<'_>,
    member: &str,
    fields: &BTreeMap<String, FieldType>,
    numeric: bool,
) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for (key, value) in m.object(member)?.into_iter().flatten() {
        let at = format!("{member}.{key}");
        if !valid_key(key) {
            return Err(Error::invalid(
                "bad_key",
                &at,
                "a field key is 1 to 64 of A-Z a-z 0-9 _ -",
            ));
        }
        let text = match value {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            Json::Bool(b) if !numeric => b.to_string(),
            _ => {
                return Err(Error::invalid(
                    "wrong_type",
                    &at,
                    if numeric {
                        "expected a number or {param}"
                    } else {
                        "expected text, a number, a boolean, {param} or {time}"
                    },
                ));
            }
        };
        if text.len() > MAX_VALUE_LEN {
            return Err(Error::invalid(
                "value_too_long",
                &at,
                format!("the limit is {MAX_VALUE_LEN} bytes"),
            ));
        }
        let kind = fields.get(key).copied();
        match (numeric, source(&text)) {
            (true, _) if kind.is_some_and(|k| k != FieldType::Number) => {
                return Err(Error::invalid(
                    "not_a_number_field",
                    &at,
                    "only number fields can be added to",
                ));
            }
            (true, Source::Time) => {
                return Err(Error::invalid(
                    "wrong_type",
                    &at,
                    "a time cannot be added to a number",
                ));
            }
            (true, Source::Literal(t))
                if !crate::typed::typed_text(&at, t, Some(FieldType::Number))
                    .is_ok_and(|v| matches!(v, crate::model::FieldValue::Number(n) if n.as_f64().is_some_and(|f| f.abs() <= MAX_AMOUNT))) =>
            {
                return Err(Error::invalid(
                    "wrong_type",
                    &at,
                    format!("expected a number (at most {MAX_AMOUNT:e} in size) or {{param}}"),
                ));
            }
            (false, Source::Time) if kind.is_some_and(|k| k != FieldType::Date) => {
                return Err(Error::invalid(
                    "wrong_type",
                    &at,
                    "{time} goes into a date field",
                ));
            }
            (false, Source::Literal(t)) => {
                crate::typed::typed_text(&at, t, kind)?;
            }
            _ => {}
        }
        out.insert(key.clone(), text);
    }
    if out.len() > MAX_ACTION_FIELDS {
        return Err(Error::invalid(
            "too_many_fields",
            member,
            format!("an action sets or adds to at most {MAX_ACTION_FIELDS} fields"),
        ));
    }
    Ok(out)
}

/// Checks a `/start` payload as Telegram passes it: 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn check_start_payload(payload: &str, field: &str) -> Result<(), Error> {
    let ok = (1..=MAX_START_PAYLOAD).contains(&payload.len())
        && payload
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        return Ok(());
    }
    Err(Error::invalid(
        "bad_start_payload",
        field,
        format!(
            "a /start payload is 1 to {MAX_START_PAYLOAD} of A-Z a-z 0-9 _ - (Telegram passes nothing else); this one is {} bytes{}",
            payload.len(),
            if payload
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                ""
            } else {
                " with other characters"
            }
        ),
    ))
}

/// A piece of a [`StartRule::Pattern`].
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Place(&'a str),
}

fn pieces(pattern: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        match rest.find('{') {
            Some(0) => {
                let end = rest.find('}').ok_or("a { is not closed")?;
                let name = &rest[1..end];
                if !valid_key(name) {
                    return Err(format!("{{{name}}} is not a tracker field key"));
                }
                if matches!(out.last(), Some(Piece::Place(_))) {
                    return Err("two places need text between them".into());
                }
                if out.contains(&Piece::Place(name)) {
                    return Err(format!("{{{name}}} is in the pattern twice"));
                }
                out.push(Piece::Place(name));
                rest = &rest[end + 1..];
            }
            found => {
                let end = found.unwrap_or(rest.len());
                let text = &rest[..end];
                if text.contains('}') {
                    return Err("a } without its {".into());
                }
                if !text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(format!(
                        "{text:?} has characters a /start payload cannot carry"
                    ));
                }
                out.push(Piece::Text(text));
                rest = &rest[end..];
            }
        }
    }
    if !out.iter().any(|p| matches!(p, Piece::Place(_))) {
        return Err("a pattern has at least one {place}".into());
    }
    Ok(out)
}

fn separator(m: &Members<'_>, name: &str, default: &str) -> Result<String, Error> {
    let s = m.string(name)?.unwrap_or_else(|| default.to_string());
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b == b'_' || b == b'-') {
        return Err(Error::invalid(
            "bad_separator",
            name,
            "a separator is 1 to 8 of _ and - (what a /start payload can carry besides letters and digits)",
        ));
    }
    Ok(s)
}

impl StartRule {
    /// Reads a rule: `{"form": "whole" | "pattern" | "pairs" | "base64Json", ...}`.
    pub fn from_json(body: &Json) -> Result<StartRule, Error> {
        let m = Members::of(body, &["form", "pattern", "keySeparator", "pairSeparator"])?;
        let form = m.required("form", 32)?;
        // Every member given is checked, whichever form uses it: a console switching forms
        // sends them all, and a bad one is a mistake to name now.
        let key_separator = separator(&m, "keySeparator", "__")?;
        let pair_separator = separator(&m, "pairSeparator", "--")?;
        let pattern = m.string("pattern")?;
        if let Some(p) = &pattern
            && (p.len() > 200 || pieces(p).is_err())
        {
            let why = pieces(p)
                .err()
                .unwrap_or_else(|| "the limit is 200 bytes".into());
            return Err(Error::invalid("bad_pattern", "pattern", why));
        }
        let rule = match form.as_str() {
            "whole" => StartRule::Whole,
            "base64Json" => StartRule::Base64Json,
            "pattern" => StartRule::Pattern {
                pattern: pattern.ok_or_else(|| {
                    Error::invalid(
                        "missing_field",
                        "pattern",
                        "the pattern form needs a pattern, like CODE-{clickid}",
                    )
                })?,
            },
            "pairs" => {
                if key_separator.contains(&pair_separator)
                    || pair_separator.contains(&key_separator)
                {
                    return Err(Error::invalid(
                        "bad_separator",
                        "pairSeparator",
                        "the two separators must not contain one another",
                    ));
                }
                StartRule::Pairs {
                    key_separator,
                    pair_separator,
                }
            }
            other => {
                return Err(Error::invalid(
                    "bad_form",
                    "form",
                    format!("{other:?} is not a form; use whole, pattern, pairs or base64Json"),
                ));
            }
        };
        Ok(rule)
    }

    /// A rule as stored (checked by [`StartRule::from_json`] when it was saved), read without
    /// building errors: the dialog components read it on their hot path.
    fn from_stored(rule: &Json) -> Option<StartRule> {
        let text = |k: &str| rule.get(k).and_then(Json::as_str).map(str::to_string);
        Some(match rule.get("form")?.as_str()? {
            "pattern" => StartRule::Pattern {
                pattern: text("pattern")?,
            },
            "pairs" => StartRule::Pairs {
                key_separator: text("keySeparator")?,
                pair_separator: text("pairSeparator")?,
            },
            "base64Json" => StartRule::Base64Json,
            _ => StartRule::Whole,
        })
    }

    /// The tracker fields `payload` (already checked by [`check_start_payload`]) carries
    /// under this rule, with `click_field` for the whole payload; `Err` says why the payload
    /// does not fit the rule (the dialog still starts, with the payload in `tracker.start`).
    pub fn read(
        &self,
        payload: &str,
        click_field: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        match self {
            StartRule::Whole => {
                out.insert(click_field.to_string(), payload.to_string());
            }
            StartRule::Pattern { pattern } => {
                let pieces = pieces(pattern)?;
                let mut rest = payload;
                let mut iter = pieces.iter().enumerate().peekable();
                while let Some((_, piece)) = iter.next() {
                    match piece {
                        Piece::Text(t) => {
                            rest = rest.strip_prefix(t).ok_or_else(|| {
                                format!("the payload does not have {t:?} where the pattern does")
                            })?;
                        }
                        Piece::Place(name) => {
                            let end = match iter.peek() {
                                // The pattern's last text ends the payload: the place takes
                                // everything before it (`{clickid}-x` reads `ab-xy-x`).
                                Some((i, Piece::Text(t))) if *i == pieces.len() - 1 => {
                                    rest.strip_suffix(t).map(str::len).ok_or_else(|| {
                                        format!("the payload does not end with {t:?}")
                                    })?
                                }
                                Some((_, Piece::Text(t))) => rest.find(t).ok_or_else(|| {
                                    format!("the payload has no {t:?} after {{{name}}}")
                                })?,
                                _ => rest.len(),
                            };
                            if end == 0 {
                                return Err(format!("{{{name}}} is empty in the payload"));
                            }
                            out.insert(name.to_string(), rest[..end].to_string());
                            rest = &rest[end..];
                        }
                    }
                }
                if !rest.is_empty() {
                    return Err(format!("{rest:?} is left over after the pattern"));
                }
            }
            StartRule::Pairs {
                key_separator,
                pair_separator,
            } => {
                for pair in payload.split(pair_separator.as_str()) {
                    let (key, value) =
                        pair.split_once(key_separator.as_str()).ok_or_else(|| {
                            format!("{pair:?} has no {key_separator:?} between a key and a value")
                        })?;
                    if !valid_key(key) || value.is_empty() {
                        return Err(format!("{pair:?} is not a key and a value"));
                    }
                    out.insert(key.to_string(), value.to_string());
                }
            }
            StartRule::Base64Json => {
                let bytes = base64url(payload).ok_or("the payload is not base64url")?;
                let json: Json = serde_json::from_slice(&bytes)
                    .map_err(|_| "the payload's base64url is not JSON".to_string())?;
                let Json::Object(map) = json else {
                    return Err("the payload's JSON is not an object".into());
                };
                for (key, value) in map {
                    let text = match value {
                        Json::String(s) => s,
                        Json::Number(_) | Json::Bool(_) => value.to_string(),
                        _ => return Err(format!("{key:?} is not text, a number or a boolean")),
                    };
                    if !valid_key(&key) {
                        return Err(format!("{key:?} is not a tracker field key"));
                    }
                    out.insert(key, text);
                }
            }
        }
        Ok(out)
    }
}

/// Decodes unpadded base64url (RFC 4648 §5). By hand, not with the `base64` crate: ten lines,
/// and it kept the dialog components within their size budget (the crate added 6 KB each).
fn base64url(text: &str) -> Option<Vec<u8>> {
    let sextet = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= sextet(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// What a `/start` payload gave: its tracker fields, or why it did not fit the bot's rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadRead {
    /// The payload as it came.
    pub payload: String,
    /// The tracker fields it gave (with `start`: the payload itself).
    pub tracker: BTreeMap<String, String>,
    /// Why it did not fit the rule, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<String>,
}

/// Reads `payload` (the parameter or member `field`) by the bot's rule (its Auto Actions as
/// stored, read here without their typed form): `Err` only when it is not a payload Telegram
/// could pass.
pub fn read_start_payload(
    payload: &str,
    auto: Option<&Json>,
    field: &str,
) -> Result<PayloadRead, Error> {
    let payload = payload.trim();
    check_start_payload(payload, field)?;
    let rule = auto
        .and_then(|a| a.get("startPayload"))
        .and_then(StartRule::from_stored)
        .unwrap_or(StartRule::Whole);
    let click_field = auto
        .and_then(|a| a["clickIdField"].as_str())
        .unwrap_or("clickid");
    let mut tracker = BTreeMap::new();
    let mismatch = match rule.read(payload, click_field) {
        Ok(fields) => {
            tracker.extend(fields);
            None
        }
        Err(why) => Some(why),
    };
    // Kept as it came, whatever the rule names.
    tracker.insert(START_FIELD.to_string(), payload.to_string());
    Ok(PayloadRead {
        payload: payload.to_string(),
        tracker,
        mismatch,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(v: Json) -> StartRule {
        StartRule::from_json(&v).unwrap()
    }

    #[test]
    fn each_payload_form_fills_the_tracker_fields_it_names() {
        let whole = rule(json!({"form": "whole"}));
        assert_eq!(
            whole.read("abc123", "clickid").unwrap()["clickid"],
            "abc123"
        );
        let code = rule(json!({"form": "pattern", "pattern": "CODE-{clickid}"}));
        assert_eq!(code.read("CODE-9f8e7d", "x").unwrap()["clickid"], "9f8e7d");
        assert!(code.read("OTHER-9f8e7d", "x").is_err());
        let tail = rule(json!({"form": "pattern", "pattern": "{clickid}-x"}));
        assert_eq!(tail.read("ab-xy-x", "x").unwrap()["clickid"], "ab-xy");
        let two = rule(json!({"form": "pattern", "pattern": "{source}_{clickid}"}));
        let got = two.read("fb_9f8e-7d_x", "x").unwrap();
        assert_eq!(
            (got["source"].as_str(), got["clickid"].as_str()),
            ("fb", "9f8e-7d_x")
        );
        let pairs = rule(json!({"form": "pairs"}));
        let got = pairs.read("clickid__abc--source__fb", "x").unwrap();
        assert_eq!(
            (got["clickid"].as_str(), got["source"].as_str()),
            ("abc", "fb")
        );
        assert!(pairs.read("clickid-abc", "x").is_err());
        let b64 = rule(json!({"form": "base64Json"}));
        // {"clickid":"abc","n":5}
        let got = b64.read("eyJjbGlja2lkIjoiYWJjIiwibiI6NX0", "x").unwrap();
        assert_eq!((got["clickid"].as_str(), got["n"].as_str()), ("abc", "5"));
        assert!(b64.read("notjson", "x").is_err());
    }

    #[test]
    fn payloads_telegram_cannot_pass_are_refused_by_name() {
        let e = read_start_payload("abc def", None, "startPayload").unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("bad_start_payload", Some("startPayload"))
        );
        assert!(read_start_payload(&"a".repeat(65), None, "startPayload").is_err());
        let ok = read_start_payload("CODE-1", None, "startPayload").unwrap();
        assert_eq!(ok.tracker["clickid"], "CODE-1");
        assert_eq!(ok.tracker["start"], "CODE-1");
    }

    #[test]
    fn rules_and_actions_are_checked_when_saved() {
        for (bad, field) in [
            (json!({"form": "pattern", "pattern": "CODE-"}), "pattern"),
            (json!({"form": "pattern", "pattern": "{a}{b}"}), "pattern"),
            (json!({"form": "pattern", "pattern": "a b{c}"}), "pattern"),
            (
                json!({"form": "pairs", "keySeparator": "_", "pairSeparator": "__"}),
                "pairSeparator",
            ),
            (json!({"form": "nope"}), "form"),
        ] {
            let e = StartRule::from_json(&bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{bad}");
        }
        let fields = BTreeMap::from([
            ("deposits".to_string(), FieldType::Number),
            ("vip".to_string(), FieldType::Boolean),
        ]);
        let steps = vec!["s1".to_string()];
        let bad = json!({"actions": [{"type": "sale", "add": {"vip": 1}}]});
        let e = AutoActions::from_json(&bad, &steps, &fields).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("actions[0].add.vip"));
        let bad = json!({"actions": [{"type": "sale", "stepId": "s2"}]});
        let e = AutoActions::from_json(&bad, &steps, &fields).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("actions[0].stepId"));
        let bad = json!({"actions": [{"type": "sale", "stepId": "s1"}, {"type": "SALE", "status": "manual"}]});
        let e = AutoActions::from_json(&bad, &steps, &fields).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("duplicate_type", Some("actions[1].type"))
        );
        let good = json!({"actions": [
            {"type": "Sale", "stepId": "s1", "add": {"deposits": 1, "revenue": "{payout}"}},
            {"type": "resale", "add": {"deposits": "1"}}
        ]});
        let auto = AutoActions::from_json(&good, &steps, &fields).unwrap();
        assert_eq!(auto.action("SALE").unwrap().event_type, "sale");
        assert!(!auto.action("sale").unwrap().repeat);
        assert!(auto.action("resale").unwrap().repeat);
    }
}
