//! A Tencent Meeting (腾讯会议) line end to end: the real binary, Tencent's REST API played by
//! wiremock, every request's signature checked with the documented algorithm (re-implemented
//! here, not the adapter's). Runs on SQLite, and on PostgreSQL in `scripts/test`'s second pass.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const T: &str = "acme";
const USER: &str = "host@acme";
const SECRET_ID: &str = "AKIDexample";
const SECRET_KEY: &str = "tencent-secret-key-never-sent";

/// Answers a create with a new meeting (ids 7000…01, 7000…02, …) carrying the request's
/// location (the adapter's marker).
struct Creates(AtomicU64);

impl Respond for Creates {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        ResponseTemplate::new(200).set_body_json(json!({
            "meeting_number": 1,
            "meeting_info_list": [{
                "subject": body["subject"], "meeting_id": format!("70000000000000000{n:02}"),
                "meeting_code": format!("80614666{n}"), "password": null,
                "join_url": format!("https://meeting.tencent.com/dm/room{n}"),
                "location": body["location"], "status": "MEETING_STATE_INIT",
            }]
        }))
    }
}

async fn tencent() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/meetings"))
        .respond_with(Creates(AtomicU64::new(0)))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex("^/v1/meetings/\\d+$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"meeting_number": 1, "meeting_info_list": []})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/v1/meetings/\\d+/dismiss$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    server
}

async fn spawn_with_tencent(server: &MockServer) -> TestApp {
    let url = server.uri();
    spawn_app_with(&["--tencent-api-url", &url]).await
}

async fn tencent_line(app: &TestApp) {
    let admin = token(T, "admin", true);
    let added = app
        .post(
            "/api/v1/lines",
            &admin,
            json!({"name": "腾讯会议 1", "provider": "tencent", "settings": {
                "app_id": "200000001", "sdk_id": "19000000001", "secret_id": SECRET_ID,
                "secret_key": SECRET_KEY, "user_id": USER}}),
        )
        .await;
    assert_eq!(added.ok(201)["provider"], "tencent");
}

/// Tencent's signature, from the documentation (PROVIDERS.md; doc 1095/43551):
/// base64(hex(HMAC-SHA256(secret_key, "METHOD\nX-TC-Key=…&X-TC-Nonce=…&X-TC-Timestamp=…\nURI\nbody"))).
fn expected_signature(request: &Request) -> String {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let uri = match request.url.query() {
        Some(query) => format!("{}?{query}", request.url.path()),
        None => request.url.path().to_owned(),
    };
    let signed = format!(
        "{}\nX-TC-Key={}&X-TC-Nonce={}&X-TC-Timestamp={}\n{uri}\n{}",
        request.method.as_str(),
        header("x-tc-key"),
        header("x-tc-nonce"),
        header("x-tc-timestamp"),
        String::from_utf8(request.body.clone()).unwrap(),
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET_KEY.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    base64(hex.as_bytes())
}

/// RFC 4648 Base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every request the server received is signed as documented and carries the account's headers
/// (and never the secret key); the requests, as (method, path).
async fn signed_requests(server: &MockServer) -> Vec<(String, String)> {
    let received = server.received_requests().await.unwrap();
    for request in &received {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(header("x-tc-key").as_deref(), Some(SECRET_ID));
        assert_eq!(header("appid").as_deref(), Some("200000001"));
        assert_eq!(header("sdkid").as_deref(), Some("19000000001"));
        assert_eq!(header("x-tc-registered").as_deref(), Some("1"));
        let timestamp: i64 = header("x-tc-timestamp").unwrap().parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 300);
        assert_eq!(
            header("x-tc-signature").unwrap(),
            expected_signature(request),
            "{} {}",
            request.method,
            request.url
        );
        assert!(!String::from_utf8_lossy(&request.body).contains(SECRET_KEY));
    }
    received
        .iter()
        .map(|request| (request.method.to_string(), request.url.path().to_owned()))
        .collect()
}

async fn calls_to(server: &MockServer, verb: &str, suffix: &str) -> usize {
    signed_requests(server)
        .await
        .iter()
        .filter(|(method, path)| method == verb && path.ends_with(suffix))
        .count()
}

