//! Conferences: schedule, edit, invite, cancel, end early, join by number, and launch from a
//! directory meeting or chat.

use super::series::{self, RecurrenceRequest, ScopeQuery};
use super::*;
use meetline_domain::recurrence::Recurrence;

/// A conference's mode.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ModeName {
    /// Starts now.
    Quick,
    /// Starts at `start`.
    Scheduled,
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
    /// Makes it a series (mode `scheduled` only): every occurrence a conference of its own.
    pub recurrence: Option<RecurrenceRequest>,
    /// With `recurrence`: `reject` (default: nothing is booked if some occurrence finds no
    /// line) or `skip` (the others are booked).
    #[schema(value_type = Option<OnConflictName>)]
    pub on_conflict: Option<String>,
}

/// What a series does when some occurrence finds no free line.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum OnConflictName {
    Reject,
    Skip,
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

/// A conference to schedule, its fields checked (422 naming the first bad one). What needs the
/// directory or the clock — the host and attendees being users, the booking horizon, the
/// caller's time zone by default — is checked by the handler.
#[derive(Debug)]
pub struct Booking {
    pub mode: Mode,
    pub subject: Subject,
    pub start: Option<DateTime<Utc>>,
    pub end: EndSpec,
    pub host: Option<UserId>,
    pub attendees: Vec<UserId>,
    pub related_link: Option<RelatedLink>,
}

impl TryFrom<&CreateConferenceRequest> for Booking {
    type Error = ApiError;

    fn try_from(request: &CreateConferenceRequest) -> Result<Self, ApiError> {
        let mode = match request.mode.as_deref() {
            Some("quick") => Mode::Quick,
            Some("scheduled") | None => Mode::Scheduled,
            Some(_) => return Err(DomainError::invalid_input("mode").into()),
        };
        Ok(Self {
            mode,
            subject: subject(request.subject.as_ref())?
                .ok_or_else(|| DomainError::invalid_input("subject"))?,
            start: optional_time(request.start.as_ref(), "start")?,
            end: end_spec(request.end.as_ref(), request.duration_minutes)?
                .unwrap_or(EndSpec::After(Duration::minutes(DEFAULT_MINUTES))),
            host: request
                .host
                .as_deref()
                .map(|id| user(id, "host"))
                .transpose()?,
            attendees: users(
                request.attendees.as_deref().unwrap_or_default(),
                "attendees",
            )?,
            related_link: request
                .related_link
                .as_deref()
                .filter(|link| !link.trim().is_empty())
                .map(RelatedLink::parse)
                .transpose()?,
        })
    }
}

