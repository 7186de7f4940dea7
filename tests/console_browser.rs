//! The operator console in a real browser: headless Chromium, driven over
//! WebDriver by `chromedriver`, against the real server started in-process on SQLite and
//! an outbox.
//!
//! Needs Debian's `chromium` and `chromium-driver` (or `CHROMEDRIVER` / `CHROMIUM` naming
//! the binaries). Without them each test prints why and passes, except under CI
//! (`CI=true`), where a missing browser is a failure.
//!
//! `CARTLOOP_SCREENSHOTS=1` also writes the README's screenshots to `docs/screenshots/`.
//!
//! The sign-in scenarios run the server as the binary does (`tests/common`: its settings,
//! `CARTLOOP_API_TOKEN` set) and make their stores, operators and conversations through
//! the API, as a deployment would.
//!
//! Every document the browser opens counts the Content-Security-Policy's refusals (a
//! listener installed before any of the page's own code runs): each scenario ends with
//! none, so an inline script or style added to the console fails here, and with a probe
//! showing that the policy does refuse an inline script.

#![cfg(all(feature = "server", feature = "sqlite"))]

mod common;

use cartloop::core::active_hours::ActiveHours;
use cartloop::core::rules::Rules;
use cartloop::server::Server;
use chrono::{Timelike, Utc};
use common::TestServer;
use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use std::error::Error;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

/// The demo conversation of the original task: operator 24 writes to John Carter.
const CLIENT_ZONE: chrono_tz::Tz = chrono_tz::America::Chicago;
/// How long the page may take to show what a step expects.
const PATIENCE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_previews_sends_and_cancels_in_the_browser() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let window = closed_window();
    let app = App::start(window.hours, None).await;
    let client = browser.open().await;
    let mut outcome = chat_with_john(&client, &app, &window).await;
    if outcome.is_ok() {
        outcome = the_pages_keep_to_their_policy(&client, &app).await;
    }
    finish(client, outcome).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_asks_for_the_api_token_once() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let app = App::start(closed_window().hours, Some("console-test-token")).await;
    let client = browser.open().await;
    let mut outcome = sign_in(&client, &app).await;
    if outcome.is_ok() {
        outcome = no_csp_violations(&client, "after signing in").await;
    }
    finish(client, outcome).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_writes_as_itself_and_signs_out() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let (server, _dir) = token_server().await;
    let shop = Shop::open(&server).await;
    let client = browser.open().await;
    let mut outcome = operator_session(&client, &server, &shop).await;
    if outcome.is_ok() {
        outcome = no_csp_violations(&client, "after signing out").await;
    }
    finish(client, outcome).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_reassigns_a_conversation() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let (server, _dir) = token_server().await;
    let shop = Shop::open(&server).await;
    let client = browser.open().await;
    let mut outcome = reassign(&client, &server, &shop).await;
    if outcome.is_ok() {
        outcome = no_csp_violations(&client, "after reassigning").await;
    }
    finish(client, outcome).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_later_says_why_it_waits() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let (server, _dir) = token_server().await;
    let shop = Shop::open(&server).await;
    let client = browser.open().await;
    let mut outcome = send_later(&client, &server, &shop).await;
    if outcome.is_ok() {
        outcome = no_csp_violations(&client, "after sending later").await;
    }
    finish(client, outcome).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_posted_through_the_api_shows_at_once_in_the_open_conversation() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let (server, _dir) = token_server().await;
    let shop = Shop::open(&server).await;
    let client = browser.open().await;
    let mut outcome = live_chat(&client, &server, &shop).await;
    if outcome.is_ok() {
        outcome = no_csp_violations(&client, "after the live chat").await;
    }
    finish(client, outcome).await;
    server.stop().await;
}

