//! The provisioning process: makes an external provider (Zoom, Tencent Meeting…) host what the
//! pool decided.
//!
//! It follows the global log from its own checkpoint, in **lanes**: one conference's events are
//! handled in order, different conferences' at the same time, each line's account taking at most
//! [`PER_LINE`] calls at once — so a provider that hangs holds up only the conferences waiting
//! for it. The checkpoint moves to just before the oldest event not handled yet. After `ConferenceScheduled`, an edit or a
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

use meetline_api_common::{Clock, Metrics};
use meetline_db::Database;
use meetline_domain::Command;
use meetline_domain::conference::{Conference, LineLabel};
use meetline_domain::event::Event;
use meetline_domain::pool::Provisioning;
use meetline_domain::ports::providers::LineProvider;
use meetline_domain::ports::{
    EventStore, MeetingRequest, Position, ProviderError, ProviderRegistry, ProvisionedMeeting,
    RecordedEvent, StoreError, VideoProvider, pool_stream,
};
use meetline_domain::types::{Actor, ConferenceId, LineId, ProviderKind, Status, TenantId};
use meetline_projections::ProcessState;
use meetline_projections::projector::Leadership;
use meetline_projections::view::tenant_of_stream;
use tokio_util::sync::CancellationToken;

use crate::service::{CommandService, Submission};

/// The actor recorded on the process's events.
pub const PROVISIONING_ACTOR: &str = "system.provisioning";
/// Its checkpoint's name (in `rm_checkpoints`).
pub const CHECKPOINT: &str = "provisioning";
const LOCK: i64 = 0x6d6c_7072_6f76_0002;
const BATCH: usize = 200;
/// Events read and not handled yet beyond which no more are read (a provider that hangs for
/// long under a steady stream of bookings must not fill the memory).
const MAX_WAITING: usize = 10_000;
/// How long a lane waits before handling an event again after the store failed (or the line's
/// settings could not be read); doubled at each failure in a row, up to [`MAX_RETRY_AFTER`]: a
/// failure that lasts (settings that need the operator) is not hammered every second.
const RETRY_AFTER: Duration = Duration::from_secs(1);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A conference of a tenant: the events of one lane are handled one after another.
type Lane = (TenantId, ConferenceId);

/// Provider calls one line's account takes at a time.
const PER_LINE: usize = 4;

/// A line's provider, taking at most [`PER_LINE`] calls at a time: one account is one account,
/// and a hanging one ties up only its own calls.
struct Paced {
    inner: Arc<dyn VideoProvider>,
    /// The line's, kept apart from its settings (a provider rebuilt after they change shares
    /// them with the calls still under way).
    permits: Arc<tokio::sync::Semaphore>,
}

impl Paced {
    fn new(inner: Arc<dyn VideoProvider>, permits: Arc<tokio::sync::Semaphore>) -> Self {
        Self { inner, permits }
    }

    async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.permits
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }
}

#[async_trait::async_trait]
impl VideoProvider for Paced {
    async fn create(&self, request: &MeetingRequest) -> Result<ProvisionedMeeting, ProviderError> {
        let _permit = self.permit().await;
        self.inner.create(request).await
    }

    async fn update(
        &self,
        meeting_id: &str,
        request: &MeetingRequest,
    ) -> Result<(), ProviderError> {
        let _permit = self.permit().await;
        self.inner.update(meeting_id, request).await
    }

    async fn delete(&self, meeting_id: &str) -> Result<(), ProviderError> {
        let _permit = self.permit().await;
        self.inner.delete(meeting_id).await
    }

    async fn end(&self, meeting_id: &str) -> Result<(), ProviderError> {
        let _permit = self.permit().await;
        self.inner.end(meeting_id).await
    }

    async fn find_created(
        &self,
        reference: &str,
    ) -> Result<Option<ProvisionedMeeting>, ProviderError> {
        let _permit = self.permit().await;
        self.inner.find_created(reference).await
    }
}

/// The provider of an external line whose settings cannot work: every call is refused for good
/// ([`ProviderError::NotConfigured`]), so a create is recorded as failed and nothing is tried
/// again until an admin stores working settings (later events then reach the provider).
struct Unconfigured;

