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
    body: Body,
}

/// An asset's bytes: as they are (the page, the icon), or gzip-compressed (scripts and style,
/// unpacked only for a client that does not take gzip).
#[derive(Clone, Copy)]
enum Body {
    Plain(&'static [u8]),
    Gzip(&'static [u8]),
}

impl Body {
    /// The bytes as a client that does not take gzip gets them.
    fn unpacked(self) -> std::borrow::Cow<'static, [u8]> {
        match self {
            Body::Plain(bytes) => bytes.into(),
            // The build writes a plain 10-byte gzip header and an 8-byte trailer around the
            // deflate stream.
            Body::Gzip(bytes) => {
                miniz_oxide::inflate::decompress_to_vec(&bytes[10..bytes.len() - 8])
                    .expect("the build compressed it")
                    .into()
            }
        }
    }
}

/// Everything the console serves.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        media_type: "text/html; charset=utf-8",
        body: Body::Plain(include_bytes!("../assets/index.html")),
    },
    Asset {
        path: "/console/app.js",
        media_type: "text/javascript; charset=utf-8",
        body: Body::Gzip(include_bytes!(concat!(env!("OUT_DIR"), "/app.js.gz"))),
    },
    Asset {
        path: "/console/i18n.js",
        media_type: "text/javascript; charset=utf-8",
        body: Body::Gzip(include_bytes!(concat!(env!("OUT_DIR"), "/i18n.js.gz"))),
    },
    Asset {
        path: "/console/app.css",
        media_type: "text/css; charset=utf-8",
        body: Body::Gzip(include_bytes!(concat!(env!("OUT_DIR"), "/app.css.gz"))),
    },
    Asset {
        path: "/favicon.ico",
        media_type: "image/svg+xml",
        body: Body::Plain(include_bytes!("../assets/favicon.svg")),
    },
];

/// The answer for a path: an asset (compressed when the browser takes gzip), or a 404 (JSON
/// under `/api/`, where clients expect it).
fn answer(method: &str, path: &str, takes_gzip: bool) -> Response {
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
        let packed = matches!(asset.body, Body::Gzip(_));
        let gzip = packed && takes_gzip;
        let body: std::borrow::Cow<'static, [u8]> = match (method, asset.body) {
            ("HEAD", _) => (&[][..]).into(),
            (_, Body::Gzip(compressed)) if gzip => compressed.into(),
            (_, body) => body.unpacked(),
        };
        let mut response = Response::builder();
        if packed {
            response.header("vary", "accept-encoding");
        }
        if gzip {
            response.header("content-encoding", "gzip");
        }
        return response
            .status(200)
            .header("content-type", asset.media_type)
            .header("content-security-policy", CSP)
            .header("x-content-type-options", "nosniff")
            .header("referrer-policy", "no-referrer")
            .header("x-frame-options", "DENY")
            // Assets change with each release of the component; a reload must see them.
            .header("cache-control", "no-cache")
            .body(body.into_owned())
            .build();
    }
    Response::builder()
        .status(404)
        .header("content-type", "application/json")
        .header("x-content-type-options", "nosniff")
        .body(r#"{"error":{"code":"not_found","message":"no such route; the API is under /api/ (see openapi.yaml), the console at /","field":"path"}}"#)
        .build()
}

