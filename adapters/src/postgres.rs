//! `PgEventStore`: the event store port on PostgreSQL, the production store that many nodes share.
//!
//! **Gap-free global order.** A `bigserial` position is drawn when a row is inserted but becomes
//! visible when its transaction commits, so a reader could see position 7 committed while 6 is
//! still in flight — and, having moved its checkpoint past 6, never read it. Here every append
//! takes a transaction-scoped advisory lock *before* it assigns positions (`MAX(position) + 1`) and
//! holds it to the end of the transaction. PostgreSQL makes a commit visible before it releases the
//! transaction's locks, so the next appender can only assign positions after every lower position
//! is visible: positions become visible in order, and `position > checkpoint` never skips one.
//! Decision record: `docs/decisions/0006-gap-free-positions-on-postgresql.md`.
//!
//! Wake-ups use `LISTEN/NOTIFY`: each append notifies `meetline_events` with its last position
//! (delivered at commit), so every node's projector and readers wake up, not only the writer's.

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use meetline_domain::event::Event;
use meetline_domain::ports::{
    Appended, CommandRecord, EventMetadata, EventStore, NewEvent, Position, RecordedEvent,
    Snapshot, StoreError,
};
use meetline_domain::types::{ConferenceId, LineId};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Row, SqlStr};
use tokio::sync::watch;
use uuid::Uuid;

use crate::db::unavailable;
use crate::group_commit::{AppendRequest, Appends, CommitGroup, advance};
use crate::refused_slot;

/// The channel appends notify.
pub const CHANNEL: &str = "meetline_events";
/// The advisory lock key that serializes position assignment ("meetline" in ASCII).
const POSITION_LOCK: i64 = 0x6d65_6574_6c69_6e65;

/// The event store's schema migrations (sqlx's migrator and its `_sqlx_migrations` table).
pub fn migrator() -> Migrator {
    let migration = |version, name, sql| {
        Migration::new(
            version,
            Cow::Borrowed(name),
            MigrationType::Simple,
            SqlStr::from_static(sql),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(
            1,
            "events",
            include_str!("../migrations/postgres/0001_events.sql"),
        ),
        migration(
            2,
            "binary snapshots",
            include_str!("../migrations/postgres/0002_binary_snapshots.sql"),
        ),
        migration(
            3,
            "append function",
            include_str!("../migrations/postgres/0003_append_function.sql"),
        ),
        migration(
            4,
            "append function, generic plan",
            include_str!("../migrations/postgres/0004_append_generic_plan.sql"),
        ),
        migration(
            5,
            "DemandRefused events (a marker: older nodes refuse to start)",
            include_str!("../migrations/postgres/0005_demand_refused_events.sql"),
        ),
        migration(
            6,
            "conferences in a series (a marker: older nodes refuse to start)",
            include_str!("../migrations/postgres/0006_series.sql"),
        ),
    ])
}

/// Connects a pool to `url`.
///
/// # Errors
/// When the server cannot be reached.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // No ping before each use: it is a round trip on every append. A connection the server
        // dropped fails its statement instead; sqlx closes it, and the caller's retry (the
        // writer's backoff) gets a fresh one.
        .test_before_acquire(false)
        .connect(url)
        .await
}

#[derive(Debug)]
pub struct PgEventStore {
    pool: PgPool,
    head: watch::Sender<Position>,
    /// The listener task stops once this is dropped with the store.
    alive: std::sync::Arc<()>,
    /// Fault injection for tests: hold each append transaction open up to this long before
    /// committing.
    commit_delay: CommitDelay,
    /// To the committer, which groups this process's appends (decision 0010).
    appends: Appends,
}

type CommitDelay = std::sync::Arc<std::sync::Mutex<Option<Duration>>>;

