//! The web console: static pages that drive the management API from a browser. The assets are
//! plain files under `assets/` (no JavaScript build step), built into the component so
//! `spin build --up` serves them with nothing else installed. Everything the console shows
//! comes from the API and is written into the page as text, never as HTML.

use spin_sdk::http::{IntoResponse, Request, Response};

/// The pages' one policy: scripts and styles only from this origin (no inline script, no
/// `eval`), requests only to this origin, no framing, no plug-ins.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// One static asset: where it is served, its media type, its bytes.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    body: &'static [u8],
}

/// Everything the console serves.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        media_type: "text/html; charset=utf-8",
        body: include_bytes!("../assets/index.html"),
    },
    Asset {
        path: "/console/app.js",
        media_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/app.js"),
    },
    Asset {
        path: "/console/i18n.js",
        media_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/i18n.js"),
    },
    Asset {
        path: "/console/app.css",
        media_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/app.css"),
    },
    Asset {
        path: "/favicon.ico",
        media_type: "image/svg+xml",
        body: include_bytes!("../assets/favicon.svg"),
    },
];

/// The answer for a path: an asset, or a 404 (JSON under `/api/`, where clients expect it).
fn answer(method: &str, path: &str) -> Response {
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let path = if path == "/index.html" { "/" } else { path };
    if let Some(asset) = ASSETS.iter().find(|a| a.path == path) {
        if method != "GET" && method != "HEAD" {
            return Response::builder()
                .status(405)
                .header("allow", "GET, HEAD")
                .header("content-type", "application/json")
                .body(r#"{"error":{"code":"method_not_allowed","message":"this route takes GET, HEAD","field":null}}"#)
                .build();
        }
        let body = if method == "HEAD" {
            &[][..]
        } else {
            asset.body
        };
        return Response::builder()
            .status(200)
            .header("content-type", asset.media_type)
            .header("content-security-policy", CSP)
            .header("x-content-type-options", "nosniff")
            .header("referrer-policy", "no-referrer")
            .header("x-frame-options", "DENY")
            // Assets change with each release of the component; a reload must see them.
            .header("cache-control", "no-cache")
            .body(body.to_vec())
            .build();
    }
    Response::builder()
        .status(404)
        .header("content-type", "application/json")
        .header("x-content-type-options", "nosniff")
        .body(r#"{"error":{"code":"not_found","message":"no such route; the API is under /api/ (see openapi.yaml), the console at /","field":"path"}}"#)
        .build()
}

#[spin_sdk::http_component]
fn handle(req: Request) -> impl IntoResponse {
    use funnelhooks_core::log::{self, Level};
    let started = std::time::Instant::now();
    let level = spin_sdk::variables::get("log_level")
        .ok()
        .and_then(|l| Level::parse(&l))
        .unwrap_or(Level::Info);
    log::begin("console", funnelhooks_core::new_id(), level);
    let method = req.method().to_string();
    let mut response = answer(&method, req.path());
    response.set_header("x-request-id", log::request_id());
    let status = *response.status();
    let level = if status >= 400 {
        Level::Warn
    } else {
        Level::Info
    };
    if let Some(line) = log::line(level, "request") {
        line.str("route", "/...")
            .str("method", &method)
            .num("status", i64::from(status))
            .num("durationMs", started.elapsed().as_millis() as i64)
            .emit();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    }

    #[test]
    fn the_page_and_its_assets_are_served_with_a_strict_policy() {
        for path in ["/", "/index.html", "/console/app.js", "/console/app.css"] {
            let r = answer("GET", path);
            assert_eq!(*r.status(), 200, "{path}");
            let csp = header(&r, "content-security-policy").unwrap();
            assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
            assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
        }
    }

    #[test]
    fn unknown_paths_are_404_and_other_methods_405() {
        assert_eq!(*answer("GET", "/api/nothing").status(), 404);
        assert_eq!(*answer("GET", "/console/missing.js").status(), 404);
        let r = answer("POST", "/");
        assert_eq!(*r.status(), 405);
        assert_eq!(header(&r, "allow"), Some("GET, HEAD"));
    }

    #[test]
    fn the_page_loads_no_inline_script_and_nothing_from_elsewhere() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        for tag in html.split("<script").skip(1) {
            let open = &tag[..tag.find('>').unwrap()];
            assert!(
                open.contains("src=\"/console/"),
                "inline or foreign script: {open}"
            );
        }
        for asset in ASSETS.iter().filter(|a| a.path != "/favicon.ico") {
            let text = std::str::from_utf8(asset.body).unwrap();
            for foreign in [
                "src=\"http",
                "href=\"http",
                "url(http",
                "@import",
                "innerHTML",
                "eval(",
            ] {
                assert!(!text.contains(foreign), "{} has {foreign}", asset.path);
            }
        }
    }

    #[test]
    fn the_first_screen_loads_under_150_kb_of_script_and_style_even_uncompressed() {
        let bytes: usize = ASSETS
            .iter()
            .filter(|a| a.path.ends_with(".js") || a.path.ends_with(".css"))
            .map(|a| a.body.len())
            .sum();
        assert!(bytes < 150 * 1024, "{bytes} bytes of JS and CSS");
    }

    #[test]
    fn every_text_of_the_console_has_its_russian_translation() {
        let app = std::str::from_utf8(include_bytes!("../assets/app.js")).unwrap();
        let ru = std::str::from_utf8(include_bytes!("../assets/i18n.js")).unwrap();
        let mut missing = Vec::new();
        for quote in ['\'', '"'] {
            let opener = format!("t({quote}");
            let mut rest = app;
            while let Some(at) = rest.find(opener.as_str()) {
                // Only the function `t` itself, not `input(` or `select(`.
                let called =
                    !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.');
                rest = &rest[at + opener.len()..];
                if !called {
                    continue;
                }
                // The text runs to the next unescaped quote of the same kind.
                let mut text = String::new();
                let mut chars = rest.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => text.extend(chars.next()),
                        c if c == quote => break,
                        c => text.push(c),
                    }
                }
                let key = serde_json::to_string(&text).unwrap();
                if !ru.contains(&format!("{key}:")) {
                    missing.push(text);
                }
            }
        }
        assert!(
            missing.is_empty(),
            "texts without a Russian translation: {missing:?}"
        );
    }
}
