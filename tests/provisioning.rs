//! Provisioning on a Zoom line, end to end: the real binary, Zoom played by wiremock.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const T: &str = "acme";

async fn zoom() -> MockServer {
    zoom_oauth().await
}

/// Answers a create with a meeting carrying the request's agenda (the conference marker).
fn created_from(request: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    ResponseTemplate::new(201).set_body_json(meeting(&body["agenda"]))
}

fn meeting(agenda: &Value) -> Value {
    json!({"id": 93000000001_u64, "topic": "周会", "agenda": agenda,
           "join_url": "https://acme.zoom.us/j/93000000001?pwd=xyz", "start_url": "https://acme.zoom.us/s/93000000001?zak=secret", "password": "p1"})
}

/// The server's flags that point its Zoom adapter at the mock (operator configuration).
fn zoom_flags(server: &MockServer) -> Vec<String> {
    vec![
        "--zoom-api-url".to_owned(),
        format!("{}/v2", server.uri()),
        "--zoom-oauth-url".to_owned(),
        server.uri(),
    ]
}

async fn spawn_with_zoom(server: &MockServer, extra: &[&str]) -> TestApp {
    let flags = zoom_flags(server);
    let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    spawn_app_with(&all).await
}

async fn zoom_line(app: &TestApp, server: &MockServer) {
    let _ = server;
    let admin = token(T, "admin", true);
    app.post(
        "/api/v1/lines",
        &admin,
        json!({"name": "Zoom 1", "provider": "zoom", "settings": {
            "account_id": "acct", "client_id": "cid", "client_secret": "cs", "user_id": "host@acme.example"}}),
    )
    .await
    .ok(201);
}

async fn count(server: &MockServer, verb: &str, prefix: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|request| request.method.as_str() == verb && request.url.path().starts_with(prefix))
        .count()
}

#[tokio::test]
async fn a_conference_on_a_zoom_line_gets_its_meeting_and_cancel_and_end_reach_zoom() {
    let server = zoom().await;
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(created_from)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex("^/v2/meetings/\\d+$"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex("^/v2/meetings/\\d+/status$"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let app = spawn_with_zoom(&server, &[]).await;
    app.seed(T, 0).await;
    zoom_line(&app, &server).await;

    let created = app.schedule(T, "alice", 5, 6).await;
    let body = created.ok(201);
    assert_eq!(body["provisioning"], "done");
    assert_eq!(
        body["links"]["attendee"],
        "https://acme.zoom.us/j/93000000001?pwd=xyz"
    );
    assert_eq!(body["links"]["host"], "https://acme.zoom.us/s/93000000001");
    assert!(
        !created.text.contains("zak="),
        "the expiring start URL is not handed out"
    );
    let bob = app
        .get(
            &format!("/api/v1/conferences/{}", body["id"].as_str().unwrap()),
            &token(T, "bob", false),
        )
        .await;
    assert!(bob.ok(200)["links"]["host"].is_null());

    let cancelled = app
        .post(
            &format!(
                "/api/v1/conferences/{}/cancel",
                body["id"].as_str().unwrap()
            ),
            &token(T, "alice", false),
            json!({}),
        )
        .await;
    cancelled.ok(200);
    let quick = app
        .post(
            "/api/v1/conferences",
            &token(T, "alice", false),
            json!({"mode": "quick", "subject": "now"}),
        )
        .await;
    let quick_id = quick.ok(201)["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/conferences/{quick_id}/end"),
        &token(T, "alice", false),
        json!({}),
    )
    .await
    .ok(200);
    let started = Instant::now();
    while count(&server, "DELETE", "/v2/meetings/").await < 1
        || count(&server, "PUT", "/v2/meetings/").await < 1
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "cancel and end did not reach Zoom"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&server, "POST", "/v2/users/").await, 2);
    assert_eq!(
        count(&server, "POST", "/oauth/token").await,
        1,
        "the token is reused"
    );
}

