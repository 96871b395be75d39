//! The query API: every query row of API.md, over the read models — plus history and `?as_of=`
//! replays read straight from the event store.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Duration as Span, Utc};
use meetline_api_common::error::Problem;
use meetline_api_common::fields::{etag, optional_time, time};
use meetline_api_common::{
    AdminCaller, ApiContext, ApiError, ApiPath, ApiQuery, Caller, ConferenceDto, Lang,
};
use meetline_domain::DomainError;
use meetline_domain::ports::{EventStore, Position, pool_stream};
use meetline_domain::ports::{LineSettings, ProviderRegistry};
use meetline_domain::types::Principal;
use meetline_domain::types::{ConferenceId, LineId, Status};
use meetline_projections::ReadModels;
use meetline_projections::read::{Cursor, ListFilter, OpsSummary};
use meetline_projections::view::{ConferenceView, LineRef};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::ics;

/// How long a query with `X-Min-Position` waits for the read models.
pub const MIN_POSITION_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct QueryState {
    pub context: ApiContext,
    pub read_models: ReadModels,
    pub store: Arc<dyn EventStore>,
    /// The position the read models have applied (from the projector).
    pub applied: watch::Receiver<Position>,
    /// Whether this node runs the projections.
    pub leading: watch::Receiver<bool>,
    /// Provider settings per line (shown to admins without their secrets).
    pub line_settings: Arc<dyn LineSettings>,
    /// Which providers there are (what of a line's settings an admin may see).
    pub providers: Arc<dyn ProviderRegistry>,
    /// Cancelled when the server shuts down: open event streams end, so the drain is not held
    /// up by them.
    pub draining: CancellationToken,
}

impl FromRef<QueryState> for ApiContext {
    fn from_ref(state: &QueryState) -> Self {
        state.context.clone()
    }
}

pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/api/v1/conferences", get(list_conferences))
        .route("/api/v1/conferences/recent", get(recent_conferences))
        .route("/api/v1/conferences/{id}", get(get_conference))
        .route("/api/v1/conferences/{id}/history", get(history))
        .route("/api/v1/conferences/{id}/calendar.ics", get(calendar))
        .route("/api/v1/lines", get(lines))
        .route("/api/v1/ops/summary", get(ops_summary))
        .route("/api/v1/ops/timeline", get(ops_timeline))
        .route("/api/v1/events/stream", get(event_stream))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecentResponse {
    pub items: Vec<ConferenceDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse {
    pub items: Vec<ConferenceDto>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Comma-separated statuses: not_started, in_progress, ended, manually_ended, cancelled.
    #[param(
        pattern = r"^\s*((not_started|in_progress|ended|manually_ended|cancelled)\s*(,\s*(not_started|in_progress|ended|manually_ended|cancelled)\s*)*)?$"
    )]
    pub status: Option<String>,
    /// RFC 3339.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Text in the subject, or a conference number.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// 1–100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewQuery {
    /// RFC 3339: rebuild the conference as it was at that instant.
    #[param(format = DateTime)]
    pub as_of: Option<String>,
}