/// Schedule a conference (quick: starts now; scheduled: at `start`).
#[utoipa::path(post, path = "/api/v1/conferences", tag = "commands", request_body = CreateConferenceRequest,
    params(IdempotencyKey),
    responses(
        (status = 201, description = "the conference; with `recurrence`, the series (`SeriesCreated`: `series_id`, `items`, `skipped`)",
            body = ConferenceDto, headers(("ETag" = String, description = "the version, e.g. \"1\" (not for a series)"), ("X-Position" = u64, description = "global position of the command's last event"), ("Location" = String, description = "the conference, or a series' first occurrence"))),
        (status = 202, description = "the provider has not confirmed the meeting yet (`provisioning: pending`)",
            body = ConferenceDto, headers(("ETag" = String, description = "the version, e.g. \"1\""), ("X-Position" = u64, description = "global position of the command's last event"), ("Location" = String))),
        (status = 409, description = "no_free_line (for a series rejected whole: `conflicts`)", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input", content_type = "application/problem+json", body = Problem)))]
pub async fn create_conference(
    State(state): State<CommandState>,
    Caller(principal): Caller,
    lang: Lang,
    call: CommandRequest,
    ApiJson(request): ApiJson<CreateConferenceRequest>,
) -> Result<Response, ApiError> {
    let Booking {
        mode,
        subject,
        start,
        end,
        host,
        attendees,
        related_link,
    } = Booking::try_from(&request)?;
    state.within_horizon(start, "start")?;
    if let EndSpec::At(end) = end {
        state.within_horizon(Some(end), "end")?;
    }
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
    let schedule = ScheduleConference {
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
    };
    if let Some(rule) = &request.recurrence {
        let recurrence = Recurrence::try_from(rule)?;
        let on_conflict = series::on_conflict(request.on_conflict.as_deref())?;
        let command = series::series_command(&state, schedule, recurrence, on_conflict)?;
        let outcome = submit(&state, &principal, &call, command).await?;
        return series::created(&state, &principal, lang, &outcome).await;
    }
    if request.on_conflict.is_some() {
        return Err(DomainError::invalid_input("on_conflict").into());
    }
    let command = Command::ScheduleConference(schedule);
    let mut outcome = submit(&state, &principal, &call, command).await?;
    await_provisioning(&state, &principal, &mut outcome).await?;
    let status = created_status(&outcome);
    conference_response(&state, &principal, lang, status, &outcome).await
}

impl TryFrom<&EditConferenceRequest> for ConferenceChanges {
    type Error = ApiError;

    /// Each field checked on its own (422 naming it); what needs the directory or the clock
    /// (attendees being users, the booking horizon) is checked by the handler.
    fn try_from(request: &EditConferenceRequest) -> Result<Self, ApiError> {
        Ok(Self {
            subject: subject(request.subject.as_ref())?,
            start: optional_time(request.start.as_ref(), "start")?,
            end: end_spec(request.end.as_ref(), request.duration_minutes)?,
            timezone: request
                .timezone
                .as_deref()
                .map(TimeZoneName::parse)
                .transpose()?,
            attendees: request
                .attendees
                .as_deref()
                .map(|ids| users(ids, "attendees"))
                .transpose()?,
            related_link: match &request.related_link {
                None => None,
                Some(None) => Some(None),
                Some(Some(link)) if link.trim().is_empty() => Some(None),
                Some(Some(link)) => Some(Some(RelatedLink::parse(link)?)),
            },
        })
    }
}

/// Edit a not-started conference; the line is re-checked for a new time.
#[utoipa::path(patch, path = "/api/v1/conferences/{id}", tag = "commands", request_body = EditConferenceRequest,
    params(("id" = String, Path, format = Uuid),
        ("If-Match" = Option<String>, Header, nullable = false,
            pattern = r#"^(\*|(W/)?"[0-9]{1,19}"|[0-9]{1,19})[ \t]*$"#,
            description = "the ETag of the version edited, e.g. \"3\""),
        ScopeQuery, IdempotencyKey),
    responses(
        (status = 200, description = "the conference; with `scope` following or all, `SeriesChanged` (`items`)", body = ConferenceDto, headers(("ETag" = String, description = "the new version, e.g. \"3\""), ("X-Position" = u64, description = "global position of the command's last event"))),
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
    ApiQuery(query): ApiQuery<ScopeQuery>,
    ApiJson(request): ApiJson<EditConferenceRequest>,
) -> Result<Response, ApiError> {
    let conference = conference_id(&id)?;
    let scope = query.series_scope()?;
    let changes = ConferenceChanges::try_from(&request)?;
    if let Some(attendees) = &changes.attendees {
        known_attendees_of(&state, &principal, conference, attendees).await?;
    }
    state.within_horizon(changes.start, "start")?;
    if let Some(EndSpec::At(end)) = changes.end {
        state.within_horizon(Some(end), "end")?;
    }
    if let Some(scope) = scope {
        let command = Command::EditSeries {
            conference,
            changes,
            expected_version: if_match(&call.headers)?,
            rooms: rooms(),
            scope,
            latest: state.context.clock.now() + state.booking_horizon,
        };
        let outcome = submit(&state, &principal, &call, command).await?;
        return series::changed(&state, &principal, lang, &outcome).await;
    }
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
    params(("id" = String, Path, format = Uuid), ScopeQuery, IdempotencyKey),
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
    ApiQuery(query): ApiQuery<ScopeQuery>,
    body: ApiBytes,
) -> Result<Response, ApiError> {
    let conference = conference_id(&id)?;
    let scope = query.series_scope()?;
    let request: CancelRequest = body.json_or_default()?;
    if let Some(scope) = scope {
        let command = Command::CancelSeries {
            conference,
            reason: request.reason,
            scope,
        };
        let outcome = submit(&state, &principal, &call, command).await?;
        return series::changed(&state, &principal, lang, &outcome).await;
    }
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
