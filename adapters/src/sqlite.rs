//! `SqliteEventStore`: the event store of the embedded deployment, in the same SQLite file as the
//! directory and the read models.
//!
//! Every write goes through the database's one writer connection ([`crate::db`]), so appends are
//! serialized and global positions are assigned and committed in the same order: a reader can
//! never see position P+1 before P.
//!
//! Group commit across streams ([`crate::group_commit`]): the appends waiting go into one
//! transaction, each with its own version check, so the pools of many tenants share one fsync.

use async_trait::async_trait;
use meetline_domain::event::Event;
use meetline_domain::ports::{
    Appended, CommandRecord, EventMetadata, EventStore, NewEvent, Position, RecordedEvent,
    Snapshot, StoreError,
};
use meetline_domain::types::{ConferenceId, LineId};
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};
use tokio::sync::watch;
use uuid::Uuid;

pub use crate::db::Database;
use crate::db::{parse_timestamp, timestamp, unavailable};
use crate::group_commit::{AppendRequest, Appends, CommitGroup, GroupVersions};
use crate::refused_slot;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    stream          TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    event_id        TEXT    NOT NULL UNIQUE,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    conference_id   TEXT,
    command_id      TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL,
    causation_id    TEXT,
    actor           TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    data            TEXT    NOT NULL,
    UNIQUE (stream, version)
);
CREATE INDEX IF NOT EXISTS events_by_conference ON events (conference_id, position)
    WHERE conference_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_command ON events (stream, command_id);
CREATE TABLE IF NOT EXISTS snapshots (
    stream   TEXT PRIMARY KEY,
    version  INTEGER NOT NULL,
    schema   INTEGER NOT NULL,
    data     BLOB    NOT NULL
);
"#;

/// `SqliteEventStore`: the event store port on the embedded database.
#[derive(Debug)]
pub struct SqliteEventStore {
    db: Database,
    head: watch::Sender<Position>,
    appends: Appends,
}

/// Writes a group of appends in one transaction on the writer connection.
struct SqliteCommitter {
    db: Database,
}

impl CommitGroup for SqliteCommitter {
    async fn commit(
        &self,
        group: &[AppendRequest],
    ) -> Result<Vec<Result<Appended, StoreError>>, sqlx::Error> {
        if let [request] = group
            && !request.events.is_empty()
            && request.events.len() <= INSERT_CHUNK
        {
            return Ok(vec![self.append_alone(request).await?]);
        }
        // On a connection of its own: if anything fails, it is closed, not given back (SQLite may
        // have rolled the transaction back by itself, and sqlx's count of the connection's
        // transactions would then be wrong — see the projector's `apply_next`).
        let mut connection = self.db.writer.acquire().await?;
        let committed = async {
            let mut transaction = sqlx::Connection::begin(&mut *connection).await?;
            let mut versions = GroupVersions::default();
            let mut outcomes = Vec::with_capacity(group.len());
            for request in group {
                let actual = match versions.get(&request.stream) {
                    Some(version) => version,
                    None => {
                        let version: i64 = sqlx::query_scalar(
                            "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?",
                        )
                        .bind(&request.stream)
                        .fetch_one(&mut *transaction)
                        .await?;
                        version as u64
                    }
                };
                let base = match versions.check(request, actual) {
                    Ok(base) => base,
                    Err(conflict) => {
                        outcomes.push(Err(conflict));
                        continue;
                    }
                };
                let positions = SqliteEventStore::insert(
                    &mut transaction,
                    &request.stream,
                    base + 1,
                    &request.events,
                )
                .await?;
                outcomes.push(Ok(Appended {
                    positions,
                    version: base + request.events.len() as u64,
                }));
            }
            transaction.commit().await?;
            Ok(outcomes)
        }
        .await;
        if committed.is_err() {
            connection.close_on_drop();
        }
        committed
    }
}

