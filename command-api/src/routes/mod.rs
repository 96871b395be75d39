//! The command API: every command row of API.md, one module per resource. Handlers turn JSON
//! into domain commands (request types convert by `TryFrom`, each failure naming its field),
//! look up directory facts, submit to the [`CommandService`] and render the outcome.
//!
//! - [`conferences`]: schedule, edit, invite, cancel, end early, join, launch from a meeting or
//!   chat;
//! - [`lines`]: the admins' lines and their provider settings;
//! - [`directory`]: the admins' directory writes;
//! - [`webhooks`]: providers' notifications.
//!
//! This module has what they share: the state, the router, `Idempotency-Key` / `If-Match`,
//! submitting a command and answering with its outcome.

pub mod conferences;
pub mod directory;
pub mod lines;
pub mod series;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post, put};
use chrono::{DateTime, Duration, Utc};
use meetline_api_common::error::Problem;
use meetline_api_common::fields::{etag, optional_time, time};
use meetline_api_common::request_id::RequestId;
use meetline_api_common::{
    AdminCaller, ApiBytes, ApiContext, ApiError, ApiJson, ApiPath, ApiQuery, Caller, ConferenceDto,
    Lang,
};
use meetline_domain::command::{
    ChatFacts, ConferenceChanges, EndSpec, MeetingFacts, ScheduleConference,
};
use meetline_domain::ports::directory::{ChatKind, Directory, DirectoryChat, DirectoryUser};
use meetline_domain::ports::{LineSettings, ProviderRegistry};
use meetline_domain::types::Principal;
use meetline_domain::types::{
    ChatId, ConferenceId, ConferenceNumber, LineId, LineName, MeetingId, Mode, ProviderKind,
    RelatedLink, Subject, TenantId, TimeZoneName, UserId, free_text,
};
use meetline_domain::{Command, DEFAULT_MINUTES, DomainError, Event};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::draws::{numbers, rooms};
use crate::service::{CommandError, CommandService, LineState, Outcome, Submission};

/// The command router's state.
#[derive(Clone)]
pub struct CommandState {
    pub context: ApiContext,
    pub service: CommandService,
    pub directory: Arc<dyn Directory>,
    /// Provider account settings per line, encrypted at rest.
    pub line_settings: Arc<dyn LineSettings>,
    /// Which providers there are: settings checks, webhooks.
    pub providers: Arc<dyn ProviderRegistry>,
    /// How long a create on an external provider's line waits for the meeting to exist.
    pub provision_wait: std::time::Duration,
    /// For webhooks: which conference a provider's meeting belongs to.
    pub read_models: meetline_projections::ReadModels,
    pub provider_meetings: meetline_projections::ProviderMeetings,
    /// Joins by an unknown number, limited per caller so numbers cannot be scanned.
    pub join_attempts: Arc<meetline_api_common::FailedAttempts>,
    /// How far ahead a conference may start (and a directory meeting lie).
    pub booking_horizon: Duration,
    /// Scans of every line's webhook secret (the shared URL's challenge), for the whole server.
    pub webhook_scans: Arc<meetline_api_common::ServerLimit>,
}

impl CommandState {
    /// Refuses an instant beyond the booking horizon (`invalid_input` naming `field`): no
    /// conference in the year 9999, whose calendar file could not even be written.
    fn within_horizon(&self, at: Option<DateTime<Utc>>, field: &str) -> Result<(), ApiError> {
        match at {
            Some(at) if at > self.context.clock.now() + self.booking_horizon => {
                Err(DomainError::invalid_input(field).into())
            }
            _ => Ok(()),
        }
    }
}

impl FromRef<CommandState> for ApiContext {
    fn from_ref(state: &CommandState) -> Self {
        state.context.clone()
    }
}

