//! `TencentProvider`: the video provider port on Tencent Meeting's (腾讯会议) REST API for one
//! line (one user of an enterprise account, with the enterprise's self-built app credentials:
//! AK/SK authentication).
//!
//! # Calls
//! All on `{api_base_url}` (`https://api.meeting.qq.com` unless the operator says otherwise),
//! always with `instanceid: 1` (PC; "缺省可填1" in the create model of Tencent's SDK, below):
//! - create: `POST /v1/meetings` with `userid`, `instanceid`, `subject`, `type: 0` (scheduled),
//!   `start_time` / `end_time` (Unix seconds, as strings), `location` (the marker, below); the
//!   answer's `meeting_info_list[0]` gives `meeting_id`, `meeting_code` (9 digits), `join_url`,
//!   `password`.
//! - update: `PUT /v1/meetings/{meeting_id}` with `userid`, `instanceid`, `subject`,
//!   `start_time`, `end_time`, `location`.
//! - delete (a cancelled conference): `POST /v1/meetings/{meeting_id}/cancel` with `userid`,
//!   `instanceid`, `reason_code: 1`. Error 13602 (a started meeting cannot be cancelled) →
//!   the meeting is dismissed instead, so it does not stay live.
//! - end: `POST /v1/meetings/{meeting_id}/dismiss` with `operator_id` (the user id),
//!   `operator_id_type: 1` (userid), `instanceid`, `reason_code: 1`, `force_dismiss_meeting: 1`,
//!   `retrieve_code: 1` (the meeting code is taken back: nobody can rejoin a meeting meetline
//!   ended).
//! - find a lost create: `GET /v1/meetings?userid=…&instanceid=1` (the user's ongoing and upcoming
//!   meetings, 20 a page, `pos` / `cursory` from `next_pos` / `next_cursory` while `remaining` is
//!   not 0), then `GET /v1/meetings/{meeting_id}?userid=…&instanceid=1` for the one found.
//!
//! # Signing
//! Every request carries `X-TC-Key` (the secret id), `X-TC-Timestamp` (Unix seconds),
//! `X-TC-Nonce` (a random positive integer), `X-TC-Signature`, `AppId`, `SdkId` (only when the
//! line has one), `X-TC-Registered: 1` and `Content-Type: application/json`. The signature is
//! [`signature`]: `base64(lowercase_hex(HMAC-SHA256(secret_key, "METHOD\nX-TC-Key=…&X-TC-Nonce=…&X-TC-Timestamp=…\nURI\nbody")))`
//! where the URI is the path with its query string and an empty body (GET) signs as "". Every
//! attempt, retries included, is signed afresh with a new timestamp and nonce (Tencent refuses a
//! timestamp more than 5 minutes off, and a timestamp/nonce pair seen in the last 5 minutes).
//!
//! # Errors
//! Tencent answers errors as `{"error_info": {"error_code", "message"}}`, with HTTP 400 for a bad
//! request and HTTP 500 for a refusal by the service (e.g. `9003 MEETING NOT EXIST`). So:
//! - HTTP 429, a 5xx without `error_info`, a network failure, and the codes the docs describe as
//!   rate limits (9061, 190310) or as internal/network errors to retry (41, 5108, 960000) are
//!   retried with exponential backoff (`backon`, per [`RetryPolicy`]), waiting at least what
//!   `Retry-After` asks (up to a minute; a longer wait is handed to the caller), then become
//!   `ProviderError::Unavailable`;
//! - 9003 (meeting not exist) is `ProviderError::NotFound`;
//! - any other `error_info` (whatever the HTTP status) and any other 4xx are
//!   `ProviderError::Refused { status, code: Some(error_code), message }`;
//! - a success whose body is not JSON, or a create answer without `meeting_id` / `join_url`, is
//!   `ProviderError::InvalidAnswer`.
//!
//! Delete and end count 9003 (not exist), 9007 (already cancelled) and 13603 (already ended) as
//! done: the meeting is not live either way.
//!
//! # Idempotent creates
//! Each meeting's `location` (会议地点) is `meetline:` + the first 24 hex digits of
//! SHA-256(reference). No hidden field is documented, so the marker is visible to participants;
//! `location` is free text that the list and the query by id return, is less prominent than the
//! subject, and takes at most 18 Chinese or 36 Latin characters — too few for
//! `meetline:<uuid>`, hence the digest. A create that failed ambiguously (5xx,
//! network, an internal-error code) looks for that marker among the user's meetings before it
//! posts again, and adopts the meeting it finds. [`TencentProvider::find_created`] does the same
//! lookup for a caller that lost an answer.
//!
//! # Sources
//! Confirmed from Tencent's public documentation (cloud.tencent.com/document/product/1095/…):
//! - `42413` (企业自建应用鉴权 / 公共参数): the headers, "X-TC-Nonce: 随机正整数", timestamps in
//!   seconds and refused when more than 5 minutes off, `Content-Type` must be
//!   `application/json`.
//! - `43551` (API 使用相关问题): the string to sign, upper-case method, URI with its query string,
//!   empty body as "", HMAC-SHA256 → hex → Base64.
//! - `42700` (返回结果) and `43704` (错误码): the error format, HTTP 400/500, codes 41, 5108, 9003,
//!   9008, 9061, 190300, 190301, and (190303) that `SdkId` is not sent when none was assigned.
//! - `42422` (取消会议): `userid`, `instanceid`, `reason_code` (required), codes 9003, 9007,
//!   13602 (已开始的会议不能取消), 13603 (会议已结束), 960000, 190310 — all HTTP 500.
//! - `57955` (结束会议): body `operator_id`, `operator_id_type` (1 = userid), `instanceid`,
//!   `reason_code` (required), `force_dismiss_meeting` (default 1), `retrieve_code` (default 0).
//! - `42424` (修改会议): `userid`, `instanceid`, `subject` (at most 512 bytes), times in seconds.
//! - `42421` (查询用户的会议列表): ongoing and upcoming meetings only, 20 a page, `pos` /
//!   `cursory` / `remaining` / `next_pos` / `next_cursory`.
//! - 通过会议 ID 查询 (`meeting.tencent.com/support/topic/875`, the same API reference on Tencent
//!   Meeting's own site) and `42700`'s example: `meeting_info_list` with `meeting_id`,
//!   `meeting_code`, `password`, `join_url`, `status`.
//!
//! Taken from Tencent's generated OpenAPI SDK (github.com/TencentCloud/wemeet-openapi-sdk-go,
//! `service/meetings/model.go`), not from a documentation page: the create body's field names and
//! `location` ("会议地点。最长支持18个汉字或36个英文字母"), that the modify body has **no** `type` field
//! (so an update sends none), `time_zone` being optional, and `location` being returned by both
//! the list and the query by id; the SDK's signer (`core/authenticator.go`) matches the algorithm
//! above.
//!
//! **Not confirmed by public documentation** (the conservative choice is taken):
//! - whether the list of the user's meetings always includes `location`: when an entry lacks
//!   the key, that meeting is read by id before it is ruled out;
//! - the create's subject limit: the modify limit (512 bytes) is applied to both;
//! - whether an IANA zone name is a valid `time_zone`: none is sent (the times are absolute);
//! - which error a dismiss of a meeting that has not started yet gets: it is a refusal;
//! - that the nonce may exceed 32 bits: nonces stay in `1..=2^31-1`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use meetline_domain::ports::{MeetingRequest, ProviderError, ProvisionedMeeting, VideoProvider};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use crate::net::RetryPolicy;
use crate::net::{operator_url, retry_after, urlencode};