#[async_trait::async_trait]
impl VideoProvider for Unconfigured {
    async fn create(&self, _: &MeetingRequest) -> Result<ProvisionedMeeting, ProviderError> {
        Err(ProviderError::NotConfigured)
    }

    async fn update(&self, _: &str, _: &MeetingRequest) -> Result<(), ProviderError> {
        Err(ProviderError::NotConfigured)
    }

    async fn delete(&self, _: &str) -> Result<(), ProviderError> {
        Err(ProviderError::NotConfigured)
    }

    async fn end(&self, _: &str) -> Result<(), ProviderError> {
        Err(ProviderError::NotConfigured)
    }

    async fn find_created(&self, _: &str) -> Result<Option<ProvisionedMeeting>, ProviderError> {
        Err(ProviderError::NotConfigured)
    }
}

/// How a lane's task went: its lane, its event, and whether the event was handled.
type Done = (Lane, RecordedEvent, Result<bool, StoreError>);

/// The events being handled and waiting, by lane.
#[derive(Default)]
struct Lanes {
    /// One task per lane that has work.
    running: tokio::task::JoinSet<Done>,
    /// Per lane with a running task, the events behind it.
    queued: HashMap<Lane, std::collections::VecDeque<RecordedEvent>>,
    /// What each running task handles (to try it again if the task panics).
    tasks: HashMap<tokio::task::Id, (Lane, RecordedEvent)>,
    /// The positions of every event read and not handled yet.
    waiting: std::collections::BTreeSet<Position>,
    /// Per lane whose event failed, how many times in a row.
    failures: HashMap<Lane, u32>,
}

impl Lanes {
    fn push(&mut self, process: &Arc<ProvisioningProcess>, lane: Lane, recorded: RecordedEvent) {
        self.waiting.insert(recorded.position);
        match self.queued.get_mut(&lane) {
            Some(behind) => behind.push_back(recorded),
            None => {
                self.queued
                    .insert(lane.clone(), std::collections::VecDeque::new());
                self.start(process, lane, recorded, Duration::ZERO);
            }
        }
    }

    fn start(
        &mut self,
        process: &Arc<ProvisioningProcess>,
        lane: Lane,
        recorded: RecordedEvent,
        after: Duration,
    ) {
        let process = process.clone();
        let task = (lane.clone(), recorded.clone());
        let handle = self.running.spawn(async move {
            tokio::time::sleep(after).await;
            let result = process.handle(&recorded).await;
            (lane, recorded, result)
        });
        self.tasks.insert(handle.id(), task);
    }

    /// A lane's event is handled — or failed (the store, or a panic): it is tried again
    /// later, still first in its lane, unless the process is `stopping` (then it waits in the
    /// checkpoint's keeping for the next start).
    fn finished(
        &mut self,
        process: &Arc<ProvisioningProcess>,
        done: Result<(tokio::task::Id, Done), tokio::task::JoinError>,
        stopping: bool,
    ) {
        let (lane, recorded) = match done {
            Ok((id, (lane, recorded, result))) => {
                self.tasks.remove(&id);
                if let Err(error) = result {
                    let after = self.backoff(&lane);
                    tracing::error!(%error, position = recorded.position, ?after, "provisioning failed; retrying");
                    if !stopping {
                        self.start(process, lane, recorded, after);
                    }
                    return;
                }
                (lane, recorded)
            }
            Err(failed) => {
                let Some((lane, recorded)) = self.tasks.remove(&failed.id()) else {
                    return;
                };
                tracing::error!(
                    position = recorded.position,
                    "a provisioning task failed; retrying"
                );
                if !stopping && !failed.is_cancelled() {
                    let after = self.backoff(&lane);
                    self.start(process, lane, recorded, after);
                }
                return;
            }
        };
        self.failures.remove(&lane);
        self.waiting.remove(&recorded.position);
        let next = self
            .queued
            .get_mut(&lane)
            .and_then(std::collections::VecDeque::pop_front);
        match next {
            Some(next) => self.start(process, lane, next, Duration::ZERO),
            None => {
                self.queued.remove(&lane);
            }
        }
    }