pub fn router() -> Router<CommandState> {
    Router::new()
        .route("/api/v1/conferences", post(conferences::create_conference))
        .route(
            "/api/v1/conferences/join",
            post(conferences::join_conference),
        )
        .route(
            "/api/v1/conferences/{id}",
            patch(conferences::edit_conference),
        )
        .route(
            "/api/v1/conferences/{id}/invitations",
            post(conferences::invite),
        )
        .route(
            "/api/v1/conferences/{id}/cancel",
            post(conferences::cancel_conference),
        )
        .route(
            "/api/v1/conferences/{id}/end",
            post(conferences::end_conference),
        )
        .route(
            "/api/v1/meetings/{meeting_id}/conference",
            post(conferences::launch_from_meeting),
        )
        .route(
            "/api/v1/chats/{chat_id}/conference",
            post(conferences::launch_from_chat),
        )
        .route("/api/v1/lines", post(lines::add_line))
        .route(
            "/api/v1/lines/{id}",
            patch(lines::update_line).delete(lines::remove_line),
        )
        .route("/api/v1/lines/{id}/settings", put(lines::put_line_settings))
        .route(
            "/api/v1/providers/{provider}/webhook",
            post(webhooks::shared_webhook),
        )
        .route(
            "/api/v1/providers/{provider}/webhook/{tenant}/{line}",
            post(webhooks::line_webhook),
        )
        // A bulk sync of 1,000 users is larger than other bodies (64 KiB).
        .route(
            "/api/v1/directory/users",
            put(directory::put_users).layer(axum::extract::DefaultBodyLimit::max(1024 * 1024)),
        )
        .route("/api/v1/directory/users/{id}", put(directory::put_user))
        .route(
            "/api/v1/directory/meetings/{id}",
            put(directory::put_meeting),
        )
        .route("/api/v1/directory/chats/{id}", put(directory::put_chat))
}

// ---------------------------------------------------------------------------------------------
// Request bodies

/// `Idempotency-Key`, which every command accepts (API.md).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKey {
    /// Retry-safe key: the same key from the same user on the same method and path within
    /// 24 h returns the first outcome and changes nothing. 1–255 printable ASCII characters;
    /// white space around them is not part of the key.
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        pattern = r"^[!-~]([ -~]{0,253}[!-~])?[ \t]*$"
    )]
    pub idempotency_key: Option<String>,
}

/// A whole number of minutes, also when written as a float (`30.0` is an integer in JSON
/// Schema); anything else is malformed.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(whole) = number.as_i64() {
        return Ok(Some(whole));
    }
    match number.as_f64() {
        // Below 2⁵³ every float is exact, and the cast is too.
        Some(float) if float.fract() == 0.0 && float.abs() < 9e15 => Ok(Some(float as i64)),
        _ => Err(D::Error::custom(format!(
            "invalid value: {number}, expected a whole number"
        ))),
    }
}

/// Distinguishes an absent field (`None`) from `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

// ---------------------------------------------------------------------------------------------
// Field parsing: each failure names its field (422 invalid_input): `fields::time` and
// `fields::optional_time` of meetline-api-common.

/// A length in minutes: not positive or over 24 h is the seed's duration error.
fn minutes(count: i64) -> Result<EndSpec, DomainError> {
    if count <= 0 || count > 24 * 60 {
        return Err(DomainError::InvalidDuration);
    }
    Ok(EndSpec::After(Duration::minutes(count)))
}

fn end_spec(end: Option<&String>, duration: Option<i64>) -> Result<Option<EndSpec>, DomainError> {
    match (end, duration) {
        (Some(_), Some(_)) => Err(DomainError::invalid_input("duration_minutes")),
        (Some(end), None) => Ok(Some(EndSpec::At(time(end, "end")?))),
        (None, Some(count)) => minutes(count).map(Some),
        (None, None) => Ok(None),
    }
}

fn users(ids: &[String], field: &str) -> Result<Vec<UserId>, DomainError> {
    if ids.len() > 1000 {
        return Err(DomainError::invalid_input(field));
    }
    ids.iter()
        .map(|id| UserId::parse(id.trim()).map_err(|_| DomainError::invalid_input(field)))
        .collect()
}