/// Keys a `tencent` line's settings may hold; all but `sdk_id` are required.
pub const TENCENT_KEYS: [&str; 5] = ["app_id", "sdk_id", "secret_id", "secret_key", "user_id"];
/// Keys of a `tencent` line's settings whose values are secret: stored encrypted, never shown.
pub const TENCENT_SECRET_KEYS: [&str; 1] = ["secret_key"];
/// Settings that go into request headers, which take visible ASCII only.
const HEADER_KEYS: [&str; 3] = ["app_id", "sdk_id", "secret_id"];

/// The device type every call names (1: PC).
const INSTANCE_ID: i64 = 1;
/// `reason_code` of cancels and dismissals ("可为用户自定义").
const REASON_CODE: i64 = 1;
/// `error_info.error_code`s (docs 1095/43704, 1095/42422, 1095/57955).
mod codes {
    /// 系统内部网络错误.
    pub const INTERNAL_NETWORK: i64 = 41;
    /// 系统内部错误.
    pub const INTERNAL: i64 = 5108;
    /// 会议不存在 (MEETING NOT EXIST).
    pub const NOT_EXIST: i64 = 9003;
    /// 会议已取消 (MEETING CANCLED).
    pub const CANCELLED: i64 = 9007;
    /// 查询会议过于频繁,超过限频次数.
    pub const QUERY_RATE_LIMITED: i64 = 9061;
    /// 已开始的会议不能取消.
    pub const STARTED: i64 = 13602;
    /// 会议已结束.
    pub const ENDED: i64 = 13603;
    /// 每分钟总接口调用次数超过限制.
    pub const RATE_LIMITED: i64 = 190_310;
    /// 网络错误,请稍后重试.
    pub const NETWORK: i64 = 960_000;
}
/// The longest `Retry-After` waited for inside one call; a longer one goes to the caller.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Pages of the user's meeting list read when looking for a marker (20 meetings a page).
const MAX_LIST_PAGES: usize = 50;
/// Meeting states that are over: a marker on such a meeting is not adopted. The API's answers
/// use the `MEETING_STATE_` names; PROVIDERS.md lists the bare ones, so both are known.
const DEAD_STATES: [&str; 8] = [
    "MEETING_STATE_CANCELLED",
    "MEETING_STATE_ENDED",
    "MEETING_STATE_RECYCLED",
    "MEETING_STATE_INVALID",
    "CANCELLED",
    "ENDED",
    "RECYCLED",
    "NULL",
];
/// The modify API's subject limit, in bytes (1095/42424).
const MAX_SUBJECT_BYTES: usize = 512;

