//! The read models' tables, in **generations**, so that a rebuild never takes them away from the
//! query API (decision 0018).
//!
//! Each generation `g` has its own tables — `rm_lines_g{g}`, `rm_conferences_g{g}`,
//! `rm_participants_g{g}`, `rm_provider_meetings_g{g}`, `rm_refusals_g{g}`, `rm_series_g{g}` —
//! with their own indexes. The names the queries use (`rm_lines`, `rm_conferences`,
//! `rm_participants`, `rm_provider_meetings_by_line`, `rm_refusals`, `rm_series`) are views of the live generation. A rebuild fills the next generation beside the live one and
//! swaps the views in one transaction; the live one is dropped afterwards. `rm_generations` says
//! which generation is live and which, if any, is being built.
//!
//! Process state (checkpoints, provisioning attempts, ops counters) is not a read model: it is
//! not in a generation and a rebuild does not touch it.

use meetline_db::{Backend, Database, unavailable};
use meetline_domain::ports::StoreError;
use sqlx::{Any, AssertSqlSafe, Transaction};

/// The read-model projection's checkpoint: the position the live generation has applied.
pub const READ_MODELS: &str = "read_models";

/// The PostgreSQL advisory lock (transaction-scoped) that serializes schema changes: several
/// nodes start at once, and a rebuild swaps generations while nodes run.
const SCHEMA_LOCK: i64 = 0x6d6c_7072_6f6a_0002;

/// The PostgreSQL advisory lock (session-scoped, tried, never waited for) of the one node that
/// builds a live generation's "upcoming" index while the others go on.
const UPCOMING_INDEX_LOCK: i64 = 0x6d6c_7072_6f6a_0003;

/// The tables of one generation of the read models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub generation: i64,
    pub lines: String,
    pub conferences: String,
    pub participants: String,
    pub meetings: String,
    /// Refusals for want of a line (`DemandRefused`), counted per tenant and hour.
    pub refusals: String,
    /// Which conferences are occurrences of which series.
    pub series: String,
}

impl Tables {
    pub fn of(generation: i64) -> Self {
        Self {
            generation,
            lines: format!("rm_lines_g{generation}"),
            conferences: format!("rm_conferences_g{generation}"),
            participants: format!("rm_participants_g{generation}"),
            meetings: format!("rm_provider_meetings_g{generation}"),
            refusals: format!("rm_refusals_g{generation}"),
            series: format!("rm_series_g{generation}"),
        }
    }

    /// The checkpoint of this generation while it is being built (the live one's is
    /// [`READ_MODELS`]).
    pub fn building_checkpoint(&self) -> String {
        format!("{READ_MODELS}@g{}", self.generation)
    }

