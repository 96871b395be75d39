//! One conformance suite for every `EventStore` adapter: appends, conflicts, tags, ordering,
//! snapshots, wake-ups and command look-ups (idempotency). Each check takes a fresh store.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use meetline_adapters::sqlite::{Database, SqliteEventStore};
use meetline_domain::ports::{
    EventMetadata, EventStore, NewEvent, RecordedEvent, Snapshot, StoreError,
};
use meetline_domain::*;
use uuid::Uuid;

fn meta(command: Uuid) -> EventMetadata {
    EventMetadata {
        event_id: Uuid::new_v4(),
        command_id: command,
        correlation_id: command,
        causation_id: None,
        actor: "alice".into(),
        recorded_at: DateTime::<Utc>::from_timestamp(1_767_225_600, 123_456_000).unwrap(),
        schema_version: EVENT_SCHEMA_VERSION,
    }
}

fn line_added(n: u64) -> NewEvent {
    NewEvent {
        event: Event::LineAdded {
            line: LineId::parse(&format!("line-{n}")).unwrap(),
            name: LineName::parse("L").unwrap(),
            provider: ProviderKind::Builtin,
        },
        metadata: meta(Uuid::new_v4()),
    }
}

fn joined(conference: ConferenceId, command: Uuid) -> NewEvent {
    NewEvent {
        event: Event::ParticipantJoined {
            conference,
            user: UserId::parse("bob").unwrap(),
        },
        metadata: meta(command),
    }
}

