//! The request headers Spin's wasi:http executor hands a component: every client header but
//! `connection`, plus `spin-full-url`, `spin-path-info`, `spin-matched-route`,
//! `spin-component-route`, `spin-raw-component-route`, `spin-base-path`, `spin-client-addr`
//! and one `spin-path-match-<name>` per `:name` segment (`_` written as `-`).

use std::net::SocketAddr;

use anyhow::Result;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use crate::routing::RouteMatch;

/// Returns `req` with its headers rewritten as Spin rewrites them for `route`.
pub fn with_spin_headers(
    mut req: http::Request<Bytes>,
    route: &RouteMatch,
    client: SocketAddr,
) -> Result<http::Request<Bytes>> {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let scheme = req.uri().scheme_str().unwrap_or("http").to_string();

    let mut added: Vec<(String, String)> = vec![
        ("spin-path-info".into(), route.path_info.clone()),
        (
            "spin-full-url".into(),
            format!("{scheme}://{host}{path_and_query}"),
        ),
        ("spin-matched-route".into(), route.based_route.clone()),
        ("spin-base-path".into(), "/".into()),
        ("spin-raw-component-route".into(), route.raw_route.clone()),
        (
            "spin-component-route".into(),
            route.raw_route_or_prefix().to_string(),
        ),
        ("spin-client-addr".into(), client.to_string()),
    ];
    for (name, value) in &route.named {
        added.push((
            format!(
                "spin-path-match-{}",
                name.to_ascii_lowercase().replace('_', "-")
            ),
            value.clone(),
        ));
    }

    let headers = req.headers_mut();
    headers.remove(http::header::CONNECTION);
    for (name, value) in added {
        // Spin skips a header it cannot express rather than failing the request, and adds
        // its own after the client's: a client header of the same name stays, listed first
        // (spin-sdk's `Request` keeps the last value, so components see Spin's).
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    // wasi:http needs an authority; Spin takes it from the Host header.
    let uri = http::Uri::builder()
        .scheme(scheme.as_str())
        .authority(host.as_str())
        .path_and_query(path_and_query.as_str())
        .build()?;
    *req.uri_mut() = uri;
    Ok(req)
}
