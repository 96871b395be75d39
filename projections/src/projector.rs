//! The projector follows the global log and keeps the read models. Each batch of events and the
//! checkpoint after it are written in **one transaction**, so every event is applied exactly
//! once, whatever crashes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use meetline_adapters::db::{Backend, Database, timestamp, unavailable};
use meetline_domain::event::Event;
use meetline_domain::ports::{EventStore, Position, RecordedEvent, StoreError};
use meetline_domain::types::{ConferenceId, LineId, TenantId};
use sqlx::{Any, Row, Transaction};
use tokio::sync::watch;

use crate::view::{ConferenceView, LineRef, tenant_of_stream};

/// The name of the read-model projection's checkpoint.
pub const READ_MODELS: &str = "read_models";

const SQLITE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS rm_checkpoints (
    name TEXT PRIMARY KEY, position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rm_lines (
    tenant TEXT NOT NULL, line_id TEXT NOT NULL, ord INTEGER NOT NULL, name TEXT NOT NULL,
    provider TEXT NOT NULL, status TEXT NOT NULL, removed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, line_id)
);
CREATE TABLE IF NOT EXISTS rm_conferences (
    tenant TEXT NOT NULL, id TEXT NOT NULL, number TEXT NOT NULL, subject TEXT NOT NULL,
    start TEXT NOT NULL, "end" TEXT NOT NULL, status TEXT NOT NULL, line_id TEXT NOT NULL,
    position INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX IF NOT EXISTS rm_conferences_by_number ON rm_conferences (tenant, number);
CREATE INDEX IF NOT EXISTS rm_conferences_by_line ON rm_conferences (tenant, line_id, start);
CREATE INDEX IF NOT EXISTS rm_conferences_live ON rm_conferences (start)
    WHERE status IN ('not_started', 'in_progress');
CREATE TABLE IF NOT EXISTS rm_participants (
    tenant TEXT NOT NULL, user_id TEXT NOT NULL, conference_id TEXT NOT NULL,
    start TEXT NOT NULL, "end" TEXT NOT NULL, status TEXT NOT NULL, subject TEXT NOT NULL,
    PRIMARY KEY (tenant, user_id, conference_id)
);
CREATE INDEX IF NOT EXISTS rm_participants_all
    ON rm_participants (tenant, user_id, start DESC, conference_id DESC);
CREATE INDEX IF NOT EXISTS rm_participants_recent
    ON rm_participants (tenant, user_id, start) WHERE status IN ('not_started', 'in_progress');
CREATE TABLE IF NOT EXISTS rm_provider_meetings_by_line (
    tenant TEXT NOT NULL, line_id TEXT NOT NULL, meeting_id TEXT NOT NULL,
    conference_id TEXT NOT NULL,
    PRIMARY KEY (tenant, line_id, meeting_id)
);
CREATE INDEX IF NOT EXISTS rm_provider_meetings_by_id ON rm_provider_meetings_by_line (meeting_id);
-- Before 0.2 a meeting id was mapped to one tenant globally (and could be taken over by
-- another tenant): carry its rows over, keyed by the conference's line, and drop it.
CREATE TABLE IF NOT EXISTS rm_provider_meetings (
    meeting_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, conference_id TEXT NOT NULL
);
INSERT INTO rm_provider_meetings_by_line (tenant, line_id, meeting_id, conference_id)
    SELECT p.tenant, c.line_id, p.meeting_id, p.conference_id FROM rm_provider_meetings p
    JOIN rm_conferences c ON c.tenant = p.tenant AND c.id = p.conference_id WHERE true
    ON CONFLICT DO NOTHING;
DROP TABLE rm_provider_meetings;
CREATE TABLE IF NOT EXISTS ops_provider_failures (
    tenant TEXT NOT NULL, hour TEXT NOT NULL, count BIGINT NOT NULL,
    PRIMARY KEY (tenant, hour)
);
CREATE TABLE IF NOT EXISTS provisioning_attempts (
    tenant TEXT NOT NULL, conference TEXT NOT NULL, position BIGINT NOT NULL,
    PRIMARY KEY (tenant, conference, position)
);
CREATE TABLE IF NOT EXISTS ops_rejections (
    tenant TEXT NOT NULL, hour TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (tenant, hour)
);
"#;

/// The same tables on PostgreSQL. Timestamps and ids are text in the "C" collation, so they sort
/// byte-wise as on SQLite.
const POSTGRES_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS rm_checkpoints (
    name TEXT PRIMARY KEY, position BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rm_lines (
    tenant TEXT NOT NULL, line_id TEXT NOT NULL, ord BIGINT NOT NULL, name TEXT NOT NULL,
    provider TEXT NOT NULL, status TEXT NOT NULL, removed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, line_id)
);
CREATE TABLE IF NOT EXISTS rm_conferences (
    tenant TEXT NOT NULL, id TEXT COLLATE "C" NOT NULL, number TEXT NOT NULL, subject TEXT NOT NULL,
    start TEXT COLLATE "C" NOT NULL, "end" TEXT COLLATE "C" NOT NULL, status TEXT NOT NULL,
    line_id TEXT NOT NULL, position BIGINT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX IF NOT EXISTS rm_conferences_by_number ON rm_conferences (tenant, number);
CREATE INDEX IF NOT EXISTS rm_conferences_by_line ON rm_conferences (tenant, line_id, start);
CREATE INDEX IF NOT EXISTS rm_conferences_live ON rm_conferences (start)
    WHERE status IN ('not_started', 'in_progress');
CREATE TABLE IF NOT EXISTS rm_participants (
    tenant TEXT NOT NULL, user_id TEXT NOT NULL, conference_id TEXT COLLATE "C" NOT NULL,
    start TEXT COLLATE "C" NOT NULL, "end" TEXT COLLATE "C" NOT NULL, status TEXT NOT NULL,
    subject TEXT NOT NULL,
    PRIMARY KEY (tenant, user_id, conference_id)
);
CREATE INDEX IF NOT EXISTS rm_participants_all
    ON rm_participants (tenant, user_id, start DESC, conference_id DESC);
CREATE INDEX IF NOT EXISTS rm_participants_recent
    ON rm_participants (tenant, user_id, start) WHERE status IN ('not_started', 'in_progress');
CREATE TABLE IF NOT EXISTS rm_provider_meetings_by_line (
    tenant TEXT NOT NULL, line_id TEXT NOT NULL, meeting_id TEXT NOT NULL,
    conference_id TEXT NOT NULL,
    PRIMARY KEY (tenant, line_id, meeting_id)
);
CREATE INDEX IF NOT EXISTS rm_provider_meetings_by_id ON rm_provider_meetings_by_line (meeting_id);
-- Before 0.2 a meeting id was mapped to one tenant globally (and could be taken over by
-- another tenant): carry its rows over, keyed by the conference's line, and drop it.
CREATE TABLE IF NOT EXISTS rm_provider_meetings (
    meeting_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, conference_id TEXT NOT NULL
);
INSERT INTO rm_provider_meetings_by_line (tenant, line_id, meeting_id, conference_id)
    SELECT p.tenant, c.line_id, p.meeting_id, p.conference_id FROM rm_provider_meetings p
    JOIN rm_conferences c ON c.tenant = p.tenant AND c.id = p.conference_id WHERE true
    ON CONFLICT DO NOTHING;
DROP TABLE rm_provider_meetings;
CREATE TABLE IF NOT EXISTS ops_provider_failures (
    tenant TEXT NOT NULL, hour TEXT NOT NULL, count BIGINT NOT NULL,
    PRIMARY KEY (tenant, hour)
);
CREATE TABLE IF NOT EXISTS provisioning_attempts (
    tenant TEXT NOT NULL, conference TEXT NOT NULL, position BIGINT NOT NULL,
    PRIMARY KEY (tenant, conference, position)
);
CREATE TABLE IF NOT EXISTS ops_rejections (
    tenant TEXT NOT NULL, hour TEXT NOT NULL, count BIGINT NOT NULL,
    PRIMARY KEY (tenant, hour)
);
"#;

/// Creates the read-model tables if needed.
///
/// # Errors
/// When the schema cannot be created.
pub async fn migrate(db: &Database) -> Result<(), StoreError> {
    db.migrate(SQLITE_SCHEMA, POSTGRES_SCHEMA)
        .await
        .map_err(unavailable)?;
    sqlx::query(db.sql(
        "INSERT INTO rm_checkpoints (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
    ))
    .bind(READ_MODELS)
    .execute(&db.writer)
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// How many events one transaction applies.
pub const BATCH: usize = 1000;

pub struct Projector {
    store: Arc<dyn EventStore>,
    db: Database,
    applied: watch::Sender<Position>,
    leading: watch::Sender<bool>,
}

impl Projector {
    /// # Errors
    /// When the schema cannot be created or the checkpoint read.
    pub async fn new(store: Arc<dyn EventStore>, db: Database) -> Result<Self, StoreError> {
        migrate(&db).await?;
        let position = checkpoint(&db).await?;
        Ok(Self {
            store,
            db,
            applied: watch::Sender::new(position),
            leading: watch::Sender::new(false),
        })
    }

    /// Whether this process currently runs the projections (always, on SQLite).
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// The position applied so far, updated after each committed batch.
    pub fn applied(&self) -> watch::Receiver<Position> {
        self.applied.subscribe()
    }

    /// Applies every event readable now. Returns how many it applied.
    ///
    /// # Errors
    /// When the store or the read-model database fails; nothing of the failed batch is kept.
    pub async fn catch_up(&self, mut progress: impl FnMut(Position)) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let position = *self.applied.borrow();
            let batch = self.store.read_all(position, BATCH).await?;
            let Some(last) = batch.last().map(|event| event.position) else {
                return Ok(total);
            };
            apply_batch(&self.db, position, &batch).await?;
            total += batch.len() as u64;
            self.applied.send_replace(last);
            progress(last);
        }
    }

    /// Follows the log until the process ends, retrying after failures. On PostgreSQL only the
    /// node holding the projection lock applies events; the others follow the stored checkpoint
    /// (so their `X-Min-Position` waits still work) and take over when the leader's session ends.
    pub async fn run(self) {
        let mut leadership: Option<Leadership> = None;
        loop {
            if leadership.is_none() {
                leadership = Leadership::try_acquire(&self.db).await;
                self.leading.send_replace(leadership.is_some());
                if leadership.is_some() {
                    tracing::info!("this node now runs the projections");
                    self.reload_checkpoint().await;
                }
            }
            if let Some(held) = &mut leadership {
                if !held.still_held().await {
                    tracing::warn!("lost the projection lock; following");
                    leadership = None;
                    self.leading.send_replace(false);
                    continue;
                }
                match self.catch_up(|_| {}).await {
                    Ok(_) => {}
                    Err(StoreError::Conflict { .. }) => {
                        tracing::warn!("another projector moved the checkpoint; re-reading it");
                        self.reload_checkpoint().await;
                        continue;
                    }
                    Err(error) => {
                        tracing::error!(%error, "projection batch failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            } else {
                self.reload_checkpoint().await;
            }
            let position = *self.applied.borrow();
            let wait = if leadership.is_some() {
                Duration::from_millis(500)
            } else {
                Duration::from_millis(100)
            };
            // Bounded so that writes by other processes, and a leader's death, are noticed.
            let _ = tokio::time::timeout(wait, self.store.wait_for_events(position)).await;
        }
    }

    async fn reload_checkpoint(&self) {
        match checkpoint(&self.db).await {
            Ok(position) => {
                self.applied.send_if_modified(|applied| {
                    let moved = *applied != position;
                    *applied = position;
                    moved
                });
            }
            Err(error) => tracing::warn!(%error, "cannot read the projection checkpoint"),
        }
    }

    /// Drops the read models and rebuilds them from position 0.
    ///
    /// # Errors
    /// As [`Projector::catch_up`].
    pub async fn rebuild(&self, progress: impl FnMut(Position)) -> Result<u64, StoreError> {
        let mut transaction = self.db.writer.begin().await.map_err(unavailable)?;
        for table in [
            "rm_lines",
            "rm_conferences",
            "rm_participants",
            "rm_provider_meetings_by_line",
        ] {
            sqlx::query(self.db.sql(&format!("DELETE FROM {table}")))
                .execute(&mut *transaction)
                .await
                .map_err(unavailable)?;
        }
        sqlx::query(
            self.db
                .sql("UPDATE rm_checkpoints SET position = 0 WHERE name = ?"),
        )
        .bind(READ_MODELS)
        .execute(&mut *transaction)
        .await
        .map_err(unavailable)?;
        transaction.commit().await.map_err(unavailable)?;
        self.applied.send_replace(0);
        self.catch_up(progress).await
    }
}

/// The right to run a singleton process (the projections, provisioning). SQLite: the one process
/// always holds it. PostgreSQL: a session-level advisory lock on a dedicated connection, released
/// by PostgreSQL when the session ends — including when the node dies.
pub enum Leadership {
    Embedded,
    Session(sqlx::AnyConnection),
}

/// The advisory lock key of the read-model projection (PostgreSQL).
pub const PROJECTION_LOCK: i64 = 0x6d6c_7072_6f6a_0001;

impl Leadership {
    /// Takes the lock `key` if nobody holds it.
    pub async fn try_acquire_key(db: &Database, key: i64) -> Option<Self> {
        if db.backend == Backend::Sqlite {
            return Some(Self::Embedded);
        }
        let mut connection = db.writer.acquire().await.ok()?;
        let locked: bool = sqlx::query_scalar(db.sql("SELECT pg_try_advisory_lock(?)"))
            .bind(key)
            .fetch_one(&mut *connection)
            .await
            .ok()?;
        // Holding the lock, the connection leaves the pool so that nobody else uses its session;
        // without it, it goes back to the pool as it came.
        locked.then(|| Self::Session(connection.detach()))
    }

    async fn try_acquire(db: &Database) -> Option<Self> {
        Self::try_acquire_key(db, PROJECTION_LOCK).await
    }

    /// Whether the session that holds the lock is still there.
    pub async fn still_held(&mut self) -> bool {
        match self {
            Self::Embedded => true,
            Self::Session(connection) => sqlx::query("SELECT 1")
                .execute(&mut *connection)
                .await
                .is_ok(),
        }
    }
}

/// The read models' checkpoint as stored.
///
/// # Errors
/// When the database cannot be read.
pub async fn checkpoint(db: &Database) -> Result<Position, StoreError> {
    let position: Option<i64> =
        sqlx::query_scalar(db.sql("SELECT position FROM rm_checkpoints WHERE name = ?"))
            .bind(READ_MODELS)
            .fetch_optional(&db.reader)
            .await
            .map_err(unavailable)?;
    Ok(position.unwrap_or(0) as Position)
}

/// The conferences and lines a batch touches, loaded once and written once.
#[derive(Default)]
struct BatchState {
    views: HashMap<(TenantId, ConferenceId), (ConferenceView, Position)>,
    lines: HashMap<(TenantId, LineId), LineRef>,
}

/// Applies `batch`, which follows `from`, and moves the checkpoint from `from` to its last
/// position — all in one transaction. The checkpoint moves by compare-and-set, which also locks
/// its row until commit: if another projector applied these events first, nothing is written and
/// `StoreError::Conflict` tells the caller to re-read the checkpoint.
async fn apply_batch(
    db: &Database,
    from: Position,
    batch: &[RecordedEvent],
) -> Result<(), StoreError> {
    let mut transaction = db.writer.begin().await.map_err(unavailable)?;
    let last = batch.last().map_or(from, |event| event.position);
    let moved = sqlx::query(
        db.sql("UPDATE rm_checkpoints SET position = ? WHERE name = ? AND position = ?"),
    )
    .bind(last as i64)
    .bind(READ_MODELS)
    .bind(from as i64)
    .execute(&mut *transaction)
    .await
    .map_err(unavailable)?;
    if moved.rows_affected() != 1 {
        return Err(StoreError::Conflict {
            stream: READ_MODELS.to_owned(),
            expected: from,
            actual: last,
        });
    }
    let mut state = BatchState::default();
    for recorded in batch {
        let Some(tenant) = tenant_of_stream(&recorded.stream) else {
            continue;
        };
        apply_event(db, &mut transaction, &mut state, &tenant, recorded)
            .await
            .map_err(unavailable)?;
    }
    for ((tenant, _), (view, position)) in &state.views {
        write_view(db, &mut transaction, tenant, view, *position)
            .await
            .map_err(unavailable)?;
    }
    transaction.commit().await.map_err(unavailable)
}

async fn line_ref(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    state: &mut BatchState,
    tenant: &TenantId,
    line: &LineId,
) -> Result<LineRef, sqlx::Error> {
    if let Some(found) = state.lines.get(&(tenant.clone(), line.clone())) {
        return Ok(found.clone());
    }
    let row =
        sqlx::query(db.sql("SELECT name, provider FROM rm_lines WHERE tenant = ? AND line_id = ?"))
            .bind(tenant.as_str())
            .bind(line.as_str())
            .fetch_optional(&mut **transaction)
            .await?;
    let found = row.map_or_else(
        || LineRef::unknown(line),
        |row| LineRef {
            id: line.clone(),
            name: row.get("name"),
            provider: row.get("provider"),
        },
    );
    state
        .lines
        .insert((tenant.clone(), line.clone()), found.clone());
    Ok(found)
}

async fn apply_event(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    state: &mut BatchState,
    tenant: &TenantId,
    recorded: &RecordedEvent,
) -> Result<(), sqlx::Error> {
    let event = &recorded.event;
    match event {
        Event::LineAdded {
            line,
            name,
            provider,
        } => {
            sqlx::query(
                db.sql("INSERT INTO rm_lines (tenant, line_id, ord, name, provider, status) \
                 VALUES (?, ?, ?, ?, ?, 'active') ON CONFLICT (tenant, line_id) DO UPDATE SET \
                 name = excluded.name, provider = excluded.provider, status = 'active', removed = 0"),
            )
            .bind(tenant.as_str())
            .bind(line.as_str())
            .bind(recorded.position as i64)
            .bind(name.as_str())
            .bind(provider.as_str())
            .execute(&mut **transaction)
            .await?;
            state.lines.remove(&(tenant.clone(), line.clone()));
        }
        Event::LineRenamed { line, name } => {
            sqlx::query(db.sql("UPDATE rm_lines SET name = ? WHERE tenant = ? AND line_id = ?"))
                .bind(name.as_str())
                .bind(tenant.as_str())
                .bind(line.as_str())
                .execute(&mut **transaction)
                .await?;
            state.lines.remove(&(tenant.clone(), line.clone()));
        }
        Event::LineMaintenanceStarted { line } | Event::LineReturnedToService { line } => {
            let status = if matches!(event, Event::LineMaintenanceStarted { .. }) {
                "maintenance"
            } else {
                "active"
            };
            sqlx::query(db.sql("UPDATE rm_lines SET status = ? WHERE tenant = ? AND line_id = ?"))
                .bind(status)
                .bind(tenant.as_str())
                .bind(line.as_str())
                .execute(&mut **transaction)
                .await?;
        }
        Event::LineRemoved { line } => {
            sqlx::query(db.sql("UPDATE rm_lines SET removed = 1 WHERE tenant = ? AND line_id = ?"))
                .bind(tenant.as_str())
                .bind(line.as_str())
                .execute(&mut **transaction)
                .await?;
        }
        Event::ConferenceScheduled {
            conference, line, ..
        } => {
            let line = line_ref(db, transaction, state, tenant, line).await?;
            if let Some(view) = ConferenceView::scheduled(event, line) {
                state
                    .views
                    .insert((tenant.clone(), *conference), (view, recorded.position));
            }
        }
        _ => {
            if let Event::ConferenceProvisioned {
                conference,
                line,
                meeting_id,
                ..
            } = event
            {
                // The provider's meeting id → conference, for its webhooks: per tenant and line
                // (the account that created it), so no tenant can claim another's meeting.
                sqlx::query(db.sql(
                    "INSERT INTO rm_provider_meetings_by_line (tenant, line_id, meeting_id, conference_id) \
                     VALUES (?, ?, ?, ?) ON CONFLICT (tenant, line_id, meeting_id) \
                     DO UPDATE SET conference_id = excluded.conference_id",
                ))
                .bind(tenant.as_str())
                .bind(line.as_str())
                .bind(meeting_id.as_str())
                .bind(conference.to_string())
                .execute(&mut **transaction)
                .await?;
            }
            let Some(conference) = event.conference() else {
                return Ok(());
            };
            let key = (tenant.clone(), conference);
            if let std::collections::hash_map::Entry::Vacant(slot) = state.views.entry(key.clone())
            {
                let Some(view) = load_view(db, transaction, tenant, conference).await? else {
                    tracing::warn!(%conference, position = recorded.position, "event for an unknown conference");
                    return Ok(());
                };
                slot.insert((view, recorded.position));
            }
            // Resolve a line the event moves the conference to before borrowing the view.
            let target = match event {
                Event::ConferenceEdited { line, .. } => Some(line.clone()),
                Event::ConferenceMovedToLine { to, .. } => Some(to.clone()),
                _ => None,
            };
            let resolved = match &target {
                Some(line) => Some(line_ref(db, transaction, state, tenant, line).await?),
                None => None,
            };
            let (view, position) = state.views.get_mut(&key).expect("loaded above");
            view.apply(event, |id| {
                resolved
                    .clone()
                    .filter(|found| found.id == *id)
                    .unwrap_or_else(|| LineRef::unknown(id))
            });
            *position = recorded.position;
        }
    }
    Ok(())
}

async fn load_view(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    tenant: &TenantId,
    conference: ConferenceId,
) -> Result<Option<ConferenceView>, sqlx::Error> {
    let data: Option<String> =
        sqlx::query_scalar(db.sql("SELECT data FROM rm_conferences WHERE tenant = ? AND id = ?"))
            .bind(tenant.as_str())
            .bind(conference.to_string())
            .fetch_optional(&mut **transaction)
            .await?;
    data.map(|data| {
        serde_json::from_str(&data).map_err(|error| sqlx::Error::Decode(Box::new(error)))
    })
    .transpose()
}

/// A view as `rm_conferences.data` stores it: with its tenant, as rows always had it (a query
/// node of an earlier version reads rows this one writes; this one ignores the field).
#[derive(serde::Serialize)]
struct StoredView<'a> {
    tenant: &'a TenantId,
    #[serde(flatten)]
    view: &'a ConferenceView,
}

async fn write_view(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    tenant: &TenantId,
    view: &ConferenceView,
    position: Position,
) -> Result<(), sqlx::Error> {
    let id = view.id.to_string();
    let (start, end) = (timestamp(view.slot.start), timestamp(view.slot.end));
    sqlx::query(
        db.sql(r#"INSERT INTO rm_conferences (id, tenant, number, subject, start, "end", status, line_id, position, data)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (tenant, id) DO UPDATE SET subject = excluded.subject, start = excluded.start,
           "end" = excluded."end", status = excluded.status, line_id = excluded.line_id,
           position = excluded.position, data = excluded.data"#),
    )
    .bind(&id)
    .bind(tenant.as_str())
    .bind(view.number.as_str())
    .bind(view.subject.as_str())
    .bind(&start)
    .bind(&end)
    .bind(view.status.as_str())
    .bind(view.line.id.as_str())
    .bind(position as i64)
    .bind(
        serde_json::to_string(&StoredView { tenant, view }).expect("views serialize"),
    )
    .execute(&mut **transaction)
    .await?;
    sqlx::query(db.sql("DELETE FROM rm_participants WHERE tenant = ? AND conference_id = ?"))
        .bind(tenant.as_str())
        .bind(&id)
        .execute(&mut **transaction)
        .await?;
    for user in view.participants() {
        sqlx::query(
            db.sql(r#"INSERT INTO rm_participants (tenant, user_id, conference_id, start, "end", status, subject)
               VALUES (?, ?, ?, ?, ?, ?, ?)"#),
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(&id)
        .bind(&start)
        .bind(&end)
        .bind(view.status.as_str())
        .bind(view.subject.as_str())
        .execute(&mut **transaction)
        .await?;
    }
    Ok(())
}
