//! Provider webhooks: a provider's notifications about its meetings, verified and read by the
//! provider's adapter (through the registry port), turned into commands here.

use meetline_domain::ports::providers::{
    Notification, WebhookCall, WebhookMeaning, WebhookReader, WebhookSubject,
};

use super::*;

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
) -> Result<Box<dyn Notification>, ApiError> {
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
    notification: &dyn Notification,
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
