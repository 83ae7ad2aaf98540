//! Embeds the console's scripts and style without what only their readers need (indentation,
//! blank lines, whole-line comments), as they are and gzip-compressed: the first screen's
//! weight, without a bundler. Lines stay lines, so no statement is joined to another.

use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in ["app.js", "i18n.js", "app.css"] {
        let source = Path::new("assets").join(name);
        println!("cargo:rerun-if-changed={}", source.display());
        let text = std::fs::read_to_string(&source).expect("the console's assets are readable");
        let stripped = strip(&text, name.ends_with(".js"));
        std::fs::write(Path::new(&out).join(name), &stripped).expect("OUT_DIR is writable");
        std::fs::write(
            Path::new(&out).join(format!("{name}.gz")),
            gzip(stripped.as_bytes()),
        )
        .expect("OUT_DIR is writable");
    }
}

/// `bytes` gzip-compressed, as tightly as gzip goes (done once, at build time).
fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// `text` without indentation, blank lines and lines that are only a comment (`// …` in a
/// script, or a `/* … */` block; what follows a block's end on its line is kept). Not a
/// lexer: a script whose lines could be inside a string (a template literal, a line ending
/// in `\`) stops the build rather than being changed.
fn strip(text: &str, script: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_block = false;
    for line in text.lines() {
        if script
            && (line.contains('`')
                && !line.trim_start().starts_with("//")
                && !line.trim_start().starts_with('*')
                && !line.trim_start().starts_with("/*")
                || line.ends_with('\\'))
        {
            panic!("a line strip() cannot judge (template literal or continued string): {line}");
        }
        let mut l = line.trim();
        let opened = !in_block && l.starts_with("/*");
        if in_block || opened {
            // The end of the block, not the `*` of its opening `/*`.
            let from = if opened { 2 } else { 0 };
            match l[from..].find("*/") {
                Some(end) => {
                    in_block = false;
                    l = l[from + end + 2..].trim();
                }
                None => {
                    in_block = true;
                    continue;
                }
            }
        }
        if l.is_empty() || (script && l.starts_with("//")) {
            continue;
        }
        out.push_str(&tight_entry(l).unwrap_or_else(|| l.to_string()));
        out.push('\n');
    }
    out
}

/// A dictionary line `"key": "value",` as `"key":"value",` (the space after the key's colon
/// is the only one outside the strings); `None` for any other line.
fn tight_entry(line: &str) -> Option<String> {
    let rest = line.strip_prefix('"')?;
    let mut escaped = false;
    let end = rest.char_indices().find_map(|(i, c)| match c {
        _ if escaped => {
            escaped = false;
            None
        }
        '\\' => {
            escaped = true;
            None
        }
        '"' => Some(i),
        _ => None,
    })?;
    let value = rest[end + 1..].strip_prefix(": \"")?;
    Some(format!("\"{}\":\"{value}", &rest[..end]))
}
