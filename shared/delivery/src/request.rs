//! Building one delivery's request from a step's webhook config and a dialog: every
//! template rendered with escaping for where its value lands, the URL checked against the
//! SSRF rules, the body and its content type set.

use funnelhooks_dialog::Dialog;
use funnelhooks_template::Template;
use serde::{Deserialize, Serialize};

use crate::config::{Body, WebhookConfig};
use crate::error::DeliveryError;
use crate::profile::profile;
use crate::target::{TargetPolicy, check_target};

/// A request ready to send (and to log, and to send again on a retry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundRequest {
    /// `GET`, `POST`...
    pub method: String,
    /// The URL.
    pub url: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    #[serde(with = "body_text")]
    pub body: Vec<u8>,
}

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
) -> Result<String, DeliveryError> {
    let rendered = template.render(dialog).map_err(|e| DeliveryError::Config {
        field: field.to_string(),
        code: "render_failed",
        message: e.to_string(),
        position: Some(e.offset),
    })?;
    missing.extend(rendered.missing.iter().map(|m| m.to_string()));
    Ok(rendered.output)
}

/// Builds the request `config` describes for `dialog`.
pub fn prepare(
    config: &WebhookConfig,
    dialog: &Dialog,
    policy: TargetPolicy,
) -> Result<Prepared, DeliveryError> {
    let mut missing = Vec::new();
    let url = render("webhook.url", &config.url, dialog, &mut missing)?;
    let url = check_target(&url, policy)?.to_string();
    let mut headers = Vec::with_capacity(config.headers.len() + 1);
    for (name, template) in &config.headers {
        let value = render(
            &format!("webhook.headers.{name}"),
            template,
            dialog,
            &mut missing,
        )?;
        headers.push((name.clone(), value));
    }
    let body = match &config.body {
        Body::None => Vec::new(),
        Body::Profile => profile(dialog).to_string().into_bytes(),
        Body::Template { template } => {
            render("webhook.body.template", template, dialog, &mut missing)?.into_bytes()
        }
    };
    if let Some(ct) = config.body.content_type()
        && !headers.iter().any(|(n, _)| n == "content-type")
    {
        headers.push(("content-type".into(), ct.into()));
    }
    Ok(Prepared {
        request: OutboundRequest {
            method: config.method.as_str().to_string(),
            url,
            headers,
            body,
        },
        missing,
    })
}

/// Bodies are stored as text when they are UTF-8 (they nearly always are), else base64.
mod body_text {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(body) {
            Ok(text) if !text.starts_with("base64:") => s.serialize_str(text),
            _ => s.serialize_str(&format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(body)
            )),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        match text.strip_prefix("base64:") {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(serde::de::Error::custom),
            None => Ok(text.into_bytes()),
        }
    }
}
