//! The provisioning process: makes an external provider (Zoom) host what the pool decided.
//!
//! It follows the global log from its own checkpoint. After `ConferenceScheduled`, an edit or a
//! maintenance move onto an external line, it creates the meeting there and records
//! `ConferenceProvisioned` — or, once the provider adapter's retries are exhausted,
//! `ProvisioningFailed`, which releases the line. An edit on the same line updates the meeting; a
//! move creates the new meeting before deleting the old one (so the conference is never without
//! one); a cancel deletes it; an early end ends it.
//!
//! **Exactly once across crashes:** before calling the provider to create, it notes the attempt
//! (`provisioning_attempts`). If the process dies after the provider created the meeting but before
//! the result was recorded, the event is processed again after restart; the note says an earlier
//! attempt may have succeeded, so it first asks the provider for the meeting marked with the
//! conference (`find_created`) and adopts it. A result already recorded is never redone. On
//! PostgreSQL only one node runs this process (an advisory lock, as for the projections).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use meetline_adapters::db::Database;
use meetline_adapters::line_settings::LineSettingsStore;
use meetline_adapters::zoom::{
    RetryPolicy, ZoomEndpoints, ZoomProvider, ZoomSettings, http_client,
};
use meetline_api_common::{Clock, Metrics};
use meetline_domain::Command;
use meetline_domain::event::Event;
use meetline_domain::pool::Provisioning;
use meetline_domain::ports::{
    EventStore, MeetingRequest, Position, ProviderError, ProvisionedMeeting, RecordedEvent,
    StoreError, VideoProvider, pool_stream,
};
use meetline_domain::types::{Actor, ConferenceId, LineId, Status, TenantId, UserId};
use meetline_projections::ProcessState;
use meetline_projections::projector::Leadership;
use meetline_projections::view::{ConferenceView, LineRef, tenant_of_stream};

use crate::service::{CommandService, Submission};

/// The actor recorded on the process's events.
pub const PROVISIONING_ACTOR: &str = "system.provisioning";
/// Its checkpoint's name (in `rm_checkpoints`).
pub const CHECKPOINT: &str = "provisioning";
const LOCK: i64 = 0x6d6c_7072_6f76_0002;
const BATCH: usize = 200;

/// A line's settings and the provider built from them.
type CachedProvider = (serde_json::Value, Arc<dyn VideoProvider>);

pub struct ProvisioningProcess {
    store: Arc<dyn EventStore>,
    db: Database,
    service: CommandService,
    line_settings: LineSettingsStore,
    process: ProcessState,
    metrics: Arc<Metrics>,
    clock: Clock,
    retry: RetryPolicy,
    /// Where Zoom is (operator configuration).
    zoom: ZoomEndpoints,
    /// One provider per external line, rebuilt when the line's settings change.
    providers: tokio::sync::Mutex<HashMap<(TenantId, LineId), CachedProvider>>,
}

