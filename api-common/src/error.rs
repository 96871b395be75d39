//! The one API error enum, its status codes and its localized problem+json bodies.
//!
//! Handlers and extractors return [`ApiError`]; its `IntoResponse` only parks the error in the
//! response's extensions. The [`localize_problems`] middleware, which sees the request's
//! `Accept-Language`, then writes the body in Chinese or English. So every error — including
//! axum's own rejections mapped through [`ApiJson`] — is rendered in one place.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use meetline_domain::error::{Conflict, DomainError};
use meetline_domain::ports::StoreError;
use meetline_domain::types::ConferenceId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

pub use meetline_domain::error::{DURATION_EN, DURATION_ZH, NO_FREE_LINE_EN, NO_FREE_LINE_ZH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    /// `en…` as the first preference gives English; anything else Chinese (API.md).
    pub fn from_accept_language(value: Option<&str>) -> Self {
        let first = value
            .unwrap_or("")
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if first.starts_with("en") {
            Self::En
        } else {
            Self::Zh
        }
    }

    pub fn is_english(self) -> bool {
        self == Self::En
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_accept_language(
            parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|value| value.to_str().ok()),
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON, or not of the expected shape.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// 401: missing, invalid or expired token.
    #[error("unauthorized")]
    Unauthorized,
    /// 403/404/409/412/422, as the domain decided.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// 413: body over the limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 429: the caller is over its rate limit, or the command queue is full; `Retry-After`
    /// says how many seconds to wait.
    #[error("rate limited")]
    RateLimited { retry_after: u64 },
    /// 503: the store is unreachable or failed; details are logged, never returned.
    /// `Retry-After: 1`.
    #[error("service unavailable")]
    Unavailable,
    /// 503 `unavailable` with `Retry-After`: not now, deliver again later (e.g. a provider's
    /// notification about a meeting the read models do not know yet).
    #[error("retry later")]
    RetryLater { retry_after: u64 },
    /// 403 `forbidden`: a request authenticated by the session cookie that did not come from
    /// the web app's own origin (cross-site request forgery).
    #[error("cross-site request refused")]
    CrossSite,
    /// 415: a cookie-authenticated command must send `Content-Type: application/json`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 405: the path exists, not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "store failure");
        Self::Unavailable
    }
}

/// The problem+json body (RFC 9457) of API.md.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    pub detail: String,
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub conference_id: Option<ConferenceId>,
    /// With `no_free_line`: up to 3 free times of the length asked, on the 15-minute grid, not
    /// in the past, nearest to the requested start first; `[]` when none exists within the
    /// booking horizon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestions: Option<Vec<SlotDto>>,
    /// With `no_free_line` for a series: the occurrences no line could take, each with its
    /// nearest free times.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<Vec<ConflictDto>>,
}

/// An occurrence of a series no line could take (or that a series booked with `skip` left
/// out), and up to 3 nearest free times of its length.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConflictDto {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    pub suggestions: Vec<SlotDto>,
}

impl From<&meetline_domain::SeriesConflict> for ConflictDto {
    fn from(conflict: &meetline_domain::SeriesConflict) -> Self {
        Self {
            start: conflict.slot.start,
            end: conflict.slot.end,
            suggestions: conflict.suggestions.iter().map(SlotDto::from).collect(),
        }
    }
}

/// A time slot: its start and end (RFC 3339).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SlotDto {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
}

