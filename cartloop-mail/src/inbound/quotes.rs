//! The new text of a reply: the quoted original and the signature removed.
//!
//! Mail clients quote the email they answer in a few set ways, all handled here:
//!
//! - Gmail: `On Tue, Nov 24, 2026 at 3:00 PM Sneaker Hub <hello@shop.example> wrote:`
//!   (wrapped over two or three lines in plain text) and then `> ` lines.
//! - Apple Mail: the same attribution (`On Nov 24, 2026, at 3:00 PM, X wrote:`), or, from
//!   an iPhone, quoted itself: `> On 24 Nov 2026, at 15:00, X <...> wrote:` and `> ` lines.
//! - Outlook: a `________________________________` line or `-----Original Message-----`
//!   and a `From:`/`Sent:`/`To:`/`Subject:` block, with the original unquoted below it.
//!
//! Rules, in order:
//!
//! 1. From the first attribution or Outlook header on, everything is the original and is
//!    removed. An attribution counts only when quoted lines (or nothing) follow it; when
//!    the client wrote nothing above it (they answered below or between the quoted lines),
//!    only the attribution itself goes.
//! 2. Every quoted (`>`) line goes.
//! 3. From a `-- ` signature delimiter on, everything goes; a closing line such as
//!    `Sent from my iPhone` or `Get Outlook for iOS` goes.
//! 4. Trailing spaces, and white space at either end, go.
//!
//! The common languages' words are known (`schrieb:`, `a écrit :`, `Von:`/`Gesendet:`, …).

/// The verbs of an attribution line, lowercase: the line ends with `:` and holds one
/// (`… Sneaker Hub <…> wrote:`, `… schrieb Sneaker Hub <…>:`).
const WROTE: &[&str] = &[
    "wrote",
    "writes",
    "schrieb",
    "a écrit",
    "escribió",
    "ha scritto",
    "schreef",
    "escreveu",
    "skrev",
    "napisał",
    "kirjoitti",
    "написал",
];

/// The words that start an attribution in the common languages ("On", "Am", "Le", …).
const ATTRIBUTION_START: &[&str] = &[
    "On ", "Am ", "Le ", "El ", "Il ", "Op ", "Em ", "Den ", "W dniu ", "Dne ",
];

/// Outlook's "-----Original Message-----" in the common languages, lowercase.
const ORIGINAL_MESSAGE: &[&str] = &[
    "original message",
    "ursprüngliche nachricht",
    "message d'origine",
    "mensaje original",
    "messaggio originale",
    "oorspronkelijk bericht",
    "mensagem original",
    "ursprungligt meddelande",
];

/// The header names of Outlook's block, lowercase, by role.
const FROM_FIELDS: &[&str] = &["from", "von", "de", "da", "van", "från", "fra", "od"];
const SENT_FIELDS: &[&str] = &[
    "sent",
    "date",
    "gesendet",
    "datum",
    "envoyé",
    "enviado",
    "inviato",
    "verzonden",
    "fecha",
    "data",
    "skickat",
    "sendt",
    "wysłano",
];
const TO_FIELDS: &[&str] = &["to", "an", "à", "a", "para", "aan", "till", "til", "do"];
const SUBJECT_FIELDS: &[&str] = &[
    "subject",
    "betreff",
    "objet",
    "asunto",
    "oggetto",
    "onderwerp",
    "assunto",
    "ämne",
    "emne",
    "temat",
];

/// The starts of the closing lines mobile clients add, lowercase.
const SENT_FROM: &[&str] = &[
    "sent from ",
    "sent with ",
    "get outlook for ",
    "envoyé de mon ",
    "von meinem ",
    "enviado desde mi ",
    "enviado do meu ",
    "inviato da ",
    "verzonden met ",
    "verstuurd vanaf ",
];