/// Where Tencent Meeting's REST API is: the operator's configuration (flags or environment),
/// never a tenant's line setting — a tenant admin who could name it would make the server send
/// signed requests, with the line's user and app ids, wherever they like (SSRF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TencentEndpoints {
    /// `https://api.meeting.qq.com` by default.
    pub api_base_url: String,
}

impl Default for TencentEndpoints {
    fn default() -> Self {
        Self {
            api_base_url: "https://api.meeting.qq.com".to_owned(),
        }
    }
}

impl TencentEndpoints {
    /// # Errors
    /// The URL, unless it is `https://…` (plain `http://` only on a loopback host, for a local
    /// test double).
    pub fn new(api_base_url: &str) -> Result<Self, String> {
        Ok(Self {
            api_base_url: operator_url(api_base_url)?,
        })
    }
}

/// A Tencent Meeting line's settings (from the line's encrypted settings) and the operator's
/// endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct TencentSettings {
    /// The enterprise id Tencent Meeting assigned (header `AppId`).
    pub app_id: String,
    /// The app's SDK id (header `SdkId`), for apps that were given one.
    pub sdk_id: Option<String>,
    /// The app's secret id (header `X-TC-Key`).
    pub secret_id: String,
    /// The app's secret key: signs requests, is never sent.
    pub secret_key: String,
    /// The enterprise user (`userid`) who hosts this line's meetings.
    pub user_id: String,
    pub endpoints: TencentEndpoints,
}

impl std::fmt::Debug for TencentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TencentSettings")
            .field("app_id", &self.app_id)
            .field("user_id", &self.user_id)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// A setting's trimmed text, if it has a non-empty one.
fn setting<'a>(settings: &'a Value, key: &str) -> Option<&'a str> {
    settings
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// Whether a header can carry `text` (visible ASCII; spaces inside are allowed).
fn header_safe(text: &str) -> bool {
    text.bytes().all(|byte| (0x20..0x7f).contains(&byte))
}

impl TencentSettings {
    /// Reads a line's settings (checked by [`validate`] when they were stored).
    ///
    /// # Errors
    /// The name of a missing key, or of one a request header could not carry.
    pub fn from_line(settings: &Value, endpoints: &TencentEndpoints) -> Result<Self, String> {
        let required = |key: &str| {
            setting(settings, key)
                .filter(|text| !HEADER_KEYS.contains(&key) || header_safe(text))
                .map(str::to_owned)
                .ok_or_else(|| key.to_owned())
        };
        let sdk_id = match setting(settings, "sdk_id") {
            Some(sdk_id) if !header_safe(sdk_id) => return Err("sdk_id".to_owned()),
            sdk_id => sdk_id.map(str::to_owned),
        };
        Ok(Self {
            app_id: required("app_id")?,
            sdk_id,
            secret_id: required("secret_id")?,
            secret_key: required("secret_key")?,
            user_id: required("user_id")?,
            endpoints: endpoints.clone(),
        })
    }
}

