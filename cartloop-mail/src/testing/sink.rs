//! [`SmtpSink`]: a small SMTP server on real TCP that records what it receives.

use super::base64_decode;
use super::email::ReceivedMail;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Longest command line accepted, without CRLF (RFC 5321 §4.5.3.1.4 allows 512).
const MAX_COMMAND_LINE: usize = 4096;
/// Longest message line accepted, without CRLF (RFC 5321 allows 1000 with it).
const MAX_DATA_LINE: usize = 64 * 1024;
/// Largest message accepted, as advertised with `SIZE`.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;

/// What the sink does instead of its normal reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answers with this reply, e.g. `451 4.3.0 try later` or `550 5.1.1 no such user`.
    Reply(String),
    /// Closes the connection without answering.
    Close,
    /// Never answers: reads and discards whatever comes until the client leaves.
    Hang,
}

/// How an [`SmtpSink`] misbehaves; the default accepts everything.
///
/// A message is recorded once its data has been received, unless the reply to it is a
/// 4xx or 5xx: with [`Fault::Close`] or [`Fault::Hang`] after the data, the sink has the
/// message although the client never hears so — an ambiguous outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkBehavior {
    /// Instead of the `220` greeting; after a [`Fault::Reply`] the connection is closed.
    pub greeting: Option<Fault>,
    /// Instead of accepting `AUTH`.
    pub auth: Option<Fault>,
    /// Instead of accepting each `RCPT TO`.
    pub rcpt: Option<Fault>,
    /// Instead of the `250` after the message data.
    pub data: Option<Fault>,
    /// How long the sink thinks before its reply to each message's data, as a distant or
    /// busy server would (a round trip and a queue write). Zero by default.
    pub data_delay: Duration,
    /// Does not offer `PIPELINING` (RFC 2920), and answers a command that arrives before
    /// the reply to the one before it with `554 5.5.0 improper command pipelining` and
    /// closes the connection, as Postfix does with `smtpd_forbid_unauth_pipelining`.
    pub refuse_pipelining: bool,
}

impl SinkBehavior {
    /// Accepts TCP connections but never says a word.
    pub fn silent() -> Self {
        Self {
            greeting: Some(Fault::Hang),
            ..Self::default()
        }
    }

    /// Answers every `RCPT TO` with `reply`, e.g. `550 5.1.1 no such user`.
    pub fn reject_rcpt(reply: impl Into<String>) -> Self {
        Self {
            rcpt: Some(Fault::Reply(reply.into())),
            ..Self::default()
        }
    }

    /// Answers every message with `reply` after its data, e.g. `451 4.3.0 try later`.
    pub fn reject_data(reply: impl Into<String>) -> Self {
        Self {
            data: Some(Fault::Reply(reply.into())),
            ..Self::default()
        }
    }

    /// Answers `AUTH` with `reply`, e.g. `535 5.7.8 authentication failed`.
    pub fn reject_auth(reply: impl Into<String>) -> Self {
        Self {
            auth: Some(Fault::Reply(reply.into())),
            ..Self::default()
        }
    }

    /// Records each message, then closes the connection before answering.
    pub fn close_after_data() -> Self {
        Self {
            data: Some(Fault::Close),
            ..Self::default()
        }
    }

    /// Accepts everything, answering each message's data after `delay`.
    pub fn slow(delay: Duration) -> Self {
        Self {
            data_delay: delay,
            ..Self::default()
        }
    }

    /// Accepts everything from a client that waits for each reply, and nothing from one
    /// that pipelines (see [`SinkBehavior::refuse_pipelining`]).
    pub fn no_pipelining() -> Self {
        Self {
            refuse_pipelining: true,
            ..Self::default()
        }
    }

    /// Records each message, then never answers.
    pub fn hang_after_data() -> Self {
        Self {
            data: Some(Fault::Hang),
            ..Self::default()
        }
    }
}

