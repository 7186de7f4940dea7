//! Webhooks on the server runtime over real HTTP (SPEC §10): on SQLite one server, on
//! PostgreSQL two servers sharing the database; a receiver on 127.0.0.1 counts each
//! `webhook-id`, and every event reaches the webhook exactly once.

mod common;

use axum::http::{HeaderMap, StatusCode};
use common::{sqlite_and_outbox, wait_until, Backend, TestServer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "e2e-deployment-token";

async fn start(backend: &Backend, dir: &std::path::Path) -> TestServer {
    let mut args = vec![
        "--database-url".to_owned(),
        backend.database_url(),
        "--api-token".to_owned(),
        TOKEN.to_owned(),
        "--webhook-allow-private".to_owned(),
    ];
    if let Backend::Sqlite(_) = backend {
        args.extend(sqlite_and_outbox(dir).into_iter().skip(2));
    } else {
        args.extend([
            "--outbox-dir".to_owned(),
            dir.join("outbox").display().to_string(),
        ]);
    }
    TestServer::start(&args).await
}

type Counts = Arc<Mutex<HashMap<String, usize>>>;

/// A receiver answering 204 and counting each `webhook-id` it got.
async fn receiver() -> (String, Counts) {
    let counts: Counts = Arc::default();
    let seen = counts.clone();
    let handler = move |headers: HeaderMap| {
        let seen = seen.clone();
        async move {
            let id = headers["webhook-id"].to_str().unwrap().to_owned();
            *seen.lock().unwrap().entry(id).or_default() += 1;
            StatusCode::NO_CONTENT
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::Router::new().route("/hook", axum::routing::post(handler)),
        )
        .await
        .unwrap();
    });
    (url, counts)
}

#[tokio::test]
async fn every_event_reaches_the_webhook_once() {
    for backend in Backend::all().await {
        let dir = tempfile::tempdir().unwrap();
        let first = start(&backend, dir.path()).await;
        let servers = if let Backend::Sqlite(_) = backend {
            vec![first]
        } else {
            let second = start(&backend, dir.path()).await;
            vec![first, second]
        };
        let a = &servers[0];
        let (status, _) = a.get("/import_data/").await;
        assert_eq!(status, 200, "{}", backend.name());
        let (url, counts) = receiver().await;
        let (status, made) = a
            .post(
                "/webhooks/",
                &json!({"url": url, "events": ["client.created"], "storeId": 1}),
            )
            .await;
        assert_eq!(status, 201, "{made}");
        let clients = 40;
        for n in 0..clients {
            let server = &servers[n % servers.len()];
            let body = json!({"storeId": 1, "name": format!("Client {n}"), "email": format!("c{n}@example.com")});
            let (status, body): (u16, Value) = server.post("/clients/", &body).await;
            assert_eq!(status, 201, "{body}");
        }
        wait_until("every event delivered", 30, || {
            let counts = counts.clone();
            async move { counts.lock().unwrap().len() == clients }
        })
        .await;
        // A little longer: a second delivery of any of them would show now.
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let counts = counts.lock().unwrap().clone();
        assert_eq!(counts.len(), clients, "{}: {counts:?}", backend.name());
        assert!(
            counts.values().all(|&n| n == 1),
            "{}: repeats {counts:?}",
            backend.name()
        );
        let (_, log) = a
            .get(&format!(
                "/webhook/{}/deliveries/?limit=1000",
                made["webhookId"]
            ))
            .await;
        let delivered = log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["status"] == "delivered")
            .count();
        assert_eq!(delivered, clients, "{}: {log}", backend.name());
        for server in servers {
            server.stop().await;
        }
    }
}

#[tokio::test]
async fn a_delivery_held_by_a_killed_server_goes_again_after_its_lease() {
    for backend in Backend::all().await {
        let dir = tempfile::tempdir().unwrap();
        let args = vec!["--webhook-lease".to_owned(), "2s".to_owned()];
        let server = start_with(&backend, dir.path(), &args).await;
        let (status, _) = server.get("/import_data/").await;
        assert_eq!(status, 200);
        // The receiver holds its first request open, answers later ones at once.
        let seen: Counts = Arc::default();
        let counted = seen.clone();
        let handler = move |headers: HeaderMap| {
            let counted = counted.clone();
            async move {
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                let first = {
                    let mut seen = counted.lock().unwrap();
                    let total: usize = seen.values().sum();
                    *seen.entry(id).or_default() += 1;
                    total == 0
                };
                if first {
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                }
                StatusCode::NO_CONTENT
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(
                listener,
                axum::Router::new().route("/hook", axum::routing::post(handler)),
            )
            .await
            .unwrap();
        });
        let (status, made) = server
            .post(
                "/webhooks/",
                &json!({"url": url, "events": ["client.created"], "storeId": 1}),
            )
            .await;
        assert_eq!(status, 201, "{made}");
        let (status, _) = server
            .post(
                "/clients/",
                &json!({"storeId": 1, "name": "Held", "email": "held@example.com"}),
            )
            .await;
        assert_eq!(status, 201);
        wait_until("the held request", 10, || {
            let seen = seen.clone();
            async move { !seen.lock().unwrap().is_empty() }
        })
        .await;
        server.kill();
        // Another server on the same database sends it again once the lease ran out.
        let again = start_with(&backend, dir.path(), &args).await;
        wait_until("the repeat", 20, || {
            let seen = seen.clone();
            async move { seen.lock().unwrap().values().sum::<usize>() >= 2 }
        })
        .await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen.len(),
            1,
            "{}: the same webhook-id: {seen:?}",
            backend.name()
        );
        assert_eq!(
            seen.values().sum::<usize>(),
            2,
            "{}: {seen:?}",
            backend.name()
        );
        let id = made["webhookId"].clone();
        wait_until("the delivered attempt", 10, || {
            let (again, id) = (&again, id.clone());
            async move {
                let (_, log) = again.get(&format!("/webhook/{id}/deliveries/")).await;
                log["deliveries"][0]["status"] == "delivered"
            }
        })
        .await;
        again.stop().await;
    }
}

