//! Building one delivery's request from a step's webhook config and a dialog: every
//! template rendered with escaping for where its value lands, the URL checked against the
//! target rules, the body and its content type set.

use funnelhooks_core::Error;
use funnelhooks_delivery::request::{MAX_BODY_BYTES, MAX_HEADER_VALUE_BYTES, MAX_URL_BYTES};
use funnelhooks_delivery::{OutboundRequest, TargetPolicy, check_target};
use funnelhooks_dialogs::Dialog;
use funnelhooks_template::Template;

use crate::config::{Body, WebhookConfig};
use crate::profile::profile;

/// A built request and the names that had no value.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The request.
    pub request: OutboundRequest,
    /// Names the templates used that the dialog has no value for, as written.
    pub missing: Vec<String>,
}

fn render(
    field: &str,
    template: &Template,
    dialog: &Dialog,
    missing: &mut Vec<String>,
    limit: usize,
) -> Result<String, Error> {
    let rendered = template.render_within(dialog, limit).map_err(|e| {
        Error {
            code: "render_failed",
            ..Error::from(e)
        }
        .at(field)
    })?;
    missing.extend(rendered.missing.iter().map(|m| m.to_string()));
    Ok(rendered.output)
}

/// Builds the request `config` describes for `dialog`; errors name the config member
/// (`webhook.url`, `webhook.headers.x-tag`). A request past a bound of
/// `funnelhooks_delivery::request` is an error, never cut.
pub fn prepare(
    config: &WebhookConfig,
    dialog: &Dialog,
    policy: TargetPolicy,
) -> Result<Prepared, Error> {
    let mut missing = Vec::new();
    let url = render(
        "webhook.url",
        &config.url,
        dialog,
        &mut missing,
        MAX_URL_BYTES,
    )?;
    let url = check_target(&url, policy)
        .map_err(|e| e.at("webhook.url"))?
        .to_string();
    let mut headers = Vec::with_capacity(config.headers.len() + 1);
    for (name, template) in &config.headers {
        let value = render(
            &format!("webhook.headers.{name}"),
            template,
            dialog,
            &mut missing,
            MAX_HEADER_VALUE_BYTES,
        )?;
        headers.push((name.clone(), value));
    }
    let body = match &config.body {
        Body::None => Vec::new(),
        Body::Profile => profile(dialog).to_string().into_bytes(),
        Body::Template(template) => render(
            "webhook.body.template",
            template,
            dialog,
            &mut missing,
            MAX_BODY_BYTES,
        )?
        .into_bytes(),
    };
    if let Some(ct) = config.body.content_type()
        && !headers.iter().any(|(n, _)| n == "content-type")
    {
        headers.push(("content-type".into(), ct.into()));
    }
    let request = OutboundRequest {
        method: config.method.as_str().to_string(),
        url,
        headers,
        body,
    };
    if let Some(why) = request.unsendable(policy) {
        return Err(Error::invalid("unsendable", "webhook", why));
    }
    Ok(Prepared { request, missing })
}
