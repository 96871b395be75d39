//! The command service: one writer task per tenant pool holds the warm `LinePool`, decides the
//! commands queued to it in batches (up to [`MAX_BATCH`]) against the evolving state, and appends
//! all of a batch's events in **one** append with the expected version — group commit: one fsync
//! serves many commands.
//!
//! While a batch's append is in flight, the commands that arrive are decided on the state it
//! leaves (pipelining, decision 0017); their append follows as soon as it is durable.
//!
//! Another process may have appended to the same stream: the append then fails with a version
//! conflict, the writer takes the batch back (its journal), reads the events it missed and
//! re-decides, backing off exponentially (`backon`) — decision 0014. Correctness never depends
//! on which node gets a command.
//!
//! Idempotency: a command with an `Idempotency-Key` gets a command id derived from the tenant,
//! user and key. The id is stored with its events, so a retry — even after a crash or on another
//! node — finds what the first attempt appended and returns that outcome instead of deciding
//! again. Rejections with a key are remembered in memory for 24 h.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use meetline_api_common::Metrics;
use meetline_domain::event::{EVENT_SCHEMA_VERSION, Event};
use meetline_domain::pool::{Conference, LinePool};
use meetline_domain::ports::{
    EventMetadata, EventStore, NewEvent, Position, Snapshot, StoreError, pool_stream,
};
use meetline_domain::types::{Actor, ConferenceId, LineId, ProviderKind, TenantId, TimeSlot};
use meetline_domain::{Command, DomainError, SeriesConflict};
use meetline_projections::view::{ConferenceView, LineRef};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// The most commands one append carries.
pub const MAX_BATCH: usize = 64;
/// How long an idempotency key is honoured.
pub const IDEMPOTENCY_WINDOW: chrono::Duration = chrono::Duration::hours(24);
/// The snapshot schema; a stored snapshot of another schema is ignored and the stream replayed.
/// 5: postcard of the pool whose conferences carry their series; 4: … whose provisioned meetings carry their code; 3: postcard (binary) of the pool (`LinePool::to_snapshot`); 2 was JSON of the same state, 1
/// JSON of the pool before it closed its books.
pub const SNAPSHOT_SCHEMA: u32 = 5;
const STREAM_PAGE: usize = 5000;
/// How many occurrences of a series refusal (or of those a series left out) get suggestions:
/// each costs a search of the pool on the tenant's writer, and a series has up to 100.
pub const SUGGESTED_OCCURRENCES: usize = 5;
/// Commands one pool may have waiting; requests beyond it are refused (429), not queued. (The
/// writer also holds the batch it is deciding while an append is in flight: at most
/// [`MAX_BATCH`] more.)
pub const QUEUE_DEPTH: usize = 4096;

/// One command to decide, with who asks and when.
#[derive(Debug, Clone)]
pub struct Submission {
    pub tenant: TenantId,
    pub actor: Actor,
    pub command: Command,
    /// From the `Idempotency-Key`, or random.
    pub command_id: Uuid,
    /// Whether `command_id` came from a key (only those are looked up).
    pub idempotent: bool,
    pub correlation_id: Uuid,
    /// The decision instant (the first attempt's, kept across retries).
    pub now: DateTime<Utc>,
}

impl Submission {
    /// The metadata of the events this command stores.
    fn metadata(&self) -> EventMetadata {
        EventMetadata {
            event_id: Uuid::now_v7(),
            command_id: self.command_id,
            correlation_id: self.correlation_id,
            causation_id: None,
            actor: self.actor.user.to_string(),
            recorded_at: self.now,
            schema_version: EVENT_SCHEMA_VERSION,
        }
    }

    pub fn new(tenant: TenantId, actor: Actor, command: Command, now: DateTime<Utc>) -> Self {
        let id = Uuid::now_v7();
        Self {
            tenant,
            actor,
            command,
            command_id: id,
            idempotent: false,
            correlation_id: id,
            now,
        }
    }

    /// Derives the command id from an `Idempotency-Key`: same tenant, user, kind of command and
    /// key → same id. (A key reused for another kind of command is another command.)
    pub fn with_idempotency_key(mut self, key: &str) -> Self {
        let name = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{key}",
            self.tenant,
            self.actor.user,
            self.command.kind()
        );
        let id = Uuid::new_v5(&Uuid::NAMESPACE_URL, name.as_bytes());
        // The correlation id follows the command id unless it was given (a request id).
        if self.correlation_id == self.command_id {
            self.correlation_id = id;
        }
        self.command_id = id;
        self.idempotent = true;
        self
    }

    /// Correlates the command's events with `id` (the HTTP request's id).
    pub fn correlated_with(mut self, id: Uuid) -> Self {
        self.correlation_id = id;
        self
    }
}

/// A line as the pool holds it after a line command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineState {
    pub id: LineId,
    pub name: String,
    pub provider: ProviderKind,
    pub status: String,
}

impl LineState {
    fn of(line: &meetline_domain::pool::Line) -> Self {
        Self {
            id: line.id.clone(),
            name: line.name.as_str().to_owned(),
            provider: line.provider,
            status: line.status.as_str().to_owned(),
        }
    }
}

/// What a decided command led to.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The conference it concerned, as it is now.
    pub conference: Option<ConferenceView>,
    /// The line it concerned (line commands), as it is now; `None` once removed.
    pub line: Option<LineState>,
    /// The events this command appended (empty for a no-op or a replay).
    pub events: Vec<Event>,
    /// The global position of its last event (or the head, when it appended none).
    pub position: Position,
    /// A repeated `Idempotency-Key`: the first outcome, nothing decided again.
    pub replayed: bool,
    /// A series command's conferences, in the series' order (empty for other commands). For a
    /// replayed one: the series' conferences the pool holds now.
    pub series: Vec<ConferenceView>,
    /// The occurrences a series booked with `skip` left out, with the nearest free times.
    pub skipped: Vec<SeriesConflict>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// The pool's queue is full: the command was not taken (HTTP callers get 429).
    #[error("the pool's command queue is full")]
    Busy,
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