/// `X-Min-Position` (read-your-writes), which every query honours.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct MinPosition {
    /// Wait (up to 5 s) until the read models applied this position (a command's
    /// `X-Position`); a position beyond the store's head waits for the head only.
    #[param(rename = "X-Min-Position", nullable = false, minimum = 0)]
    pub x_min_position: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub position: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    pub events: Vec<HistoryEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UpcomingDto {
    pub id: String,
    pub number: String,
    pub subject: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub status: String,
    pub stranded: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LineDetail {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub status: String,
    /// The line's provider settings without secret values, plus `secrets_set`; null when none.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
    /// Not-started and in-progress conferences of the next 30 days.
    pub upcoming: Vec<UpcomingDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinesResponse {
    pub items: Vec<LineDetail>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpsSummaryDto {
    pub by_status: std::collections::BTreeMap<String, i64>,
    /// Line id → booked share of the next 7 days (0–1).
    pub utilisation: std::collections::BTreeMap<String, f64>,
    pub no_free_line_rejections: i64,
    /// Provider calls (create, update, delete, end) that failed after every retry.
    pub provider_failures: i64,
    /// `[hour (RFC 3339, UTC), rejections]` pairs, newest first (last 7 days with any).
    #[schema(schema_with = hour_counts)]
    pub rejections_by_hour: Vec<(String, i64)>,
    pub head_position: u64,
    pub applied_position: u64,
    pub projection_lag: u64,
}

/// The schema of `rejections_by_hour`: pairs as arrays of two items. (utoipa renders a tuple
/// with `prefixItems` and `items: false`, which some OpenAPI tools cannot read.)
fn hour_counts() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .items(
            ArrayBuilder::new()
                .items(
                    ObjectBuilder::new()
                        .schema_type(SchemaType::Array(vec![Type::String, Type::Integer])),
                )
                .min_items(Some(2))
                .max_items(Some(2)),
        )
        .into()
}

/// Waits until the read models applied `X-Min-Position` (up to 5 s) — read-your-writes.
///
/// A position beyond the store's head cannot be reached by waiting: then it waits for the head
/// instead, which holds every write a client can know of (a command's `X-Position` is in the
/// store before the command is answered, and the head is read from the store all nodes share) —
/// so such a query is answered as soon as the read models are current, not after 5 s.
async fn await_position(state: &QueryState, headers: &HeaderMap) -> Result<Position, ApiError> {
    let Some(value) = headers.get("x-min-position") else {
        return Ok(*state.applied.borrow());
    };
    // Within BIGINT, as the document says (0 to 2⁶³ − 1): positions are stored as one.
    let wanted: Position = value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok())
        .and_then(|number| Position::try_from(number).ok())
        .ok_or_else(|| {
            ApiError::Malformed("X-Min-Position must be a position number".to_owned())
        })?;
    let now = *state.applied.borrow();
    if now >= wanted {
        return Ok(now);
    }
    let target = match state.store.head_position().await {
        Ok(head) => wanted.min(head),
        // The wait is bounded anyway.
        Err(error) => {
            tracing::warn!(%error, "cannot read the head for X-Min-Position");
            wanted
        }
    };
    let mut applied = state.applied.clone();
    let reached = tokio::time::timeout(
        MIN_POSITION_WAIT,
        applied.wait_for(|position| *position >= target),
    )
    .await;
    if reached.is_err() {
        tracing::warn!(
            wanted,
            target,
            applied = *state.applied.borrow(),
            "X-Min-Position not reached in time"
        );
    }
    Ok(*state.applied.borrow())
}

fn with_position(body: impl IntoResponse, applied: Position) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert("x-applied-position", HeaderValue::from(applied));
    response
}

async fn present_all(
    state: &QueryState,
    principal: &Principal,
    lang: Lang,
    views: &[ConferenceView],
) -> Vec<ConferenceDto> {
    let now = state.context.clock.now();
    state
        .context
        .links
        .present_all(views, principal, now, lang)
        .await
}

/// The caller's not-started and in-progress conferences of the next 30 days, soonest first.
#[utoipa::path(get, path = "/api/v1/conferences/recent", tag = "queries", params(MinPosition),
    responses((status = 200, body = RecentResponse, headers(("X-Applied-Position" = u64)))))]
pub async fn recent_conferences(
    State(state): State<QueryState>,
    Caller(principal): Caller,
    lang: Lang,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let applied = await_position(&state, &headers).await?;
    let views = state
        .read_models
        .recent(
            &principal.tenant,
            &principal.actor.user,
            state.context.clock.now(),
            100,
        )
        .await?;
    let items = present_all(&state, &principal, lang, &views).await;
    Ok(with_position(axum::Json(RecentResponse { items }), applied))
}