impl SqliteCommitter {
    /// A group of one append (a single busy pool's group commit, every one at C = 1): one
    /// statement in autocommit — the version check inside the `INSERT` — and a read of its last
    /// row id, instead of `BEGIN`, a version read, the `INSERT … RETURNING` (a row back per
    /// event) and `COMMIT`: two hand-overs to SQLite's worker thread instead of four, and no row
    /// per event.
    async fn append_alone(
        &self,
        request: &AppendRequest,
    ) -> Result<Result<Appended, StoreError>, sqlx::Error> {
        let events = &request.events;
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; events.len()].join(", ");
        let statement = format!(
            "INSERT INTO events (stream, version, event_id, event_type, schema_version, \
             conference_id, command_id, correlation_id, causation_id, actor, recorded_at, data) \
             SELECT * FROM (VALUES {values}) \
             WHERE (SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?) = ? \
             ORDER BY column2"
        );
        let query = sqlx::query(AssertSqlSafe(statement));
        let query = bind_rows(query, &request.stream, request.expected_version + 1, events)
            .bind(request.stream.clone())
            .bind(request.expected_version as i64);
        // The statement and the read of its last row id on one connection: nothing else may
        // insert in between (the read models share the writer).
        let mut connection = self.db.writer.acquire().await?;
        let done = query.execute(&mut *connection).await?;
        let count = events.len() as u64;
        if done.rows_affected() == 0 {
            let actual: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?")
                    .bind(&request.stream)
                    .fetch_one(&mut *connection)
                    .await?;
            return Ok(Err(StoreError::Conflict {
                stream: request.stream.clone(),
                expected: request.expected_version,
                actual: actual as u64,
            }));
        }
        // One writer, one multi-row INSERT: its rows, ordered by version (`column2`), take the
        // next positions in that order (AUTOINCREMENT: each new row one past the largest
        // ever), so the last position names them all. The conformance suite reads them back.
        let last: i64 = sqlx::query_scalar("SELECT last_insert_rowid()")
            .fetch_one(&mut *connection)
            .await?;
        let last = last as u64;
        Ok(Ok(Appended {
            positions: (last + 1 - count..=last).collect(),
            version: request.expected_version + count,
        }))
    }
}

/// Binds the twelve columns of each of `events`, as versions `first_version…` of `stream`.
fn bind_rows<'q>(
    mut query: sqlx::query::Query<'q, Any, <Any as sqlx::Database>::Arguments>,
    stream: &str,
    first_version: u64,
    events: &[NewEvent],
) -> sqlx::query::Query<'q, Any, <Any as sqlx::Database>::Arguments> {
    for (offset, new) in events.iter().enumerate() {
        let meta = &new.metadata;
        query = query
            .bind(stream.to_owned())
            .bind((first_version + offset as u64) as i64)
            .bind(meta.event_id.to_string())
            .bind(new.event.type_name())
            .bind(meta.schema_version as i64)
            .bind(new.event.conference().map(|id| id.to_string()))
            .bind(meta.command_id.to_string())
            .bind(meta.correlation_id.to_string())
            .bind(meta.causation_id.map(|id| id.to_string()))
            .bind(meta.actor.clone())
            .bind(timestamp(meta.recorded_at))
            .bind(new.event.to_json());
    }
    query
}

impl SqliteEventStore {
    /// # Errors
    /// When the head position cannot be read.
    pub async fn new(db: Database) -> Result<Self, StoreError> {
        sqlx::raw_sql(SCHEMA)
            .execute(&db.writer)
            .await
            .map_err(unavailable)?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&db.reader)
            .await
            .map_err(unavailable)?;
        let head = watch::Sender::new(head as Position);
        let appends = Appends::start(SqliteCommitter { db: db.clone() }, head.clone());
        Ok(Self { db, head, appends })
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Inserts `events` as versions `first_version…` in multi-row statements (one round trip to
    /// the database per [`INSERT_CHUNK`] events) and returns their positions in version order.
    async fn insert(
        transaction: &mut Transaction<'_, Any>,
        stream: &str,
        first_version: u64,
        events: &[NewEvent],
    ) -> Result<Vec<Position>, sqlx::Error> {
        let mut positions = Vec::with_capacity(events.len());
        for (chunk_index, chunk) in events.chunks(INSERT_CHUNK).enumerate() {
            let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let statement = format!(
                "INSERT INTO events (stream, version, event_id, event_type, schema_version, \
                 conference_id, command_id, correlation_id, causation_id, actor, recorded_at, \
                 data) VALUES {values} RETURNING version, position"
            );
            let first = first_version + (chunk_index * INSERT_CHUNK) as u64;
            let query = bind_rows(sqlx::query(AssertSqlSafe(statement)), stream, first, chunk);
            // RETURNING gives rows in no promised order: put them in version order.
            let mut rows: Vec<(i64, i64)> = query
                .fetch_all(&mut **transaction)
                .await?
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            rows.sort_unstable();
            positions.extend(rows.into_iter().map(|(_, position)| position as Position));
        }
        Ok(positions)
    }
}

/// Events per INSERT statement: 12 parameters each, far below SQLite's limit of 32,766.
const INSERT_CHUNK: usize = 64;

const SELECT_EVENTS: &str = "SELECT position, stream, version, event_id, event_type, \
    schema_version, command_id, correlation_id, causation_id, actor, recorded_at, data FROM events";

fn parse_uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|error| StoreError::Corrupt(format!("uuid {text:?}: {error}")))
}