fn user(id: &str, field: &str) -> Result<UserId, DomainError> {
    UserId::parse(id.trim()).map_err(|_| DomainError::invalid_input(field))
}

fn subject(text: Option<&String>) -> Result<Option<Subject>, DomainError> {
    text.map(|text| Subject::parse(text)).transpose()
}

/// Checks that every id is a user of the tenant's directory.
async fn known(
    directory: &dyn Directory,
    tenant: &TenantId,
    ids: &[UserId],
    field: &str,
) -> Result<(), ApiError> {
    if directory.unknown_users(tenant, ids).await?.is_empty() {
        Ok(())
    } else {
        Err(DomainError::invalid_input(field).into())
    }
}

/// As [`known`], for attendees added to an existing conference: a caller who may not see the
/// conference gets `not_found`, as for any other input, not a verdict on the names it sent.
async fn known_attendees_of(
    state: &CommandState,
    principal: &Principal,
    conference: ConferenceId,
    ids: &[UserId],
) -> Result<(), ApiError> {
    let Err(error) = known(
        state.directory.as_ref(),
        &principal.tenant,
        ids,
        "attendees",
    )
    .await
    else {
        return Ok(());
    };
    let visible = state
        .read_models
        .conference(&principal.tenant, conference)
        .await?
        .is_some_and(|view| principal.actor.admin || view.is_participant(&principal.actor.user));
    Err(if visible {
        error
    } else {
        DomainError::NotFound.into()
    })
}

async fn timezone_for(
    directory: &dyn Directory,
    principal: &Principal,
    given: Option<&String>,
) -> Result<TimeZoneName, ApiError> {
    if let Some(name) = given {
        return Ok(TimeZoneName::parse(name)?);
    }
    let user = directory
        .user(&principal.tenant, &principal.actor.user)
        .await?;
    Ok(user.and_then(|entry| entry.timezone).unwrap_or_default())
}

/// A header's value without the white space around it (HTTP's parser drops it anyway).
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    let value = headers.get(name)?.as_bytes();
    let start = value.iter().position(|b| !matches!(b, b' ' | b'\t'))?;
    let end = value.iter().rposition(|b| !matches!(b, b' ' | b'\t'))?;
    Some(&value[start..=end])
}

/// `Idempotency-Key`: 1–255 printable ASCII characters (the documented pattern).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    if !headers.contains_key("idempotency-key") {
        return Ok(None);
    }
    let key = header_text(headers, "idempotency-key").unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.iter().all(|b| (b' '..=b'~').contains(b)) {
        return Err(ApiError::Malformed(
            "Idempotency-Key must be 1-255 printable ASCII characters".to_owned(),
        ));
    }
    Ok(Some(String::from_utf8_lossy(key).into_owned()))
}

/// `If-Match`: `*` (any version: `None`), or the version as an ETag — `"3"`, `W/"3"` — or as
/// bare digits.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    if !headers.contains_key(header::IF_MATCH) {
        return Ok(None);
    }
    let text = header_text(headers, header::IF_MATCH.as_str()).unwrap_or_default();
    if text == b"*" {
        return Ok(None);
    }
    let digits = match text.strip_prefix(b"W/").unwrap_or(text) {
        [b'"', inner @ .., b'"'] => inner,
        _ if text.starts_with(b"W/") => &[][..],
        bare => bare,
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ApiError::Malformed(
            "If-Match must be an ETag such as \"3\"".to_owned(),
        ));
    }
    Ok(Some(digits.iter().fold(0, |number, digit| {
        number * 10 + u64::from(digit - b'0')
    })))
}

fn conference_id(text: &str) -> Result<ConferenceId, ApiError> {
    Ok(ConferenceId::parse(text)?)
}

