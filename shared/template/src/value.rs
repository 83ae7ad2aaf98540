//! What a template reads: a dialog (or a call, or a sample) seen through [`Context`].

use std::collections::BTreeMap;

use crate::builtin::Builtin;

/// A value borrowed from the context; nothing is cloned to render it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Text.
    Str(&'a str),
    /// An integer (a Telegram chat id, a balance).
    Int(i64),
    /// A number with a fraction.
    Num(f64),
    /// A flag.
    Bool(bool),
    /// A moment, as Unix milliseconds (UTC).
    Time(i64),
}

/// Where template names get their values. The dialog model implements it over its own data.
pub trait Context {
    /// `chatId`, `username`, `name`, `stepKey`, `stepId`, `status`, `createdAt`.
    fn builtin(&self, builtin: Builtin) -> Option<Value<'_>>;
    /// A custom field (`fields.KEY`, `details.KEY`, bare `KEY`).
    fn field(&self, key: &str) -> Option<Value<'_>>;
    /// A tracker field (`tracker.KEY`).
    fn tracker(&self, key: &str) -> Option<Value<'_>>;
}

/// An owned value, for contexts built from JSON or by hand (previews, samples, tests).
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedValue {
    /// Text.
    Str(String),
    /// An integer.
    Int(i64),
    /// A number with a fraction.
    Num(f64),
    /// A flag.
    Bool(bool),
    /// Unix milliseconds.
    Time(i64),
}

impl OwnedValue {
    /// Borrows it as a [`Value`].
    pub fn as_value(&self) -> Value<'_> {
        match self {
            OwnedValue::Str(s) => Value::Str(s),
            OwnedValue::Int(i) => Value::Int(*i),
            OwnedValue::Num(n) => Value::Num(*n),
            OwnedValue::Bool(b) => Value::Bool(*b),
            OwnedValue::Time(t) => Value::Time(*t),
        }
    }
}

impl From<&str> for OwnedValue {
    fn from(s: &str) -> Self {
        OwnedValue::Str(s.to_string())
    }
}

/// A context held in maps: the sample context of a preview, and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MapContext {
    /// Built-in values.
    pub builtins: BTreeMap<Builtin, OwnedValue>,
    /// Custom fields.
    pub fields: BTreeMap<String, OwnedValue>,
    /// Tracker fields.
    pub tracker: BTreeMap<String, OwnedValue>,
}

impl MapContext {
    /// Sets a built-in.
    pub fn with_builtin(mut self, b: Builtin, v: OwnedValue) -> Self {
        self.builtins.insert(b, v);
        self
    }

    /// Sets a custom field.
    pub fn with_field(mut self, key: &str, v: OwnedValue) -> Self {
        self.fields.insert(key.into(), v);
        self
    }

    /// Sets a tracker field.
    pub fn with_tracker(mut self, key: &str, v: OwnedValue) -> Self {
        self.tracker.insert(key.into(), v);
        self
    }
}

impl Context for MapContext {
    fn builtin(&self, builtin: Builtin) -> Option<Value<'_>> {
        self.builtins.get(&builtin).map(OwnedValue::as_value)
    }

    fn field(&self, key: &str) -> Option<Value<'_>> {
        self.fields.get(key).map(OwnedValue::as_value)
    }

    fn tracker(&self, key: &str) -> Option<Value<'_>> {
        self.tracker.get(key).map(OwnedValue::as_value)
    }
}
