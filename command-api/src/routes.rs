//! The command API: every command row of API.md. Handlers turn JSON into domain commands
//! (validating each field), look up directory facts, submit to the [`CommandService`] and render
//! the outcome.

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
    AdminCaller, ApiBytes, ApiContext, ApiError, ApiJson, ApiPath, Caller, ConferenceDto, Lang,
};
use meetline_domain::command::{
    ChatFacts, ConferenceChanges, EndSpec, MeetingFacts, ScheduleConference,
};
use meetline_domain::ports::directory::{ChatKind, Directory, DirectoryChat, DirectoryUser};
use meetline_domain::ports::providers::{
    WebhookCall, WebhookMeaning, WebhookReader, WebhookSubject,
};
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
        .route("/api/v1/conferences", post(create_conference))
        .route("/api/v1/conferences/join", post(join_conference))
        .route("/api/v1/conferences/{id}", patch(edit_conference))
        .route("/api/v1/conferences/{id}/invitations", post(invite))
        .route("/api/v1/conferences/{id}/cancel", post(cancel_conference))
        .route("/api/v1/conferences/{id}/end", post(end_conference))
        .route(
            "/api/v1/meetings/{meeting_id}/conference",
            post(launch_from_meeting),
        )
        .route("/api/v1/chats/{chat_id}/conference", post(launch_from_chat))
        .route("/api/v1/lines", post(add_line))
        .route("/api/v1/lines/{id}", patch(update_line).delete(remove_line))
        .route("/api/v1/lines/{id}/settings", put(put_line_settings))
        .route("/api/v1/providers/{provider}/webhook", post(shared_webhook))
        .route(
            "/api/v1/providers/{provider}/webhook/{tenant}/{line}",
            post(line_webhook),
        )
        .route("/api/v1/directory/users/{id}", put(put_user))
        .route("/api/v1/directory/meetings/{id}", put(put_meeting))
        .route("/api/v1/directory/chats/{id}", put(put_chat))
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

/// A conference's mode.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ModeName {
    /// Starts now.
    Quick,
    /// Starts at `start`.
    Scheduled,
}

/// A line's provider: one of the kinds the domain knows.
pub struct ProviderName;

impl utoipa::PartialSchema for ProviderName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(ProviderKind::ALL.iter().map(|kind| kind.as_str())))
            .into()
    }
}

impl ToSchema for ProviderName {}

/// A line's status.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum LineStatusName {
    Active,
    Maintenance,
}