impl From<&meetline_domain::types::TimeSlot> for SlotDto {
    fn from(slot: &meetline_domain::types::TimeSlot) -> Self {
        Self {
            start: slot.start,
            end: slot.end,
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable | Self::RetryLater { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::CrossSite => StatusCode::FORBIDDEN,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Domain(error) => match error {
                DomainError::InvalidDuration | DomainError::InvalidInput { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                DomainError::NoFreeLine { .. }
                | DomainError::SeriesUnbookable { .. }
                | DomainError::InvalidState(_)
                | DomainError::ConferenceExists { .. } => StatusCode::CONFLICT,
                DomainError::NotFound => StatusCode::NOT_FOUND,
                DomainError::Forbidden => StatusCode::FORBIDDEN,
                DomainError::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
                DomainError::NumbersExhausted => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_request",
            Self::Unauthorized => "unauthorized",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable | Self::RetryLater { .. } => "unavailable",
            Self::CrossSite => "forbidden",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Domain(error) => match error {
                DomainError::InvalidDuration | DomainError::InvalidInput { .. } => "invalid_input",
                DomainError::NoFreeLine { .. } | DomainError::SeriesUnbookable { .. } => {
                    "no_free_line"
                }
                DomainError::InvalidState(_) => "invalid_state",
                DomainError::ConferenceExists { .. } => "conference_exists",
                DomainError::NotFound => "not_found",
                DomainError::Forbidden => "forbidden",
                DomainError::VersionMismatch { .. } => "version_mismatch",
                DomainError::NumbersExhausted => "unavailable",
            },
        }
    }

    fn detail(&self, lang: Lang) -> String {
        let en = lang.is_english();
        let pick = |zh: &str, english: &str| {
            if en {
                english.to_owned()
            } else {
                zh.to_owned()
            }
        };
        match self {
            Self::Malformed(reason) => {
                if en {
                    format!("Malformed request: {reason}")
                } else {
                    format!("请求格式错误：{reason}")
                }
            }
            Self::Unauthorized => pick("未登录或登录已过期", "Missing, invalid or expired token"),
            Self::PayloadTooLarge => pick("请求内容超过 64 KiB", "Request body over 64 KiB"),
            Self::RateLimited { .. } => pick(
                "请求过于频繁，请稍后再试",
                "Too many requests: try again later",
            ),
            Self::Unavailable | Self::RetryLater { .. } => pick(
                "服务暂时不可用，请稍后再试",
                "Service unavailable: try again later",
            ),
            Self::CrossSite => pick(
                "拒绝来自其他网站的请求",
                "Refused: the request did not come from this site",
            ),
            Self::UnsupportedMediaType => pick(
                "请求内容必须是 JSON（Content-Type: application/json）",
                "The request body must be JSON (Content-Type: application/json)",
            ),
            Self::MethodNotAllowed => pick("不支持此请求方法", "Method not allowed on this path"),
            Self::Domain(error) => match error {
                DomainError::InvalidDuration => pick(DURATION_ZH, DURATION_EN),
                DomainError::InvalidInput { field } => {
                    if en {
                        format!("Invalid input parameter: {field}")
                    } else {
                        format!("无效的输入参数： {field}")
                    }
                }
                DomainError::NoFreeLine { .. } | DomainError::SeriesUnbookable { .. } => {
                    pick(NO_FREE_LINE_ZH, NO_FREE_LINE_EN)
                }
                DomainError::InvalidState(conflict) => match conflict {
                    Conflict::Conference(status) => {
                        let label = status.label(en);
                        if en {
                            format!("Not allowed while the conference is {label}")
                        } else {
                            format!("会议当前状态（{label}）不允许此操作")
                        }
                    }
                    Conflict::LineHoldsConferences => pick(
                        "线路上还有未结束的会议，不能删除",
                        "The line still holds conferences that have not ended",
                    ),
                    Conflict::ConferenceExists => {
                        pick("该会议已存在", "The conference exists already")
                    }
                },
                DomainError::ConferenceExists { conference_id } => {
                    if en {
                        format!(
                            "The meeting already has an active video conference: {conference_id}"
                        )
                    } else {
                        format!("该会议已有未结束的视频会议：{conference_id}")
                    }
                }
                DomainError::NotFound => pick("找不到该对象", "Not found"),
                DomainError::Forbidden => pick("无权执行此操作", "You are not allowed to do this"),
                DomainError::VersionMismatch { .. } => pick(
                    "会议已被他人修改，请刷新后重试",
                    "The conference was changed meanwhile: reload and try again",
                ),
                DomainError::NumbersExhausted => pick(
                    "服务暂时不可用，请稍后再试",
                    "Service unavailable: try again later",
                ),
            },
        }
    }

    pub fn problem(&self, lang: Lang) -> Problem {
        let status = self.status();
        Problem {
            kind: format!("urn:meetline:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: self.code().to_owned(),
            detail: self.detail(lang),
            field: match self {
                Self::Domain(DomainError::InvalidDuration) => Some("duration".to_owned()),
                Self::Domain(DomainError::InvalidInput { field }) => Some(field.clone()),
                _ => None,
            },
            conference_id: match self {
                Self::Domain(DomainError::ConferenceExists { conference_id }) => {
                    Some(*conference_id)
                }
                _ => None,
            },
            suggestions: match self {
                Self::Domain(DomainError::NoFreeLine { suggestions, .. }) => {
                    Some(suggestions.iter().map(SlotDto::from).collect())
                }
                _ => None,
            },
            conflicts: match self {
                Self::Domain(DomainError::SeriesUnbookable { conflicts }) => {
                    Some(conflicts.iter().map(ConflictDto::from).collect())
                }
                _ => None,
            },
        }
    }

    /// The full response in `lang` (used by the middleware and by code without one).
    pub fn render(&self, lang: Lang) -> Response {
        let body = serde_json::to_vec(&self.problem(lang)).expect("problems serialize");
        let mut response = (self.status(), body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let retry_after = match self {
            Self::RateLimited { retry_after } | Self::RetryLater { retry_after } => {
                Some(*retry_after)
            }
            Self::Unavailable | Self::Domain(DomainError::NumbersExhausted) => Some(1),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Chinese unless the middleware re-renders it in the caller's language.
        let mut response = self.render(Lang::Zh);
        response.extensions_mut().insert(self);
        response
    }
}

/// Re-renders any [`ApiError`] response in the language the request asked for.
pub async fn localize_problems(request: Request, next: Next) -> Response {
    let lang = Lang::from_accept_language(
        request
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok()),
    );
    let response = next.run(request).await;
    match response.extensions().get::<ApiError>() {
        Some(error) if lang != Lang::Zh => {
            let mut localized = error.render(lang);
            for (name, value) in response.headers() {
                if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                    localized.headers_mut().insert(name.clone(), value.clone());
                }
            }
            localized
        }
        _ => response,
    }
}

/// The 404 for paths no route serves.
pub async fn not_found() -> ApiError {
    ApiError::Domain(DomainError::NotFound)
}

/// The 405 for a path served with other methods.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// `Json` whose rejections are problem+json (400 malformed, 413 too large).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::Malformed("expected Content-Type: application/json".to_owned())
        }
        other => ApiError::Malformed(other.body_text()),
    }
}

/// The raw body, whose rejections are problem+json (413 over the limit, 400 otherwise) rather
/// than axum's plain text.
#[derive(Debug, Clone, Default)]
pub struct ApiBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(request, state)
            .await
            .map(Self)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::Malformed(rejection.body_text())
                }
            })
    }
}

