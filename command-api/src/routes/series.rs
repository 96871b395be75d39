//! Recurring conferences at the HTTP edge: the `recurrence` and `on_conflict` of a schedule
//! request, the `scope` of an edit or a cancellation, and the answers that list a series'
//! conferences.

use chrono::NaiveDate;
use meetline_api_common::error::ConflictDto;
use meetline_domain::command::{OnConflict, ScheduleSeries, SeriesScope};
use meetline_domain::recurrence::{Frequency, Recurrence, RecurrenceEnd, SeriesId};

use super::*;

/// How a series repeats (API.md, "Recurring conferences").
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceRequest {
    /// `daily`, `weekly` or `monthly` (on the start's n-th weekday of the month).
    pub frequency: String,
    /// Every n days, weeks or months (1–99, default 1).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 99)]
    pub interval: Option<i64>,
    /// Weekly only: `MO` … `SU`; default: the start's weekday, which must be among them.
    pub weekdays: Option<Vec<String>>,
    /// How many occurrences (1–100), the first included; or give `until`.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 100)]
    pub count: Option<i64>,
    /// The last day an occurrence may fall on (`YYYY-MM-DD`, in the conference's time zone).
    pub until: Option<String>,
}

impl TryFrom<&RecurrenceRequest> for Recurrence {
    type Error = ApiError;

    /// The rule, or 422 naming `recurrence`.
    fn try_from(request: &RecurrenceRequest) -> Result<Self, ApiError> {
        let bad = || ApiError::from(DomainError::invalid_input("recurrence"));
        let frequency = match request.frequency.as_str() {
            "daily" => Frequency::Daily,
            "weekly" => Frequency::Weekly,
            "monthly" => Frequency::Monthly,
            _ => return Err(bad()),
        };
        let interval = match request.interval {
            None => 1,
            Some(n) => u32::try_from(n).map_err(|_| bad())?,
        };
        let weekdays = request
            .weekdays
            .iter()
            .flatten()
            .map(|code| Recurrence::weekday(code.trim()).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?;
        if request.weekdays.as_ref().is_some_and(Vec::is_empty)
            || request.weekdays.as_ref().is_some_and(|days| days.len() > 7)
        {
            return Err(bad());
        }
        let end = match (request.count, request.until.as_deref()) {
            (Some(count), None) => RecurrenceEnd::Count(u32::try_from(count).map_err(|_| bad())?),
            (None, Some(until)) => RecurrenceEnd::Until(
                NaiveDate::parse_from_str(until.trim(), "%Y-%m-%d").map_err(|_| bad())?,
            ),
            _ => return Err(bad()),
        };
        Ok(Recurrence::new(frequency, interval, &weekdays, end)?)
    }
}

/// `on_conflict`: `reject` (the default) or `skip`.
pub fn on_conflict(text: Option<&str>) -> Result<OnConflict, DomainError> {
    match text {
        None | Some("reject") => Ok(OnConflict::Reject),
        Some("skip") => Ok(OnConflict::Skip),
        Some(_) => Err(DomainError::invalid_input("on_conflict")),
    }
}

/// `?scope=` of an edit or a cancellation.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScopeQuery {
    /// `this` (the default): the occurrence named; `following`: it and the later ones of its
    /// series; `all`: every not-started occurrence of its series.
    #[param(pattern = "^(this|following|all)$")]
    pub scope: Option<String>,
}

impl ScopeQuery {
    /// `None` for `this`.
    pub fn series_scope(&self) -> Result<Option<SeriesScope>, DomainError> {
        match self.scope.as_deref() {
            None | Some("this") => Ok(None),
            Some("following") => Ok(Some(SeriesScope::Following)),
            Some("all") => Ok(Some(SeriesScope::All)),
            Some(_) => Err(DomainError::invalid_input("scope")),
        }
    }
}

/// A series booked: its conferences, and the occurrences left out (`on_conflict: skip`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesCreated {
    #[schema(format = Uuid)]
    pub series_id: String,
    pub items: Vec<ConferenceDto>,
    pub skipped: Vec<ConflictDto>,
}

/// The conferences a scoped edit or cancellation changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesChanged {
    pub items: Vec<ConferenceDto>,
}

/// The series command for a schedule request that carries `recurrence`: the rule is expanded
/// here only to draw an id and numbers for each occurrence (the pool expands it again and
/// decides); every occurrence must end within the booking horizon.
pub fn series_command(
    state: &CommandState,
    first: ScheduleConference,
    recurrence: Recurrence,
    on_conflict: OnConflict,
) -> Result<Command, ApiError> {
    if first.mode != Mode::Scheduled {
        return Err(DomainError::invalid_input("recurrence").into());
    }
    let start = first
        .start
        .ok_or_else(|| DomainError::invalid_input("start"))?;
    let slot = meetline_domain::types::TimeSlot::new(start, first.end.resolve(start))?;
    let slots = recurrence.occurrences(&slot, &first.timezone)?;
    if let Some(last) = slots.last() {
        state.within_horizon(Some(last.end), "recurrence")?;
    }
    let more = (1..slots.len())
        .map(|_| (ConferenceId(Uuid::now_v7()), numbers()))
        .collect();
    Ok(Command::ScheduleSeries(ScheduleSeries {
        series: SeriesId(Uuid::now_v7()),
        first,
        recurrence,
        more,
        on_conflict,
    }))
}

/// 201 (202 while a provider has not confirmed some occurrence) with the series; `Location`
/// names the first occurrence.
pub async fn created(
    state: &CommandState,
    principal: &Principal,
    lang: Lang,
    outcome: &Outcome,
) -> Result<Response, ApiError> {
    let items = present(state, principal, lang, outcome).await;
    let first = outcome
        .series
        .first()
        .or(outcome.conference.as_ref())
        .ok_or(ApiError::Domain(DomainError::NotFound))?;
    let pending = outcome
        .series
        .iter()
        .any(|view| view.provisioning == meetline_domain::Provisioning::Pending);
    let status = if pending {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    let body = SeriesCreated {
        series_id: first
            .series
            .as_ref()
            .map(|link| link.id.to_string())
            .unwrap_or_default(),
        items,
        skipped: outcome.skipped.iter().map(ConflictDto::from).collect(),
    };
    let mut response = (status, axum::Json(&body)).into_response();
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/api/v1/conferences/{}", first.id)).expect("uuid"),
    );
    finish(&mut response, outcome);
    Ok(response)
}

/// 200 with the conferences a scoped edit or cancellation changed.
pub async fn changed(
    state: &CommandState,
    principal: &Principal,
    lang: Lang,
    outcome: &Outcome,
) -> Result<Response, ApiError> {
    let items = present(state, principal, lang, outcome).await;
    let mut response = (StatusCode::OK, axum::Json(&SeriesChanged { items })).into_response();
    finish(&mut response, outcome);
    Ok(response)
}

async fn present(
    state: &CommandState,
    principal: &Principal,
    lang: Lang,
    outcome: &Outcome,
) -> Vec<ConferenceDto> {
    state
        .context
        .links
        .present_all(&outcome.series, principal, state.context.clock.now(), lang)
        .await
}

fn finish(response: &mut Response, outcome: &Outcome) {
    if outcome.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    position_header(response, outcome.position);
}
