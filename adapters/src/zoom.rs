//! `ZoomProvider`: the video provider port on Zoom's REST API v2 for one line (one licensed Zoom
//! user), with Server-to-Server OAuth.
//!
//! - Auth: `POST {oauth}/oauth/token?grant_type=account_credentials&account_id=…` with HTTP Basic
//!   `client_id:client_secret`; the token (1 hour, no refresh token) is cached until a minute
//!   before it expires, and fetched again once if Zoom answers 401.
//! - Create `POST /users/{userId}/meetings` (type 2, `start_time` in UTC, `duration` in minutes,
//!   `timezone`), update `PATCH /meetings/{id}`, delete `DELETE /meetings/{id}`, end
//!   `PUT /meetings/{id}/status {"action":"end"}`.
//! - 429 and 5xx (and network failures) are retried with exponential backoff (`backon`), waiting
//!   at least as long as `Retry-After` says; other 4xx become `ProviderError::Refused` with Zoom's
//!   code and message.
//! - **Creates are idempotent:** each meeting's agenda carries `meetline:<reference>`. A create that
//!   failed ambiguously (5xx, network) first looks for that marker among the user's upcoming
//!   meetings and adopts the meeting it finds instead of creating a second one.
//! - Secrets (client secret, tokens, start URLs) never reach logs: errors carry Zoom's message only.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use meetline_domain::ports::{MeetingRequest, ProviderError, ProvisionedMeeting, VideoProvider};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::net::{operator_url, retry_after, urlencode};
use tokio::sync::Mutex;

/// Where Zoom's REST API and OAuth server are: the operator's configuration (flags or
/// environment), never a tenant's line setting — a tenant admin who could name them would make
/// the server send its client secret wherever they like (SSRF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoomEndpoints {
    /// `https://api.zoom.us/v2` by default.
    pub api_base_url: String,
    /// `https://zoom.us` by default.
    pub oauth_base_url: String,
}

impl Default for ZoomEndpoints {
    fn default() -> Self {
        Self {
            api_base_url: "https://api.zoom.us/v2".to_owned(),
            oauth_base_url: "https://zoom.us".to_owned(),
        }
    }
}

impl ZoomEndpoints {
    /// # Errors
    /// The offending URL, unless each is `https://…`. Plain `http://` is accepted only for a
    /// loopback host (a local test double), where nothing crosses a network.
    pub fn new(api_base_url: &str, oauth_base_url: &str) -> Result<Self, String> {
        Ok(Self {
            api_base_url: operator_url(api_base_url)?,
            oauth_base_url: operator_url(oauth_base_url)?,
        })
    }
}

/// A Zoom line's settings (from the line's encrypted settings) and the operator's endpoints.
#[derive(Clone, PartialEq, Eq)]
pub struct ZoomSettings {
    pub account_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// The licensed Zoom user (id or email) that hosts this line's meetings.
    pub user_id: String,
    pub webhook_secret: Option<String>,
    pub endpoints: ZoomEndpoints,
}

impl std::fmt::Debug for ZoomSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoomSettings")
            .field("account_id", &self.account_id)
            .field("user_id", &self.user_id)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl ZoomSettings {
    /// Reads a line's settings (already validated when they were stored). Keys that lines
    /// stored before endpoints became operator configuration (`api_base_url`,
    /// `oauth_base_url`) are ignored.
    ///
    /// # Errors
    /// The name of a missing key.
    pub fn from_line(settings: &Value, endpoints: &ZoomEndpoints) -> Result<Self, String> {
        let text = |key: &str| {
            settings
                .get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|text| !text.is_empty())
        };
        let required = |key: &str| text(key).map(str::to_owned).ok_or_else(|| key.to_owned());
        Ok(Self {
            account_id: required("account_id")?,
            client_id: required("client_id")?,
            client_secret: required("client_secret")?,
            user_id: required("user_id")?,
            webhook_secret: text("webhook_secret").map(str::to_owned),
            endpoints: endpoints.clone(),
        })
    }

    /// Only the webhook secret of a line's settings, if it has one.
    pub fn webhook_secret(settings: &Value) -> Option<String> {
        settings
            .get("webhook_secret")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    }
}

pub use crate::net::http_client;

pub use crate::net::RetryPolicy;

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(Debug, Deserialize)]
struct ZoomErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