impl ApiBytes {
    /// The body as JSON; an empty (or all white space) body, or `null`, is `T::default()`.
    ///
    /// # Errors
    /// `Malformed` when it is not JSON of the expected shape.
    pub fn json_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        serde_json::from_slice::<Option<T>>(&self.0)
            .map(Option::unwrap_or_default)
            .map_err(|error| ApiError::Malformed(error.to_string()))
    }
}

/// `Query` whose rejections are problem+json.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| ApiError::Malformed(rejection.body_text()))
    }
}

/// `Path` whose rejections are problem+json 404s (a path that names nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|_: PathRejection| ApiError::Domain(DomainError::NotFound))
    }
}

impl From<meetline_domain::ports::providers::WebhookRefusal> for ApiError {
    fn from(refusal: meetline_domain::ports::providers::WebhookRefusal) -> Self {
        use meetline_domain::ports::providers::WebhookRefusal;
        match refusal {
            WebhookRefusal::Unauthorized => Self::Unauthorized,
            WebhookRefusal::Malformed(what) => Self::Malformed(what),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_strings_are_exact_in_both_languages() {
        let duration = ApiError::Domain(DomainError::InvalidDuration);
        assert_eq!(
            duration.problem(Lang::Zh).detail,
            "无效的输入参数： duration"
        );
        assert_eq!(
            duration.problem(Lang::En).detail,
            "Invalid input parameter: duration"
        );
        assert_eq!(
            duration.problem(Lang::Zh).field.as_deref(),
            Some("duration")
        );
        let start = chrono::DateTime::UNIX_EPOCH;
        let slot = meetline_domain::types::TimeSlot::new(start, start + chrono::Duration::hours(1))
            .unwrap();
        let busy = ApiError::Domain(DomainError::no_free_line(slot));
        assert_eq!(
            busy.problem(Lang::Zh).detail,
            "找不到空闲线路，请检查线路维护是否正常，或者重新选择会议时间"
        );
        assert_eq!(busy.status(), StatusCode::CONFLICT);
        assert_eq!(busy.code(), "no_free_line");
    }

    #[test]
    fn an_optional_body_may_be_empty_or_null() {
        #[derive(Debug, Default, serde::Deserialize, PartialEq)]
        struct Body {
            reason: Option<String>,
        }
        let parse = |text: &'static str| ApiBytes(text.into()).json_or_default::<Body>();
        assert_eq!(parse("").unwrap(), Body::default());
        assert_eq!(parse(" \n").unwrap(), Body::default());
        assert_eq!(parse("null").unwrap(), Body::default());
        assert_eq!(
            parse(r#"{"reason": "x"}"#).unwrap().reason.as_deref(),
            Some("x")
        );
        assert!(matches!(parse("[]"), Err(ApiError::Malformed(_))));
        assert!(matches!(parse("nul"), Err(ApiError::Malformed(_))));
    }

    #[test]
    fn english_is_chosen_by_the_first_preference() {
        assert_eq!(Lang::from_accept_language(Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("zh-CN,en;q=0.5")), Lang::Zh);
        assert_eq!(Lang::from_accept_language(None), Lang::Zh);
    }
}