fn decode(row: &AnyRow) -> Result<RecordedEvent, StoreError> {
    let event_type: String = row.get("event_type");
    let schema_version: i64 = row.get("schema_version");
    let data: String = row.get("data");
    let event = Event::from_stored(&event_type, schema_version as u32, &data)
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    let causation: Option<String> = row.get("causation_id");
    Ok(RecordedEvent {
        position: row.get::<i64, _>("position") as Position,
        stream: row.get("stream"),
        version: row.get::<i64, _>("version") as u64,
        event,
        metadata: EventMetadata {
            event_id: parse_uuid(row.get("event_id"))?,
            command_id: parse_uuid(row.get("command_id"))?,
            correlation_id: parse_uuid(row.get("correlation_id"))?,
            causation_id: causation.as_deref().map(parse_uuid).transpose()?,
            actor: row.get("actor"),
            recorded_at: parse_timestamp(row.get("recorded_at"))?,
            schema_version: schema_version as u32,
        },
    })
}

fn decode_all(rows: &[AnyRow]) -> Result<Vec<RecordedEvent>, StoreError> {
    rows.iter().map(decode).collect()
}

#[async_trait]
impl EventStore for SqliteEventStore {
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
        // Limits are written into the statements, not bound: SQLite re-prepares a statement
        // whose bound `LIMIT ?` changes value (its planner reads it). Clamped to SQLite's
        // integers (a bound limit beyond them used to wrap to -1: no limit).
        let limit = limit.min(i64::MAX as usize);
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{SELECT_EVENTS} WHERE stream = ? AND version > ? ORDER BY version LIMIT {limit}"
        )))
        .bind(stream)
        .bind(after_version as i64)
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        decode_all(&rows)
    }

    /// A page as one row: per event a row costs sqlx's SQLite worker a channel hand-over and a
    /// copy of each value (most of a replay's time, by `perf`); one JSON array of the page
    /// costs it once.
    async fn read_stream_events(
        &self,
        stream: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let limit = limit.min(i64::MAX as usize);
        let page: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT json_group_array(json_array(version, event_type, schema_version, json(data))) \
             FROM (SELECT version, event_type, schema_version, data FROM events \
             WHERE stream = ? AND version > ? ORDER BY version LIMIT {limit})",
        )))
        .bind(stream)
        .bind(after_version as i64)
        .fetch_one(&self.db.reader)
        .await
        .map_err(unavailable)?;
        events_of_page(stream, after_version, page.as_deref())
    }

    async fn read_tagged(
        &self,
        stream: &str,
        conference: ConferenceId,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{SELECT_EVENTS} WHERE conference_id = ? AND stream = ? ORDER BY position"
        )))
        .bind(conference.to_string())
        .bind(stream)
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        decode_all(&rows)
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = limit.min(i64::MAX as usize);
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{SELECT_EVENTS} WHERE position > ? ORDER BY position LIMIT {limit}"
        )))
        .bind(after as i64)
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        decode_all(&rows)
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        Ok(*self.head.borrow())
    }

    async fn wait_for_events(&self, after: Position) {
        let mut receiver = self.head.subscribe();
        // The sender lives as long as `self`, so this only ends when the head moves.
        let _ = receiver.wait_for(|head| *head > after).await;
    }

    async fn find_command(
        &self,
        stream: &str,
        command_id: Uuid,
    ) -> Result<Option<CommandRecord>, StoreError> {
        let row = sqlx::query(
            // The newest use of the id (a key may be used again once its 24 hours are over):
            // the events of one use share their `recorded_at`.
            // Its conference: the first event's that names one (the answer it was given).
            "WITH newest AS (SELECT position, recorded_at, conference_id, event_type, schema_version, data \
             FROM events WHERE stream = ?1 AND command_id = ?2 AND recorded_at = \
             (SELECT recorded_at FROM events WHERE stream = ?1 AND command_id = ?2 \
              ORDER BY position DESC LIMIT 1)) \
             SELECT MAX(position) AS last, MIN(recorded_at) AS at, \
             (SELECT conference_id FROM newest WHERE conference_id IS NOT NULL \
              ORDER BY position LIMIT 1) AS conference, \
             MAX(CASE WHEN event_type = 'LineAdded' THEN json_extract(data, '$.line') END) AS line, \
             (SELECT json_group_array(data) FROM (SELECT data FROM newest \
              WHERE event_type = 'DemandRefused' ORDER BY position)) AS refused, \
             MAX(CASE WHEN event_type = 'DemandRefused' THEN schema_version END) AS refused_schema \
             FROM newest",
        )
        .bind(stream)
        .bind(command_id.to_string())
        .fetch_one(&self.db.reader)
        .await
        .map_err(unavailable)?;
        let Some(last) = row.get::<Option<i64>, _>("last") else {
            return Ok(None);
        };
        let conference: Option<String> = row.get("conference");
        let line: Option<String> = row.get("line");
        let refused: Option<String> = row.get("refused");
        let refused: Vec<String> = refused
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|error| StoreError::Corrupt(format!("refusals: {error}")))?
            .unwrap_or_default();
        let schema = row.get::<Option<i64>, _>("refused_schema");
        Ok(Some(CommandRecord {
            refused: refused
                .iter()
                .map(|data| refused_slot(data, schema))
                .collect::<Result<_, _>>()?,
            line: line
                .as_deref()
                .map(LineId::parse)
                .transpose()
                .map_err(|error| StoreError::Corrupt(format!("a stored line id: {error}")))?,
            conference: conference
                .as_deref()
                .map(parse_uuid)
                .transpose()?
                .map(ConferenceId),
            last_position: last as Position,
            recorded_at: parse_timestamp(row.get("at"))?,
        }))
    }

    async fn save_snapshot(&self, stream: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO snapshots (stream, version, schema, data) VALUES (?, ?, ?, ?) \
             ON CONFLICT (stream) DO UPDATE SET version = excluded.version, \
             schema = excluded.schema, data = excluded.data WHERE excluded.version > snapshots.version",
        )
        .bind(stream)
        .bind(snapshot.version as i64)
        .bind(snapshot.schema as i64)
        .bind(&snapshot.data)
        .execute(&self.db.writer)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        // Files from before snapshots were binary declared the column TEXT: read it as bytes.
        let row = sqlx::query(
            "SELECT version, schema, CAST(data AS BLOB) AS data FROM snapshots WHERE stream = ?",
        )
        .bind(stream)
        .fetch_optional(&self.db.reader)
        .await
        .map_err(unavailable)?;
        Ok(row.map(|row| Snapshot {
            version: row.get::<i64, _>("version") as u64,
            schema: row.get::<i64, _>("schema") as u32,
            data: row.get("data"),
        }))
    }
}

/// The events of a page read as one JSON array of `[version, type, schema,
/// data]` (see `read_stream_events`): decoded, and checked to be the versions after
/// `after_version`, dense and in order — a page out of order is never used.
fn events_of_page(
    stream: &str,
    after_version: u64,
    page: Option<&str>,
) -> Result<Vec<meetline_domain::Event>, meetline_domain::ports::StoreError> {
    use meetline_domain::ports::StoreError;
    let rows: Vec<(u64, String, u32, &serde_json::value::RawValue)> =
        serde_json::from_str(page.unwrap_or("[]"))
            .map_err(|error| StoreError::Corrupt(format!("a page of {stream}: {error}")))?;
    let mut events = Vec::with_capacity(rows.len());
    for (index, (version, event_type, schema, data)) in rows.into_iter().enumerate() {
        crate::expect_next_version(stream, after_version, index, version)?;
        events.push(
            meetline_domain::Event::from_stored(&event_type, schema, data.get())
                .map_err(|error| StoreError::Corrupt(error.to_string()))?,
        );
    }
    Ok(events)
}
