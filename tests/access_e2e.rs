//! SPEC §9 on the server runtime over real HTTP, on SQLite and on PostgreSQL, where two
//! servers share one database: a key revoked on one is refused by the other at once, a
//! sign-out on one ends the session on the other, a lockout counted on one holds on the
//! other, and a password changed on one ends the sessions the other honoured.

mod common;

use common::{sqlite_and_outbox, Backend, TestServer};
use reqwest::header;
use serde_json::{json, Value};

const TOKEN: &str = "e2e-deployment-token";

async fn start(backend: &Backend, outbox: &std::path::Path) -> TestServer {
    let mut args = vec![
        "--database-url".to_owned(),
        backend.database_url(),
        "--api-token".to_owned(),
        TOKEN.to_owned(),
    ];
    if let Backend::Sqlite(_) = backend {
        args.extend(sqlite_and_outbox(outbox).into_iter().skip(2));
    } else {
        args.extend([
            "--outbox-dir".to_owned(),
            outbox.join("outbox").display().to_string(),
        ]);
    }
    TestServer::start(&args).await
}

/// Sends with `auth` as the bearer credential, or with `cookie` (and this server's Origin).
async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    auth: Option<&str>,
    cookie: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.base));
    if let Some(auth) = auth {
        request = request.bearer_auth(auth);
    }
    if let Some(cookie) = cookie {
        request = request
            .header(header::COOKIE, cookie)
            .header(header::ORIGIN, &server.base);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

async fn login(
    server: &TestServer,
    email: &str,
    password: &str,
) -> (u16, Option<String>, reqwest::header::HeaderMap) {
    let body = json!({"email": email, "password": password});
    let (status, _, headers) = call(
        server,
        reqwest::Method::POST,
        "/login",
        None,
        None,
        Some(body),
    )
    .await;
    let cookie = headers
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    (status, cookie, headers)
}

async fn me(server: &TestServer, auth: Option<&str>, cookie: Option<&str>) -> u16 {
    call(server, reqwest::Method::GET, "/me", auth, cookie, None)
        .await
        .0
}

async fn the_rules_hold_across(a: &TestServer, b: &TestServer) {
    let admin = Some(TOKEN);
    let (status, _, _) = call(a, reqwest::Method::GET, "/import_data/", admin, None, None).await;
    assert_eq!(status, 200);

    // A key made on one server opens the other, until it is revoked on the first.
    let body = json!({"name": "shop backend", "role": "integration", "storeId": 1});
    let (status, made, _) = call(
        a,
        reqwest::Method::POST,
        "/api-keys/",
        admin,
        None,
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    assert_eq!(me(b, Some(&key), None).await, 200);
    let (status, _, _) = call(
        b,
        reqwest::Method::GET,
        "/conversation/5/",
        Some(&key),
        None,
        None,
    )
    .await;
    assert_eq!(
        status, 404,
        "store 2's conversation is unknown to store 1's key"
    );
    let path = format!("/api-key/{}/", made["id"]);
    let (status, _, _) = call(a, reqwest::Method::DELETE, &path, admin, None, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        me(b, Some(&key), None).await,
        401,
        "revoked on every server at once"
    );

    // A session made on one server is honoured by the other; signing out there ends it.
    let operator = json!({"name": "Gus", "storeId": 1, "group": "sales", "email": "gus@shop.example", "password": "correct horse battery"});
    let (status, made, _) = call(
        a,
        reqwest::Method::POST,
        "/operators/",
        admin,
        None,
        Some(operator),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let gus = made["operatorId"].as_i64().unwrap();
    let (status, cookie, headers) = login(a, "gus@shop.example", "correct horse battery").await;
    assert_eq!(status, 200);
    let set_cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = cookie.unwrap();
    assert_eq!(me(b, None, Some(&cookie)).await, 200);
    let (status, _, _) = call(
        b,
        reqwest::Method::POST,
        "/logout",
        None,
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        me(a, None, Some(&cookie)).await,
        401,
        "signed out on every server"
    );

    // A password changed on one server ends the sessions the other honoured.
    let (_, first, _) = login(a, "gus@shop.example", "correct horse battery").await;
    let (_, second, _) = login(b, "gus@shop.example", "correct horse battery").await;
    let (first, second) = (first.unwrap(), second.unwrap());
    let change =
        json!({"password": "another long passphrase", "currentPassword": "correct horse battery"});
    let (status, body, _) = call(
        a,
        reqwest::Method::PATCH,
        &format!("/operator/{gus}/"),
        None,
        Some(&first),
        Some(change),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        me(b, None, Some(&second)).await,
        401,
        "the other session ended"
    );
    assert_eq!(
        me(b, None, Some(&first)).await,
        200,
        "the changing session stays"
    );

    // Five failures on one server lock the email out on the other, even for the right
    // password.
    for _ in 0..5 {
        let (status, _, _) = login(a, "GUS@shop.example", "not the password").await;
        assert_eq!(status, 401);
    }
    let (status, cookie, headers) = login(b, "gus@shop.example", "another long passphrase").await;
    assert_eq!(status, 429);
    assert!(cookie.is_none());
    let retry_after: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");

    // The audit log saw it all, on either server.
    let (status, log, _) = call(
        b,
        reqwest::Method::GET,
        "/audit/?limit=500",
        admin,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let actions: Vec<_> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("DELETE /api-key/{id}/", 200),
        ("GET /me", 401),
        ("login", 429),
        ("login", 200),
        ("POST /logout", 200),
        ("PATCH /operator/{id}/", 200),
    ] {
        assert!(
            actions.contains(&(expected.0.to_owned(), expected.1)),
            "{expected:?} in {actions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_holds_on_sqlite() {
    let backend = Backend::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let server = start(&backend, dir.path()).await;
    the_rules_hold_across(&server, &server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_holds_across_two_servers_on_one_postgres() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = start(&backend, dir.path()).await;
    let b = start(&backend, dir.path()).await;
    the_rules_hold_across(&a, &b).await;
    a.stop().await;
    b.stop().await;
}