/// Dana has Claire's conversation open and follows the event stream: a chat posted
/// through the API shows within a second, with no reload and no polling meanwhile (the
/// page fetches nothing while nothing happens), and once more after the stream is
/// dropped and reopened.
async fn live_chat(client: &Client, server: &TestServer, shop: &Shop) -> Result<()> {
    sign_in_as(client, server, DANA).await?;
    wait_for(
        client,
        &format!("[data-testid=conversation-{}]", shop.conversation),
    )
    .await?
    .click()
    .await?;
    wait_for(client, "[data-testid=compose-input]").await?;
    eventually("the event stream open", || async {
        let open = client
            .execute(
                "return document.getElementById('layout').dataset.stream || '';",
                vec![],
            )
            .await?;
        Ok((open.as_str() == Some("open")).then_some(()))
    })
    .await?;
    // Marks the document: a reload would lose the mark.
    client
        .execute("window.__sameDocument = true;", vec![])
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = api_fetches_during(client, Duration::from_secs(4)).await?;
    check(
        idle.is_empty(),
        format!("no request while nothing happens: {idle:?}"),
    )?;

    for (round, payload) in ["Votre colis est parti", "Il arrive demain"]
        .into_iter()
        .enumerate()
    {
        let before = chats(client).await?.len();
        let (status, answer) = server
            .post(
                "/chat/",
                &serde_json::json!({
                    "conversationId": shop.conversation,
                    "chat": {"payload": payload, "userId": shop.dana}
                }),
            )
            .await;
        check(
            status == 201,
            format!("POST /chat/ answered {status}: {answer}"),
        )?;
        let posted = Instant::now();
        let deadline = posted + Duration::from_secs(1);
        loop {
            let texts = chat_texts(client).await?;
            if texts.len() == before + 1 && texts.iter().any(|t| t.contains(payload)) {
                break;
            }
            check(
                Instant::now() < deadline,
                format!("round {round}: the chat shown within 1 s of its POST: {texts:?}"),
            )?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let same = client
            .execute("return window.__sameDocument === true;", vec![])
            .await?;
        check(same.as_bool() == Some(true), "the page was not reloaded")?;
        if round == 0 {
            // The stream drops (a proxy's timeout, a server restart): the page reopens it.
            client
                .execute(
                    "window.dispatchEvent(new Event('cartloop:drop-stream'));",
                    vec![],
                )
                .await?;
            eventually("the event stream reopened", || async {
                let open = client
                    .execute(
                        "return document.getElementById('layout').dataset.stream || '';",
                        vec![],
                    )
                    .await?;
                Ok((open.as_str() == Some("open")).then_some(()))
            })
            .await?;
        }
    }
    Ok(())
}

/// The API requests the page makes during `window` (its `fetch`es, as the browser's
/// resource timing lists them), the event stream's own request left out.
async fn api_fetches_during(client: &Client, window: Duration) -> Result<Vec<String>> {
    client
        .execute("performance.clearResourceTimings();", vec![])
        .await?;
    tokio::time::sleep(window).await;
    let names = client
        .execute(
            "return performance.getEntriesByType('resource')\
               .filter((e) => e.initiatorType === 'fetch' && !new URL(e.name).pathname.startsWith('/events/'))\
               .map((e) => new URL(e.name).pathname);",
            vec![],
        )
        .await?;
    Ok(names
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

async fn chat_texts(client: &Client) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    for chat in chats(client).await? {
        texts.push(chat.text().await?);
    }
    Ok(texts)
}

/// Dana signs in (after a wrong password, and next to a colleague locked out), sees her
/// store's conversation only, writes as herself, cannot read the session cookie, and
/// signs out.
async fn operator_session(client: &Client, server: &TestServer, shop: &Shop) -> Result<()> {
    set_viewport(client, 1280, 800).await?;
    client.goto(&server_url(server, "/console/")).await?;
    wait_for(client, "[data-testid=signin-view]").await?;
    screenshot(client, "sign-in").await?;

    // A wrong password: said in words, and the view stays.
    type_credentials(client, DANA, "not her password").await?;
    let error = wait_for(client, "[data-testid=login-error]").await?;
    eventually("the wrong password's error", || async {
        Ok(error
            .text()
            .await?
            .contains("Wrong email or password")
            .then_some(()))
    })
    .await?;

    // Five failures lock an email out; the page says how long from Retry-After.
    for _ in 0..5 {
        let (status, _) = server
            .send(
                server
                    .client
                    .post(server_url(server, "/login"))
                    .json(&serde_json::json!({"email": LEE, "password": "not his password"})),
            )
            .await;
        check(status == 401, format!("a failed sign-in answered {status}"))?;
    }
    type_credentials(client, LEE, PASSWORD).await?;
    eventually("the lockout's wait", || async {
        let text = error.text().await?;
        Ok(text.contains("Try again in 15 minutes").then_some(()))
    })
    .await?;

    // The right password: who is signed in, and only the store's conversations.
    type_credentials(client, DANA, PASSWORD).await?;
    let who = wait_for(client, "[data-testid=who]").await?;
    eventually("who is signed in", || async {
        let text = who.text().await?;
        Ok((text.contains("Dana Durand")
            && text.contains("operator")
            && text.contains("Paris Shop"))
        .then_some(()))
    })
    .await?;
    let own = wait_for(
        client,
        &format!("[data-testid=conversation-{}]", shop.conversation),
    )
    .await?;
    let listed = client
        .find_all(Locator::Css("[data-testid=conversation-list] .conv-item"))
        .await?;
    check(
        listed.len() == 1,
        format!("one conversation listed, not {}", listed.len()),
    )?;
    let other = client
        .find_all(Locator::Css(&format!(
            "[data-testid=conversation-{}]",
            shop.other_conversation
        )))
        .await?;
    check(
        other.is_empty(),
        "the other store's conversation is not listed",
    )?;
    let import = client
        .find(Locator::Css("[data-testid=import-demo]"))
        .await?;
    check(
        !import.is_displayed().await?,
        "only an admin loads the demo",
    )?;

    // The session cookie is there (the API answers) but no script reads it.
    let cookie = client.execute("return document.cookie;", vec![]).await?;
    check(
        !cookie
            .as_str()
            .unwrap_or_default()
            .contains("cartloop_session"),
        format!("document.cookie shows the session: {cookie}"),
    )?;
    check(
        page_status(client, "/me").await? == 200,
        "signed in, /me answers",
    )?;

    // Writing as herself: no userId sent, the chat is hers.
    own.click().await?;
    let input = wait_for(client, "[data-testid=compose-input]").await?;
    let reassign = client.find(Locator::Css("[data-testid=reassign]")).await?;
    check(
        !reassign.is_displayed().await?,
        "an operator does not reassign",
    )?;
    input.send_keys("Bonjour << username >>").await?;
    wait_for(client, "[data-testid=preview-text]").await?;
    client
        .find(Locator::Css("[data-testid=send-button]"))
        .await?
        .click()
        .await?;
    let written = eventually("the chat written", || async {
        Ok(chats(client).await?.into_iter().next())
    })
    .await?;
    check(
        written.attr("data-author").await?.as_deref() == Some(shop.dana.to_string().as_str()),
        "the chat's author is Dana",
    )?;
    let author = written
        .find(Locator::Css("[data-testid=chat-author]"))
        .await?
        .text()
        .await?;
    check(
        author.contains("Dana Durand"),
        format!("author shown: {author:?}"),
    )?;
    let id = written.attr("data-testid").await?.unwrap_or_default();
    let (_, chat) = server
        .get(&format!("/chat/{}/", id.trim_start_matches("chat-")))
        .await;
    check(
        chat["userId"] == shop.dana,
        format!("the stored chat's author: {chat}"),
    )?;
    screenshot(client, "signed-in").await?;

    // Signing out: the sign-in view, and the API no longer knows the browser.
    client
        .find(Locator::Css("[data-testid=sign-out]"))
        .await?
        .click()
        .await?;
    wait_for(client, "[data-testid=login-email]").await?;
    let layout = client.find(Locator::Css("#layout")).await?;
    check(!layout.is_displayed().await?, "the conversations are gone")?;
    check(
        page_status(client, "/me").await? == 401,
        "after signing out /me answers 401",
    )?;
    Ok(())
}

/// Max, a manager, gives Dana's conversation to Lee.
async fn reassign(client: &Client, server: &TestServer, shop: &Shop) -> Result<()> {
    sign_in_as(client, server, MAX).await?;
    wait_for(
        client,
        &format!("[data-testid=conversation-{}]", shop.conversation),
    )
    .await?
    .click()
    .await?;
    let select = wait_for(client, "[data-testid=reassign-select]").await?;
    eventually("Dana as the conversation's operator", || async {
        let value = select.prop("value").await?;
        Ok((value.as_deref() == Some(shop.dana.to_string().as_str())).then_some(()))
    })
    .await?;
    let options = client
        .find_all(Locator::Css("[data-testid=reassign-select] option"))
        .await?;
    let mut labels = Vec::new();
    for option in &options {
        labels.push(option.text().await?);
    }
    check(
        labels.iter().any(|l| l.contains("Lee Laurent"))
            && !labels.iter().any(|l| l.contains("Otto")),
        format!("the store's operators, and only those: {labels:?}"),
    )?;
    select.select_by_value(&shop.lee.to_string()).await?;
    let path = format!("/conversation/{}/", shop.conversation);
    eventually("the conversation reassigned", || async {
        let (_, conversation) = server.get(&path).await;
        Ok((conversation["operatorId"] == shop.lee).then_some(()))
    })
    .await?;
    let writing_as = client.find(Locator::Css("#compose-as")).await?;
    eventually("the box writes as Lee", || async {
        Ok(writing_as
            .text()
            .await?
            .contains("Lee Laurent")
            .then_some(()))
    })
    .await?;
    Ok(())
}

/// Dana picks a later time: the chat waits, and says so in words.
async fn send_later(client: &Client, server: &TestServer, shop: &Shop) -> Result<()> {
    sign_in_as(client, server, DANA).await?;
    wait_for(
        client,
        &format!("[data-testid=conversation-{}]", shop.conversation),
    )
    .await?
    .click()
    .await?;
    let input = wait_for(client, "[data-testid=compose-input]").await?;
    input
        .send_keys("A la semaine prochaine << username >>")
        .await?;
    // Two hours on, in the browser's own time, as the picker gives it.
    client
        .execute(
            "const at = new Date(Date.now() + 2 * 3600 * 1000);\
             const pad = (n) => String(n).padStart(2, '0');\
             const picker = document.querySelector('[data-testid=send-later]');\
             picker.value = `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}`;\
             picker.dispatchEvent(new Event('change', { bubbles: true }));",
            vec![],
        )
        .await?;
    let preview = wait_for(client, "[data-testid=preview-wait-reason]").await?;
    eventually("the preview's reason", || async {
        Ok(preview
            .text()
            .await?
            .contains("you asked to send it later")
            .then_some(()))
    })
    .await?;
    client
        .find(Locator::Css("[data-testid=send-button]"))
        .await?
        .click()
        .await?;
    let reason = wait_for(
        client,
        "[data-testid=chat-list] [data-testid=chat-wait-reason]",
    )
    .await?;
    let text = reason.text().await?;
    check(
        text.starts_with("waits for ")
            && text.contains("Europe/Paris")
            && text.ends_with("you asked to send it later"),
        format!("the chat's reason: {text:?}"),
    )?;
    let waiting = chats(client).await?;
    check(
        waiting.len() == 1 && waiting[0].attr("data-status").await?.as_deref() == Some("new"),
        "one chat, waiting",
    )?;
    screenshot(client, "send-later").await?;
    Ok(())
}

/// Fills the sign-in form and submits it with Enter.
async fn type_credentials(client: &Client, email: &str, password: &str) -> Result<()> {
    let email_input = wait_for(client, "[data-testid=login-email]").await?;
    email_input.clear().await?;
    email_input.send_keys(email).await?;
    let password_input = client
        .find(Locator::Css("[data-testid=login-password]"))
        .await?;
    password_input.clear().await?;
    password_input.send_keys(&format!("{password}\n")).await?;
    Ok(())
}

async fn sign_in_as(client: &Client, server: &TestServer, email: &str) -> Result<()> {
    set_viewport(client, 1280, 800).await?;
    client.goto(&server_url(server, "/console/")).await?;
    type_credentials(client, email, PASSWORD).await?;
    wait_for(client, "[data-testid=who]").await?;
    Ok(())
}

/// The status the page's own `fetch(path)` gets (with the browser's cookies).
async fn page_status(client: &Client, path: &str) -> Result<u64> {
    let status = client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch(arguments[0], { cache: 'no-store' }).then((r) => done(r.status), () => done(0));",
            vec![serde_json::json!(path)],
        )
        .await?;
    status
        .as_u64()
        .ok_or_else(|| format!("no status from the page: {status}").into())
}

// ------------------------------------------------------------------ a deployment with stores

const TOKEN: &str = "browser-deployment-token";
const PASSWORD: &str = "correct horse battery";
const DANA: &str = "dana@paris.example.com";
const LEE: &str = "lee@paris.example.com";
const MAX: &str = "max@paris.example.com";

/// The server as the binary runs it, with a deployment token and always-open hours.
async fn token_server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = common::sqlite_and_outbox(dir.path());
    args.extend(
        ["--api-token", TOKEN, "--active-hours", "00:00-24:00"]
            .iter()
            .map(|a| (*a).to_owned()),
    );
    (TestServer::start(&args).await, dir)
}