fn parse_filter(query: &ListQuery) -> Result<ListFilter, DomainError> {
    let statuses = match query
        .status
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
    {
        None => Vec::new(),
        Some(text) => {
            let mut statuses = text
                .split(',')
                .map(|name| Status::parse(name.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            // One condition per status, in one order: the same filter is the same statement.
            statuses.sort_by_key(|status| status.as_str());
            statuses.dedup();
            statuses
        }
    };
    let time = optional_time;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(DomainError::invalid_input("limit"));
    }
    let cursor = query
        .cursor
        .as_deref()
        .filter(|text| !text.is_empty())
        .map(|text| Cursor::decode(text).ok_or_else(|| DomainError::invalid_input("cursor")))
        .transpose()?;
    // A search text is typed by a person: no control characters (PostgreSQL refuses U+0000).
    let text = query
        .q
        .clone()
        .filter(|text| text.chars().count() <= 200 && !text.chars().any(char::is_control));
    if query.q.is_some() && text.is_none() {
        return Err(DomainError::invalid_input("q"));
    }
    Ok(ListFilter {
        statuses,
        from: time(query.from.as_ref(), "from")?,
        to: time(query.to.as_ref(), "to")?,
        text,
        limit,
        cursor,
    })
}

/// All the caller's conferences, newest start first, filtered and paged.
#[utoipa::path(get, path = "/api/v1/conferences", tag = "queries", params(ListQuery, MinPosition),
    responses((status = 200, body = ListResponse, headers(("X-Applied-Position" = u64))),
        (status = 422, description = "invalid_input: status, from, to, q, limit or cursor", content_type = "application/problem+json", body = Problem)))]
pub async fn list_conferences(
    State(state): State<QueryState>,
    Caller(principal): Caller,
    lang: Lang,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let filter = parse_filter(&query)?;
    let applied = await_position(&state, &headers).await?;
    let page = state
        .read_models
        .list(
            &principal.tenant,
            &principal.actor.user,
            &filter,
            state.context.clock.now(),
        )
        .await?;
    let items = present_all(&state, &principal, lang, &page.items).await;
    Ok(with_position(
        axum::Json(ListResponse {
            items,
            next_cursor: page.next_cursor.map(|cursor| cursor.encode()),
        }),
        applied,
    ))
}

