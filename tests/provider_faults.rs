//! A provider that hangs or fails never holds up anybody else: its line's conferences wait
//! for it alone — other lines of the tenant, and other tenants, are provisioned at once — and a
//! line whose provider keeps failing is released, not leaked. Zoom played by wiremock.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A Zoom account `user` that answers a create with `status` (201: the meeting, marked with the
/// request's agenda) after `delay`.
async fn account(server: &MockServer, user: &str, status: u16, delay: Duration) {
    let user_name = user.to_owned();
    Mock::given(method("POST"))
        .and(path(format!("/v2/users/{user}%40example.com/meetings")))
        .respond_with(move |request: &Request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            let answer = ResponseTemplate::new(status).set_delay(delay);
            if status == 201 {
                answer.set_body_json(json!({
                    "id": 95000000001_u64, "topic": "t", "agenda": body["agenda"],
                    "join_url": format!("https://zoom.example/j/{user_name}"),
                    "start_url": format!("https://zoom.example/s/{user_name}"), "password": "p"}))
            } else {
                answer
            }
        })
        .mount(server)
        .await;
}

async fn zoom_line(app: &TestApp, tenant: &str, name: &str, user: &str) {
    app.post(
        "/api/v1/lines",
        &token(tenant, "admin", true),
        json!({"name": name, "provider": "zoom", "settings": {
            "account_id": "acct", "client_id": "cid", "client_secret": "cs",
            "user_id": format!("{user}@example.com")}}),
    )
    .await
    .ok(201);
}

async fn book(app: &TestApp, tenant: &str, hour: i64) -> (Value, Duration) {
    let started = Instant::now();
    let reply = app
        .post(
            "/api/v1/conferences",
            &token(tenant, "alice", false),
            json!({"subject": "s", "start": later(hour), "end": later(hour + 1)}),
        )
        .await;
    assert!(
        reply.status == 201 || reply.status == 202,
        "{:?}",
        reply.body
    );
    (reply.body.clone(), started.elapsed())
}

#[tokio::test]
async fn a_hanging_provider_holds_up_only_its_own_line() {
    let zoom = zoom_oauth().await;
    account(&zoom, "hangs", 201, Duration::from_secs(60)).await;
    account(&zoom, "quick", 201, Duration::ZERO).await;
    account(&zoom, "other", 201, Duration::ZERO).await;
    let app = spawn_app_with(&[
        "--zoom-api-url",
        &format!("{}/v2", zoom.uri()),
        "--zoom-oauth-url",
        &zoom.uri(),
        "--provision-wait-ms",
        "3000",
    ])
    .await;
    for tenant in ["acme", "globex"] {
        app.put(
            "/api/v1/directory/users/alice",
            &token(tenant, "admin", true),
            json!({"name": "Alice"}),
        )
        .await
        .ok(200);
    }
    zoom_line(&app, "acme", "Hangs", "hangs").await;
    zoom_line(&app, "acme", "Quick", "quick").await;
    zoom_line(&app, "globex", "Other", "other").await;
    app.seed("initech", 1).await;

    // Five conferences on the hanging line (each waits for it, and is answered 202).
    for n in 0..5 {
        let (hung, _) = book(&app, "acme", 30 + 2 * n).await;
        assert_eq!(hung["line"]["id"], "line-1");
        assert_eq!(hung["provisioning"], "pending");
    }
    // The tenant's other line, at an hour the hanging line holds: provisioned at once.
    let (quick, quick_took) = book(&app, "acme", 30).await;
    assert_eq!(quick["line"]["id"], "line-2");
    assert_eq!(quick["provisioning"], "done", "{quick}");
    assert!(
        quick_took < Duration::from_secs(2),
        "the other line waited {quick_took:?}"
    );
    // Another tenant's Zoom line, and a builtin line: at once.
    let (other, other_took) = book(&app, "globex", 40).await;
    assert_eq!(other["provisioning"], "done", "{other}");
    assert!(
        other_took < Duration::from_secs(2),
        "the other tenant waited {other_took:?}"
    );
    let (builtin, builtin_took) = book(&app, "initech", 40).await;
    assert_eq!(builtin["provisioning"], "not_needed");
    assert!(
        builtin_took < Duration::from_millis(500),
        "a builtin line waited {builtin_took:?}"
    );
    println!(
        "while one line's provider hung: the tenant's other Zoom line answered 201 in {quick_took:?}, \
         another tenant's in {other_took:?}, a builtin line in {builtin_took:?}"
    );
}

#[tokio::test]
async fn a_provider_that_keeps_failing_releases_its_line_and_holds_up_nobody() {
    let zoom = zoom_oauth().await;
    account(&zoom, "fails", 500, Duration::ZERO).await;
    account(&zoom, "other", 201, Duration::ZERO).await;
    let app = spawn_app_with(&[
        "--zoom-api-url",
        &format!("{}/v2", zoom.uri()),
        "--zoom-oauth-url",
        &zoom.uri(),
        "--provision-wait-ms",
        "500",
        "--provider-retry-ms",
        "200",
    ])
    .await;
    for tenant in ["acme", "globex"] {
        app.put(
            "/api/v1/directory/users/alice",
            &token(tenant, "admin", true),
            json!({"name": "Alice"}),
        )
        .await
        .ok(200);
    }
    zoom_line(&app, "acme", "Fails", "fails").await;
    zoom_line(&app, "globex", "Other", "other").await;
    let (failing, _) = book(&app, "acme", 30).await;
    let id = failing["id"].as_str().unwrap().to_owned();
    // While it retries, another tenant is served at once.
    let (other, took) = book(&app, "globex", 30).await;
    assert_eq!(other["provisioning"], "done", "{other}");
    assert!(
        took < Duration::from_secs(1),
        "the other tenant waited {took:?}"
    );
    // The failing conference ends failed, and its line is free again for that hour.
    let alice = token("acme", "alice", false);
    eventually(Duration::from_secs(30), "provisioning failed", async || {
        let view = app.get(&format!("/api/v1/conferences/{id}"), &alice).await;
        (view.body["provisioning"] == "failed").then_some(())
    })
    .await;
    let view = app.get(&format!("/api/v1/conferences/{id}"), &alice).await;
    assert_eq!(view.body["status"], "cancelled");
    let again = app
        .post(
            "/api/v1/conferences",
            &alice,
            json!({"subject": "again", "start": later(30), "end": later(31)}),
        )
        .await;
    assert!(
        again.status == 201 || again.status == 202,
        "the line leaked: {:?}",
        again.body
    );
    assert_eq!(again.body["line"]["id"], "line-1");
}