fn server_url(server: &TestServer, path: &str) -> String {
    format!("{}{path}", server.base)
}

/// Two stores, made through the API: Paris with Dana (an operator, who has Claire's
/// conversation), Lee (an operator) and Max (a manager); Lyon with Otto and his conversation.
struct Shop {
    dana: i64,
    lee: i64,
    conversation: i64,
    other_conversation: i64,
}

impl Shop {
    async fn open(server: &TestServer) -> Shop {
        let paris = made(server, "/stores/", serde_json::json!({"name": "Paris Shop", "timeZone": "Europe/Paris", "senderEmail": "shop@paris.example.com"}), "storeId").await;
        let lyon = made(server, "/stores/", serde_json::json!({"name": "Lyon Shop", "timeZone": "Europe/Paris", "senderEmail": "shop@lyon.example.com"}), "storeId").await;
        let operator = |name: &str, store: i64, email: &str, role: &str| serde_json::json!({"name": name, "storeId": store, "group": "sales", "email": email, "password": PASSWORD, "role": role});
        let dana = made(
            server,
            "/operators/",
            operator("Dana Durand", paris, DANA, "operator"),
            "operatorId",
        )
        .await;
        let lee = made(
            server,
            "/operators/",
            operator("Lee Laurent", paris, LEE, "operator"),
            "operatorId",
        )
        .await;
        made(
            server,
            "/operators/",
            operator("Max Martin", paris, MAX, "manager"),
            "operatorId",
        )
        .await;
        let otto = made(
            server,
            "/operators/",
            operator("Otto Other", lyon, "otto@lyon.example.com", "operator"),
            "operatorId",
        )
        .await;
        let claire = made(server, "/clients/", serde_json::json!({"name": "Claire Petit", "email": "claire@example.com", "timeZone": "Europe/Paris", "storeId": paris}), "clientId").await;
        let bruno = made(server, "/clients/", serde_json::json!({"name": "Bruno Other", "email": "bruno@example.com", "timeZone": "Europe/Paris", "storeId": lyon}), "clientId").await;
        let conversation = made(
            server,
            "/conversations/",
            serde_json::json!({"storeId": paris, "operatorId": dana, "clientId": claire}),
            "conversationId",
        )
        .await;
        let other_conversation = made(
            server,
            "/conversations/",
            serde_json::json!({"storeId": lyon, "operatorId": otto, "clientId": bruno}),
            "conversationId",
        )
        .await;
        Shop {
            dana,
            lee,
            conversation,
            other_conversation,
        }
    }
}