/// Checks a `tencent` line's settings: only [`TENCENT_KEYS`]; each a string that is non-empty
/// once trimmed, at most 500 characters, without control characters; all but `sdk_id`
/// required (`sdk_id` may also be `null`); `app_id`, `sdk_id` and `secret_id` visible ASCII,
/// since they travel in request headers.
///
/// # Errors
/// The key that is unknown, missing or malformed (`settings` when it is not an object).
pub fn validate(settings: &Value) -> Result<(), String> {
    let object = settings.as_object().ok_or_else(|| "settings".to_owned())?;
    if let Some(unknown) = object
        .keys()
        .find(|key| !TENCENT_KEYS.contains(&key.as_str()))
    {
        return Err(unknown.clone());
    }
    for key in TENCENT_KEYS {
        let optional = key == "sdk_id";
        match object.get(key) {
            None | Some(Value::Null) if optional => {}
            Some(Value::String(value))
                if !value.trim().is_empty()
                    && value.chars().count() <= 500
                    && !value.chars().any(char::is_control)
                    && (!HEADER_KEYS.contains(&key) || header_safe(value.trim())) => {}
            _ => return Err(key.to_owned()),
        }
    }
    Ok(())
}

/// `X-TC-Signature` for one request (doc 1095/43551):
/// `base64(lowercase_hex(HMAC-SHA256(secret_key, "{METHOD}\nX-TC-Key={secret_id}&X-TC-Nonce={nonce}&X-TC-Timestamp={timestamp}\n{uri}\n{body}")))`,
/// where `uri` is the path with its query string (`/v1/meetings/1?userid=u&instanceid=1`) and
/// `body` the exact body sent ("" for none).
pub fn signature(
    secret_key: &str,
    method: &str,
    secret_id: &str,
    nonce: u64,
    timestamp: u64,
    uri: &str,
    body: &str,
) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(
        format!(
            "{}\nX-TC-Key={secret_id}&X-TC-Nonce={nonce}&X-TC-Timestamp={timestamp}\n{uri}\n{body}",
            method.to_ascii_uppercase()
        )
        .as_bytes(),
    );
    let hex = meetline_domain::types::hex(&mac.finalize().into_bytes());
    base64(hex.as_bytes())
}

/// Standard Base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The marker in a meeting's `location` that makes it findable by its conference: 33 ASCII
/// characters, within the field's 36.
fn marker(reference: &str) -> String {
    let digest = meetline_domain::types::hex(&Sha256::digest(reference.as_bytes()));
    format!("meetline:{}", &digest[..24])
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Who reads the provider's words: keep them short.
fn short(message: &str) -> String {
    message.chars().take(300).collect()
}

/// A failed attempt: the error, and whether the request may have been carried out anyway
/// (a 5xx, a lost answer), which a create must check before it posts again.
#[derive(Debug)]
struct Failure {
    error: ProviderError,
    maybe_done: bool,
}

impl Failure {
    fn fatal(error: ProviderError) -> Self {
        Self {
            error,
            maybe_done: false,
        }
    }

    fn retry(message: String, retry_after: Option<Duration>, maybe_done: bool) -> Self {
        Self {
            error: ProviderError::Unavailable {
                message,
                retry_after,
            },
            maybe_done,
        }
    }
}

/// The delay before the next retry, or `None` to give up (no retries left, or Tencent asked for
/// a longer wait than one call should take: the caller gets `retry_after`).
fn next_delay(
    backoff: &mut impl Iterator<Item = Duration>,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let delay = backoff.next()?;
    match retry_after {
        Some(asked) if asked > MAX_RETRY_AFTER => None,
        Some(asked) => Some(asked.max(delay)),
        None => Some(delay),
    }
}

/// What an answer means (see the module documentation, "Errors").
fn interpret(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &str,
) -> Result<Value, Failure> {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let reason = || status.canonical_reason().unwrap_or("error").to_owned();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Failure::retry(
            format!("Tencent Meeting {}: rate limited", status.as_u16()),
            retry_after,
            false,
        ));
    }
    if let Some(info) = parsed
        .as_ref()
        .and_then(|body| body.get("error_info"))
        .filter(|info| info.is_object())
    {
        let code = info.get("error_code").and_then(Value::as_i64);
        let message = info
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(reason, short);
        let retry = |maybe_done| {
            Failure::retry(
                format!(
                    "Tencent Meeting {} (code {}): {message}",
                    status.as_u16(),
                    code.unwrap_or_default()
                ),
                retry_after,
                maybe_done,
            )
        };
        return Err(match code {
            Some(codes::NOT_EXIST) => Failure::fatal(ProviderError::NotFound),
            Some(codes::QUERY_RATE_LIMITED | codes::RATE_LIMITED) => retry(false),
            Some(codes::INTERNAL_NETWORK | codes::INTERNAL | codes::NETWORK) => retry(true),
            None if status.is_server_error() => retry(true),
            code => Failure::fatal(ProviderError::Refused {
                status: status.as_u16(),
                code,
                message,
            }),
        });
    }
    if status.is_server_error() {
        return Err(Failure::retry(
            format!("Tencent Meeting {}: {}", status.as_u16(), reason()),
            retry_after,
            true,
        ));
    }
    if !status.is_success() {
        return Err(Failure::fatal(ProviderError::Refused {
            status: status.as_u16(),
            code: None,
            message: reason(),
        }));
    }
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    parsed.ok_or_else(|| Failure::fatal(ProviderError::InvalidAnswer))
}