async fn appends_with_expected_version_and_reads_back_in_order(store: Arc<dyn EventStore>) {
    let first = store
        .append("pool-a", 0, &[line_added(1), line_added(2)])
        .await
        .unwrap();
    assert_eq!(first.version, 2);
    assert_eq!(first.positions.len(), 2);
    assert!(first.positions[0] < first.positions[1]);
    let second = store.append("pool-a", 2, &[line_added(3)]).await.unwrap();
    assert_eq!(second.version, 3);
    assert!(second.positions[0] > first.positions[1]);
    let events = store.read_stream("pool-a", 0, 1000).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // The positions an append answers are those its events are stored at.
    assert_eq!(
        events.iter().map(|e| e.position).collect::<Vec<_>>(),
        [first.positions.clone(), second.positions.clone()].concat()
    );
    assert_eq!(store.read_stream("pool-a", 2, 1000).await.unwrap().len(), 1);
    let page = store.read_stream("pool-a", 0, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let stored = &events[0];
    assert_eq!(stored.metadata.recorded_at, meta(Uuid::nil()).recorded_at);
    assert_eq!(stored.metadata.actor, "alice");
    assert!(matches!(stored.event, Event::LineAdded { .. }));
}

async fn a_large_append_keeps_its_events_in_order(store: Arc<dyn EventStore>) {
    // More events than one statement of the SQL adapters carries.
    let events: Vec<NewEvent> = (1..=150).map(line_added).collect();
    let appended = store.append("pool-a", 0, &events).await.unwrap();
    assert_eq!(appended.version, 150);
    assert_eq!(appended.positions.len(), 150);
    assert!(appended.positions.windows(2).all(|pair| pair[0] < pair[1]));
    let stored = store.read_stream("pool-a", 0, 1000).await.unwrap();
    assert_eq!(stored.len(), 150);
    for (index, recorded) in stored.iter().enumerate() {
        assert_eq!(recorded.version, index as u64 + 1);
        assert_eq!(recorded.position, appended.positions[index]);
        assert_eq!(recorded.metadata.event_id, events[index].metadata.event_id);
        match &recorded.event {
            Event::LineAdded { line, .. } => {
                assert_eq!(line.as_str(), format!("line-{}", index + 1))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The events alone, as a replay reads them: the same, page by page.
    let events_of =
        |page: &[RecordedEvent]| page.iter().map(|r| r.event.clone()).collect::<Vec<_>>();
    let alone = store.read_stream_events("pool-a", 0, 1000).await.unwrap();
    assert_eq!(alone, events_of(&stored));
    let page = store.read_stream_events("pool-a", 100, 20).await.unwrap();
    assert_eq!(page, events_of(&stored[100..120]));
    assert!(
        store
            .read_stream_events("pool-a", 150, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .read_stream_events("pool-none", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let all = store.read_all(0, 1000).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|recorded| recorded.position)
            .collect::<Vec<_>>(),
        appended.positions
    );
}

async fn a_stale_expected_version_is_a_conflict_and_writes_nothing(store: Arc<dyn EventStore>) {
    store.append("pool-a", 0, &[line_added(1)]).await.unwrap();
    let error = store
        .append("pool-a", 0, &[line_added(2)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Conflict {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "{error:?}"
    );
    let error = store
        .append("pool-a", 5, &[line_added(2)])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }));
    assert_eq!(store.read_stream("pool-a", 0, 1000).await.unwrap().len(), 1);
}

async fn concurrent_appends_at_one_version_let_exactly_one_win(store: Arc<dyn EventStore>) {
    let mut tasks = Vec::new();
    for n in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.append("pool-race", 0, &[line_added(n)]).await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(
        store.read_stream("pool-race", 0, 1000).await.unwrap().len(),
        1
    );
}

async fn concurrent_appends_to_many_streams_all_land_in_one_order(store: Arc<dyn EventStore>) {
    // Writers of 24 streams, 10 appends each, at once: every append lands (grouped or not), and
    // each stream reads back dense and in order, interleaved in one global order.
    let mut tasks = Vec::new();
    for writer in 0..24u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("pool-many-{writer}");
            let mut version = 0;
            for n in 0..10 {
                let events = [
                    line_added(writer * 100 + n),
                    line_added(writer * 100 + n + 50),
                ];
                let appended = store.append(&stream, version, &events).await.unwrap();
                assert_eq!(appended.version, version + 2);
                version = appended.version;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for writer in 0..24u64 {
        let events = store
            .read_stream(&format!("pool-many-{writer}"), 0, 1000)
            .await
            .unwrap();
        assert_eq!(
            events.iter().map(|e| e.version).collect::<Vec<_>>(),
            (1..=20).collect::<Vec<u64>>()
        );
        assert!(
            events
                .windows(2)
                .all(|pair| pair[0].position < pair[1].position)
        );
    }
    let all = store.read_all(0, 10_000).await.unwrap();
    assert_eq!(all.len(), 24 * 20);
    assert!(
        all.windows(2)
            .all(|pair| pair[0].position < pair[1].position)
    );
}

async fn streams_are_independent_and_global_reads_are_ordered(store: Arc<dyn EventStore>) {
    store.append("pool-a", 0, &[line_added(1)]).await.unwrap();
    store
        .append("pool-b", 0, &[line_added(1), line_added(2)])
        .await
        .unwrap();
    store.append("pool-a", 1, &[line_added(2)]).await.unwrap();
    let all = store.read_all(0, 100).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(
        all.windows(2)
            .all(|pair| pair[0].position < pair[1].position)
    );
    assert_eq!(
        all.iter().map(|e| e.stream.as_str()).collect::<Vec<_>>(),
        ["pool-a", "pool-b", "pool-b", "pool-a"]
    );
    let page = store.read_all(all[0].position, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![all[1].position, all[2].position]
    );
    assert_eq!(store.head_position().await.unwrap(), all[3].position);
}

async fn a_conferences_events_are_read_by_tag(store: Arc<dyn EventStore>) {
    let one = ConferenceId(Uuid::from_u128(1));
    let two = ConferenceId(Uuid::from_u128(2));
    store
        .append(
            "pool-a",
            0,
            &[
                line_added(1),
                joined(one, Uuid::new_v4()),
                joined(two, Uuid::new_v4()),
                joined(one, Uuid::new_v4()),
            ],
        )
        .await
        .unwrap();
    store
        .append("pool-b", 0, &[joined(one, Uuid::new_v4())])
        .await
        .unwrap();
    let tagged = store.read_tagged("pool-a", one).await.unwrap();
    assert_eq!(tagged.len(), 2);
    assert!(tagged.iter().all(|e| e.event.conference() == Some(one)));
    assert!(tagged[0].position < tagged[1].position);
}

async fn snapshots_keep_the_newest_version(store: Arc<dyn EventStore>) {
    assert_eq!(store.load_snapshot("pool-a").await.unwrap(), None);
    // Binary: NUL, bytes that are not UTF-8, every byte value — kept exactly.
    let snapshot = |version: u64| Snapshot {
        version,
        schema: 3,
        data: [0u8, 0xff, 0x80, version as u8]
            .into_iter()
            .chain(0..=255)
            .collect(),
    };
    store.save_snapshot("pool-a", &snapshot(10)).await.unwrap();
    store.save_snapshot("pool-a", &snapshot(20)).await.unwrap();
    store.save_snapshot("pool-a", &snapshot(15)).await.unwrap();
    assert_eq!(
        store.load_snapshot("pool-a").await.unwrap(),
        Some(snapshot(20))
    );
}

async fn a_waiter_wakes_when_events_arrive(store: Arc<dyn EventStore>) {
    let head = store.head_position().await.unwrap();
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.wait_for_events(head).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    store.append("pool-a", 0, &[line_added(1)]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .unwrap();
}

async fn a_command_is_found_by_its_id(store: Arc<dyn EventStore>) {
    let command = Uuid::new_v4();
    let conference = ConferenceId(Uuid::from_u128(7));
    assert_eq!(store.find_command("pool-a", command).await.unwrap(), None);
    let appended = store
        .append(
            "pool-a",
            0,
            &[joined(conference, command), joined(conference, command)],
        )
        .await
        .unwrap();
    let record = store
        .find_command("pool-a", command)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(record.last_position), appended.last_position());
    assert_eq!(record.conference, Some(conference));
    assert_eq!(record.line, None);
    assert_eq!(store.find_command("pool-b", command).await.unwrap(), None);
    // A command that added a line: the record names it.
    let adding = Uuid::new_v4();
    let mut added = line_added(9);
    added.metadata = meta(adding);
    store.append("pool-a", 2, &[added]).await.unwrap();
    let record = store.find_command("pool-a", adding).await.unwrap().unwrap();
    assert_eq!(record.line, Some(LineId::parse("line-9").unwrap()));
    assert_eq!(record.conference, None);
    // The same id used again a day later (an idempotency key whose 24 hours are over), on
    // another conference: the record is the newest use's — its conference, position and time.
    let later = ConferenceId(Uuid::from_u128(3));
    let mut again = joined(later, command);
    again.metadata.recorded_at += chrono::Duration::hours(25);
    let reused = store.append("pool-a", 3, &[again.clone()]).await.unwrap();
    let record = store
        .find_command("pool-a", command)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(record.last_position), reused.last_position());
    assert_eq!(record.conference, Some(later));
    assert_eq!(record.recorded_at, again.metadata.recorded_at);
    // A command whose events name several conferences (a maintenance moving them): the record
    // names the first, whatever the ids' order.
    let moving = Uuid::new_v4();
    let mut first = joined(ConferenceId(Uuid::from_u128(900)), moving);
    first.metadata = meta(moving);
    let mut second = joined(ConferenceId(Uuid::from_u128(5)), moving);
    second.metadata = meta(moving);
    store.append("pool-a", 4, &[first, second]).await.unwrap();
    let record = store.find_command("pool-a", moving).await.unwrap().unwrap();
    assert_eq!(record.conference, Some(ConferenceId(Uuid::from_u128(900))));
}

macro_rules! conformance {
    ($module:ident, $factory:expr) => {
        mod $module {
            use super::*;
            async fn store() -> Option<Arc<dyn EventStore>> {
                $factory.await
            }
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        if let Some(store) = store().await {
                            super::$name(store).await;
                        }
                    }
                };
            }
            case!(appends_with_expected_version_and_reads_back_in_order);
            case!(a_large_append_keeps_its_events_in_order);
            case!(a_stale_expected_version_is_a_conflict_and_writes_nothing);
            case!(concurrent_appends_at_one_version_let_exactly_one_win);
            case!(concurrent_appends_to_many_streams_all_land_in_one_order);
            case!(streams_are_independent_and_global_reads_are_ordered);
            case!(a_conferences_events_are_read_by_tag);
            case!(snapshots_keep_the_newest_version);
            case!(a_waiter_wakes_when_events_arrive);
            case!(a_command_is_found_by_its_id);
        }
    };
}

async fn sqlite_store() -> Option<Arc<dyn EventStore>> {
    let db = Database::temporary().await.unwrap();
    Some(Arc::new(SqliteEventStore::new(db).await.unwrap()))
}

conformance!(sqlite, sqlite_store());

/// Each PostgreSQL store gets its own database, dropped when the test process ends its use.
async fn postgres_store() -> Option<Arc<dyn EventStore>> {
    let database = meetline_adapters::testing::TestDatabase::create().await?;
    let pool = meetline_adapters::postgres::connect(&database.url, 20)
        .await
        .unwrap();
    let store = meetline_adapters::postgres::PgEventStore::new(pool)
        .await
        .unwrap();
    Some(Arc::new(WithDatabase {
        store,
        _database: database,
    }))
}

/// Keeps the test database alive as long as the store.
struct WithDatabase {
    store: meetline_adapters::postgres::PgEventStore,
    _database: meetline_adapters::testing::TestDatabase,
}

#[async_trait::async_trait]
impl EventStore for WithDatabase {
    async fn append(
        &self,
        stream: &str,
        expected: u64,
        events: &[NewEvent],
    ) -> Result<meetline_domain::ports::Appended, StoreError> {
        self.store.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<meetline_domain::ports::RecordedEvent>, StoreError> {
        self.store.read_stream(stream, after, limit).await
    }
    async fn read_stream_events(
        &self,
        stream: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.store.read_stream_events(stream, after, limit).await
    }
    async fn read_tagged(
        &self,
        stream: &str,
        conference: ConferenceId,
    ) -> Result<Vec<meetline_domain::ports::RecordedEvent>, StoreError> {
        self.store.read_tagged(stream, conference).await
    }
    async fn read_all(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<meetline_domain::ports::RecordedEvent>, StoreError> {
        self.store.read_all(after, limit).await
    }
    async fn head_position(&self) -> Result<u64, StoreError> {
        self.store.head_position().await
    }
    async fn wait_for_events(&self, after: u64) {
        self.store.wait_for_events(after).await
    }
    async fn find_command(
        &self,
        stream: &str,
        command: Uuid,
    ) -> Result<Option<meetline_domain::ports::CommandRecord>, StoreError> {
        self.store.find_command(stream, command).await
    }
    async fn save_snapshot(&self, stream: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.store.save_snapshot(stream, snapshot).await
    }
    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        self.store.load_snapshot(stream).await
    }
}

conformance!(postgres, postgres_store());

/// EventStoreDB cannot run on our machines, so these cases are compiled only when asked for:
/// `RUSTFLAGS='--cfg meetline_esdb' MEETLINE_ESDB_URL=esdb://localhost:2113?tls=false cargo test
/// -p meetline-adapters --test event_store_conformance eventstoredb` (server from
/// `docs/deploy/kurrentdb.yml`). Without a server they fail rather than pass vacuously;
/// `scripts/test` prints that they were not run. Each store works in a private namespace of
/// streams, so checks never see each other's data on the shared server.
#[cfg(all(feature = "esdb", meetline_esdb))]
async fn esdb_store() -> Option<Arc<dyn EventStore>> {
    let url =
        std::env::var("MEETLINE_ESDB_URL").expect("--cfg meetline_esdb needs MEETLINE_ESDB_URL");
    let store = meetline_adapters::esdb::EsdbEventStore::connect(&url)
        .await
        .expect("EventStoreDB reachable");
    Some(Arc::new(Namespaced {
        inner: store,
        prefix: format!("pool-t{}", Uuid::new_v4().simple()),
    }))
}

/// Renames the suite's streams into a private namespace, and hides other streams from `$all`.
#[cfg(all(feature = "esdb", meetline_esdb))]
struct Namespaced<S> {
    inner: S,
    prefix: String,
}

#[cfg(all(feature = "esdb", meetline_esdb))]
impl<S> Namespaced<S> {
    fn rename(&self, stream: &str) -> String {
        format!("{}-{stream}", self.prefix)
    }
}

#[cfg(all(feature = "esdb", meetline_esdb))]
#[async_trait::async_trait]
impl<S: EventStore> EventStore for Namespaced<S> {
    async fn append(
        &self,
        stream: &str,
        expected: u64,
        events: &[NewEvent],
    ) -> Result<meetline_domain::ports::Appended, StoreError> {
        self.inner
            .append(&self.rename(stream), expected, events)
            .await
    }
    async fn read_stream(
        &self,
        stream: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<meetline_domain::ports::RecordedEvent>, StoreError> {
        self.inner
            .read_stream(&self.rename(stream), after, limit)
            .await
    }
    async fn read_tagged(
        &self,
        stream: &str,
        conference: ConferenceId,
    ) -> Result<Vec<meetline_domain::ports::RecordedEvent>, StoreError> {
        self.inner
            .read_tagged(&self.rename(stream), conference)
            .await
    }
    async fn read_all(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<meetline_domain::ports::RecordedEvent>, StoreError> {
        let mut mine = Vec::new();
        let mut from = after;
        loop {
            let page = self.inner.read_all(from, 1000).await?;
            let Some(last) = page.last().map(|event| event.position) else {
                return Ok(mine);
            };
            from = last;
            for mut event in page {
                if let Some(original) = event.stream.strip_prefix(&format!("{}-", self.prefix)) {
                    event.stream = original.to_owned();
                    mine.push(event);
                    if mine.len() == limit {
                        return Ok(mine);
                    }
                }
            }
        }
    }
    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(self
            .read_all(0, usize::MAX)
            .await?
            .last()
            .map_or(0, |event| event.position))
    }
    async fn wait_for_events(&self, after: u64) {
        self.inner.wait_for_events(after).await
    }
    async fn find_command(
        &self,
        stream: &str,
        command: Uuid,
    ) -> Result<Option<meetline_domain::ports::CommandRecord>, StoreError> {
        self.inner.find_command(&self.rename(stream), command).await
    }
    async fn save_snapshot(&self, stream: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.inner
            .save_snapshot(&self.rename(stream), snapshot)
            .await
    }
    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(&self.rename(stream)).await
    }
}

#[cfg(all(feature = "esdb", meetline_esdb))]
conformance!(eventstoredb, esdb_store());
