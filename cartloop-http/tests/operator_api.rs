//! The operator API: directory, the conversations list, and reading, cancelling,
//! retrying and previewing chats. Driven with `oneshot` over the in-memory storage with the
//! demo data at 2026-11-25 15:00Z.

mod common;

use axum::http::StatusCode;
use cartloop_core::ids::{ConversationId, MessageId, UserId};
use cartloop_core::ports::prelude::*;
use cartloop_core::ports::ClaimLimit;
use common::{app, assert_error, chat, now, App};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

async fn post(app: &App, uri: &str, body: Value) -> (StatusCode, Value) {
    app.send("POST", uri, Some(&body.to_string())).await
}

async fn patch(app: &App, uri: &str, body: Value) -> (StatusCode, Value) {
    app.send("PATCH", uri, Some(&body.to_string())).await
}

fn assert_field_error(value: &Value, code: &str, field: &str) {
    assert_error(value, code);
    assert_eq!(value["error"]["field"], field, "{value}");
}

// ---- stores -------------------------------------------------------------------------------

#[tokio::test]
async fn create_and_read_a_store() {
    let app = app().await;
    let (status, body) = post(
        &app,
        "/stores/",
        json!({"name": "Nova", "timeZone": "Europe/Paris", "senderEmail": "hi@nova.example.com", "activeHours": "08:00-21:00"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({"storeId": 4, "name": "Nova", "timeZone": "Europe/Paris", "senderEmail": "hi@nova.example.com", "activeHours": "08:00-21:00"})
    );
    let (status, body) = app.send("GET", "/store/4/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"storeId": 4, "name": "Nova", "timeZone": "Europe/Paris", "activeHours": "08:00-21:00", "maxPerClient": null, "replyGrace": "15m", "closures": 0})
    );
    // Without a window, and without the trailing slash.
    let (status, body) = post(
        &app,
        "/stores",
        json!({"name": "Plain", "timeZone": "UTC", "senderEmail": "a@plain.example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["storeId"].clone(), body["activeHours"].clone()),
        (json!(5), Value::Null)
    );
    let (status, body) = app.send("GET", "/store/5", None).await;
    assert_eq!(
        (status, body["name"].clone()),
        (StatusCode::OK, json!("Plain"))
    );
}

#[tokio::test]
async fn store_fields_are_validated() {
    let app = app().await;
    let good =
        json!({"name": "Nova", "timeZone": "Europe/Paris", "senderEmail": "hi@nova.example.com"});
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    for (body, code, field) in [
        (
            with("timeZone", json!("Mars/Olympus")),
            "invalid_time_zone",
            "timeZone",
        ),
        (with("timeZone", json!("")), "invalid_time_zone", "timeZone"),
        (
            with("senderEmail", json!("nova")),
            "invalid_email",
            "senderEmail",
        ),
        (
            with("senderEmail", json!("hi@localhost")),
            "invalid_email",
            "senderEmail",
        ),
        (
            with("activeHours", json!("9-5")),
            "invalid_active_hours",
            "activeHours",
        ),
        (
            with("activeHours", json!("25:00-26:00")),
            "invalid_active_hours",
            "activeHours",
        ),
        (with("name", json!("   ")), "invalid_field", "name"),
        (
            with("name", json!("x".repeat(201))),
            "invalid_field",
            "name",
        ),
    ] {
        let (status, value) = post(&app, "/stores/", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {value}");
        assert_field_error(&value, code, field);
    }
    let (_, value) = post(&app, "/stores/", with("timeZone", json!("Mars/Olympus"))).await;
    assert!(
        value["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Mars/Olympus"),
        "{value}"
    );
    // Shape errors are 400, as in §5; a misspelt field is one.
    for body in [
        json!({"name": "Nova", "timeZone": "Europe/Paris"}),
        with("timezone", json!("Europe/Paris")),
        with("name", json!(5)),
        json!(["Nova", "Europe/Paris", "hi@nova.example.com"]),
    ] {
        let (status, value) = post(&app, "/stores/", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_error(&value, "invalid_request");
    }
    let (status, _) = app.send("GET", "/store/4/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was created");
}

#[tokio::test]
async fn a_store_window_is_set_cleared_and_used() {
    let app = app().await;
    // Conversation 9: store 3, client 8 in Tokyo, where 15:00Z is midnight.
    let (_, body) = app
        .send("POST", "/chat/preview/", Some(&chat(9, 23, "hi")))
        .await;
    assert_eq!(body["sendAt"], "2026-11-26T00:00:00Z", "the default window");

    let (status, body) = patch(&app, "/store/3/", json!({"activeHours": "00:00-23:59"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"storeId": 3, "name": "Tokyo Tea House", "timeZone": "Asia/Tokyo", "activeHours": "00:00-23:59", "maxPerClient": null, "replyGrace": "15m", "closures": 0})
    );
    let (status, body) = app.send("POST", "/chat/", Some(&chat(9, 23, "hi"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["sendAt"], "2026-11-25T15:00:00Z", "the store's window");

    // An empty PATCH changes nothing; null goes back to the default.
    let (status, body) = patch(&app, "/store/3", json!({})).await;
    assert_eq!(
        (status, body["activeHours"].clone()),
        (StatusCode::OK, json!("00:00-23:59"))
    );
    let (status, body) = patch(&app, "/store/3/", json!({"activeHours": null})).await;
    assert_eq!(
        (status, body["activeHours"].clone()),
        (StatusCode::OK, Value::Null)
    );
    let (_, body) = app.send("GET", "/store/3/", None).await;
    assert_eq!(body["activeHours"], Value::Null);

    // 24:00 as an end, and windows that wrap midnight.
    for hours in ["00:00-24:00", "21:00-08:00"] {
        let (status, body) = patch(&app, "/store/3/", json!({"activeHours": hours})).await;
        assert_eq!(
            (status, body["activeHours"].clone()),
            (StatusCode::OK, json!(hours))
        );
    }

    let (status, body) = patch(&app, "/store/3/", json!({"activeHours": "late"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_field_error(&body, "invalid_active_hours", "activeHours");
    for uri in ["/store/99/", "/store/99"] {
        let (status, body) = patch(&app, uri, json!({"activeHours": "08:00-20:00"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_error(&body, "store_not_found");
        let (status, body) = app.send("GET", uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_error(&body, "store_not_found");
    }
    let (status, body) = app.send("GET", "/store/abc/", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_id");
    let (status, body) = patch(&app, "/store/3/", json!({"hours": "08:00-20:00"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_request");
}

// ---- operators and clients ----------------------------------------------------------------

#[tokio::test]
async fn create_an_operator() {
    let app = app().await;
    let (status, body) = post(
        &app,
        "/operators/",
        json!({"name": "Fay", "storeId": 2, "group": "support"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({"operatorId": 30, "name": "Fay", "storeId": 2, "group": "support", "email": null, "role": "operator", "hasPassword": false}),
        "user ids continue after the imported ones"
    );
    let (status, body) = post(
        &app,
        "/operators",
        json!({"name": "Gil", "storeId": 99, "group": "sales"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_field_error(&body, "unknown_store", "storeId");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("store 99"),
        "{body}"
    );
    let (status, body) = post(
        &app,
        "/operators/",
        json!({"name": "Gil", "storeId": 1, "group": ""}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_field_error(&body, "invalid_field", "group");
    let (status, body) = post(&app, "/operators/", json!({"name": "Gil", "storeId": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_request");
}

/// Refused names and discount codes: the message of each, and, for a body wrong in several
/// fields, the field named (the names are checked after the other fields).
#[tokio::test]
async fn name_and_code_refusals_say_what_is_wrong() {
    let app = app().await;
    let store = |name: Value, zone: &str| json!({"name": name, "timeZone": zone, "senderEmail": "hi@nova.example.com"});
    let invisible = "must not contain the control or invisible character";
    for (uri, body, field, message) in [
        (
            "/stores/",
            store(json!(" "), "Europe/Paris"),
            "name",
            "name: must not be empty".to_owned(),
        ),
        (
            "/stores/",
            store(json!("x".repeat(201)), "Europe/Paris"),
            "name",
            "name: must be at most 200 characters".to_owned(),
        ),
        (
            "/operators/",
            json!({"name": "Gil", "storeId": 99, "group": "sa\u{202e}les"}),
            "group",
            format!("group: {invisible} \\u{{202e}}"),
        ),
        (
            "/clients/",
            json!({"name": "Ann\u{7}", "email": "c@example.com", "storeId": 1}),
            "name",
            format!("name: {invisible} \\u{{7}}"),
        ),
        (
            "/conversations/",
            json!({"storeId": 99, "operatorId": 24, "clientId": 27, "discountCode": "50% off"}),
            "discountCode",
            "discountCode: must be 1 to 64 ASCII letters, digits, '-' or '_'".to_owned(),
        ),
    ] {
        let (status, value) = post(&app, uri, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {value}");
        assert_field_error(&value, "invalid_field", field);
        assert_eq!(value["error"]["message"], message, "{value}");
    }
    let (_, value) = post(&app, "/stores/", store(json!(""), "Mars/Olympus")).await;
    assert_field_error(&value, "invalid_time_zone", "timeZone");
    let (_, value) = post(
        &app,
        "/clients/",
        json!({"name": "", "email": "nope", "storeId": 1}),
    )
    .await;
    assert_field_error(&value, "invalid_email", "email");
    let (_, value) = patch(
        &app,
        "/client/27/",
        json!({"name": "", "timeZone": "Nowhere"}),
    )
    .await;
    assert_field_error(&value, "invalid_time_zone", "timeZone");
    let (_, value) = patch(
        &app,
        "/client/27/",
        json!({"name": null, "timeZone": "Nowhere"}),
    )
    .await;
    assert_field_error(&value, "invalid_field", "name");
}

#[tokio::test]
async fn create_a_client() {
    let app = app().await;
    let (status, body) = post(
        &app,
        "/clients/",
        json!({"name": "Ann Lee", "email": "ann@example.com", "timeZone": "Europe/Berlin", "storeId": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({"clientId": 30, "storeId": 1, "name": "Ann Lee", "email": "ann@example.com", "timeZone": "Europe/Berlin", "unsubscribed": false})
    );
    let (status, body) = post(
        &app,
        "/clients",
        json!({"name": "Bo", "email": "bo@example.com", "storeId": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["timeZone"], Value::Null);
    assert_eq!(body["storeId"], 3);

    // A known email of the same store, in any case: 409 naming the client who has it.
    for (store, email, existing) in [
        (1, "john.carter@example.com", 27),
        (1, "John.Carter@Example.COM", 27),
        (2, "Olivia.Smith@example.com", 29),
        (1, "olivia.smith@example.com", 1),
    ] {
        let (status, body) = post(
            &app,
            "/clients/",
            json!({"name": "J", "email": email, "storeId": store}),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{email}");
        assert_error(&body, "client_exists");
        assert_eq!(body["error"]["clientId"], existing, "{body}");
    }
    // Another store's client with that email is another person: a new client.
    let (status, body) = post(
        &app,
        "/clients/",
        json!({"name": "John C", "email": "John.Carter@example.com", "storeId": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["storeId"], 2);
    assert_ne!(body["clientId"], 27);

    // An unknown store is 404, as a store one cannot see; no store at all is 400.
    let (status, body) = post(
        &app,
        "/clients/",
        json!({"name": "C", "email": "c@example.com", "storeId": 99}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "store_not_found");
    assert_eq!(body["error"]["field"], "storeId", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("store 99"),
        "{body}"
    );
    for missing in [
        json!({"name": "C", "email": "c@example.com"}),
        json!({"name": "C", "email": "c@example.com", "storeId": null}),
        json!({"name": "C", "email": "c@example.com", "storeId": "1"}),
    ] {
        let (status, body) = post(&app, "/clients/", missing.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{missing}: {body}");
        assert_error(&body, "invalid_request");
    }
    let (_, body) = post(
        &app,
        "/clients/",
        json!({"name": "C", "email": "c@example.com"}),
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("storeId"),
        "{body}"
    );
    for (body, code, field) in [
        (
            json!({"name": "C", "email": "not-an-address", "storeId": 1}),
            "invalid_email",
            "email",
        ),
        (
            json!({"name": "C", "email": "c@example.com", "timeZone": "Europe/Atlantis", "storeId": 1}),
            "invalid_time_zone",
            "timeZone",
        ),
        (
            json!({"name": "", "email": "c@example.com", "storeId": 1}),
            "invalid_field",
            "name",
        ),
    ] {
        let (status, value) = post(&app, "/clients/", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_field_error(&value, code, field);
    }
}

#[tokio::test]
async fn change_a_client() {
    let app = app().await;
    let (status, body) = patch(&app, "/client/27/", json!({"name": "Johnny Carter"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"clientId": 27, "storeId": 1, "name": "Johnny Carter", "email": "john.carter@example.com", "timeZone": "America/Chicago", "unsubscribed": false}),
        "absent fields are left as they are"
    );
    let (_, rendered) = app
        .send(
            "POST",
            "/chat/preview/",
            Some(&chat(1, 24, "Hi << username >>")),
        )
        .await;
    assert_eq!(rendered["renderedText"], "Hi Johnny Carter");

    // null clears the zone: the store's (New York) applies.
    let (status, body) = patch(&app, "/client/27", json!({"timeZone": null})).await;
    assert_eq!(
        (status, body["timeZone"].clone()),
        (StatusCode::OK, Value::Null)
    );
    let (_, conversation) = app.send("GET", "/conversation/1/", None).await;
    assert_eq!(conversation["clientTimeZone"], "America/New_York");
    let (_, body) = patch(
        &app,
        "/client/27/",
        json!({"timeZone": "Asia/Tokyo", "email": "jc@example.com"}),
    )
    .await;
    assert_eq!(
        (body["timeZone"].clone(), body["email"].clone()),
        (json!("Asia/Tokyo"), json!("jc@example.com"))
    );

    let (status, body) = patch(
        &app,
        "/client/27/",
        json!({"email": "olivia.smith@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "client_exists");
    assert_eq!(body["error"]["clientId"], 1);
    // Client 4's email is store 2's: no conflict for store 1's client 27.
    let (status, body) = patch(
        &app,
        "/client/27/",
        json!({"email": "noah.taylor@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email"], "noah.taylor@example.com");
    for (body, code, field) in [
        (json!({"name": null}), "invalid_field", "name"),
        (json!({"email": null}), "invalid_field", "email"),
        (json!({"email": "x@"}), "invalid_email", "email"),
        (
            json!({"timeZone": "Nowhere"}),
            "invalid_time_zone",
            "timeZone",
        ),
        (json!({"name": " "}), "invalid_field", "name"),
    ] {
        let (status, value) = patch(&app, "/client/27/", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_field_error(&value, code, field);
    }
    // 24 is an operator, not a client.
    for id in [999, 24] {
        let (status, body) = patch(&app, &format!("/client/{id}/"), json!({"name": "X"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
        assert_error(&body, "client_not_found");
    }
    let (_, body) = patch(&app, "/client/27/", json!({"nickname": "J"})).await;
    assert_error(&body, "invalid_request");
}

// ---- conversations ------------------------------------------------------------------------

#[tokio::test]
async fn create_a_conversation() {
    let app = app().await;
    let (status, body) = post(
        &app,
        "/conversations/",
        json!({"storeId": 1, "operatorId": 24, "clientId": 27, "discountCode": "NEW10"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({"conversationId": 27, "storeId": 1, "operatorId": 24, "clientId": 27, "operatorGroup": "sales", "status": "open", "clientTimeZone": "America/Chicago", "chats": []})
    );
    let (status, body) = app
        .send(
            "POST",
            "/chat/",
            Some(&chat(27, 24, "Use << discountCode >>")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    for (body, code, field) in [
        (
            json!({"storeId": 99, "operatorId": 24, "clientId": 27}),
            "unknown_store",
            "storeId",
        ),
        (
            json!({"storeId": 1, "operatorId": 999, "clientId": 27}),
            "unknown_operator",
            "operatorId",
        ),
        (
            json!({"storeId": 1, "operatorId": 27, "clientId": 27}),
            "unknown_operator",
            "operatorId",
        ),
        (
            json!({"storeId": 1, "operatorId": 24, "clientId": 999}),
            "unknown_client",
            "clientId",
        ),
        (
            json!({"storeId": 1, "operatorId": 24, "clientId": 21}),
            "unknown_client",
            "clientId",
        ),
        (
            json!({"storeId": 1, "operatorId": 22, "clientId": 27}),
            "operator_not_in_store",
            "operatorId",
        ),
        // Client 4 shops at store 2; client 1 (Olivia) at store 1, her store-2 self is 29.
        (
            json!({"storeId": 1, "operatorId": 24, "clientId": 4}),
            "client_not_in_store",
            "clientId",
        ),
        (
            json!({"storeId": 2, "operatorId": 22, "clientId": 1}),
            "client_not_in_store",
            "clientId",
        ),
        (
            json!({"storeId": 1, "operatorId": 24, "clientId": 27, "discountCode": "50% off"}),
            "invalid_field",
            "discountCode",
        ),
    ] {
        let (status, value) = post(&app, "/conversations", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {value}");
        assert_field_error(&value, code, field);
    }
    let (_, body) = post(
        &app,
        "/conversations/",
        json!({"storeId": 1, "operatorId": 999, "clientId": 27}),
    )
    .await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("999"),
        "{body}"
    );
    let (_, body) = post(
        &app,
        "/conversations/",
        json!({"storeId": 1, "operatorId": 24, "clientId": 4}),
    )
    .await;
    assert_eq!(
        body["error"]["message"],
        "client 4 is a client of store 2, not of store 1"
    );
    let (status, body) = post(
        &app,
        "/conversations/",
        json!({"storeId": 2, "operatorId": 22, "clientId": 29}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn resolve_and_reopen() {
    let app = app().await;
    let (status, body) = patch(&app, "/conversation/1/", json!({"status": "resolved"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["chats"].as_array().unwrap().len(), 3, "the §5 shape");
    let (status, body) = app.send("POST", "/chat/", Some(&chat(1, 24, "hi"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "conversation_resolved");
    let (status, body) = patch(&app, "/conversation/1", json!({"status": "open"})).await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::OK, json!("open"))
    );
    let (status, _) = app.send("POST", "/chat/", Some(&chat(1, 24, "hi"))).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, body) = patch(&app, "/conversation/999/", json!({"status": "open"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "conversation_not_found");
    for body in [
        json!({"status": "closed"}),
        json!({}),
        json!({"status": "open", "x": 1}),
    ] {
        let (status, value) = patch(&app, "/conversation/1/", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_error(&value, "invalid_request");
    }
}

fn ids(page: &Value) -> Vec<i64> {
    page["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversationId"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn list_conversations_by_activity() {
    let app = app().await;
    let (status, page) = app.send("GET", "/conversations/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["nextCursor"], Value::Null);
    // 24 has the newest chat (5), then 1 (3); the rest have none: newest id first.
    let mut expected = vec![24, 1, 26, 25];
    expected.extend((2..=23).rev());
    assert_eq!(ids(&page), expected);
    assert_eq!(
        page["conversations"][1],
        json!({
            "conversationId": 1, "storeId": 1, "operatorId": 24, "clientId": 27,
            "clientName": "John Carter", "status": "open", "clientTimeZone": "America/Chicago",
            "lastChat": {"chatId": 3, "userId": 24, "payload": "Sure {{ username }}. Here is your code {{ discountCode }}", "status": "sent", "createdAt": "2020-12-03T15:25:00Z"},
            "pendingCount": 0
        })
    );
    assert_eq!(page["conversations"][2]["lastChat"], Value::Null);
    assert_eq!(
        (
            page["conversations"][0]["clientId"].clone(),
            page["conversations"][0]["clientName"].clone()
        ),
        (json!(29), json!("Olivia Smith")),
        "conversation 24 is with Olivia as a client of store 2"
    );

    // A new chat moves its conversation first.
    app.send("POST", "/chat/", Some(&chat(9, 23, "hi"))).await;
    let (_, page) = app.send("GET", "/conversations", None).await;
    let first = &page["conversations"][0];
    assert_eq!(
        (
            first["conversationId"].clone(),
            first["pendingCount"].clone()
        ),
        (json!(9), json!(1))
    );
    assert_eq!(first["lastChat"]["status"], "new");

    let (_, page) = app
        .send("GET", "/conversations/?status=resolved", None)
        .await;
    assert_eq!(ids(&page), vec![24, 25]);
    let (_, page) = app
        .send("GET", "/conversations/?storeId=2&status=open", None)
        .await;
    assert!(page["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["storeId"] == 2 && c["status"] == "open"));
    assert_eq!(ids(&page), vec![26, 22, 21, 16, 14, 6, 5]);
    let (_, page) = app.send("GET", "/conversations/?operatorId=24", None).await;
    assert_eq!(ids(&page), vec![1, 18, 13, 10, 3]);
    let (_, page) = app
        .send("GET", "/conversations/?operatorId=999", None)
        .await;
    assert_eq!(ids(&page), Vec::<i64>::new());

    for (query, code) in [
        ("status=closed", "invalid_query"),
        ("limit=0", "invalid_query"),
        ("limit=ten", "invalid_query"),
        ("storeId=x", "invalid_query"),
        ("operatorId=-1", "invalid_query"),
        ("cursor=zzz", "invalid_cursor"),
        ("cursor=c1.1.2", "invalid_cursor"),
    ] {
        let (status, body) = app
            .send("GET", &format!("/conversations/?{query}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_error(&body, code);
    }
    let (status, page) = app.send("GET", "/conversations/?limit=100000", None).await;
    assert_eq!(
        (status, ids(&page).len()),
        (StatusCode::OK, 26),
        "limit is clamped to 500"
    );
}

#[tokio::test]
async fn paging_skips_and_repeats_nothing_while_chats_arrive() {
    let app = app().await;
    let mut seen = Vec::new();
    let mut uri = "/conversations/?limit=4".to_owned();
    for round in 0.. {
        let (status, page) = app.send("GET", &uri, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(ids(&page));
        // Chats arrive between pages, in conversations already listed and not yet listed.
        let target = [2, 20, 23, 5][round % 4];
        let context = app
            .storage
            .conversation(ConversationId(target))
            .await
            .unwrap()
            .unwrap();
        for user in [context.operator.id, context.client.id] {
            let (status, _) = app
                .send("POST", "/chat/", Some(&chat(target, user.0, "new words")))
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => uri = format!("/conversations?limit=4&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 26, "{seen:?}");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 26, "{seen:?}");
}

// ---- chats --------------------------------------------------------------------------------

#[tokio::test]
async fn read_a_chat() {
    let app = app().await;
    let (status, body) = app.send("GET", "/chat/3/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "chatId": 3, "conversationId": 1, "userId": 24,
            "payload": "Sure {{ username }}. Here is your code {{ discountCode }}",
            "renderedText": "Sure John Carter. Here is your code PROMO50",
            "status": "sent", "createdAt": "2020-12-03T15:25:00Z", "sendAt": "2020-12-03T15:25:00Z",
            "sentAt": "2020-12-03T15:25:00Z", "attempts": 1, "lastError": null,
            "waitingFor": null, "requestedSendAt": null
        })
    );
    let (_, body) = app.send("GET", "/chat/2", None).await;
    assert_eq!(
        (body["renderedText"].clone(), body["status"].clone()),
        (Value::Null, json!("received"))
    );
    let (status, body) = app.send("GET", "/chat/999/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "chat_not_found");
    let (status, body) = app.send("GET", "/chat/x/", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_id");
}

#[tokio::test]
async fn cancel_a_scheduled_chat() {
    let app = app().await;
    // Tokyo's midnight: scheduled for 09:00 local.
    let (_, posted) = app
        .send("POST", "/chat/", Some(&chat(9, 23, "later")))
        .await;
    let id = posted["chatId"].as_i64().unwrap();
    let (status, body) = app.send("DELETE", &format!("/chat/{id}/"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["renderedText"], "later");
    assert_eq!(body["sendAt"], "2026-11-26T00:00:00Z");
    // Never claimed afterwards.
    let later = now() + chrono::Duration::days(2);
    let claimed = app
        .storage
        .claim_due(later, Duration::from_secs(60), ClaimLimit::batch(10))
        .await
        .unwrap();
    assert!(claimed.iter().all(|c| c.message.id != MessageId(id)));

    let (status, body) = app.send("DELETE", &format!("/chat/{id}"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "not_cancellable");
    for sent_or_received in [3, 2] {
        let (status, body) = app
            .send("DELETE", &format!("/chat/{sent_or_received}/"), None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_error(&body, "not_cancellable");
    }
    let (status, body) = app.send("DELETE", "/chat/999/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "chat_not_found");
}

#[tokio::test]
async fn a_claimed_chat_is_not_cancellable() {
    let app = app().await;
    let (_, posted) = app.send("POST", "/chat/", Some(&chat(1, 24, "now"))).await;
    let id = posted["chatId"].as_i64().unwrap();
    let claimed = app
        .storage
        .claim_due(now(), Duration::from_secs(60), ClaimLimit::batch(10))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let (status, body) = app.send("DELETE", &format!("/chat/{id}/"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "not_cancellable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sending"),
        "{body}"
    );
}

#[tokio::test]
async fn retry_a_failed_chat() {
    let app = app().await;
    let (_, posted) = app.send("POST", "/chat/", Some(&chat(1, 24, "now"))).await;
    let id = posted["chatId"].as_i64().unwrap();
    let (status, body) = app.send("POST", &format!("/chat/{id}/retry/"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "a new chat is not retryable");
    assert_error(&body, "not_retryable");

    let claim = app
        .storage
        .claim_due(now(), Duration::from_secs(60), ClaimLimit::batch(1))
        .await
        .unwrap()
        .remove(0);
    assert!(app
        .storage
        .mark_failed(claim.token, "550 mailbox unavailable".into())
        .await
        .unwrap());
    let (_, failed) = app.send("GET", &format!("/chat/{id}/"), None).await;
    assert_eq!(
        (failed["status"].clone(), failed["lastError"].clone()),
        (json!("failed"), json!("550 mailbox unavailable"))
    );

    // 15:30Z is 09:30 in Chicago: due at once.
    app.clock.advance(chrono::Duration::minutes(30));
    let (status, body) = app.send("POST", &format!("/chat/{id}/retry"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "new");
    assert_eq!(body["sendAt"], "2026-11-25T15:30:00Z");
    assert_eq!(body["attempts"], 1, "attempts are kept");
    assert_eq!(
        body["lastError"], "550 mailbox unavailable",
        "so is the reason"
    );
    let (status, body) = app.send("POST", &format!("/chat/{id}/retry/"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "not_retryable");
    let (status, body) = app.send("POST", "/chat/999/retry/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "chat_not_found");
}

#[tokio::test]
async fn preview_stores_nothing() {
    let app = app().await;
    let (_, before) = app.send("GET", "/conversation/9/", None).await;
    let (status, body) = app
        .send(
            "POST",
            "/chat/preview/",
            Some(&chat(
                9,
                23,
                "Hello << username >>, code << discountCode >>",
            )),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"renderedText": "Hello Yuki Tanaka, code MATCHA30", "status": "new", "sendAt": "2026-11-26T00:00:00Z", "clientLocalSendAt": "2026-11-26T09:00:00+09:00", "waitingFor": "active_hours", "clientTimeZone": "Asia/Tokyo"})
    );
    let (_, after) = app.send("GET", "/conversation/9/", None).await;
    assert_eq!(before, after);
    let (_, body) = app
        .send("POST", "/chat/preview", Some(&chat(1, 24, "hi")))
        .await;
    assert_eq!(body["clientLocalSendAt"], "2026-11-25T09:00:00-06:00");
    let (_, body) = app
        .send("POST", "/chat/preview/", Some(&chat(1, 27, "Thanks!")))
        .await;
    assert_eq!(
        body,
        json!({"renderedText": null, "status": "received", "sendAt": null, "clientLocalSendAt": null, "waitingFor": null, "clientTimeZone": "America/Chicago"})
    );

    for (body, status, code) in [
        (
            chat(1, 24, "caf\u{e9}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_character",
        ),
        (
            chat(4, 21, "<< discountCode >>"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_value",
        ),
        (
            chat(999, 24, "hi"),
            StatusCode::NOT_FOUND,
            "conversation_not_found",
        ),
        (chat(1, 21, "hi"), StatusCode::FORBIDDEN, "forbidden"),
        (
            chat(24, 22, "hi"),
            StatusCode::CONFLICT,
            "conversation_resolved",
        ),
        ("{".to_owned(), StatusCode::BAD_REQUEST, "invalid_json"),
    ] {
        let (got, value) = app.send("POST", "/chat/preview/", Some(&body)).await;
        assert_eq!(got, status, "{body}");
        assert_error(&value, code);
    }
    let (_, value) = app
        .send("POST", "/chat/preview/", Some(&chat(1, 24, "caf\u{e9}")))
        .await;
    assert_eq!(value["error"]["position"], 3);
}

#[tokio::test]
async fn an_unsubscribed_client_gets_no_more_operator_messages() {
    let app = app().await;
    app.storage
        .unsubscribe_client(UserId(27), now())
        .await
        .unwrap();
    for uri in ["/chat/", "/chat/preview/"] {
        let (status, body) = app.send("POST", uri, Some(&chat(1, 24, "hi"))).await;
        assert_eq!(status, StatusCode::CONFLICT, "{uri}");
        assert_error(&body, "client_unsubscribed");
    }
    // The client may still write.
    let (status, _) = app
        .send("POST", "/chat/", Some(&chat(1, 27, "one more question")))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, client) = patch(&app, "/client/27/", json!({})).await;
    assert_eq!(client["unsubscribed"], true);
}
