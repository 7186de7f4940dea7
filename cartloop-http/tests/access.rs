//! Who may do what, through the router: API keys of every role, operators signing in,
//! stores kept apart, the audit log.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::{app_with, assert_error, json_of, App};
use serde_json::{json, Value};

const TOKEN: &str = "deployment-token";

async fn app() -> App {
    app_with(|state| state.api_token = Some(TOKEN.into())).await
}

/// Sends `method uri` with `auth` as the bearer credential.
async fn call(
    app: &App,
    auth: &str,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {auth}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    json_of(app.call(request).await).await
}

async fn key(app: &App, by: &str, body: Value) -> String {
    let (status, made) = call(app, by, "POST", "/api-keys/", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ck_") && key.len() >= 46, "{key}");
    key
}

fn permission(body: &Value, missing: &str) {
    assert_error(body, "forbidden");
    assert_eq!(body["error"]["permission"], missing, "{body}");
}

#[tokio::test]
async fn an_operator_key_reads_its_store_and_writes_as_itself_where_assigned() {
    let app = app().await;
    let dan = key(
        &app,
        TOKEN,
        json!({"name": "dan", "role": "operator", "storeId": 1, "operatorId": 24}),
    )
    .await;
    // Another store's conversation is unknown; its own store's are readable.
    let (status, body) = call(&app, &dan, "GET", "/conversation/5/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "conversation_not_found");
    let (status, unknown) = call(&app, &dan, "GET", "/conversation/999/", None).await;
    assert_eq!(
        (status, &unknown["error"]["code"]),
        (StatusCode::NOT_FOUND, &body["error"]["code"])
    );
    let (status, _) = call(&app, &dan, "GET", "/conversation/2/", None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "store 1's conversation 3 (Alice's) is readable"
    );
    // Writing: in its own conversation, as itself, userId left out.
    let chat = json!({"conversationId": 1, "chat": {"payload": "Hi << username >>"}});
    let (status, body) = call(&app, &dan, "POST", "/chat/", Some(chat)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, view) = call(
        &app,
        &dan,
        "GET",
        &format!("/chat/{}/", body["chatId"]),
        None,
    )
    .await;
    assert_eq!(view["userId"], 24, "{view}");
    // As someone else, in someone else's, in another store's.
    let as_client = json!({"conversationId": 1, "chat": {"payload": "Hi", "userId": 27}});
    let (status, body) = call(&app, &dan, "POST", "/chat/", Some(as_client)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    permission(&body, "chat.write_as_other");
    let alices = json!({"conversationId": 2, "chat": {"payload": "Hi"}});
    let (status, body) = call(&app, &dan, "POST", "/chat/", Some(alices)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    permission(&body, "conversation.assigned_to_you");
    let elsewhere = json!({"conversationId": 5, "chat": {"payload": "Hi"}});
    let (status, body) = call(&app, &dan, "POST", "/chat/", Some(elsewhere)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "conversation_not_found");
    // Resolving someone else's conversation, reassigning, making keys: not an operator's.
    let (status, body) = call(
        &app,
        &dan,
        "PATCH",
        "/conversation/2/",
        Some(json!({"status": "resolved"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    permission(&body, "conversation.assigned_to_you");
    let (status, body) = call(
        &app,
        &dan,
        "PATCH",
        "/conversation/1/",
        Some(json!({"operatorId": 21})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    permission(&body, "conversation.manage");
    let (status, body) = call(
        &app,
        &dan,
        "POST",
        "/api-keys/",
        Some(json!({"name": "x", "role": "operator", "operatorId": 24})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    permission(&body, "api_key.manage");
    // Lists keep to the store; another store's filter is unknown.
    let (status, list) = call(&app, &dan, "GET", "/conversations/?limit=500", None).await;
    assert_eq!(status, StatusCode::OK);
    let rows = list["conversations"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|row| row["storeId"] == 1), "{list}");
    let (status, _) = call(&app, &dan, "GET", "/conversations/?storeId=2", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Admin routes.
    for (method, uri) in [
        ("GET", "/import_data/"),
        ("GET", "/metrics"),
        ("GET", "/audit/"),
    ] {
        let (status, body) = call(&app, &dan, method, uri, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {body}");
    }
}

#[tokio::test]
async fn managers_run_their_store_and_make_its_keys_only() {
    let app = app().await;
    let boss = key(
        &app,
        TOKEN,
        json!({"name": "boss", "role": "manager", "storeId": 1}),
    )
    .await;
    let integration = key(&app, &boss, json!({"name": "shop", "role": "integration"})).await;
    let (_, me) = call(&app, &integration, "GET", "/me", None).await;
    assert_eq!(
        me,
        json!({"role": "integration", "storeId": 1, "operatorId": null, "name": "shop", "via": "key"})
    );
    let (status, body) = call(
        &app,
        &boss,
        "POST",
        "/api-keys/",
        Some(json!({"name": "root", "role": "admin"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    permission(&body, "admin");
    let (status, body) = call(
        &app,
        &boss,
        "POST",
        "/api-keys/",
        Some(json!({"name": "x", "role": "manager", "storeId": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = call(
        &app,
        &boss,
        "POST",
        "/api-keys/",
        Some(json!({"name": "x", "role": "operator", "operatorId": 22})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "another store's operator: {body}"
    );
    assert_eq!(body["error"]["field"], "operatorId");
    let (status, body) = call(
        &app,
        &boss,
        "POST",
        "/api-keys/",
        Some(json!({"name": "x", "role": "wizard"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "invalid_role");
    assert_eq!(body["error"]["field"], "role");
    let (status, body) = call(
        &app,
        &boss,
        "POST",
        "/api-keys/",
        Some(json!({"name": "x", "role": "operator"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "operatorId", "{body}");
    // Its list is its store's, never a key itself.
    key(
        &app,
        TOKEN,
        json!({"name": "berlin", "role": "manager", "storeId": 2}),
    )
    .await;
    let (status, list) = call(&app, &boss, "GET", "/api-keys/", None).await;
    assert_eq!(status, StatusCode::OK);
    let keys = list["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{list}");
    assert!(
        keys.iter()
            .all(|k| k["storeId"] == 1 && k.get("key").is_none()),
        "{list}"
    );
    let (_, all) = call(&app, TOKEN, "GET", "/api-keys/", None).await;
    assert_eq!(all["keys"].as_array().unwrap().len(), 3);
    // Reassigning within the store, not to another store's operator.
    let (status, body) = call(
        &app,
        &integration,
        "PATCH",
        "/conversation/1/",
        Some(json!({"operatorId": 21})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["operatorId"], 21, "{body}");
    let (status, body) = call(
        &app,
        &integration,
        "PATCH",
        "/conversation/1/",
        Some(json!({"operatorId": 22})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Writing as the client is the deployment's only.
    let as_client = json!({"conversationId": 1, "chat": {"payload": "Hi", "userId": 27}});
    let (status, body) = call(
        &app,
        &integration,
        "POST",
        "/chat/",
        Some(as_client.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    permission(&body, "chat.write_as_client");
    let (status, _) = call(&app, TOKEN, "POST", "/chat/", Some(as_client)).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn operators_are_listed_for_their_store_only() {
    let app = app().await;
    let (status, made) = call(
        &app,
        TOKEN,
        "POST",
        "/operators/",
        Some(json!({"name": "Dana", "storeId": 1, "group": "sales",
            "email": "dana@shop.example.com", "password": "correct horse battery", "role": "manager"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let dan = key(
        &app,
        TOKEN,
        json!({"name": "dan", "role": "operator", "storeId": 1, "operatorId": 24}),
    )
    .await;
    let (status, list) = call(&app, &dan, "GET", "/operators/", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let operators = list["operators"].as_array().unwrap();
    assert!(
        operators.iter().all(|o| o["storeId"] == 1),
        "only its store's: {list}"
    );
    let ids: Vec<i64> = operators
        .iter()
        .map(|o| o["operatorId"].as_i64().unwrap())
        .collect();
    assert!(ids.contains(&24), "{list}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "by id: {ids:?}");
    let dana = operators
        .iter()
        .find(|o| o["operatorId"] == made["operatorId"])
        .unwrap_or_else(|| panic!("the new operator is listed: {list}"));
    assert_eq!(dana["email"], "dana@shop.example.com");
    assert_eq!(dana["role"], "manager");
    assert_eq!(dana["hasPassword"], true);
    assert!(
        !list.to_string().contains("argon2") && !list.to_string().contains("correct horse"),
        "no password: {list}"
    );
    // Its own store by name is the same list; another store's is not there at all.
    let (_, own) = call(&app, &dan, "GET", "/operators/?storeId=1", None).await;
    assert_eq!(own, list);
    let (status, body) = call(&app, &dan, "GET", "/operators/?storeId=2", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "store_not_found");
    let (status, body) = call(&app, &dan, "GET", "/operators/?storeId=two", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_query");
    assert_eq!(body["error"]["field"], "storeId", "{body}");
    // The deployment sees every store's, or one store's when it asks.
    let (_, all) = call(&app, TOKEN, "GET", "/operators/", None).await;
    let stores: std::collections::BTreeSet<i64> = all["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["storeId"].as_i64().unwrap())
        .collect();
    assert!(stores.len() > 1, "{all}");
    let (_, two) = call(&app, TOKEN, "GET", "/operators/?storeId=2", None).await;
    let two = two["operators"].as_array().unwrap();
    assert!(!two.is_empty() && two.iter().all(|o| o["storeId"] == 2));
}

#[tokio::test]
async fn a_revoked_key_is_refused_and_an_inbound_key_reaches_nothing_else() {
    let app = app().await;
    let inbound = key(&app, TOKEN, json!({"name": "mx", "role": "inbound"})).await;
    let (status, body) = call(&app, &inbound, "GET", "/conversation/1/", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    permission(&body, "api");
    let (status, me) = call(&app, &inbound, "GET", "/me", None).await;
    assert_eq!(
        (status, me["role"].as_str()),
        (StatusCode::OK, Some("inbound"))
    );
    let (_, list) = call(&app, TOKEN, "GET", "/api-keys/", None).await;
    let id = list["keys"][0]["id"].as_i64().unwrap();
    let (status, revoked) = call(&app, TOKEN, "DELETE", &format!("/api-key/{id}/"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(revoked["revokedAt"].is_string(), "{revoked}");
    let (status, body) = call(&app, &inbound, "GET", "/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "invalid_api_key");
    let (status, body) = call(&app, "ck_short", "GET", "/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "invalid_api_key");
    let (status, _) = call(&app, "not-the-token", "GET", "/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn login(app: &App, email: &str, password: &str) -> (StatusCode, Value, Option<String>) {
    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"email": email, "password": password}).to_string(),
        ))
        .unwrap();
    let response = app.call(request).await;
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = json_of(response).await;
    (status, body, cookie)
}

async fn with_cookie(
    app: &App,
    cookie: &str,
    method: &str,
    uri: &str,
    origin: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "cartloop.test")
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    json_of(app.call(request).await).await
}

#[tokio::test]
async fn operators_sign_in_write_as_themselves_and_sign_out() {
    let app = app().await;
    let (status, made) = call(&app, TOKEN, "POST", "/operators/", Some(json!({
        "name": "Gus", "storeId": 1, "group": "sales", "email": "Gus@Shop.example", "password": "correct horse battery"
    }))).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert!(
        made.get("password").is_none() && made["hasPassword"] == true,
        "{made}"
    );
    let gus = made["operatorId"].as_i64().unwrap();
    let (status, body) = call(&app, TOKEN, "POST", "/operators/", Some(json!({
        "name": "Short", "storeId": 1, "group": "sales", "email": "s@shop.example", "password": "short"
    }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "password");
    let (status, body) = call(
        &app,
        TOKEN,
        "POST",
        "/operators/",
        Some(json!({
            "name": "Twin", "storeId": 2, "group": "sales", "email": "gus@shop.example"
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Wrong password and unknown email: the same answer.
    let (status, wrong, _) = login(&app, "gus@shop.example", "not his password").await;
    let (status2, unknown, _) = login(&app, "nobody@shop.example", "not his password").await;
    assert_eq!(
        (status, status2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(wrong, unknown);
    assert_error(&wrong, "invalid_credentials");
    let (status, body, _) = login(&app, "gus@shop.example", &"x".repeat(1025)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "password");

    let (status, signed_in, cookie) =
        login(&app, "GUS@shop.example", "correct horse battery").await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    assert_eq!(
        signed_in,
        json!({"operatorId": gus, "storeId": 1, "role": "operator", "name": "Gus"})
    );
    let cookie = cookie.expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let (status, me) = with_cookie(&app, &session, "GET", "/me", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me,
        json!({"role": "operator", "storeId": 1, "operatorId": gus, "name": "Gus", "via": "session"})
    );

    // A conversation assigned to Gus; a change needs this server's Origin.
    let (status, body) = call(
        &app,
        TOKEN,
        "PATCH",
        "/conversation/2/",
        Some(json!({"operatorId": gus})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let chat = json!({"conversationId": 2, "chat": {"payload": "Hello << username >>"}});
    let (status, body) =
        with_cookie(&app, &session, "POST", "/chat/", None, Some(chat.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "cross_origin");
    let (status, body) = with_cookie(
        &app,
        &session,
        "POST",
        "/chat/",
        Some("https://evil.example"),
        Some(chat.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "cross_origin");
    let (status, body) = with_cookie(
        &app,
        &session,
        "POST",
        "/chat/",
        Some("http://cartloop.test"),
        Some(chat),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Changing its own password needs the current one, and ends the other sessions only.
    let (_, _, other) = login(&app, "gus@shop.example", "correct horse battery").await;
    let other = other.unwrap().split(';').next().unwrap().to_owned();
    let change = json!({"password": "a brand new passphrase"});
    let (status, body) = with_cookie(
        &app,
        &session,
        "PATCH",
        &format!("/operator/{gus}/"),
        Some("http://cartloop.test"),
        Some(change),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "currentPassword");
    let change =
        json!({"password": "a brand new passphrase", "currentPassword": "correct horse battery"});
    let (status, body) = with_cookie(
        &app,
        &session,
        "PATCH",
        &format!("/operator/{gus}/"),
        Some("http://cartloop.test"),
        Some(change),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = with_cookie(&app, &other, "GET", "/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the other session ended");
    let (status, _) = with_cookie(&app, &session, "GET", "/me", None, None).await;
    assert_eq!(status, StatusCode::OK, "the changing session stays");
    // An operator may not change its role.
    let (status, body) = with_cookie(
        &app,
        &session,
        "PATCH",
        &format!("/operator/{gus}/"),
        Some("http://cartloop.test"),
        Some(json!({"role": "manager"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    permission(&body, "operator.manage");

    let (status, _) = with_cookie(
        &app,
        &session,
        "POST",
        "/logout",
        Some("http://cartloop.test"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = with_cookie(&app, &session, "GET", "/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "invalid_session");
    let (status, body) = with_cookie(&app, "cartloop_session=%%%", "GET", "/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "invalid_session");
}

#[tokio::test]
async fn five_failures_lock_an_email_out_even_for_the_right_password() {
    let app = app().await;
    let (status, _) = call(&app, TOKEN, "POST", "/operators/", Some(json!({
        "name": "Hal", "storeId": 2, "group": "sales", "email": "hal@shop.example", "password": "correct horse battery"
    }))).await;
    assert_eq!(status, StatusCode::CREATED);
    for _ in 0..5 {
        let (status, _, _) = login(&app, "hal@shop.example", "wrong password!").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"email": "HAL@shop.example", "password": "correct horse battery"}).to_string(),
        ))
        .unwrap();
    let response = app.call(request).await;
    let retry_after: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_error(&body, "too_many_attempts");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    app.clock.advance(chrono::Duration::minutes(16));
    let (status, _, _) = login(&app, "hal@shop.example", "correct horse battery").await;
    assert_eq!(status, StatusCode::OK, "the window passed");
}

#[tokio::test]
async fn the_audit_log_records_changes_refusals_and_sign_ins_by_store() {
    let app = app().await;
    let boss = key(
        &app,
        TOKEN,
        json!({"name": "boss", "role": "manager", "storeId": 1}),
    )
    .await;
    let chat = json!({"conversationId": 1, "chat": {"payload": "Hi << username >>", "userId": 24}});
    let (status, _) = call(&app, &boss, "POST", "/chat/", Some(chat)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(&app, &boss, "GET", "/import_data/", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&app, "wrong", "GET", "/conversation/1/", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = login(&app, "nobody@shop.example", "some password here").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, all) = call(&app, TOKEN, "GET", "/audit/?limit=500", None).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let entries = all["entries"].as_array().unwrap();
    let actions: Vec<_> = entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["status"].as_u64().unwrap()))
        .collect();
    for expected in [
        ("POST /api-keys/", 201),
        ("POST /chat/", 201),
        ("GET /import_data/", 403),
        ("GET /conversation/{id}/", 401),
        ("login", 401),
    ] {
        assert!(actions.contains(&expected), "{expected:?} in {actions:?}");
    }
    let text = all.to_string();
    assert!(
        !text.contains("ck_") && !text.contains("some password") && !text.contains("Hi "),
        "no secret or message text: {text}"
    );
    let ids: Vec<_> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");

    let (status, mine) = call(&app, &boss, "GET", "/audit/", None).await;
    assert_eq!(status, StatusCode::OK);
    let mine = mine["entries"].as_array().unwrap();
    assert!(
        !mine.is_empty() && mine.iter().all(|e| e["storeId"] == 1),
        "{mine:?}"
    );
    let chat = mine
        .iter()
        .find(|e| e["action"] == "POST /chat/")
        .expect("the chat");
    assert_eq!(chat["actor"]["kind"], "key");
    assert_eq!(chat["target"]["kind"], "chat");
    let (status, _) = call(&app, &boss, "GET", "/audit/?storeId=2", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Paging by cursor.
    let (_, first) = call(&app, TOKEN, "GET", "/audit/?limit=2", None).await;
    let cursor = first["nextCursor"].as_str().unwrap();
    let (_, second) = call(
        &app,
        TOKEN,
        "GET",
        &format!("/audit/?limit=2&cursor={cursor}"),
        None,
    )
    .await;
    assert!(second["entries"][0]["id"].as_i64() < first["entries"][1]["id"].as_i64());
    let (status, body) = call(&app, TOKEN, "GET", "/audit/?actor=robot", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "actor");
}