/// Whether an `Accept-Encoding` header takes gzip: named (any letter case) with a quality
/// above zero (`gzip;q=0` refuses it).
fn takes_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|h| {
        h.split(',').any(|coding| {
            let mut parts = coding.split(';');
            let named = parts
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("gzip"));
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            named && !refused
        })
    })
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
    let accepts = req.header("accept-encoding").and_then(|h| h.as_str());
    let mut response = answer(&method, req.path(), takes_gzip(accepts));
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
            let r = answer("GET", path, false);
            assert_eq!(*r.status(), 200, "{path}");
            let csp = header(&r, "content-security-policy").unwrap();
            assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
            assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
        }
    }

    #[test]
    fn unknown_paths_are_404_and_other_methods_405() {
        assert_eq!(*answer("GET", "/api/nothing", false).status(), 404);
        assert_eq!(*answer("GET", "/console/missing.js", false).status(), 404);
        let r = answer("POST", "/", false);
        assert_eq!(*r.status(), 405);
        assert_eq!(header(&r, "allow"), Some("GET, HEAD"));
    }

    #[test]
    fn the_page_loads_no_inline_script_and_nothing_from_elsewhere() {
        let html = ASSETS[0].body.unpacked();
        let html = std::str::from_utf8(&html).unwrap();
        for tag in html.split("<script").skip(1) {
            let open = &tag[..tag.find('>').unwrap()];
            assert!(
                open.contains("src=\"/console/"),
                "inline or foreign script: {open}"
            );
        }
        for asset in ASSETS.iter().filter(|a| a.path != "/favicon.ico") {
            let bytes = asset.body.unpacked();
            let text = std::str::from_utf8(&bytes).unwrap();
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
    fn scripts_and_style_are_served_without_indentation_or_comment_lines() {
        for asset in ASSETS
            .iter()
            .filter(|a| !a.path.ends_with(".ico") && a.path != "/")
        {
            let bytes = asset.body.unpacked();
            let text = std::str::from_utf8(&bytes).unwrap();
            for line in text.lines() {
                assert!(!line.starts_with([' ', '\t']), "{}: {line:?}", asset.path);
                assert!(
                    !line.starts_with("//") && !line.is_empty(),
                    "{}: {line:?}",
                    asset.path
                );
            }
        }
        let served = ASSETS[1].body.unpacked();
        let served = std::str::from_utf8(&served).unwrap();
        let source = std::str::from_utf8(include_bytes!("../assets/app.js")).unwrap();
        // Every line of code is there, in its order.
        let code: Vec<&str> = source
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty() && !l.starts_with("//") && !l.starts_with("/*") && !l.starts_with('*')
            })
            .collect();
        assert_eq!(served.lines().collect::<Vec<_>>(), code);
        // The dictionary is the same, entry by entry, only written tighter.
        let served = ASSETS[2].body.unpacked();
        let served = std::str::from_utf8(&served).unwrap();
        let source = std::str::from_utf8(include_bytes!("../assets/i18n.js")).unwrap();
        let entries: Vec<String> = source
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with('"'))
            .map(|l| l.replacen("\": \"", "\":\"", 1))
            .collect();
        let served: Vec<&str> = served.lines().filter(|l| l.starts_with('"')).collect();
        assert_eq!(served, entries);
    }

    #[test]
    fn the_first_screen_is_under_50_kb_of_script_and_style_as_sent_and_200_kb_unpacked() {
        let assets = || {
            ASSETS
                .iter()
                .filter(|a| a.path.ends_with(".js") || a.path.ends_with(".css"))
        };
        let sent: usize = assets()
            .map(|a| match a.body {
                Body::Gzip(bytes) => bytes.len(),
                Body::Plain(_) => panic!("{} is embedded uncompressed", a.path),
            })
            .sum();
        let unpacked: usize = assets().map(|a| a.body.unpacked().len()).sum();
        assert!(sent < 50 * 1024, "{sent} bytes of JS and CSS sent");
        assert!(
            unpacked < 200 * 1024,
            "{unpacked} bytes of JS and CSS unpacked"
        );
    }

    #[test]
    fn a_browser_that_takes_gzip_gets_the_same_bytes_compressed() {
        use std::io::Read as _;
        for path in ["/console/app.js", "/console/i18n.js", "/console/app.css"] {
            let plain = answer("GET", path, false);
            let packed = answer("GET", path, true);
            assert_eq!(header(&plain, "content-encoding"), None, "{path}");
            assert_eq!(header(&packed, "content-encoding"), Some("gzip"), "{path}");
            assert_eq!(header(&packed, "vary"), Some("accept-encoding"), "{path}");
            let mut unpacked = Vec::new();
            flate2::read::GzDecoder::new(packed.body())
                .read_to_end(&mut unpacked)
                .unwrap();
            assert_eq!(unpacked, plain.body(), "{path}");
        }
        for (header, takes) in [
            (Some("gzip, deflate, br"), true),
            (Some("GZIP"), true),
            (Some("br;q=1.0, gzip;q=0.8"), true),
            (Some("gzip;q=0"), false),
            (Some("gzip; q=0.0, identity"), false),
            (Some("identity"), false),
            (None, false),
        ] {
            assert_eq!(takes_gzip(header), takes, "{header:?}");
        }
        let page = answer("GET", "/", true);
        assert_eq!(
            header(&page, "content-encoding"),
            None,
            "the page itself is small"
        );
    }

    #[test]
    fn every_text_of_the_console_has_its_russian_translation() {
        let app = std::str::from_utf8(include_bytes!(concat!(env!("OUT_DIR"), "/app.js"))).unwrap();
        let ru = std::str::from_utf8(include_bytes!(concat!(env!("OUT_DIR"), "/i18n.js"))).unwrap();
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
