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

/// Whether `c` would not show, or would change how the text around it shows: control
/// characters (C0, C1), and the invisible format characters (zero-width spaces and joiners,
/// bidirectional overrides and isolates, the byte-order mark).
///
/// ```
/// use cartloop_core::text::is_invisible;
/// assert!(is_invisible('\u{0}') && is_invisible('\u{202e}') && is_invisible('\u{feff}'));
/// assert!(!is_invisible('a') && !is_invisible('\u{e9}') && !is_invisible(' '));
/// ```
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
}

/// Text from outside (an email) made safe to store and show: line breaks as `\n`, tabs
/// kept, every other control or invisible format character dropped, at most `max`
/// characters.
///
/// ```
/// use cartloop_core::text::clean;
/// assert_eq!(clean("Yes\0 please\r\nok\u{7}", 100), "Yes please\nok");
/// assert_eq!(clean("abcdef", 3), "abc");
/// ```
pub fn clean(raw: &str, max: usize) -> String {
    let normalized = raw.replace("\r\n", "\n").replace('\r', "\n");
    normalized
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !is_invisible(c))
        .take(max)
        .collect()
}