/// The conference if the caller may see it (participant or admin); otherwise 404.
async fn visible(
    state: &QueryState,
    principal: &Principal,
    id: &str,
) -> Result<ConferenceView, ApiError> {
    let id = ConferenceId::parse(id)?;
    let view = state
        .read_models
        .conference(&principal.tenant, id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if !principal.actor.admin && !view.is_participant(&principal.actor.user) {
        return Err(DomainError::NotFound.into());
    }
    Ok(view)
}

async fn line_lookup(
    state: &QueryState,
    principal: &Principal,
) -> Result<impl Fn(&LineId) -> LineRef, ApiError> {
    let lines = state.read_models.lines(&principal.tenant).await?;
    Ok(move |id: &LineId| {
        lines
            .iter()
            .find(|line| line.id == id.as_str())
            .map_or_else(
                || LineRef::unknown(id),
                |line| LineRef {
                    id: id.clone(),
                    name: line.name.clone(),
                    provider: line.provider,
                },
            )
    })
}

/// One conference; `?as_of=` rebuilds it from its events as it was at that instant.
#[utoipa::path(get, path = "/api/v1/conferences/{id}", tag = "queries",
    params(("id" = String, Path, format = Uuid), ViewQuery, MinPosition),
    responses(
        (status = 200, body = ConferenceDto, headers(
            ("ETag" = String, description = "the version, e.g. \"3\" (absent with as_of)"),
            ("X-Applied-Position" = u64))),
        (status = 404, description = "not_found", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input: as_of", content_type = "application/problem+json", body = Problem)))]
pub async fn get_conference(
    State(state): State<QueryState>,
    Caller(principal): Caller,
    lang: Lang,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ViewQuery>,
) -> Result<Response, ApiError> {
    let applied = await_position(&state, &headers).await?;
    let view = visible(&state, &principal, &id).await?;
    let Some(as_of) = query.as_of.as_deref() else {
        let dto = state
            .context
            .links
            .present(&view, &principal, state.context.clock.now(), lang)
            .await;
        let mut response = with_position(axum::Json(dto), applied);
        response
            .headers_mut()
            .insert(header::ETAG, etag(view.version));
        return Ok(response);
    };
    let as_of = time(as_of, "as_of")?;
    let events = state
        .store
        .read_tagged(&pool_stream(&principal.tenant), view.id)
        .await?;
    let lines = line_lookup(&state, &principal).await?;
    let past = ConferenceView::fold(
        events
            .iter()
            .filter(|recorded| recorded.metadata.recorded_at <= as_of)
            .map(|recorded| &recorded.event),
        lines,
    )
    .ok_or(DomainError::NotFound)?;
    let dto = state
        .context
        .links
        .present(&past, &principal, as_of, lang)
        .await;
    Ok(with_position(axum::Json(dto), applied))
}

/// Every event of the conference, in order: who did what, when.
#[utoipa::path(get, path = "/api/v1/conferences/{id}/history", tag = "queries",
    params(("id" = String, Path, format = Uuid), MinPosition),
    responses((status = 200, body = HistoryResponse, headers(("X-Applied-Position" = u64))),
        (status = 404, description = "not_found", content_type = "application/problem+json", body = Problem)))]
pub async fn history(
    State(state): State<QueryState>,
    Caller(principal): Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let applied = await_position(&state, &headers).await?;
    let view = visible(&state, &principal, &id).await?;
    let events = state
        .store
        .read_tagged(&pool_stream(&principal.tenant), view.id)
        .await?;
    let entries = events
        .into_iter()
        .map(|recorded| {
            let mut data = serde_json::to_value(&recorded.event).expect("events serialize");
            if let Some(object) = data.as_object_mut() {
                object.remove("type");
                // The room is part of what makes a link unguessable; history does not need it.
                object.remove("room");
            }
            HistoryEntry {
                position: recorded.position,
                kind: recorded.event.type_name().to_owned(),
                at: recorded.metadata.recorded_at,
                actor: recorded.metadata.actor,
                data,
            }
        })
        .collect();
    Ok(with_position(
        axum::Json(HistoryResponse { events: entries }),
        applied,
    ))
}

/// The conference as an iCalendar file; for an occurrence of a series, the series (`RRULE`,
/// `EXDATE` for occurrences that do not take place, overrides for moved ones).
#[utoipa::path(get, path = "/api/v1/conferences/{id}/calendar.ics", tag = "queries",
    params(("id" = String, Path, format = Uuid), MinPosition),
    responses((status = 200, content_type = "text/calendar", body = String,
            headers(("Content-Disposition" = String))),
        (status = 404, description = "not_found", content_type = "application/problem+json", body = Problem)))]
pub async fn calendar(
    State(state): State<QueryState>,
    Caller(principal): Caller,
    lang: Lang,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    await_position(&state, &headers).await?;
    let view = visible(&state, &principal, &id).await?;
    let now = state.context.clock.now();
    let dto = state
        .context
        .links
        .present(&view, &principal, now, lang)
        .await;
    let body = match view.series.as_deref() {
        None => ics::calendar(&view, &dto, now),
        // An occurrence of a series: the series, as far as the caller may see it.
        Some(link) => {
            let members: Vec<ConferenceView> = state
                .read_models
                .series(&principal.tenant, &link.id.to_string())
                .await?
                .into_iter()
                .filter(|member| {
                    principal.actor.admin || member.is_participant(&principal.actor.user)
                })
                .collect();
            let dtos = state
                .context
                .links
                .present_all(&members, &principal, now, lang)
                .await;
            let occurrences: Vec<ics::Occurrence<'_>> = members
                .iter()
                .zip(&dtos)
                .map(|(view, dto)| ics::Occurrence { view, dto })
                .collect();
            ics::series_calendar(link, &occurrences, now)
                .unwrap_or_else(|| ics::calendar(&view, &dto, now))
        }
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!(
            "attachment; filename=\"conference-{}.ics\"",
            view.number
        ))
        .expect("digits"),
    );
    Ok(response)
}

/// The tenant's lines with their status and upcoming conferences (admin).
#[utoipa::path(get, path = "/api/v1/lines", tag = "lines", params(MinPosition),
    responses((status = 200, body = LinesResponse, headers(("X-Applied-Position" = u64))),
        (status = 403, description = "forbidden: admins only", content_type = "application/problem+json", body = Problem)))]