/// The client's new words in `text` (see the module docs).
pub(crate) fn new_text(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines: Vec<&str> = text.split('\n').collect();

    if let Some((start, len, kind)) = find_original(&lines) {
        let own_text_above = lines[..start].iter().any(|l| !is_blank(l) && !is_quoted(l));
        if kind == Original::Attribution && !own_text_above {
            lines.drain(start..start + len);
        } else {
            lines.truncate(start);
        }
    }
    lines.retain(|l| !is_quoted(l));
    if let Some(signature) = lines.iter().position(|l| l.trim_end() == "--") {
        lines.truncate(signature);
    }
    if let Some(last) = lines.iter().rposition(|l| !is_blank(l)) {
        if is_sent_from(lines[last]) {
            lines.truncate(last);
        }
    }

    let lines: Vec<&str> = lines.iter().map(|l| l.trim_end()).collect();
    lines.join("\n").trim().to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Original {
    /// `On … wrote:`.
    Attribution,
    /// Outlook's separator or header block.
    Header,
}

/// Where the original starts: its first line, how many lines the marker takes, and which
/// kind of marker it is.
fn find_original(lines: &[&str]) -> Option<(usize, usize, Original)> {
    for i in 0..lines.len() {
        if is_blank(lines[i]) || is_quoted(lines[i]) {
            continue;
        }
        if let Some(len) = attribution_at(lines, i) {
            let next = lines[i + len..].iter().find(|l| !is_blank(l));
            if next.is_none_or(|l| is_quoted(l)) {
                return Some((i, len, Original::Attribution));
            }
        }
        if is_outlook_original_at(lines, i) {
            return Some((i, 1, Original::Header));
        }
    }
    None
}

/// The number of lines (1 to 3) of an attribution starting at line `i`.
fn attribution_at(lines: &[&str], i: usize) -> Option<usize> {
    let first = lines[i].trim();
    let starts_like_one = ATTRIBUTION_START.iter().any(|s| first.starts_with(s));
    let mut joined = String::new();
    for len in 1..=3 {
        let Some(line) = lines.get(i + len - 1) else {
            break;
        };
        if len > 1 && (is_blank(line) || is_quoted(line)) {
            break;
        }
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(line.trim());
        if joined.len() > 400 {
            break;
        }
        let lower = joined.to_lowercase();
        let ends_like_one = lower.ends_with(':') && WROTE.iter().any(|w| lower.contains(w));
        // A one-line attribution in another language still names an address; a wrapped
        // one must start like one, or the client's last line could be taken for its start.
        if ends_like_one && (starts_like_one || (len == 1 && first.contains('@'))) {
            return Some(len);
        }
    }
    None
}

/// Whether line `i` starts an Outlook original: `-----Original Message-----`, a line of
/// underscores before a `From:` line, or a `From:` line followed by at least two of
/// `Sent:`, `To:` and `Subject:`.
fn is_outlook_original_at(lines: &[&str], i: usize) -> bool {
    let line = lines[i].trim();
    if line.starts_with("--") {
        let title = line.trim_matches(|c: char| c == '-' || c.is_whitespace());
        let title = title.to_lowercase();
        if ORIGINAL_MESSAGE.contains(&title.as_str()) {
            return true;
        }
    }
    if line.len() >= 10 && line.bytes().all(|b| b == b'_') {
        let next = lines[i + 1..].iter().find(|l| !is_blank(l));
        return next.is_some_and(|l| field(l) == Some(Field::From));
    }
    if field(line) != Some(Field::From) {
        return false;
    }
    let mut seen = Vec::new();
    for line in lines[i + 1..].iter().take(6) {
        match field(line) {
            Some(f @ (Field::Sent | Field::To | Field::Subject)) if !seen.contains(&f) => {
                seen.push(f);
            }
            _ => {}
        }
    }
    seen.len() >= 2
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    From,
    Sent,
    To,
    Subject,
}

/// The role of a `Name: value` header line (bold `*From:*` too), if it is one.
fn field(line: &str) -> Option<Field> {
    let line = line.trim().trim_start_matches('*');
    let (name, _) = line.split_once(':')?;
    let name = name.trim().trim_end_matches('*').trim().to_lowercase();
    if name.chars().count() > 20 {
        return None;
    }
    let is = |names: &[&str]| names.contains(&name.as_str());
    if is(FROM_FIELDS) {
        Some(Field::From)
    } else if is(SENT_FIELDS) {
        Some(Field::Sent)
    } else if is(TO_FIELDS) {
        Some(Field::To)
    } else if is(SUBJECT_FIELDS) {
        Some(Field::Subject)
    } else {
        None
    }
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

fn is_sent_from(line: &str) -> bool {
    let line = line.trim().to_lowercase();
    line.chars().count() <= 100 && SENT_FROM.iter().any(|s| line.starts_with(s))
}

#[cfg(test)]
mod tests {
    use super::new_text;

    #[test]
    fn gmail_attribution_on_one_or_more_lines() {
        let one = "Yes, 42.\n\nOn Tue, Nov 24, 2026 at 3:00 PM Sneaker Hub <hello@shop.example> wrote:\n\n> Which size?\n> Sneaker Hub\n";
        assert_eq!(new_text(one), "Yes, 42.");
        let two = "Yes, 42.\n\nOn Tue, Nov 24, 2026 at 3:00 PM Sneaker Hub <hello@shop.example>\nwrote:\n\n> Which size?\n";
        assert_eq!(new_text(two), "Yes, 42.");
        let three = "Yes, 42.\nOn Tue, Nov 24, 2026 at 3:00 PM Sneaker Hub <\nhello@shop.example>\nwrote:\n> Which size?";
        assert_eq!(new_text(three), "Yes, 42.");
    }

    #[test]
    fn other_languages() {
        let german = "Ja, 42.\n\nAm Di., 24. Nov. 2026 um 15:00 Uhr schrieb Sneaker Hub <hello@shop.example>:\n> Welche Größe?";
        assert_eq!(new_text(german), "Ja, 42.");
        let french = "Oui.\n\nLe mar. 24 nov. 2026 à 15:00, Sneaker Hub <hello@shop.example> a écrit :\n> Quelle taille ?";
        assert_eq!(new_text(french), "Oui.");
        let outlook_german = "Ja.\n\nVon: Sneaker Hub <hello@shop.example>\nGesendet: Dienstag, 24. November 2026 15:00\nAn: Mia\nBetreff: Hallo\n\nWelche Größe?";
        assert_eq!(new_text(outlook_german), "Ja.");
    }

    #[test]
    fn an_attribution_needs_quoted_lines_after_it() {
        let text = "My friend Anna wrote: these are great.\nCan I order two?";
        assert_eq!(new_text(text), text);
        let text = "Thanks!\nOn Monday I wrote:\nit is fine";
        assert_eq!(new_text(text), text);
    }

    #[test]
    fn inline_answers_below_the_attribution_are_kept() {
        let text = "On Tue, Nov 24, 2026 at 3:00 PM Sneaker Hub <hello@shop.example> wrote:\n> Which size?\n42\n> Which colour?\nRed\n";
        assert_eq!(new_text(text), "42\nRed");
    }

    #[test]
    fn outlook_separators() {
        let underscores = "Yes.\n\n________________________________\nFrom: Sneaker Hub <hello@shop.example>\nSent: Tuesday, November 24, 2026 3:00 PM\n\nWhich size?";
        assert_eq!(new_text(underscores), "Yes.");
        let original = "Yes.\r\n-----Original Message-----\r\nFrom: x\r\nWhich size?";
        assert_eq!(new_text(original), "Yes.");
        let block =
            "Yes.\n*From:* Sneaker Hub\n*Sent:* Tuesday\n*To:* Mia\n*Subject:* Hi\nWhich size?";
        assert_eq!(new_text(block), "Yes.");
        // One header-like line is the client's text, not a header block.
        let lone = "From: tomorrow on, size 42.\nThanks";
        assert_eq!(new_text(lone), lone);
    }

    #[test]
    fn signatures_and_sent_from() {
        assert_eq!(new_text("Yes.\n\n-- \nMia Müller\nBerlin"), "Yes.");
        assert_eq!(new_text("Yes.\n--\nMia"), "Yes.");
        assert_eq!(new_text("Yes.\n\nSent from my iPhone\n\n"), "Yes.");
        assert_eq!(
            new_text("Yes.\nGet Outlook for iOS<https://aka.ms/o0ukef>"),
            "Yes."
        );
        // Only as the closing line.
        let text = "Sent from my iPhone? No, from my laptop.\nYes.";
        assert_eq!(new_text(text), text);
    }

    #[test]
    fn quoted_lines_go_everywhere_and_blank_ends_are_trimmed() {
        assert_eq!(
            new_text("\n\n  Yes  \n  indented\n> quoted\n\n"),
            "Yes\n  indented"
        );
        assert_eq!(new_text("> only a quote"), "");
        assert_eq!(new_text(""), "");
    }
}
