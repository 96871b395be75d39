//! `ZoomProvider` against a local HTTP server (wiremock) that checks the documented request shapes
//! and replays documented responses.

use std::time::Duration;

use chrono::DateTime;
use meetline_adapters::zoom::{
    RetryPolicy, ZoomEndpoints, ZoomProvider, ZoomSettings, http_client,
};
use meetline_domain::ports::{MeetingRequest, ProviderError, VideoProvider};
use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "eyJ-test-access-token";

fn settings(server: &MockServer) -> ZoomSettings {
    let endpoints = ZoomEndpoints::new(&format!("{}/v2", server.uri()), &server.uri()).unwrap();
    ZoomSettings::from_line(
        &json!({
            "account_id": "acct-1", "client_id": "client-1", "client_secret": "secret-1",
            "user_id": "host@acme.example",
        }),
        &endpoints,
    )
    .unwrap()
}

fn provider(server: &MockServer) -> ZoomProvider {
    ZoomProvider::new(settings(server), http_client()).with_retry(RetryPolicy {
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retries: 4,
    })
}

fn request() -> MeetingRequest {
    MeetingRequest {
        reference: "6f1c0000-0000-0000-0000-000000000001".into(),
        topic: "周会".into(),
        start: DateTime::parse_from_rfc3339("2026-12-01T02:00:00Z")
            .unwrap()
            .into(),
        duration_minutes: 60,
        timezone: "Asia/Shanghai".into(),
    }
}

/// Zoom's documented create response (abridged).
fn created() -> Value {
    json!({
        "id": 85746065432_u64, "uuid": "aDYlohsHRtCd4ii1uC2+hA==", "host_id": "KDcuGIm1QgePTO8WbOqwIQ",
        "topic": "周会", "type": 2, "start_time": "2026-12-01T02:00:00Z", "duration": 60,
        "timezone": "Asia/Shanghai", "agenda": "meetline:6f1c0000-0000-0000-0000-000000000001",
        "join_url": "https://us05web.zoom.us/j/85746065432?pwd=abc", "start_url": "https://us05web.zoom.us/s/85746065432?zak=xyz",
        "password": "a1b2c3"
    })
}

async fn mount_token(server: &MockServer, expected_calls: u64) {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(query_param("grant_type", "account_credentials"))
        .and(query_param("account_id", "acct-1"))
        .and(basic_auth("client-1", "secret-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": TOKEN, "token_type": "bearer", "expires_in": 3599, "scope": "meeting:write:admin"
        })))
        .expect(expected_calls)
        .mount(server)
        .await;
}

