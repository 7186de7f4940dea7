//! The delivery policy's API (SPEC §11): weekly calendars, closures, the frequency cap and
//! the reply grace on the store; `sendAt` on `POST /chat/` and the preview; `waitingFor`.
//! Every malformed value is a 422 naming what and where, and changes nothing. Driven with
//! `oneshot` over the in-memory storage with the demo data at 2026-11-25 15:00Z (a
//! Wednesday; 09:00 in Chicago, where conversation 1's client lives).

mod common;

use axum::http::StatusCode;
use common::{app, assert_error, App};
use serde_json::{json, Value};

async fn send(app: &App, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    app.send(method, uri, Some(&body.to_string())).await
}

fn assert_refused(status: StatusCode, body: &Value, code: &str, field: &str, says: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(body, code);
    assert_eq!(body["error"]["field"], field, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "{message:?} should say {says:?}");
}

fn chat_at(conversation: i64, user: i64, payload: &str, send_at: Value) -> Value {
    json!({"conversationId": conversation, "chat": {"payload": payload, "userId": user, "sendAt": send_at}})
}

#[tokio::test]
async fn a_week_is_set_read_back_and_used() {
    let app = app().await;
    let week = json!({"mon": ["09:00-12:00", "13:00-20:00"], "tue": ["09:00-20:00"],
                      "thu": ["09:00-20:00"], "fri": ["21:00-02:00"], "sat": ["10:00-16:00"]});
    let (status, body) = send(&app, "PATCH", "/store/1/", json!({"activeHours": week})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = json!({"mon": ["09:00-12:00", "13:00-20:00"], "tue": ["09:00-20:00"], "wed": [],
                          "thu": ["09:00-20:00"], "fri": ["21:00-02:00"], "sat": ["10:00-16:00"], "sun": []});
    assert_eq!(body["activeHours"], expected);
    let (_, read) = app.send("GET", "/store/1/", None).await;
    assert_eq!(read, body);

    // Wednesday is closed: a message now waits for Thursday 09:00 in Chicago (15:00Z).
    let (status, posted) = send(
        &app,
        "POST",
        "/chat/",
        json!({"conversationId": 1, "chat": {"payload": "Hi", "userId": 24}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{posted}");
    assert_eq!(posted["sendAt"], "2026-11-26T15:00:00Z");
    assert_eq!(posted["waitingFor"], "active_hours");
    let uri = format!("/chat/{}/", posted["chatId"]);
    let (_, view) = app.send("GET", &uri, None).await;
    assert_eq!(view["waitingFor"], "active_hours");
}

#[tokio::test]
async fn malformed_calendars_name_the_day_and_change_nothing() {
    let app = app().await;
    let (_, before) = app.send("GET", "/store/1/", None).await;
    for (hours, says) in [
        (json!({"mon": ["09:00-25:00"]}), "mon[0]"),
        (
            json!({"mon": ["09:00-12:00"], "tue": ["13:00-12:00", "x"]}),
            "tue[1]",
        ),
        (
            json!({"mon": ["09:00-12:00", "11:00-13:00"]}),
            "mon: the windows",
        ),
        (json!({"monday": ["09:00-12:00"]}), "unknown day \"monday\""),
        (json!({"wed": "09:00-12:00"}), "wed: expected a list"),
        (json!({"sun": []}), "the week has no window"),
        (json!(42), "expected a window"),
        (json!("9-5"), "activeHours"),
    ] {
        let (status, body) = send(&app, "PATCH", "/store/1/", json!({"activeHours": hours})).await;
        assert_refused(status, &body, "invalid_active_hours", "activeHours", says);
        // Nothing else in the body is applied either.
        let both = json!({"activeHours": hours, "replyGrace": "5m"});
        let (status, _) = send(&app, "PATCH", "/store/1/", both).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (status, body) = send(&app, "POST", "/stores/", json!({"name": "Week", "timeZone": "Europe/Paris", "senderEmail": "a@b.example.com", "activeHours": {"fri": ["08:00"]}})).await;
    assert_refused(
        status,
        &body,
        "invalid_active_hours",
        "activeHours",
        "fri[0]",
    );
    let (_, after) = app.send("GET", "/store/1/", None).await;
    assert_eq!(before, after);
}

#[tokio::test]
async fn the_cap_and_the_grace_are_set_cleared_and_checked() {
    let app = app().await;
    let body = json!({"maxPerClient": {"count": 3, "per": "24h"}, "replyGrace": "30m"});
    let (status, store) = send(&app, "PATCH", "/store/1/", body).await;
    assert_eq!(status, StatusCode::OK, "{store}");
    assert_eq!(store["maxPerClient"], json!({"count": 3, "per": "24h"}));
    assert_eq!(store["replyGrace"], "30m");
    assert_eq!(store["activeHours"], Value::Null, "left as it was");

    for (cap, says) in [
        (json!({"count": 0, "per": "24h"}), "count"),
        (json!({"count": 3, "per": "1y"}), "per"),
        (json!({"count": 3, "per": "31d"}), "30d"),
        (json!({"count": 3}), "per"),
        (json!("3/24h"), "maxPerClient"),
    ] {
        let (status, body) = send(&app, "PATCH", "/store/1/", json!({"maxPerClient": cap})).await;
        assert_refused(
            status,
            &body,
            "invalid_max_per_client",
            "maxPerClient",
            says,
        );
    }
    for (grace, says) in [
        (json!("2d"), "24h"),
        (json!("soon"), "\"soon\""),
        (json!(15), "a number"),
        (json!(null), "null"),
    ] {
        let (status, body) = send(&app, "PATCH", "/store/1/", json!({"replyGrace": grace})).await;
        assert_refused(status, &body, "invalid_reply_grace", "replyGrace", says);
    }
    let (_, read) = app.send("GET", "/store/1/", None).await;
    assert_eq!(read, store, "refusals changed nothing");

    let off = json!({"maxPerClient": null, "replyGrace": "0"});
    let (status, store) = send(&app, "PATCH", "/store/1/", off).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (store["maxPerClient"].clone(), store["replyGrace"].clone()),
        (Value::Null, json!("0"))
    );
    let (status, body) = send(&app, "PATCH", "/store/999/", json!({"replyGrace": "5m"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "store_not_found");
}

#[tokio::test]
async fn closures_are_replaced_read_and_checked() {
    let app = app().await;
    let (status, body) = app.send("GET", "/store/1/closures/", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    let list =
        json!([{"date": "2026-12-25"}, {"from": "2026-12-31T18:00", "to": "2027-01-02T09:00"}]);
    let (status, body) = send(&app, "PUT", "/store/1/closures/", list.clone()).await;
    assert_eq!((status, body), (StatusCode::OK, list.clone()));
    let (_, body) = app.send("GET", "/store/1/closures", None).await;
    assert_eq!(body, list);
    let (_, store) = app.send("GET", "/store/1/", None).await;
    assert_eq!(store["closures"], 2);

    for (bad, says) in [
        (
            json!([{"date": "2026-12-25"}, {"from": "2026-12-31T18:00", "to": "2026-12-31T09:00"}]),
            "closures[1].to",
        ),
        (json!([{"date": "2026-02-30"}]), "closures[0].date"),
        (
            json!([{"date": "2026-12-25", "from": "2026-12-24T00:00"}]),
            "closures[0]",
        ),
        (
            json!([{"from": "2026-12-24T00:00"}]),
            "closures[0].to: missing",
        ),
        (
            json!([{"from": "2026-12-24T00:00+01:00", "to": "2026-12-25T00:00"}]),
            "closures[0].from",
        ),
        (json!({"date": "2026-12-25"}), "closures: expected a list"),
    ] {
        let (status, body) = send(&app, "PUT", "/store/1/closures/", bad).await;
        assert_refused(status, &body, "invalid_closures", "closures", says);
    }
    let (_, body) = app.send("GET", "/store/1/closures/", None).await;
    assert_eq!(body, list, "refusals changed nothing");
    let (status, body) = send(&app, "PUT", "/store/1/closures/", json!([])).await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    let (status, body) = send(&app, "PUT", "/store/999/closures/", json!([])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "store_not_found");
    let (status, _) = app.send("PUT", "/store/1/closures/", Some("[{")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn send_later_at_post_and_preview() {
    let app = app().await;
    // 19:30 in Chicago today.
    let later = json!("2026-11-26T01:30:00Z");
    let (status, preview) = send(
        &app,
        "POST",
        "/chat/preview/",
        chat_at(1, 24, "Later", later.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["sendAt"], later);
    assert_eq!(preview["clientLocalSendAt"], "2026-11-25T19:30:00-06:00");
    assert_eq!(preview["waitingFor"], "send_at");
    let (status, posted) = send(
        &app,
        "POST",
        "/chat/",
        chat_at(1, 24, "Later", later.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{posted}");
    assert_eq!(
        (posted["sendAt"].clone(), posted["waitingFor"].clone()),
        (later.clone(), json!("send_at"))
    );
    let (_, view) = app
        .send("GET", &format!("/chat/{}/", posted["chatId"]), None)
        .await;
    assert_eq!(view["waitingFor"], "send_at");
    assert_eq!(view["requestedSendAt"], later);
    // Null is no request; a moment ago still is now.
    let (_, now) = send(
        &app,
        "POST",
        "/chat/preview/",
        chat_at(1, 24, "Now", Value::Null),
    )
    .await;
    assert_eq!(
        (now["sendAt"].clone(), now["waitingFor"].clone()),
        (json!("2026-11-25T15:00:00Z"), Value::Null)
    );
    let (_, now) = send(
        &app,
        "POST",
        "/chat/preview/",
        chat_at(1, 24, "Now", json!("2026-11-25T14:59:30Z")),
    )
    .await;
    assert_eq!(now["waitingFor"], Value::Null);

    let (_, before) = app.send("GET", "/conversation/1/", None).await;
    for (bad, says) in [
        (json!("tomorrow"), "not an RFC 3339"),
        (json!("2026-11-25T14:58:00Z"), "in the past"),
        (json!("2027-03-01T00:00:00Z"), "90 days"),
        (json!(1764082800), "expected an RFC 3339 timestamp string"),
    ] {
        for uri in ["/chat/", "/chat/preview/"] {
            let (status, body) =
                send(&app, "POST", uri, chat_at(1, 24, "Later", bad.clone())).await;
            assert_refused(status, &body, "invalid_send_at", "sendAt", says);
        }
    }
    let (_, after) = app.send("GET", "/conversation/1/", None).await;
    assert_eq!(before, after, "nothing stored");
}

#[tokio::test]
async fn the_conversation_says_why_each_waiting_chat_waits() {
    let app = app().await;
    let post = |payload: &str, send_at: Value| {
        let body = chat_at(1, 24, payload, send_at);
        let app = &app;
        async move {
            let (status, posted) = send(app, "POST", "/chat/", body).await;
            assert_eq!(status, StatusCode::CREATED, "{posted}");
            posted["chatId"].as_i64().unwrap()
        }
    };
    let now = post("Now", Value::Null).await;
    // 19:30 in Chicago today; 21:00, outside the window.
    let later = post("Later", json!("2026-11-26T01:30:00Z")).await;
    let night = post("Tonight", json!("2026-11-26T03:00:00Z")).await;
    let waiting = |page: &Value| -> Vec<(i64, Value)> {
        page["chats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["chatId"].as_i64().unwrap(), c["waitingFor"].clone()))
            .collect()
    };
    let (status, page) = app.send("GET", "/conversation/1/", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let expected = vec![
        (1, Value::Null),
        (2, Value::Null),
        (3, Value::Null),
        (now, Value::Null),
        (later, json!("send_at")),
        (night, json!("send_at")),
    ];
    assert_eq!(waiting(&page), expected);

    // Past the night's sendAt: the window holds it, decided again now, as the chat says.
    app.clock.set(
        chrono::DateTime::parse_from_rfc3339("2026-11-26T03:05:00Z")
            .unwrap()
            .into(),
    );
    let (_, page) = app.send("GET", "/conversation/1/", None).await;
    let chats = waiting(&page);
    assert_eq!(chats[5], (night, json!("active_hours")), "{page}");
    assert_eq!(chats[4], (later, Value::Null), "due since 19:30: {page}");
    for (id, rule) in chats {
        let (_, chat) = app.send("GET", &format!("/chat/{id}/"), None).await;
        assert_eq!(chat["waitingFor"], rule, "{chat}");
    }
}

#[tokio::test]
async fn the_document_covers_the_policy() {
    let app = app().await;
    let (_, doc) = app.send("GET", "/openapi.json", None).await;
    let paths = &doc["paths"];
    assert!(
        paths["/store/{id}/closures/"]["get"].is_object(),
        "{}",
        paths
    );
    assert!(paths["/store/{id}/closures/"]["put"].is_object());
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["PatchStoreBody"]["properties"]["maxPerClient"].is_object());
    assert!(schemas["PatchStoreBody"]["properties"]["replyGrace"].is_object());
    assert!(schemas["ChatBody"]["properties"]["sendAt"].is_object());
    assert!(schemas["ChatViewResponse"]["properties"]["waitingFor"].is_object());
    assert!(schemas["PreviewResponse"]["properties"]["waitingFor"].is_object());
    assert!(schemas["Chat"]["properties"]["waitingFor"].is_object());
    let rules = schemas["Waiting"].to_string();
    for rule in ["active_hours", "closure", "send_at", "frequency_cap"] {
        assert!(rules.contains(rule), "{rules}");
    }
}
