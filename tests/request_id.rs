//! A request id ties a log line, a response and an event together: the caller's `X-Request-Id`
//! (a UUID) or a new one comes back on the response, is on the request's log lines, and is the
//! stored events' correlation id.

mod common;

use common::*;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn a_request_id_is_returned_logged_and_stored_as_the_events_correlation_id() {
    let (app, log) = spawn_app_logged(&[]).await;
    app.seed("acme", 1).await;
    let alice = token("acme", "alice", false);
    let book = |hour: i64| json!({"subject": "s", "start": later(hour), "end": later(hour + 1)});

    // The caller's id is kept.
    let given = Uuid::now_v7();
    let reply = app
        .send(
            app.request(reqwest::Method::POST, "/api/v1/conferences", &alice)
                .header("X-Request-Id", given.to_string())
                .json(&book(30)),
        )
        .await;
    reply.ok(201);
    assert_eq!(
        reply.header("x-request-id"),
        Some(given.to_string().as_str())
    );
    let first = reply.body["id"].as_str().unwrap().to_owned();

    // Without one, or with one that is not a UUID: a new one, returned.
    let mut made = Vec::new();
    for header in [
        None,
        Some("<script>alert(1)</script>"),
        Some("00000000-0000-0000-0000-000000000000"),
    ] {
        let mut request = app
            .request(reqwest::Method::POST, "/api/v1/conferences", &alice)
            .json(&book(32 + 2 * made.len() as i64));
        if let Some(value) = header {
            request = request.header("X-Request-Id", value);
        }
        let reply = app.send(request).await;
        reply.ok(201);
        let id = Uuid::parse_str(reply.header("x-request-id").expect("an id comes back")).unwrap();
        assert_eq!(id.get_version_num(), 7, "{header:?}");
        made.push((reply.body["id"].as_str().unwrap().to_owned(), id));
    }
    // A refusal carries one too.
    let refused = app
        .send(
            app.request(
                reqwest::Method::GET,
                "/api/v1/conferences/not-an-id",
                &alice,
            )
            .header("X-Request-Id", given.to_string()),
        )
        .await;
    assert_eq!(
        refused.header("x-request-id"),
        Some(given.to_string().as_str())
    );

    // Stored: each conference's events carry their request's id.
    let store = app.event_store().await;
    let log_events = store.read_all(0, 1000).await.unwrap();
    let correlation_of = |conference: &str| {
        log_events
            .iter()
            .find(|recorded| {
                recorded
                    .event
                    .conference()
                    .map(|id| id.to_string())
                    .as_deref()
                    == Some(conference)
            })
            .map(|recorded| recorded.metadata.correlation_id)
    };
    assert_eq!(correlation_of(&first), Some(given));
    for (conference, request) in &made {
        assert_eq!(correlation_of(conference), Some(*request));
    }
    // Logged: the request's lines carry it.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged
            .lines()
            .any(|line| line.contains(&given.to_string()) && line.contains("/api/v1/conferences")),
        "no log line names request {given}"
    );
    assert!(!logged.contains("<script>"), "the hostile id is not logged");
    let _ = std::fs::remove_file(log);
}
