//! Email both ways end to end, on SQLite and on PostgreSQL, with a real SMTP server: an operator's
//! message is emailed to a demo client; the client's reply, built from that very email as
//! Gmail, Outlook and Apple Mail quote it (`tests/replies/`), lands in the conversation as
//! its new text only; forged and altered tokens are refused; the email's one-click
//! unsubscribe URL stops the next email while a GET of it does not; `PUBLIC_URL`,
//! `REPLY_DOMAIN` and `CARTLOOP_SECRET` shape the headers and tokens, and servers on one
//! database accept each other's tokens.

mod common;

use cartloop::core::demo::demo_data;
use cartloop::core::domain::ConversationStatus;
use cartloop::core::ids::UserId;
use cartloop::mail::testing::{ParsedEmail, ReceivedMail, SmtpSink};
use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, Utc};
use chrono_tz::Tz;
use common::{wait_until, Backend, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

/// The API token every server here requires: the inbound route needs it, the unsubscribe
/// links must work without it.
const API_TOKEN: &str = "e2e-email-token";

/// Starts a server on `backend` that emails through `sink`, delivers at any hour and
/// requires [`API_TOKEN`]; `extra` adds flags.
async fn start(backend: &Backend, sink: &SmtpSink, extra: &[&str]) -> TestServer {
    let mut args: Vec<String> = vec![
        "--database-url".into(),
        backend.database_url(),
        "--smtp-url".into(),
        sink.url(),
        "--active-hours".into(),
        "00:00-24:00".into(),
        "--api-token".into(),
        API_TOKEN.into(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    TestServer::start(&args).await
}

/// A demo conversation (as `GET /import_data/` loads it) and who is in it.
struct Demo {
    conversation: i64,
    operator: i64,
    client: i64,
    store: i64,
    /// The client's zone, in which mail programs show dates.
    zone: Tz,
    /// The domain of the store's sender address: the default reply domain.
    store_domain: String,
}

impl Demo {
    /// Mia Müller's open conversation: a client with a non-ASCII name, so the email's body
    /// and headers are encoded.
    fn mia() -> Self {
        Self::of_client(5)
    }

    fn of_client(client: i64) -> Self {
        let data = demo_data();
        let conversation = data
            .conversations
            .iter()
            .find(|c| c.client_id == UserId(client) && c.status == ConversationStatus::Open)
            .expect("every demo client has an open conversation");
        let store = data
            .stores
            .iter()
            .find(|s| s.id == conversation.store_id)
            .unwrap();
        let client_zone = data
            .clients
            .iter()
            .find(|c| c.id == conversation.client_id)
            .and_then(|c| c.time_zone);
        Self {
            conversation: conversation.id.0,
            operator: conversation.operator_id.0,
            client,
            store: store.id.0,
            zone: client_zone.unwrap_or(store.time_zone),
            store_domain: store.sender_email.domain().to_owned(),
        }
    }
}

async fn import_demo(server: &TestServer) {
    let (status, body) = server.get("/import_data/").await;
    assert_eq!(status, 200, "{body}");
}

/// The email as the client received it, with what a mail program quotes from it.
#[derive(Debug, Clone)]
struct Original {
    /// With its angle brackets, as `In-Reply-To` names it.
    message_id: String,
    reply_to: String,
    unsubscribe_url: String,
    subject: String,
    store_name: String,
    store_address: String,
    client_name: String,
    client_address: String,
    date: DateTime<FixedOffset>,
    /// The client's zone, in which mail programs show dates.
    zone: Tz,
    /// The body, decoded, LF line ends, without the final line break.
    body: String,
}

impl Original {
    /// Reads the email to a client in `zone`, asserting it carries the reply and unsubscribe headers.
    fn of(mail: &ReceivedMail, zone: Tz) -> Self {
        let email = mail.parse();
        let header = |name: &str| {
            email
                .decoded_header(name)
                .unwrap_or_else(|| panic!("no {name} header in {email:?}"))
        };
        assert_eq!(
            header("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click",
            "RFC 8058 one-click"
        );
        let unsubscribe = header("List-Unsubscribe");
        let unsubscribe_url = unsubscribe
            .strip_prefix('<')
            .and_then(|u| u.strip_suffix('>'))
            .unwrap_or_else(|| panic!("List-Unsubscribe is not <url>: {unsubscribe}"))
            .to_owned();
        let (store_name, store_address) = name_and_address(&header("From"));
        let (client_name, client_address) = name_and_address(&header("To"));
        assert_eq!(
            mail.recipients,
            std::slice::from_ref(&client_address),
            "the envelope"
        );
        Self {
            message_id: header("Message-ID"),
            reply_to: header("Reply-To"),
            unsubscribe_url,
            subject: header("Subject"),
            store_name,
            store_address,
            client_name,
            client_address,
            date: DateTime::parse_from_rfc2822(&header("Date")).unwrap(),
            zone,
            body: email
                .body_text()
                .replace("\r\n", "\n")
                .trim_end()
                .to_owned(),
        }
    }

    /// The token of the `reply+<token>@domain` address, and the domain.
    fn reply_token(&self) -> (&str, &str) {
        let (local, domain) = self.reply_to.rsplit_once('@').unwrap();
        let token = local
            .strip_prefix("reply+")
            .unwrap_or_else(|| panic!("Reply-To is not reply+<token>@: {}", self.reply_to));
        (token, domain)
    }

    /// The token at the end of the unsubscribe URL.
    fn unsubscribe_token(&self) -> &str {
        self.unsubscribe_url
            .rsplit_once("/unsubscribe/")
            .unwrap_or_else(|| panic!("not an unsubscribe URL: {}", self.unsubscribe_url))
            .1
    }

    /// A reply from `program` with `text` as the client's new words, sent to our
    /// `Reply-To` and threaded under this email.
    fn reply(&self, program: MailProgram, text: &str) -> Reply<'_> {
        Reply {
            original: self,
            program,
            text: text.to_owned(),
            to: self.reply_to.clone(),
            in_reply_to: self.message_id.clone(),
            references: self.message_id.clone(),
            id: program.new_message_id(),
        }
    }
}

/// `("Name", "address")` out of `Name <address>`, `"Name" <address>` or `address`.
fn name_and_address(value: &str) -> (String, String) {
    match value.rsplit_once('<') {
        Some((name, address)) => (
            name.trim().trim_matches('"').to_owned(),
            address.trim_end_matches('>').trim().to_owned(),
        ),
        None => (String::new(), value.trim().to_owned()),
    }
}

/// The mail programs whose replies `tests/replies/` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MailProgram {
    /// Gmail on the web: multipart/alternative, quoted-printable, an attribution wrapped
    /// onto two lines, `> ` quotes, a `-- ` signature.
    Gmail,
    /// Outlook (Microsoft 365): multipart/alternative, base64, the original below a line
    /// of underscores and a From/Sent/To/Subject block, not quoted.
    Outlook,
    /// Apple Mail on an iPhone: multipart/alternative, quoted-printable, `Sent from my
    /// iPhone` above the quote, the attribution itself quoted, a byte-order mark.
    AppleMail,
}

impl MailProgram {
    const ALL: [MailProgram; 3] = [Self::Gmail, Self::Outlook, Self::AppleMail];

    fn template(self) -> &'static str {
        match self {
            Self::Gmail => include_str!("replies/gmail.eml"),
            Self::Outlook => include_str!("replies/outlook.eml"),
            Self::AppleMail => include_str!("replies/apple_mail.eml"),
        }
    }

    /// A `Message-ID` of the shape this program's provider gives.
    fn new_message_id(self) -> String {
        match self {
            Self::Gmail => format!("<CAHx9wQ{}@mail.gmail.com>", random_hex(32)),
            Self::Outlook => format!(
                "<AM9PR07MB7121{}@AM9PR07MB7121.eurprd07.prod.outlook.com>",
                random_hex(24).to_uppercase()
            ),
            Self::AppleMail => {
                let hex = random_hex(32).to_uppercase();
                format!(
                    "<{}-{}-{}-{}-{}@icloud.com>",
                    &hex[..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..]
                )
            }
        }
    }
}

/// A client's reply, before it is written out.
struct Reply<'a> {
    original: &'a Original,
    program: MailProgram,
    text: String,
    to: String,
    in_reply_to: String,
    references: String,
    /// Its own `Message-ID`, with angle brackets.
    id: String,
}