    /// How long `lane` waits before its event is tried again: [`RETRY_AFTER`], doubled at each
    /// failure in a row, at most [`MAX_RETRY_AFTER`].
    fn backoff(&mut self, lane: &Lane) -> Duration {
        let failures = self.failures.entry(lane.clone()).or_default();
        *failures = failures.saturating_add(1);
        RETRY_AFTER
            .saturating_mul(1 << (*failures - 1).min(6))
            .min(MAX_RETRY_AFTER)
    }

    /// The position up to which everything read is handled.
    fn safe_point(&self, read: Position) -> Position {
        self.waiting
            .first()
            .map_or(read, |oldest| oldest.saturating_sub(1))
    }
}

pub struct ProvisioningProcess {
    store: Arc<dyn EventStore>,
    db: Database,
    service: CommandService,
    /// Each external line's provider, built from its settings.
    providers: Arc<dyn ProviderRegistry>,
    process: ProcessState,
    metrics: Arc<Metrics>,
    clock: Clock,
    /// Each line's provider kind, once looked up (a line's kind never changes).
    kinds: tokio::sync::Mutex<HashMap<(TenantId, LineId), ProviderKind>>,
    /// Each external line's calls at a time ([`PER_LINE`]).
    permits: std::sync::Mutex<HashMap<(TenantId, LineId), Arc<tokio::sync::Semaphore>>>,
}