/// POSTs `body` with the deployment token and returns the new thing's `id_field`.
async fn made(server: &TestServer, path: &str, body: serde_json::Value, id_field: &str) -> i64 {
    let (status, answer) = server.post(path, &body).await;
    assert_eq!(status, 201, "POST {path}: {answer}");
    answer[id_field]
        .as_i64()
        .unwrap_or_else(|| panic!("POST {path} gave no {id_field}: {answer}"))
}

/// A new operator's first session, on a fresh database.
async fn chat_with_john(client: &Client, app: &App, window: &Window) -> Result<()> {
    set_viewport(client, 1280, 800).await?;
    client.goto(&app.url("/")).await?;

    // A newcomer's first screen: no data yet, one button to load the demo.
    let import = wait_for(client, "[data-testid=import-demo]").await?;
    screenshot(client, "empty").await?;
    import.click().await?;
    let john = wait_for(client, "[data-testid=conversation-1]").await?;
    eventually("John Carter in the list", || async {
        Ok(john.text().await?.contains("John Carter").then_some(()))
    })
    .await?;
    screenshot(client, "list").await?;

    // Conversation 1: the seed's three chats, oldest first, with their statuses.
    john.click().await?;
    let title = wait_for(client, "[data-testid=conversation-title]").await?;
    eventually("the conversation's title", || async {
        Ok((title.text().await? == "John Carter").then_some(()))
    })
    .await?;
    let statuses = eventually("the seed's three chats", || async {
        let statuses = chat_statuses(client).await?;
        Ok((statuses.len() == 3).then_some(statuses))
    })
    .await?;
    check(
        statuses == ["sent", "received", "sent"],
        format!("seed statuses: {statuses:?}"),
    )?;
    let first = client
        .find(Locator::Css(
            "[data-testid=chat-1] [data-testid=chat-payload]",
        ))
        .await?
        .text()
        .await?;
    check(
        first.starts_with("Hi << username >>"),
        format!("first chat: {first:?}"),
    )?;
    screenshot(client, "conversation").await?;

    // An invalid payload: the preview names the error and marks the character.
    let input = client
        .find(Locator::Css("[data-testid=compose-input]"))
        .await?;
    input.send_keys("Merci, café?").await?;
    let mark = wait_for(client, "[data-testid=preview-error-mark]").await?;
    check(mark.text().await? == "é", "the marked character is the é")?;
    let message = client
        .find(Locator::Css("[data-testid=preview-error]"))
        .await?
        .text()
        .await?;
    check(
        message.contains("position 10"),
        format!("preview error: {message:?}"),
    )?;
    let invalid = input.attr("aria-invalid").await?;
    check(
        invalid.as_deref() == Some("true"),
        "the text box is marked invalid",
    )?;
    screenshot(client, "preview-error").await?;

    // A valid one: the text John receives, and when it goes out.
    input.clear().await?;
    input
        .send_keys("Thanks << username >>, your code is << discountCode >>")
        .await?;
    let preview = wait_for(client, "[data-testid=preview-text]").await?;
    eventually("the rendered preview", || async {
        let text = preview.text().await?;
        Ok((text == "Thanks John Carter, your code is PROMO50").then_some(()))
    })
    .await?;
    let when = client
        .find(Locator::Css("[data-testid=preview-send-at]"))
        .await?
        .text()
        .await?;
    check(
        when.contains(&window.expected_phrase),
        format!(
            "preview send time {when:?} lacks {:?}",
            window.expected_phrase
        ),
    )?;
    screenshot(client, "preview").await?;

    // Sent: it appears as `new`, with its send time, and the box empties.
    client
        .find(Locator::Css("[data-testid=send-button]"))
        .await?
        .click()
        .await?;
    // Ids come after the demo's, whatever they are: the new chat is the fourth shown.
    let sent = eventually("the sent chat", || async {
        Ok(chats(client).await?.into_iter().nth(3))
    })
    .await?;
    let sent_id = sent.attr("data-testid").await?.unwrap_or_default();
    check(
        sent.attr("data-status").await?.as_deref() == Some("new"),
        "the new chat's status",
    )?;
    let send_at = sent
        .find(Locator::Css("[data-testid=chat-send-at]"))
        .await?
        .text()
        .await?;
    check(
        send_at.contains(&window.expected_phrase),
        format!(
            "chat send time {send_at:?} lacks {:?}",
            window.expected_phrase
        ),
    )?;
    check(
        input.prop("value").await?.as_deref() == Some(""),
        "the box is emptied",
    )?;
    eventually("the pending count in the list", || async {
        let badge = client
            .find_all(Locator::Css(
                "[data-testid=conversation-1] [data-testid=pending-count]",
            ))
            .await?;
        Ok(match badge.first() {
            Some(badge) => (badge.text().await? == "1").then_some(()),
            None => None,
        })
    })
    .await?;
    screenshot(client, "sent").await?;

    // Cancelled: the page shows it without a reload, and the pending count goes.
    sent.find(Locator::Css("[data-testid=cancel-chat]"))
        .await?
        .click()
        .await?;
    let sent_css = format!("[data-testid={sent_id}]");
    eventually("the chat cancelled", || async {
        let chat = client.find(Locator::Css(&sent_css)).await?;
        Ok((chat.attr("data-status").await?.as_deref() == Some("cancelled")).then_some(()))
    })
    .await?;
    eventually("no pending count", || async {
        let badges = client
            .find_all(Locator::Css(
                "[data-testid=conversation-1] [data-testid=pending-count]",
            ))
            .await?;
        Ok(badges.is_empty().then_some(()))
    })
    .await?;

    // A chat written elsewhere (another operator's tab, the API) shows up from the stream.
    let response = reqwest::Client::new()
        .post(app.url("/chat/"))
        .json(&serde_json::json!({
            "conversationId": 1,
            "chat": {"payload": "See you soon << username >>", "userId": 24}
        }))
        .send()
        .await?;
    check(
        response.status() == reqwest::StatusCode::CREATED,
        format!("POST /chat/ answered {}", response.status()),
    )?;
    eventually("the chat written through the API", || async {
        Ok((chats(client).await?.len() == 5).then_some(()))
    })
    .await?;

    // On a phone the conversation takes the whole screen and Esc goes back to the list.
    set_viewport(client, 390, 844).await?;
    screenshot(client, "phone").await?;
    client
        .find(Locator::Css("[data-testid=compose-input]"))
        .await?
        .send_keys(&char::from(fantoccini::key::Key::Escape).to_string())
        .await?;
    eventually("the list after Esc", || async {
        let list = client
            .find(Locator::Css("[data-testid=conversation-list]"))
            .await?;
        Ok(list.is_displayed().await?.then_some(()))
    })
    .await?;
    let focused = client.active_element().await?.attr("data-testid").await?;
    check(
        focused.as_deref() == Some("conversation-1"),
        format!("focus after Esc: {focused:?}"),
    )?;
    Ok(())
}