pub async fn lines(
    State(state): State<QueryState>,
    AdminCaller(principal): AdminCaller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let applied = await_position(&state, &headers).await?;
    let now = state.context.clock.now();
    let mut items = Vec::new();
    for line in state.read_models.lines(&principal.tenant).await? {
        let id = LineId::parse(&line.id).map_err(|_| ApiError::Unavailable)?;
        let upcoming = state
            .read_models
            .line_schedule(&principal.tenant, &id, now, now + Span::days(30))
            .await?
            .into_iter()
            .filter(|view| matches!(view.status_at(now), Status::NotStarted | Status::InProgress))
            .map(|view| UpcomingDto {
                id: view.id.to_string(),
                number: view.number.to_string(),
                subject: view.subject.as_str().to_owned(),
                start: view.slot.start,
                end: view.slot.end,
                status: view.status_at(now).as_str().to_owned(),
                stranded: view.stranded,
            })
            .collect();
        let settings = match state.line_settings.get(&principal.tenant, &id).await {
            Ok(settings) => settings
                .as_ref()
                .map(|settings| state.providers.redact(line.provider, settings)),
            Err(error) => {
                tracing::error!(%error, line = %id, "cannot read line settings");
                Some(serde_json::json!({"unreadable": true}))
            }
        };
        items.push(LineDetail {
            id: line.id,
            name: line.name,
            provider: line.provider.as_str().to_owned(),
            status: line.status,
            settings,
            upcoming,
        });
    }
    Ok(with_position(axum::Json(LinesResponse { items }), applied))
}

/// Counts by status, line utilisation, no-free-line rejections and projection lag (admin).
#[utoipa::path(get, path = "/api/v1/ops/summary", tag = "ops", params(MinPosition),
    responses((status = 200, body = OpsSummaryDto), (status = 403, description = "forbidden: admins only", content_type = "application/problem+json", body = Problem)))]
