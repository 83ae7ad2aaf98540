//! `POST /api/templates/preview`: renders a template for where it will land, against a real
//! dialog or a sample, and reports missing and unknown names. Nothing is sent or stored.

use funnelhooks_core::Error;
use funnelhooks_core::json::Members;
use funnelhooks_dialogs::Dialog;
use funnelhooks_spin::json;
use funnelhooks_spin::request::body;
use funnelhooks_steps::sample::sample;
use funnelhooks_template::{KeyMatch, Known, LintKind, Name, Target, Template, match_key};
use spin_sdk::http::Response;

use crate::Ctx;
use crate::deliver::{DialogChoice, dialog_or_sample};

/// Longest template a preview renders: as long as a step's templates may be.
const MAX_TEMPLATE: usize = funnelhooks_steps::config::MAX_TEMPLATE_CHARS;

fn target(name: Option<&str>) -> Result<Target, Error> {
    Ok(match name.unwrap_or("text") {
        "url" => Target::Url,
        "json" => Target::Json,
        "form" => Target::Form,
        "header" => Target::Header,
        "text" => Target::Text,
        _ => {
            return Err(Error::invalid(
                "bad_target",
                "target",
                "use url, json, form, header or text",
            ));
        }
    })
}

/// The dialog to render against, and the custom field keys its bot defines.
fn context(ctx: &Ctx, m: &Members<'_>) -> Result<(Dialog, Vec<String>), Error> {
    let choice = DialogChoice::from_members(m)?;
    // A chat id is checked even where it is not used (no botId): a typo is said, not hidden.
    if let Some(chat) = m.get("chatId").filter(|c| !c.is_null()) {
        funnelhooks_core::chat::from_json(chat, "chatId")?;
    }
    match m.text("botId")? {
        // A bot outside the caller's scope is one that does not exist (the route itself names
        // no bot, so the access check could not say).
        Some(bot) if !funnelhooks_spin::auth::caller().sees_bot(bot) => Err(Error::unknown_bot()),
        Some(bot) => {
            let bot = ctx.repo.bot(bot)?;
            let fields = bot.fields.keys().cloned().collect();
            Ok((dialog_or_sample(ctx, &bot, &choice)?, fields))
        }
        None => Ok((sample("sample", ctx.now, choice.sample())?, Vec::new())),
    }
}

/// Whether `key` is a custom field of the dialog or the bot: exactly, by letter case alone
/// (as rendering uses it), or ambiguously.
fn known_field(key: &str, dialog: &Dialog, defined: &[String]) -> Known {
    if dialog.fields.contains_key(key) || defined.iter().any(|k| k == key) {
        return Known::Yes;
    }
    let mut all: Vec<&str> = dialog.fields.keys().map(String::as_str).collect();
    all.extend(defined.iter().map(String::as_str));
    all.sort_unstable();
    all.dedup();
    match match_key(key, all.iter().copied()) {
        KeyMatch::Exact(_) => Known::Yes,
        KeyMatch::CaseOnly(k) => Known::AsKey(k.to_string()),
        KeyMatch::Ambiguous => Known::Ambiguous(
            all.iter()
                .filter(|k| k.eq_ignore_ascii_case(key))
                .map(|k| k.to_string())
                .collect(),
        ),
        KeyMatch::None => Known::No,
    }
}

/// `{"template", "target": "url|json|form|header|text", "botId"?, "chatId"?, "sample"?}`.
pub(crate) fn preview(ctx: &Ctx) -> Result<Response, Error> {
    let body = body(ctx.req)?;
    let m = Members::of(&body, &["template", "target", "botId", "chatId", "sample"])?;
    let source = m
        .text("template")?
        .ok_or_else(|| Error::invalid("missing_field", "template", "the template to render"))?;
    if source.chars().count() > MAX_TEMPLATE {
        return Err(Error::invalid(
            "value_too_long",
            "template",
            format!("at most {MAX_TEMPLATE} characters"),
        ));
    }
    let target = target(m.text("target")?)?;
    let template = Template::parse(source, target).map_err(|e| Error::from(e).at("template"))?;
    // What a save refuses, the preview refuses too: the braces would be sent as text.
    if let Some(lint) = template.malformed() {
        return Err(
            Error::invalid("malformed_template", "template", lint.message).at_position(lint.offset),
        );
    }
    let (dialog, fields) = context(ctx, &m)?;
    let rendered = template
        .render(&dialog)
        .map_err(|e| Error::from(e).at("template"))?;
    let known = |name: &Name| match name {
        Name::Field { key, .. } => known_field(key, &dialog, &fields),
        _ => Known::Yes,
    };
    let lints = template.lint(known);
    let unknown: Vec<&str> = lints
        .iter()
        .filter(|l| l.kind == LintKind::UnknownName)
        .map(|l| &source[l.offset..l.end])
        .collect();
    let lints: Vec<_> = lints
        .iter()
        .map(|l| {
            serde_json::json!({"offset": l.offset, "end": l.end, "kind": l.kind.code(), "message": l.message})
        })
        .collect();
    Ok(json(
        200,
        &serde_json::json!({
            "output": rendered.output,
            "missing": rendered.missing,
            "unknown": unknown,
            "lints": lints,
        }),
    ))
}