#[derive(Debug)]
pub struct ZoomProvider {
    settings: ZoomSettings,
    http: reqwest::Client,
    retry: RetryPolicy,
    token: Mutex<Option<(String, Instant)>>,
}

/// The marker that makes a meeting findable by its conference.
fn marker(reference: &str) -> String {
    format!("meetline:{reference}")
}

fn meeting_body(request: &MeetingRequest) -> Value {
    json!({
        "topic": request.topic.chars().take(200).collect::<String>(),
        "type": 2,
        "start_time": request.start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "duration": request.duration_minutes,
        "timezone": request.timezone,
        "agenda": marker(&request.reference),
    })
}

fn provisioned(body: &Value) -> Result<ProvisionedMeeting, ProviderError> {
    let meeting_id = match &body["id"] {
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        _ => {
            return Err(ProviderError::Unavailable {
                message: "Zoom answered without a meeting id".to_owned(),
                retry_after: None,
            });
        }
    };
    Ok(ProvisionedMeeting {
        meeting_id,
        join_url: body["join_url"].as_str().unwrap_or_default().to_owned(),
        start_url: body["start_url"].as_str().map(str::to_owned),
        password: body["password"].as_str().map(str::to_owned),
        // Zoom's meeting id is the number people type.
        meeting_code: None,
    })
}

impl ZoomProvider {
    pub fn new(settings: ZoomSettings, http: reqwest::Client) -> Self {
        Self {
            settings,
            http,
            retry: RetryPolicy::default(),
            token: Mutex::new(None),
        }
    }

    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn settings(&self) -> &ZoomSettings {
        &self.settings
    }

    /// A cached access token, or a fresh one (`refresh`: the cached one was refused).
    async fn access_token(&self, refresh: bool) -> Result<String, ProviderError> {
        let mut cached = self.token.lock().await;
        if !refresh
            && let Some((token, expires)) = cached.as_ref()
            && Instant::now() + Duration::from_secs(60) < *expires
        {
            return Ok(token.clone());
        }
        let url = format!("{}/oauth/token", self.settings.endpoints.oauth_base_url);
        let response = self
            .http
            .post(url)
            .query(&[
                ("grant_type", "account_credentials"),
                ("account_id", self.settings.account_id.as_str()),
            ])
            .basic_auth(&self.settings.client_id, Some(&self.settings.client_secret))
            .send()
            .await
            .map_err(|error| ProviderError::Unavailable {
                message: format!("Zoom OAuth: {}", error.without_url()),
                retry_after: None,
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(refusal_or_outage(
                status,
                retry_after(&response),
                response.text().await.unwrap_or_default(),
            ));
        }
        let token: TokenResponse =
            response
                .json()
                .await
                .map_err(|_| ProviderError::Unavailable {
                    message: "Zoom OAuth answered without a token".to_owned(),
                    retry_after: None,
                })?;
        *cached = Some((
            token.access_token.clone(),
            Instant::now() + Duration::from_secs(token.expires_in),
        ));
        Ok(token.access_token)
    }

    /// One call with retries: 429/5xx/network are retried with backoff (at least `Retry-After`),
    /// a 401 refreshes the token once. For calls that are safe to repeat (all but create).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ProviderError> {
        let mut backoff = self.retry.delays();
        let mut refreshed = false;
        loop {
            let result = self.attempt(method.clone(), path, body, refreshed).await;
            match result {
                Err(Attempt::Unauthorized) if !refreshed => {
                    refreshed = true;
                    continue;
                }
                Err(Attempt::Unauthorized) => {
                    return Err(ProviderError::Refused {
                        status: 401,
                        code: None,
                        message: "Zoom refused the access token".to_owned(),
                    });
                }
                Err(Attempt::Failed(ProviderError::Unavailable {
                    message,
                    retry_after,
                })) => {
                    let Some(delay) = backoff.next() else {
                        return Err(ProviderError::Unavailable {
                            message,
                            retry_after,
                        });
                    };
                    let delay = retry_after.map_or(delay, |asked| asked.max(delay));
                    tracing::warn!(%message, ?delay, "Zoom call failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(Attempt::Failed(other)) => return Err(other),
                Ok(answer) => return Ok(answer),
            }
        }
    }

    async fn attempt(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        refresh: bool,
    ) -> Result<(StatusCode, Value), Attempt> {
        let token = self.access_token(refresh).await.map_err(Attempt::Failed)?;
        let mut request = self
            .http
            .request(
                method,
                format!("{}{path}", self.settings.endpoints.api_base_url),
            )
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|error| {
            Attempt::Failed(ProviderError::Unavailable {
                message: format!("Zoom API: {}", error.without_url()),
                retry_after: None,
            })
        })?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(Attempt::Unauthorized);
        }
        let wait = retry_after(&response);
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            let value = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::Null)
            };
            return Ok((status, value));
        }
        Err(Attempt::Failed(refusal_or_outage(status, wait, text)))
    }

    /// Finds a meeting this line's user has with the reference's marker (an earlier create that
    /// succeeded although its answer was lost).
    async fn find_meeting(
        &self,
        reference: &str,
    ) -> Result<Option<ProvisionedMeeting>, ProviderError> {
        let path = format!(
            "/users/{}/meetings?type=upcoming&page_size=300",
            urlencode(&self.settings.user_id)
        );
        let (_, body) = self.call(Method::GET, &path, None).await?;
        let wanted = marker(reference);
        let Some(found) = body["meetings"].as_array().and_then(|meetings| {
            meetings.iter().find(|meeting| {
                meeting["agenda"]
                    .as_str()
                    .is_some_and(|agenda| agenda.contains(&wanted))
            })
        }) else {
            return Ok(None);
        };
        // The list omits the start URL and password: read the meeting itself.
        let id = provisioned(found)?.meeting_id;
        let (_, meeting) = self
            .call(Method::GET, &format!("/meetings/{id}"), None)
            .await?;
        provisioned(&meeting).map(Some)
    }
}