/// With a token configured, the sign-in view takes it too, says when it is wrong, and
/// keeps it for the rest of the browser session.
async fn sign_in(client: &Client, app: &App) -> Result<()> {
    client.goto(&app.url("/console/")).await?;
    let input = wait_for(client, "[data-testid=token-input]").await?;
    input.send_keys("not-the-token\n").await?;
    let error = wait_for(client, "[data-testid=token-error]").await?;
    eventually("the rejection", || async {
        Ok(error.text().await?.contains("did not accept").then_some(()))
    })
    .await?;
    input.send_keys("console-test-token\n").await?;
    wait_for(client, "[data-testid=import-demo]").await?;

    let who = wait_for(client, "[data-testid=who]").await?;
    check(
        who.text().await?.contains("admin"),
        "the token's holder is shown as the admin",
    )?;

    client.refresh().await?;
    wait_for(client, "[data-testid=import-demo]").await?;
    let view = client
        .find(Locator::Css("[data-testid=signin-view]"))
        .await?;
    check(
        !view.is_displayed().await?,
        "the token is asked once per session",
    )?;
    Ok(())
}

/// The console (after a whole scenario) and an unsubscribe page ran without a refusal of
/// their policy; and the policy is enforced: an inline script is refused.
async fn the_pages_keep_to_their_policy(client: &Client, app: &App) -> Result<()> {
    no_csp_violations(client, "the console, after the scenario").await?;

    // The page a link that is not valid shows: its one inline style applies (allowed by
    // its hash), nothing is refused.
    client.goto(&app.url("/unsubscribe/u27-0000")).await?;
    wait_for(client, "h1").await?;
    let width = client
        .execute("return getComputedStyle(document.body).maxWidth;", vec![])
        .await?;
    check(
        width.as_str() == Some("512px"),
        format!("the unsubscribe page's style applies: max-width {width}"),
    )?;
    no_csp_violations(client, "the unsubscribe page").await?;

    // The probe: an inline script the console's policy must refuse, and the counter sees.
    client.goto(&app.url("/console/")).await?;
    wait_for(client, "[data-testid=conversation-1]").await?;
    no_csp_violations(client, "the console, reloaded").await?;
    client
        .execute(
            "const s = document.createElement('script');\
             s.textContent = 'window.inlineRan = true;';\
             document.body.append(s);",
            vec![],
        )
        .await?;
    let refused = eventually("the inline script refused", || async {
        let seen = csp_violations(client).await?;
        Ok((!seen.is_empty()).then_some(seen))
    })
    .await?;
    check(
        refused.len() == 1 && refused[0].starts_with("script-src"),
        format!("one refusal of the probe: {refused:?}"),
    )?;
    let ran = client
        .execute("return window.inlineRan === true;", vec![])
        .await?;
    check(
        ran == serde_json::json!(false),
        "the inline script did not run",
    )?;
    Ok(())
}

