//! The projector follows the global log and keeps the read models. Each batch of events and the
//! checkpoint after it are written in **one transaction**, so every event is applied exactly
//! once, whatever crashes.

use std::sync::Arc;
use std::time::Duration;

use meetline_db::{Backend, Database, unavailable};
use meetline_domain::ports::{EventStore, Position, StoreError};
use sqlx::{Any, Row, Transaction};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::apply::apply_events;
use crate::schema::{self, Tables};

pub use crate::schema::READ_MODELS;

/// Creates the read-model tables if needed.
///
/// # Errors
/// When the schema cannot be created.
pub async fn migrate(db: &Database) -> Result<(), StoreError> {
    schema::migrate(db).await.map(|_| ())
}

/// How many events one transaction applies while following the log.
pub const BATCH: usize = 1000;

/// The least time between two batches while events keep coming (see [`Projector::run`]).
const FOLLOW_PAUSE: Duration = Duration::from_millis(100);

/// How many events one transaction applies while a rebuild fills a new generation.
pub const REBUILD_BATCH: usize = 10_000;

/// The same on SQLite, where each chunk holds the one write lock of the file.
pub const REBUILD_BATCH_SQLITE: usize = 2_000;

pub struct Projector {
    store: Arc<dyn EventStore>,
    db: Database,
    applied: watch::Sender<Position>,
    leading: watch::Sender<bool>,
}

/// How far a rebuild has come: the position the new generation has applied, and the head of the
/// log when the rebuild started (or, at the end, the position it swapped in at).
#[derive(Debug, Clone, Copy)]
pub struct RebuildProgress {
    pub position: Position,
    pub head: Position,
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

