//! Logs as JSON lines on stderr, which Spin and Kubernetes collect: one line per request,
//! per delivery attempt, per sweep, per problem only operators should see. Every line
//! carries the time, its level, the component and the request's id, so the lines of one
//! request (and of the requests it chains to) can be found together.
//!
//! What a line may hold is chosen by its writer: ids, route patterns (never the path, which
//! can hold a postback link's secret), host names, status codes, counts, error codes and
//! field names. Never URLs, headers, bodies, tokens or keys.
//!
//! A request sets its context once ([`begin`]); the domain crates then write lines without
//! knowing about Spin.

use std::cell::RefCell;
use std::fmt::Write as _;

/// How much is logged: a line is written when its level is at or above the chosen one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Details for debugging.
    Debug,
    /// Every request and attempt.
    Info,
    /// Rejected requests, failed attempts.
    Warn,
    /// The store failing, work that could not be done.
    Error,
}

impl Level {
    /// Reads `debug`, `info`, `warn` or `error` (any case); anything else is `None`.
    pub fn parse(text: &str) -> Option<Level> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" => Level::Error,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// What every line of the current request carries.
struct Context {
    component: &'static str,
    request_id: String,
    level: Level,
    route: &'static str,
    error: Option<(&'static str, Option<String>)>,
}

thread_local! {
    static CONTEXT: RefCell<Context> = const {
        RefCell::new(Context {
            component: "",
            request_id: String::new(),
            level: Level::Info,
            route: "",
            error: None,
        })
    };
}

/// Starts a request's context: its component, its id and the level to log at.
pub fn begin(component: &'static str, request_id: String, level: Level) {
    CONTEXT.with(|c| {
        *c.borrow_mut() = Context {
            component,
            request_id,
            level,
            route: "",
            error: None,
        }
    });
}

/// The current request's id.
pub fn request_id() -> String {
    CONTEXT.with(|c| c.borrow().request_id.clone())
}

/// Records the route pattern the request matched (`/api/bots/{botId}`), for its line.
pub fn set_route(route: &'static str) {
    CONTEXT.with(|c| c.borrow_mut().route = route);
}

/// The route pattern the request matched, if any.
pub fn route() -> &'static str {
    CONTEXT.with(|c| c.borrow().route)
}

/// Records the error the request is answered with (its code and field), for its line.
pub fn note_error(code: &'static str, field: Option<&str>) {
    CONTEXT.with(|c| c.borrow_mut().error = Some((code, field.map(str::to_string))));
}

/// The error the request was answered with, if any: its code and field.
pub fn noted_error() -> Option<(&'static str, Option<String>)> {
    CONTEXT.with(|c| c.borrow().error.clone())
}

/// Whether a line at `level` would be written: inside a request (see [`begin`]; domain
/// code run by plain tests writes nothing) at or above its level.
pub fn enabled(level: Level) -> bool {
    CONTEXT.with(|c| {
        let c = c.borrow();
        !c.component.is_empty() && level >= c.level
    })
}

/// A line being written; [`Line::emit`] writes it.
pub struct Line {
    buf: String,
}

/// A line at `level` about `event`, with the time, component and request id; `None` when
/// that level is not logged.
pub fn line(level: Level, event: &str) -> Option<Line> {
    if !enabled(level) {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut line = Line {
        buf: String::with_capacity(256),
    };
    line.buf.push_str("{\"time\":\"");
    line.buf.push_str(&crate::Timestamp(now).iso());
    line.buf.push('"');
    line = line.str("level", level.as_str());
    CONTEXT.with(|c| {
        let c = c.borrow();
        line.buf.push_str(",\"component\":");
        push_json_str(&mut line.buf, c.component);
        if !c.request_id.is_empty() {
            line.buf.push_str(",\"requestId\":");
            push_json_str(&mut line.buf, &c.request_id);
        }
    });
    Some(line.str("event", event))
}

impl Line {
    /// Adds a text member.
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        push_json_str(&mut self.buf, value);
        self
    }

    /// Adds a text member when there is a value.
    pub fn opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self,
        }
    }

    /// Adds a number member.
    pub fn num(mut self, key: &str, value: i64) -> Self {
        self.key(key);
        let _ = write!(self.buf, "{value}");
        self
    }

    /// Adds a number member when there is a value.
    pub fn opt_num(self, key: &str, value: Option<i64>) -> Self {
        match value {
            Some(v) => self.num(key, v),
            None => self,
        }
    }

    fn key(&mut self, key: &str) {
        self.buf.push(',');
        push_json_str(&mut self.buf, key);
        self.buf.push(':');
    }

    /// Writes the line to stderr, whole.
    pub fn emit(mut self) {
        self.buf.push_str("}\n");
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(self.buf.as_bytes());
    }
}

/// Appends `s` as a JSON string.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `text` with the ids of postback links (the secret in their keys, `link:<id>`) replaced by
/// `***`: store errors name the keys they failed on.
pub fn redact_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("link:") {
        out.push_str(&rest[..at + 5]);
        rest = &rest[at + 5..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            out.push_str("***");
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_with_the_request_context() {
        begin("send-webhook", "req-1".into(), Level::Info);
        let mut written = None;
        if let Some(l) = line(Level::Info, "attempt") {
            let l = l
                .str("host", "a\"b\n")
                .num("status", 500)
                .opt_str("none", None);
            written = Some(l.buf.clone() + "}");
        }
        let v: serde_json::Value = serde_json::from_str(&written.unwrap()).unwrap();
        assert_eq!(v["component"], "send-webhook");
        assert_eq!(v["requestId"], "req-1");
        assert_eq!(v["event"], "attempt");
        assert_eq!(v["level"], "info");
        assert_eq!(v["host"], "a\"b\n");
        assert_eq!(v["status"], 500);
        assert!(v.get("none").is_none());
        assert!(line(Level::Debug, "x").is_none());
        begin("c", String::new(), Level::Error);
        assert!(line(Level::Warn, "x").is_none());
    }

    #[test]
    fn link_ids_in_store_messages_are_redacted() {
        assert_eq!(
            redact_keys("record link:55833627-242e-4061-9b0a-30da3e9cf7d4: bad; link:x:born"),
            "record link:***: bad; link:***:born"
        );
        assert_eq!(redact_keys("bot:1 is fine"), "bot:1 is fine");
    }
}