/// A chat's kind.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ChatKindName {
    Single,
    Group,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateConferenceRequest {
    /// `quick` (starts now) or `scheduled` (the default).
    #[schema(value_type = Option<ModeName>)]
    pub mode: Option<String>,
    pub subject: Option<String>,
    /// RFC 3339; required for `scheduled`.
    pub start: Option<String>,
    /// RFC 3339; or give `duration_minutes`. Default: 60 minutes.
    pub end: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 1440)]
    pub duration_minutes: Option<i64>,
    /// IANA name; default: the user's directory time zone, else Asia/Shanghai.
    pub timezone: Option<String>,
    /// Default: the caller.
    pub host: Option<String>,
    #[schema(max_items = 1000)]
    pub attendees: Option<Vec<String>>,
    pub related_link: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct EditConferenceRequest {
    pub subject: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 1440)]
    pub duration_minutes: Option<i64>,
    pub timezone: Option<String>,
    #[schema(max_items = 1000)]
    pub attendees: Option<Vec<String>>,
    /// `null` clears the link.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub related_link: Option<Option<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteRequest {
    #[schema(min_items = 1, max_items = 1000)]
    pub attendees: Vec<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CancelRequest {
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct JoinRequest {
    pub number: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct MeetingLaunchRequest {
    pub subject: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ChatLaunchRequest {
    pub subject: Option<String>,
    /// Members to invite; default: every other member.
    pub attendees: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AddLineRequest {
    pub name: String,
    /// The provider the line is an account of.
    #[schema(value_type = ProviderName)]
    pub provider: String,
    /// Provider account settings, stored encrypted apart from the events and never returned;
    /// their keys are the provider's (API.md, "Lines").
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateLineRequest {
    /// `active` or `maintenance`.
    #[schema(value_type = Option<LineStatusName>)]
    pub status: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PutUserRequest {
    pub name: String,
    pub email: Option<String>,
    pub timezone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PutMeetingRequest {
    pub subject: String,
    pub start: String,
    pub end: String,
    pub creator: String,
    pub convener: String,
    pub contact: String,
    #[schema(max_items = 1000)]
    pub attendees: Vec<String>,
    pub url: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PutChatRequest {
    /// `single` (exactly two members) or `group`.
    #[schema(value_type = ChatKindName)]
    pub kind: String,
    pub name: String,
    #[schema(min_items = 2, max_items = 1000)]
    pub members: Vec<String>,
}

/// A directory user as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryUserDto {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    /// IANA name.
    pub timezone: Option<String>,
}

impl From<&DirectoryUser> for DirectoryUserDto {
    fn from(user: &DirectoryUser) -> Self {
        Self {
            id: user.id.to_string(),
            name: user.name.clone(),
            email: user.email.clone(),
            timezone: user.timezone.as_ref().map(|zone| zone.as_str().to_owned()),
        }
    }
}

/// A directory meeting as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryMeetingDto {
    pub id: String,
    pub subject: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub creator: String,
    pub convener: String,
    pub contact: String,
    pub attendees: Vec<String>,
    pub url: Option<String>,
}

impl From<&MeetingFacts> for DirectoryMeetingDto {
    fn from(meeting: &MeetingFacts) -> Self {
        Self {
            id: meeting.id.to_string(),
            subject: meeting.subject.clone(),
            start: meeting.start,
            end: meeting.end,
            creator: meeting.creator.to_string(),
            convener: meeting.convener.to_string(),
            contact: meeting.contact.to_string(),
            attendees: meeting.attendees.iter().map(ToString::to_string).collect(),
            url: meeting.url.as_ref().map(|url| url.as_str().to_owned()),
        }
    }
}

/// A directory chat as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryChatDto {
    #[schema(value_type = ChatKindName)]
    pub kind: String,
    pub id: String,
    pub name: String,
    pub members: Vec<String>,
}

impl From<&DirectoryChat> for DirectoryChatDto {
    fn from(chat: &DirectoryChat) -> Self {
        Self {
            kind: match chat.kind {
                ChatKind::Single => "single",
                ChatKind::Group => "group",
            }
            .to_owned(),
            id: chat.facts.id.to_string(),
            name: chat.facts.name.clone(),
            members: chat.facts.members.iter().map(ToString::to_string).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LineResponse {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub status: String,
    /// Conferences moved to other lines (entering maintenance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved: Option<Vec<String>>,
    /// Conferences no free line could take (entering maintenance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stranded: Option<Vec<String>>,
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

// ---------------------------------------------------------------------------------------------
// Conferences

/// Schedule a conference (quick: starts now; scheduled: at `start`).
#[utoipa::path(post, path = "/api/v1/conferences", tag = "commands", request_body = CreateConferenceRequest,
    params(IdempotencyKey),
    responses(
        (status = 201, body = ConferenceDto, headers(("ETag" = String, description = "the version, e.g. \"1\""), ("X-Position" = u64, description = "global position of the command's last event"), ("Location" = String))),
        (status = 202, description = "the provider has not confirmed the meeting yet (`provisioning: pending`)",
            body = ConferenceDto, headers(("ETag" = String, description = "the version, e.g. \"1\""), ("X-Position" = u64, description = "global position of the command's last event"), ("Location" = String))),
        (status = 409, description = "no_free_line", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input", content_type = "application/problem+json", body = Problem)))]
pub async fn create_conference(
    State(state): State<CommandState>,
    Caller(principal): Caller,
    lang: Lang,
    call: CommandRequest,
    ApiJson(request): ApiJson<CreateConferenceRequest>,
) -> Result<Response, ApiError> {
    let mode = match request.mode.as_deref() {
        Some("quick") => Mode::Quick,
        Some("scheduled") | None => Mode::Scheduled,
        Some(_) => return Err(DomainError::invalid_input("mode").into()),
    };
    let subject =
        subject(request.subject.as_ref())?.ok_or_else(|| DomainError::invalid_input("subject"))?;
    let start = optional_time(request.start.as_ref(), "start")?;
    state.within_horizon(start, "start")?;
    let end = end_spec(request.end.as_ref(), request.duration_minutes)?
        .unwrap_or(EndSpec::After(Duration::minutes(DEFAULT_MINUTES)));
    if let EndSpec::At(end) = end {
        state.within_horizon(Some(end), "end")?;
    }
    let host = request
        .host
        .as_deref()
        .map(|id| user(id, "host"))
        .transpose()?;
    let attendees = users(
        request.attendees.as_deref().unwrap_or_default(),
        "attendees",
    )?;
    let related_link = request
        .related_link
        .as_deref()
        .filter(|link| !link.trim().is_empty())
        .map(RelatedLink::parse)
        .transpose()?;
    if let Some(host) = &host {
        known(
            state.directory.as_ref(),
            &principal.tenant,
            std::slice::from_ref(host),
            "host",
        )
        .await?;
    }
    known(
        state.directory.as_ref(),
        &principal.tenant,
        &attendees,
        "attendees",
    )
    .await?;
    let timezone = timezone_for(
        state.directory.as_ref(),
        &principal,
        request.timezone.as_ref(),
    )
    .await?;
    let command = Command::ScheduleConference(ScheduleConference {
        conference: ConferenceId(Uuid::now_v7()),
        mode,
        subject,
        start,
        end,
        timezone,
        host,
        attendees,
        related_link,
        rooms: rooms(),
        numbers: numbers(),
    });
    let mut outcome = submit(&state, &principal, &call, command).await?;
    await_provisioning(&state, &principal, &mut outcome).await?;
    let status = created_status(&outcome);
    conference_response(&state, &principal, lang, status, &outcome).await
}

/// Edit a not-started conference; the line is re-checked for a new time.
#[utoipa::path(patch, path = "/api/v1/conferences/{id}", tag = "commands", request_body = EditConferenceRequest,
    params(("id" = String, Path, format = Uuid),
        ("If-Match" = Option<String>, Header, nullable = false,
            pattern = r#"^(\*|(W/)?"[0-9]{1,19}"|[0-9]{1,19})[ \t]*$"#,
            description = "the ETag of the version edited, e.g. \"3\""),
        IdempotencyKey),
    responses(
        (status = 200, body = ConferenceDto, headers(("ETag" = String, description = "the new version, e.g. \"3\""), ("X-Position" = u64, description = "global position of the command's last event"))),
        (status = 403, description = "forbidden: not the creator or host", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "not_found", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "invalid_state or no_free_line", content_type = "application/problem+json", body = Problem),
        (status = 412, description = "version_mismatch", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input", content_type = "application/problem+json", body = Problem)))]
pub async fn edit_conference(
    State(state): State<CommandState>,
    Caller(principal): Caller,
    lang: Lang,
    call: CommandRequest,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<EditConferenceRequest>,
) -> Result<Response, ApiError> {
    let conference = conference_id(&id)?;
    let attendees = request
        .attendees
        .as_deref()
        .map(|ids| users(ids, "attendees"))
        .transpose()?;
    if let Some(attendees) = &attendees {
        known_attendees_of(&state, &principal, conference, attendees).await?;
    }
    let start = optional_time(request.start.as_ref(), "start")?;
    state.within_horizon(start, "start")?;
    let end = end_spec(request.end.as_ref(), request.duration_minutes)?;
    if let Some(EndSpec::At(end)) = end {
        state.within_horizon(Some(end), "end")?;
    }
    let changes = ConferenceChanges {
        subject: subject(request.subject.as_ref())?,
        start,
        end,
        timezone: request
            .timezone
            .as_deref()
            .map(TimeZoneName::parse)
            .transpose()?,
        attendees,
        related_link: match &request.related_link {
            None => None,
            Some(None) => Some(None),
            Some(Some(link)) if link.trim().is_empty() => Some(None),
            Some(Some(link)) => Some(Some(RelatedLink::parse(link)?)),
        },
    };
    let command = Command::EditConference {
        conference,
        changes,
        expected_version: if_match(&call.headers)?,
        rooms: rooms(),
    };
    let mut outcome = submit(&state, &principal, &call, command).await?;
    await_provisioning(&state, &principal, &mut outcome).await?;
    conference_response(&state, &principal, lang, StatusCode::OK, &outcome).await
}

/// Invite more attendees (not started or in progress).
#[utoipa::path(post, path = "/api/v1/conferences/{id}/invitations", tag = "commands", request_body = InviteRequest,
    params(("id" = String, Path, format = Uuid), IdempotencyKey),
    responses(
        (status = 200, body = ConferenceDto, headers(("ETag" = String, description = "the new version, e.g. \"3\""), ("X-Position" = u64, description = "global position of the command's last event"))),
        (status = 403, description = "forbidden: not the creator or host", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "not_found", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "invalid_state", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input: attendees", content_type = "application/problem+json", body = Problem)))]
pub async fn invite(
    State(state): State<CommandState>,
    Caller(principal): Caller,
    lang: Lang,
    call: CommandRequest,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<InviteRequest>,
) -> Result<Response, ApiError> {
    let conference = conference_id(&id)?;
    let attendees = users(&request.attendees, "attendees")?;
    if attendees.is_empty() {
        return Err(DomainError::invalid_input("attendees").into());
    }
    known_attendees_of(&state, &principal, conference, &attendees).await?;
    let outcome = submit(
        &state,
        &principal,
        &call,
        Command::InviteAttendees {
            conference,
            attendees,
        },
    )
    .await?;
    conference_response(&state, &principal, lang, StatusCode::OK, &outcome).await
}

/// Cancel a not-started conference: its line is free again.
#[utoipa::path(post, path = "/api/v1/conferences/{id}/cancel", tag = "commands", request_body = Option<CancelRequest>,
    params(("id" = String, Path, format = Uuid), IdempotencyKey),
    responses(
        (status = 200, body = ConferenceDto, headers(("ETag" = String, description = "the new version, e.g. \"3\""), ("X-Position" = u64, description = "global position of the command's last event"))),
        (status = 403, description = "forbidden: not the creator or host", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "not_found", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "invalid_state", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input: reason", content_type = "application/problem+json", body = Problem)))]
pub async fn cancel_conference(
    State(state): State<CommandState>,
    Caller(principal): Caller,
    lang: Lang,
    call: CommandRequest,
    ApiPath(id): ApiPath<String>,
    body: ApiBytes,
) -> Result<Response, ApiError> {
    let conference = conference_id(&id)?;
    let request: CancelRequest = body.json_or_default()?;
    let outcome = submit(
        &state,
        &principal,
        &call,
        Command::CancelConference {
            conference,
            reason: request.reason,
        },
    )
    .await?;
    conference_response(&state, &principal, lang, StatusCode::OK, &outcome).await
}

/// End an in-progress conference early (status `manually_ended`); frees the rest of its slot.
#[utoipa::path(post, path = "/api/v1/conferences/{id}/end", tag = "commands",
    params(("id" = String, Path, format = Uuid), IdempotencyKey),
    responses(
        (status = 200, body = ConferenceDto, headers(("ETag" = String, description = "the new version, e.g. \"3\""), ("X-Position" = u64, description = "global position of the command's last event"))),
        (status = 403, description = "forbidden: not the creator or host", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "not_found", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "invalid_state", content_type = "application/problem+json", body = Problem)))]
pub async fn end_conference(
    State(state): State<CommandState>,
    Caller(principal): Caller,
    lang: Lang,
    call: CommandRequest,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let conference = conference_id(&id)?;
    let outcome = submit(
        &state,
        &principal,
        &call,
        Command::EndConferenceEarly { conference },
    )
    .await?;
    conference_response(&state, &principal, lang, StatusCode::OK, &outcome).await
}

/// Join by conference number: the caller becomes a participant.
#[utoipa::path(post, path = "/api/v1/conferences/join", tag = "commands", request_body = JoinRequest,
    params(IdempotencyKey),
    responses(
        (status = 200, body = ConferenceDto, headers(("ETag" = String, description = "the new version, e.g. \"3\""), ("X-Position" = u64, description = "global position of the command's last event"))),
        (status = 404, description = "not_found: no conference with that number", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "invalid_state", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input: number", content_type = "application/problem+json", body = Problem)))]
pub async fn join_conference(
    State(state): State<CommandState>,
    Caller(principal): Caller,
    lang: Lang,
    call: CommandRequest,
    ApiJson(request): ApiJson<JoinRequest>,
) -> Result<Response, ApiError> {
    let number = ConferenceNumber::parse(&request.number)?;
    // Numbers are random, and guessing them is limited: a caller's failed joins per minute.
    state.join_attempts.begin(&principal)?;
    let outcome = submit(
        &state,
        &principal,
        &call,
        Command::JoinConference { number },
    )
    .await;
    if !matches!(outcome, Err(ApiError::Domain(DomainError::NotFound))) {
        state.join_attempts.succeeded(&principal);
    }
    conference_response(&state, &principal, lang, StatusCode::OK, &outcome?).await
}

/// Launch the video conference of a meeting (its creator, convener or contact only).
#[utoipa::path(post, path = "/api/v1/meetings/{meeting_id}/conference", tag = "commands", request_body = Option<MeetingLaunchRequest>,
    params(("meeting_id" = String, Path), IdempotencyKey),
    responses(
        (status = 201, body = ConferenceDto, headers(("ETag" = String, description = "the version, e.g. \"1\""), ("X-Position" = u64, description = "global position of the command's last event"), ("Location" = String))),
        (status = 202, description = "the provider has not confirmed the meeting yet (`provisioning: pending`)",
            body = ConferenceDto, headers(("ETag" = String, description = "the version, e.g. \"1\""), ("X-Position" = u64, description = "global position of the command's last event"), ("Location" = String))),
        (status = 403, description = "forbidden: not the meeting's creator, convener or contact", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "not_found", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "conference_exists or no_free_line", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input", content_type = "application/problem+json", body = Problem)))]
pub async fn launch_from_meeting(
    State(state): State<CommandState>,
    Caller(principal): Caller,
    lang: Lang,
    call: CommandRequest,
    ApiPath(meeting_id): ApiPath<String>,
    body: ApiBytes,
) -> Result<Response, ApiError> {
    let request: MeetingLaunchRequest = body.json_or_default()?;
    let meeting_id = MeetingId::parse(&meeting_id).map_err(|_| DomainError::NotFound)?;
    let meeting = state
        .directory
        .meeting(&principal.tenant, &meeting_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let start = optional_time(request.start.as_ref(), "start")?;
    let end = optional_time(request.end.as_ref(), "end")?;
    // The overrides, or the meeting's own times (stored before the horizon existed, perhaps).
    state.within_horizon(start.or(Some(meeting.start)), "start")?;
    state.within_horizon(end.or(Some(meeting.end)), "end")?;
    let command = Command::LaunchFromMeeting {
        conference: ConferenceId(Uuid::now_v7()),
        subject: subject(request.subject.as_ref())?,
        start,
        end,
        timezone: timezone_for(state.directory.as_ref(), &principal, None).await?,
        meeting,
        rooms: rooms(),
        numbers: numbers(),
    };
    let mut outcome = submit(&state, &principal, &call, command).await?;
    await_provisioning(&state, &principal, &mut outcome).await?;
    let status = created_status(&outcome);
    conference_response(&state, &principal, lang, status, &outcome).await
}

/// Start a quick conference from a chat with picked members.
#[utoipa::path(post, path = "/api/v1/chats/{chat_id}/conference", tag = "commands", request_body = Option<ChatLaunchRequest>,
    params(("chat_id" = String, Path), IdempotencyKey),
    responses(
        (status = 201, body = ConferenceDto, headers(("ETag" = String, description = "the version, e.g. \"1\""), ("X-Position" = u64, description = "global position of the command's last event"), ("Location" = String))),
        (status = 202, description = "the provider has not confirmed the meeting yet (`provisioning: pending`)",
            body = ConferenceDto, headers(("ETag" = String, description = "the version, e.g. \"1\""), ("X-Position" = u64, description = "global position of the command's last event"), ("Location" = String))),
        (status = 404, description = "not_found: no such chat, or not a member", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "no_free_line", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input", content_type = "application/problem+json", body = Problem)))]
pub async fn launch_from_chat(
    State(state): State<CommandState>,
    Caller(principal): Caller,
    lang: Lang,
    call: CommandRequest,
    ApiPath(chat_id): ApiPath<String>,
    body: ApiBytes,
) -> Result<Response, ApiError> {
    let request: ChatLaunchRequest = body.json_or_default()?;
    let chat_id = ChatId::parse(&chat_id).map_err(|_| DomainError::NotFound)?;
    let chat = state
        .directory
        .chat(&principal.tenant, &chat_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if !chat.facts.members.contains(&principal.actor.user) {
        // Non-members may not learn the chat exists.
        return Err(DomainError::NotFound.into());
    }
    let command = Command::LaunchFromChat {
        conference: ConferenceId(Uuid::now_v7()),
        subject: subject(request.subject.as_ref())?,
        attendees: request
            .attendees
            .as_deref()
            .map(|ids| users(ids, "attendees"))
            .transpose()?,
        timezone: timezone_for(state.directory.as_ref(), &principal, None).await?,
        chat: chat.facts,
        rooms: rooms(),
        numbers: numbers(),
    };
    let mut outcome = submit(&state, &principal, &call, command).await?;
    await_provisioning(&state, &principal, &mut outcome).await?;
    let status = created_status(&outcome);
    conference_response(&state, &principal, lang, status, &outcome).await
}

// ---------------------------------------------------------------------------------------------
// Lines (admin)

fn line_response(line: &LineState, events: &[Event]) -> LineResponse {
    let entered_maintenance = events
        .iter()
        .any(|event| matches!(event, Event::LineMaintenanceStarted { .. }));
    let ids = |pick: fn(&Event) -> Option<ConferenceId>| {
        entered_maintenance.then(|| {
            events
                .iter()
                .filter_map(pick)
                .map(|id| id.to_string())
                .collect()
        })
    };
    LineResponse {
        id: line.id.to_string(),
        name: line.name.clone(),
        provider: line.provider.as_str().to_owned(),
        status: line.status.clone(),
        moved: ids(|event| match event {
            Event::ConferenceMovedToLine { conference, .. } => Some(*conference),
            _ => None,
        }),
        stranded: ids(|event| match event {
            Event::ConferenceStranded { conference, .. } => Some(*conference),
            _ => None,
        }),
    }
}

fn line_id(text: &str) -> Result<LineId, ApiError> {
    LineId::parse(text).map_err(|_| DomainError::NotFound.into())
}

/// Add a line (a provider account).
#[utoipa::path(post, path = "/api/v1/lines", tag = "lines", request_body = AddLineRequest,
    params(IdempotencyKey),
    responses(
        (status = 201, body = LineResponse, headers(("X-Position" = u64))),
        (status = 403, description = "forbidden: admins only", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input: name, provider, settings or settings.<key>", content_type = "application/problem+json", body = Problem)))]
pub async fn add_line(
    State(state): State<CommandState>,
    AdminCaller(principal): AdminCaller,
    call: CommandRequest,
    ApiJson(request): ApiJson<AddLineRequest>,
) -> Result<Response, ApiError> {
    let name = LineName::parse(&request.name)?;
    let provider = ProviderKind::parse(&request.provider)?;
    let settings = request.settings.filter(|settings| !settings.is_null());
    if let Some(settings) = &settings {
        checked_settings(&state, provider, settings)?;
    } else if provider.is_external() {
        // An external line is an account: without its credentials it could host nothing.
        return Err(DomainError::invalid_input("settings").into());
    }
    let outcome = submit(
        &state,
        &principal,
        &call,
        Command::AddLine { name, provider },
    )
    .await?;
    let line = outcome.line.as_ref().ok_or(ApiError::Unavailable)?;
    if let Some(settings) = &settings {
        // Apart from the events: the line exists even if this fails, and `PUT …/settings` retries.
        state
            .line_settings
            .put(&principal.tenant, &line.id, settings)
            .await?;
    }
    let mut response = (StatusCode::CREATED, axum::Json(line_response(line, &[]))).into_response();
    position_header(&mut response, outcome.position);
    Ok(response)
}

/// Validates settings for `provider`; the error names the key (`settings.<key>`).
fn checked_settings(
    state: &CommandState,
    provider: ProviderKind,
    settings: &serde_json::Value,
) -> Result<(), ApiError> {
    state
        .providers
        .check_settings(provider, settings)
        .map_err(|key| DomainError::invalid_input(&format!("settings.{key}")).into())
}

/// Replace a line's provider settings (e.g. rotate a secret). Stored encrypted, never returned.
#[utoipa::path(put, path = "/api/v1/lines/{id}/settings", tag = "lines", request_body = Object,
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "stored"),
        (status = 403, description = "forbidden: admins only", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "not_found", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input: settings.<key>", content_type = "application/problem+json", body = Problem)))]
pub async fn put_line_settings(
    State(state): State<CommandState>,
    AdminCaller(principal): AdminCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(settings): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    let line = line_id(&id)?;
    // The pool, not a read model that may lag, says whether the line exists and its provider.
    let stream = meetline_domain::ports::pool_stream(&principal.tenant);
    let pool = crate::service::load_pool(state.service.store().as_ref(), &stream).await?;
    let provider = pool.line(&line).ok_or(DomainError::NotFound)?.provider;
    checked_settings(&state, provider, &settings)?;
    state
        .line_settings
        .put(&principal.tenant, &line, &settings)
        .await?;
    state.providers.forget(&principal.tenant, &line);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Rename a line, or put it into / take it out of maintenance.
#[utoipa::path(patch, path = "/api/v1/lines/{id}", tag = "lines", request_body = UpdateLineRequest,
    params(("id" = String, Path), IdempotencyKey),
    responses(
        (status = 200, body = LineResponse, headers(("X-Position" = u64))),
        (status = 403, description = "forbidden: admins only", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "not_found", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "invalid_state", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input: status or name", content_type = "application/problem+json", body = Problem)))]
pub async fn update_line(
    State(state): State<CommandState>,
    AdminCaller(principal): AdminCaller,
    call: CommandRequest,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<UpdateLineRequest>,
) -> Result<Response, ApiError> {
    let line = line_id(&id)?;
    let name = request.name.as_deref().map(LineName::parse).transpose()?;
    let status_command = match request.status.as_deref() {
        None => None,
        Some("maintenance") => Some(Command::StartLineMaintenance {
            line: line.clone(),
            rooms: rooms(),
        }),
        Some("active") => Some(Command::EndLineMaintenance { line: line.clone() }),
        Some(_) => return Err(DomainError::invalid_input("status").into()),
    };
    if name.is_none() && status_command.is_none() {
        return Err(DomainError::invalid_input("status").into());
    }
    let mut outcome = None;
    if let Some(name) = name {
        outcome = Some(
            submit(
                &state,
                &principal,
                &call,
                Command::RenameLine {
                    line: line.clone(),
                    name,
                },
            )
            .await?,
        );
    }
    if let Some(command) = status_command {
        outcome = Some(submit(&state, &principal, &call, command).await?);
    }
    let outcome = outcome.expect("one command ran");
    let state_now = outcome.line.as_ref().ok_or(DomainError::NotFound)?;
    let mut response = axum::Json(line_response(state_now, &outcome.events)).into_response();
    position_header(&mut response, outcome.position);
    Ok(response)
}

/// Remove a line (refused while it holds conferences that have not ended).
#[utoipa::path(delete, path = "/api/v1/lines/{id}", tag = "lines",
    params(("id" = String, Path), IdempotencyKey),
    responses(
        (status = 204, description = "removed", headers(("X-Position" = u64))),
        (status = 403, description = "forbidden: admins only", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "not_found", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "invalid_state: the line holds conferences that have not ended", content_type = "application/problem+json", body = Problem)))]
pub async fn remove_line(
    State(state): State<CommandState>,
    AdminCaller(principal): AdminCaller,
    call: CommandRequest,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let line = line_id(&id)?;
    let outcome = submit(&state, &principal, &call, Command::RemoveLine { line }).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    position_header(&mut response, outcome.position);
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Directory (admin)

/// Directory writes append no event; `X-Position` is the head, so every command response has one.
async fn directory_response<T: Serialize>(
    state: &CommandState,
    entry: &T,
) -> Result<Response, ApiError> {
    let head = state.service.store().head_position().await?;
    let mut response = axum::Json(entry).into_response();
    position_header(&mut response, head);
    Ok(response)
}

/// Add or replace a user of the tenant's directory.
#[utoipa::path(put, path = "/api/v1/directory/users/{id}", tag = "directory", request_body = PutUserRequest,
    params(("id" = String, Path)),
    responses(
        (status = 200, body = DirectoryUserDto, headers(("X-Position" = u64, description = "the head (directory writes append no event)"))),
        (status = 403, description = "forbidden: admins only", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input", content_type = "application/problem+json", body = Problem)))]
pub async fn put_user(
    State(state): State<CommandState>,
    AdminCaller(principal): AdminCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<PutUserRequest>,
) -> Result<Response, ApiError> {
    let id = user(&id, "id")?;
    let name = free_text(&request.name, "name", 100)?;
    let email = request
        .email
        .as_deref()
        .filter(|email| !email.trim().is_empty())
        .map(|email| free_text(email, "email", 254))
        .transpose()?;
    if email
        .as_deref()
        .is_some_and(|email| !email.contains('@') || email.contains(char::is_whitespace))
    {
        return Err(DomainError::invalid_input("email").into());
    }
    let entry = DirectoryUser {
        id,
        name,
        email,
        timezone: request
            .timezone
            .as_deref()
            .map(TimeZoneName::parse)
            .transpose()?,
    };
    state.directory.put_user(&principal.tenant, &entry).await?;
    directory_response(&state, &DirectoryUserDto::from(&entry)).await
}

/// Add or replace a meeting with its roles and attendees.
#[utoipa::path(put, path = "/api/v1/directory/meetings/{id}", tag = "directory", request_body = PutMeetingRequest,
    params(("id" = String, Path)),
    responses(
        (status = 200, body = DirectoryMeetingDto, headers(("X-Position" = u64, description = "the head (directory writes append no event)"))),
        (status = 403, description = "forbidden: admins only", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input", content_type = "application/problem+json", body = Problem)))]
pub async fn put_meeting(
    State(state): State<CommandState>,
    AdminCaller(principal): AdminCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<PutMeetingRequest>,
) -> Result<Response, ApiError> {
    let id = MeetingId::parse(&id).map_err(|_| DomainError::invalid_input("id"))?;
    let subject = Subject::parse(&request.subject)?;
    let start = time(&request.start, "start")?;
    let end = time(&request.end, "end")?;
    if end <= start {
        return Err(DomainError::invalid_input("end").into());
    }
    state.within_horizon(Some(start), "start")?;
    state.within_horizon(Some(end), "end")?;
    let directory = state.directory.as_ref();
    let tenant = &principal.tenant;
    let creator = user(&request.creator, "creator")?;
    let convener = user(&request.convener, "convener")?;
    let contact = user(&request.contact, "contact")?;
    for (who, field) in [
        (&creator, "creator"),
        (&convener, "convener"),
        (&contact, "contact"),
    ] {
        known(directory, tenant, std::slice::from_ref(who), field).await?;
    }
    let attendees = users(&request.attendees, "attendees")?;
    known(directory, tenant, &attendees, "attendees").await?;
    let meeting = MeetingFacts {
        id,
        subject: subject.as_str().to_owned(),
        start,
        end,
        creator,
        convener,
        contact,
        attendees,
        url: request
            .url
            .as_deref()
            .filter(|url| !url.trim().is_empty())
            .map(|url| RelatedLink::parse(url).map_err(|_| DomainError::invalid_input("url")))
            .transpose()?,
    };
    directory.put_meeting(tenant, &meeting).await?;
    directory_response(&state, &DirectoryMeetingDto::from(&meeting)).await
}

/// Add or replace a chat with its members.
#[utoipa::path(put, path = "/api/v1/directory/chats/{id}", tag = "directory", request_body = PutChatRequest,
    params(("id" = String, Path)),
    responses(
        (status = 200, body = DirectoryChatDto, headers(("X-Position" = u64, description = "the head (directory writes append no event)"))),
        (status = 403, description = "forbidden: admins only", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input", content_type = "application/problem+json", body = Problem)))]
pub async fn put_chat(
    State(state): State<CommandState>,
    AdminCaller(principal): AdminCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<PutChatRequest>,
) -> Result<Response, ApiError> {
    let id = ChatId::parse(&id).map_err(|_| DomainError::invalid_input("id"))?;
    let kind = match request.kind.as_str() {
        "single" => ChatKind::Single,
        "group" => ChatKind::Group,
        _ => return Err(DomainError::invalid_input("kind").into()),
    };
    let name = free_text(&request.name, "name", 200)?;
    let members = users(&request.members, "members")?;
    let expected = if kind == ChatKind::Single {
        2..=2
    } else {
        2..=1000
    };
    if !expected.contains(&members.len()) {
        return Err(DomainError::invalid_input("members").into());
    }
    known(
        state.directory.as_ref(),
        &principal.tenant,
        &members,
        "members",
    )
    .await?;
    let chat = DirectoryChat {
        kind,
        facts: ChatFacts { id, name, members },
    };
    state.directory.put_chat(&principal.tenant, &chat).await?;
    directory_response(&state, &DirectoryChatDto::from(&chat)).await
}

// ---------------------------------------------------------------------------------------------
// Provider webhooks

/// How long a provider is asked to wait before delivering again a notification we cannot place
/// yet.
const WEBHOOK_RETRY_SECONDS: u64 = 60;

/// The provider named in a webhook's path, and the reader of its notifications; an unknown
/// provider, or one whose notifications meetline does not take, is `not_found`.
fn webhook_reader(
    state: &CommandState,
    provider: &str,
) -> Result<(ProviderKind, Arc<dyn WebhookReader>), ApiError> {
    let kind = ProviderKind::parse(provider).map_err(|_| DomainError::NotFound)?;
    let reader = state
        .providers
        .webhooks(kind)
        .ok_or(DomainError::NotFound)?;
    Ok((kind, reader))
}

/// Reads a call with the provider's reader: a stale or malformed one is refused before any
/// secret is looked at.
fn read_notification(
    state: &CommandState,
    reader: &dyn WebhookReader,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Box<dyn meetline_domain::ports::providers::Notification>, ApiError> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let call = WebhookCall {
        headers: &headers,
        body,
        now: state.context.clock.now(),
    };
    Ok(reader.read(&call)?)
}

/// A provider's event notifications for one line: the endpoint URL to give the provider for
/// that line's account (Zoom: `/api/v1/providers/zoom/webhook/{tenant}/{line}`). Verified
/// against that line's settings only (one line's settings are decrypted, not every tenant's);
/// answers the provider's endpoint challenge, and turns the start and end of that line's
/// meetings into events with the provider's times. A verified notification about a meeting the
/// read models do not know (yet) is answered 503 with `Retry-After`, so the provider delivers
/// it again.
#[utoipa::path(post, path = "/api/v1/providers/{provider}/webhook/{tenant}/{line}", tag = "providers", request_body = Object,
    security(()),
    params(("provider" = String, Path, description = "`zoom`"), ("tenant" = String, Path), ("line" = String, Path),
        ("x-zm-signature" = String, Header, description = "Zoom's signature"),
        ("x-zm-request-timestamp" = String, Header, description = "Zoom's timestamp")),
    responses(
        (status = 200, description = "handled; Zoom's `endpoint.url_validation` is answered with `{plainToken, encryptedToken}`"),
        (status = 400, description = "malformed_request: the body is not JSON, or lacks what the event needs", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "unauthorized: missing, stale or unverified signature", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "not_found: no such provider takes notifications", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "unavailable: the store failed, or the meeting is not projected yet; the provider delivers again after Retry-After",
            content_type = "application/problem+json", body = Problem, headers(("Retry-After" = u64)))))]
pub async fn line_webhook(
    State(state): State<CommandState>,
    ApiPath((provider, tenant, line)): ApiPath<(String, String, String)>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let (kind, reader) = webhook_reader(&state, &provider)?;
    let notification = read_notification(&state, reader.as_ref(), &headers, &body)?;
    let (Ok(tenant), Ok(line)) = (TenantId::parse(&tenant), LineId::parse(&line)) else {
        return Err(ApiError::Unauthorized);
    };
    let Some(settings) = state.line_settings.get(&tenant, &line).await? else {
        return Err(ApiError::Unauthorized);
    };
    if !notification.verified_by(&settings) {
        tracing::warn!(%tenant, %line, provider = kind.as_str(), "refused a webhook the line's settings do not verify");
        return Err(ApiError::Unauthorized);
    }
    handle_notification(
        &state,
        kind,
        notification.as_ref(),
        &settings,
        Some((tenant, line)),
    )
    .await
}

/// A provider's event notifications on the one shared URL (kept for Zoom accounts set up with
/// it; the per-line URL is preferred). The line is found from the meeting: among the lines
/// that have a meeting with that id, the one whose settings verify the signature. Only the
/// endpoint challenge, which names no meeting, is checked against every line's settings — a
/// scan limited for the whole server.
#[utoipa::path(post, path = "/api/v1/providers/{provider}/webhook", tag = "providers", request_body = Object,
    security(()),
    params(("provider" = String, Path, description = "`zoom`"),
        ("x-zm-signature" = String, Header, description = "Zoom's signature"),
        ("x-zm-request-timestamp" = String, Header, description = "Zoom's timestamp")),
    responses(
        (status = 200, description = "handled; Zoom's `endpoint.url_validation` is answered with `{plainToken, encryptedToken}`"),
        (status = 400, description = "malformed_request: the body is not JSON, or names no meeting", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "unauthorized: missing, stale or unverified signature", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "not_found: no such provider takes notifications", content_type = "application/problem+json", body = Problem),
        (status = 429, description = "rate_limited: challenge scans are limited for the whole server",
            content_type = "application/problem+json", body = Problem, headers(("Retry-After" = u64))),
        (status = 503, description = "unavailable: the store failed, or the meeting is not projected yet; the provider delivers again after Retry-After",
            content_type = "application/problem+json", body = Problem, headers(("Retry-After" = u64)))))]
pub async fn shared_webhook(
    State(state): State<CommandState>,
    ApiPath(provider): ApiPath<String>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let (kind, reader) = webhook_reader(&state, &provider)?;
    let notification = read_notification(&state, reader.as_ref(), &headers, &body)?;
    let meeting_id = match notification.subject() {
        WebhookSubject::Challenge => {
            // The one notification that names no meeting: every line's settings are tried,
            // so these scans are limited for the whole server.
            state.webhook_scans.check()?;
            let signer = state
                .line_settings
                .all()
                .await?
                .into_iter()
                .map(|(_, _, settings)| settings)
                .find(|settings| notification.verified_by(settings));
            let Some(settings) = signer else {
                tracing::warn!(
                    provider = kind.as_str(),
                    "refused a challenge no line's settings verify"
                );
                return Err(ApiError::Unauthorized);
            };
            return handle_notification(&state, kind, notification.as_ref(), &settings, None).await;
        }
        WebhookSubject::Meeting(meeting_id) => meeting_id,
        WebhookSubject::Other => {
            return Err(ApiError::Malformed(
                "the notification names no meeting".to_owned(),
            ));
        }
    };
    let candidates = state
        .provider_meetings
        .lines_with_meeting(&meeting_id)
        .await?;
    if candidates.is_empty() {
        // No line is known to have this meeting: nothing to verify against, and nothing is
        // done with it. If the read models are behind, it may be ours: it is delivered again.
        return unknown_meeting(&state, &meeting_id).await;
    }
    for (tenant, line) in candidates {
        if let Some(settings) = state.line_settings.get(&tenant, &line).await?
            && notification.verified_by(&settings)
        {
            return handle_notification(
                &state,
                kind,
                notification.as_ref(),
                &settings,
                Some((tenant, line)),
            )
            .await;
        }
    }
    tracing::warn!(%meeting_id, provider = kind.as_str(), "refused a webhook none of the meeting's lines verifies");
    Err(ApiError::Unauthorized)
}

/// A notification about a meeting no line is known to have: 503 with `Retry-After` while the
/// read models are behind the log (the meeting may be one provisioned a moment ago), else 200
/// — it is not one of ours (the account also hosts meetings meetline did not make).
async fn unknown_meeting(state: &CommandState, meeting_id: &str) -> Result<Response, ApiError> {
    let head = state.service.store().head_position().await?;
    if state.read_models.applied_position().await? < head {
        tracing::info!(
            meeting_id,
            "a webhook for a meeting not projected yet; asked to retry"
        );
        return Err(ApiError::RetryLater {
            retry_after: WEBHOOK_RETRY_SECONDS,
        });
    }
    Ok(StatusCode::OK.into_response())
}

/// Acts on a notification that `settings` verified. `line`: the line whose settings verified
/// it and whose meeting it may concern (`None`: a challenge, which names no line).
async fn handle_notification(
    state: &CommandState,
    kind: ProviderKind,
    notification: &dyn meetline_domain::ports::providers::Notification,
    settings: &serde_json::Value,
    line: Option<(TenantId, LineId)>,
) -> Result<Response, ApiError> {
    let (meeting_id, started, at, delivery) =
        match notification.meaning(settings, state.context.clock.now())? {
            WebhookMeaning::Answer(answer) => return Ok(axum::Json(answer).into_response()),
            WebhookMeaning::Ignored => return Ok(StatusCode::OK.into_response()),
            WebhookMeaning::Meeting {
                meeting_id,
                started,
                at,
                delivery,
            } => (meeting_id, started, at, delivery),
        };
    let found = match &line {
        Some((tenant, line)) => state
            .provider_meetings
            .conference_for_meeting(tenant, line, &meeting_id)
            .await?
            .map(|conference| (tenant.clone(), conference)),
        None => None,
    };
    let Some((tenant, conference)) = found else {
        return unknown_meeting(state, &meeting_id).await;
    };
    let actor = meetline_domain::types::Actor::system(&format!("system.{}", kind.as_str()));
    let command = Command::RecordProviderMeeting {
        conference,
        started,
        at,
    };
    // Providers retry deliveries: the same notification is one command.
    let submission = Submission::new(tenant, actor, command, state.context.clock.now())
        .with_idempotency_key(&delivery);
    state.service.execute(submission).await?;
    Ok(StatusCode::OK.into_response())
}

/// The command API's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        create_conference,
        edit_conference,
        invite,
        cancel_conference,
        end_conference,
        join_conference,
        launch_from_meeting,
        launch_from_chat,
        add_line,
        update_line,
        remove_line,
        put_line_settings,
        shared_webhook,
        line_webhook,
        put_user,
        put_meeting,
        put_chat
    ),
    components(schemas(
        CreateConferenceRequest,
        EditConferenceRequest,
        InviteRequest,
        CancelRequest,
        JoinRequest,
        MeetingLaunchRequest,
        ChatLaunchRequest,
        AddLineRequest,
        UpdateLineRequest,
        PutUserRequest,
        PutMeetingRequest,
        PutChatRequest,
        LineResponse,
        DirectoryUserDto,
        DirectoryMeetingDto,
        DirectoryChatDto,
        ModeName,
        ProviderName,
        LineStatusName,
        ChatKindName
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