/// A meeting object of a `meeting_info_list` as the port's meeting.
fn provisioned(meeting: &Value) -> Result<ProvisionedMeeting, ProviderError> {
    let meeting_id = match meeting.get("meeting_id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(Value::Number(id)) => id.to_string(),
        _ => return Err(ProviderError::InvalidAnswer),
    };
    let join_url = meeting
        .get("join_url")
        .and_then(Value::as_str)
        .filter(|url| !url.is_empty())
        .ok_or(ProviderError::InvalidAnswer)?
        .to_owned();
    let optional = |key: &str| {
        meeting
            .get(key)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    };
    Ok(ProvisionedMeeting {
        meeting_id,
        join_url,
        start_url: None,
        password: optional("password"),
        meeting_code: optional("meeting_code"),
    })
}

/// The first meeting of an answer's `meeting_info_list`.
fn first_meeting(answer: &Value) -> Result<&Value, ProviderError> {
    answer
        .get("meeting_info_list")
        .and_then(Value::as_array)
        .and_then(|list| list.first())
        .ok_or(ProviderError::InvalidAnswer)
}

/// A Tencent Meeting line: the video provider port on Tencent Meeting's REST API.
#[derive(Debug)]
pub struct TencentProvider {
    settings: TencentSettings,
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl TencentProvider {
    /// A provider for the line with `settings`, calling out through `http` (use
    /// [`crate::net::http_client`]: it follows no redirects).
    pub fn new(settings: TencentSettings, http: reqwest::Client) -> Self {
        Self {
            settings,
            http,
            retry: RetryPolicy::default(),
        }
    }

    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn settings(&self) -> &TencentSettings {
        &self.settings
    }

    /// `?userid=…&instanceid=1`.
    fn user_query(&self) -> String {
        format!(
            "?userid={}&instanceid={INSTANCE_ID}",
            urlencode(&self.settings.user_id)
        )
    }

    fn meeting_body(&self, request: &MeetingRequest, create: bool) -> Value {
        let start = request.start.timestamp();
        let end = start.saturating_add(request.duration_minutes.saturating_mul(60));
        let mut body = json!({
            "userid": self.settings.user_id,
            "instanceid": INSTANCE_ID,
            "subject": truncated(&request.topic, MAX_SUBJECT_BYTES),
            "start_time": start.to_string(),
            "end_time": end.to_string(),
            "location": marker(&request.reference),
        });
        if create {
            body["type"] = json!(0);
        }
        body
    }

    /// One signed attempt. `path` starts with `/` and may carry a query string.
    async fn attempt(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let settings = &self.settings;
        let url = reqwest::Url::parse(&format!("{}{path}", settings.endpoints.api_base_url))
            .map_err(|_| {
                // Status 0: no HTTP exchange took place.
                Failure::fatal(ProviderError::Refused {
                    status: 0,
                    code: None,
                    message: "the Tencent Meeting URL is invalid".to_owned(),
                })
            })?;
        // What is signed is exactly what is sent: the URL's own path and query, the body's text.
        let uri = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let body = body.map(Value::to_string);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let nonce = rand::random_range(1..=0x7fff_ffff_u64);
        let signed = signature(
            &settings.secret_key,
            method.as_str(),
            &settings.secret_id,
            nonce,
            timestamp,
            &uri,
            body.as_deref().unwrap_or_default(),
        );
        let mut request = self
            .http
            .request(method.clone(), url)
            .header("X-TC-Key", &settings.secret_id)
            .header("X-TC-Timestamp", timestamp.to_string())
            .header("X-TC-Nonce", nonce.to_string())
            .header("X-TC-Signature", signed)
            .header("AppId", &settings.app_id)
            .header("X-TC-Registered", "1")
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(sdk_id) = &settings.sdk_id {
            request = request.header("SdkId", sdk_id);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(|error| {
            Failure::retry(
                format!("Tencent Meeting API: {}", error.without_url()),
                None,
                true,
            )
        })?;
        let status = response.status();
        let wait = retry_after(&response);
        let text = response.text().await.map_err(|error| {
            Failure::retry(
                format!("Tencent Meeting API: {}", error.without_url()),
                None,
                true,
            )
        })?;
        interpret(status, wait, &text)
    }

    /// One call with retries (429, 5xx, network, transient codes) — for calls that are safe to
    /// repeat (all but create).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ProviderError> {
        let mut backoff = self.retry.delays();
        loop {
            match self.attempt(&method, path, body).await {
                Ok(answer) => return Ok(answer),
                Err(Failure {
                    error:
                        ProviderError::Unavailable {
                            message,
                            retry_after,
                        },
                    ..
                }) => {
                    let Some(delay) = next_delay(&mut backoff, retry_after) else {
                        return Err(ProviderError::Unavailable {
                            message,
                            retry_after,
                        });
                    };
                    tracing::warn!(%message, ?delay, "Tencent Meeting call failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(Failure { error, .. }) => return Err(error),
            }
        }
    }

    /// Reads one meeting by id (`None` when Tencent has no such meeting).
    async fn meeting(&self, meeting_id: &str) -> Result<Option<Value>, ProviderError> {
        let path = format!(
            "/v1/meetings/{}{}",
            urlencode(meeting_id),
            self.user_query()
        );
        match self.call(Method::GET, &path, None).await {
            Ok(answer) => first_meeting(&answer).cloned().map(Some),
            Err(ProviderError::NotFound) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Finds the user's live meeting that carries the reference's marker (an earlier create that
    /// succeeded although its answer was lost).
    async fn find_meeting(
        &self,
        reference: &str,
    ) -> Result<Option<ProvisionedMeeting>, ProviderError> {
        let wanted = marker(reference);
        let mut cursor: Option<(String, String)> = None;
        for _ in 0..MAX_LIST_PAGES {
            let mut path = format!("/v1/meetings{}", self.user_query());
            if let Some((pos, cursory)) = &cursor {
                path.push_str(&format!(
                    "&pos={}&cursory={}",
                    urlencode(pos),
                    urlencode(cursory)
                ));
            }
            let page = self.call(Method::GET, &path, None).await?;
            let meetings = page
                .get("meeting_info_list")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            for listed in meetings {
                let dead = listed
                    .get("status")
                    .and_then(Value::as_str)
                    .is_some_and(|status| DEAD_STATES.contains(&status));
                let id = match listed.get("meeting_id") {
                    Some(Value::String(id)) if !dead && !id.is_empty() => id.clone(),
                    Some(Value::Number(id)) if !dead => id.to_string(),
                    _ => continue,
                };
                let marked = |meeting: &Value| {
                    meeting
                        .get("location")
                        .and_then(Value::as_str)
                        .is_some_and(|location| location.trim() == wanted)
                };
                // The list is documented to carry `location`, but an entry without the key is
                // read by id rather than ruled out.
                if listed.get("location").is_some() && !marked(listed) {
                    continue;
                }
                let Some(meeting) = self.meeting(&id).await? else {
                    continue;
                };
                if marked(&meeting) {
                    return provisioned(&meeting).map(Some);
                }
            }
            let remaining = page.get("remaining").and_then(Value::as_i64).unwrap_or(0);
            let number = |key: &str| match page.get(key) {
                Some(Value::Number(number)) => Some(number.to_string()),
                Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
                _ => None,
            };
            let next = number("next_pos").map(|pos| {
                (
                    pos,
                    number("next_cursory").unwrap_or_else(|| "0".to_owned()),
                )
            });
            match next {
                Some(next) if remaining != 0 && cursor.as_ref() != Some(&next) => {
                    cursor = Some(next);
                }
                _ => return Ok(None),
            }
        }
        tracing::warn!(
            pages = MAX_LIST_PAGES,
            "Tencent Meeting: the user's meeting list is longer than searched"
        );
        Ok(None)
    }

    /// Ends a meeting (`/dismiss`) and takes its meeting code back; a meeting that is gone,
    /// cancelled or over already counts as ended.
    async fn dismiss(&self, meeting_id: &str) -> Result<(), ProviderError> {
        let body = json!({
            "operator_id": self.settings.user_id,
            "operator_id_type": 1,
            "instanceid": INSTANCE_ID,
            "reason_code": REASON_CODE,
            "force_dismiss_meeting": 1,
            "retrieve_code": 1,
        });
        let path = format!("/v1/meetings/{}/dismiss", urlencode(meeting_id));
        match self.call(Method::POST, &path, Some(&body)).await {
            Ok(_)
            | Err(
                ProviderError::NotFound
                | ProviderError::Refused {
                    code: Some(codes::CANCELLED | codes::ENDED),
                    ..
                },
            ) => Ok(()),
            Err(other) => Err(other),
        }
    }
}

#[async_trait]
impl VideoProvider for TencentProvider {
    async fn create(&self, request: &MeetingRequest) -> Result<ProvisionedMeeting, ProviderError> {
        let body = self.meeting_body(request, true);
        // Retries are done here, not in `call`, so an ambiguous failure can look before it leaps.
        let mut backoff = self.retry.delays();
        let mut ambiguous = false;
        loop {
            if ambiguous {
                match self.find_meeting(&request.reference).await {
                    Ok(Some(found)) => {
                        tracing::info!(
                            meeting_id = %found.meeting_id,
                            "Tencent Meeting: adopted the meeting an earlier attempt created"
                        );
                        return Ok(found);
                    }
                    Ok(None) => {}
                    // Whether the meeting exists cannot be told now: wait and look again
                    // rather than post blindly.
                    Err(ProviderError::Unavailable {
                        message,
                        retry_after,
                    }) => {
                        let Some(delay) = next_delay(&mut backoff, retry_after) else {
                            return Err(ProviderError::Unavailable {
                                message,
                                retry_after,
                            });
                        };
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    Err(other) => return Err(other),
                }
            }
            match self
                .attempt(&Method::POST, "/v1/meetings", Some(&body))
                .await
            {
                Ok(answer) => return first_meeting(&answer).and_then(provisioned),
                Err(Failure {
                    error:
                        ProviderError::Unavailable {
                            message,
                            retry_after,
                        },
                    maybe_done,
                }) => {
                    // Once an attempt may have created the meeting, every later one looks first.
                    ambiguous |= maybe_done;
                    let Some(delay) = next_delay(&mut backoff, retry_after) else {
                        // Out of retries: one last look, so a meeting an attempt did create
                        // is adopted rather than left behind at Tencent.
                        if ambiguous
                            && let Ok(Some(found)) = self.find_meeting(&request.reference).await
                        {
                            return Ok(found);
                        }
                        return Err(ProviderError::Unavailable {
                            message,
                            retry_after,
                        });
                    };
                    tracing::warn!(%message, ?delay, "Tencent Meeting create failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(Failure { error, .. }) => return Err(error),
            }
        }
    }

    async fn update(
        &self,
        meeting_id: &str,
        request: &MeetingRequest,
    ) -> Result<(), ProviderError> {
        self.call(
            Method::PUT,
            &format!("/v1/meetings/{}", urlencode(meeting_id)),
            Some(&self.meeting_body(request, false)),
        )
        .await
        .map(|_| ())
    }

    async fn delete(&self, meeting_id: &str) -> Result<(), ProviderError> {
        let body = json!({
            "userid": self.settings.user_id,
            "instanceid": INSTANCE_ID,
            "reason_code": REASON_CODE,
        });
        let path = format!("/v1/meetings/{}/cancel", urlencode(meeting_id));
        match self.call(Method::POST, &path, Some(&body)).await {
            Ok(_)
            | Err(
                ProviderError::NotFound
                | ProviderError::Refused {
                    code: Some(codes::CANCELLED | codes::ENDED),
                    ..
                },
            ) => Ok(()),
            Err(ProviderError::Refused {
                status,
                code: Some(codes::STARTED),
                message,
            }) => {
                // A cancelled conference's meeting must not stay live: end it instead.
                tracing::warn!(
                    %meeting_id,
                    "Tencent Meeting: the meeting has started and cannot be cancelled; dismissing it"
                );
                match self.dismiss(meeting_id).await {
                    Ok(()) => {
                        tracing::info!(%meeting_id, "Tencent Meeting: dismissed the started meeting of a cancelled conference");
                        Ok(())
                    }
                    // Worth trying again later: the whole delete is.
                    Err(unavailable @ ProviderError::Unavailable { .. }) => Err(unavailable),
                    Err(other) => {
                        let why = match &other {
                            ProviderError::Refused {
                                status,
                                code: Some(code),
                                message,
                            } => format!("HTTP {status}, code {code}: {message}"),
                            other => other.to_string(),
                        };
                        Err(ProviderError::Refused {
                            status,
                            code: Some(codes::STARTED),
                            message: format!("{message}; dismissing it failed too ({why})"),
                        })
                    }
                }
            }
            Err(other) => Err(other),
        }
    }

    async fn end(&self, meeting_id: &str) -> Result<(), ProviderError> {
        self.dismiss(meeting_id).await
    }

    async fn find_created(
        &self,
        reference: &str,
    ) -> Result<Option<ProvisionedMeeting>, ProviderError> {
        self.find_meeting(reference).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        // python3 -c 'import base64;[print(base64.b64encode(s).decode()) for s in [b"",b"f",b"fo",b"foo",b"foob",b"fooba",b"foobar"]]'
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn the_marker_fits_the_location_field() {
        // python3 -c 'import hashlib;print(hashlib.sha256(b"6f1c0000-0000-0000-0000-000000000001").hexdigest()[:24])'
        let marker = marker("6f1c0000-0000-0000-0000-000000000001");
        assert_eq!(marker, "meetline:ed69ed80ceabce17e7d6c5b3");
        assert!(marker.len() <= 36);
    }

    #[test]
    fn subjects_are_cut_on_character_boundaries() {
        assert_eq!(truncated("周会", 4), "周");
        assert_eq!(truncated("周会", 6), "周会");
        assert_eq!(truncated("abc", 512), "abc");
    }

    #[test]
    fn answers_are_interpreted_by_status_and_error_code() {
        let ok = StatusCode::OK;
        let error = |status: u16, code: i64| {
            interpret(
                StatusCode::from_u16(status).unwrap(),
                None,
                &json!({"error_info": {"error_code": code, "message": "m"}}).to_string(),
            )
            .unwrap_err()
        };
        assert_eq!(interpret(ok, None, "").unwrap(), Value::Null);
        assert_eq!(interpret(ok, None, "{}").unwrap(), json!({}));
        assert_eq!(
            interpret(ok, None, "<html>").unwrap_err().error,
            ProviderError::InvalidAnswer
        );
        assert_eq!(error(500, 9003).error, ProviderError::NotFound);
        let refused = error(500, 13602);
        assert_eq!(
            refused.error,
            ProviderError::Refused {
                status: 500,
                code: Some(13602),
                message: "m".into()
            }
        );
        // An error_info in a 200 is a refusal too.
        assert!(matches!(
            error(200, 9008).error,
            ProviderError::Refused {
                code: Some(9008),
                ..
            }
        ));
        let limited = error(500, 190_310);
        assert!(matches!(limited.error, ProviderError::Unavailable { .. }) && !limited.maybe_done);
        let internal = error(500, 960_000);
        assert!(matches!(internal.error, ProviderError::Unavailable { .. }) && internal.maybe_done);
        let bare = interpret(StatusCode::BAD_GATEWAY, None, "").unwrap_err();
        assert!(matches!(bare.error, ProviderError::Unavailable { .. }) && bare.maybe_done);
        let not_found = interpret(StatusCode::NOT_FOUND, None, "").unwrap_err();
        assert!(matches!(
            not_found.error,
            ProviderError::Refused {
                status: 404,
                code: None,
                ..
            }
        ));
        let throttled = interpret(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(2)),
            "",
        )
        .unwrap_err();
        assert_eq!(
            throttled.error,
            ProviderError::Unavailable {
                message: "Tencent Meeting 429: rate limited".into(),
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert!(!throttled.maybe_done);
    }
}