struct Shared {
    behavior: Mutex<SinkBehavior>,
    messages: Mutex<Vec<ReceivedMail>>,
    logins: Mutex<Vec<(String, String)>>,
    received: watch::Sender<usize>,
    /// Bumped to close every open connection.
    disconnect: watch::Sender<u64>,
    total: AtomicUsize,
    open: AtomicUsize,
    max_open: AtomicUsize,
    pipelined: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn behavior(&self) -> SinkBehavior {
        lock(&self.behavior).clone()
    }

    fn record(&self, mail: ReceivedMail) {
        let count = {
            let mut messages = lock(&self.messages);
            messages.push(mail);
            messages.len()
        };
        self.received.send_replace(count);
    }
}

/// A real SMTP server for tests, on `127.0.0.1` and a free port, speaking the protocol over
/// TCP: greeting, `EHLO`/`HELO` (advertising `8BITMIME`, `SMTPUTF8`, `PIPELINING`, `SIZE`
/// and `AUTH PLAIN`), `MAIL FROM`, `RCPT TO`, `DATA` with dot-unstuffing, `RSET`, `NOOP`,
/// `VRFY`, `AUTH PLAIN` and `QUIT`. Pipelined commands are answered in order.
///
/// It records each accepted email ([`messages`](Self::messages)), each `AUTH PLAIN` login,
/// and counts connections (in total and most open at once). [`SinkBehavior`] makes it reject
/// or drop at chosen steps. Each connection is served by its own task; bad input gets an
/// error reply, never a panic. Dropping the sink stops the server and closes every
/// connection.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use cartloop_mail::testing::SmtpSink;
/// use std::time::Duration;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let sink = SmtpSink::start().await;
/// let mut tcp = tokio::net::TcpStream::connect(sink.addr()).await?;
/// tcp.write_all(b"HELO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n\
///     Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n").await?;
/// let mut replies = String::new();
/// tcp.read_to_string(&mut replies).await?;
/// assert!(replies.ends_with("221 2.0.0 bye\r\n"));
///
/// let received = sink.wait_for(1, Duration::from_secs(5)).await;
/// assert_eq!(received[0].recipients, ["b@example.com"]);
/// assert_eq!(received[0].data, b"Subject: hi\r\n\r\n.dot\r\n");
/// # Ok(())
/// # }
/// ```
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.addr)
            .field("messages", &lock(&self.shared.messages).len())
            .field("connections_total", &self.connections_total())
            .finish_non_exhaustive()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // The accept task owns the connection tasks: aborting it ends them all.
        self.accept.abort();
    }
}

impl SmtpSink {
    /// Starts a sink that accepts everything.
    ///
    /// # Panics
    /// If no port on 127.0.0.1 can be bound, or outside a tokio runtime.
    pub async fn start() -> Self {
        Self::start_with(SinkBehavior::default()).await
    }