#[tokio::test]
async fn the_token_is_fetched_once_and_every_call_has_the_documented_shape() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_partial_json(json!({
            "topic": "周会", "type": 2, "start_time": "2026-12-01T02:00:00Z", "duration": 60, "timezone": "Asia/Shanghai",
            "agenda": "meetline:6f1c0000-0000-0000-0000-000000000001"
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(created()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/v2/meetings/85746065432"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_partial_json(
            json!({"start_time": "2026-12-01T03:00:00Z", "duration": 30}),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/meetings/85746065432/status"))
        .and(body_partial_json(json!({"action": "end"})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v2/meetings/85746065432"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;

    let zoom = provider(&server);
    let meeting = zoom.create(&request()).await.unwrap();
    assert_eq!(meeting.meeting_id, "85746065432");
    assert_eq!(
        meeting.join_url,
        "https://us05web.zoom.us/j/85746065432?pwd=abc"
    );
    assert_eq!(meeting.password.as_deref(), Some("a1b2c3"));
    let moved = MeetingRequest {
        start: DateTime::parse_from_rfc3339("2026-12-01T03:00:00Z")
            .unwrap()
            .into(),
        duration_minutes: 30,
        ..request()
    };
    zoom.update("85746065432", &moved).await.unwrap();
    zoom.end("85746065432").await.unwrap();
    zoom.delete("85746065432").await.unwrap();
    // `expect` counts are verified when the server drops: one token for four calls.
}

#[tokio::test]
async fn a_429_then_201_succeeds_after_one_retry_honouring_retry_after() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"code": 429, "message": "You have reached the maximum per-second rate limit for this API."})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(ResponseTemplate::new(201).set_body_json(created()))
        .expect(1)
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let meeting = provider(&server).create(&request()).await.unwrap();
    assert_eq!(meeting.meeting_id, "85746065432");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    // A 429 was not processed, so no search for an earlier meeting was needed.
    let searched = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method == wiremock::http::Method::GET)
        .count();
    assert_eq!(searched, 0);
}

#[tokio::test]
async fn five_server_errors_end_in_an_unavailable_error() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("PATCH"))
        .and(path("/v2/meetings/1"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"code": 500, "message": "Internal error"})),
        )
        .expect(5)
        .mount(&server)
        .await;
    let error = provider(&server).update("1", &request()).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message, .. } if message.contains("500")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_adopts_the_meeting_instead_of_creating_another() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    // Zoom created the meeting but the answer failed.
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(ResponseTemplate::new(502))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .and(query_param("type", "upcoming"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "page_size": 300, "total_records": 2,
            "meetings": [
                {"id": 111, "topic": "other", "agenda": "", "join_url": "https://zoom.us/j/111"},
                {"id": 85746065432_u64, "topic": "周会", "agenda": "meetline:6f1c0000-0000-0000-0000-000000000001", "join_url": "https://us05web.zoom.us/j/85746065432?pwd=abc"}
            ]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/meetings/85746065432"))
        .respond_with(ResponseTemplate::new(200).set_body_json(created()))
        .expect(1)
        .mount(&server)
        .await;
    let meeting = provider(&server).create(&request()).await.unwrap();
    assert_eq!(meeting.meeting_id, "85746065432");
    assert_eq!(
        meeting.start_url.as_deref(),
        Some("https://us05web.zoom.us/s/85746065432?zak=xyz")
    );
}

#[tokio::test]
async fn validation_failures_are_refused_with_zooms_message_and_a_401_refreshes_the_token_once() {
    let server = MockServer::start().await;
    mount_token(&server, 2).await;
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": 300, "message": "Validation Failed.", "errors": [{"field": "duration", "message": "Invalid field."}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let zoom = provider(&server);
    let error = zoom.create(&request()).await.unwrap_err();
    assert_eq!(
        error,
        ProviderError::Refused {
            status: 400,
            code: Some(300),
            message: "Validation Failed.".into()
        }
    );

    // An expired token: Zoom answers 401 once, the provider fetches a new token and succeeds.
    let expired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let first = expired.clone();
    Mock::given(method("PUT"))
        .and(path("/v2/meetings/9/status"))
        .respond_with(move |_: &Request| {
            if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                ResponseTemplate::new(401)
                    .set_body_json(json!({"code": 124, "message": "Invalid access token."}))
            } else {
                ResponseTemplate::new(204)
            }
        })
        .expect(2)
        .mount(&server)
        .await;
    zoom.end("9").await.unwrap();
    // Deleting a meeting Zoom no longer has counts as done.
    Mock::given(method("DELETE"))
        .and(path("/v2/meetings/404404"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"code": 3001, "message": "Meeting does not exist: 404404."})),
        )
        .mount(&server)
        .await;
    zoom.delete("404404").await.unwrap();
}

#[tokio::test]
async fn redirects_are_not_followed_and_the_remote_body_is_not_recorded() {
    // The OAuth endpoint answers with a redirect elsewhere: the secret must not follow it.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/stolen", server.uri())),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/stolen"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let error = provider(&server).create(&request()).await.unwrap_err();
    assert!(
        !error.recorded_reason().contains("stolen"),
        "{}",
        error.recorded_reason()
    );

    // A refusal whose body says anything at all is recorded as a code and a fixed text.
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40acme.example/meetings"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"code": 300, "message": "<script>alert(1)</script> internal host db-7.corp"}),
        ))
        .mount(&server)
        .await;
    let error = provider(&server).create(&request()).await.unwrap_err();
    let reason = error.recorded_reason();
    assert_eq!(
        reason,
        "provider_refused: the provider refused the request (HTTP 400, code 300)"
    );
}

#[test]
fn endpoints_are_operator_urls_over_https() {
    assert!(ZoomEndpoints::new("https://api.zoom.us/v2", "https://zoom.us").is_ok());
    assert!(ZoomEndpoints::new("http://api.zoom.us/v2", "https://zoom.us").is_err());
    assert!(ZoomEndpoints::new("https://api.zoom.us/v2", "http://169.254.169.254").is_err());
}
