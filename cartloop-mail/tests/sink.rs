//! The test SMTP server, spoken to over raw TCP.

use cartloop_mail::testing::{SinkBehavior, SmtpSink};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

/// A client that reads one (possibly multi-line) reply at a time.
struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    async fn connect(sink: &SmtpSink) -> Self {
        let mut client = Self {
            stream: BufReader::new(TcpStream::connect(sink.addr()).await.unwrap()),
        };
        assert!(client.reply().await.starts_with("220 "));
        client
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.unwrap();
    }

    /// The next reply; its last line starts with `NNN `.
    async fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(WAIT, self.stream.read_line(&mut line))
                .await
                .expect("a reply in time")
                .unwrap();
            assert!(read > 0, "connection closed after {reply:?}");
            reply.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') || line.len() <= 5 {
                return reply;
            }
        }
    }

    async fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(WAIT, self.stream.read_to_end(&mut rest)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

fn code(reply: &str) -> &str {
    &reply[..3]
}

#[tokio::test]
async fn ehlo_advertises_the_extensions() {
    let sink = SmtpSink::start().await;
    let mut client = Client::connect(&sink).await;
    let reply = client.command("EHLO client.example").await;
    for extension in [
        "250-8BITMIME",
        "250-SMTPUTF8",
        "250-PIPELINING",
        "250 AUTH PLAIN",
    ] {
        assert!(reply.contains(extension), "{reply}");
    }
    assert_eq!(code(&client.command("HELO client.example").await), "250");
    assert_eq!(code(&client.command("EHLO").await), "501");
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let sink = SmtpSink::start().await;
    let mut client = Client::connect(&sink).await;
    client
        .send(
            b"EHLO c\r\nMAIL FROM:<a@example.com> BODY=8BITMIME\r\nRCPT TO:<b@example.com>\r\n\
              RCPT TO:<c@example.com>\r\nDATA\r\n",
        )
        .await;
    let codes = [
        code(&client.reply().await).to_owned(),
        code(&client.reply().await).to_owned(),
        code(&client.reply().await).to_owned(),
        code(&client.reply().await).to_owned(),
        code(&client.reply().await).to_owned(),
    ];
    assert_eq!(codes, ["250", "250", "250", "250", "354"]);
    client
        .send(b"Subject: x\r\n\r\n.leading dot\r\n..\r\nend\r\n.\r\nNOOP\r\nQUIT\r\n")
        .await;
    assert_eq!(code(&client.reply().await), "250");
    assert_eq!(code(&client.reply().await), "250");
    assert_eq!(code(&client.reply().await), "221");
    assert!(client.closed().await);

    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received[0].from, "a@example.com");
    assert_eq!(received[0].recipients, ["b@example.com", "c@example.com"]);
    assert_eq!(
        received[0].data,
        b"Subject: x\r\n\r\nleading dot\r\n.\r\nend\r\n"
    );
    assert_eq!(received[0].connection, 1);
}

