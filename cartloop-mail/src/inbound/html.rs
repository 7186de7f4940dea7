//! An HTML part as plain text, for replies that have no text/plain part.
//!
//! Not a browser: enough of HTML to read what a mail client wrote. Tags are removed and
//! entities decoded; runs of whitespace collapse to one space (kept inside `<pre>`); a
//! line ends at `<br>` and at each block element (`<div>`, `<p>`, `<li>`, `<tr>`, …);
//! `<head>`, `<style>`, `<script>` and `<title>` are dropped; `<hr>` becomes a line of
//! underscores (as Outlook writes it in text); and each line inside `<blockquote>` starts
//! with `> ` per level, so the quote removal that reads plain text (`quotes.rs`) sees the
//! quoted original as it would in a text part.

/// Elements that start and end a line.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "dd",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tbody",
    "tfoot",
    "thead",
    "tr",
    "ul",
];

/// Elements whose content is not text to show.
const HIDDEN: &[&str] = &["head", "noscript", "script", "style", "template", "title"];

/// The most `> ` a line gets: one is enough to mark it quoted, and a bound keeps a hostile
/// nesting of thousands of `<blockquote>`s from growing every line.
const MAX_QUOTE_DEPTH: usize = 8;

/// The longest entity looked for after `&` (`&CounterClockwiseContourIntegral;` is 33).
const MAX_ENTITY: usize = 40;

/// The text of `html`, lines joined with `\n`, trailing spaces and blank lines at either
/// end removed.
pub(crate) fn to_text(html: &str) -> String {
    let mut out = Writer::default();
    let bytes = html.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => match tag_at(html, i) {
                Some(tag) => {
                    i = tag.end;
                    if tag.name.is_empty() {
                        continue;
                    }
                    if !tag.closing && !tag.self_closing && HIDDEN.contains(&tag.name.as_str()) {
                        i = end_of_element(html, i, &tag.name);
                        continue;
                    }
                    out.tag(&tag);
                }
                None => {
                    out.text("<");
                    i += 1;
                }
            },
            b'&' => {
                let (decoded, len) = entity_at(&html[i..]);
                out.text(&decoded);
                i += len;
            }
            _ => {
                // Up to the next markup character: plain text, on char boundaries since
                // both delimiters are ASCII.
                let end = html[i..]
                    .find(['<', '&'])
                    .map_or(html.len(), |offset| i + offset);
                out.text(&html[i..end]);
                i = end;
            }
        }
    }
    out.finish()
}

/// A tag: `<name ...>`, `</name>`, `<name/>`; comments, doctypes and processing
/// instructions have an empty name.
struct Tag {
    name: String,
    closing: bool,
    self_closing: bool,
    /// The byte after the tag's `>`.
    end: usize,
}

/// The tag starting at `html[start] == '<'`, or `None` when that `<` is text.
fn tag_at(html: &str, start: usize) -> Option<Tag> {
    let rest = &html[start..];
    let skip_to = |marker: &str, from: usize| {
        rest[from..]
            .find(marker)
            .map_or(html.len(), |at| start + from + at + marker.len())
    };
    if rest.starts_with("<!--") {
        return Some(Tag {
            name: String::new(),
            closing: false,
            self_closing: true,
            end: skip_to("-->", 4),
        });
    }
    if rest.starts_with("<!") || rest.starts_with("<?") {
        return Some(Tag {
            name: String::new(),
            closing: false,
            self_closing: true,
            end: skip_to(">", 2),
        });
    }
    let bytes = rest.as_bytes();
    let closing = bytes.get(1) == Some(&b'/');
    let name_start = if closing { 2 } else { 1 };
    if !bytes.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    let name_len = bytes[name_start..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b':' | b'_'))
        .count();
    let name = rest[name_start..name_start + name_len].to_ascii_lowercase();
    // The closing `>`, skipping quoted attribute values that may hold one.
    let mut quote = None;
    let mut at = name_start + name_len;
    while at < bytes.len() {
        match (quote, bytes[at]) {
            (None, b'>') => break,
            (None, q @ (b'"' | b'\'')) => quote = Some(q),
            (Some(q), b) if b == q => quote = None,
            _ => {}
        }
        at += 1;
    }
    let self_closing = at > 0 && bytes.get(at - 1) == Some(&b'/');
    Some(Tag {
        name,
        closing,
        self_closing,
        end: (start + at + 1).min(html.len()),
    })
}

/// The byte after `</name ...>` from `from` on (case-insensitive), or the end of `html`.
fn end_of_element(html: &str, from: usize, name: &str) -> usize {
    let closing = format!("</{name}");
    let bytes = html.as_bytes();
    let mut at = from;
    while let Some(offset) = html[at..].find("</") {
        let candidate = at + offset;
        let matches = bytes
            .get(candidate..candidate + closing.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(closing.as_bytes()));
        if matches {
            return html[candidate..]
                .find('>')
                .map_or(html.len(), |end| candidate + end + 1);
        }
        at = candidate + 2;
    }
    html.len()
}

/// The text of the entity at the start of `text` (which starts with `&`) and how many
/// bytes it takes; a `&` that starts no known entity is itself.
fn entity_at(text: &str) -> (String, usize) {
    let candidate = text
        .bytes()
        .enumerate()
        .skip(1)
        .take(MAX_ENTITY)
        .find(|(_, b)| !(b.is_ascii_alphanumeric() || *b == b'#'))
        .filter(|(_, b)| *b == b';')
        .map(|(end, _)| &text[..=end]);
    if let Some(entity) = candidate {
        let mut decoded = String::new();
        mail_parser::decoders::html::add_html_token(&mut decoded, entity.as_bytes(), false);
        if decoded != entity {
            return (decoded, entity.len());
        }
    }
    ("&".to_owned(), 1)
}