/// Installed in every new document before its own scripts: records each refusal of the
/// policy as `<directive> <blocked> <file>:<line>`.
const CSP_COUNTER: &str = "window.cspViolations = [];\
    document.addEventListener('securitypolicyviolation', (e) => {\
      window.cspViolations.push(`${e.effectiveDirective} ${e.blockedURI || 'inline'} ${e.sourceFile}:${e.lineNumber}`);\
    });";

/// The refusals the current document recorded.
async fn csp_violations(client: &Client) -> Result<Vec<String>> {
    let seen = client
        .execute("return window.cspViolations;", vec![])
        .await?;
    // No array means the counter was not installed: the check would prove nothing.
    let seen = seen
        .as_array()
        .ok_or_else(|| format!("no CSP violation counter on the page: {seen}"))?;
    Ok(seen
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect())
}

async fn no_csp_violations(client: &Client, when: &str) -> Result<()> {
    let seen = csp_violations(client).await?;
    check(
        seen.is_empty(),
        format!("the policy refused something ({when}): {seen:?}"),
    )
}

/// A Chrome DevTools command, through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    command: &'static str,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> std::result::Result<url::Url, url::ParseError> {
        let session = session_id.expect("a session is open");
        base_url.join(&format!("session/{session}/goog/cdp/execute"))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = serde_json::json!({ "cmd": self.command, "params": self.params });
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