struct Job {
    submission: Submission,
    reply: oneshot::Sender<Result<Outcome, CommandError>>,
}

/// How the service is tuned.
#[derive(Debug, Clone, Copy)]
pub struct ServiceConfig {
    /// Save a snapshot each time the stream grows by this many events.
    pub snapshot_every: u64,
    /// How many times a batch is re-decided after version conflicts or store failures.
    pub max_retries: usize,
    /// How far ahead a suggested free time may start (the booking horizon).
    pub booking_horizon: chrono::Duration,
    /// Commands one pool may have waiting (see [`QUEUE_DEPTH`]).
    pub queue_depth: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            snapshot_every: 2000,
            max_retries: 12,
            booking_horizon: chrono::Duration::days(730),
            queue_depth: QUEUE_DEPTH,
        }
    }
}

struct Shared {
    store: Arc<dyn EventStore>,
    metrics: Arc<Metrics>,
    config: ServiceConfig,
}

/// Routes each submission to its tenant's writer, starting writers on demand.
#[derive(Clone)]
pub struct CommandService {
    shared: Arc<Shared>,
    writers: Arc<Mutex<HashMap<TenantId, mpsc::Sender<Job>>>>,
}

impl CommandService {
    pub fn new(store: Arc<dyn EventStore>, metrics: Arc<Metrics>, config: ServiceConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                metrics,
                config,
            }),
            writers: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.shared.store
    }

    /// Decides one command and waits until its events are durable, waiting for room when the
    /// pool's queue is full (for the background processes).
    ///
    /// # Errors
    /// The domain's rejection, or `Unavailable` when the store failed after every retry.
    pub async fn execute(&self, submission: Submission) -> Result<Outcome, CommandError> {
        self.run(submission, true).await
    }

    /// As [`Self::execute`], but refuses with `Busy` at once when the pool already has its
    /// queue's depth of commands waiting ([`QUEUE_DEPTH`] unless configured): requests shed
    /// load instead of queueing without end.
    ///
    /// # Errors
    /// As [`Self::execute`], and `Busy`.
    pub async fn execute_unless_busy(
        &self,
        submission: Submission,
    ) -> Result<Outcome, CommandError> {
        self.run(submission, false).await
    }

    #[tracing::instrument(name = "command", skip_all, fields(
        tenant = %submission.tenant,
        command = submission.command.kind(),
        correlation = %submission.correlation_id,
    ))]
    async fn run(&self, submission: Submission, wait: bool) -> Result<Outcome, CommandError> {
        let kind = submission.command.kind();
        let result = self.enqueue_and_wait(submission, wait).await;
        let label = match &result {
            Ok(outcome) if outcome.replayed => "replayed",
            Ok(_) => "accepted",
            Err(CommandError::Domain(DomainError::NoFreeLine { .. })) => "no_free_line",
            Err(CommandError::Domain(_)) => "rejected",
            Err(CommandError::Unavailable(_)) => "unavailable",
            Err(CommandError::Busy) => "busy",
        };
        self.shared.metrics.command(kind, label);
        result
    }

    async fn enqueue_and_wait(
        &self,
        submission: Submission,
        wait: bool,
    ) -> Result<Outcome, CommandError> {
        let tenant = submission.tenant.clone();
        let (reply, answer) = oneshot::channel();
        let mut job = Job { submission, reply };
        for attempt in 0..2 {
            let sender = self.writer(&tenant);
            // `Err(None)`: the queue is full; `Err(Some(job))`: the writer is gone.
            let sent = if wait {
                sender.send(job).await.map_err(|error| Some(error.0))
            } else {
                sender.try_send(job).map_err(|error| match error {
                    mpsc::error::TrySendError::Full(_) => None,
                    mpsc::error::TrySendError::Closed(job) => Some(job),
                })
            };
            match sent {
                Ok(()) => break,
                Err(None) => return Err(CommandError::Busy),
                Err(Some(returned)) if attempt == 0 => {
                    // The writer ended (it only does after a panic): start a fresh one once.
                    self.writers.lock().expect("writers lock").remove(&tenant);
                    job = returned;
                }
                Err(Some(_)) => {
                    return Err(CommandError::Unavailable("writer stopped".to_owned()));
                }
            }
        }
        answer
            .await
            .unwrap_or_else(|_| Err(CommandError::Unavailable("writer stopped".to_owned())))
    }

    fn writer(&self, tenant: &TenantId) -> mpsc::Sender<Job> {
        let mut writers = self.writers.lock().expect("writers lock");
        writers
            .entry(tenant.clone())
            .or_insert_with(|| {
                let (sender, receiver) = mpsc::channel(self.shared.config.queue_depth.max(1));
                let writer = Writer::new(self.shared.clone(), tenant.clone());
                tokio::spawn(writer.run(receiver));
                sender
            })
            .clone()
    }
}

/// Loads a pool: the newest snapshot, then the events after it, page by page.
///
/// # Errors
/// When the store fails.
pub async fn load_pool(store: &dyn EventStore, stream: &str) -> Result<LinePool, StoreError> {
    Ok(load_pool_and_snapshot(store, stream).await?.0)
}

/// As [`load_pool`], and the version of the snapshot it started from (0: none was usable — one
/// of another schema, say, after an upgrade; the writer then saves one at its next append).
async fn load_pool_and_snapshot(
    store: &dyn EventStore,
    stream: &str,
) -> Result<(LinePool, u64), StoreError> {
    let mut pool = match store.load_snapshot(stream).await? {
        Some(snapshot) if snapshot.schema == SNAPSHOT_SCHEMA => {
            match LinePool::from_snapshot(&snapshot.data) {
                Ok(pool) if pool.version == snapshot.version => pool,
                _ => {
                    tracing::warn!(
                        stream,
                        "ignoring an unreadable snapshot; replaying the stream"
                    );
                    LinePool::default()
                }
            }
        }
        _ => LinePool::default(),
    };
    let from = pool.version;
    catch_up(store, stream, &mut pool).await?;
    Ok((pool, from))
}

