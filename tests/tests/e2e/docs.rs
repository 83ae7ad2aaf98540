//! The documentation stays true: every relative link and anchor in the Markdown resolves,
//! every variable of `spin.toml` is documented in docs/configuration.md with the default
//! the manifest gives it, and the numbers the docs state (the retry schedule, the sweep's
//! look-back, the bounds of waiting conversions) are the code's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use funnelhooks_testhost::repo_root;

/// Every Markdown file of the repository (not under `target/` or hidden directories).
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        if path.is_dir() {
            markdown_files(&path, out);
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// The text outside fenced code blocks and inline code spans.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// GitHub's anchors for a file's headings: lower case, letters, digits, `-` and `_` kept,
/// spaces made `-`, everything else dropped; repeats get `-1`, `-2`...
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let mut unique = slug.clone();
        let mut n = 0;
        while seen.contains(&unique) {
            n += 1;
            unique = format!("{slug}-{n}");
        }
        seen.insert(unique);
    }
    seen
}

/// The targets of `[text](target)` links in `text`.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].trim().to_string());
        }
    }
    out
}

#[test]
fn every_relative_link_and_anchor_in_the_markdown_resolves() {
    let root = repo_root();
    let mut files = Vec::new();
    markdown_files(&root, &mut files);
    assert!(files.len() >= 10, "{files:?}");
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for link in links(&prose(&text)) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match link.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            let shown = file.strip_prefix(&root).unwrap().display().to_string();
            if !target.exists() {
                broken.push(format!("{shown}: {link} (no such file)"));
                continue;
            }
            if let Some(anchor) = anchor
                && target.extension().is_some_and(|e| e == "md")
            {
                let headings = anchors(&std::fs::read_to_string(&target).unwrap());
                if !headings.contains(anchor) {
                    broken.push(format!("{shown}: {link} (no such heading)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_variable_is_documented_with_its_default() {
    let root = repo_root();
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root.join("spin.toml")).unwrap()).unwrap();
    let doc = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
    for (name, spec) in manifest["variables"].as_table().unwrap() {
        let rows: Vec<&str> = doc
            .lines()
            .filter(|l| l.starts_with(&format!("| `{name}` |")))
            .collect();
        assert_eq!(rows.len(), 1, "{name} is documented {} times", rows.len());
        let cells: Vec<&str> = rows[0].split(" | ").collect();
        let documented = cells[2].trim();
        match spec.get("default").and_then(|d| d.as_str()) {
            Some(default) => assert_eq!(
                documented,
                format!("`\"{default}\"`"),
                "{name}: the manifest's default is {default:?}"
            ),
            None => assert_eq!(documented, "none", "{name} has no default"),
        }
    }
}

/// `d` as the docs write a delay: `5 s`, `5 min`, `2 h`.
fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// `10000` as the docs write it: `10,000`.
fn grouped(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn the_numbers_the_docs_state_are_the_codes() {
    use funnelhooks_delivery::outbox::FIRST_SWEEP_LOOKBACK_MINUTES;
    use funnelhooks_delivery::retry::{RETRY_AFTER_MAX, RETRY_AFTER_MIN, SCHEDULE};
    use funnelhooks_dialogs::conversion::MAX_REMEMBERED_CONVERSIONS;
    use funnelhooks_dialogs::conversions::{MAX_WAITING_PER_BOT, MAX_WAITING_PER_CLICK, WAIT_MS};
    let read = |p: &str| {
        // Line breaks and repeated spaces read as one space: the prose wraps anywhere.
        let text = std::fs::read_to_string(repo_root().join(p)).unwrap();
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let api = read("docs/api.md");
    let schedule: Vec<String> = SCHEDULE[1..].iter().map(|d| human(*d)).collect();
    let stated = [
        (
            &api,
            "docs/api.md",
            format!("retried: after {}", schedule.join(", ")),
        ),
        (
            &api,
            "docs/api.md",
            format!(
                "honoured between {} and {}",
                human(RETRY_AFTER_MIN),
                human(RETRY_AFTER_MAX)
            ),
        ),
        (
            &api,
            "docs/api.md",
            format!(
                "looks back {}",
                match FIRST_SWEEP_LOOKBACK_MINUTES {
                    60 => "one hour".to_string(),
                    m => format!("{m} minutes"),
                }
            ),
        ),
    ];
    let auto = read("docs/auto-actions.md");
    let auto_stated = [
        format!("waits** ({} days)", WAIT_MS / 86_400_000),
        format!(
            "At most {} conversions of a bot and {} of one click id wait",
            grouped(MAX_WAITING_PER_BOT),
            MAX_WAITING_PER_CLICK
        ),
        format!("remembers its latest {MAX_REMEMBERED_CONVERSIONS} conversions"),
    ];
    let mut wrong: Vec<String> = stated
        .iter()
        .filter(|(text, _, phrase)| !text.contains(phrase.as_str()))
        .map(|(_, file, phrase)| format!("{file}: {phrase:?}"))
        .collect();
    wrong.extend(
        auto_stated
            .iter()
            .filter(|phrase| !auto.contains(phrase.as_str()))
            .map(|phrase| format!("docs/auto-actions.md: {phrase:?}")),
    );
    assert!(
        wrong.is_empty(),
        "the docs do not state the code's numbers:\n{}",
        wrong.join("\n")
    );
}