impl PgEventStore {
    /// Runs the migrations, reads the head and starts listening for other nodes' appends.
    ///
    /// # Errors
    /// When the database cannot be migrated or read.
    pub async fn new(pool: PgPool) -> Result<Self, StoreError> {
        migrator()
            .run(&pool)
            .await
            .map_err(|error| StoreError::Unavailable(error.to_string()))?;
        let head = watch::Sender::new(Self::read_head(&pool).await?);
        let commit_delay = CommitDelay::default();
        let committer = PgCommitter {
            pool: pool.clone(),
            commit_delay: commit_delay.clone(),
        };
        let appends = Appends::start(committer, head.clone());
        let store = Self {
            pool,
            head,
            alive: std::sync::Arc::new(()),
            commit_delay,
            appends,
        };
        store.listen().await?;
        Ok(store)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Holds every append's transaction open for a random time up to `max` before it commits
    /// (tests that prove readers see no gaps).
    #[must_use]
    pub fn with_commit_delay(self, max: Duration) -> Self {
        *self.commit_delay.lock().expect("commit delay lock") = Some(max);
        self
    }

    async fn read_head(pool: &PgPool) -> Result<Position, StoreError> {
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(pool)
            .await
            .map_err(unavailable)?;
        Ok(head as Position)
    }

    /// Follows `NOTIFY meetline_events` in the background; on a lost connection it re-reads the
    /// head, so no wake-up is lost for long.
    async fn listen(&self) -> Result<(), StoreError> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(unavailable)?;
        listener.listen(CHANNEL).await.map_err(unavailable)?;
        let head = self.head.clone();
        let pool = self.pool.clone();
        let alive = std::sync::Arc::downgrade(&self.alive);
        tokio::spawn(async move {
            while alive.strong_count() > 0 {
                match tokio::time::timeout(Duration::from_secs(5), listener.try_recv()).await {
                    Ok(Ok(Some(notification))) => {
                        if let Ok(position) = notification.payload().parse::<Position>() {
                            head.send_if_modified(|current| advance(current, position));
                        }
                    }
                    // Connection lost (reconnected on the next call) or quiet: re-read the head.
                    Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                        if let Ok(position) = Self::read_head(&pool).await {
                            head.send_if_modified(|current| advance(current, position));
                        }
                    }
                }
            }
        });
        Ok(())
    }
}

/// Writes a group of appends in one statement under the position lock.
struct PgCommitter {
    pool: PgPool,
    commit_delay: CommitDelay,
}