/// The lines being written.
#[derive(Default)]
struct Writer {
    lines: Vec<String>,
    line: String,
    /// The `<blockquote>` depth of the line being written, fixed by its first character.
    line_depth: Option<usize>,
    depth: usize,
    pre: usize,
    space: bool,
}

impl Writer {
    fn tag(&mut self, tag: &Tag) {
        let name = tag.name.as_str();
        match name {
            "br" => self.end_line(),
            "hr" => {
                self.block();
                self.text("________________________________");
                self.end_line();
            }
            "td" | "th" if !tag.closing => self.space = true,
            _ if BLOCKS.contains(&name) => {
                self.block();
                let opening = !tag.closing && !tag.self_closing;
                match name {
                    "blockquote" if opening => self.depth += 1,
                    "blockquote" if tag.closing => self.depth = self.depth.saturating_sub(1),
                    "pre" if opening => self.pre += 1,
                    "pre" if tag.closing => self.pre = self.pre.saturating_sub(1),
                    "li" if opening => self.text("- "),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn text(&mut self, text: &str) {
        for c in text.chars() {
            if self.pre > 0 {
                match c {
                    '\n' => self.end_line(),
                    '\r' => {}
                    _ => self.push(c),
                }
            } else if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c') {
                self.space = true;
            } else {
                if self.space && !self.line.is_empty() {
                    self.push(' ');
                }
                self.space = false;
                self.push(c);
            }
        }
    }

    fn push(&mut self, c: char) {
        if self.line_depth.is_none() {
            self.line_depth = Some(self.depth);
        }
        self.line.push(c);
    }

    /// Ends the line unless it is empty: block elements never add blank lines.
    fn block(&mut self) {
        if !self.line.is_empty() {
            self.end_line();
        }
        self.space = false;
    }

    fn end_line(&mut self) {
        let depth = self.line_depth.take().unwrap_or(self.depth);
        let mut line = "> ".repeat(depth.min(MAX_QUOTE_DEPTH));
        line.push_str(&self.line.replace('\u{a0}', " "));
        self.lines.push(line.trim_end().to_owned());
        self.line.clear();
        self.space = false;
    }

    fn finish(mut self) -> String {
        if !self.line.is_empty() {
            self.end_line();
        }
        let first = self.lines.iter().position(|l| !l.is_empty());
        let last = self.lines.iter().rposition(|l| !l.is_empty());
        match (first, last) {
            (Some(first), Some(last)) => self.lines[first..=last].join("\n"),
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::to_text;

    #[test]
    fn blocks_and_breaks_make_lines() {
        assert_eq!(
            to_text("<div>Size 42</div><div><br></div><div>Thanks,<br>Mia</div>"),
            "Size 42\n\nThanks,\nMia"
        );
        assert_eq!(
            to_text("<p class=MsoNormal>One<o:p></o:p></p><p>Two</p>"),
            "One\nTwo"
        );
        assert_eq!(to_text("<ul><li>a</li><li>b</li></ul>"), "- a\n- b");
        assert_eq!(
            to_text("<table><tr><td>a</td><td>b</td></tr></table>"),
            "a b"
        );
    }

    #[test]
    fn whitespace_collapses_except_in_pre() {
        assert_eq!(
            to_text("  Hello \r\n   <b>big</b>\n world  "),
            "Hello big world"
        );
        assert_eq!(to_text("<pre>a  b\n  c</pre>"), "a  b\n  c");
    }

    #[test]
    fn entities_are_decoded() {
        assert_eq!(
            to_text("Sneaker Hub &lt;hello@shop.example&gt; &amp; co&nbsp;&#8212;&#x263A;"),
            "Sneaker Hub <hello@shop.example> & co —☺"
        );
        assert_eq!(to_text("AT&T &unknown; & a;b &"), "AT&T &unknown; & a;b &");
    }

    #[test]
    fn hidden_elements_and_comments_are_dropped() {
        let html = "<html><head><title>t</title><style>p { color: red }</style></head>\
            <body><!--[if mso]><p>mso</p><![endif]--><SCRIPT>alert('<b>')</SCRIPT>\
            <p>Visible</p><!DOCTYPE html></body></html>";
        assert_eq!(to_text(html), "Visible");
    }

    #[test]
    fn blockquotes_become_quoted_lines() {
        let html = "<div>Yes</div><blockquote><div>On Tue, X wrote:</div>\
            <blockquote>inner<br><br>more</blockquote>outer</blockquote><div>after</div>";
        assert_eq!(
            to_text(html),
            "Yes\n> On Tue, X wrote:\n> > inner\n> >\n> > more\n> outer\nafter"
        );
    }

    #[test]
    fn attributes_with_angle_brackets_and_stray_brackets() {
        assert_eq!(
            to_text("<a title=\"a > b\" href='x'>link</a> 3 < 4 <3 <hr>"),
            "link 3 < 4 <3\n________________________________"
        );
        assert_eq!(to_text("<div"), "");
        assert_eq!(to_text("<style>unclosed"), "");
        assert_eq!(to_text("é<br/>ü&"), "é\nü&");
    }

    #[test]
    fn deep_nesting_stays_small() {
        let html = format!(
            "{}{}",
            "<blockquote>".repeat(50_000),
            "x<br>".repeat(50_000)
        );
        let text = to_text(&html);
        assert_eq!(text.lines().count(), 50_000);
        assert!(text.lines().all(|l| l == "> > > > > > > > x"));
    }
}