async fn wait_for_call(server: &MockServer, verb: &str, suffix: &str, times: usize) {
    let started = Instant::now();
    while calls_to(server, verb, suffix).await < times {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{verb} …{suffix} did not reach Tencent Meeting"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_tencent_line_hosts_schedules_edits_cancels_and_early_ends_signed() {
    let server = tencent().await;
    Mock::given(method("POST"))
        .and(path_regex("^/v1/meetings/\\d+/cancel$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let app = spawn_with_tencent(&server).await;
    app.seed(T, 0).await;
    tencent_line(&app).await;
    let alice = token(T, "alice", false);

    // Scheduled: provisioned with the provider's code and link.
    let created = app.schedule(T, "alice", 5, 6).await;
    let body = created.ok(201).clone();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(body["provisioning"], "done", "{body}");
    assert_eq!(body["line"]["provider"], "tencent");
    assert_eq!(body["provider_meeting_code"], "806146661");
    assert_eq!(
        body["links"]["attendee"],
        "https://meeting.tencent.com/dm/room1"
    );
    assert_eq!(
        body["links"]["host"],
        "https://meeting.tencent.com/dm/room1"
    );
    let bob = app
        .get(
            &format!("/api/v1/conferences/{id}"),
            &token(T, "bob", false),
        )
        .await;
    assert!(bob.ok(200)["links"]["host"].is_null());
    assert_eq!(bob.ok(200)["provider_meeting_code"], "806146661");

    // Edited: the same meeting is moved (PUT with the new times), no second create.
    let edited = app
        .patch(
            &format!("/api/v1/conferences/{id}"),
            &alice,
            json!({"start": later(7), "end": later(8)}),
        )
        .await;
    edited.ok(200);
    wait_for_call(&server, "PUT", "/v1/meetings/7000000000000000001", 1).await;
    let update = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|request| request.method.as_str() == "PUT")
        .unwrap();
    let update: Value = serde_json::from_slice(&update.body).unwrap();
    let start = chrono::DateTime::parse_from_rfc3339(&later(7))
        .unwrap()
        .timestamp();
    assert_eq!(update["start_time"], start.to_string());
    assert_eq!(update["userid"], USER);

    // Cancelled: the meeting is cancelled at Tencent, and its code is no longer shown.
    let cancelled = app
        .post(
            &format!("/api/v1/conferences/{id}/cancel"),
            &alice,
            json!({}),
        )
        .await;
    assert!(cancelled.ok(200)["provider_meeting_code"].is_null());
    wait_for_call(
        &server,
        "POST",
        "/v1/meetings/7000000000000000001/cancel",
        1,
    )
    .await;

    // Quick, then ended early: the meeting is dismissed.
    let quick = app
        .post(
            "/api/v1/conferences",
            &alice,
            json!({"mode": "quick", "subject": "现在"}),
        )
        .await;
    let quick = quick.ok(201).clone();
    assert_eq!(quick["provider_meeting_code"], "806146662");
    app.post(
        &format!("/api/v1/conferences/{}/end", quick["id"].as_str().unwrap()),
        &alice,
        json!({}),
    )
    .await
    .ok(200);
    wait_for_call(
        &server,
        "POST",
        "/v1/meetings/7000000000000000002/dismiss",
        1,
    )
    .await;

    assert_eq!(
        calls_to(&server, "POST", "/v1/meetings").await,
        2,
        "one create each"
    );
    let summary = app
        .get("/api/v1/ops/summary", &token(T, "admin", true))
        .await;
    assert_eq!(summary.ok(200)["provider_failures"], 0);
}

/// A meeting the host started early at Tencent cannot be cancelled there (error 13602): the
/// cancelled conference's meeting is dismissed instead, once, and nothing is retried.
#[tokio::test]
async fn a_started_meetings_cancel_is_refused_by_tencent_and_the_meeting_is_dismissed() {
    let server = tencent().await;
    Mock::given(method("POST"))
        .and(path_regex("^/v1/meetings/\\d+/cancel$"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error_info": {"error_code": 13602, "message": "已开始的会议不能取消。"}}),
        ))
        .mount(&server)
        .await;
    let app = spawn_with_tencent(&server).await;
    app.seed(T, 0).await;
    tencent_line(&app).await;
    let created = app.schedule(T, "alice", 5, 6).await;
    let id = created.ok(201)["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/conferences/{id}/cancel"),
        &token(T, "alice", false),
        json!({}),
    )
    .await
    .ok(200);
    wait_for_call(
        &server,
        "POST",
        "/v1/meetings/7000000000000000001/dismiss",
        1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        calls_to(&server, "POST", "/cancel").await,
        1,
        "a refusal is not retried"
    );
    assert_eq!(calls_to(&server, "POST", "/dismiss").await, 1);
    let summary = app
        .get("/api/v1/ops/summary", &token(T, "admin", true))
        .await;
    assert_eq!(summary.ok(200)["provider_failures"], 0);
}

/// When Tencent refuses the dismissal too, the refusal is counted once and not retried.
#[tokio::test]
async fn a_cancel_and_dismiss_both_refused_are_counted_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/meetings"))
        .respond_with(Creates(AtomicU64::new(0)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/v1/meetings/\\d+/(cancel|dismiss)$"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error_info": {"error_code": 13602, "message": "已开始的会议不能取消。"}}),
        ))
        .mount(&server)
        .await;
    let app = spawn_with_tencent(&server).await;
    app.seed(T, 0).await;
    tencent_line(&app).await;
    let created = app.schedule(T, "alice", 5, 6).await;
    let id = created.ok(201)["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/conferences/{id}/cancel"),
        &token(T, "alice", false),
        json!({}),
    )
    .await
    .ok(200);
    let admin = token(T, "admin", true);
    let failures = eventually(
        Duration::from_secs(10),
        "a provider failure counted",
        async || {
            let summary = app.get("/api/v1/ops/summary", &admin).await;
            let failures = summary.ok(200)["provider_failures"].as_u64().unwrap();
            (failures > 0).then_some(failures)
        },
    )
    .await;
    assert_eq!(failures, 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(calls_to(&server, "POST", "/cancel").await, 1);
    assert_eq!(calls_to(&server, "POST", "/dismiss").await, 1);
}

