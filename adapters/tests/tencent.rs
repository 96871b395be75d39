//! `TencentProvider` against a local HTTP server (wiremock) that checks the documented request
//! shapes, replays documented answers, and verifies every request's signature with its own
//! implementation of Tencent Meeting's algorithm (doc 1095/43551).

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::DateTime;
use hmac::{Hmac, Mac};
use meetline_adapters::tencent::{
    RetryPolicy, TENCENT_KEYS, TENCENT_SECRET_KEYS, TencentEndpoints, TencentProvider,
    TencentSettings, signature, validate,
};
use meetline_adapters::zoom::http_client;
use meetline_domain::ports::{MeetingRequest, ProviderError, VideoProvider};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wiremock::matchers::{body_json, body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const APP_ID: &str = "200000001";
const SDK_ID: &str = "19000000001";
const SECRET_ID: &str = "AKIDexampleSecretId";
const SECRET_KEY: &str = "example-secret-key-never-sent";
const USER: &str = "host@acme";
const REFERENCE: &str = "6f1c0000-0000-0000-0000-000000000001";
const MEETING: &str = "7567173273889276131";

fn line_settings() -> Value {
    json!({
        "app_id": APP_ID, "sdk_id": SDK_ID, "secret_id": SECRET_ID, "secret_key": SECRET_KEY,
        "user_id": USER,
    })
}

fn provider(server: &MockServer) -> TencentProvider {
    let endpoints = TencentEndpoints::new(&server.uri()).unwrap();
    let settings = TencentSettings::from_line(&line_settings(), &endpoints).unwrap();
    TencentProvider::new(settings, http_client()).with_retry(RetryPolicy {
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retries: 4,
    })
}

fn request() -> MeetingRequest {
    MeetingRequest {
        reference: REFERENCE.into(),
        topic: "周会".into(),
        start: DateTime::parse_from_rfc3339("2026-12-01T02:00:00Z")
            .unwrap()
            .into(),
        duration_minutes: 60,
        timezone: "Asia/Shanghai".into(),
    }
}

/// The marker as documented in the module: `meetline:` + 24 hex digits of SHA-256(reference).
fn marker(reference: &str) -> String {
    let digest: String = Sha256::digest(reference.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("meetline:{}", &digest[..24])
}

/// A meeting object as Tencent's create / query answers carry it (doc 1095/42700's example).
fn meeting(id: &str, location: &str) -> Value {
    json!({
        "subject": "周会", "meeting_id": id, "meeting_code": "806146667", "password": "1111",
        "status": "MEETING_STATE_INIT", "start_time": "1796090400", "end_time": "1796094000",
        "hosts": [USER], "participants": [], "join_url": "https://meeting.tencent.com/dm/5NmV29k",
        "location": location,
    })
}

fn error(code: i64, message: &str) -> Value {
    json!({"error_info": {"error_code": code, "message": message}})
}

/// Base64 (RFC 4648, padded), written independently of the adapter's.
fn b64(bytes: &[u8]) -> String {
    let alphabet: Vec<char> = ('A'..='Z')
        .chain('a'..='z')
        .chain('0'..='9')
        .chain(['+', '/'])
        .collect();
    let bits: String = bytes.iter().map(|byte| format!("{byte:08b}")).collect();
    let mut out: String = bits
        .as_bytes()
        .chunks(6)
        .map(|six| {
            let six = format!("{:0<6}", std::str::from_utf8(six).unwrap());
            alphabet[usize::from_str_radix(&six, 2).unwrap()]
        })
        .collect();
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

/// Tencent's algorithm, re-implemented from the documentation: the signature `request` should
/// carry, computed from what the server received.
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
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET_KEY.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    b64(hex.as_bytes())
}

/// Every request the server received carries the public parameters, a fresh timestamp/nonce pair
/// and a signature that verifies; the secret key is sent nowhere.
async fn assert_every_request_signed(server: &MockServer) -> usize {
    let received = server.received_requests().await.unwrap();
    assert!(!received.is_empty());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut pairs = HashSet::new();
    for request in &received {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .unwrap_or_else(|| panic!("{} {} has no {name}", request.method, request.url))
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(header("x-tc-key"), SECRET_ID);
        assert_eq!(header("appid"), APP_ID);
        assert_eq!(header("sdkid"), SDK_ID);
        assert_eq!(header("x-tc-registered"), "1");
        assert_eq!(header("content-type"), "application/json");
        let timestamp: u64 = header("x-tc-timestamp").parse().unwrap();
        assert!(timestamp.abs_diff(now) < 300, "timestamp {timestamp}");
        let nonce: u64 = header("x-tc-nonce").parse().unwrap();
        assert!(nonce > 0);
        assert!(
            pairs.insert((timestamp, nonce)),
            "a timestamp/nonce pair was reused"
        );
        assert_eq!(
            header("x-tc-signature"),
            expected_signature(request),
            "{} {}",
            request.method,
            request.url
        );
        let everything = format!(
            "{:?}{}",
            request.headers,
            String::from_utf8_lossy(&request.body)
        );
        assert!(!everything.contains(SECRET_KEY), "the secret key was sent");
    }
    received.len()
}

#[test]
fn the_signature_matches_an_independently_computed_value() {
    // python3 -c 'import hmac,hashlib,base64;print(base64.b64encode(hmac.new(b"TENCENT-SECRET-KEY",b"POST\nX-TC-Key=AKIDexample&X-TC-Nonce=12345&X-TC-Timestamp=1700000000\n/v1/meetings\n{\"userid\":\"tester\",\"instanceid\":1}",hashlib.sha256).hexdigest().encode()).decode())'
    assert_eq!(
        signature(
            "TENCENT-SECRET-KEY",
            "POST",
            "AKIDexample",
            12345,
            1_700_000_000,
            "/v1/meetings",
            r#"{"userid":"tester","instanceid":1}"#,
        ),
        "MzllNTdiMTQzNTc5ODE4YzUwYTczYmRjZDQ3NTdhNWFmNTYyZmM5MGM1MTUyMTJkNDAwYWVlY2FlZjFhNDQwMA=="
    );
    // A GET: the query string is signed, the empty body as "".
    // python3 -c 'import hmac,hashlib,base64;print(base64.b64encode(hmac.new(b"TENCENT-SECRET-KEY",b"GET\nX-TC-Key=AKIDexample&X-TC-Nonce=7&X-TC-Timestamp=1700000001\n/v1/meetings/7567173273889276131?userid=tester1&instanceid=1\n",hashlib.sha256).hexdigest().encode()).decode())'
    assert_eq!(
        signature(
            "TENCENT-SECRET-KEY",
            "GET",
            "AKIDexample",
            7,
            1_700_000_001,
            "/v1/meetings/7567173273889276131?userid=tester1&instanceid=1",
            "",
        ),
        "NGQyN2U3M2Q2MTI5N2I5MTU4YmM1MjY3MzgzMTZlNmJjN2JhZjRmMDk3MzNjYjAzZTZlODhjZjMyNzkyMjA0YQ=="
    );
}

#[tokio::test]
async fn the_verifier_rejects_a_request_signed_over_something_else() {
    // The check below is only worth something if a wrong signature fails it.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let forged = signature(
        SECRET_KEY,
        "POST",
        SECRET_ID,
        1,
        1_700_000_000,
        "/v1/meetings",
        "{}",
    );
    reqwest::Client::new()
        .post(format!("{}/v1/meetings", server.uri()))
        .header("X-TC-Key", SECRET_ID)
        .header("X-TC-Nonce", "1")
        .header("X-TC-Timestamp", "1700000000")
        .header("X-TC-Signature", forged.as_str())
        .body(r#"{"tampered":true}"#)
        .send()
        .await
        .unwrap();
    let received = server.received_requests().await.unwrap();
    assert_ne!(expected_signature(&received[0]), forged);
}

#[tokio::test]
async fn create_update_cancel_and_end_send_the_documented_bodies_signed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/meetings"))
        .and(body_json(json!({
            "userid": USER, "instanceid": 1, "subject": "周会", "type": 0,
            "start_time": "1796090400", "end_time": "1796094000", "location": marker(REFERENCE),
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "meeting_number": 1, "meeting_info_list": [meeting(MEETING, &marker(REFERENCE))]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("/v1/meetings/{MEETING}")))
        .and(body_json(json!({
            "userid": USER, "instanceid": 1, "subject": "周会",
            "start_time": "1796094000", "end_time": "1796095800", "location": marker(REFERENCE),
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "meeting_number": 1, "meeting_info_list": [{"meeting_id": MEETING, "meeting_code": "806146667"}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/meetings/{MEETING}/dismiss")))
        .and(body_json(json!({
            "operator_id": USER, "operator_id_type": 1, "instanceid": 1, "reason_code": 1,
            "force_dismiss_meeting": 1, "retrieve_code": 1,
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/meetings/{MEETING}/cancel")))
        .and(body_json(
            json!({"userid": USER, "instanceid": 1, "reason_code": 1}),
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    let tencent = provider(&server);
    let created = tencent.create(&request()).await.unwrap();
    assert_eq!(created.meeting_id, MEETING);
    assert_eq!(created.join_url, "https://meeting.tencent.com/dm/5NmV29k");
    assert_eq!(created.password.as_deref(), Some("1111"));
    assert_eq!(created.meeting_code.as_deref(), Some("806146667"));
    assert_eq!(created.start_url, None);
    let moved = MeetingRequest {
        start: DateTime::parse_from_rfc3339("2026-12-01T03:00:00Z")
            .unwrap()
            .into(),
        duration_minutes: 30,
        ..request()
    };
    tencent.update(MEETING, &moved).await.unwrap();
    tencent.end(MEETING).await.unwrap();
    tencent.delete(MEETING).await.unwrap();
    assert_eq!(assert_every_request_signed(&server).await, 4);
}

#[tokio::test]
async fn a_started_meeting_that_cannot_be_cancelled_is_dismissed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/meetings/{MEETING}/cancel")))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(error(13602, "已开始的会议不能取消。")),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/meetings/{MEETING}/dismiss")))
        .and(body_partial_json(
            json!({"operator_id": USER, "retrieve_code": 1, "force_dismiss_meeting": 1}),
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    provider(&server).delete(MEETING).await.unwrap();
    assert_eq!(assert_every_request_signed(&server).await, 2);

    // When the dismissal is refused as well, the delete is refused with the cancel's code.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/meetings/9/cancel"))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(error(13602, "已开始的会议不能取消。")),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/meetings/9/dismiss"))
        .respond_with(ResponseTemplate::new(500).set_body_json(error(9042, "无权限进行该操作")))
        .expect(1)
        .mount(&server)
        .await;
    let refused = provider(&server).delete("9").await.unwrap_err();
    assert!(
        matches!(
            &refused,
            ProviderError::Refused { status: 500, code: Some(13602), message }
                if message.contains("已开始的会议不能取消") && message.contains("9042")
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn meetings_that_are_gone_cancelled_or_over_count_as_deleted_and_ended() {
    let server = MockServer::start().await;
    for (id, code, message) in [
        ("1", 9003, "MEETING NOT EXIST"),
        ("2", 9007, "MEETING CANCLED"),
        ("3", 13603, "会议已结束。"),
    ] {
        for action in ["cancel", "dismiss"] {
            Mock::given(method("POST"))
                .and(path(format!("/v1/meetings/{id}/{action}")))
                .respond_with(ResponseTemplate::new(500).set_body_json(error(code, message)))
                .expect(1)
                .mount(&server)
                .await;
        }
    }
    let tencent = provider(&server);
    for id in ["1", "2", "3"] {
        tencent.delete(id).await.unwrap();
        tencent.end(id).await.unwrap();
    }
    // Updating a meeting Tencent does not have is an error the caller sees.
    Mock::given(method("PUT"))
        .and(path("/v1/meetings/1"))
        .respond_with(ResponseTemplate::new(500).set_body_json(error(9003, "MEETING NOT EXIST")))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        tencent.update("1", &request()).await.unwrap_err(),
        ProviderError::NotFound
    );
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_adopts_the_marked_meeting_instead_of_creating_another() {
    let server = MockServer::start().await;
    // Tencent created the meeting but the answer was a 502.
    Mock::given(method("POST"))
        .and(path("/v1/meetings"))
        .respond_with(ResponseTemplate::new(502))
        .expect(1)
        .mount(&server)
        .await;
    // The user's meetings, two pages: the marked one is on the second.
    Mock::given(method("GET"))
        .and(path("/v1/meetings"))
        .and(query_param("userid", USER))
        .and(query_param("instanceid", "1"))
        .and(query_param("pos", "1796090400"))
        .and(query_param("cursory", "1700000000123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "meeting_number": 2, "remaining": 0, "next_pos": 0, "next_cursory": 0,
            "meeting_info_list": [
                // A cancelled meeting with the same marker is not adopted.
                {"meeting_id": "555", "status": "MEETING_STATE_CANCELLED", "location": marker(REFERENCE), "join_url": "https://meeting.tencent.com/dm/old"},
                meeting(MEETING, &marker(REFERENCE)),
            ]
        })))
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/meetings"))
        .and(query_param("userid", USER))
        .and(query_param("instanceid", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "meeting_number": 2, "remaining": 2, "next_pos": 1796090400, "next_cursory": 1700000000123_u64,
            "meeting_info_list": [
                meeting("111", "会议室 A"),
                meeting("222", &marker("6f1c0000-0000-0000-0000-000000000002")),
            ]
        })))
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/meetings/{MEETING}")))
        .and(query_param("userid", USER))
        .and(query_param("instanceid", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "meeting_number": 1, "meeting_info_list": [meeting(MEETING, &marker(REFERENCE))]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let created = provider(&server).create(&request()).await.unwrap();
    assert_eq!(created.meeting_id, MEETING);
    assert_eq!(created.meeting_code.as_deref(), Some("806146667"));
    // One create, two list pages, one read: all signed (the query strings included).
    assert_eq!(assert_every_request_signed(&server).await, 4);
}

#[tokio::test]
async fn find_created_reads_an_unlisted_location_and_finds_nothing_unmarked() {
    let server = MockServer::start().await;
    // An entry without `location` is read by id before it is ruled out.
    Mock::given(method("GET"))
        .and(path("/v1/meetings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "meeting_number": 1, "remaining": 0,
            "meeting_info_list": [{"meeting_id": "333", "subject": "周会", "status": "MEETING_STATE_INIT"}]
        })))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/meetings/333"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "meeting_number": 1, "meeting_info_list": [meeting("333", &marker(REFERENCE))]
        })))
        .expect(2)
        .mount(&server)
        .await;
    let tencent = provider(&server);
    let found = tencent.find_created(REFERENCE).await.unwrap().unwrap();
    assert_eq!(found.meeting_id, "333");
    assert_eq!(
        tencent
            .find_created("6f1c0000-0000-0000-0000-00000000ffff")
            .await
            .unwrap(),
        None
    );
    assert_every_request_signed(&server).await;
}

#[tokio::test]
async fn a_429_is_retried_honouring_retry_after_without_looking_for_a_meeting() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/meetings"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(error(190310, "每分钟总接口调用次数超过限制。")),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/meetings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "meeting_number": 1, "meeting_info_list": [meeting(MEETING, &marker(REFERENCE))]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let created = provider(&server).create(&request()).await.unwrap();
    assert_eq!(created.meeting_id, MEETING);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1"
    );
    let received = server.received_requests().await.unwrap();
    assert!(received.iter().all(|r| r.method.as_str() == "POST"));
    // The retry was signed afresh (checked: no timestamp/nonce pair repeats).
    assert_eq!(assert_every_request_signed(&server).await, 2);
}

#[tokio::test]
async fn a_rate_limit_code_is_retried_and_server_errors_end_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/meetings/1/cancel"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(error(190310, "每分钟总接口调用次数超过限制。")),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/meetings/1/cancel"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v1/meetings/2"))
        .respond_with(ResponseTemplate::new(503))
        .expect(5)
        .mount(&server)
        .await;
    let tencent = provider(&server);
    tencent.delete("1").await.unwrap();
    let error = tencent.update("2", &request()).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message, .. } if message.contains("503")),
        "{error:?}"
    );
    assert_eq!(assert_every_request_signed(&server).await, 7);
}

#[tokio::test]
async fn refusals_carry_tencents_code_and_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/meetings"))
        .respond_with(ResponseTemplate::new(400).set_body_json(error(190004, "参数非法")))
        .expect(1)
        .mount(&server)
        .await;
    let tencent = provider(&server);
    assert_eq!(
        tencent.create(&request()).await.unwrap_err(),
        ProviderError::Refused {
            status: 400,
            code: Some(190004),
            message: "参数非法".into()
        }
    );
    // A service refusal comes as HTTP 500 with an error_info: refused, not retried.
    Mock::given(method("PUT"))
        .and(path("/v1/meetings/5"))
        .respond_with(ResponseTemplate::new(500).set_body_json(error(9102, "无权限修改会议。")))
        .expect(1)
        .mount(&server)
        .await;
    let error = tencent.update("5", &request()).await.unwrap_err();
    assert!(
        matches!(
            error,
            ProviderError::Refused {
                status: 500,
                code: Some(9102),
                ..
            }
        ),
        "{error:?}"
    );
    // A success without a meeting is unusable.
    Mock::given(method("POST"))
        .and(path("/v1/meetings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"meeting_number": 0})))
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        tencent.create(&request()).await.unwrap_err(),
        ProviderError::InvalidAnswer
    );
}

#[test]
fn settings_are_validated_key_by_key_and_the_secret_is_redacted() {
    assert_eq!(validate(&line_settings()), Ok(()));
    let mut without_sdk = line_settings();
    without_sdk.as_object_mut().unwrap().remove("sdk_id");
    assert_eq!(validate(&without_sdk), Ok(()));
    without_sdk["sdk_id"] = Value::Null;
    assert_eq!(validate(&without_sdk), Ok(()));
    for (key, value, offending) in [
        (
            "api_base_url",
            json!("https://evil.example"),
            "api_base_url",
        ),
        ("secret_key", json!("   "), "secret_key"),
        ("user_id", json!(42), "user_id"),
        ("app_id", json!("a".repeat(501)), "app_id"),
        ("secret_id", json!("AKID\nX"), "secret_id"),
        ("secret_id", json!("密钥"), "secret_id"),
        ("sdk_id", json!(""), "sdk_id"),
    ] {
        let mut settings = line_settings();
        settings[key] = value;
        assert_eq!(validate(&settings), Err(offending.to_owned()), "{key}");
    }
    for key in ["app_id", "secret_id", "secret_key", "user_id"] {
        let mut settings = line_settings();
        settings.as_object_mut().unwrap().remove(key);
        assert_eq!(validate(&settings), Err(key.to_owned()));
    }
    assert_eq!(validate(&json!([])), Err("settings".to_owned()));
    assert!(TENCENT_KEYS.contains(&TENCENT_SECRET_KEYS[0]));

    let settings =
        TencentSettings::from_line(&line_settings(), &TencentEndpoints::default()).unwrap();
    assert_eq!(settings.sdk_id.as_deref(), Some(SDK_ID));
    assert_eq!(
        settings.endpoints.api_base_url,
        "https://api.meeting.qq.com"
    );
    let shown = format!("{settings:?}");
    assert!(!shown.contains(SECRET_KEY), "{shown}");
    assert_eq!(
        TencentSettings::from_line(&json!({"app_id": APP_ID}), &TencentEndpoints::default()),
        Err("secret_id".to_owned())
    );
}

#[test]
fn the_endpoint_is_an_operator_url_over_https() {
    assert!(TencentEndpoints::new("https://api.meeting.qq.com/").is_ok());
    assert!(TencentEndpoints::new("http://127.0.0.1:9").is_ok());
    assert!(TencentEndpoints::new("http://api.meeting.qq.com").is_err());
    assert!(TencentEndpoints::new("https://api.meeting.qq.com/?x=1").is_err());
}