impl Reply<'_> {
    /// Sent to `address` instead of our `Reply-To` (also as `Delivered-To`).
    fn to(mut self, address: &str) -> Self {
        self.to = address.to_owned();
        self
    }

    /// Not threaded under our email: it answers, and refers to, an email that is not ours
    /// (a client starting over from their own sent mail).
    fn unthreaded(mut self) -> Self {
        let foreign = MailProgram::Gmail.new_message_id();
        self.in_reply_to.clone_from(&foreign);
        self.references = foreign;
        self
    }

    /// Answering the client's own earlier reply `earlier` (not ours): `In-Reply-To` names
    /// it, and only `References` still names our email.
    fn after_own_reply(mut self, earlier: &str) -> Self {
        self.references = format!("{} {earlier}", self.original.message_id);
        self.in_reply_to = earlier.to_owned();
        self
    }

    /// The raw RFC 822 email.
    fn raw(&self) -> Vec<u8> {
        let original = self.original;
        let local = original.date.with_timezone(&original.zone);
        let new_html = self
            .text
            .lines()
            .map(|line| {
                if line.is_empty() {
                    "<br>".to_owned()
                } else {
                    escape_html(line)
                }
            })
            .collect::<Vec<_>>()
            .join("<br>\n");
        let vars: Vec<(&str, String)> = vec![
            ("to", self.to.clone()),
            ("in_reply_to", self.in_reply_to.clone()),
            ("references", self.references.clone()),
            ("reply_id", self.id.clone()),
            (
                "date",
                Utc::now().with_timezone(&original.zone).to_rfc2822(),
            ),
            (
                "client",
                format!(
                    "{} <{}>",
                    header_text(&original.client_name),
                    original.client_address
                ),
            ),
            ("client_name", original.client_name.clone()),
            ("client_address", original.client_address.clone()),
            ("subject_header", header_text(&original.subject)),
            ("subject", original.subject.clone()),
            ("store_name", original.store_name.clone()),
            ("store_address", original.store_address.clone()),
            (
                "gmail_when",
                local
                    .format("%a, %b %-d, %Y at %-I:%M\u{202f}%p")
                    .to_string(),
            ),
            (
                "outlook_when",
                local.format("%A, %B %-d, %Y %-I:%M %p").to_string(),
            ),
            (
                "apple_when",
                local.format("%-d %b %Y, at %H:%M").to_string(),
            ),
            ("new_text", self.text.clone()),
            ("new_html", new_html),
            ("original", original.body.clone()),
            ("quoted", quote(&original.body, "")),
            ("quoted_bom", quote(&original.body, "\u{feff}")),
            (
                "original_html",
                original
                    .body
                    .lines()
                    .map(escape_html)
                    .collect::<Vec<_>>()
                    .join("<br>\n"),
            ),
            ("bom", "\u{feff}".to_owned()),
        ];
        fill(self.program.template(), &vars)
    }
}

