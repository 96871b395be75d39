//! Lines (admin): add, rename, maintenance, remove, and their provider settings.

use super::*;

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

/// A line to add, its fields checked.
#[derive(Debug)]
pub struct NewLine {
    pub name: LineName,
    pub provider: ProviderKind,
    /// `null` counts as none.
    pub settings: Option<serde_json::Value>,
}

impl TryFrom<AddLineRequest> for NewLine {
    type Error = DomainError;

    fn try_from(request: AddLineRequest) -> Result<Self, DomainError> {
        Ok(Self {
            name: LineName::parse(&request.name)?,
            provider: ProviderKind::parse(&request.provider)?,
            settings: request.settings.filter(|settings| !settings.is_null()),
        })
    }
}

/// What a line's update asks for: a new name, a change of maintenance, or both.
#[derive(Debug)]
pub struct LineChanges {
    pub name: Option<LineName>,
    /// `true`: into maintenance; `false`: out of it.
    pub maintenance: Option<bool>,
}

impl TryFrom<&UpdateLineRequest> for LineChanges {
    type Error = DomainError;

    fn try_from(request: &UpdateLineRequest) -> Result<Self, DomainError> {
        let name = request.name.as_deref().map(LineName::parse).transpose()?;
        let maintenance = match request.status.as_deref() {
            None => None,
            Some("maintenance") => Some(true),
            Some("active") => Some(false),
            Some(_) => return Err(DomainError::invalid_input("status")),
        };
        if name.is_none() && maintenance.is_none() {
            return Err(DomainError::invalid_input("status"));
        }
        Ok(Self { name, maintenance })
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
    let NewLine {
        name,
        provider,
        settings,
    } = NewLine::try_from(request)?;
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
    let LineChanges { name, maintenance } = LineChanges::try_from(&request)?;
    let status_command = maintenance.map(|maintenance| {
        if maintenance {
            Command::StartLineMaintenance {
                line: line.clone(),
                rooms: rooms(),
            }
        } else {
            Command::EndLineMaintenance { line: line.clone() }
        }
    });
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