impl CommitGroup for PgCommitter {
    /// One statement for a group of appends — one round trip, one transaction (autocommit): the
    /// `meetline_append` function (migration 0003) takes the position lock, checks each append's
    /// version (a conflict refuses only it), inserts the rows and notifies. `Err` when the
    /// statement failed and nothing of the group was written.
    async fn commit(
        &self,
        group: &[AppendRequest],
    ) -> Result<Vec<Result<Appended, StoreError>>, sqlx::Error> {
        let delay = *self.commit_delay.lock().expect("commit delay lock");
        let sleep = delay.map_or(0.0, |max| {
            Duration::from_micros(rand::random_range(0..=max.as_micros() as u64)).as_secs_f64()
        });
        let events = group.iter().flat_map(|request| request.events.iter());
        let column = |field: fn(&NewEvent) -> _| events.clone().map(field).collect::<Vec<_>>();
        let rows: Vec<(i32, i64, Option<i64>)> = sqlx::query_as(
            "SELECT append_index, actual, first_position FROM meetline_append(\
             $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(POSITION_LOCK)
        .bind(CHANNEL)
        .bind(sleep)
        .bind(group.iter().map(|r| r.stream.clone()).collect::<Vec<_>>())
        .bind(
            group
                .iter()
                .map(|r| r.expected_version as i64)
                .collect::<Vec<_>>(),
        )
        .bind(
            group
                .iter()
                .map(|r| r.events.len() as i32)
                .collect::<Vec<_>>(),
        )
        .bind(column(|new| new.metadata.event_id))
        .bind(
            events
                .clone()
                .map(|new| new.event.type_name().to_owned())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .clone()
                .map(|new| new.metadata.schema_version as i32)
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .clone()
                .map(|new| new.event.conference().map(|id| id.0))
                .collect::<Vec<_>>(),
        )
        .bind(column(|new| new.metadata.command_id))
        .bind(column(|new| new.metadata.correlation_id))
        .bind(
            events
                .clone()
                .map(|new| new.metadata.causation_id)
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .clone()
                .map(|new| new.metadata.actor.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .clone()
                .map(|new| new.metadata.recorded_at)
                .collect::<Vec<_>>(),
        )
        .bind(events.map(|new| new.event.to_json()).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await?;
        let mut answers: Vec<Option<(i64, Option<i64>)>> = vec![None; group.len()];
        for (index, actual, first) in rows {
            if let Some(slot) = usize::try_from(index - 1)
                .ok()
                .and_then(|index| answers.get_mut(index))
            {
                *slot = Some((actual, first));
            }
        }
        Ok(group
            .iter()
            .zip(answers)
            .map(|(request, answer)| match answer {
                Some((actual, Some(first))) => {
                    let count = request.events.len() as u64;
                    Ok(Appended {
                        positions: (0..count).map(|offset| first as u64 + offset).collect(),
                        version: actual as u64 + count,
                    })
                }
                Some((actual, None)) => Err(StoreError::Conflict {
                    stream: request.stream.clone(),
                    expected: request.expected_version,
                    actual: actual as u64,
                }),
                None => Err(StoreError::Corrupt(
                    "the append function did not answer for an append".to_owned(),
                )),
            })
            .collect())
    }
}

/// The last version of a page of `limit` events after `after_version`. A stream's versions are
/// dense (1, 2, 3, …), so a page is a closed range of versions; bounding it above keeps the read
/// proportional to the page whatever plan PostgreSQL picks (with stale statistics it chose a
/// bitmap scan of every later version plus a sort, about 1 s a page at 500,000 events).
fn page_end(after_version: u64, limit: usize) -> u64 {
    after_version
        .saturating_add(limit as u64)
        .min(i64::MAX as u64)
}

const SELECT_EVENTS: &str = "SELECT position, stream, version, event_id, event_type, schema_version, \
    command_id, correlation_id, causation_id, actor, recorded_at, data::text AS data FROM events";

fn decode(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let event_type: String = row.get("event_type");
    let schema_version: i32 = row.get("schema_version");
    let data: String = row.get("data");
    let event = Event::from_stored(&event_type, schema_version as u32, &data)
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    Ok(RecordedEvent {
        position: row.get::<i64, _>("position") as Position,
        stream: row.get("stream"),
        version: row.get::<i64, _>("version") as u64,
        event,
        metadata: EventMetadata {
            event_id: row.get("event_id"),
            command_id: row.get("command_id"),
            correlation_id: row.get("correlation_id"),
            causation_id: row.get("causation_id"),
            actor: row.get("actor"),
            recorded_at: row.get::<DateTime<Utc>, _>("recorded_at"),
            schema_version: schema_version as u32,
        },
    })
}

fn decode_all(rows: &[PgRow]) -> Result<Vec<RecordedEvent>, StoreError> {
    rows.iter().map(decode).collect()
}

#[async_trait]
impl EventStore for PgEventStore {
    async fn append(
        &self,
        stream: &str,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<Appended, StoreError> {
        self.appends.append(stream, expected_version, events).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let upper = page_end(after_version, limit);
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_EVENTS} WHERE stream = $1 AND version > $2 AND version <= $3 \
             ORDER BY version"
        )))
        .bind(stream)
        .bind(after_version as i64)
        .bind(upper as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        decode_all(&rows)
    }

    /// The events alone: three columns, no envelope to decode (a replay's client-side work is
    /// mostly decoding, by `perf`).
    async fn read_stream_events(
        &self,
        stream: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let upper = page_end(after_version, limit);
        let rows = sqlx::query(
            "SELECT version, event_type, schema_version, data::text AS data FROM events \
             WHERE stream = $1 AND version > $2 AND version <= $3 ORDER BY version",
        )
        .bind(stream)
        .bind(after_version as i64)
        .bind(upper as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut events = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            let version: i64 = row.get(0);
            crate::expect_next_version(stream, after_version, index, version as u64)?;
            let (event_type, schema, data): (&str, i32, &str) =
                (row.get(1), row.get(2), row.get(3));
            events.push(
                Event::from_stored(event_type, schema as u32, data)
                    .map_err(|error| StoreError::Corrupt(error.to_string()))?,
            );
        }
        Ok(events)
    }

    async fn read_tagged(
        &self,
        stream: &str,
        conference: ConferenceId,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_EVENTS} WHERE conference_id = $1 AND stream = $2 ORDER BY position"
        )))
        .bind(conference.0)
        .bind(stream)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        decode_all(&rows)
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2"
        )))
        .bind(after as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        decode_all(&rows)
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        let head = Self::read_head(&self.pool).await?;
        self.head.send_if_modified(|current| advance(current, head));
        Ok(head)
    }

    async fn wait_for_events(&self, after: Position) {
        let mut receiver = self.head.subscribe();
        let _ = receiver.wait_for(|head| *head > after).await;
    }

    async fn find_command(
        &self,
        stream: &str,
        command_id: Uuid,
    ) -> Result<Option<CommandRecord>, StoreError> {
        // The newest use of the id (a key may be used again once its 24 hours are over): the
        // events of one use share their `recorded_at`.
        let row = sqlx::query(
            "SELECT MAX(position) AS last, MIN(recorded_at) AS at, \
             (ARRAY_AGG(conference_id ORDER BY position) FILTER (WHERE conference_id IS NOT NULL))[1] AS conference, \
             MAX(data->>'line') FILTER (WHERE event_type = 'LineAdded') AS line, \
             ARRAY_AGG(data::text ORDER BY position) FILTER (WHERE event_type = 'DemandRefused') AS refused, \
             MAX(schema_version) FILTER (WHERE event_type = 'DemandRefused') AS refused_schema \
             FROM events WHERE stream = $1 AND command_id = $2 AND recorded_at = \
             (SELECT recorded_at FROM events WHERE stream = $1 AND command_id = $2 \
              ORDER BY position DESC LIMIT 1)",
        )
        .bind(stream)
        .bind(command_id)
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(last) = row.get::<Option<i64>, _>("last") else {
            return Ok(None);
        };
        let line: Option<String> = row.get("line");
        let refused: Option<Vec<String>> = row.get("refused");
        let schema = row.get::<Option<i32>, _>("refused_schema").map(i64::from);
        Ok(Some(CommandRecord {
            refused: refused
                .unwrap_or_default()
                .iter()
                .map(|data| refused_slot(data, schema))
                .collect::<Result<_, _>>()?,
            conference: row.get::<Option<Uuid>, _>("conference").map(ConferenceId),
            line: line
                .as_deref()
                .map(LineId::parse)
                .transpose()
                .map_err(|error| StoreError::Corrupt(format!("a stored line id: {error}")))?,
            last_position: last as Position,
            recorded_at: row.get("at"),
        }))
    }

    async fn save_snapshot(&self, stream: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO snapshots (stream, version, schema, data) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (stream) DO UPDATE SET version = excluded.version, \
             schema = excluded.schema, data = excluded.data WHERE excluded.version > snapshots.version",
        )
        .bind(stream)
        .bind(snapshot.version as i64)
        .bind(snapshot.schema as i32)
        .bind(&snapshot.data)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query("SELECT version, schema, data FROM snapshots WHERE stream = $1")
            .bind(stream)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(row.map(|row| Snapshot {
            version: row.get::<i64, _>("version") as u64,
            schema: row.get::<i32, _>("schema") as u32,
            data: row.get("data"),
        }))
    }
}