// ------------------------------------------------------------------------------ the server

/// A delivery window that is closed now in John's zone and opens at a whole hour, so the
/// message stays `new` (cancellable) and its send time is known in advance.
struct Window {
    hours: ActiveHours,
    /// What the page must say about the send time: `at 09:00 in America/Chicago — in`.
    expected_phrase: String,
}

fn closed_window() -> Window {
    let hour = Utc::now().with_timezone(&CLIENT_ZONE).hour();
    // Three hours ahead leaves the test minutes of margin; hours 1–3 are avoided because
    // DST changes there can shift a window start.
    let start = (3..24)
        .map(|ahead| (hour + ahead) % 24)
        .find(|h| !(1..=3).contains(h))
        .expect("some hour is outside 01:00-03:59");
    let hours = format!("{start:02}:00-{:02}:00", start + 1)
        .parse()
        .expect("a valid window");
    Window {
        hours,
        expected_phrase: format!("at {start:02}:00 in {} — in ", CLIENT_ZONE.name()),
    }
}

/// The server on a loopback port, its data in a temporary directory.
struct App {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl App {
    async fn start(active_hours: ActiveHours, token: Option<&str>) -> App {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("cartloop.db").display());
        let storage = cartloop::sqlx::connect(&url).await.expect("SQLite storage");
        let mailer = cartloop::server::outbox_mailer(dir.path().join("outbox")).expect("outbox");
        let rules = Rules {
            active_hours,
            ..Rules::default()
        };
        let server = Server::builder(storage, mailer)
            .rules(rules)
            .api_token(token.map(str::to_owned))
            .build()
            .await
            .expect("server");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port");
        let address = listener.local_addr().expect("bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            server.serve(listener, shutdown).await.expect("server runs");
        });
        App {
            address,
            stop,
            task,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server stops cleanly");
    }
}

// ----------------------------------------------------------------------------- the browser

/// Chromium and its WebDriver, when installed.
struct Browser {
    driver: PathBuf,
    chromium: PathBuf,
}