async fn start_with(backend: &Backend, dir: &std::path::Path, extra: &[String]) -> TestServer {
    let mut args = vec![
        "--database-url".to_owned(),
        backend.database_url(),
        "--api-token".to_owned(),
        TOKEN.to_owned(),
        "--webhook-allow-private".to_owned(),
        "--outbox-dir".to_owned(),
        dir.join("outbox").display().to_string(),
    ];
    args.extend(extra.iter().cloned());
    TestServer::start(&args).await
}

/// What the receiver got while it was up: each delivered event's id and conversation, in
/// the order they arrived.
type Arrivals = Arc<Mutex<Vec<(String, i64)>>>;

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_everything_after_in_order_per_conversation() {
    for backend in Backend::all().await {
        let dir = tempfile::tempdir().unwrap();
        let first = start(&backend, dir.path()).await;
        let servers = if let Backend::Sqlite(_) = backend {
            vec![first]
        } else {
            let second = start(&backend, dir.path()).await;
            vec![first, second]
        };
        let a = &servers[0];
        let (status, _) = a.get("/import_data/").await;
        assert_eq!(status, 200, "{}", backend.name());
        // The receiver's address is known, but nothing listens there yet: connections are
        // refused, as from a receiver that is down.
        let address = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let (status, made) = a
            .post(
                "/webhooks/",
                &json!({"url": format!("http://{address}/hook"), "events": ["chat.received"], "storeId": 1}),
            )
            .await;
        assert_eq!(status, 201, "{made}");
        let mut conversations = Vec::new();
        for n in 0..3 {
            let body = json!({"storeId": 1, "name": format!("Client {n}"), "email": format!("down{n}@example.com")});
            let (status, client) = a.post("/clients/", &body).await;
            assert_eq!(status, 201, "{client}");
            let body = json!({"storeId": 1, "operatorId": 24, "clientId": client["clientId"]});
            let (status, conversation) = a.post("/conversations/", &body).await;
            assert_eq!(status, 201, "{conversation}");
            conversations.push((
                client["clientId"].clone(),
                conversation["conversationId"].clone(),
            ));
        }
        let per_conversation = 5;
        for n in 0..per_conversation {
            for (i, (client, conversation)) in conversations.iter().enumerate() {
                let server = &servers[(n + i) % servers.len()];
                let body = json!({"conversationId": conversation, "chat": {"payload": format!("Question {n}"), "userId": client}});
                let (status, body) = server.post("/chat/", &body).await;
                assert_eq!(status, 201, "{body}");
            }
        }
        let expected = per_conversation * conversations.len();
        // Down past the first retry (5 s after the first attempt), then up.
        tokio::time::sleep(std::time::Duration::from_secs(7)).await;
        let webhook = made["webhookId"].clone();
        let (_, log) = a
            .get(&format!("/webhook/{webhook}/deliveries/?limit=100"))
            .await;
        let attempts = log["deliveries"].as_array().unwrap();
        assert!(
            !attempts.is_empty() && attempts.iter().all(|d| d["status"] == "retrying"),
            "{}: while down every attempt is to be retried: {log}",
            backend.name()
        );
        let arrivals: Arrivals = Arc::default();
        let noted = arrivals.clone();
        let handler = move |headers: HeaderMap, body: axum::Json<Value>| {
            let noted = noted.clone();
            async move {
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                let conversation = body.0["data"]["conversationId"].as_i64().unwrap();
                noted.lock().unwrap().push((id, conversation));
                StatusCode::NO_CONTENT
            }
        };
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                axum::Router::new().route("/hook", axum::routing::post(handler)),
            )
            .await
            .unwrap();
        });
        wait_until(
            "everything delivered after the receiver came back",
            60,
            || {
                let arrivals = arrivals.clone();
                async move { arrivals.lock().unwrap().len() >= expected }
            },
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let arrivals = arrivals.lock().unwrap().clone();
        assert_eq!(arrivals.len(), expected, "{}: {arrivals:?}", backend.name());
        let ids: std::collections::HashSet<_> = arrivals.iter().map(|(id, _)| id).collect();
        assert_eq!(
            ids.len(),
            expected,
            "{}: each once: {arrivals:?}",
            backend.name()
        );
        for (_, conversation) in &conversations {
            let order: Vec<&String> = arrivals
                .iter()
                .filter(|(_, c)| Some(*c) == conversation.as_i64())
                .map(|(id, _)| id)
                .collect();
            assert_eq!(order.len(), per_conversation, "{}", backend.name());
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "{}: conversation {conversation} in order: {order:?}",
                backend.name()
            );
        }
        for server in servers {
            server.stop().await;
        }
    }
}