#[tokio::test]
async fn commands_out_of_order_are_refused() {
    let sink = SmtpSink::start().await;
    let mut client = Client::connect(&sink).await;
    assert_eq!(
        code(&client.command("MAIL FROM:<a@example.com>").await),
        "503"
    );
    client.command("EHLO c").await;
    assert_eq!(
        code(&client.command("RCPT TO:<b@example.com>").await),
        "503"
    );
    assert_eq!(code(&client.command("DATA").await), "503");
    assert_eq!(
        code(&client.command("MAIL FROM:<a@example.com>").await),
        "250"
    );
    assert_eq!(
        code(&client.command("MAIL FROM:<a@example.com>").await),
        "503"
    );
    assert_eq!(code(&client.command("DATA").await), "554");
    assert_eq!(code(&client.command("RCPT TO:b@example.com").await), "501");
    assert_eq!(code(&client.command("RSET").await), "250");
    // RSET ended the transaction.
    assert_eq!(
        code(&client.command("RCPT TO:<b@example.com>").await),
        "503"
    );
    assert_eq!(code(&client.command("VRFY someone").await), "252");
    assert_eq!(code(&client.command("STARTTLS").await), "500");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn bad_input_gets_errors_not_a_crash() {
    let sink = SmtpSink::start().await;
    let mut client = Client::connect(&sink).await;
    client.send(b"\xff\xfe\x00garbage\r\n").await;
    assert_eq!(code(&client.reply().await), "500");
    client.send(&vec![b'A'; 100_000]).await;
    client.send(b"\r\n").await;
    assert_eq!(code(&client.reply().await), "500");
    assert_eq!(code(&client.command("").await), "500");
    assert_eq!(code(&client.command("AUTH PLAIN !!!").await), "503");
    client.command("EHLO c").await;
    assert_eq!(code(&client.command("AUTH PLAIN !!!").await), "501");
    assert_eq!(code(&client.command("AUTH CRAM-MD5").await), "504");
    // Still serving.
    assert_eq!(code(&client.command("NOOP").await), "250");
    // A client that leaves mid-line does not disturb the next one.
    client.send(b"MAIL FROM:<half").await;
    drop(client);
    let mut next = Client::connect(&sink).await;
    assert_eq!(code(&next.command("NOOP").await), "250");
}

#[tokio::test]
async fn auth_plain_records_the_login() {
    let sink = SmtpSink::start().await;
    let mut client = Client::connect(&sink).await;
    client.command("EHLO c").await;
    // "\0user\0pass", with and without an initial response.
    assert_eq!(
        code(&client.command("AUTH PLAIN AHVzZXIAcGFzcw==").await),
        "235"
    );
    assert_eq!(code(&client.command("AUTH PLAIN").await), "334");
    assert_eq!(code(&client.command("AHVzZXIAcGFzcw==").await), "235");
    assert_eq!(
        sink.logins(),
        [
            ("user".to_owned(), "pass".to_owned()),
            ("user".to_owned(), "pass".to_owned())
        ]
    );
}

#[tokio::test]
async fn faults_reply_close_or_hang() {
    let sink = SmtpSink::start_with(SinkBehavior::reject_rcpt("550 5.1.1 no such user")).await;
    let mut client = Client::connect(&sink).await;
    client.command("EHLO c").await;
    client.command("MAIL FROM:<a@example.com>").await;
    assert_eq!(
        client.command("RCPT TO:<b@example.com>").await,
        "550 5.1.1 no such user\r\n"
    );

    sink.set_behavior(SinkBehavior::reject_data("451 4.3.0 try later"));
    client.command("RCPT TO:<b@example.com>").await;
    client.command("DATA").await;
    assert_eq!(code(&client.command("body\r\n.").await), "451");
    assert!(
        sink.messages().is_empty(),
        "a rejected message is not recorded"
    );

    sink.set_behavior(SinkBehavior::close_after_data());
    client.command("MAIL FROM:<a@example.com>").await;
    client.command("RCPT TO:<b@example.com>").await;
    client.command("DATA").await;
    client.send(b"body\r\n.\r\n").await;
    assert!(client.closed().await);
    assert_eq!(
        sink.wait_for(1, WAIT).await.len(),
        1,
        "recorded, unanswered"
    );
}

#[tokio::test]
async fn a_silent_sink_never_greets() {
    let sink = SmtpSink::start_with(SinkBehavior::silent()).await;
    let mut stream = TcpStream::connect(sink.addr()).await.unwrap();
    stream.write_all(b"EHLO c\r\n").await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    assert!(read.is_err(), "no greeting, no reply");
    assert_eq!(sink.connections_total(), 1);
}

#[tokio::test]
async fn counts_connections_and_stops_when_dropped() {
    let sink = SmtpSink::start().await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Client::connect(&sink).await);
    }
    assert_eq!(sink.connections_total(), 3);
    assert_eq!(sink.open_connections(), 3);
    assert_eq!(sink.max_concurrent_connections(), 3);
    clients.truncate(1);
    tokio::time::timeout(WAIT, async {
        while sink.open_connections() > 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the sink notices closed connections");
    let fourth = Client::connect(&sink).await;
    assert_eq!(sink.connections_total(), 4);
    assert_eq!(sink.max_concurrent_connections(), 3);
    drop(fourth);

    let addr = sink.addr();
    drop(sink);
    assert!(clients[0].closed().await, "open connections are closed");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}