enum Attempt {
    Unauthorized,
    Failed(ProviderError),
}

fn refusal_or_outage(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: String,
) -> ProviderError {
    let parsed: Option<ZoomErrorBody> = serde_json::from_str(&body).ok();
    let message = parsed
        .as_ref()
        .and_then(|error| error.message.clone())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let code = parsed.and_then(|error| error.code);
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return ProviderError::Unavailable {
            message: format!("Zoom {}: {message}", status.as_u16()),
            retry_after,
        };
    }
    if status == StatusCode::NOT_FOUND {
        return ProviderError::NotFound;
    }
    ProviderError::Refused {
        status: status.as_u16(),
        code,
        message,
    }
}

#[async_trait]
impl VideoProvider for ZoomProvider {
    async fn create(&self, request: &MeetingRequest) -> Result<ProvisionedMeeting, ProviderError> {
        let path = format!("/users/{}/meetings", urlencode(&self.settings.user_id));
        let body = meeting_body(request);
        // Retries are done here, not in `call`, so an ambiguous failure can look before it leaps.
        let mut backoff = self.retry.delays();
        let mut refreshed = false;
        let mut ambiguous = false;
        loop {
            if ambiguous && let Some(found) = self.find_meeting(&request.reference).await? {
                return Ok(found);
            }
            match self
                .attempt(Method::POST, &path, Some(&body), refreshed)
                .await
            {
                Ok((_, created)) => return provisioned(&created),
                Err(Attempt::Unauthorized) if !refreshed => refreshed = true,
                Err(Attempt::Unauthorized) => {
                    return Err(ProviderError::Refused {
                        status: 401,
                        code: None,
                        message: "Zoom refused the access token".to_owned(),
                    });
                }
                Err(Attempt::Failed(ProviderError::Unavailable {
                    message,
                    retry_after,
                })) => {
                    let Some(delay) = backoff.next() else {
                        return Err(ProviderError::Unavailable {
                            message,
                            retry_after,
                        });
                    };
                    // A 429 was not processed; a 5xx or a lost answer may have been.
                    ambiguous = !message.starts_with("Zoom 429");
                    tokio::time::sleep(retry_after.map_or(delay, |asked| asked.max(delay))).await;
                }
                Err(Attempt::Failed(other)) => return Err(other),
            }
        }
    }

    async fn update(
        &self,
        meeting_id: &str,
        request: &MeetingRequest,
    ) -> Result<(), ProviderError> {
        self.call(
            Method::PATCH,
            &format!("/meetings/{meeting_id}"),
            Some(&meeting_body(request)),
        )
        .await
        .map(|_| ())
    }

