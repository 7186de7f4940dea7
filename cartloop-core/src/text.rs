//! Small text helpers shared by error messages.

/// `s` cut to at most `max` characters, with `…` when something was cut.
///
/// ```
/// assert_eq!(cartloop_core::text::cut("abcdef", 3), "abc…");
/// assert_eq!(cartloop_core::text::cut("abc", 3), "abc");
/// ```
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}