pub async fn ops_summary(
    State(state): State<QueryState>,
    AdminCaller(principal): AdminCaller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    await_position(&state, &headers).await?;
    let OpsSummary {
        by_status,
        utilisation,
        no_free_line_rejections,
        rejections_by_hour,
        provider_failures,
        applied_position,
    } = state
        .read_models
        .ops_summary(&principal.tenant, state.context.clock.now())
        .await?;
    let head = state.store.head_position().await?;
    Ok(axum::Json(OpsSummaryDto {
        by_status: by_status.into_iter().collect(),
        utilisation: utilisation.into_iter().collect(),
        no_free_line_rejections,
        provider_failures,
        rejections_by_hour,
        head_position: head,
        applied_position,
        projection_lag: head.saturating_sub(applied_position),
    })
    .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// RFC 3339; default: the start of today (UTC).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339; default: `from` + 1 day; at most 31 days after `from`.
    #[param(format = DateTime)]
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineBar {
    pub id: String,
    pub subject: String,
    pub number: String,
    pub start: DateTime<Utc>,
    /// When the line is free again (the early end, for one ended early).
    pub end: DateTime<Utc>,
    pub status: String,
    pub stranded: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineLine {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub status: String,
    pub conferences: Vec<TimelineBar>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineResponse {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub lines: Vec<TimelineLine>,
}

/// One row per line with the conferences booked on it in a window (the dashboard's timeline).
#[utoipa::path(get, path = "/api/v1/ops/timeline", tag = "ops", params(TimelineQuery, MinPosition),
    responses((status = 200, body = TimelineResponse), (status = 403, description = "forbidden: admins only", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input: from or to (to not after from, or over 31 days)", content_type = "application/problem+json", body = Problem)))]
pub async fn ops_timeline(
    State(state): State<QueryState>,
    AdminCaller(principal): AdminCaller,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<TimelineQuery>,
) -> Result<Response, ApiError> {
    await_position(&state, &headers).await?;
    let now = state.context.clock.now();
    let parse = optional_time;
    let from = parse(query.from.as_ref(), "from")?.unwrap_or_else(|| {
        DateTime::from_timestamp(now.timestamp() - now.timestamp().rem_euclid(86_400), 0)
            .expect("a valid day")
    });
    let to = parse(query.to.as_ref(), "to")?.unwrap_or(from + Span::days(1));
    if to <= from || to - from > Span::days(31) {
        return Err(DomainError::invalid_input("to").into());
    }
    let mut lines = Vec::new();
    for line in state.read_models.lines(&principal.tenant).await? {
        let id = LineId::parse(&line.id).map_err(|_| ApiError::Unavailable)?;
        let conferences = state
            .read_models
            .line_schedule(&principal.tenant, &id, from, to)
            .await?
            .into_iter()
            .map(|view| TimelineBar {
                id: view.id.to_string(),
                subject: view.subject.as_str().to_owned(),
                number: view.number.to_string(),
                start: view.slot.start,
                end: view
                    .ended_at
                    .filter(|_| view.status == Status::ManuallyEnded)
                    .unwrap_or(view.slot.end),
                status: view.status_at(now).as_str().to_owned(),
                stranded: view.stranded,
            })
            .collect();
        lines.push(TimelineLine {
            id: line.id,
            name: line.name,
            provider: line.provider.as_str().to_owned(),
            status: line.status,
            conferences,
        });
    }
    Ok(axum::Json(TimelineResponse { from, to, lines }).into_response())
}

/// Server-Sent Events: `position` events carry the read models' applied position as it moves, so
/// an open app or dashboard refreshes (with `X-Min-Position`) without reloading.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "queries",
    responses((status = 200,
        description = "Server-Sent Events, never ending: `event: position`, `data: <applied position>`",
        content_type = "text/event-stream", body = String)))]
pub async fn event_stream(State(state): State<QueryState>, Caller(_): Caller) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let applied = state.applied.clone();
    let draining = state.draining.clone().cancelled_owned();
    let stream = futures_util::stream::unfold((applied, true), |(mut applied, first)| async move {
        if !first && applied.changed().await.is_err() {
            return None;
        }
        let position = *applied.borrow_and_update();
        let event = Event::default()
            .event("position")
            .data(position.to_string());
        Some((Ok::<_, std::convert::Infallible>(event), (applied, false)))
    });
    Sse::new(futures_util::StreamExt::take_until(stream, draining))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", security(()),
    responses((status = 200, description = "OpenMetrics text",
        content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(state): State<QueryState>) -> Response {
    let head = state.store.head_position().await.unwrap_or(0);
    let applied = *state.applied.borrow();
    state
        .context
        .metrics
        .projection_lag
        .set(head.saturating_sub(applied) as i64);
    state
        .context
        .metrics
        .projection_leader
        .set(i64::from(*state.leading.borrow()));
    let mut response = state.context.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Alive.
#[utoipa::path(get, path = "/healthz", tag = "ops", security(()),
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready: the store answers and the read models are within 1,000 events of the head.
#[utoipa::path(get, path = "/readyz", tag = "ops", security(()),
    responses(
        (status = 200, description = "`ready`", content_type = "text/plain", body = String),
        (status = 503, description = "`catching up` or `store unavailable` (plain text)",
            content_type = "text/plain", body = String)))]
pub async fn readyz(State(state): State<QueryState>) -> Response {
    match state.store.head_position().await {
        Ok(head) if head.saturating_sub(*state.applied.borrow()) <= 1000 => "ready".into_response(),
        Ok(_) => (StatusCode::SERVICE_UNAVAILABLE, "catching up").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response(),
    }
}

/// The query API's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        recent_conferences,
        list_conferences,
        get_conference,
        history,
        calendar,
        lines,
        ops_summary,
        ops_timeline,
        event_stream,
        metrics,
        healthz,
        readyz
    ),
    components(schemas(
        TimelineResponse,
        TimelineLine,
        TimelineBar,
        RecentResponse,
        ListResponse,
        HistoryResponse,
        HistoryEntry,
        LinesResponse,
        LineDetail,
        UpcomingDto,
        OpsSummaryDto
    ))
)]
pub struct QueryApiDoc;