    async fn delete(&self, meeting_id: &str) -> Result<(), ProviderError> {
        match self
            .call(Method::DELETE, &format!("/meetings/{meeting_id}"), None)
            .await
        {
            Ok(_) | Err(ProviderError::NotFound) => Ok(()),
            Err(other) => Err(other),
        }
    }

    async fn find_created(
        &self,
        reference: &str,
    ) -> Result<Option<ProvisionedMeeting>, ProviderError> {
        self.find_meeting(reference).await
    }

    async fn end(&self, meeting_id: &str) -> Result<(), ProviderError> {
        let body = json!({"action": "end"});
        match self
            .call(
                Method::PUT,
                &format!("/meetings/{meeting_id}/status"),
                Some(&body),
            )
            .await
        {
            // A meeting Zoom no longer has is over already.
            Ok(_) | Err(ProviderError::NotFound) => Ok(()),
            Err(other) => Err(other),
        }
    }
}

/// Zoom webhooks: `x-zm-signature` is `v0=` + hex HMAC-SHA256 of `v0:{x-zm-request-timestamp}:{body}`
/// under the webhook secret token.
pub mod webhook {
    use chrono::{DateTime, Utc};
    use hmac::{Hmac, Mac};
    use meetline_domain::ports::providers::{
        Notification, WebhookCall, WebhookMeaning, WebhookReader, WebhookRefusal, WebhookSubject,
    };
    use meetline_domain::types::{hex, unhex};
    use serde_json::Value;
    use sha2::Sha256;

    type HmacSha256 = Hmac<Sha256>;

    fn mac(secret: &str) -> HmacSha256 {
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length")
    }