impl ProvisioningProcess {
    pub fn new(
        store: Arc<dyn EventStore>,
        db: Database,
        service: CommandService,
        providers: Arc<dyn ProviderRegistry>,
        process: ProcessState,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Self {
        Self {
            store,
            db,
            service,
            providers,
            process,
            metrics,
            clock,
            kinds: tokio::sync::Mutex::new(HashMap::new()),
            permits: std::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn checkpoint(&self) -> Result<Position, StoreError> {
        self.process.checkpoint(CHECKPOINT).await
    }

    async fn save_checkpoint(&self, position: Position) -> Result<(), StoreError> {
        self.process.save_checkpoint(CHECKPOINT, position).await
    }

    /// A line's provider kind: from the pool; for a line no longer in it (removed), from the
    /// `LineAdded` that made it (read once: a removed line's kind is then kept). A line never
    /// added is builtin (nothing to call).
    async fn kind(&self, tenant: &TenantId, line: &LineId) -> Result<ProviderKind, StoreError> {
        let key = (tenant.clone(), line.clone());
        if let Some(kind) = self.kinds.lock().await.get(&key) {
            return Ok(*kind);
        }
        let stream = pool_stream(tenant);
        let pool = crate::service::load_pool(self.store.as_ref(), &stream).await?;
        let mut kind = pool.line(line).map(|held| held.provider);
        let mut after = 0;
        while kind.is_none() {
            let page = self.store.read_stream_events(&stream, after, BATCH).await?;
            if page.is_empty() {
                break;
            }
            after += page.len() as u64;
            kind = page.into_iter().find_map(|event| match event {
                Event::LineAdded {
                    line: added,
                    provider,
                    ..
                } if added == *line => Some(provider),
                _ => None,
            });
        }
        let kind = kind.unwrap_or(ProviderKind::Builtin);
        self.kinds.lock().await.insert(key, kind);
        Ok(kind)
    }

    /// The provider of an external line, or `None` for a builtin one. An external line whose
    /// settings cannot work gets [`Unconfigured`], which refuses every call for good: a create
    /// is recorded as failed (the line is released) and nothing is retried.
    async fn provider(
        &self,
        tenant: &TenantId,
        line: &LineId,
    ) -> Result<Option<Arc<dyn VideoProvider>>, StoreError> {
        let kind = self.kind(tenant, line).await?;
        let provider = match self.providers.for_line(tenant, line, kind).await? {
            LineProvider::Builtin => return Ok(None),
            LineProvider::Ready(provider) => provider,
            LineProvider::Unusable => {
                tracing::error!(%tenant, %line, "the line's provider settings are missing or unusable");
                return Ok(Some(Arc::new(Unconfigured)));
            }
        };
        let key = (tenant.clone(), line.clone());
        let permits = self
            .permits
            .lock()
            .expect("never poisoned")
            .entry(key.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(PER_LINE)))
            .clone();
        Ok(Some(Arc::new(Paced::new(provider, permits))))
    }

    /// Whether the process has anything to do for `recorded` (tenant and conference), and the
    /// lane it goes in: one conference's events are handled in order, different conferences'
    /// at the same time.
    fn lane_of(recorded: &RecordedEvent, imported: &HashMap<TenantId, Position>) -> Option<Lane> {
        if !matches!(
            recorded.event,
            Event::ConferenceScheduled { .. }
                | Event::ConferenceEdited { .. }
                | Event::ConferenceMovedToLine { .. }
                | Event::ConferenceCancelled { .. }
                | Event::ConferenceEndedEarly { .. }
        ) {
            return None;
        }
        let tenant = tenant_of_stream(&recorded.stream)?;
        // Imported history (`meetline import`) is not provisioned again.
        if imported
            .get(&tenant)
            .is_some_and(|through| recorded.position <= *through)
        {
            return None;
        }
        Some((tenant, recorded.event.conference()?))
    }

    /// Follows the log while this node holds the provisioning lock and `stop` is not
    /// cancelled: each event goes in its conference's lane, lanes run at once (a provider that
    /// hangs holds up only the conferences that wait for it), and the checkpoint moves to just
    /// before the oldest event not handled yet. Returns when the lock is lost or on `stop`,
    /// after the events under way are handled.
    async fn follow(self: &Arc<Self>, held: &mut Leadership, stop: &CancellationToken) {
        let mut lanes = Lanes::default();
        let mut read = loop {
            match self.checkpoint().await {
                Ok(position) => break position,
                Err(error) => {
                    tracing::error!(%error, "cannot read the provisioning checkpoint; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        let mut saved = read;
        let mut last_check = tokio::time::Instant::now();
        while !stop.is_cancelled() {
            if last_check.elapsed() >= Duration::from_millis(500) {
                last_check = tokio::time::Instant::now();
                // A connection that hangs is as good as a lost lock.
                let held_still =
                    tokio::time::timeout(Duration::from_secs(5), held.still_held()).await;
                if !matches!(held_still, Ok(true)) {
                    tracing::warn!("lost the provisioning lock");
                    break;
                }
            }
            while let Some(done) = lanes.running.try_join_next_with_id() {
                lanes.finished(self, done, false);
            }
            // What is new, as long as not too much waits already.
            let mut full = false;
            if lanes.waiting.len() < MAX_WAITING {
                match self.next_batch(read).await {
                    Ok((batch, imported)) => {
                        full = batch.len() == BATCH;
                        for recorded in batch {
                            read = recorded.position;
                            if let Some(lane) = Self::lane_of(&recorded, &imported) {
                                lanes.push(self, lane, recorded);
                            }
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "provisioning cannot read the log; retrying");
                        tokio::select! {
                            () = stop.cancelled() => {}
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        continue;
                    }
                }
            }
            let safe = lanes.safe_point(read);
            if safe > saved && self.save_checkpoint(safe).await.is_ok() {
                saved = safe;
            }
            if full && lanes.waiting.len() < MAX_WAITING {
                continue;
            }
            let room = lanes.waiting.len() < MAX_WAITING;
            tokio::select! {
                () = stop.cancelled() => {}
                Some(done) = lanes.running.join_next_with_id(), if !lanes.running.is_empty() => {
                    lanes.finished(self, done, false);
                }
                // New events only when there is room for them (else: completions, or a pause).
                _ = tokio::time::timeout(Duration::from_millis(500), self.store.wait_for_events(read)), if room => {}
                () = tokio::time::sleep(Duration::from_millis(500)), if !room => {}
            }
            // Every lane that finished meanwhile goes on at once.
            while let Some(done) = lanes.running.try_join_next_with_id() {
                lanes.finished(self, done, false);
            }
        }
        if stop.is_cancelled() {
            // Stopping: what is under way is finished (the server bounds how long); nothing
            // new is started.
            lanes.queued.clear();
            while let Some(done) = lanes.running.join_next_with_id().await {
                lanes.finished(self, done, true);
            }
        } else {
            // The lock is lost: another node handles what is left, from the checkpoint; this
            // one's calls end before the lock is asked for again.
            lanes.running.shutdown().await;
            return;
        }
        let safe = lanes.safe_point(read);
        if safe > saved {
            let _ = self.save_checkpoint(safe).await;
        }
    }

    /// The events after `position` (up to [`BATCH`]), and the tenants' imported history.
    async fn next_batch(
        &self,
        position: Position,
    ) -> Result<(Vec<RecordedEvent>, HashMap<TenantId, Position>), StoreError> {
        let batch = self.store.read_all(position, BATCH).await?;
        let imported = if batch.is_empty() {
            HashMap::new()
        } else {
            self.process.imported_through().await?
        };
        Ok((batch, imported))
    }

    /// Runs until `stop` is cancelled, on the node that holds the provisioning lock.
    pub async fn run(self, stop: CancellationToken) {
        let this = Arc::new(self);
        while !stop.is_cancelled() {
            match Leadership::try_acquire_key(&this.db, LOCK).await {
                Some(mut held) => this.follow(&mut held, &stop).await,
                None => {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
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
                links_changed: true,
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
                let Some(provider) = self.provider(&tenant, &then.line.0).await? else {
                    return Ok(false);
                };
                // Recorded after the cancel, too: a create under way when the conference was
                // cancelled records its meeting later in the log, and it must still go.
                let Some(meeting) = meeting_on(history, &then.line.0, Position::MAX) else {
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
        let moved_on = now.line.0 != *line;
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
                meeting_code: meeting.meeting_code,
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
        let actor = Actor::system(PROVISIONING_ACTOR);
        let submission = Submission::new(tenant.clone(), actor, command, self.clock.now());
        match self.service.execute(submission).await {
            Ok(_) => Ok(true),
            // Refused by the pool: final (trying again gets the same answer), said loudly.
            Err(crate::service::CommandError::Domain(refusal)) => {
                tracing::error!(%tenant, conference = %id, %refusal, "the pool refused to record a provisioning result");
                self.metrics.command("provider_record", "refused");
                Ok(true)
            }
            Err(error) => Err(StoreError::Unavailable(error.to_string())),
        }
    }
}

/// A provider's answer is hostile input too: its join URL goes into `href`s and calendar files.
fn checked_answer(meeting: ProvisionedMeeting) -> Result<ProvisionedMeeting, ProviderError> {
    // The domain's own rules for these fields (`RecordProvisioning` would refuse what they
    // refuse, and a refused record would be tried again for ever).
    let clean = |text: &str| meetline_domain::types::free_text(text, "meeting", 200).is_ok();
    if meetline_domain::types::provider_url(&meeting.join_url).is_ok()
        && clean(&meeting.meeting_id)
        && meeting.password.as_deref().is_none_or(clean)
    {
        // A code that is not a plain number is left out; the meeting itself is good.
        let code_ok = |code: &String| {
            !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_digit())
        };
        Ok(ProvisionedMeeting {
            meeting_code: meeting.meeting_code.filter(code_ok),
            ..meeting
        })
    } else {
        tracing::warn!("a provider answered with an unusable meeting (join URL or id)");
        Err(ProviderError::InvalidAnswer)
    }
}

/// A line as the process sees a conference's: one it makes meetings on. The process acts only
/// on lines whose provider the registry found, so each counts as external (a meeting on it is
/// `Pending` until its result is recorded).
#[derive(Debug, Clone)]
struct Hosted(LineId);

impl LineLabel for Hosted {
    fn id(&self) -> &LineId {
        &self.0
    }

    fn is_external(&self) -> bool {
        true
    }
}

/// A conference as the process folds it.
type Folded = Conference<Hosted>;

/// The conference as of position `at` (inclusive) and as it is now.
fn views(history: &[RecordedEvent], at: Position) -> (Option<Folded>, Option<Folded>) {
    let line = |line: &LineId| Hosted(line.clone());
    let then = Folded::fold(
        history
            .iter()
            .filter(|e| e.position <= at)
            .map(|e| &e.event),
        line,
    );
    let now = Folded::fold(history.iter().map(|e| &e.event), line);
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

fn request(view: &Folded) -> MeetingRequest {
    MeetingRequest {
        reference: view.id.to_string(),
        topic: view.subject.as_str().to_owned(),
        start: view.slot.start,
        duration_minutes: ((view.slot.end - view.slot.start).num_seconds() + 59) / 60,
        timezone: view.timezone.as_str().to_owned(),
    }
}
