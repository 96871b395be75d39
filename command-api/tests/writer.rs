//! The per-pool writer: group commit, conflicts between two writers on one store (two nodes),
//! idempotency across a restart, snapshots, load shedding.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use meetline_adapters::sqlite::{Database, SqliteEventStore};
use meetline_api_common::Metrics;
use meetline_command_api::service::{CommandError, MAX_BATCH, QUEUE_DEPTH, load_pool};
use meetline_command_api::{CommandService, ServiceConfig, Submission};
use meetline_domain::command::{EndSpec, ScheduleConference};
use meetline_domain::ports::{
    Appended, CommandRecord, EventStore, NewEvent, Position, RecordedEvent, Snapshot, StoreError,
    pool_stream,
};
use meetline_domain::*;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn service(store: Arc<dyn EventStore>, snapshot_every: u64) -> CommandService {
    CommandService::new(
        store,
        Arc::new(Metrics::default()),
        ServiceConfig {
            snapshot_every,
            max_retries: 50,
            ..ServiceConfig::default()
        },
    )
}

async fn store() -> Arc<dyn EventStore> {
    Arc::new(
        SqliteEventStore::new(Database::temporary().await.unwrap())
            .await
            .unwrap(),
    )
}

fn schedule(hour: i64) -> Command {
    Command::ScheduleConference(ScheduleConference {
        conference: ConferenceId(Uuid::new_v4()),
        mode: Mode::Scheduled,
        subject: Subject::parse("s").unwrap(),
        start: Some(t0() + Duration::hours(hour)),
        end: EndSpec::After(Duration::minutes(60)),
        timezone: TimeZoneName::default(),
        host: None,
        attendees: vec![],
        related_link: None,
        rooms: RoomNonce::fixed(1),
        numbers: NumberDraw::fixed(hour as u128 + 1_000_000),
    })
}