/// Applies the events `store` holds after `pool`'s version, page by page. The next page is
/// asked for before the current one is applied, so the store (the database server, SQLite's
/// worker thread) reads it while this task folds.
///
/// # Errors
/// When the store fails; `pool` then holds a prefix of the stream, as stored.
async fn catch_up(
    store: &dyn EventStore,
    stream: &str,
    pool: &mut LinePool,
) -> Result<(), StoreError> {
    let mut page = store
        .read_stream_events(stream, pool.version, STREAM_PAGE)
        .await?;
    loop {
        if page.len() < STREAM_PAGE {
            for event in &page {
                pool.apply(event);
            }
            return Ok(());
        }
        // Versions are dense: the next page starts right after this one.
        let next = pool.version + page.len() as u64;
        let mut reading = std::pin::pin!(store.read_stream_events(stream, next, STREAM_PAGE));
        // Start the read (one poll sends it), fold this page meanwhile, then take the next.
        let started = poll_once(reading.as_mut()).await;
        for event in &page {
            pool.apply(event);
        }
        page = match started {
            Some(done) => done?,
            None => reading.await?,
        };
    }
}

/// Polls `future` once: its output if it was ready at once, `None` if it is under way.
async fn poll_once<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
    let mut future = future;
    std::future::poll_fn(|context| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(context) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// Takes the jobs already queued (none is waited for), up to a batch.
fn take_waiting(receiver: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
    while jobs.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
}

/// Fills in the positions of answers built before their batch was stored ([`Writer::finish`]).
fn place(
    results: &mut [Result<Outcome, CommandError>],
    decided: &Decided,
    positions: &[Position],
    head: Position,
) {
    for (result, decision) in results.iter_mut().zip(&decided.decisions) {
        if let (Ok(outcome), Decision::Accepted { from, to, .. }) = (result, decision) {
            outcome.position = if to > from {
                positions.get(*to - 1).copied().unwrap_or(head)
            } else {
                head
            };
        }
    }
}

/// A conference of the pool as the read side names it.
fn view(pool: &LinePool, conference: Conference) -> ConferenceView {
    conference.with_line(|tag| {
        pool.line(&tag.id)
            .map_or_else(|| LineRef::unknown(&tag.id), LineRef::of)
    })
}

/// The conferences of `conference`'s series the pool holds, in the series' order.
fn series_now(pool: &LinePool, conference: Option<&ConferenceView>) -> Vec<ConferenceView> {
    let Some(id) = conference
        .and_then(|view| view.series.as_ref())
        .map(|link| link.id)
    else {
        return Vec::new();
    };
    let mut held: Vec<ConferenceView> = pool
        .conferences
        .values()
        .filter(|held| held.series.as_ref().is_some_and(|link| link.id == id))
        .cloned()
        .map(|held| view(pool, held))
        .collect();
    held.sort_by_key(|view| view.series.as_ref().map(|link| link.occurrence));
    held
}

/// Sends each job its answer.
fn answer(jobs: Vec<Job>, results: Vec<Result<Outcome, CommandError>>) {
    for (job, result) in jobs.into_iter().zip(results) {
        let _ = job.reply.send(result);
    }
}

/// A batch decided on the warm pool (its events applied there, journaled), not yet stored.
struct Decided {
    decisions: Vec<Decision>,
    events: Vec<NewEvent>,
    /// The stream version the batch was decided on: its append's expected version.
    base_version: u64,
}

impl Decided {
    /// An empty batch, to be decided on `pool` as it is now.
    fn on(pool: &LinePool) -> Self {
        Self {
            decisions: Vec::new(),
            events: Vec::new(),
            base_version: pool.version,
        }
    }
}

/// Decides `jobs` one after another on `pool`, applying each accepted command's events so the
/// next sees them, and adds them to `decided`. `replays` (by index in `jobs`) are the jobs
/// settled by an earlier outcome; `recalled` the closed conferences they name, as read back from
/// the store. No I/O.
fn decide_into(
    pool: &mut LinePool,
    decided: &mut Decided,
    jobs: &[Job],
    mut replays: HashMap<usize, Decision>,
    mut recalled: HashMap<ConferenceId, Conference>,
) {
    let Decided {
        decisions, events, ..
    } = decided;
    for (index, job) in jobs.iter().enumerate() {
        if let Some(replay) = replays.remove(&index) {
            decisions.push(replay);
            continue;
        }
        let submission = &job.submission;
        let target = match &submission.command {
            // Joining a conference one already takes part in appends nothing: find it.
            Command::JoinConference { number } => pool
                .conference_by_number(number)
                .map(|conference| conference.id),
            command => command.existing_conference(),
        };
        let closed = target.and_then(|id| recalled.get(&id));
        match pool.decide(
            &submission.actor,
            &submission.command,
            submission.now,
            closed,
        ) {
            Ok(decided) => {
                let mut conference = target
                    .and_then(|id| pool.conference(&id).or(closed))
                    .cloned();
                let from = events.len();
                // A series command's answer lists every conference it touched, folded the same way.
                let mut series: Vec<Conference> = Vec::new();
                if submission.command.is_series() {
                    for event in &decided {
                        let Some(id) = event.conference() else {
                            continue;
                        };
                        match series.iter_mut().find(|held| held.id == id) {
                            Some(held) => held.apply(event, |line| pool.line_tag(line)),
                            None => {
                                if let Some(held) = pool.conference(&id).or(closed) {
                                    let mut held = held.clone();
                                    held.apply(event, |line| pool.line_tag(line));
                                    series.push(held);
                                } else if let Event::ConferenceScheduled { line, .. } = event
                                    && let Some(new) =
                                        Conference::scheduled(event, pool.line_tag(line))
                                {
                                    series.push(new);
                                }
                            }
                        }
                    }
                }
                for event in decided {
                    match &mut conference {
                        Some(conference) => {
                            conference.apply(&event, |line| pool.line_tag(line));
                        }
                        None => {
                            conference = match &event {
                                Event::ConferenceScheduled { line, .. } => {
                                    Conference::scheduled(&event, pool.line_tag(line))
                                }
                                _ => None,
                            };
                        }
                    }
                    pool.apply(&event);
                    events.push(NewEvent {
                        metadata: submission.metadata(),
                        event,
                    });
                }
                // Closed by this command: later ones of the batch find it here, as they would
                // have found it recalled from the store.
                if let Some(closed) = conference.as_ref().filter(|c| c.is_closed()) {
                    recalled.insert(closed.id, closed.clone());
                }
                decisions.push(Decision::Accepted {
                    from,
                    to: events.len(),
                    conference: conference.map(Box::new),
                    series,
                });
            }
            Err(error) => {
                // Demand no line could serve is a business fact: stored with the batch.
                for event in LinePool::refusal_record(&submission.command, &error, submission.now) {
                    pool.apply(&event);
                    events.push(NewEvent {
                        metadata: submission.metadata(),
                        event,
                    });
                }
                decisions.push(Decision::Rejected(error));
            }
        }
    }
}

/// What the batch decided for one job.
enum Decision {
    /// Accepted: its events are `events[range]` of the batch; `conference` is the one it
    /// concerned as its events left it (folded on the spot: the pool lets closed ones go).
    Accepted {
        from: usize,
        to: usize,
        conference: Option<Box<Conference>>,
        /// A series command's conferences, each as its events left it (empty for the others).
        series: Vec<Conference>,
    },
    Rejected(DomainError),
    /// A repeated key whose first outcome was this rejection: answered the same, counted once.
    RejectedBefore(DomainError),
    /// A repeated key whose first outcome is in the store.
    Replayed {
        conference: Option<ConferenceId>,
        /// The line an `AddLine` added (the command names none).
        line: Option<LineId>,
        position: Position,
    },
    /// A repeated key within this very batch: the outcome of job `index`.
    SameAs(usize),
}

struct Writer {
    shared: Arc<Shared>,
    tenant: TenantId,
    stream: String,
    pool: Option<LinePool>,
    /// Whether the store may hold events of the stream the warm pool has not seen (an append
    /// failed: a conflict, or a failure that may have stored it): the next batch reads them first.
    behind: bool,
    /// Whether an append of the batch being processed failed in a way that may have stored it
    /// after all (not a conflict): its commands are then looked up by their ids before they are
    /// decided again. A new batch starts certain (its commands were never appended).
    uncertain: bool,
    last_snapshot: u64,
    /// Keyed rejections: command id → (error, when).
    rejections: HashMap<Uuid, (DomainError, DateTime<Utc>)>,
}

impl Writer {
    fn new(shared: Arc<Shared>, tenant: TenantId) -> Self {
        let stream = pool_stream(&tenant);
        Self {
            shared,
            tenant,
            stream,
            pool: None,
            behind: false,
            uncertain: false,
            last_snapshot: 0,
            rejections: HashMap::new(),
        }
    }

    async fn run(mut self, mut receiver: mpsc::Receiver<Job>) {
        let mut carried: Option<Vec<Job>> = None;
        loop {
            let jobs = match carried.take() {
                Some(jobs) => jobs,
                None => {
                    let Some(first) = receiver.recv().await else {
                        return;
                    };
                    let mut jobs = vec![first];
                    take_waiting(&mut receiver, &mut jobs);
                    jobs
                }
            };
            self.shared.metrics.batch_size.observe(jobs.len() as f64);
            carried = self.pipeline(jobs, &mut receiver).await;
        }
    }

    /// Whether `jobs` can be decided on the warm pool without the store: no key to look up, no
    /// conference to recall, no doubt about an earlier append — so the writer may decide them
    /// while an earlier batch's append is in flight.
    fn decidable_alone(&self, jobs: &[Job]) -> bool {
        let Some(pool) = &self.pool else {
            return false;
        };
        !self.behind
            && !self.uncertain
            && jobs.iter().all(|job| {
                !job.submission.idempotent
                    && job
                        .submission
                        .command
                        .existing_conference()
                        .is_none_or(|id| pool.conference(&id).is_some())
            })
    }

    /// Decides and stores `jobs`, **pipelined**: while their append is in flight, the commands
    /// that arrive are taken from the queue and, as long as each can be decided without the
    /// store ([`Self::decidable_alone`]), decided at once on the state `jobs` leave — they form
    /// the next batch, whose append starts as soon as this one is durable, and so on. Nobody is
    /// answered before their events are durable. Appends go one after another: a later batch is
    /// never sent before the earlier one is stored (had the earlier failed, the later could land
    /// on a stream another writer moved by as many events). When an append fails, every batch
    /// decided on it is taken back and decided again ([`Self::process`]). A cold pool, keys,
    /// recalls and doubt go through `process` directly. Returns commands taken from the queue and
    /// not decided.
    #[tracing::instrument(level = "debug", skip_all, fields(tenant = %self.tenant, batch = jobs.len()))]
    async fn pipeline(
        &mut self,
        jobs: Vec<Job>,
        receiver: &mut mpsc::Receiver<Job>,
    ) -> Option<Vec<Job>> {
        if !self.decidable_alone(&jobs) {
            self.process(jobs, false).await;
            return None;
        }
        let pool = self.pool.as_mut().expect("decidable alone: loaded");
        pool.begin();
        let mut decided = Decided::on(pool);
        decide_into(pool, &mut decided, &jobs, HashMap::new(), HashMap::new());
        let mut current = (jobs, decided);
        loop {
            let (jobs, decided) = current;
            if decided.events.is_empty() {
                // Nothing to store: the answers wait for nothing but the head.
                self.pool.as_mut().expect("loaded").commit();
                match self.shared.store.head_position().await {
                    Ok(head) => {
                        let results = self.finish(&jobs, &decided, &[], head).await;
                        self.note_rejections(&jobs, &decided);
                        answer(jobs, results);
                        self.maybe_snapshot();
                    }
                    Err(_) => self.process(jobs, false).await,
                }
                return None;
            }
            // What the answers show is taken from the pool as this batch leaves it — before
            // anything is decided on top of it. So is a snapshot, when the writer has been busy
            // so long that it is overdue (copying the pool is on this path: a snapshot is
            // otherwise taken when the pipeline drains, as `process` does after each batch).
            let mut results = self.finish(&jobs, &decided, &[], 0).await;
            let version = decided.base_version + decided.events.len() as u64;
            let snapshot = self
                .snapshot_overdue(version)
                .then(|| self.pool.clone())
                .flatten();
            let (store, stream) = (self.shared.store.clone(), self.stream.clone());
            let started = Instant::now();
            let mark = self.pool.as_ref().and_then(LinePool::mark);
            // Meanwhile: the commands that arrive, decided in order on the state this batch
            // leaves, until one cannot be decided without the store.
            let mut waiting: Vec<Job> = Vec::new();
            let mut next: Option<Decided> = None;
            let mut deciding = true;
            let appended = {
                let mut append =
                    std::pin::pin!(store.append(&stream, decided.base_version, &decided.events));
                loop {
                    tokio::select! {
                        biased;
                        appended = &mut append => break appended,
                        job = receiver.recv(), if waiting.len() < MAX_BATCH => {
                            let Some(job) = job else { break append.await };
                            deciding = deciding && self.decidable_alone(std::slice::from_ref(&job));
                            if deciding {
                                let pool = self.pool.as_mut().expect("loaded");
                                let next = next.get_or_insert_with(|| Decided::on(pool));
                                decide_into(pool, next, std::slice::from_ref(&job), HashMap::new(), HashMap::new());
                            }
                            waiting.push(job);
                        }
                    }
                }
            };
            match appended {
                Ok(appended) => {
                    self.shared
                        .metrics
                        .append_seconds
                        .observe(started.elapsed().as_secs_f64());
                    let pool = self.pool.as_mut().expect("loaded");
                    match (mark, &next) {
                        (Some(mark), Some(_)) => pool.commit_through(mark),
                        _ => pool.commit(),
                    }
                    // Some arrived that could not be decided alone: take back those decided
                    // ahead of them, and decide them all in order, the careful way.
                    if next.is_some() && !deciding {
                        pool.rollback();
                        next = None;
                    }
                    let head = appended.positions.last().copied().unwrap_or_default();
                    place(&mut results, &decided, &appended.positions, head);
                    self.note_rejections(&jobs, &decided);
                    answer(jobs, results);
                    if let Some(mut stored) = snapshot {
                        stored.commit();
                        self.save_snapshot(stored);
                    }
                    match next {
                        Some(next) => {
                            self.shared.metrics.pipelined_batches.inc();
                            self.shared.metrics.batch_size.observe(waiting.len() as f64);
                            current = (waiting, next);
                        }
                        None => {
                            self.maybe_snapshot();
                            return (!waiting.is_empty()).then_some(waiting);
                        }
                    }
                }
                Err(error) => {
                    // Every batch decided on events that may not be stored: take them back.
                    // This batch is decided again the careful way (after an uncertain failure,
                    // looked up by id first); those behind it were never sent, and follow.
                    if let Some(pool) = &mut self.pool {
                        pool.rollback();
                    }
                    self.behind = true;
                    let uncertain = !matches!(error, StoreError::Conflict { .. });
                    tracing::debug!(tenant = %self.tenant, %error, "a pipelined append failed; deciding again");
                    self.process(jobs, uncertain).await;
                    return (!waiting.is_empty()).then_some(waiting);
                }
            }
        }
    }

    /// The warm pool, loaded on first use (snapshot and tail) and, after a failed append,
    /// caught up with the events stored since its version: the cost of a conflict is the size
    /// of the gap, not of the history.
    async fn pool(&mut self) -> Result<&mut LinePool, StoreError> {
        match &mut self.pool {
            None => {
                let (loaded, snapshot) =
                    load_pool_and_snapshot(self.shared.store.as_ref(), &self.stream).await?;
                self.last_snapshot = snapshot;
                self.pool = Some(loaded);
                self.behind = false;
            }
            Some(pool) if self.behind => {
                catch_up(self.shared.store.as_ref(), &self.stream, pool).await?;
                self.behind = false;
            }
            Some(_) => {}
        }
        Ok(self.pool.as_mut().expect("loaded"))
    }

    /// Decides and stores `jobs`, answering each.
    ///
    /// A version conflict, or a failure while the store is unreachable, re-decides the same
    /// group after a backoff; when the backoff is spent, every command left is answered
    /// `Unavailable`. A failure while the store **is** reachable (it answers a read) means it
    /// refused this group's events — one poisoned command must not fail the others: the group
    /// is split in halves, each tried on its own, down to the one command, which is answered
    /// `Unavailable` alone after a second try (which spends no backoff). Every failure either
    /// spends backoff, splits a group (at most `2n − 1` groups) or is a single command's one
    /// retry, so the loop ends.
    async fn process(&mut self, jobs: Vec<Job>, uncertain: bool) {
        self.uncertain = uncertain;
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(2))
            .with_max_delay(Duration::from_millis(500))
            .with_max_times(self.shared.config.max_retries)
            .with_jitter()
            .build();
        // Groups still to store, each with how often it failed while the store was reachable.
        let mut pending: std::collections::VecDeque<(Vec<Job>, u32)> =
            std::collections::VecDeque::from([(jobs, 0)]);
        while let Some((group, refusals)) = pending.pop_front() {
            let error = match self.attempt(&group).await {
                Ok(results) => {
                    answer(group, results);
                    continue;
                }
                Err(error) => error,
            };
            // The warm pool holds the batch's events, which were never stored: take them back.
            if let Some(pool) = &mut self.pool {
                pool.rollback();
            }
            // Read what the store holds before deciding again: after a conflict, what another
            // writer stored; after any other failure, perhaps this very batch (a commit whose
            // answer was lost) — then each command is looked up by its id, not decided twice.
            self.behind = true;
            if !matches!(error, StoreError::Conflict { .. }) {
                self.uncertain = true;
            }
            let refused = !matches!(error, StoreError::Conflict { .. })
                && self.shared.store.head_position().await.is_ok();
            if refused {
                tracing::warn!(tenant = %self.tenant, %error, commands = group.len(), "the store refused an append it could take");
                if group.len() > 1 {
                    let mut first = group;
                    let second = first.split_off(first.len() / 2);
                    pending.push_front((second, 0));
                    pending.push_front((first, 0));
                    continue;
                }
                if refusals >= 1 {
                    tracing::error!(tenant = %self.tenant, %error, "the store refuses one command's events; answered alone");
                    self.shared.metrics.poisoned_commands.inc();
                    let failure = CommandError::from(error);
                    for job in group {
                        let _ = job.reply.send(Err(failure.clone()));
                    }
                    continue;
                }
                // One more try of its own, at once: it spends none of the batch's backoff, so
                // however many commands a batch holds that the store refuses, the others are
                // never failed for want of retries.
                pending.push_front((group, 1));
                continue;
            } else if matches!(error, StoreError::Conflict { .. }) {
                tracing::debug!(tenant = %self.tenant, %error, "conflict; re-deciding the batch");
            } else {
                tracing::warn!(tenant = %self.tenant, %error, "store failure; retrying the batch");
            }
            let Some(delay) = backoff.next() else {
                tracing::error!(tenant = %self.tenant, %error, "giving up on a batch");
                let failure = CommandError::from(error);
                for job in group
                    .into_iter()
                    .chain(pending.drain(..).flat_map(|(jobs, _)| jobs))
                {
                    let _ = job.reply.send(Err(failure.clone()));
                }
                return;
            };
            tokio::time::sleep(delay).await;
            pending.push_front((group, refusals));
        }
    }

    /// Decides and appends one batch. On `Err` nothing was stored and the pool still holds the
    /// batch's events, journaled: the caller takes them back (`rollback`).
    #[tracing::instrument(level = "debug", skip_all, fields(tenant = %self.tenant, batch = jobs.len()))]
    async fn attempt(
        &mut self,
        jobs: &[Job],
    ) -> Result<Vec<Result<Outcome, CommandError>>, StoreError> {
        let store = self.shared.store.clone();
        let stream = self.stream.clone();
        let oldest_rejection = jobs
            .iter()
            .map(|job| job.submission.now)
            .min()
            .unwrap_or_default()
            - IDEMPOTENCY_WINDOW;
        self.rejections.retain(|_, (_, at)| *at >= oldest_rejection);

        let mut batch_keys: HashMap<Uuid, usize> = HashMap::new();
        // Look up repeated keys before touching the pool (I/O), then decide without I/O.
        let mut replays: HashMap<usize, Decision> = HashMap::new();
        for (index, job) in jobs.iter().enumerate() {
            let submission = &job.submission;
            if submission.idempotent {
                if let Some(&first) = batch_keys.get(&submission.command_id) {
                    replays.insert(index, Decision::SameAs(first));
                    continue;
                }
                batch_keys.insert(submission.command_id, index);
                if let Some((error, _)) = self.rejections.get(&submission.command_id) {
                    replays.insert(index, Decision::RejectedBefore(error.clone()));
                    continue;
                }
            } else if !self.uncertain {
                continue;
            }
            if let Some(record) = store.find_command(&stream, submission.command_id).await?
                && record.recorded_at >= submission.now - IDEMPOTENCY_WINDOW
            {
                // A series booked with `skip` stored its refused occurrences beside the ones it
                // booked: it was accepted.
                let accepted_series = matches!(submission.command, Command::ScheduleSeries(_))
                    && record.conference.is_some();
                if let Some(&first) = record.refused.first().filter(|_| !accepted_series) {
                    let error = if submission.command.is_series() {
                        DomainError::SeriesUnbookable {
                            conflicts: record
                                .refused
                                .iter()
                                .map(|slot| SeriesConflict {
                                    slot: *slot,
                                    suggestions: Vec::new(),
                                })
                                .collect(),
                        }
                    } else {
                        DomainError::no_free_line(first)
                    };
                    replays.insert(index, Decision::RejectedBefore(error));
                    continue;
                }
                replays.insert(
                    index,
                    Decision::Replayed {
                        conference: record.conference,
                        line: record.line,
                        position: record.last_position,
                    },
                );
            }
        }

        let settled: Vec<bool> = (0..jobs.len())
            .map(|index| replays.contains_key(&index))
            .collect();
        let recalled = self.recall(jobs, &settled).await?;
        let pool = self.pool.as_mut().expect("loaded by recall");
        pool.begin();
        let mut decided = Decided::on(pool);
        decide_into(pool, &mut decided, jobs, replays, recalled);
        let positions = if decided.events.is_empty() {
            Vec::new()
        } else {
            let started = Instant::now();
            let appended = store
                .append(&stream, decided.base_version, &decided.events)
                .await?;
            self.shared
                .metrics
                .append_seconds
                .observe(started.elapsed().as_secs_f64());
            appended.positions
        };
        // Stored (or nothing to store): the batch's events stay in the warm pool.
        self.pool.as_mut().expect("loaded").commit();
        // A command that appended nothing reports the head: waiting for it reads its effects.
        let head = match positions.last() {
            Some(last) => *last,
            None => store.head_position().await?,
        };
        let results = self.finish(jobs, &decided, &positions, head).await;
        self.note_rejections(jobs, &decided);
        if !decided.events.is_empty() {
            self.maybe_snapshot();
        }
        Ok(results)
    }

    /// The answers to a decided batch whose events are durable at `positions` (`head`: the
    /// position a command that appended nothing reports).
    ///
    /// The answers are built from the pool as it is when called (line names, a line command's
    /// line): a pipelined writer calls it before it decides anything on top of the batch.
    /// Positions not known yet (`positions` empty) are filled in by [`place`]. Keyed rejections
    /// and refusals for want of a line are noted by [`Self::note_rejections`], once durable.
    async fn finish(
        &mut self,
        jobs: &[Job],
        decided: &Decided,
        positions: &[Position],
        head: Position,
    ) -> Vec<Result<Outcome, CommandError>> {
        let Decided {
            decisions, events, ..
        } = decided;
        let (store, stream) = (self.shared.store.clone(), self.stream.clone());
        let pool = self.pool.as_ref().expect("loaded");
        let mut results: Vec<Result<Outcome, CommandError>> = Vec::with_capacity(jobs.len());
        for (index, decision) in decisions.iter().enumerate() {
            let submission = &jobs[index].submission;
            let result = match decision {
                Decision::Accepted {
                    from,
                    to,
                    conference,
                    series,
                } => {
                    let own: Vec<Event> = events[*from..*to]
                        .iter()
                        .map(|new| new.event.clone())
                        .collect();
                    let position = if to > from {
                        positions.get(*to - 1).copied().unwrap_or(head)
                    } else {
                        head
                    };
                    let conference = conference.as_deref().cloned();
                    let mut outcome =
                        self.outcome(pool, &submission.command, conference, own, position, false);
                    outcome.series = series
                        .iter()
                        .cloned()
                        .map(|held| view(pool, held))
                        .collect();
                    // In the series' order, whatever order its events were applied in.
                    outcome
                        .series
                        .sort_by_key(|view| view.series.as_ref().map(|link| link.occurrence));
                    outcome.skipped = self.skipped(pool, submission, &outcome.events);
                    Ok(outcome)
                }
                Decision::RejectedBefore(error) | Decision::Rejected(error) => Err(
                    CommandError::Domain(self.answered(pool, submission, error.clone())),
                ),
                Decision::Replayed {
                    conference,
                    line,
                    position,
                } => {
                    // The conference as it is now: held, or (closed since) folded from the store.
                    // The batch may be stored already: a failed read fails this answer alone.
                    let now = match conference.map(|id| (id, pool.conference(&id))) {
                        Some((_, Some(held))) => Some(held.clone()),
                        Some((id, None)) => match store.read_tagged(&stream, id).await {
                            Ok(stored) => {
                                Conference::fold(stored.iter().map(|e| &e.event), |line| {
                                    pool.line_tag(line)
                                })
                            }
                            Err(error) => {
                                results.push(Err(error.into()));
                                continue;
                            }
                        },
                        None => None,
                    };
                    let mut outcome =
                        self.outcome(pool, &submission.command, now, Vec::new(), *position, true);
                    if submission.command.is_series() {
                        outcome.series = series_now(pool, outcome.conference.as_ref());
                        outcome.skipped = self.skipped_since(pool, submission, &outcome.series);
                    }
                    if outcome.line.is_none()
                        && let Some(id) = line
                    {
                        outcome.line = pool.line(id).map(LineState::of);
                    }
                    Ok(outcome)
                }
                Decision::SameAs(first) => match &results[*first] {
                    Ok(outcome) => Ok(Outcome {
                        events: Vec::new(),
                        replayed: true,
                        ..outcome.clone()
                    }),
                    Err(error) => Err(error.clone()),
                },
            };
            results.push(result);
        }
        results
    }

    /// Notes the batch's keyed rejections once it is durable, so a retry gets the same answer
    /// without a look-up. (A refusal for want of a line is also in the log, where a retry after
    /// a restart finds it: [`CommandRecord::refused`].)
    fn note_rejections(&mut self, jobs: &[Job], decided: &Decided) {
        for (job, decision) in jobs.iter().zip(&decided.decisions) {
            let Decision::Rejected(error) = decision else {
                continue;
            };
            let submission = &job.submission;
            if submission.idempotent {
                self.rejections
                    .insert(submission.command_id, (error.clone(), submission.now));
            }
        }
    }

    /// The conferences `jobs` name that the warm pool does not hold, folded from their stored
    /// events: closed ones (the pool let them go), so each is answered as before. A conference
    /// the store has live is one this pool has not seen yet: the pool catches up instead. Loads
    /// the pool (or catches it up) first.
    async fn recall(
        &mut self,
        jobs: &[Job],
        settled: &[bool],
    ) -> Result<HashMap<ConferenceId, Conference>, StoreError> {
        let store = self.shared.store.clone();
        let mut recalled = HashMap::new();
        let missing: Vec<ConferenceId> = {
            let pool = self.pool().await?;
            // Replayed commands decide nothing: their conferences need no recall.
            let mut missing: Vec<ConferenceId> = jobs
                .iter()
                .zip(settled)
                .filter(|(_, settled)| !**settled)
                .filter_map(|(job, _)| job.submission.command.existing_conference())
                .filter(|id| pool.conference(id).is_none())
                .collect();
            missing.sort_unstable();
            missing.dedup();
            missing
        };
        for id in missing {
            let stored = store.read_tagged(&self.stream, id).await?;
            let pool = self.pool.as_ref().expect("loaded above");
            match Conference::fold(stored.iter().map(|e| &e.event), |line| pool.line_tag(line)) {
                Some(conference) if conference.is_closed() => {
                    recalled.insert(id, conference);
                }
                Some(_) => self.behind = true,
                None => {}
            }
        }
        if self.behind {
            self.pool().await?;
        }
        Ok(recalled)
    }

    /// A refusal as its caller gets it: one for want of a line carries the nearest free times
    /// as the pool stands now (the batch's own bookings included), up to the booking horizon.
    fn answered(
        &self,
        pool: &LinePool,
        submission: &Submission,
        error: DomainError,
    ) -> DomainError {
        let edited = submission.command.edited();
        match error {
            DomainError::NoFreeLine { slot, .. } => DomainError::NoFreeLine {
                slot,
                suggestions: pool.suggestions(
                    &slot,
                    edited,
                    submission.now,
                    self.latest(submission),
                ),
            },
            DomainError::SeriesUnbookable { conflicts } => DomainError::SeriesUnbookable {
                conflicts: self.suggested(
                    pool,
                    submission,
                    edited,
                    conflicts.into_iter().map(|conflict| conflict.slot),
                ),
            },
            error => error,
        }
    }

    /// The latest a suggested time may end: the booking horizon from the decision instant.
    fn latest(&self, submission: &Submission) -> DateTime<Utc> {
        submission.now + self.shared.config.booking_horizon
    }

    /// Occurrences no line took, each with the nearest free times as the pool stands now (the
    /// first [`SUGGESTED_OCCURRENCES`] of them: each costs a search of the pool).
    fn suggested(
        &self,
        pool: &LinePool,
        submission: &Submission,
        edited: Option<ConferenceId>,
        slots: impl Iterator<Item = TimeSlot>,
    ) -> Vec<SeriesConflict> {
        let latest = self.latest(submission);
        slots
            .enumerate()
            .map(|(index, slot)| SeriesConflict {
                suggestions: if index < SUGGESTED_OCCURRENCES {
                    pool.suggestions(&slot, edited, submission.now, latest)
                } else {
                    Vec::new()
                },
                slot,
            })
            .collect()
    }

    /// The occurrences a series command left out (its `DemandRefused` events), with the nearest
    /// free times.
    fn skipped(
        &self,
        pool: &LinePool,
        submission: &Submission,
        events: &[Event],
    ) -> Vec<SeriesConflict> {
        if !matches!(submission.command, Command::ScheduleSeries(_)) {
            return Vec::new();
        }
        let refused = events.iter().filter_map(|event| match event {
            Event::DemandRefused { slot, .. } => Some(*slot),
            _ => None,
        });
        self.suggested(pool, submission, None, refused)
    }

    /// For a replayed series booking: the occurrences of its rule that no held conference of
    /// the series stands for (left out then, or cancelled since), as [`Self::skipped`].
    fn skipped_since(
        &self,
        pool: &LinePool,
        submission: &Submission,
        held: &[ConferenceView],
    ) -> Vec<SeriesConflict> {
        if !matches!(submission.command, Command::ScheduleSeries(_)) {
            return Vec::new();
        }
        // The rule as stored with the series, not as this retry's body says.
        let Some(link) = held.iter().find_map(|view| view.series.as_deref()) else {
            return Vec::new();
        };
        let Ok(slots) = link.recurrence.occurrences(&link.first, &link.timezone) else {
            return Vec::new();
        };
        let missing = slots.into_iter().filter(|slot| {
            !held.iter().any(|view| {
                view.series
                    .as_ref()
                    .is_some_and(|other| other.occurrence == slot.start)
            })
        });
        self.suggested(pool, submission, None, missing)
    }

    fn outcome(
        &self,
        pool: &LinePool,
        command: &Command,
        conference: Option<Conference>,
        events: Vec<Event>,
        position: Position,
        replayed: bool,
    ) -> Outcome {
        let mut conference = conference.map(|conference| view(pool, conference));
        if let Some(view) = &mut conference {
            view.links_changed = events.iter().any(|event| {
                matches!(
                    event,
                    Event::ConferenceEdited {
                        links_changed: true,
                        ..
                    }
                )
            });
        }
        let line_id = match command {
            Command::RenameLine { line, .. }
            | Command::StartLineMaintenance { line, .. }
            | Command::EndLineMaintenance { line }
            | Command::RemoveLine { line } => Some(line.clone()),
            Command::AddLine { .. } => events.iter().find_map(|event| match event {
                Event::LineAdded { line, .. } => Some(line.clone()),
                _ => None,
            }),
            _ => None,
        };
        let line = line_id.and_then(|id| pool.line(&id)).map(LineState::of);
        Outcome {
            conference,
            line,
            events,
            position,
            replayed,
            series: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Saves a snapshot off the writer's path once the stream has grown enough.
    fn maybe_snapshot(&mut self) {
        // Never a pool holding events that may not be stored (a batch still being decided).
        let Some(pool) = self.pool.as_ref().filter(|pool| !pool.in_batch()) else {
            return;
        };
        if self.snapshot_due(pool.version) {
            let pool = pool.clone();
            self.save_snapshot(pool);
        }
    }

    /// Whether a pool at `version` is owed a snapshot.
    fn snapshot_due(&self, version: u64) -> bool {
        version
            >= self
                .last_snapshot
                .saturating_add(self.shared.config.snapshot_every)
    }

    /// Whether a pool at `version` is owed a snapshot so long (eight intervals) that a busy
    /// pipeline takes it without waiting to drain.
    fn snapshot_overdue(&self, version: u64) -> bool {
        version
            >= self
                .last_snapshot
                .saturating_add(self.shared.config.snapshot_every.saturating_mul(8))
    }

    /// Encodes and saves `pool` off the writer's path; it must hold only stored events.
    fn save_snapshot(&mut self, pool: LinePool) {
        self.last_snapshot = pool.version;
        let (store, stream) = (self.shared.store.clone(), self.stream.clone());
        tokio::spawn(async move {
            let version = pool.version;
            let data = match tokio::task::spawn_blocking(move || pool.to_snapshot()).await {
                Ok(Ok(data)) => data,
                Ok(Err(error)) => {
                    tracing::error!(%error, stream, "could not encode a snapshot");
                    return;
                }
                Err(_) => return,
            };
            let snapshot = Snapshot {
                version,
                schema: SNAPSHOT_SCHEMA,
                data,
            };
            if let Err(error) = store.save_snapshot(&stream, &snapshot).await {
                tracing::warn!(%error, stream, "could not save a snapshot");
            }
        });
    }
}