    /// Each table with the view that shows it when it is live.
    fn with_views(&self) -> [(&str, &'static str); 6] {
        [
            (&self.lines, "rm_lines"),
            (&self.conferences, "rm_conferences"),
            (&self.participants, "rm_participants"),
            (&self.meetings, "rm_provider_meetings_by_line"),
            (&self.refusals, "rm_refusals"),
            (&self.series, "rm_series"),
        ]
    }

    /// `CREATE TABLE IF NOT EXISTS` of this generation's tables (their primary keys only).
    fn create_tables(&self, backend: Backend) -> String {
        // PostgreSQL: ids and timestamps in the "C" collation, so they sort byte-wise as on
        // SQLite.
        let (int, c) = match backend {
            Backend::Sqlite => ("INTEGER", ""),
            Backend::Postgres => ("BIGINT", r#" COLLATE "C""#),
        };
        let Self {
            lines,
            conferences,
            participants,
            meetings,
            ..
        } = self;
        let refusals = self.refusals_table(backend);
        let series = self.series_table(backend);
        format!(
            r#"
CREATE TABLE IF NOT EXISTS {lines} (
    tenant TEXT NOT NULL, line_id TEXT NOT NULL, ord {int} NOT NULL, name TEXT NOT NULL,
    provider TEXT NOT NULL, status TEXT NOT NULL, removed {int} NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, line_id)
);
CREATE TABLE IF NOT EXISTS {conferences} (
    tenant TEXT NOT NULL, id TEXT{c} NOT NULL, number TEXT NOT NULL, subject TEXT NOT NULL,
    start TEXT{c} NOT NULL, "end" TEXT{c} NOT NULL, status TEXT NOT NULL, line_id TEXT NOT NULL,
    position {int} NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS {participants} (
    tenant TEXT NOT NULL, user_id TEXT NOT NULL, conference_id TEXT{c} NOT NULL,
    start TEXT{c} NOT NULL, "end" TEXT{c} NOT NULL, status TEXT NOT NULL, subject TEXT NOT NULL,
    PRIMARY KEY (tenant, user_id, conference_id)
);
CREATE TABLE IF NOT EXISTS {meetings} (
    tenant TEXT NOT NULL, line_id TEXT NOT NULL, meeting_id TEXT NOT NULL,
    conference_id TEXT NOT NULL,
    PRIMARY KEY (tenant, line_id, meeting_id)
);
{refusals}
{series}
"#
        )
    }

    /// `CREATE TABLE IF NOT EXISTS` of this generation's refusal counts.
    fn refusals_table(&self, backend: Backend) -> String {
        let int = match backend {
            Backend::Sqlite => "INTEGER",
            Backend::Postgres => "BIGINT",
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {} (tenant TEXT NOT NULL, hour TEXT NOT NULL, \
             count {int} NOT NULL, PRIMARY KEY (tenant, hour));",
            self.refusals
        )
    }

    /// `CREATE TABLE IF NOT EXISTS` of this generation's series memberships.
    fn series_table(&self, backend: Backend) -> String {
        let c = match backend {
            Backend::Sqlite => "",
            Backend::Postgres => r#" COLLATE "C""#,
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {} (tenant TEXT NOT NULL, series_id TEXT{c} NOT NULL, \
             conference_id TEXT{c} NOT NULL, PRIMARY KEY (tenant, series_id, conference_id));",
            self.series
        )
    }

    /// `CREATE INDEX IF NOT EXISTS` of this generation's secondary indexes (the queries').
    fn create_indexes(&self) -> String {
        let g = self.generation;
        let Self {
            conferences,
            participants,
            meetings,
            ..
        } = self;
        format!(
            r"
CREATE INDEX IF NOT EXISTS rm_g{g}_conferences_by_number ON {conferences} (tenant, number);
CREATE INDEX IF NOT EXISTS rm_g{g}_conferences_by_line ON {conferences} (tenant, line_id, start);
CREATE INDEX IF NOT EXISTS rm_g{g}_conferences_live ON {conferences} (start)
    WHERE status IN ('not_started', 'in_progress');
CREATE INDEX IF NOT EXISTS rm_g{g}_participants_all
    ON {participants} (tenant, user_id, start DESC, conference_id DESC);
{upcoming}
CREATE INDEX IF NOT EXISTS rm_g{g}_provider_meetings_by_id ON {meetings} (meeting_id);
",
            upcoming = self.upcoming_index()
        )
    }

    /// The index "recent" reads: a user's not-started and in-progress rows in the listing's
    /// order, with every column the query reads of them (so that it reads nothing else of the
    /// table, and SQLite's planner, which has no statistics, prefers it). Its first version,
    /// `rm_g{g}_participants_recent` on `(tenant, user_id, start)`, did not give the order with
    /// the id's tie-break: the planner walked the user's whole history backwards through the
    /// "all" index instead, reading each row for its status and end.
    fn upcoming_index(&self) -> String {
        format!(
            r#"CREATE INDEX IF NOT EXISTS {} ON {} (tenant, user_id, start, conference_id, "end", status)
    WHERE status IN ('not_started', 'in_progress');"#,
            self.upcoming_index_name(),
            self.participants
        )
    }

    fn upcoming_index_name(&self) -> String {
        format!("rm_g{}_participants_upcoming", self.generation)
    }
}

/// Tables that are not read models: checkpoints, the generations, and the state of the
/// background processes (never rebuilt: no event can rebuild them).
const PROCESS_TABLES: &str = r"
CREATE TABLE IF NOT EXISTS rm_checkpoints (
    name TEXT PRIMARY KEY, position BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rm_generations (
    generation BIGINT PRIMARY KEY, state TEXT NOT NULL, owner TEXT, lease_until BIGINT
);
CREATE TABLE IF NOT EXISTS ops_provider_failures (
    tenant TEXT NOT NULL, hour TEXT NOT NULL, count BIGINT NOT NULL,
    PRIMARY KEY (tenant, hour)
);
CREATE TABLE IF NOT EXISTS provisioning_attempts (
    tenant TEXT NOT NULL, conference TEXT NOT NULL, position BIGINT NOT NULL,
    PRIMARY KEY (tenant, conference, position)
);
-- Refusals for want of a line counted before they were events (`DemandRefused`, counted in
-- the generations' rm_refusals): kept, and added to them, never written any more.
CREATE TABLE IF NOT EXISTS ops_rejections (
    tenant TEXT NOT NULL, hour TEXT NOT NULL, count BIGINT NOT NULL,
    PRIMARY KEY (tenant, hour)
);
";

/// A schema change in progress: one transaction holding the write lock (SQLite: the one writer;
/// PostgreSQL: [`SCHEMA_LOCK`]).
pub(crate) async fn begin_schema_change(
    db: &Database,
) -> Result<Transaction<'static, Any>, StoreError> {
    // SQLite: `BEGIN IMMEDIATE` takes the write lock at once. A deferred transaction that reads
    // first and writes later fails (SQLITE_BUSY_SNAPSHOT, which no busy timeout waits out) when
    // another process — a `meetline rebuild` beside the server — committed in between.
    let begin = match db.backend {
        Backend::Sqlite => db.writer.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => db.writer.begin().await,
    };
    let mut transaction = begin.map_err(unavailable)?;
    if db.backend == Backend::Postgres {
        sqlx::query(db.sql("SELECT pg_advisory_xact_lock(?)"))
            .bind(SCHEMA_LOCK)
            .execute(&mut *transaction)
            .await
            .map_err(unavailable)?;
    }
    Ok(transaction)
}

async fn run_script(
    transaction: &mut Transaction<'_, Any>,
    script: String,
) -> Result<(), StoreError> {
    sqlx::raw_sql(AssertSqlSafe(script))
        .execute(&mut **transaction)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// What a name in the schema is.
#[derive(Debug, PartialEq, Eq)]
enum Relation {
    Table,
    View,
}

async fn relation(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    name: &str,
) -> Result<Option<Relation>, StoreError> {
    let sql = match db.backend {
        Backend::Sqlite => "SELECT type FROM sqlite_master WHERE name = ?",
        Backend::Postgres => {
            "SELECT CASE table_type WHEN 'VIEW' THEN 'view' ELSE 'table' END FROM \
             information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
        }
    };
    let kind: Option<String> = sqlx::query_scalar(db.sql(sql))
        .bind(name)
        .fetch_optional(&mut **transaction)
        .await
        .map_err(unavailable)?;
    Ok(match kind.as_deref() {
        Some("table") => Some(Relation::Table),
        Some("view") => Some(Relation::View),
        _ => None,
    })
}

/// SQLite: whether the index `name` exists (PostgreSQL's is read with its validity, in
/// [`upcoming_index_concurrently`]).
async fn sqlite_index_exists(
    transaction: &mut Transaction<'_, Any>,
    name: &str,
) -> Result<bool, StoreError> {
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?")
            .bind(name)
            .fetch_optional(&mut **transaction)
            .await
            .map_err(unavailable)?;
    Ok(found.is_some())
}

/// The live generation, as `rm_generations` says.
pub(crate) async fn live_generation(
    db: &Database,
    executor: impl sqlx::Executor<'_, Database = Any>,
) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar(
        db.sql(
            "SELECT generation FROM rm_generations WHERE state = 'live' ORDER BY generation DESC",
        ),
    )
    .fetch_optional(executor)
    .await
    .map_err(unavailable)
}

/// Takes the views for a swap (PostgreSQL; SQLite's write lock covers them): all five at once, in
/// the order the queries name them — `rm_participants` before `rm_conferences`, as the listings'
/// join does — so that a query holding one view while waiting for the other cannot deadlock with
/// the swap. A query naming several views must keep that order.
pub(crate) async fn lock_views(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
) -> Result<(), StoreError> {
    if db.backend == Backend::Postgres {
        run_script(
            transaction,
            "LOCK TABLE rm_participants, rm_conferences, rm_lines, rm_provider_meetings_by_line, \
             rm_refusals, rm_series IN ACCESS EXCLUSIVE MODE"
                .to_owned(),
        )
        .await?;
    }
    Ok(())
}

/// Points the query names at `tables` (inside the caller's transaction).
pub(crate) async fn point_views_at(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    tables: &Tables,
) -> Result<(), StoreError> {
    let script: String = tables
        .with_views()
        .into_iter()
        .map(|(table, view)| view_script(db.backend, table, view))
        .collect();
    run_script(transaction, script).await
}

/// The statement that makes `view` show `table`.
fn view_script(backend: Backend, table: &str, view: &str) -> String {
    match backend {
        Backend::Sqlite => {
            format!("DROP VIEW IF EXISTS {view}; CREATE VIEW {view} AS SELECT * FROM {table};\n")
        }
        Backend::Postgres => format!("CREATE OR REPLACE VIEW {view} AS SELECT * FROM {table};\n"),
    }
}

/// Creates the tables of a generation (inside the caller's transaction), with its secondary
/// indexes or, for a generation about to be filled by a rebuild, without them: an index built
/// once over the filled table is cheaper than one kept up row by row.
pub(crate) async fn create_generation(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    tables: &Tables,
    indexes: bool,
) -> Result<(), StoreError> {
    let mut script = tables.create_tables(db.backend);
    if indexes {
        script.push_str(&tables.create_indexes());
    }
    run_script(transaction, script).await
}

/// Creates a generation's secondary indexes (inside the caller's transaction).
pub(crate) async fn create_indexes(
    transaction: &mut Transaction<'_, Any>,
    tables: &Tables,
) -> Result<(), StoreError> {
    run_script(transaction, tables.create_indexes()).await
}

/// Drops the tables of a generation that is not live (retired, or an abandoned rebuild's), its
/// row and its checkpoint (inside the caller's schema transaction).
pub(crate) async fn drop_generation(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    tables: &Tables,
) -> Result<(), StoreError> {
    // One table after another, in the order a query that read them through the views locks
    // them — participants before conferences, as the listings' join — so that a query still
    // reading the retired tables finishes instead of deadlocking with the drop (PostgreSQL).
    let mut script = String::new();
    for table in [
        &tables.participants,
        &tables.conferences,
        &tables.lines,
        &tables.meetings,
        &tables.refusals,
        &tables.series,
    ] {
        script.push_str(&format!("DROP TABLE IF EXISTS {table};\n"));
    }
    run_script(transaction, script).await?;
    sqlx::query(db.sql("DELETE FROM rm_generations WHERE generation = ? AND state <> 'live'"))
        .bind(tables.generation)
        .execute(&mut **transaction)
        .await
        .map_err(unavailable)?;
    sqlx::query(db.sql("DELETE FROM rm_checkpoints WHERE name = ?"))
        .bind(tables.building_checkpoint())
        .execute(&mut **transaction)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// The generations in `state`.
pub(crate) async fn generations_in(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    state: &str,
) -> Result<Vec<i64>, StoreError> {
    sqlx::query_scalar(db.sql("SELECT generation FROM rm_generations WHERE state = ?"))
        .bind(state)
        .fetch_all(&mut **transaction)
        .await
        .map_err(unavailable)
}

/// The checkpoint row that counts the generations ever made: a number is never used twice.
pub(crate) const GENERATIONS: &str = "read_models#generations";

/// Creates the read-model schema if needed and returns the live generation's tables.
///
/// A database from before generations (real tables under the query names) becomes generation 1:
/// its tables are renamed, not copied, and keep their rows and indexes.
///
/// # Errors
/// When the schema cannot be created.
pub async fn migrate(db: &Database) -> Result<Tables, StoreError> {
    let mut transaction = begin_schema_change(db).await?;
    run_script(&mut transaction, PROCESS_TABLES.to_owned()).await?;
    sqlx::query(db.sql(
        "INSERT INTO rm_checkpoints (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
    ))
    .bind(READ_MODELS)
    .execute(&mut *transaction)
    .await
    .map_err(unavailable)?;
    // The generation counter starts at the highest generation there is (1 for a new database).
    sqlx::query(db.sql(
        "INSERT INTO rm_checkpoints (name, position) \
         SELECT ?, COALESCE(MAX(generation), 1) FROM rm_generations WHERE true \
         ON CONFLICT (name) DO NOTHING",
    ))
    .bind(GENERATIONS)
    .execute(&mut *transaction)
    .await
    .map_err(unavailable)?;
    let tables = match live_generation(db, &mut *transaction).await? {
        // The usual start: the schema is there. Nothing is re-created (on PostgreSQL that would
        // lock the views and tables the queries and the projector use).
        Some(generation) => {
            let tables = Tables::of(generation);
            // A generation made before refusals were events (or swapped in by a rebuild of
            // that version, which pointed only the other views at it) has no refusal counts:
            // an empty table is its own (its log held no `DemandRefused` then), and the view is
            // pointed at it — before a retired generation's table the view may still show is
            // dropped below.
            if relation(db, &mut transaction, &tables.refusals)
                .await?
                .is_none()
            {
                let script = format!(
                    "{}\n{}",
                    tables.refusals_table(db.backend),
                    view_script(db.backend, &tables.refusals, "rm_refusals")
                );
                run_script(&mut transaction, script).await?;
            }
            // Likewise a generation made before series existed: its log held none.
            if relation(db, &mut transaction, &tables.series)
                .await?
                .is_none()
            {
                let script = format!(
                    "{}\n{}",
                    tables.series_table(db.backend),
                    view_script(db.backend, &tables.series, "rm_series")
                );
                run_script(&mut transaction, script).await?;
            }
            // A generation made before the "upcoming" index: it replaces the first "recent"
            // index (built here once, as the first start of this version begins; on
            // PostgreSQL after this transaction, without blocking the table's writers).
            if db.backend == Backend::Sqlite
                && !sqlite_index_exists(&mut transaction, &tables.upcoming_index_name()).await?
            {
                let script = format!(
                    "{}\nDROP INDEX IF EXISTS rm_g{}_participants_recent;",
                    tables.upcoming_index(),
                    tables.generation
                );
                run_script(&mut transaction, script).await?;
            }
            // A rebuild that died between its swap and dropping the generation it replaced.
            for retired in generations_in(db, &mut transaction, "retired").await? {
                drop_generation(db, &mut transaction, &Tables::of(retired)).await?;
            }
            tables
        }
        None => {
            let tables = Tables::of(1);
            if relation(db, &mut transaction, "rm_conferences").await? == Some(Relation::Table) {
                adopt_tables(db, &mut transaction, &tables).await?;
            }
            sqlx::query(db.sql(
                "INSERT INTO rm_generations (generation, state) VALUES (?, 'live') \
                 ON CONFLICT (generation) DO UPDATE SET state = 'live', owner = NULL",
            ))
            .bind(tables.generation)
            .execute(&mut *transaction)
            .await
            .map_err(unavailable)?;
            create_generation(db, &mut transaction, &tables, true).await?;
            point_views_at(db, &mut transaction, &tables).await?;
            tables
        }
    };
    transaction.commit().await.map_err(unavailable)?;
    if db.backend == Backend::Postgres
        && let Err(error) = upcoming_index_concurrently(db, &tables).await
    {
        // The first index still serves "recent" (more slowly); the next start tries again.
        tracing::warn!(%error, generation = tables.generation, "the upcoming index was not built");
    }
    Ok(tables)
}

/// PostgreSQL: gives the live generation its "upcoming" index and drops the first "recent" one,
/// both `CONCURRENTLY` (the table's readers and the projector go on meanwhile). One node does it
/// (a node that finds another doing it goes on); an index whose build died halfway (invalid) is
/// made again.
async fn upcoming_index_concurrently(db: &Database, tables: &Tables) -> Result<(), StoreError> {
    let mut connection = db.writer.acquire().await.map_err(unavailable)?;
    let locked: bool = sqlx::query_scalar(db.sql("SELECT pg_try_advisory_lock(?)"))
        .bind(UPCOMING_INDEX_LOCK)
        .fetch_one(&mut *connection)
        .await
        .map_err(unavailable)?;
    if !locked {
        return Ok(());
    }
    let name = tables.upcoming_index_name();
    let built = async {
        let valid: Option<bool> = sqlx::query_scalar(db.sql(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relname = ?",
        ))
        .bind(&name)
        .fetch_optional(&mut *connection)
        .await
        .map_err(unavailable)?;
        // One statement each: `CONCURRENTLY` runs in no transaction block.
        let mut statements = Vec::new();
        if valid == Some(false) {
            statements.push(format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"));
        }
        if valid != Some(true) {
            statements.push(
                tables
                    .upcoming_index()
                    .replacen("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1)
                    .trim_end_matches(';')
                    .to_owned(),
            );
        }
        statements.push(format!(
            "DROP INDEX CONCURRENTLY IF EXISTS rm_g{}_participants_recent",
            tables.generation
        ));
        for statement in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut *connection)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
    .await;
    let unlocked = sqlx::query(db.sql("SELECT pg_advisory_unlock(?)"))
        .bind(UPCOMING_INDEX_LOCK)
        .execute(&mut *connection)
        .await;
    if unlocked.is_err() {
        // The lock ends with the session: this connection is not given back.
        connection.close_on_drop();
    }
    built
}

/// Makes the tables of a database from before generations generation 1.
async fn adopt_tables(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    tables: &Tables,
) -> Result<(), StoreError> {
    // Before 0.2 a provider meeting id was mapped to one tenant globally: carry such rows over,
    // keyed by the conference's line.
    if relation(db, transaction, "rm_provider_meetings").await? == Some(Relation::Table) {
        if relation(db, transaction, "rm_provider_meetings_by_line")
            .await?
            .is_none()
        {
            run_script(
                transaction,
                "CREATE TABLE rm_provider_meetings_by_line (tenant TEXT NOT NULL, \
                 line_id TEXT NOT NULL, meeting_id TEXT NOT NULL, conference_id TEXT NOT NULL, \
                 PRIMARY KEY (tenant, line_id, meeting_id))"
                    .to_owned(),
            )
            .await?;
        }
        run_script(
            transaction,
            "INSERT INTO rm_provider_meetings_by_line (tenant, line_id, meeting_id, conference_id) \
             SELECT p.tenant, c.line_id, p.meeting_id, p.conference_id FROM rm_provider_meetings p \
             JOIN rm_conferences c ON c.tenant = p.tenant AND c.id = p.conference_id WHERE true \
             ON CONFLICT DO NOTHING; DROP TABLE rm_provider_meetings;"
                .to_owned(),
        )
        .await?;
    }
    let mut script = String::new();
    for (table, view) in tables.with_views() {
        if relation(db, transaction, view).await? == Some(Relation::Table) {
            script.push_str(&format!("ALTER TABLE {view} RENAME TO {table};\n"));
        }
    }
    // Their indexes are made again under the generation's names (a rename keeps the old ones,
    // which would be kept twice over).
    for index in [
        "rm_conferences_by_number",
        "rm_conferences_by_line",
        "rm_conferences_live",
        "rm_participants_all",
        "rm_participants_recent",
        "rm_provider_meetings_by_id",
    ] {
        script.push_str(&format!("DROP INDEX IF EXISTS {index};\n"));
    }
    run_script(transaction, script).await
}