#[tokio::test]
async fn five_server_errors_end_in_provisioning_failed_and_free_the_line() {
    let server = zoom().await;
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(json!({"code": 500, "message": "boom"})),
        )
        .up_to_n_times(5)
        .with_priority(1)
        .mount(&server)
        .await;
    // Zoom's list shows no meeting of ours (a 500 is ambiguous, so the adapter looks).
    Mock::given(method("GET"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"meetings": []})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(created_from)
        .mount(&server)
        .await;
    let app = spawn_with_zoom(&server, &["--provider-retry-ms", "5"]).await;
    app.seed(T, 0).await;
    zoom_line(&app, &server).await;

    let failed = app.schedule(T, "alice", 5, 6).await;
    let body = failed.ok(201);
    assert_eq!(body["provisioning"], "failed");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(count(&server, "POST", "/v2/users/").await, 5);
    // The line is free again: the same slot books (and this time Zoom answers).
    let again = app.schedule(T, "bob", 5, 6).await;
    assert_eq!(again.ok(201)["provisioning"], "done");
    let history = app
        .get(
            &format!(
                "/api/v1/conferences/{}/history",
                body["id"].as_str().unwrap()
            ),
            &token(T, "alice", false),
        )
        .await;
    let kinds: Vec<&str> = history.ok(200)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["ConferenceScheduled", "ProvisioningFailed"]);
    let summary = app
        .get("/api/v1/ops/summary", &token(T, "admin", true))
        .await;
    assert_eq!(summary.ok(200)["provider_failures"], 1);
}