#[tokio::test]
async fn tencent_settings_are_checked_key_by_key_and_never_shown() {
    let server = tencent().await;
    let app = spawn_with_tencent(&server).await;
    app.seed(T, 0).await;
    let admin = token(T, "admin", true);
    let missing = app
        .post(
            "/api/v1/lines",
            &admin,
            json!({"name": "T", "provider": "tencent", "settings": {"app_id": "1", "secret_id": "k", "user_id": "u"}}),
        )
        .await;
    assert_eq!(
        missing.problem(422, "invalid_input")["field"],
        "settings.secret_key"
    );
    let none = app
        .post(
            "/api/v1/lines",
            &admin,
            json!({"name": "T", "provider": "tencent"}),
        )
        .await;
    assert_eq!(none.problem(422, "invalid_input")["field"], "settings");
    let unknown = app
        .post(
            "/api/v1/lines",
            &admin,
            json!({"name": "T", "provider": "tencent", "settings": {"app_id": "1", "secret_id": "k",
                   "secret_key": "s", "user_id": "u", "api_base_url": "http://169.254.169.254"}}),
        )
        .await;
    assert_eq!(
        unknown.problem(422, "invalid_input")["field"],
        "settings.api_base_url"
    );
    tencent_line(&app).await;
    let lines = app.get("/api/v1/lines", &admin).await;
    let text = lines.text.clone();
    let line = &lines.ok(200)["items"][0];
    assert_eq!(line["provider"], "tencent");
    assert_eq!(line["settings"]["secrets_set"], json!(["secret_key"]));
    assert_eq!(line["settings"]["user_id"], USER);
    assert!(!text.contains(SECRET_KEY));

    // Tencent Meeting's notifications are not taken (their signing is not documented in full),
    // nor any provider's that does not exist: 404, before anything is read.
    for provider in ["tencent", "builtin", "nope"] {
        for url in [
            format!("/api/v1/providers/{provider}/webhook"),
            format!("/api/v1/providers/{provider}/webhook/{T}/line-1"),
        ] {
            let reply = app
                .send(
                    app.request(reqwest::Method::POST, &url, "")
                        .json(&json!({"event": "meeting.end"})),
                )
                .await;
            reply.problem(404, "not_found");
        }
    }
}