impl Browser {
    /// The binaries, or `None` after printing why the test does not run (a failure under CI).
    fn find() -> Option<Browser> {
        let driver = locate("CHROMEDRIVER", &["chromedriver"]);
        let chromium = locate(
            "CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        match (driver, chromium) {
            (Some(driver), Some(chromium)) => Some(Browser { driver, chromium }),
            _ => {
                let why = "chromedriver or chromium not found (apt-get install chromium chromium-driver, or set CHROMEDRIVER and CHROMIUM)";
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("{why}");
                }
                eprintln!("skipping the browser test: {why}");
                None
            }
        }
    }

    /// Starts chromedriver on a port of its choosing and opens a fresh headless session.
    async fn open(&self) -> Session {
        let mut driver = Command::new(&self.driver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let stdout = driver.stdout.take().expect("piped stdout");
        let guard = Driver(driver);
        let port = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let port = lines.by_ref().map_while(|l| l.ok()).find_map(|line| {
                line.split("started successfully on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim_end_matches('.').trim().parse::<u16>().ok())
            });
            // Keep reading so chromedriver never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            port
        })
        .await
        .expect("reading chromedriver's output")
        .expect("chromedriver reports its port");

        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1280,800".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".to_owned(), "chrome".into());
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({ "binary": self.chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        client
            .issue_cmd(Cdp {
                command: "Page.addScriptToEvaluateOnNewDocument",
                params: serde_json::json!({ "source": CSP_COUNTER }),
            })
            .await
            .expect("the CSP violation counter is installed");
        Session {
            client,
            _driver: guard,
            _profile: profile,
        }
    }
}

/// A browser session; the driver process and the profile go with it.
struct Session {
    client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl std::ops::Deref for Session {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Stops chromedriver however the test ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Closes the browser (before the driver goes), then fails the test if the scenario did.
async fn finish(session: Session, outcome: Result<()>) {
    if outcome.is_err() {
        // What the page showed when it went wrong, for whoever reads the failure.
        if let Ok(png) = session.client.screenshot().await {
            let path = std::env::temp_dir().join("cartloop-console-failure.png");
            if std::fs::write(&path, png).is_ok() {
                eprintln!("the page at the failure: {}", path.display());
            }
        }
    }
    let Session {
        client,
        _driver,
        _profile,
    } = session;
    let _ = client.close().await;
    drop(_driver);
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

fn locate(variable: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

// ----------------------------------------------------------------------------- helpers

/// Retries `probe` until it yields a value, or fails after [`PATIENCE`] naming `what`.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        let last = match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if Instant::now() > deadline {
            let cause = last.map(|e| format!(": {e}")).unwrap_or_default();
            return Err(format!("timed out waiting for {what}{cause}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The element `css` selects, once it is on the page and visible.
async fn wait_for(client: &Client, css: &str) -> Result<Element> {
    eventually(css, || async {
        match client.find_all(Locator::Css(css)).await?.into_iter().next() {
            Some(element) if element.is_displayed().await? => Ok(Some(element)),
            _ => Ok(None),
        }
    })
    .await
}

/// The chats shown, oldest first.
async fn chats(client: &Client) -> Result<Vec<Element>> {
    Ok(client
        .find_all(Locator::Css("[data-testid=chat-list] article"))
        .await?)
}

async fn chat_statuses(client: &Client) -> Result<Vec<String>> {
    let mut statuses = Vec::new();
    for chat in chats(client).await? {
        statuses.push(chat.attr("data-status").await?.unwrap_or_default());
    }
    Ok(statuses)
}

fn check(condition: bool, what: impl Into<String>) -> Result<()> {
    if condition {
        Ok(())
    } else {
        Err(format!("check failed: {}", what.into()).into())
    }
}

/// Sizes the window so the page itself (not the window) is `width` × `height`.
async fn set_viewport(client: &Client, width: u32, height: u32) -> Result<()> {
    client.set_window_size(width, height).await?;
    let inner = client
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await?;
    let measured = |i: usize| inner[i].as_u64().unwrap_or(0) as u32;
    let (extra_w, extra_h) = (
        width.saturating_sub(measured(0)),
        height.saturating_sub(measured(1)),
    );
    if extra_w > 0 || extra_h > 0 {
        client
            .set_window_size(width + extra_w, height + extra_h)
            .await?;
    }
    Ok(())
}

/// Writes `docs/screenshots/<name>.png` when `CARTLOOP_SCREENSHOTS=1`.
async fn screenshot(client: &Client, name: &str) -> Result<()> {
    if std::env::var("CARTLOOP_SCREENSHOTS").as_deref() != Ok("1") {
        return Ok(());
    }
    // The pointer rests on the top bar, so no item shows as hovered; a moment lets the
    // page settle so the pictures are stable.
    let park = MouseActions::new("park".to_owned()).then(PointerAction::MoveTo {
        duration: None,
        x: 1.0,
        y: 1.0,
    });
    client.perform_actions(park).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.png")), client.screenshot().await?)?;
    Ok(())
}