/// `text` with `> ` before each line; `first` right after the first `> `.
fn quote(text: &str, first: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let lead = if i == 0 { first } else { "" };
            format!("> {lead}{line}").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A header's text: as is when ASCII, else one RFC 2047 encoded-word.
fn header_text(text: &str) -> String {
    if text.is_ascii() {
        text.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", base64(text.as_bytes()))
    }
}

/// The template with its `${name}` placeholders filled, CRLF line ends, and each part's
/// body in its `Content-Transfer-Encoding`.
fn fill(template: &str, vars: &[(&str, String)]) -> Vec<u8> {
    let mut text = template.to_owned();
    for (name, value) in vars {
        text = text.replace(&format!("${{{name}}}"), value);
    }
    assert!(!text.contains("${"), "a placeholder is left in {text}");
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    encode_bodies(&crlf).into_bytes()
}

/// Encodes the body of a message or MIME part (CRLF line ends, decoded) as its
/// `Content-Transfer-Encoding` says, part by part for a multipart.
fn encode_bodies(entity: &str) -> String {
    let (head, body) = entity.split_once("\r\n\r\n").unwrap_or((entity, ""));
    let headers = ParsedEmail::parse(head.as_bytes());
    let content_type = headers.header("Content-Type").unwrap_or("text/plain");
    let body = match boundary(content_type) {
        Some(boundary) => {
            // Every delimiter, the first too, is "CRLF --boundary".
            let delimiter = format!("\r\n--{boundary}");
            let padded = format!("\r\n{body}");
            let pieces: Vec<String> = padded
                .split(&delimiter)
                .enumerate()
                .map(|(i, piece)| match piece.strip_prefix("\r\n") {
                    Some(part) if i > 0 => format!("\r\n{}", encode_bodies(part)),
                    _ => piece.to_owned(),
                })
                .collect();
            pieces.join(&delimiter)["\r\n".len()..].to_owned()
        }
        None => {
            let encoding = headers
                .header("Content-Transfer-Encoding")
                .unwrap_or("7bit")
                .trim()
                .to_ascii_lowercase();
            match encoding.as_str() {
                "quoted-printable" => quoted_printable(body),
                "base64" => base64_lines(body.as_bytes()),
                _ => body.to_owned(),
            }
        }
    };
    format!("{head}\r\n\r\n{body}")
}

/// The `boundary` parameter of a multipart `Content-Type`.
fn boundary(content_type: &str) -> Option<String> {
    if !content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("multipart/")
    {
        return None;
    }
    content_type.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// Quoted-printable (RFC 2045 §6.7): lines at most 76 characters with soft breaks.
fn quoted_printable(text: &str) -> String {
    text.split("\r\n")
        .map(|line| {
            let bytes = line.as_bytes();
            let mut out = String::new();
            let mut width = 0;
            for (i, &byte) in bytes.iter().enumerate() {
                let at_end = i + 1 == bytes.len();
                let literal = match byte {
                    b' ' | b'\t' => !at_end,
                    b'=' => false,
                    b'!'..=b'~' => true,
                    _ => false,
                };
                let token = if literal {
                    char::from(byte).to_string()
                } else {
                    format!("={byte:02X}")
                };
                if width + token.len() > 75 {
                    out.push_str("=\r\n");
                    width = 0;
                }
                width += token.len();
                out.push_str(&token);
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Base64 in lines of 76 characters, as mail programs write it.
fn base64_lines(bytes: &[u8]) -> String {
    let encoded = base64(bytes);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    lines.join("\r\n")
}

/// `len` random lowercase hex digits.
fn random_hex(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    while out.len() < len {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(out.len());
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out.truncate(len);
    out
}

/// `text` with the hex digit at `at` changed.
fn altered(text: &str, at: usize) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    chars[at] = if chars[at] == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

/// Posts an operator's message to `demo`'s client and returns its chat id and the email
/// the SMTP server received for it.
async fn emailed(
    server: &TestServer,
    sink: &SmtpSink,
    demo: &Demo,
    payload: &str,
) -> (i64, Original) {
    let before = sink.messages().len();
    let (status, posted) = server
        .post_chat(demo.conversation, demo.operator, payload)
        .await;
    assert_eq!(status, 201, "{posted}");
    let chat = posted["chatId"].as_i64().unwrap();
    let received = sink.wait_for(before + 1, Duration::from_secs(15)).await;
    assert_eq!(received.len(), before + 1, "chat {chat} was emailed");
    let original = Original::of(&received[before], demo.zone);
    assert!(
        original
            .message_id
            .starts_with(&format!("<cartloop.message.{chat}.")),
        "{original:?}"
    );
    // The SMTP server has it a moment before the dispatcher records it as sent.
    wait_until("the message marked sent", 15, || async {
        server.chat_status(chat).await == "sent"
    })
    .await;
    (chat, original)
}

/// Posts a raw email to `/inbound/email/`, as a mail server's pipe does.
async fn deliver(server: &TestServer, raw: Vec<u8>) -> (u16, Value) {
    server
        .post_bytes("/inbound/email/", "message/rfc822", raw)
        .await
}

/// The conversation's chats, oldest first.
async fn chats(server: &TestServer, conversation: i64) -> Vec<Value> {
    let (status, body) = server
        .get(&format!("/conversation/{conversation}/?limit=1000"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["chats"].as_array().unwrap().clone()
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// `url` on `server`: the same path, whatever host the email named (`PUBLIC_URL` is where
/// the client's mail program would go; the test talks to the server directly).
fn path_on(server: &TestServer, url: &str) -> String {
    let path = &url[url.find("/unsubscribe/").expect("an unsubscribe URL")..];
    format!("{}{path}", server.base)
}

/// The RFC 8058 one-click POST a mail provider sends: no bearer token.
async fn one_click(url: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A GET without a bearer token, as a link scanner or the client's browser sends it.
async fn visit(url: &str) -> (u16, String, String) {
    let response = reqwest::Client::new().get(url).send().await.unwrap();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        response.status().as_u16(),
        content_type,
        response.text().await.unwrap(),
    )
}

/// Asserts that `text`, sent in a reply, is stored as chat `chat_id` of `demo`'s
/// conversation: received, written by the client, and nothing but the text.
fn assert_landed(chats: &[Value], chat_id: i64, demo: &Demo, text: &str, what: &str) {
    let chat = chats
        .iter()
        .find(|c| c["chatId"] == chat_id)
        .unwrap_or_else(|| panic!("{what}: chat {chat_id} is not in the conversation"));
    assert_eq!(chat["status"], "received", "{what}: {chat}");
    assert_eq!(chat["userId"], demo.client, "{what}: {chat}");
    assert_eq!(chat["payload"], text, "{what}: only the new text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_from_gmail_outlook_and_apple_mail_land_as_their_new_text_only() {
    for backend in Backend::all().await {
        let name = backend.name();
        let sink = SmtpSink::start().await;
        let server = start(&backend, &sink, &[]).await;
        import_demo(&server).await;
        let demo = Demo::mia();
        let (_, original) = emailed(
            &server,
            &sink,
            &demo,
            "Hi << username >>,\nthe novel in your cart is back in stock, in hardcover and paperback.\nShall I keep one for you?",
        )
        .await;
        assert!(
            original.body.starts_with("Hi Mia M\u{fc}ller,\nthe novel"),
            "{original:?}"
        );
        let (token, domain) = original.reply_token();
        assert!(
            token.starts_with(&format!("c{}-", demo.conversation)),
            "{original:?}"
        );
        assert_eq!(domain, demo.store_domain, "the default reply domain");
        assert!(
            original
                .unsubscribe_url
                .starts_with(&format!("{}/unsubscribe/u{}-", server.base, demo.client)),
            "the default public URL is the server's own address: {original:?}"
        );

        let typed = [
            "Yes, which one is cheaper?\nI would take the paperback.",
            "Hello,\n\nyes please \u{2013} the hardcover, if it is signed?",
            "Perfect, thank you \u{1f44d} Can I pick it up in the Berlin store?",
        ];
        let mut landed = Vec::new();
        for (program, text) in MailProgram::ALL.into_iter().zip(typed) {
            let what = format!("{name}, {program:?}");
            let mut raw = original.reply(program, text).raw();
            if program == MailProgram::AppleMail {
                // As Postfix's pipe(8) writes a message by default: LF line ends.
                raw = String::from_utf8(raw)
                    .unwrap()
                    .replace("\r\n", "\n")
                    .into_bytes();
            }
            let (status, body) = deliver(&server, raw.clone()).await;
            assert_eq!(status, 201, "{what}: {body}");
            assert_eq!(body["conversationId"], demo.conversation, "{what}: {body}");
            let chat_id = body["chatId"].as_i64().unwrap();
            assert_landed(
                &chats(&server, demo.conversation).await,
                chat_id,
                &demo,
                text,
                &what,
            );
            landed.push((chat_id, raw));
        }

        // A second delivery of the same email (same Message-ID) stores nothing new.
        let before = chats(&server, demo.conversation).await;
        for (chat_id, raw) in &landed {
            let (status, body) = deliver(&server, raw.clone()).await;
            assert_eq!(status, 200, "{name}: a repeated delivery: {body}");
            assert_eq!(body["chatId"], *chat_id, "{name}: {body}");
        }
        assert_eq!(chats(&server, demo.conversation).await, before, "{name}");

        // Matched by the thread alone: sent to the store's own address, the token nowhere.
        let to_store = original
            .reply(MailProgram::Outlook, "Sorry, I meant the paperback.")
            .to(&original.store_address);
        let first_id = to_store.id.clone();
        let (status, body) = deliver(&server, to_store.raw()).await;
        assert_eq!(status, 201, "{name}: In-Reply-To names our email: {body}");
        assert_landed(
            &chats(&server, demo.conversation).await,
            body["chatId"].as_i64().unwrap(),
            &demo,
            "Sorry, I meant the paperback.",
            &format!("{name}, In-Reply-To"),
        );
        let follow_up = original
            .reply(MailProgram::Gmail, "And in black, if you have it.")
            .to(&format!("orders@{}", demo.store_domain))
            .after_own_reply(&first_id);
        let (status, body) = deliver(&server, follow_up.raw()).await;
        assert_eq!(status, 201, "{name}: References name our email: {body}");
        assert_landed(
            &chats(&server, demo.conversation).await,
            body["chatId"].as_i64().unwrap(),
            &demo,
            "And in black, if you have it.",
            &format!("{name}, References"),
        );

        // The inbound route is the API's: without the bearer token, nothing.
        let before = chats(&server, demo.conversation).await;
        let anonymous = reqwest::Client::new()
            .post(format!("{}/inbound/email/", server.base))
            .header(reqwest::header::CONTENT_TYPE, "message/rfc822")
            .body(original.reply(MailProgram::Gmail, "Hello?").raw())
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401, "{name}");
        assert_eq!(chats(&server, demo.conversation).await, before, "{name}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_altered_reply_tokens_are_refused() {
    for backend in Backend::all().await {
        let name = backend.name();
        let sink = SmtpSink::start().await;
        let server = start(&backend, &sink, &[]).await;
        import_demo(&server).await;
        let demo = Demo::mia();
        let other = Demo::of_client(27);
        assert_ne!(demo.conversation, other.conversation);
        let (_, original) = emailed(&server, &sink, &demo, "Which edition would you like?").await;
        let (token, domain) = original.reply_token();
        let (_, mac) = token.split_once('-').unwrap();
        let conversation = demo.conversation;
        let forged = [
            ("random hex", format!("reply+{}@{domain}", random_hex(32))),
            (
                "a random MAC",
                format!("reply+c{conversation}-{}@{domain}", random_hex(32)),
            ),
            (
                "one character changed",
                format!("reply+c{conversation}-{}@{domain}", altered(mac, 9)),
            ),
            (
                "another conversation's id",
                format!("reply+c{}-{mac}@{domain}", other.conversation),
            ),
            ("no MAC", format!("reply+c{conversation}@{domain}")),
        ];
        let before = (
            chats(&server, demo.conversation).await,
            chats(&server, other.conversation).await,
        );
        for (what, address) in &forged {
            let reply = original
                .reply(MailProgram::Gmail, "Is the code still valid?")
                .to(address)
                .unthreaded();
            let (status, body) = deliver(&server, reply.raw()).await;
            assert_eq!(status, 422, "{name}, {what} ({address}): {body}");
            assert_eq!(error_code(&body), "unmatched_reply", "{name}, {what}");
        }
        let after = (
            chats(&server, demo.conversation).await,
            chats(&server, other.conversation).await,
        );
        assert_eq!(after, before, "{name}: nothing stored");

        // The same reply to the real address lands: the token alone made the difference.
        let genuine = original
            .reply(MailProgram::Gmail, "Is the code still valid?")
            .unthreaded();
        let (status, body) = deliver(&server, genuine.raw()).await;
        assert_eq!(status, 201, "{name}: the genuine token: {body}");
        assert_eq!(body["conversationId"], demo.conversation, "{name}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_unsubscribe_stops_the_next_email_and_a_get_does_not() {
    for backend in Backend::all().await {
        let name = backend.name();
        let sink = SmtpSink::start().await;
        let server = start(&backend, &sink, &[]).await;
        import_demo(&server).await;
        let demo = Demo::mia();
        let (_, original) = emailed(&server, &sink, &demo, "Hello << username >>!").await;
        let url = original.unsubscribe_url.clone();

        // A GET, as a link scanner sends it: a page asking to confirm, nothing more.
        let (status, content_type, page) = visit(&url).await;
        assert_eq!(status, 200, "{name}: {page}");
        assert!(
            content_type.starts_with("text/html"),
            "{name}: {content_type}"
        );
        assert!(
            page.contains("<form method=\"post\"") && page.contains("<button"),
            "{name}: a confirm button: {page}"
        );

        // A tampered token is no one's.
        let token = original.unsubscribe_token();
        let (_, mac) = token.split_once('-').unwrap();
        let other_client = Demo::of_client(27).client;
        for tampered in [
            url.replace(token, &format!("u{}-{}", demo.client, altered(mac, 20))),
            url.replace(token, &format!("u{other_client}-{mac}")),
        ] {
            let (status, _, page) = visit(&tampered).await;
            assert_eq!(status, 404, "{name}: GET {tampered}: {page}");
            let (status, page) = one_click(&tampered).await;
            assert_eq!(status, 404, "{name}: POST {tampered}: {page}");
        }

        // Neither changed anything: the next message is emailed.
        emailed(&server, &sink, &demo, "Your code is << discountCode >>").await;

        // A message scheduled for a few seconds from now: the store's window opens then.
        let opens =
            DateTime::from_timestamp((Utc::now() + ChronoDuration::seconds(4)).timestamp(), 0)
                .unwrap();
        let local = |at: DateTime<Utc>| at.with_timezone(&demo.zone).format("%H:%M:%S").to_string();
        let window = format!(
            "{}-{}",
            local(opens),
            local(opens + ChronoDuration::hours(12))
        );
        let (status, body) = server
            .patch(
                &format!("/store/{}/", demo.store),
                &json!({"activeHours": window}),
            )
            .await;
        assert_eq!(status, 200, "{name}: {body}");
        let (status, scheduled) = server
            .post_chat(demo.conversation, demo.operator, "See you tomorrow")
            .await;
        assert_eq!(status, 201, "{name}: {scheduled}");
        assert_eq!(scheduled["status"], "new", "{name}: {scheduled}");
        let send_at: DateTime<Utc> = scheduled["sendAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(send_at, opens, "{name}: {scheduled}");
        let scheduled = scheduled["chatId"].as_i64().unwrap();
        let emails = sink.messages().len();

        // The one-click POST, without the API's bearer token: the signed URL suffices.
        let (status, page) = one_click(&url).await;
        assert_eq!(status, 200, "{name}: {page}");
        assert!(
            Utc::now() < opens,
            "{name}: unsubscribed before the message fell due"
        );

        let (status, body) = server
            .post_chat(demo.conversation, demo.operator, "One more thing")
            .await;
        assert_eq!(status, 409, "{name}: {body}");
        assert_eq!(error_code(&body), "client_unsubscribed", "{name}: {body}");
        wait_until("the scheduled message suppressed", 15, || {
            let server = &server;
            async move { server.chat_status(scheduled).await == "suppressed" }
        })
        .await;
        assert!(Utc::now() >= opens, "{name}: suppressed when it fell due");
        let (_, chat) = server.get(&format!("/chat/{scheduled}/")).await;
        assert_eq!(chat["sentAt"], Value::Null, "{name}: {chat}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            sink.messages().len(),
            emails,
            "{name}: no email after unsubscribing"
        );

        // The page now says so, with nothing left to confirm.
        let (status, _, page) = visit(&url).await;
        assert_eq!(status, 200, "{name}");
        assert!(!page.contains("<form"), "{name}: {page}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_url_and_reply_domain_shape_the_headers() {
    for backend in Backend::all().await {
        let name = backend.name();
        let sink = SmtpSink::start().await;
        let server = start(
            &backend,
            &sink,
            &[
                "--public-url",
                "https://shop.example.com/",
                "--reply-domain",
                "replies.example.com",
            ],
        )
        .await;
        import_demo(&server).await;
        let demo = Demo::mia();
        let (_, original) = emailed(&server, &sink, &demo, "Hello << username >>!").await;
        let (token, domain) = original.reply_token();
        assert_eq!(domain, "replies.example.com", "{name}");
        let mac = token
            .strip_prefix(&format!("c{}-", demo.conversation))
            .unwrap_or_else(|| panic!("{name}: {token}"));
        assert!(
            mac.len() == 32 && mac.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}: {token}"
        );
        let mac = original
            .unsubscribe_url
            .strip_prefix(&format!(
                "https://shop.example.com/unsubscribe/u{}-",
                demo.client
            ))
            .unwrap_or_else(|| panic!("{name}: {}", original.unsubscribe_url));
        assert!(
            mac.len() == 64 && mac.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}: {}",
            original.unsubscribe_url
        );

        let reply = original
            .reply(MailProgram::AppleMail, "Thanks!")
            .unthreaded();
        let (status, body) = deliver(&server, reply.raw()).await;
        assert_eq!(status, 201, "{name}: {body}");
        let (status, page) = one_click(&path_on(&server, &original.unsubscribe_url)).await;
        assert_eq!(status, 200, "{name}: {page}");
        let (status, body) = server
            .post_chat(demo.conversation, demo.operator, "Still there?")
            .await;
        assert_eq!(
            (status, error_code(&body)),
            (409, "client_unsubscribed"),
            "{name}"
        );
        server.stop().await;
    }
}

/// The reply and unsubscribe tokens of `original` work on `server`: the reply (unthreaded,
/// so only its token can match it) lands and the one-click POST unsubscribes.
async fn tokens_work_on(server: &TestServer, original: &Original, demo: &Demo, what: &str) {
    let reply = original
        .reply(MailProgram::Gmail, "Got it, thanks.")
        .unthreaded();
    let (status, body) = deliver(server, reply.raw()).await;
    assert_eq!(status, 201, "{what}: the reply token: {body}");
    assert_eq!(body["conversationId"], demo.conversation, "{what}");
    let (status, page) = one_click(&path_on(server, &original.unsubscribe_url)).await;
    assert_eq!(status, 200, "{what}: the unsubscribe token: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_on_one_database_accept_each_others_tokens() {
    let demo = Demo::mia();

    // SQLite: the secret generated on the first start is kept in the database.
    let backend = Backend::sqlite();
    let sink = SmtpSink::start().await;
    let first = start(&backend, &sink, &[]).await;
    import_demo(&first).await;
    let (_, original) = emailed(&first, &sink, &demo, "Hello << username >>!").await;
    first.stop().await;
    let second = start(&backend, &sink, &[]).await;
    tokens_work_on(&second, &original, &demo, "sqlite, after a restart").await;
    second.stop().await;

    let Some(backend) = Backend::postgres().await else {
        return;
    };
    // Two servers started at once on a fresh database agree on one generated secret.
    let sink = SmtpSink::start().await;
    let (a, b) = tokio::join!(start(&backend, &sink, &[]), start(&backend, &sink, &[]));
    import_demo(&a).await;
    let (_, original) = emailed(&a, &sink, &demo, "Hello << username >>!").await;
    // Either dispatcher may have sent it; its unsubscribe URL names the sender.
    let sender_is_a = original.unsubscribe_url.starts_with(&a.base);
    assert!(
        sender_is_a || original.unsubscribe_url.starts_with(&b.base),
        "{original:?}"
    );
    let other = if sender_is_a { &b } else { &a };
    tokens_work_on(other, &original, &demo, "postgres, a generated secret").await;
    tokio::join!(a.stop(), b.stop());
    drop(backend);

    // With CARTLOOP_SECRET, servers sharing it accept each other's tokens; one with another
    // secret refuses them, though the database holds a generated secret too.
    let backend = Backend::postgres().await.unwrap();
    let sink = SmtpSink::start().await;
    let secret = ["--secret", "first shared secret, 32 characters"];
    let a = start(&backend, &sink, &secret).await;
    import_demo(&a).await;
    let (_, original) = emailed(&a, &sink, &demo, "Hello << username >>!").await;
    let b = start(&backend, &sink, &secret).await;
    let stranger = start(
        &backend,
        &sink,
        &["--secret", "another secret, 32 characters.."],
    )
    .await;
    let reply = original
        .reply(MailProgram::Outlook, "Got it, thanks.")
        .unthreaded();
    let (status, body) = deliver(&stranger, reply.raw()).await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "unmatched_reply"),
        "another secret: {body}"
    );
    let (status, _, page) = visit(&path_on(&stranger, &original.unsubscribe_url)).await;
    assert_eq!(status, 404, "another secret: {page}");
    tokens_work_on(&b, &original, &demo, "postgres, CARTLOOP_SECRET").await;
    tokio::join!(a.stop(), b.stop(), stranger.stop());
}