/// Settings that do not decrypt (a node started with another `MEETLINE_SETTINGS_KEY`) are the
/// operator's to mend, not a reason to fail conferences for good: the conference stays pending,
/// is tried again (less and less often), and is provisioned once the right key is back.
#[tokio::test]
async fn settings_that_do_not_decrypt_wait_for_the_right_key_and_fail_nothing() {
    let server = zoom().await;
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(created_from)
        .mount(&server)
        .await;
    let mut zoom = zoom_flags(&server);
    zoom.extend(["--provision-wait-ms".to_owned(), "200".to_owned()]);
    let mut app = spawn_app_with(&flags(&zoom)).await;
    app.seed(T, 0).await;
    zoom_line(&app, &server).await;
    let mut other_key = zoom.clone();
    other_key.extend([
        "--settings-key".to_owned(),
        "another-settings-key-9876543210".to_owned(),
    ]);
    app.restart(&flags(&other_key));

    let pending = app.schedule(T, "alice", 5, 6).await;
    let body = pending.ok(202);
    assert_eq!(body["provisioning"], "pending");
    let id = body["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(count(&server, "POST", "/v2/").await, 0);
    assert_eq!(
        app.history(T, "alice", &id).await.len(),
        1,
        "no failure recorded"
    );

    app.restart(&flags(&zoom));
    let alice = token(T, "alice", false);
    eventually(
        Duration::from_secs(10),
        "provisioned with the right key",
        async || {
            let view = app.get(&format!("/api/v1/conferences/{id}"), &alice).await;
            (view.ok(200)["provisioning"] == "done").then_some(())
        },
    )
    .await;
    assert_eq!(count(&server, "POST", "/v2/users/").await, 1);
}

/// Stored settings that can never work for the line's provider (here: written past the API's
/// checks, as an older version might have kept them) are a permanent refusal: the create is
/// recorded as failed at once (the line is released), nothing is sent to the provider, and
/// nothing is tried again.
#[tokio::test]
async fn stored_settings_that_cannot_work_fail_the_provisioning_once_and_for_good() {
    let server = zoom().await;
    let mut app = spawn_with_zoom(&server, &[]).await;
    app.seed(T, 0).await;
    zoom_line(&app, &server).await;
    app.stop();
    let db = match &app.database {
        Some(database) => meetline_adapters::db::Database::connect_postgres(&database.url, 2)
            .await
            .unwrap(),
        None => meetline_adapters::db::Database::open_sqlite(&app.data.join("meetline.db"))
            .await
            .unwrap(),
    };
    let settings = meetline_adapters::line_settings::LineSettingsStore::new(db, SETTINGS_KEY)
        .await
        .unwrap();
    let (tenant, line) = (
        meetline_domain::types::TenantId::parse(T).unwrap(),
        meetline_domain::types::LineId::parse("line-1").unwrap(),
    );
    assert!(
        settings.get(&tenant, &line).await.unwrap().is_some(),
        "the line's id"
    );
    settings
        .put(&tenant, &line, &json!({"account_id": "acct"}))
        .await
        .unwrap();
    app.restart(&flags(&zoom_flags(&server)));

    let failed = app.schedule(T, "alice", 5, 6).await;
    let body = failed.ok(201);
    assert_eq!(body["provisioning"], "failed");
    let id = body["id"].as_str().unwrap().to_owned();
    let history = app.history(T, "alice", &id).await;
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["ConferenceScheduled", "ProvisioningFailed"]);
    assert!(
        history[1]["data"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("provider_not_configured:"),
        "{history:?}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(server.received_requests().await.unwrap().is_empty());
    let summary = app
        .get("/api/v1/ops/summary", &token(T, "admin", true))
        .await;
    assert_eq!(summary.ok(200)["provider_failures"], 1);
    assert_eq!(app.history(T, "alice", &id).await.len(), 2);
}

#[tokio::test]
async fn killed_between_scheduling_and_provisioning_the_conference_is_provisioned_exactly_once() {
    let server = zoom().await;
    // Zoom takes its time to answer the create; the server is killed meanwhile.
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(|request: &Request| created_from(request).set_delay(Duration::from_secs(4)))
        .mount(&server)
        .await;
    let data = fresh_data_dir();
    let database = fresh_database().await;
    let flags = zoom_flags(&server);
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (mut first, base) = start(&data, database.as_ref(), &{
        let mut first_args = args.clone();
        first_args.extend(["--provision-wait-ms", "0"]);
        first_args
    });
    let app = TestApp::attach(base, data.clone());
    app.seed(T, 0).await;
    zoom_line(&app, &server).await;
    let pending = app.schedule(T, "alice", 5, 6).await;
    assert_eq!(pending.status.as_u16(), 202, "{}", pending.text);
    assert_eq!(pending.body["provisioning"], "pending");
    let id = pending.body["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    while count(&server, "POST", "/v2/users/").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the create never reached Zoom"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();

    // Zoom did create it: its list now shows the meeting with our marker.
    let marker = json!(format!("meetline:{id}"));
    Mock::given(method("GET"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"meetings": [meeting(&marker)]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/meetings/93000000001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(meeting(&marker)))
        .mount(&server)
        .await;

    args.truncate(4);
    let (mut second, base) = start(&data, database.as_ref(), &args);
    let app = TestApp::attach(base, data.clone());
    let started = Instant::now();
    loop {
        let view = app
            .get(
                &format!("/api/v1/conferences/{id}"),
                &token(T, "alice", false),
            )
            .await;
        if view.body["provisioning"] == "done" {
            assert_eq!(
                view.body["links"]["attendee"],
                "https://acme.zoom.us/j/93000000001?pwd=xyz"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not provisioned after the restart: {}",
            view.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(&server, "POST", "/v2/users/").await,
        1,
        "Zoom was asked to create exactly once"
    );
    let history = app
        .get(
            &format!("/api/v1/conferences/{id}/history"),
            &token(T, "alice", false),
        )
        .await;
    let provisioned = history.ok(200)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "ConferenceProvisioned")
        .count();
    assert_eq!(provisioned, 1);
    second.kill().unwrap();
    second.wait().unwrap();
    drop(app);
    let _ = std::fs::remove_dir_all(&data);
}

const WEBHOOK_SECRET: &str = "zoom-webhook-secret-token";

fn signed(app: &TestApp, body: &Value, timestamp: i64, secret: &str) -> reqwest::RequestBuilder {
    signed_to(
        app,
        "/api/v1/providers/zoom/webhook",
        body,
        timestamp,
        secret,
    )
}

fn signed_to(
    app: &TestApp,
    url: &str,
    body: &Value,
    timestamp: i64,
    secret: &str,
) -> reqwest::RequestBuilder {
    let raw = serde_json::to_vec(body).unwrap();
    let signature =
        meetline_adapters::zoom::webhook::signature(secret, &timestamp.to_string(), &raw);
    app.client
        .post(app.url(url))
        .header("content-type", "application/json")
        .header("x-zm-request-timestamp", timestamp.to_string())
        .header("x-zm-signature", signature)
        .body(raw)
}

#[tokio::test]
async fn zoom_webhooks_are_verified_answer_the_challenge_and_record_real_times() {
    let server = zoom().await;
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(created_from)
        .mount(&server)
        .await;
    let app = spawn_with_zoom(&server, &[]).await;
    app.seed(T, 0).await;
    let admin = token(T, "admin", true);
    app.post(
        "/api/v1/lines",
        &admin,
        json!({"name": "Zoom 1", "provider": "zoom", "settings": {
            "account_id": "acct", "client_id": "cid", "client_secret": "cs", "user_id": "host@acme.example",
            "webhook_secret": WEBHOOK_SECRET}}),
    )
    .await
    .ok(201);
    let alice = token(T, "alice", false);
    let quick = app
        .post(
            "/api/v1/conferences",
            &alice,
            json!({"mode": "quick", "subject": "站会", "duration_minutes": 60}),
        )
        .await;
    assert_eq!(quick.ok(201)["provisioning"], "done");
    let id = quick.body["id"].as_str().unwrap().to_owned();
    let history_len = |reply: &Reply| reply.body["events"].as_array().unwrap().len();
    let before = app
        .get(&format!("/api/v1/conferences/{id}/history"), &alice)
        .await;
    // Let the conference run for a moment before Zoom reports its end.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let now = chrono::Utc::now().timestamp();
    let ended_at = chrono::DateTime::from_timestamp(now, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ended = json!({"event": "meeting.ended", "event_ts": 1_767_225_600_123_i64,
        "payload": {"account_id": "acct", "object": {"id": 93000000001_u64, "uuid": "x", "start_time": quick.body["start"], "end_time": ended_at}}});

    // Forged: a wrong secret, a stale timestamp, no signature at all.
    let forged = Reply::from(
        signed(&app, &ended, now, "not-the-secret")
            .send()
            .await
            .unwrap(),
    )
    .await;
    forged.problem(401, "unauthorized");
    let stale = Reply::from(
        signed(&app, &ended, now - 3600, WEBHOOK_SECRET)
            .send()
            .await
            .unwrap(),
    )
    .await;
    stale.problem(401, "unauthorized");
    let unsigned = Reply::from(
        app.client
            .post(app.url("/api/v1/providers/zoom/webhook"))
            .json(&ended)
            .send()
            .await
            .unwrap(),
    )
    .await;
    unsigned.problem(401, "unauthorized");
    let after_forged = app
        .get(&format!("/api/v1/conferences/{id}/history"), &alice)
        .await;
    assert_eq!(
        history_len(&after_forged),
        history_len(&before),
        "a forged webhook changed nothing"
    );
    assert_eq!(
        app.get(&format!("/api/v1/conferences/{id}"), &alice)
            .await
            .ok(200)["status"],
        "in_progress"
    );

    // The URL validation challenge.
    let challenge = json!({"event": "endpoint.url_validation", "event_ts": 1, "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}});
    let answer = Reply::from(
        signed(&app, &challenge, now, WEBHOOK_SECRET)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        answer.ok(200),
        &meetline_adapters::zoom::webhook::url_validation(WEBHOOK_SECRET, "qgg8vlvZRS6UYooatFL8Aw")
    );

    // meeting.started, then meeting.ended (twice: Zoom retries) with Zoom's real times.
    let started = json!({"event": "meeting.started", "event_ts": 1_767_225_600_000_i64,
        "payload": {"account_id": "acct", "object": {"id": 93000000001_u64, "start_time": quick.body["start"]}}});
    deliver(
        &app,
        "/api/v1/providers/zoom/webhook",
        &started,
        now,
        WEBHOOK_SECRET,
    )
    .await;
    for _ in 0..2 {
        deliver(
            &app,
            "/api/v1/providers/zoom/webhook",
            &ended,
            now,
            WEBHOOK_SECRET,
        )
        .await;
    }
    let view = app.get(&format!("/api/v1/conferences/{id}"), &alice).await;
    let started_wait = std::time::Instant::now();
    let mut view = view;
    while view.body["status"] != "manually_ended" {
        assert!(
            started_wait.elapsed() < Duration::from_secs(5),
            "{}",
            view.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        view = app.get(&format!("/api/v1/conferences/{id}"), &alice).await;
    }
    assert_eq!(view.body["ended_at"], json!(ended_at));
    let history = app
        .get(&format!("/api/v1/conferences/{id}/history"), &alice)
        .await;
    let kinds: Vec<&str> = history.ok(200)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "ProviderMeetingStarted")
            .count(),
        1
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "ProviderMeetingEnded")
            .count(),
        1,
        "a retried delivery is recorded once: {kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "ConferenceEndedEarly")
            .count(),
        1
    );
}

/// Delivers a notification as Zoom does: again after a 503 (the meeting not projected yet),
/// until it is accepted with 200.
async fn deliver(app: &TestApp, url: &str, body: &Value, timestamp: i64, secret: &str) {
    let started = Instant::now();
    loop {
        let reply = Reply::from(
            signed_to(app, url, body, timestamp, secret)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if reply.status.as_u16() == 503 {
            assert!(reply.headers.contains_key("retry-after"), "{}", reply.text);
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "still 503: {}",
                reply.text
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        reply.ok(200);
        return;
    }
}

/// Adds a Zoom line with its own webhook secret to `tenant` and starts a quick conference on it
/// (the mock gives every meeting the same id, as a second tenant claiming it would).
async fn quick_on_zoom(app: &TestApp, tenant: &str, secret: &str) -> String {
    let admin = token(tenant, "admin", true);
    app.post(
        "/api/v1/lines",
        &admin,
        json!({"name": "Zoom", "provider": "zoom", "settings": {
            "account_id": "acct", "client_id": "cid", "client_secret": "cs",
            "user_id": "host@acme.example", "webhook_secret": secret}}),
    )
    .await
    .ok(201);
    let quick = app
        .post(
            "/api/v1/conferences",
            &token(tenant, "alice", false),
            json!({"mode": "quick", "subject": "站会", "duration_minutes": 60}),
        )
        .await;
    assert_eq!(quick.ok(201)["provisioning"], "done", "{}", quick.text);
    quick.body["id"].as_str().unwrap().to_owned()
}

async fn status_becomes(app: &TestApp, tenant: &str, id: &str, wanted: &str) {
    let started = Instant::now();
    loop {
        let view = app
            .get(
                &format!("/api/v1/conferences/{id}"),
                &token(tenant, "alice", false),
            )
            .await;
        if view.body["status"] == wanted {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{}", view.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_tenant_cannot_hijack_another_tenants_meeting_and_webhooks_resolve_by_the_signing_line() {
    let server = zoom().await;
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(created_from)
        .mount(&server)
        .await;
    let app = spawn_with_zoom(&server, &[]).await;
    app.seed("acme", 0).await;
    app.seed("globex", 0).await;
    let victim = quick_on_zoom(&app, "acme", "acme-webhook-secret").await;
    // The other tenant's line reports a meeting with the very same id.
    let claimant = quick_on_zoom(&app, "globex", "globex-webhook-secret").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let now = chrono::Utc::now().timestamp();
    let ended = |at: i64| {
        let at = chrono::DateTime::from_timestamp(at, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        json!({"event": "meeting.ended", "event_ts": now * 1000,
               "payload": {"object": {"id": 93000000001_u64, "end_time": at}}})
    };
    // The victim's genuine notification, on the shared URL, still reaches the victim.
    deliver(
        &app,
        "/api/v1/providers/zoom/webhook",
        &ended(now),
        now,
        "acme-webhook-secret",
    )
    .await;
    status_becomes(&app, "acme", &victim, "manually_ended").await;
    let claimant_view = app
        .get(
            &format!("/api/v1/conferences/{claimant}"),
            &token("globex", "alice", false),
        )
        .await;
    assert_eq!(claimant_view.ok(200)["status"], "in_progress");

    // Per-line URL: only that line's secret verifies, and it resolves within that line.
    let globex_url = "/api/v1/providers/zoom/webhook/globex/line-1";
    let wrong = Reply::from(
        signed_to(&app, globex_url, &ended(now), now, "acme-webhook-secret")
            .send()
            .await
            .unwrap(),
    )
    .await;
    wrong.problem(401, "unauthorized");
    deliver(&app, globex_url, &ended(now), now, "globex-webhook-secret").await;
    status_becomes(&app, "globex", &claimant, "manually_ended").await;

    // A timestamp that would overflow a subtraction is refused, not a crash.
    for stamp in [
        now.wrapping_add(i64::MIN),
        i64::MIN,
        i64::MAX,
        now - i64::MAX,
    ] {
        let reply = Reply::from(
            signed_to(
                &app,
                globex_url,
                &ended(now),
                stamp,
                "globex-webhook-secret",
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        reply.problem(401, "unauthorized");
    }

    // A meeting the account hosts but meetline did not make, once the read models are caught
    // up: acknowledged, nothing done (a 503 would have Zoom retry it for ever).
    let unknown = json!({"event": "meeting.started", "event_ts": 1,
        "payload": {"object": {"id": 12345_u64, "start_time": "2026-01-01T00:00:00Z"}}});
    let store = app.event_store().await;
    let head = store.head_position().await.unwrap();
    // Read-your-writes: this waits until the read models have applied the whole log.
    app.send(
        app.request(
            reqwest::Method::GET,
            "/api/v1/conferences/recent",
            &token("globex", "alice", false),
        )
        .header("x-min-position", head),
    )
    .await
    .ok(200);
    for url in ["/api/v1/providers/zoom/webhook", globex_url] {
        let reply = Reply::from(
            signed_to(&app, url, &unknown, now, "globex-webhook-secret")
                .send()
                .await
                .unwrap(),
        )
        .await;
        reply.ok(200);
    }
    assert_eq!(store.head_position().await.unwrap(), head);
    // A malformed meeting id or signature is refused before any secret is read.
    let hostile = json!({"event": "meeting.started", "event_ts": 1,
        "payload": {"object": {"id": "12\u{0}' OR 1=1", "start_time": "2026-01-01T00:00:00Z"}}});
    let reply = Reply::from(
        signed_to(
            &app,
            "/api/v1/providers/zoom/webhook",
            &hostile,
            now,
            "globex-webhook-secret",
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    reply.problem(400, "malformed_request");
    let reply = Reply::from(
        app.client
            .post(app.url("/api/v1/providers/zoom/webhook"))
            .header("x-zm-request-timestamp", now.to_string())
            .header("x-zm-signature", "nothex")
            .json(&unknown)
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.problem(401, "unauthorized");
}

#[tokio::test]
async fn a_verified_webhook_for_a_meeting_not_projected_yet_is_asked_to_come_again() {
    // A command-only node runs no projector: its read models stay behind the log.
    let server = zoom().await;
    let app = spawn_with_zoom(&server, &["--role", "command"]).await;
    let admin = token(T, "admin", true);
    app.put(
        "/api/v1/directory/users/alice",
        &admin,
        json!({"name": "Alice"}),
    )
    .await
    .ok(200);
    app.post(
        "/api/v1/lines",
        &admin,
        json!({"name": "Zoom", "provider": "zoom", "settings": {
            "account_id": "acct", "client_id": "cid", "client_secret": "cs",
            "user_id": "host@acme.example", "webhook_secret": WEBHOOK_SECRET}}),
    )
    .await
    .ok(201);
    let now = chrono::Utc::now().timestamp();
    let started = json!({"event": "meeting.started", "event_ts": 1,
        "payload": {"object": {"id": 93000000001_u64, "start_time": "2026-01-01T00:00:00Z"}}});
    for url in [
        "/api/v1/providers/zoom/webhook",
        &format!("/api/v1/providers/zoom/webhook/{T}/line-1"),
    ] {
        let reply = Reply::from(
            signed_to(&app, url, &started, now, WEBHOOK_SECRET)
                .send()
                .await
                .unwrap(),
        )
        .await;
        reply.problem(503, "unavailable");
        assert_eq!(reply.header("retry-after"), Some("60"));
    }
}

#[tokio::test]
async fn provider_endpoints_are_not_tenant_settings_and_a_hostile_join_url_is_not_stored() {
    let server = zoom().await;
    // Zoom (or whoever answers as Zoom) returns a javascript: join URL with a line break.
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 93000000002_u64, "agenda": "x",
            "join_url": "javascript:alert(document.cookie)//\r\nURL:https://evil.example"})))
        .mount(&server)
        .await;
    let app = spawn_with_zoom(&server, &["--provider-retry-ms", "5"]).await;
    app.seed(T, 0).await;
    let admin = token(T, "admin", true);
    // A tenant admin can no longer point the server's requests (and secret) anywhere.
    for key in ["api_base_url", "oauth_base_url"] {
        let mut settings = json!({"account_id": "acct", "client_id": "cid", "client_secret": "cs",
            "user_id": "host@acme.example"});
        settings[key] = json!("http://169.254.169.254/latest");
        let refused = app
            .post(
                "/api/v1/lines",
                &admin,
                json!({"name": "Zoom", "provider": "zoom", "settings": settings}),
            )
            .await;
        let problem = refused.problem(422, "invalid_input");
        assert_eq!(problem["field"], format!("settings.{key}"));
    }
    zoom_line(&app, &server).await;
    let failed = app.schedule(T, "alice", 5, 6).await;
    let body = failed.ok(201);
    assert_eq!(body["provisioning"], "failed", "{}", failed.text);
    let history = app
        .get(
            &format!(
                "/api/v1/conferences/{}/history",
                body["id"].as_str().unwrap()
            ),
            &token(T, "alice", false),
        )
        .await;
    let text = history.text.clone();
    assert!(!text.contains("javascript"), "{text}");
    assert!(!text.contains("evil.example"), "{text}");
    assert!(text.contains("provider_invalid_answer"), "{text}");
    let ics = app
        .client
        .get(app.url(&format!(
            "/api/v1/conferences/{}/calendar.ics",
            body["id"].as_str().unwrap()
        )))
        .bearer_auth(token(T, "alice", false))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!ics.contains("javascript"), "{ics}");
}

/// Zoom creating meetings as it does: each with an id of its own (94000000001, …2, …), its
/// join and start URLs naming it, and the request's agenda (the conference marker).
struct NumberedMeetings {
    next: AtomicU64,
}

impl NumberedMeetings {
    fn new() -> Self {
        Self {
            next: AtomicU64::new(94_000_000_001),
        }
    }
}

impl Respond for NumberedMeetings {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        ResponseTemplate::new(201).set_body_json(json!({
            "id": id, "topic": body["topic"], "agenda": body["agenda"],
            "join_url": format!("https://acme.zoom.us/j/{id}?pwd=xyz"),
            "start_url": format!("https://acme.zoom.us/s/{id}?zak=secret"), "password": "p1"}))
    }
}

/// A Zoom line whose meetings are hosted by `user_id` (so the mock sees which line a create is for).
async fn zoom_line_hosted_by(app: &TestApp, name: &str, user_id: &str) -> String {
    let added = app
        .post(
            "/api/v1/lines",
            &token(T, "admin", true),
            json!({"name": name, "provider": "zoom", "settings": {
                "account_id": "acct", "client_id": "cid", "client_secret": "cs", "user_id": user_id}}),
        )
        .await;
    added.ok(201)["id"].as_str().unwrap().to_owned()
}

/// What the mock received, in order: (method, path, agenda of a create).
async fn zoom_calls(server: &MockServer) -> Vec<(String, String, Value)> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|request| request.url.path().starts_with("/v2/"))
        .map(|request| {
            let agenda = serde_json::from_slice::<Value>(&request.body)
                .map(|body| body["agenda"].clone())
                .unwrap_or(Value::Null);
            (
                request.method.to_string(),
                request.url.path().to_owned(),
                agenda,
            )
        })
        .collect()
}

#[tokio::test]
async fn an_edit_that_moves_lines_creates_the_new_meeting_before_deleting_the_old_one() {
    let server = zoom().await;
    Mock::given(method("POST"))
        .and(path_regex("^/v2/users/[^/]+/meetings$"))
        .respond_with(NumberedMeetings::new())
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex("^/v2/meetings/\\d+$"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let app = spawn_with_zoom(&server, &[]).await;
    app.seed(T, 0).await;
    let line_1 = zoom_line_hosted_by(&app, "Zoom 1", "one@acme.example").await;
    let line_2 = zoom_line_hosted_by(&app, "Zoom 2", "two@acme.example").await;
    let alice = token(T, "alice", false);
    // One base for every time (not `later`, which may read two different hours).
    let base = this_hour();
    let at = |hours: i64| rfc3339(base + chrono::Duration::hours(hours));
    let book = async |user: &str, from: i64, to: i64| {
        app.post(
            "/api/v1/conferences",
            &token(T, user, false),
            json!({"subject": "周会", "start": at(from), "end": at(to)}),
        )
        .await
    };

    // The conference gets meeting …01 on line 1; another takes line 1 at 8–9 (meeting …02).
    let moving = book("alice", 5, 6).await;
    let body = moving.ok(201);
    assert_eq!(body["provisioning"], "done", "{}", moving.text);
    assert_eq!(body["line"]["id"], line_1.as_str());
    assert_eq!(
        body["links"]["attendee"],
        "https://acme.zoom.us/j/94000000001?pwd=xyz"
    );
    let id = body["id"].as_str().unwrap().to_owned();
    let blocker = book("bob", 8, 9).await;
    assert_eq!(blocker.ok(201)["line"]["id"], line_1.as_str());
    assert_eq!(
        blocker.body["links"]["attendee"],
        "https://acme.zoom.us/j/94000000002?pwd=xyz"
    );

    // Moved to 8–9: its own line is taken there, so it moves to line 2 and gets meeting …03.
    let edited = app
        .patch(
            &format!("/api/v1/conferences/{id}"),
            &alice,
            json!({"start": at(8), "end": at(9)}),
        )
        .await;
    let body = edited.ok(200);
    assert_eq!(body["line"]["id"], line_2.as_str(), "{}", edited.text);
    assert_eq!(body["links_changed"], true);
    assert_eq!(body["provisioning"], "done", "{}", edited.text);
    assert_eq!(
        body["links"]["attendee"],
        "https://acme.zoom.us/j/94000000003?pwd=xyz"
    );
    let view = app.get(&format!("/api/v1/conferences/{id}"), &alice).await;
    assert_eq!(view.ok(200)["line"]["id"], line_2.as_str());
    assert_eq!(
        view.body["links"]["attendee"],
        "https://acme.zoom.us/j/94000000003?pwd=xyz"
    );
    assert_eq!(
        view.body["links"]["host"],
        "https://acme.zoom.us/s/94000000003"
    );

    // Cancelling it afterwards deletes the meeting it now has; once that call is in, every
    // call for the move has been made (the process handles the log in order).
    app.post(
        &format!("/api/v1/conferences/{id}/cancel"),
        &alice,
        json!({}),
    )
    .await
    .ok(200);
    let deleted_new = ("DELETE".to_owned(), "/v2/meetings/94000000003".to_owned());
    let calls = eventually(
        Duration::from_secs(30),
        "the cancel reaches Zoom",
        async || {
            let calls = zoom_calls(&server).await;
            calls
                .iter()
                .any(|(verb, path, _)| (verb.clone(), path.clone()) == deleted_new)
                .then_some(calls)
        },
    )
    .await;
    let marker = json!(format!("meetline:{id}"));
    let position = |wanted: &dyn Fn(&(String, String, Value)) -> bool| {
        let found: Vec<usize> = calls
            .iter()
            .enumerate()
            .filter(|(_, call)| wanted(call))
            .map(|(index, _)| index)
            .collect();
        found
    };
    let creates_on_line_2 = position(&|(verb, path, agenda)| {
        verb == "POST" && path == "/v2/users/two%40acme.example/meetings" && *agenda == marker
    });
    let deletes_of_old =
        position(&|(verb, path, _)| verb == "DELETE" && path == "/v2/meetings/94000000001");
    assert_eq!(
        creates_on_line_2.len(),
        1,
        "one create on line 2: {calls:?}"
    );
    assert_eq!(
        deletes_of_old.len(),
        1,
        "the old meeting deleted once: {calls:?}"
    );
    assert!(
        creates_on_line_2[0] < deletes_of_old[0],
        "the new meeting is created before the old one is deleted: {calls:?}"
    );
    // Nothing else was deleted: not the blocker's meeting, and the new one only by the cancel.
    let deletes: Vec<&str> = calls
        .iter()
        .filter(|(verb, _, _)| verb == "DELETE")
        .map(|(_, path, _)| path.as_str())
        .collect();
    assert_eq!(
        deletes,
        ["/v2/meetings/94000000001", "/v2/meetings/94000000003"],
        "{calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|(verb, _, _)| verb == "POST").count(),
        3,
        "three meetings created: {calls:?}"
    );
}