// ---------------------------------------------------------------------------------------------
// Submitting and responding

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Domain(error) => Self::Domain(error),
            CommandError::Unavailable(reason) => {
                tracing::error!(%reason, "command failed: store unavailable");
                Self::Unavailable
            }
            CommandError::Busy => Self::RateLimited { retry_after: 1 },
        }
    }
}

/// A command request's headers, and the method and path its `Idempotency-Key` is scoped to.
pub struct CommandRequest {
    headers: HeaderMap,
    scope: String,
    /// The request's id: the events' correlation id.
    request: Option<RequestId>,
}

impl<S: Send + Sync> FromRequestParts<S> for CommandRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            headers: parts.headers.clone(),
            scope: format!("{} {}", parts.method, parts.uri.path()),
            request: parts.extensions.get::<RequestId>().copied(),
        })
    }
}

/// Submits `command`. An `Idempotency-Key` names one request: the same key on another method
/// or path (or for the other command of a request that makes two) is another command, not a
/// replay of the first.
async fn submit(
    state: &CommandState,
    principal: &Principal,
    call: &CommandRequest,
    command: Command,
) -> Result<Outcome, ApiError> {
    let mut submission = Submission::new(
        principal.tenant.clone(),
        principal.actor.clone(),
        command,
        state.context.clock.now(),
    );
    if let Some(key) = idempotency_key(&call.headers)? {
        submission = submission.with_idempotency_key(&format!("{}\u{1f}{key}", call.scope));
    }
    if let Some(request) = call.request {
        submission = submission.correlated_with(request.0);
    }
    Ok(state.service.execute_unless_busy(submission).await?)
}

fn position_header(response: &mut Response, position: u64) {
    response
        .headers_mut()
        .insert("x-position", HeaderValue::from(position));
}