    /// Applies every event readable now to the live read models. Returns how many it applied.
    ///
    /// # Errors
    /// When the store or the read-model database fails; nothing of the failed batch is kept.
    /// `StoreError::Conflict` when another projector (or a rebuild's swap) moved the checkpoint.
    pub async fn catch_up(&self, mut progress: impl FnMut(Position)) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let applied = self.apply_next().await?;
            if applied == 0 {
                return Ok(total);
            }
            total += applied as u64;
            progress(*self.applied.borrow());
        }
    }

    /// Applies the next batch (up to [`BATCH`] events) to the live read models; returns its
    /// length.
    #[tracing::instrument(level = "debug", name = "project", skip(self), fields(events))]
    async fn apply_next(&self) -> Result<usize, StoreError> {
        let position = *self.applied.borrow();
        let batch = self.store.read_all(position, BATCH).await?;
        let Some(last) = batch.last().map(|event| event.position) else {
            return Ok(0);
        };
        tracing::Span::current().record("events", batch.len());
        let mut connection = self.db.writer.acquire().await.map_err(unavailable)?;
        let applied = async {
            let mut transaction = sqlx::Connection::begin(&mut *connection)
                .await
                .map_err(unavailable)?;
            move_checkpoint(&self.db, &mut transaction, READ_MODELS, position, last).await?;
            // Read under the checkpoint's lock: a rebuild swaps generations holding it too.
            let generation = schema::live_generation(&self.db, &mut *transaction)
                .await?
                .ok_or_else(|| StoreError::Corrupt("no live read-model generation".to_owned()))?;
            apply_events(&self.db, &mut transaction, &Tables::of(generation), &batch)
                .await
                .map_err(unavailable)?;
            transaction.commit().await.map_err(unavailable)
        }
        .await;
        if applied.is_err() {
            // SQLite rolls a transaction back by itself on some errors (a full disk): sqlx, which
            // counts the connection's transactions, would then take the next `BEGIN` on it for
            // a savepoint and leave the one after open — and the appends that share the writer
            // would run inside it, acknowledged and never committed. A fresh connection instead.
            connection.close_on_drop();
        }
        applied?;
        self.applied.send_replace(last);
        Ok(batch.len())
    }

    /// Follows the log until `stop` is cancelled (a batch under way is finished first), retrying
    /// after failures. On PostgreSQL only the
    /// node holding the projection lock applies events; the others follow the stored checkpoint
    /// (so their `X-Min-Position` waits still work) and take over when the leader's session ends.
    pub async fn run(self, stop: CancellationToken) {
        let mut leadership: Option<Leadership> = None;
        // When the last batch was applied: under a steady stream of events the next one waits
        // until FOLLOW_PAUSE has passed, so that batches grow with the load instead of each
        // taking the writer (and, on SQLite, a commit) for a handful of events. After a quiet
        // spell the first event is applied at once.
        let mut last_applied: Option<tokio::time::Instant> = None;
        while !stop.is_cancelled() {
            if let Some(at) = last_applied.take() {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep_until(at + FOLLOW_PAUSE) => {}
                }
            }
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
                match self.apply_next().await {
                    // A full batch: more are waiting, go on at once.
                    Ok(BATCH) => continue,
                    Ok(0) => {}
                    Ok(_) => last_applied = Some(tokio::time::Instant::now()),
                    Err(StoreError::Conflict { .. }) => {
                        tracing::info!(
                            "the checkpoint moved (another projector, or a rebuild); re-reading it"
                        );
                        self.reload_checkpoint().await;
                        continue;
                    }
                    Err(error) => {
                        tracing::error!(%error, "projection batch failed; retrying");
                        tokio::select! {
                            () = stop.cancelled() => {}
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
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
            tokio::select! {
                () = stop.cancelled() => {}
                _ = tokio::time::timeout(wait, self.store.wait_for_events(position)) => {}
            }
        }
        tracing::info!("projector stopped");
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

    /// Rebuilds the read models from position 0 **beside the live ones**, which the query API
    /// keeps serving until the new ones have caught up with the log; then swaps them in, in one
    /// transaction, and drops the old ones (decision 0018). One rebuild at a time: a rebuild
    /// holds a lease on its generation, renewed with every chunk; another one is refused while
    /// the lease runs. An interrupted rebuild leaves the live read models as they were; the
    /// next rebuild drops what it left once its lease has run out. Returns how many events the
    /// new generation applied.
    ///
    /// # Errors
    /// When the store or the read-model database fails; `StoreError::Conflict` when another
    /// rebuild holds the lease (or took this one's over).
    #[tracing::instrument(name = "rebuild", skip_all)]
    pub async fn rebuild(
        &self,
        mut progress: impl FnMut(RebuildProgress),
    ) -> Result<u64, StoreError> {
        let lease = Lease::new();
        let building = self.start_generation(&lease).await?;
        let checkpoint_name = building.building_checkpoint();
        let head = self.store.head_position().await?;
        // On SQLite every write of the file — the commands' appends too — waits for a chunk:
        // smaller chunks there, and indexes kept up as rows come rather than built at the end
        // under the write lock. PostgreSQL builds them once, at the end.
        let (chunk, indexes_at_end) = match self.db.backend {
            Backend::Sqlite => (REBUILD_BATCH_SQLITE, false),
            Backend::Postgres => (REBUILD_BATCH, true),
        };
        let mut position: Position = 0;
        let mut total = 0;
        self.fill(
            &building,
            &lease,
            chunk,
            &mut position,
            &mut total,
            |position| {
                progress(RebuildProgress {
                    position,
                    head: head.max(position),
                });
            },
        )
        .await?;
        if indexes_at_end {
            // Not under the schema lock: nothing else touches a generation being built, and a
            // node starting meanwhile need not wait for the index.
            let mut transaction = self.db.writer.begin().await.map_err(unavailable)?;
            schema::create_indexes(&mut transaction, &building).await?;
            lease.renew(&self.db, &mut transaction, &building).await?;
            transaction.commit().await.map_err(unavailable)?;
            // What arrived while the indexes were built, before anything is locked.
            self.fill(&building, &lease, chunk, &mut position, &mut total, |_| {})
                .await?;
        }
        // The swap. Locks in this order — the schema lock, the live checkpoint's row (which the
        // live projector takes first too), then the views (in the queries' order) — so that it
        // cannot deadlock with the projector or a query. Then: what arrived since, the
        // checkpoint, the generations, the views.
        let mut transaction = schema::begin_schema_change(&self.db).await?;
        let live: i64 = sqlx::query_scalar(self.db.sql(
            "UPDATE rm_checkpoints SET position = position WHERE name = ? RETURNING position",
        ))
        .bind(READ_MODELS)
        .fetch_one(&mut *transaction)
        .await
        .map_err(unavailable)?;
        schema::lock_views(&self.db, &mut transaction).await?;
        lease.renew(&self.db, &mut transaction, &building).await?;
        let retired = schema::live_generation(&self.db, &mut *transaction).await?;
        loop {
            let batch = self.store.read_all(position, chunk).await?;
            let Some(last) = batch.last().map(|event| event.position) else {
                break;
            };
            apply_events(&self.db, &mut transaction, &building, &batch)
                .await
                .map_err(unavailable)?;
            total += batch.len() as u64;
            position = last;
        }
        if position < live as Position {
            return Err(StoreError::Corrupt(format!(
                "the log ends at {position} but the live read models applied {live}"
            )));
        }
        sqlx::query(
            self.db
                .sql("UPDATE rm_checkpoints SET position = ? WHERE name = ?"),
        )
        .bind(position as i64)
        .bind(READ_MODELS)
        .execute(&mut *transaction)
        .await
        .map_err(unavailable)?;
        sqlx::query(self.db.sql("DELETE FROM rm_checkpoints WHERE name = ?"))
            .bind(checkpoint_name.as_str())
            .execute(&mut *transaction)
            .await
            .map_err(unavailable)?;
        sqlx::query(self.db.sql(
            "UPDATE rm_generations SET state = CASE WHEN generation = ? THEN 'live' \
             ELSE 'retired' END, owner = NULL, lease_until = NULL \
             WHERE generation = ? OR state = 'live'",
        ))
        .bind(building.generation)
        .bind(building.generation)
        .execute(&mut *transaction)
        .await
        .map_err(unavailable)?;
        schema::point_views_at(&self.db, &mut transaction, &building).await?;
        transaction.commit().await.map_err(unavailable)?;
        self.applied.send_replace(position);
        progress(RebuildProgress {
            position,
            head: position,
        });
        if let Some(old) = retired {
            let mut transaction = schema::begin_schema_change(&self.db).await?;
            schema::drop_generation(&self.db, &mut transaction, &Tables::of(old)).await?;
            transaction.commit().await.map_err(unavailable)?;
        }
        Ok(total)
    }

    /// Applies the log after `position` to the generation being built, chunk by chunk, each with
    /// its checkpoint and the lease's renewal in one transaction, until a read comes back empty.
    /// The next chunk is read while one is applied (a reader beside the writer).
    async fn fill(
        &self,
        building: &Tables,
        lease: &Lease,
        chunk: usize,
        position: &mut Position,
        total: &mut u64,
        mut progress: impl FnMut(Position),
    ) -> Result<(), StoreError> {
        let checkpoint_name = building.building_checkpoint();
        let mut batch = self.store.read_all(*position, chunk).await?;
        while let Some(last) = batch.last().map(|event| event.position) {
            let from = *position;
            let apply = async {
                let mut transaction = self.db.writer.begin().await.map_err(unavailable)?;
                lease.renew(&self.db, &mut transaction, building).await?;
                move_checkpoint(&self.db, &mut transaction, &checkpoint_name, from, last).await?;
                apply_events(&self.db, &mut transaction, building, &batch)
                    .await
                    .map_err(unavailable)?;
                transaction.commit().await.map_err(unavailable)
            };
            let (applied, next) = tokio::join!(apply, self.store.read_all(last, chunk));
            applied?;
            *total += batch.len() as u64;
            *position = last;
            progress(last);
            batch = next?;
        }
        Ok(())
    }

    /// Drops what an interrupted rebuild left (once its lease has run out) and creates the next
    /// generation's tables, empty, under `lease`. Refused while another rebuild's lease runs.
    async fn start_generation(&self, lease: &Lease) -> Result<Tables, StoreError> {
        let mut transaction = schema::begin_schema_change(&self.db).await?;
        let building: Vec<(i64, Option<i64>)> = sqlx::query(
            self.db
                .sql("SELECT generation, lease_until FROM rm_generations WHERE state = 'building'"),
        )
        .fetch_all(&mut *transaction)
        .await
        .map_err(unavailable)?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
        for (generation, until) in building {
            if until.is_some_and(|until| until > Lease::now()) {
                return Err(Lease::conflict(format!(
                    "read-model generation {generation}: another rebuild holds it for up to {} s \
                     more",
                    until.unwrap_or_default() - Lease::now()
                )));
            }
            schema::drop_generation(&self.db, &mut transaction, &Tables::of(generation)).await?;
        }
        for retired in schema::generations_in(&self.db, &mut transaction, "retired").await? {
            schema::drop_generation(&self.db, &mut transaction, &Tables::of(retired)).await?;
        }
        let next: i64 = sqlx::query_scalar(self.db.sql(
            "UPDATE rm_checkpoints SET position = position + 1 WHERE name = ? RETURNING position",
        ))
        .bind(schema::GENERATIONS)
        .fetch_one(&mut *transaction)
        .await
        .map_err(unavailable)?;
        let tables = Tables::of(next);
        sqlx::query(self.db.sql(
            "INSERT INTO rm_generations (generation, state, owner, lease_until) \
             VALUES (?, 'building', ?, ?)",
        ))
        .bind(next)
        .bind(lease.owner.as_str())
        .bind(Lease::now() + LEASE_SECONDS)
        .execute(&mut *transaction)
        .await
        .map_err(unavailable)?;
        sqlx::query(
            self.db
                .sql("INSERT INTO rm_checkpoints (name, position) VALUES (?, 0)"),
        )
        .bind(tables.building_checkpoint())
        .execute(&mut *transaction)
        .await
        .map_err(unavailable)?;
        let indexes_now = self.db.backend == Backend::Sqlite;
        schema::create_generation(&self.db, &mut transaction, &tables, indexes_now).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(tables)
    }
}

/// How long a rebuild's hold on its generation lasts without being renewed (each chunk renews
/// it). A rebuild that died blocks the next one for at most this long.
const LEASE_SECONDS: i64 = 300;

/// A rebuild's hold on the generation it builds.
struct Lease {
    owner: String,
}

impl Lease {
    fn new() -> Self {
        Self {
            owner: uuid::Uuid::new_v4().to_string(),
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    /// A rebuild that cannot go on because another holds the generation: `what` says which and
    /// why (`meetline rebuild` prints it).
    fn conflict(what: String) -> StoreError {
        StoreError::Conflict {
            stream: what,
            expected: 0,
            actual: 0,
        }
    }

    /// Extends the lease inside `transaction`; `StoreError::Conflict` when this rebuild no
    /// longer holds its generation (another rebuild took it over after the lease ran out).
    async fn renew(
        &self,
        db: &Database,
        transaction: &mut Transaction<'_, Any>,
        tables: &Tables,
    ) -> Result<(), StoreError> {
        let renewed = sqlx::query(db.sql(
            "UPDATE rm_generations SET lease_until = ? \
             WHERE generation = ? AND owner = ? AND state = 'building'",
        ))
        .bind(Self::now() + LEASE_SECONDS)
        .bind(tables.generation)
        .bind(self.owner.as_str())
        .execute(&mut **transaction)
        .await
        .map_err(unavailable)?;
        if renewed.rows_affected() == 1 {
            Ok(())
        } else {
            Err(Self::conflict(format!(
                "read-model generation {}: this rebuild lost it to another",
                tables.generation
            )))
        }
    }
}

/// Moves checkpoint `name` from `from` to `to` by compare-and-set, which also locks its row until
/// the transaction ends. `StoreError::Conflict` when it was not at `from`: someone else applied
/// these events first.
async fn move_checkpoint(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    name: &str,
    from: Position,
    to: Position,
) -> Result<(), StoreError> {
    let moved = sqlx::query(
        db.sql("UPDATE rm_checkpoints SET position = ? WHERE name = ? AND position = ?"),
    )
    .bind(to as i64)
    .bind(name)
    .bind(from as i64)
    .execute(&mut **transaction)
    .await
    .map_err(unavailable)?;
    if moved.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            stream: name.to_owned(),
            expected: from,
            actual: to,
        })
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
