//! Text kept within a bound: cut at a character boundary, never inside one.

/// The longest start of `text` of at most `max` bytes that ends at a character boundary.
pub fn cut_at(text: &str, max: usize) -> &str {
    let mut at = max.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    &text[..at]
}

/// Cuts `text` to at most `max` bytes at a character boundary and marks the cut with `…`;
/// whether it was cut.
pub fn shorten(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let kept = cut_at(text, max).len();
    text.truncate(kept);
    text.push('…');
    true
}

/// How a secret starts, to tell it apart without showing it: its first 8 characters and `…`.
pub fn start_of(secret: &str) -> String {
    format!("{}…", secret.chars().take(8).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_land_between_characters() {
        assert_eq!(cut_at("дата", 3), "д");
        assert_eq!(cut_at("abc", 10), "abc");
        let mut s = "ёжик".to_string();
        assert!(shorten(&mut s, 5));
        assert_eq!(s, "ёж…");
        let mut short = "ok".to_string();
        assert!(!shorten(&mut short, 5));
        assert_eq!(start_of("fhk_0123456789"), "fhk_0123…");
    }
}