/// For a conference on an external provider's line: waits (up to `provision_wait`) until the
/// provisioning process recorded the meeting or gave up, and returns the conference as it is then.
async fn await_provisioning(
    state: &CommandState,
    principal: &Principal,
    outcome: &mut Outcome,
) -> Result<(), ApiError> {
    let Some(view) = &outcome.conference else {
        return Ok(());
    };
    if view.provisioning != meetline_domain::Provisioning::Pending {
        return Ok(());
    }
    let (id, line) = (view.id, view.line.clone());
    let stream = meetline_domain::ports::pool_stream(&principal.tenant);
    let deadline = tokio::time::Instant::now() + state.provision_wait;
    loop {
        let head = state.service.store().head_position().await?;
        let events = state.service.store().read_tagged(&stream, id).await?;
        let lookup = |id: &LineId| {
            if *id == line.id {
                line.clone()
            } else {
                meetline_projections::LineRef::unknown(id)
            }
        };
        if let Some(now) =
            meetline_projections::ConferenceView::fold(events.iter().map(|e| &e.event), lookup)
            && now.provisioning != meetline_domain::Provisioning::Pending
        {
            outcome.position = events
                .last()
                .map_or(outcome.position, |last| last.position.max(outcome.position));
            outcome.conference = Some(now);
            return Ok(());
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let _ = tokio::time::timeout(
            left.min(std::time::Duration::from_millis(200)),
            state.service.store().wait_for_events(head),
        )
        .await;
    }
}

/// 201 once the conference exists with its meeting; 202 while an external provider has not
/// confirmed it yet (the view says `provisioning: "pending"`).
fn created_status(outcome: &Outcome) -> StatusCode {
    match &outcome.conference {
        Some(view) if view.provisioning == meetline_domain::Provisioning::Pending => {
            StatusCode::ACCEPTED
        }
        _ => StatusCode::CREATED,
    }
}

async fn conference_response(
    state: &CommandState,
    principal: &Principal,
    lang: Lang,
    status: StatusCode,
    outcome: &Outcome,
) -> Result<Response, ApiError> {
    let view = outcome
        .conference
        .as_ref()
        .ok_or(ApiError::Domain(DomainError::NotFound))?;
    let dto = state
        .context
        .links
        .present(view, principal, state.context.clock.now(), lang)
        .await;
    let mut response = (status, axum::Json(&dto)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag(view.version));
    if status == StatusCode::CREATED || status == StatusCode::ACCEPTED {
        headers.insert(
            header::LOCATION,
            HeaderValue::from_str(&format!("/api/v1/conferences/{}", view.id)).expect("uuid"),
        );
    }
    if outcome.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    position_header(&mut response, outcome.position);
    Ok(response)
}

/// The command API's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        conferences::create_conference,
        conferences::edit_conference,
        conferences::invite,
        conferences::cancel_conference,
        conferences::end_conference,
        conferences::join_conference,
        conferences::launch_from_meeting,
        conferences::launch_from_chat,
        lines::add_line,
        lines::update_line,
        lines::remove_line,
        lines::put_line_settings,
        webhooks::shared_webhook,
        webhooks::line_webhook,
        directory::put_user,
        directory::put_users,
        directory::put_meeting,
        directory::put_chat
    ),
    components(schemas(
        conferences::CreateConferenceRequest,
        conferences::EditConferenceRequest,
        conferences::InviteRequest,
        conferences::CancelRequest,
        conferences::JoinRequest,
        conferences::MeetingLaunchRequest,
        conferences::ChatLaunchRequest,
        conferences::ModeName,
        conferences::OnConflictName,
        series::RecurrenceRequest,
        series::SeriesCreated,
        series::SeriesChanged,
        meetline_api_common::error::ConflictDto,
        meetline_api_common::dto::RecurrenceDto,
        lines::AddLineRequest,
        lines::UpdateLineRequest,
        lines::LineResponse,
        lines::ProviderName,
        lines::LineStatusName,
        directory::PutUserRequest,
        directory::BulkUser,
        directory::UpsertedResponse,
        directory::PutMeetingRequest,
        directory::PutChatRequest,
        directory::DirectoryUserDto,
        directory::DirectoryMeetingDto,
        meetline_api_common::dto::DirectoryChatDto,
        meetline_api_common::dto::ChatKindName
    ))
)]
pub struct CommandApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_bytes(value).unwrap());
        headers
    }

    #[test]
    fn if_match_takes_exactly_the_documented_forms() {
        let parse = |value: &[u8]| if_match(&headers("if-match", value)).ok();
        assert_eq!(if_match(&HeaderMap::new()).ok(), Some(None));
        assert_eq!(parse(b"*"), Some(None));
        assert_eq!(parse(b"\"3\""), Some(Some(3)));
        assert_eq!(parse(b"W/\"3\""), Some(Some(3)));
        assert_eq!(parse(b"12"), Some(Some(12)));
        assert_eq!(parse(b"\"3\" "), Some(Some(3)));
        assert_eq!(
            parse(b"9999999999999999999"),
            Some(Some(9_999_999_999_999_999_999))
        );
        for refused in [
            &b"\"3"[..],
            b"W/3",
            b"\"\"3\"\"",
            b"+3",
            b"\"\"",
            b"",
            b"W/",
            b"10000000000000000000",
            b"3 4",
        ] {
            assert_eq!(parse(refused), None, "{}", String::from_utf8_lossy(refused));
        }
    }

    #[test]
    fn an_idempotency_key_is_printable_ascii_of_1_to_255() {
        let parse = |value: &[u8]| idempotency_key(&headers("idempotency-key", value)).ok();
        assert_eq!(parse(b"k-1 a"), Some(Some("k-1 a".to_owned())));
        assert_eq!(parse(b"k   "), Some(Some("k".to_owned())));
        assert!(parse(&[b'x'; 255]).is_some());
        for refused in [&b""[..], b"  ", b"a\tb", &[b'x'; 256], "é".as_bytes()] {
            assert_eq!(parse(refused), None);
        }
    }
}