    /// The signature Zoom sends for `body` at `timestamp`.
    pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
        let mut mac = mac(secret);
        mac.update(format!("v0:{timestamp}:").as_bytes());
        mac.update(body);
        format!("v0={}", hex(&mac.finalize().into_bytes()))
    }

    /// Whether `header` is the signature of `body` at `timestamp` under `secret` (constant time).
    pub fn verify(secret: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
        let Some(given) = header.trim().strip_prefix("v0=") else {
            return false;
        };
        let Some(given) = unhex(given) else {
            return false;
        };
        let mut mac = mac(secret);
        mac.update(format!("v0:{timestamp}:").as_bytes());
        mac.update(body);
        mac.verify_slice(&given).is_ok()
    }

    /// The answer to `endpoint.url_validation`: the plain token and its HMAC under the secret.
    pub fn url_validation(secret: &str, plain_token: &str) -> serde_json::Value {
        let mut mac = mac(secret);
        mac.update(plain_token.as_bytes());
        serde_json::json!({"plainToken": plain_token, "encryptedToken": hex(&mac.finalize().into_bytes())})
    }

    /// How far a notification's timestamp may be from now (replay protection).
    const SKEW_SECONDS: u64 = 300;

    /// Reads Zoom's event notifications (`meeting.started`, `meeting.ended`, and the
    /// `endpoint.url_validation` challenge), verified by `x-zm-signature` against a Zoom line's
    /// `webhook_secret`.
    #[derive(Debug, Default)]
    pub struct ZoomWebhooks;

    /// A Zoom notification whose timestamp is fresh, not yet verified.
    struct ZoomNotification {
        timestamp: String,
        signature: String,
        body: Vec<u8>,
        json: Value,
    }

    impl WebhookReader for ZoomWebhooks {
        fn read(&self, call: &WebhookCall<'_>) -> Result<Box<dyn Notification>, WebhookRefusal> {
            let (Some(timestamp), Some(signature)) = (
                call.header("x-zm-request-timestamp"),
                call.header("x-zm-signature"),
            ) else {
                return Err(WebhookRefusal::Unauthorized);
            };
            // `v0=` and 64 hex digits, or no secret is even looked up.
            let well_formed = signature
                .strip_prefix("v0=")
                .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
            if !well_formed {
                return Err(WebhookRefusal::Unauthorized);
            }
            let seconds: i64 = timestamp
                .parse()
                .map_err(|_| WebhookRefusal::Unauthorized)?;
            let seconds = if seconds > 100_000_000_000 {
                seconds / 1000
            } else {
                seconds
            };
            // `abs_diff`: no overflow whatever the caller sends (e.g. now − 2⁶³).
            if call.now.timestamp().abs_diff(seconds) > SKEW_SECONDS {
                return Err(WebhookRefusal::Unauthorized);
            }
            Ok(Box::new(ZoomNotification {
                timestamp: timestamp.to_owned(),
                signature: signature.to_owned(),
                body: call.body.to_vec(),
                json: serde_json::from_slice(call.body).unwrap_or(Value::Null),
            }))
        }
    }

    impl ZoomNotification {
        fn event(&self) -> &str {
            self.json["event"].as_str().unwrap_or_default()
        }

        /// The meeting's id: digits, letters, `-` and `_` only (Zoom's are numbers), at most 64.
        fn meeting_id(&self) -> Option<String> {
            let id = match &self.json["payload"]["object"]["id"] {
                Value::Number(number) => number.to_string(),
                Value::String(text) => text.clone(),
                _ => return None,
            };
            let clean = !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            clean.then_some(id)
        }
    }

    impl Notification for ZoomNotification {
        fn subject(&self) -> WebhookSubject {
            match self.event() {
                "endpoint.url_validation" => WebhookSubject::Challenge,
                // A meeting event without a usable id is still about a meeting: refused as
                // malformed once verified.
                _ if self.json.is_null() => WebhookSubject::Other,
                _ => self
                    .meeting_id()
                    .map_or(WebhookSubject::Other, WebhookSubject::Meeting),
            }
        }

        fn verified_by(&self, settings: &Value) -> bool {
            super::ZoomSettings::webhook_secret(settings)
                .is_some_and(|secret| verify(&secret, &self.timestamp, &self.body, &self.signature))
        }

        fn meaning(
            &self,
            settings: &Value,
            now: DateTime<Utc>,
        ) -> Result<WebhookMeaning, WebhookRefusal> {
            if self.json.is_null() {
                return Err(WebhookRefusal::Malformed("the body is not JSON".to_owned()));
            }
            let event = self.event();
            if event == "endpoint.url_validation" {
                let secret = super::ZoomSettings::webhook_secret(settings)
                    .ok_or(WebhookRefusal::Unauthorized)?;
                let plain = self.json["payload"]["plainToken"]
                    .as_str()
                    .filter(|plain| plain.len() <= 256)
                    .ok_or_else(|| WebhookRefusal::Malformed("payload.plainToken".to_owned()))?;
                return Ok(WebhookMeaning::Answer(url_validation(&secret, plain)));
            }
            let started = match event {
                "meeting.started" => true,
                "meeting.ended" => false,
                _ => return Ok(WebhookMeaning::Ignored),
            };
            let meeting_id = self
                .meeting_id()
                .ok_or_else(|| WebhookRefusal::Malformed("payload.object.id".to_owned()))?;
            let field = if started { "start_time" } else { "end_time" };
            let at = self.json["payload"]["object"][field]
                .as_str()
                .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
                .map_or(now, |at| at.with_timezone(&Utc));
            // Zoom retries deliveries: the same notification is one command.
            let delivery = format!("zoom:{event}:{meeting_id}:{}", self.json["event_ts"]);
            Ok(WebhookMeaning::Meeting {
                meeting_id,
                started,
                at,
                delivery,
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_signature_verifies_only_with_its_secret_body_and_timestamp() {
            let header = signature("whsec", "1700000000", br#"{"event":"meeting.started"}"#);
            assert!(header.starts_with("v0="));
            assert!(verify(
                "whsec",
                "1700000000",
                br#"{"event":"meeting.started"}"#,
                &header
            ));
            assert!(!verify(
                "other",
                "1700000000",
                br#"{"event":"meeting.started"}"#,
                &header
            ));
            assert!(!verify(
                "whsec",
                "1700000001",
                br#"{"event":"meeting.started"}"#,
                &header
            ));
            assert!(!verify(
                "whsec",
                "1700000000",
                br#"{"event":"meeting.ended"}"#,
                &header
            ));
            assert!(!verify("whsec", "1700000000", b"{}", "v0=zz"));
            let answer = url_validation("whsec", "qgg8vlvZRS6UYooatFL8Aw");
            assert_eq!(answer["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
            assert_eq!(answer["encryptedToken"].as_str().unwrap().len(), 64);
        }
    }
}