impl ProvisioningProcess {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn EventStore>,
        db: Database,
        service: CommandService,
        line_settings: LineSettingsStore,
        process: ProcessState,
        metrics: Arc<Metrics>,
        clock: Clock,
        retry: RetryPolicy,
        zoom: ZoomEndpoints,
    ) -> Self {
        Self {
            store,
            db,
            service,
            line_settings,
            process,
            metrics,
            clock,
            retry,
            zoom,
            providers: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn checkpoint(&self) -> Result<Position, StoreError> {
        self.process.checkpoint(CHECKPOINT).await
    }

    async fn save_checkpoint(&self, position: Position) -> Result<(), StoreError> {
        self.process.save_checkpoint(CHECKPOINT, position).await
    }

    /// The provider of an external line, or `None` for a builtin one.
    async fn provider(
        &self,
        tenant: &TenantId,
        line: &LineId,
    ) -> Result<Option<Arc<dyn VideoProvider>>, StoreError> {
        let Some(settings) = self.line_settings.get(tenant, line).await? else {
            return Ok(None);
        };
        let Ok(zoom) = ZoomSettings::from_line(&settings, &self.zoom) else {
            return Ok(None);
        };
        let mut providers = self.providers.lock().await;
        let key = (tenant.clone(), line.clone());
        if let Some((known, provider)) = providers.get(&key)
            && *known == settings
        {
            return Ok(Some(provider.clone()));
        }
        let provider: Arc<dyn VideoProvider> =
            Arc::new(ZoomProvider::new(zoom, http_client()).with_retry(self.retry));
        providers.insert(key, (settings, provider.clone()));
        Ok(Some(provider))
    }

    /// Processes everything after the checkpoint. Returns how many events it looked at.
    ///
    /// # Errors
    /// When the store or the database fails; the checkpoint stays before the failed event.
    pub async fn catch_up(&self) -> Result<usize, StoreError> {
        let mut position = self.checkpoint().await?;
        let mut seen = 0;
        loop {
            let batch = self.store.read_all(position, BATCH).await?;
            let Some(last) = batch.last().map(|event| event.position) else {
                return Ok(seen);
            };
            // Imported history (`meetline import --tenant`) is not provisioned again.
            let imported = self.process.imported_through().await?;
            for recorded in &batch {
                let history = tenant_of_stream(&recorded.stream)
                    .and_then(|tenant| imported.get(&tenant))
                    .is_some_and(|through| recorded.position <= *through);
                if !history && self.handle(recorded).await? {
                    self.save_checkpoint(recorded.position).await?;
                }
            }
            self.save_checkpoint(last).await?;
            seen += batch.len();
            position = last;
        }
    }

    /// Runs until the process ends, on the node that holds the provisioning lock.
    pub async fn run(self, stop: CancellationToken) {
        let mut leadership: Option<Leadership> = None;
        while !stop.is_cancelled() {
            if leadership.is_none() {
                leadership = Leadership::try_acquire_key(&self.db, LOCK).await;
            }
            if let Some(held) = &mut leadership {
                if !held.still_held().await {
                    leadership = None;
                    continue;
                }
                if let Err(error) = self.catch_up().await {
                    tracing::error!(%error, "provisioning failed; retrying");
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            }
            let position = self.checkpoint().await.unwrap_or(0);
            tokio::select! {
                () = stop.cancelled() => {}
                _ = tokio::time::timeout(
                    Duration::from_millis(500),
                    self.store.wait_for_events(position),
                ) => {}
            }
        }
        tracing::info!("provisioning stopped");
    }

    /// The conference's history, read once per event and only when a provider needs it.
    async fn history<'a>(
        &self,
        cache: &'a mut Option<Vec<RecordedEvent>>,
        tenant: &TenantId,
        id: ConferenceId,
    ) -> Result<&'a [RecordedEvent], StoreError> {
        if cache.is_none() {
            *cache = Some(self.store.read_tagged(&pool_stream(tenant), id).await?);
        }
        Ok(cache.as_deref().expect("just read"))
    }

    /// Handles one event; `true` when it called a provider (so the checkpoint moves right away).
    #[tracing::instrument(level = "debug", name = "provisioning", skip_all, fields(
        position = recorded.position,
        event = recorded.event.type_name(),
    ))]
    async fn handle(&self, recorded: &RecordedEvent) -> Result<bool, StoreError> {
        let Some(tenant) = tenant_of_stream(&recorded.stream) else {
            return Ok(false);
        };
        let Some(id) = recorded.event.conference() else {
            return Ok(false);
        };
        let mut cache = None;
        let at = recorded.position;
        match &recorded.event {
            Event::ConferenceScheduled { line, .. } => {
                self.create(&tenant, recorded, &mut cache, line).await
            }
            Event::ConferenceEdited {
                line,
                line_changed: true,
                ..
            } => {
                let created = self.create(&tenant, recorded, &mut cache, line).await?;
                // After a move, the meetings on the conference's other external lines go.
                let history = self.history(&mut cache, &tenant, id).await?;
                let mut old_lines: Vec<LineId> = provisioned_lines(history, at)
                    .filter(|on| on != line)
                    .collect();
                old_lines.dedup();
                for old in old_lines {
                    self.retire(&tenant, history, at, &old).await?;
                }
                Ok(created)
            }
            Event::ConferenceMovedToLine { from, to, .. } => {
                let created = self.create(&tenant, recorded, &mut cache, to).await?;
                let history = self.history(&mut cache, &tenant, id).await?;
                self.retire(&tenant, history, at, from).await?;
                Ok(created)
            }
            Event::ConferenceEdited { line, .. } => {
                let Some(provider) = self.provider(&tenant, line).await? else {
                    return Ok(false);
                };
                let history = self.history(&mut cache, &tenant, id).await?;
                let (Some(meeting), (Some(then), _)) =
                    (meeting_on(history, line, at), views(history, at))
                else {
                    return Ok(false);
                };
                let result = provider.update(&meeting, &request(&then)).await;
                self.note_failure(&tenant, "update", result).await;
                Ok(true)
            }
            Event::ConferenceCancelled { .. } | Event::ConferenceEndedEarly { .. } => {
                let history = self.history(&mut cache, &tenant, id).await?;
                let ended_early = matches!(recorded.event, Event::ConferenceEndedEarly { .. });
                // An early end that the provider itself reported needs no call back to it.
                if ended_early && reported_by_provider(history, at) {
                    return Ok(false);
                }
                let (Some(then), _) = views(history, at) else {
                    return Ok(false);
                };
                let Some(provider) = self.provider(&tenant, &then.line.id).await? else {
                    return Ok(false);
                };
                let Some(meeting) = meeting_on(history, &then.line.id, at) else {
                    return Ok(false);
                };
                let (what, result) = if ended_early {
                    ("end", provider.end(&meeting).await)
                } else {
                    ("delete", provider.delete(&meeting).await)
                };
                self.note_failure(&tenant, what, result).await;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Deletes the conference's meeting on `line`, if it has one there.
    async fn retire(
        &self,
        tenant: &TenantId,
        history: &[RecordedEvent],
        before: Position,
        line: &LineId,
    ) -> Result<(), StoreError> {
        let Some(provider) = self.provider(tenant, line).await? else {
            return Ok(());
        };
        if let Some(meeting) = meeting_on(history, line, before) {
            let result = provider.delete(&meeting).await;
            self.note_failure(tenant, "delete", result).await;
        }
        Ok(())
    }

    async fn note_failure(&self, tenant: &TenantId, what: &str, result: Result<(), ProviderError>) {
        if let Err(error) = result {
            // The provider's own words only in escaped (Debug) form: no line breaks in our logs.
            tracing::error!(%tenant, what, reason = %error.recorded_reason(), detail = ?error, "provider call failed after retries");
            self.metrics.command(&format!("provider_{what}"), "failed");
            if let Err(error) = self
                .process
                .record_provider_failure(tenant, self.clock.now())
                .await
            {
                tracing::warn!(%error, "could not count a provider failure");
            }
        }
    }

    /// Creates the meeting for a conference that is now on external `line`, once.
    async fn create(
        &self,
        tenant: &TenantId,
        recorded: &RecordedEvent,
        cache: &mut Option<Vec<RecordedEvent>>,
        line: &LineId,
    ) -> Result<bool, StoreError> {
        let Some(provider) = self.provider(tenant, line).await? else {
            return Ok(false);
        };
        let Some(id) = recorded.event.conference() else {
            return Ok(false);
        };
        let history = self.history(cache, tenant, id).await?;
        let (then, now) = views(history, recorded.position);
        let (Some(then), Some(now)) = (then, now) else {
            return Ok(false);
        };
        // Already recorded (a replay after a crash), moved on, or no longer taking place.
        let recorded_already = matches!(&now.provisioning, Provisioning::Done { line: on, .. } if on == line)
            || matches!(now.provisioning, Provisioning::Failed { .. });
        let moved_on = now.line.id != *line;
        let over = !matches!(
            now.status_at(self.clock.now()),
            Status::NotStarted | Status::InProgress
        );
        if recorded_already || moved_on || over {
            return Ok(false);
        }
        let tried_before = self
            .process
            .note_provisioning_attempt(tenant, id, recorded.position)
            .await?;
        let reference = id.to_string();
        let mut found = None;
        if tried_before {
            match provider.find_created(&reference).await {
                Ok(meeting) => found = meeting,
                Err(error) => {
                    tracing::warn!(error = ?error, "could not look for an earlier meeting; creating")
                }
            }
        }
        let result: Result<ProvisionedMeeting, ProviderError> = match found {
            Some(meeting) => Ok(meeting),
            None => provider.create(&request(&then)).await,
        }
        .and_then(checked_answer);
        let command = match result {
            Ok(meeting) => Command::RecordProvisioning {
                conference: id,
                line: line.clone(),
                meeting_id: meeting.meeting_id,
                join_url: meeting.join_url,
                password: meeting.password,
            },
            Err(error) => {
                self.note_failure(tenant, "create", Err(error.clone()))
                    .await;
                Command::RecordProvisioningFailure {
                    conference: id,
                    line: line.clone(),
                    reason: error.recorded_reason(),
                }
            }
        };
        let actor = Actor {
            user: UserId::parse(PROVISIONING_ACTOR).expect("a valid id"),
            admin: true,
        };
        let submission = Submission::new(tenant.clone(), actor, command, self.clock.now());
        self.service
            .execute(submission)
            .await
            .map_err(|error| StoreError::Unavailable(error.to_string()))?;
        Ok(true)
    }
}

/// A provider's answer is hostile input too: its join URL goes into `href`s and calendar files.
fn checked_answer(meeting: ProvisionedMeeting) -> Result<ProvisionedMeeting, ProviderError> {
    let clean =
        |text: &str| !text.is_empty() && text.len() <= 200 && !text.chars().any(char::is_control);
    if meetline_domain::types::provider_url(&meeting.join_url).is_ok()
        && clean(&meeting.meeting_id)
        && meeting.password.as_deref().is_none_or(clean)
    {
        Ok(meeting)
    } else {
        tracing::warn!("a provider answered with an unusable meeting (join URL or id)");
        Err(ProviderError::InvalidAnswer)
    }
}

/// The conference as of position `at` (inclusive) and as it is now.
fn views(
    history: &[RecordedEvent],
    at: Position,
) -> (Option<ConferenceView>, Option<ConferenceView>) {
    let line = |line: &LineId| LineRef {
        id: line.clone(),
        name: line.to_string(),
        provider: "unknown".to_owned(),
    };
    let then = ConferenceView::fold(
        history
            .iter()
            .filter(|e| e.position <= at)
            .map(|e| &e.event),
        line,
    );
    let now = ConferenceView::fold(history.iter().map(|e| &e.event), line);
    (then, now)
}

/// The lines the conference had meetings provisioned on before `before`, in order.
fn provisioned_lines(
    history: &[RecordedEvent],
    before: Position,
) -> impl Iterator<Item = LineId> + '_ {
    history
        .iter()
        .filter(move |e| e.position < before)
        .filter_map(|e| match &e.event {
            Event::ConferenceProvisioned { line, .. } => Some(line.clone()),
            _ => None,
        })
}

/// The last meeting provisioned for the conference on `line` before `before`, if any.
fn meeting_on(history: &[RecordedEvent], line: &LineId, before: Position) -> Option<String> {
    history
        .iter()
        .filter(|e| e.position < before)
        .filter_map(|e| match &e.event {
            Event::ConferenceProvisioned {
                line: on,
                meeting_id,
                ..
            } if on == line => Some(meeting_id.clone()),
            _ => None,
        })
        .next_back()
}

/// Whether the event right before `before` is the provider's own report of the meeting's end
/// (so the early end came from the provider).
fn reported_by_provider(history: &[RecordedEvent], before: Position) -> bool {
    history
        .iter()
        .rev()
        .find(|e| e.position < before)
        .is_some_and(|e| matches!(e.event, Event::ProviderMeetingEnded { .. }))
}

fn request(view: &ConferenceView) -> MeetingRequest {
    MeetingRequest {
        reference: view.id.to_string(),
        topic: view.subject.as_str().to_owned(),
        start: view.slot.start,
        duration_minutes: ((view.slot.end - view.slot.start).num_seconds() + 59) / 60,
        timezone: view.timezone.as_str().to_owned(),
    }
}