async fn add_lines(service: &CommandService, count: usize) {
    for n in 0..count {
        let command = Command::AddLine {
            name: LineName::parse(&format!("L{n}")).unwrap(),
            provider: ProviderKind::Builtin,
        };
        service
            .execute(Submission::new(
                tenant(),
                Actor::admin("root"),
                command,
                t0(),
            ))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_store_never_double_book() {
    let store = store().await;
    let node_a = service(store.clone(), 1_000_000);
    let node_b = service(store.clone(), 1_000_000);
    add_lines(&node_a, 3).await;
    let mut tasks = Vec::new();
    for n in 0..120 {
        let node = if n % 2 == 0 {
            node_a.clone()
        } else {
            node_b.clone()
        };
        tasks.push(tokio::spawn(async move {
            node.execute(Submission::new(
                tenant(),
                Actor::user("alice"),
                schedule(10 + (n % 2)),
                t0(),
            ))
            .await
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(CommandError::Domain(DomainError::NoFreeLine { .. })) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    // Two distinct hours, three lines each.
    assert_eq!(accepted, 6);
    let pool = load_pool(store.as_ref(), &pool_stream(&tenant()))
        .await
        .unwrap();
    assert_eq!(pool.conferences.len(), 6);
    // No overlap, the lowest free line, legal transitions: checked by code that is not the pool's.
    let log = store.read_all(0, 100_000).await.unwrap();
    let report = meetline_verify::check(&log, &[]);
    assert!(report.passed(), "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_key_after_a_restart_returns_the_first_outcome() {
    let store = store().await;
    let first_node = service(store.clone(), 1_000_000);
    add_lines(&first_node, 2).await;
    let submit = |node: CommandService| async move {
        let submission = Submission::new(tenant(), Actor::user("alice"), schedule(5), t0())
            .with_idempotency_key("k-1");
        node.execute(submission).await.unwrap()
    };
    let first = submit(first_node).await;
    assert!(!first.replayed);
    // A fresh service (a restarted process) finds the first outcome in the store.
    let again = submit(service(store.clone(), 1_000_000)).await;
    assert!(again.replayed);
    assert_eq!(
        again.conference.as_ref().unwrap().id,
        first.conference.as_ref().unwrap().id
    );
    assert_eq!(again.position, first.position);
    let pool = load_pool(store.as_ref(), &pool_stream(&tenant()))
        .await
        .unwrap();
    assert_eq!(pool.conferences.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_key_on_add_line_returns_the_line_it_added() {
    let store = store().await;
    let add = |node: CommandService| async move {
        let command = Command::AddLine {
            name: LineName::parse("Zoom 1").unwrap(),
            provider: ProviderKind::Builtin,
        };
        let submission = Submission::new(tenant(), Actor::admin("root"), command, t0())
            .with_idempotency_key("k-line");
        node.execute(submission).await.unwrap()
    };
    let node = service(store.clone(), 1_000_000);
    let first = add(node.clone()).await;
    assert!(!first.replayed);
    let line = first.line.clone().expect("the line it added");
    // The same node, then a restarted one: the first outcome, with its line, and no new line.
    for again in [
        add(node).await,
        add(service(store.clone(), 1_000_000)).await,
    ] {
        assert!(again.replayed);
        assert_eq!(again.line.as_ref(), Some(&line));
        assert_eq!(again.position, first.position);
    }
    let pool = load_pool(store.as_ref(), &pool_stream(&tenant()))
        .await
        .unwrap();
    assert_eq!(pool.lines.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_rejection_is_replayed_without_deciding_again() {
    let store = store().await;
    let node = service(store.clone(), 1_000_000);
    add_lines(&node, 1).await;
    node.execute(Submission::new(
        tenant(),
        Actor::user("bob"),
        schedule(5),
        t0(),
    ))
    .await
    .unwrap();
    let keyed = || {
        Submission::new(tenant(), Actor::user("alice"), schedule(5), t0())
            .with_idempotency_key("k-2")
    };
    assert!(matches!(
        node.execute(keyed()).await,
        Err(CommandError::Domain(DomainError::NoFreeLine { .. }))
    ));
    // The line frees up, but the same key still answers with its first outcome.
    let pool = load_pool(store.as_ref(), &pool_stream(&tenant()))
        .await
        .unwrap();
    let booked = *pool.conferences.keys().next().unwrap();
    let cancel = Command::CancelConference {
        conference: booked,
        reason: None,
    };
    node.execute(Submission::new(tenant(), Actor::user("bob"), cancel, t0()))
        .await
        .unwrap();
    assert!(matches!(
        node.execute(keyed()).await,
        Err(CommandError::Domain(DomainError::NoFreeLine { .. }))
    ));
    // The refusal is in the log, once, with the slot asked for and who asked: a node that
    // starts afresh (no memory of it) answers the retry from there, and still books nothing.
    let refusals = |log: &[RecordedEvent]| -> Vec<(TimeSlot, String)> {
        log.iter()
            .filter_map(|recorded| match &recorded.event {
                Event::DemandRefused {
                    slot,
                    edited: None,
                    at,
                } => {
                    assert_eq!(*at, t0());
                    Some((*slot, recorded.metadata.actor.clone()))
                }
                _ => None,
            })
            .collect()
    };
    let log = store.read_all(0, 1000).await.unwrap();
    let asked = TimeSlot::new(t0() + Duration::hours(5), t0() + Duration::hours(6)).unwrap();
    assert_eq!(refusals(&log), vec![(asked, "alice".to_owned())]);
    let restarted = service(store.clone(), 1_000_000);
    match restarted.execute(keyed()).await {
        Err(CommandError::Domain(DomainError::NoFreeLine { slot, .. })) => assert_eq!(slot, asked),
        other => panic!("the retry after a restart got {other:?}"),
    }
    let after = store.read_all(0, 1000).await.unwrap();
    assert_eq!(after.len(), log.len(), "the retry stored nothing");
    // Another key is another command: decided now, on the freed line.
    restarted
        .execute(
            Submission::new(tenant(), Actor::user("alice"), schedule(5), t0())
                .with_idempotency_key("k-3"),
        )
        .await
        .unwrap();
    let report = meetline_verify::check(&store.read_all(0, 1000).await.unwrap(), &[]);
    assert!(report.passed(), "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_saved_and_a_pool_loads_from_them() {
    let store = store().await;
    let node = service(store.clone(), 10);
    add_lines(&node, 2).await;
    for hour in 0..30 {
        node.execute(Submission::new(
            tenant(),
            Actor::user("alice"),
            schedule(hour),
            t0(),
        ))
        .await
        .unwrap();
    }
    let stream = pool_stream(&tenant());
    let mut snapshot = None;
    for _ in 0..100 {
        snapshot = store.load_snapshot(&stream).await.unwrap();
        if snapshot.as_ref().is_some_and(|s| s.version >= 30) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let snapshot = snapshot.expect("a snapshot was saved");
    assert!(snapshot.version >= 30);
    let from_snapshot = load_pool(store.as_ref(), &stream).await.unwrap();
    let events: Vec<Event> = store
        .read_stream(&stream, 0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(from_snapshot, LinePool::from_events(&events));
}

/// A snapshot the writer cannot use (another schema: an upgrade) does not stop it from saving one
/// it can: the first append after loading saves it, not the 2,000th event after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_loaded_without_a_usable_snapshot_saves_one_at_its_next_append() {
    let store = store().await;
    let stream = pool_stream(&tenant());
    let writer = service(store.clone(), 1_000_000);
    add_lines(&writer, 2).await;
    for hour in 0..30 {
        writer
            .execute(Submission::new(
                tenant(),
                Actor::user("alice"),
                schedule(hour),
                t0(),
            ))
            .await
            .unwrap();
    }
    let old = Snapshot {
        version: 32,
        schema: 1,
        data: b"{\"version\":32}".to_vec(),
    };
    store.save_snapshot(&stream, &old).await.unwrap();
    // A fresh node, snapshotting every 20 events: its pool (32 events, none from a snapshot)
    // is due at once.
    let restarted = service(store.clone(), 20);
    restarted
        .execute(Submission::new(
            tenant(),
            Actor::user("alice"),
            schedule(40),
            t0(),
        ))
        .await
        .unwrap();
    let mut saved = None;
    for _ in 0..100 {
        saved = store
            .load_snapshot(&stream)
            .await
            .unwrap()
            .filter(|snapshot| snapshot.version > 32);
        if saved.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let saved = saved.expect("a snapshot in today's schema");
    assert_eq!(saved.schema, meetline_command_api::service::SNAPSHOT_SCHEMA);
    assert_eq!(
        LinePool::from_snapshot(&saved.data).unwrap(),
        load_pool(store.as_ref(), &stream).await.unwrap()
    );
}

/// A store whose appends wait for a permit (holding the writer inside an append), and which
/// refuses any append carrying a conference with the `refused` subject — as PostgreSQL refuses
/// a value its `jsonb` cannot hold — while taking every other.
struct GatedStore {
    inner: Arc<dyn EventStore>,
    gate: Arc<tokio::sync::Semaphore>,
    refused: Option<&'static str>,
    /// While set, the store is unreachable: appends and reads of the head fail.
    down: Arc<std::sync::atomic::AtomicBool>,
}

/// A gated store over `inner` that takes appends as `gate` lets them through (none refused).
fn gated(
    inner: &Arc<dyn EventStore>,
    permits: usize,
) -> (Arc<dyn EventStore>, Arc<tokio::sync::Semaphore>) {
    let gate = Arc::new(tokio::sync::Semaphore::new(permits));
    let store: Arc<dyn EventStore> = Arc::new(GatedStore {
        inner: inner.clone(),
        gate: gate.clone(),
        refused: None,
        down: Arc::default(),
    });
    (store, gate)
}

/// A service on `store` whose metrics the test reads.
fn service_with_metrics(store: Arc<dyn EventStore>) -> (CommandService, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let service = CommandService::new(
        store,
        metrics.clone(),
        ServiceConfig {
            snapshot_every: 1_000_000,
            max_retries: 50,
            ..ServiceConfig::default()
        },
    );
    (service, metrics)
}

impl GatedStore {
    fn is_down(&self) -> bool {
        self.down.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl EventStore for GatedStore {
    async fn append(
        &self,
        stream: &str,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<Appended, StoreError> {
        self.gate.acquire().await.expect("open gate").forget();
        if self.is_down() {
            return Err(StoreError::Unavailable("connection refused".to_owned()));
        }
        let poisoned = events.iter().any(|new| {
            matches!(&new.event, Event::ConferenceScheduled { subject, .. }
                if Some(subject.as_str()) == self.refused)
        });
        if poisoned {
            return Err(StoreError::Unavailable(
                "invalid input syntax for type json".to_owned(),
            ));
        }
        self.inner.append(stream, expected_version, events).await
    }
    async fn read_stream(
        &self,
        stream: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, after_version, limit).await
    }
    async fn read_tagged(
        &self,
        stream: &str,
        conference: ConferenceId,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_tagged(stream, conference).await
    }
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }
    async fn head_position(&self) -> Result<Position, StoreError> {
        if self.is_down() {
            return Err(StoreError::Unavailable("connection refused".to_owned()));
        }
        self.inner.head_position().await
    }
    async fn wait_for_events(&self, after: Position) {
        self.inner.wait_for_events(after).await;
    }
    async fn find_command(
        &self,
        stream: &str,
        command_id: Uuid,
    ) -> Result<Option<CommandRecord>, StoreError> {
        self.inner.find_command(stream, command_id).await
    }
    async fn save_snapshot(&self, stream: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(stream, snapshot).await
    }
    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(stream).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_requests_at_once_and_loses_nothing_it_took() {
    let inner = store().await;
    // One permit: the append that adds the line.
    let gate = Arc::new(tokio::sync::Semaphore::new(1));
    let gated: Arc<dyn EventStore> = Arc::new(GatedStore {
        inner: inner.clone(),
        gate: gate.clone(),
        refused: None,
        down: Arc::default(),
    });
    let node = service(gated, 1_000_000);
    add_lines(&node, 1).await;

    // The writer holds one batch inside a blocked append; the queue fills behind it.
    let taken = MAX_BATCH + QUEUE_DEPTH;
    let mut waiting = tokio::task::JoinSet::new();
    for hour in 0..taken {
        let node = node.clone();
        waiting.spawn(async move {
            node.execute(Submission::new(
                tenant(),
                Actor::user("alice"),
                schedule(i64::try_from(hour).unwrap()),
                t0(),
            ))
            .await
        });
    }
    // Requests are refused once every queued command is in (a request that still found room
    // waits with the others; `execute_unless_busy` never waits for room).
    let mut extra = 0usize;
    let refused = loop {
        let node_for_request = node.clone();
        let request = tokio::spawn(async move {
            node_for_request
                .execute_unless_busy(Submission::new(
                    tenant(),
                    Actor::user("bob"),
                    schedule(100_000 + 1),
                    t0(),
                ))
                .await
        });
        match tokio::time::timeout(std::time::Duration::from_millis(100), request).await {
            Ok(result) => break result.unwrap(),
            Err(_) => {
                extra += 1;
                assert!(extra < 100, "the queue never filled");
            }
        }
    };
    assert!(matches!(refused, Err(CommandError::Busy)), "{refused:?}");

    // Opening the gate decides everything that was taken.
    gate.add_permits(1_000_000);
    let mut accepted = 0;
    while let Some(result) = waiting.join_next().await {
        result.unwrap().expect("a queued command is decided");
        accepted += 1;
    }
    assert_eq!(accepted, taken);
    let stored = inner
        .read_stream(&pool_stream(&tenant()), 0, 100_000)
        .await
        .unwrap();
    let scheduled = stored
        .iter()
        .filter(|recorded| matches!(recorded.event, Event::ConferenceScheduled { .. }))
        .count();
    // Every command taken was stored (the timed-out requests were taken too, and wait); bob's
    // refused one was not.
    assert!(scheduled >= taken, "{scheduled} of {taken}");
    assert!(
        scheduled <= taken + extra,
        "{scheduled} > {taken} + {extra}"
    );
}

fn subject_schedule(hour: i64, subject: &str) -> Command {
    let Command::ScheduleConference(mut schedule) = schedule(hour) else {
        unreachable!()
    };
    schedule.subject = Subject::parse(subject).unwrap();
    Command::ScheduleConference(schedule)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_the_store_refuses_is_answered_alone_and_its_batch_is_stored() {
    let inner = store().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(1));
    let gated: Arc<dyn EventStore> = Arc::new(GatedStore {
        inner: inner.clone(),
        gate: gate.clone(),
        refused: Some("poison"),
        down: Arc::default(),
    });
    let node = service(gated, 1_000_000);
    add_lines(&node, 1).await;

    // One command holds the writer inside an append; the next batch queues behind it with
    // the refused command in its middle.
    let submit = |command: Command| {
        let node = node.clone();
        tokio::spawn(async move {
            node.execute(Submission::new(
                tenant(),
                Actor::user("alice"),
                command,
                t0(),
            ))
            .await
        })
    };
    let first = submit(schedule(0));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let mut queued = Vec::new();
    for hour in 1..=30 {
        queued.push(submit(if hour == 17 {
            subject_schedule(hour, "poison")
        } else {
            schedule(hour)
        }));
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    gate.add_permits(1_000_000);
    first.await.unwrap().expect("the first command is stored");
    let mut stored = 0;
    for (index, task) in queued.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(_) => stored += 1,
            Err(CommandError::Unavailable(_)) => {
                assert_eq!(index + 1, 17, "only the poisoned one fails")
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stored, 29);
    // A lone refused command is answered too, and the pool goes on.
    assert!(matches!(
        submit(subject_schedule(40, "poison")).await.unwrap(),
        Err(CommandError::Unavailable(_))
    ));
    submit(schedule(41))
        .await
        .unwrap()
        .expect("the next command is stored");
    let events = inner
        .read_stream(&pool_stream(&tenant()), 0, 100_000)
        .await
        .unwrap();
    let scheduled = events
        .iter()
        .filter(|recorded| matches!(recorded.event, Event::ConferenceScheduled { .. }))
        .count();
    assert_eq!(scheduled, 1 + 29 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_waited_out_and_a_lasting_one_answers_every_command() {
    let inner = store().await;
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gated: Arc<dyn EventStore> = Arc::new(GatedStore {
        inner: inner.clone(),
        gate: Arc::new(tokio::sync::Semaphore::new(1_000_000)),
        refused: None,
        down: down.clone(),
    });
    let short = |store: Arc<dyn EventStore>, retries: usize| {
        CommandService::new(
            store,
            Arc::new(Metrics::default()),
            ServiceConfig {
                snapshot_every: 1_000_000,
                max_retries: retries,
                ..ServiceConfig::default()
            },
        )
    };
    let node = short(gated.clone(), 50);
    add_lines(&node, 1).await;
    let submit = |node: &CommandService, hour: i64| {
        let node = node.clone();
        tokio::spawn(async move {
            node.execute(Submission::new(
                tenant(),
                Actor::user("alice"),
                schedule(hour),
                t0(),
            ))
            .await
        })
    };
    // A short outage: every command of the batch is stored once the store is back.
    down.store(true, std::sync::atomic::Ordering::SeqCst);
    let tasks: Vec<_> = (0..8).map(|hour| submit(&node, hour)).collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap().expect("stored after the outage");
    }
    // A lasting one: every command is answered `Unavailable` once the retries are spent.
    let node = short(gated, 3);
    down.store(true, std::sync::atomic::Ordering::SeqCst);
    let tasks: Vec<_> = (20..28).map(|hour| submit(&node, hour)).collect();
    for task in tasks {
        let answer = tokio::time::timeout(std::time::Duration::from_secs(20), task)
            .await
            .expect("answered, not stuck")
            .unwrap();
        assert!(
            matches!(answer, Err(CommandError::Unavailable(_))),
            "{answer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_refused_commands_in_one_batch_never_fail_the_others() {
    let inner = store().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(1));
    let gated: Arc<dyn EventStore> = Arc::new(GatedStore {
        inner: inner.clone(),
        gate: gate.clone(),
        refused: Some("poison"),
        down: Arc::default(),
    });
    // Few retries: refused commands must not spend them.
    let node = CommandService::new(
        gated,
        Arc::new(Metrics::default()),
        ServiceConfig {
            snapshot_every: 1_000_000,
            max_retries: 3,
            ..ServiceConfig::default()
        },
    );
    add_lines(&node, 1).await;
    let submit = |command: Command| {
        let node = node.clone();
        tokio::spawn(async move {
            node.execute(Submission::new(
                tenant(),
                Actor::user("alice"),
                command,
                t0(),
            ))
            .await
        })
    };
    let first = submit(schedule(0));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let queued: Vec<_> = (1..=40)
        .map(|hour| {
            submit(if hour % 2 == 1 {
                subject_schedule(hour, "poison")
            } else {
                schedule(hour)
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    gate.add_permits(1_000_000);
    first.await.unwrap().expect("stored");
    let (mut stored, mut refused) = (0, 0);
    for (index, task) in queued.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(_) => stored += 1,
            Err(CommandError::Unavailable(_)) => {
                assert_eq!(index % 2, 0, "only poisoned commands fail");
                refused += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((stored, refused), (20, 20));
}

/// A store that watches its reader: it counts the stream events it reads and the snapshots it
/// loads, and, once armed, stores an append and then answers it with an error — a commit whose
/// answer was lost on the way back.
struct ProbeStore {
    inner: Arc<dyn EventStore>,
    events_read: std::sync::atomic::AtomicUsize,
    snapshots_loaded: std::sync::atomic::AtomicUsize,
    lose_next_answer: std::sync::atomic::AtomicBool,
}

impl ProbeStore {
    fn over(inner: Arc<dyn EventStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            events_read: 0.into(),
            snapshots_loaded: 0.into(),
            lose_next_answer: false.into(),
        })
    }
}

#[async_trait::async_trait]
impl EventStore for ProbeStore {
    async fn append(
        &self,
        stream: &str,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<Appended, StoreError> {
        let appended = self.inner.append(stream, expected_version, events).await?;
        if self
            .lose_next_answer
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StoreError::Unavailable(
                "connection reset by peer".to_owned(),
            ));
        }
        Ok(appended)
    }
    async fn read_stream(
        &self,
        stream: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let page = self.inner.read_stream(stream, after_version, limit).await?;
        self.events_read
            .fetch_add(page.len(), std::sync::atomic::Ordering::SeqCst);
        Ok(page)
    }
    async fn read_tagged(
        &self,
        stream: &str,
        conference: ConferenceId,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_tagged(stream, conference).await
    }
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }
    async fn head_position(&self) -> Result<Position, StoreError> {
        self.inner.head_position().await
    }
    async fn wait_for_events(&self, after: Position) {
        self.inner.wait_for_events(after).await;
    }
    async fn find_command(
        &self,
        stream: &str,
        command_id: Uuid,
    ) -> Result<Option<CommandRecord>, StoreError> {
        self.inner.find_command(stream, command_id).await
    }
    async fn save_snapshot(&self, stream: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(stream, snapshot).await
    }
    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        self.snapshots_loaded
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.load_snapshot(stream).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_conflict_a_writer_reads_only_the_events_it_missed() {
    use std::sync::atomic::Ordering::SeqCst;
    let shared = store().await;
    let counting = ProbeStore::over(shared.clone());
    let node_a = service(counting.clone(), 1_000_000);
    let node_b = service(shared.clone(), 1_000_000);
    add_lines(&node_a, 2).await;
    let create = |node: &CommandService, hour: i64| {
        let node = node.clone();
        async move {
            node.execute(Submission::new(
                tenant(),
                Actor::user("alice"),
                schedule(hour),
                t0(),
            ))
            .await
            .unwrap()
        }
    };
    // A history of 300 conferences written by the other node.
    for hour in 0..300 {
        create(&node_b, 10 + hour).await;
    }
    // Node A's first command after them reads the 300 it missed…
    create(&node_a, 400).await;
    let read = counting.events_read.swap(0, SeqCst);
    assert!((300..=302).contains(&read), "read {read}");
    // …and then, alternating, each conflict costs the one event the other node wrote — never
    // the history again.
    for n in 0..10 {
        create(&node_b, 500 + 2 * n).await;
        create(&node_a, 501 + 2 * n).await;
    }
    let read = counting.events_read.load(SeqCst);
    assert!(read <= 20, "ten conflicts read {read} events");
    // What it caught up on decides: node B takes one hour on both lines, and node A — whose warm
    // pool has not seen it — refuses that hour.
    create(&node_b, 700).await;
    create(&node_b, 700).await;
    let refused = node_a
        .execute(Submission::new(
            tenant(),
            Actor::user("alice"),
            schedule(700),
            t0(),
        ))
        .await;
    assert!(
        matches!(
            refused,
            Err(CommandError::Domain(DomainError::NoFreeLine { .. }))
        ),
        "{refused:?}"
    );
    assert_eq!(
        counting.snapshots_loaded.load(SeqCst),
        1,
        "loaded once, at the start"
    );
    let log = shared.read_all(0, 100_000).await.unwrap();
    let report = meetline_verify::check(&log, &[]);
    assert!(report.passed(), "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_append_whose_answer_was_lost_is_not_decided_twice() {
    use std::sync::atomic::Ordering::SeqCst;
    let shared = store().await;
    let lossy = ProbeStore::over(shared.clone());
    let node = service(lossy.clone(), 1_000_000);
    add_lines(&node, 1).await;
    // A line added without a key: stored, the answer lost, the command tried again.
    lossy.lose_next_answer.store(true, SeqCst);
    let added = node
        .execute(Submission::new(
            tenant(),
            Actor::admin("root"),
            Command::AddLine {
                name: LineName::parse("second").unwrap(),
                provider: ProviderKind::Builtin,
            },
            t0(),
        ))
        .await
        .unwrap();
    assert_eq!(
        added.line.map(|line| line.id.to_string()).as_deref(),
        Some("line-2")
    );
    // A conference the same way: booked once, and the pool knows it (the hour is still free on
    // the other line, and a third booking of the hour is refused).
    lossy.lose_next_answer.store(true, SeqCst);
    let first = node
        .execute(Submission::new(
            tenant(),
            Actor::user("alice"),
            schedule(5),
            t0(),
        ))
        .await
        .unwrap();
    assert!(first.conference.is_some());
    node.execute(Submission::new(
        tenant(),
        Actor::user("alice"),
        schedule(5),
        t0(),
    ))
    .await
    .unwrap();
    let third = node
        .execute(Submission::new(
            tenant(),
            Actor::user("alice"),
            schedule(5),
            t0(),
        ))
        .await;
    assert!(
        matches!(
            third,
            Err(CommandError::Domain(DomainError::NoFreeLine { .. }))
        ),
        "{third:?}"
    );
    let pool = load_pool(shared.as_ref(), &pool_stream(&tenant()))
        .await
        .unwrap();
    assert_eq!(pool.lines.len(), 2, "the line was added once");
    assert_eq!(pool.conferences.len(), 2, "the conference was booked once");
    let log = shared.read_all(0, 100_000).await.unwrap();
    let report = meetline_verify::check(&log, &[]);
    assert!(report.passed(), "{}", report.summary());
}

/// Closing the books: a conference that ended or was cancelled leaves the warm pool, and the
/// commands that name it later are answered from its stored events, as before — by this writer
/// and by a fresh one (another node, or after a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_a_closed_conference_are_answered_from_the_store() {
    let store = store().await;
    let service = service(store.clone(), u64::MAX);
    add_lines(&service, 1).await;
    let submit = |actor: Actor, command: Command, now: DateTime<Utc>| {
        let service = service.clone();
        async move {
            service
                .execute(Submission::new(tenant(), actor, command, now))
                .await
        }
    };
    let created = submit(Actor::user("alice"), schedule(1), t0())
        .await
        .unwrap();
    let id = created.conference.unwrap().id;
    let ended = submit(
        Actor::user("alice"),
        Command::EndConferenceEarly { conference: id },
        t0() + Duration::minutes(70),
    )
    .await
    .unwrap();
    // The answer shows the conference as its events left it, although the pool let it go.
    let view = ended.conference.expect("the ended conference");
    assert_eq!(view.status, Status::ManuallyEnded);
    assert_eq!(view.version, 2);
    let pool = load_pool(store.as_ref(), &pool_stream(&tenant()))
        .await
        .unwrap();
    assert!(pool.conference(&id).is_none(), "closed: not held");

    let cancel = Command::CancelConference {
        conference: id,
        reason: None,
    };
    let later = t0() + Duration::minutes(80);
    for service in [service.clone(), self::service(store.clone(), u64::MAX)] {
        let answer = service
            .execute(Submission::new(
                tenant(),
                Actor::user("alice"),
                cancel.clone(),
                later,
            ))
            .await;
        assert!(
            matches!(
                &answer,
                Err(CommandError::Domain(DomainError::InvalidState(
                    meetline_domain::error::Conflict::Conference(
                        meetline_domain::types::Status::ManuallyEnded
                    )
                )))
            ),
            "{answer:?}"
        );
        // A stranger learns nothing; the timer has nothing to record.
        let answer = service
            .execute(Submission::new(
                tenant(),
                Actor::user("mallory"),
                cancel.clone(),
                later,
            ))
            .await;
        assert!(matches!(
            answer,
            Err(CommandError::Domain(DomainError::NotFound))
        ));
        let elapsed = service
            .execute(Submission::new(
                tenant(),
                Actor::admin("system"),
                Command::RecordElapsedTime { conference: id },
                t0() + Duration::hours(5),
            ))
            .await
            .unwrap();
        assert!(elapsed.events.is_empty());
        assert_eq!(
            elapsed.conference.map(|view| view.status),
            Some(Status::ManuallyEnded)
        );
    }
    // A keyed retry of a cancel, after the conference closed, answers with the conference.
    let second_id = ConferenceId(Uuid::from_u128(77));
    let keyed = || {
        Submission::new(
            tenant(),
            Actor::user("alice"),
            Command::CancelConference {
                conference: second_id,
                reason: None,
            },
            t0(),
        )
        .with_idempotency_key("cancel-once")
    };
    let mut second = schedule(3);
    if let Command::ScheduleConference(schedule) = &mut second {
        schedule.conference = second_id;
    }
    submit(Actor::user("alice"), second, t0()).await.unwrap();
    let first = service.execute(keyed()).await.unwrap();
    let again = self::service(store.clone(), u64::MAX)
        .execute(keyed())
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(
        again.conference.map(|view| (view.id, view.status)),
        Some((second_id, Status::Cancelled))
    );
    assert_eq!(
        first.conference.map(|view| view.status),
        Some(Status::Cancelled)
    );
}

/// Pipelining: while one batch's append is in flight the writer decides the batch behind it on
/// the state the first leaves. When the first append fails (here: another node wrote in
/// between), both batches are taken back and decided again — nothing is lost, stored twice or
/// double-booked — and no later batch is appended before the earlier one is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_batch_is_decided_again_when_the_append_before_it_fails() {
    let inner = store().await;
    let (gated, gate) = gated(&inner, 0);
    let (node, metrics) = service_with_metrics(gated);
    let other = service(inner.clone(), 1_000_000);
    add_lines(&other, 3).await;
    let submit = |hour: i64| {
        let node = node.clone();
        tokio::spawn(async move {
            node.execute(Submission::new(
                tenant(),
                Actor::user("alice"),
                schedule(hour),
                t0(),
            ))
            .await
        })
    };
    // A warm pool (a cold one is loaded the careful way).
    gate.add_permits(1);
    submit(200).await.unwrap().expect("stored");
    // One command holds the writer in its append; a hundred queue behind it and are decided
    // meanwhile.
    let first = submit(0);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let queued: Vec<_> = (1..=100).map(submit).collect();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // The first is stored; the next 64 go into an append that waits at the gate, and the 36
    // behind them are decided in turn.
    gate.add_permits(1);
    first.await.unwrap().expect("the first command is stored");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        metrics.pipelined_batches.get() >= 1,
        "a batch was decided while an append was in flight"
    );
    // Another node writes: the waiting append conflicts.
    other
        .execute(Submission::new(
            tenant(),
            Actor::admin("root"),
            Command::AddLine {
                name: LineName::parse("late").unwrap(),
                provider: ProviderKind::Builtin,
            },
            t0(),
        ))
        .await
        .unwrap();
    gate.add_permits(1_000_000);
    let mut accepted = 0;
    for task in queued {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(CommandError::Domain(DomainError::NoFreeLine { .. })) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    // Hours 0..=100 with 60-minute slots on 3–4 lines: every one fits.
    assert_eq!(accepted, 100);
    let stream = pool_stream(&tenant());
    let events = inner.read_stream(&stream, 0, 100_000).await.unwrap();
    let scheduled = events
        .iter()
        .filter(|e| matches!(e.event, Event::ConferenceScheduled { .. }))
        .count();
    assert_eq!(scheduled, 102, "each command stored once");
    let log = meetline_verify::whole_log(inner.as_ref()).await.unwrap();
    let report = meetline_verify::check(&log, &[]);
    assert!(report.passed(), "{}", report.summary());
    let pool = load_pool(inner.as_ref(), &stream).await.unwrap();
    assert!(pool.overlapping_bookings().is_empty());
}

/// A pipelined writer answers each command with the state its own batch left, not with what
/// the batch decided behind it (not stored yet when the answer is sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_shows_its_own_batch_not_the_one_decided_behind_it() {
    let inner = store().await;
    let (gated, gate) = gated(&inner, 1_000);
    let (node, metrics) = service_with_metrics(gated);
    add_lines(&node, 2).await;
    // Hold the gate: the rename's append waits while the removal is decided behind it.
    gate.acquire_many(gate.available_permits() as u32)
        .await
        .unwrap()
        .forget();
    let line = LineId::parse("line-2").unwrap();
    let admin = |command: Command| {
        let node = node.clone();
        tokio::spawn(async move {
            node.execute(Submission::new(
                tenant(),
                Actor::admin("root"),
                command,
                t0(),
            ))
            .await
        })
    };
    let renamed = admin(Command::RenameLine {
        line: line.clone(),
        name: LineName::parse("Alpha").unwrap(),
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let removed = admin(Command::RemoveLine { line: line.clone() });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    gate.add_permits(1_000);
    let renamed = renamed.await.unwrap().expect("renamed");
    removed.await.unwrap().expect("removed");
    assert_eq!(
        metrics.pipelined_batches.get(),
        1,
        "the removal was decided behind the rename"
    );
    let shown = renamed.line.expect("the rename shows the line it renamed");
    assert_eq!((shown.id, shown.name.as_str()), (line, "Alpha"));
}
