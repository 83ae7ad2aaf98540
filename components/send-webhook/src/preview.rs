//! `POST /api/templates/preview`: renders a template for where it will land, against a real
//! dialog or a sample, and reports missing and unknown names. Nothing is sent or stored.

use funnelhooks_dialog::Dialog;
use funnelhooks_spin::request::body;
use funnelhooks_spin::{ApiError, json};
use funnelhooks_template::{LintKind, Target, Template};
use spin_sdk::http::Response;

use crate::Call;
use crate::deliver::{dialog_or_sample, sample};

/// `{"template", "target": "url|json|form|header|text", "botId"?, "chatId"?, "sample"?}`.
pub(crate) fn preview(call: &Call) -> Result<Response, ApiError> {
    let body = body(call.req)?;
    body.only(&["template", "target", "botId", "chatId", "sample"])?;
    let source = body.text("template", 64 * 1024)?.ok_or_else(|| {
        ApiError::new(422, "missing_field", "the template to render").with_field("template")
    })?;
    let target = match body.text("target", 16)?.as_deref().unwrap_or("text") {
        "url" => Target::Url,
        "json" => Target::Json,
        "form" => Target::Form,
        "header" => Target::Header,
        "text" => Target::Text,
        _ => {
            return Err(
                ApiError::new(422, "bad_target", "use url, json, form, header or text")
                    .with_field("target"),
            );
        }
    };
    let template = Template::parse(&source, target).map_err(|e| ApiError {
        position: Some(e.offset),
        ..ApiError::new(422, "bad_template", e.to_string()).with_field("template")
    })?;
    let (dialog, fields): (Dialog, Vec<String>) = match body.text("botId", 64)? {
        Some(bot) => {
            let bot = call.repo.bot(&bot)?;
            let d = dialog_or_sample(call, &bot, &body)?;
            (d, bot.fields.keys().cloned().collect())
        }
        None => (sample("sample", body.object("sample")?)?, Vec::new()),
    };
    let rendered = template.render(&dialog).map_err(|e| ApiError {
        position: Some(e.offset),
        ..ApiError::new(422, "render_failed", e.to_string()).with_field("template")
    })?;
    let known = |name: &funnelhooks_template::Name| match name {
        funnelhooks_template::Name::Field { key, .. } => {
            dialog.fields.contains_key(key) || fields.contains(key)
        }
        _ => true,
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