    /// Starts a sink that behaves as `behavior` says.
    ///
    /// # Panics
    /// If no port on 127.0.0.1 can be bound, or outside a tokio runtime.
    pub async fn start_with(behavior: SinkBehavior) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("SmtpSink: cannot bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("SmtpSink: a bound listener has an address");
        let shared = Arc::new(Shared {
            behavior: Mutex::new(behavior),
            messages: Mutex::new(Vec::new()),
            logins: Mutex::new(Vec::new()),
            received: watch::Sender::new(0),
            disconnect: watch::Sender::new(0),
            total: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            max_open: AtomicUsize::new(0),
            pipelined: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Self {
            addr,
            shared,
            accept,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:<port>`, for `SmtpMailer::from_url` or `SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Changes the behavior for the commands that follow, on all connections.
    pub fn set_behavior(&self, behavior: SinkBehavior) {
        *lock(&self.shared.behavior) = behavior;
    }

    /// The emails received so far, in order of arrival.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.shared.messages).clone()
    }

    /// The `(user, password)` of each `AUTH PLAIN` so far.
    pub fn logins(&self) -> Vec<(String, String)> {
        lock(&self.shared.logins).clone()
    }

    /// Closes every open connection at once, without a word — as a restarted server, or
    /// one whose idle timeout struck. New connections are served as before.
    pub fn disconnect_all(&self) {
        self.shared
            .disconnect
            .send_modify(|generation| *generation += 1);
    }

    /// Connections accepted so far.
    pub fn connections_total(&self) -> usize {
        self.shared.total.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// The most connections that were open at the same time.
    pub fn max_concurrent_connections(&self) -> usize {
        self.shared.max_open.load(Ordering::SeqCst)
    }

    /// Commands that arrived before the reply to the command before them: pipelined
    /// (`MAIL FROM`, `RCPT TO` and `DATA` in one write make two).
    pub fn pipelined_commands(&self) -> usize {
        self.shared.pipelined.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` emails have arrived or `timeout` has passed, and returns
    /// the emails received by then (check the length).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let mut received = self.shared.received.subscribe();
        let _ = tokio::time::timeout(timeout, received.wait_for(|count| *count >= n)).await;
        self.messages()
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let id = shared.total.fetch_add(1, Ordering::SeqCst) + 1;
                    let open = OpenConnection::new(shared.clone());
                    let session = Session::new(stream, shared.clone(), id);
                    let mut disconnect = shared.disconnect.subscribe();
                    connections.spawn(async move {
                        let _open = open;
                        tokio::select! {
                            _ = session.run() => {}
                            _ = disconnect.changed() => {}
                        }
                    });
                }
                // E.g. too many open files: wait for connections to end, then go on.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Counts an open connection for as long as it lives.
struct OpenConnection(Arc<Shared>);

impl OpenConnection {
    fn new(shared: Arc<Shared>) -> Self {
        let open = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_open.fetch_max(open, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

enum Line {
    Text(Vec<u8>),
    TooLong,
    Eof,
}

/// Whether the session goes on after a command.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

struct Session {
    shared: Arc<Shared>,
    connection: usize,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    greeted: bool,
    from: Option<String>,
    recipients: Vec<String>,
}

impl Session {
    fn new(stream: TcpStream, shared: Arc<Shared>, connection: usize) -> Self {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        Self {
            shared,
            connection,
            reader: BufReader::new(reader),
            writer,
            greeted: false,
            from: None,
            recipients: Vec::new(),
        }
    }

    async fn run(mut self) -> std::io::Result<()> {
        match self.shared.behavior().greeting {
            None => {
                self.reply("220 cartloop-sink ESMTP ready").await?;
            }
            Some(fault) => {
                self.fault(fault).await?;
                return Ok(());
            }
        }
        loop {
            let flow = match self.read_line(MAX_COMMAND_LINE).await? {
                Line::Eof => return Ok(()),
                Line::TooLong => self.reply("500 5.5.2 line too long").await?,
                Line::Text(line) => {
                    // More input already here: the next command came before this reply.
                    if !self.reader.buffer().is_empty() {
                        self.shared.pipelined.fetch_add(1, Ordering::SeqCst);
                        if self.shared.behavior().refuse_pipelining {
                            self.reply("554 5.5.0 improper command pipelining").await?;
                            return Ok(());
                        }
                    }
                    self.command(&String::from_utf8_lossy(&line)).await?
                }
            };
            if flow == Flow::Close {
                return Ok(());
            }
        }
    }

    async fn command(&mut self, line: &str) -> std::io::Result<Flow> {
        let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
        let argument = argument.trim();
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if argument.is_empty() => self.reply("501 5.5.4 domain required").await,
            "EHLO" => {
                self.reset();
                self.greeted = true;
                let pipelining = if self.shared.behavior().refuse_pipelining {
                    ""
                } else {
                    "250-PIPELINING\r\n"
                };
                let reply = format!(
                    "250-cartloop-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n{pipelining}\
                     250-SIZE 10485760\r\n250 AUTH PLAIN"
                );
                self.reply(&reply).await
            }
            "HELO" => {
                self.reset();
                self.greeted = true;
                self.reply("250 cartloop-sink").await
            }
            "MAIL" => self.mail(argument).await,
            "RCPT" => self.rcpt(argument).await,
            "DATA" => self.data().await,
            "RSET" => {
                self.reset();
                self.reply("250 2.0.0 ok").await
            }
            "NOOP" => self.reply("250 2.0.0 ok").await,
            "VRFY" => self.reply("252 2.5.0 cannot verify, but will accept").await,
            "AUTH" => self.auth(argument).await,
            "QUIT" => {
                self.reply("221 2.0.0 bye").await?;
                Ok(Flow::Close)
            }
            _ => self.reply("500 5.5.2 command not recognized").await,
        }
    }

    async fn mail(&mut self, argument: &str) -> std::io::Result<Flow> {
        if !self.greeted {
            return self.reply("503 5.5.1 say EHLO first").await;
        }
        if self.from.is_some() {
            return self.reply("503 5.5.1 nested MAIL command").await;
        }
        match path(argument, "FROM:") {
            Some(from) => {
                self.from = Some(from);
                self.reply("250 2.1.0 sender ok").await
            }
            None => self.reply("501 5.5.4 syntax: MAIL FROM:<address>").await,
        }
    }

    async fn rcpt(&mut self, argument: &str) -> std::io::Result<Flow> {
        if self.from.is_none() {
            return self.reply("503 5.5.1 need MAIL before RCPT").await;
        }
        let Some(to) = path(argument, "TO:").filter(|to| !to.is_empty()) else {
            return self.reply("501 5.5.4 syntax: RCPT TO:<address>").await;
        };
        if let Some(fault) = self.shared.behavior().rcpt {
            return self.fault(fault).await;
        }
        self.recipients.push(to);
        self.reply("250 2.1.5 recipient ok").await
    }

    async fn data(&mut self) -> std::io::Result<Flow> {
        if self.from.is_none() {
            return self.reply("503 5.5.1 need MAIL before DATA").await;
        }
        if self.recipients.is_empty() {
            return self.reply("554 5.5.1 no valid recipients").await;
        }
        self.reply("354 end data with <CR><LF>.<CR><LF>").await?;
        let mut data = Vec::new();
        let mut too_big = false;
        loop {
            match self.read_line(MAX_DATA_LINE).await? {
                Line::Eof => return Ok(Flow::Close),
                Line::TooLong => too_big = true,
                Line::Text(line) if line == b"." => break,
                Line::Text(line) => {
                    let line = line.strip_prefix(b".".as_slice()).unwrap_or(&line);
                    if data.len() + line.len() + 2 > MAX_MESSAGE {
                        too_big = true;
                    } else if !too_big {
                        data.extend_from_slice(line);
                        data.extend_from_slice(b"\r\n");
                    }
                }
            }
        }
        let mail = ReceivedMail {
            from: self.from.take().unwrap_or_default(),
            recipients: std::mem::take(&mut self.recipients),
            data,
            connection: self.connection,
        };
        if too_big {
            return self.reply("552 5.3.4 message too big").await;
        }
        let behavior = self.shared.behavior();
        if !behavior.data_delay.is_zero() {
            tokio::time::sleep(behavior.data_delay).await;
        }
        match behavior.data {
            None => {
                self.shared.record(mail);
                let queued = lock(&self.shared.messages).len();
                self.reply(&format!("250 2.0.0 queued as {queued}")).await
            }
            Some(fault) => {
                let rejected = matches!(&fault, Fault::Reply(r) if r.starts_with(['4', '5']));
                if !rejected {
                    self.shared.record(mail);
                }
                self.fault(fault).await
            }
        }
    }

    async fn auth(&mut self, argument: &str) -> std::io::Result<Flow> {
        let (mechanism, initial) = argument.split_once(' ').unwrap_or((argument, ""));
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            return self.reply("504 5.5.4 only AUTH PLAIN is supported").await;
        }
        if !self.greeted {
            return self.reply("503 5.5.1 say EHLO first").await;
        }
        let response = if initial.is_empty() {
            self.reply("334 ").await?;
            match self.read_line(MAX_COMMAND_LINE).await? {
                Line::Text(line) => String::from_utf8_lossy(&line).trim().to_owned(),
                Line::TooLong => return self.reply("500 5.5.2 line too long").await,
                Line::Eof => return Ok(Flow::Close),
            }
        } else {
            initial.trim().to_owned()
        };
        if response == "*" {
            return self.reply("501 5.7.0 authentication cancelled").await;
        }
        // PLAIN: authorization id, user and password, separated by NUL bytes.
        let decoded = base64_decode(&response).and_then(|bytes| String::from_utf8(bytes).ok());
        let Some([_, user, password]) = decoded.as_deref().and_then(|d| {
            let parts: Vec<&str> = d.split('\0').collect();
            <[&str; 3]>::try_from(parts).ok()
        }) else {
            return self
                .reply("501 5.5.2 cannot decode the PLAIN response")
                .await;
        };
        if let Some(fault) = self.shared.behavior().auth {
            return self.fault(fault).await;
        }
        lock(&self.shared.logins).push((user.to_owned(), password.to_owned()));
        self.reply("235 2.7.0 authentication succeeded").await
    }

    async fn fault(&mut self, fault: Fault) -> std::io::Result<Flow> {
        match fault {
            Fault::Reply(reply) => self.reply(&reply).await,
            Fault::Close => Ok(Flow::Close),
            Fault::Hang => {
                tokio::io::copy(&mut self.reader, &mut tokio::io::sink()).await?;
                Ok(Flow::Close)
            }
        }
    }

    fn reset(&mut self) {
        self.from = None;
        self.recipients.clear();
    }

    async fn reply(&mut self, reply: &str) -> std::io::Result<Flow> {
        let mut bytes = Vec::with_capacity(reply.len() + 2);
        bytes.extend_from_slice(reply.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.writer.write_all(&bytes).await?;
        Ok(Flow::Continue)
    }

    /// One line without its CRLF (a bare LF is accepted too).
    async fn read_line(&mut self, limit: usize) -> std::io::Result<Line> {
        let mut line = Vec::new();
        let read = (&mut self.reader)
            .take(limit as u64 + 2)
            .read_until(b'\n', &mut line)
            .await?;
        if read == 0 {
            return Ok(Line::Eof);
        }
        if line.last() != Some(&b'\n') {
            if line.len() < limit + 2 {
                // The client left mid-line.
                return Ok(Line::Eof);
            }
            // Skip the rest of the overlong line.
            loop {
                let mut rest = Vec::new();
                let read = (&mut self.reader)
                    .take(MAX_DATA_LINE as u64)
                    .read_until(b'\n', &mut rest)
                    .await?;
                if read == 0 {
                    return Ok(Line::Eof);
                }
                if rest.last() == Some(&b'\n') {
                    return Ok(Line::TooLong);
                }
            }
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Line::Text(line))
    }
}

/// The address in `FROM:<address> [parameters]` (or `TO:`), without the brackets.
fn path(argument: &str, keyword: &str) -> Option<String> {
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let (address, _parameters) = inner.split_once('>')?;
    Some(address.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        assert_eq!(path("FROM:<a@b.c>", "FROM:").as_deref(), Some("a@b.c"));
        assert_eq!(
            path("from: <a@b.c> BODY=8BITMIME SMTPUTF8", "FROM:").as_deref(),
            Some("a@b.c")
        );
        assert_eq!(path("FROM:<>", "FROM:").as_deref(), Some(""));
        assert_eq!(path("TO:a@b.c", "TO:"), None);
        assert_eq!(path("FROM:<a@b.c", "FROM:"), None);
        assert_eq!(path("FR", "FROM:"), None);
        assert_eq!(path("FRÖM:<x>", "FROM:"), None);
    }
}
