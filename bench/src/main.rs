//! `meetline-bench`: the load harness of `../shared/WORKLOADS.md`.
//!
//! `w1` runs the schedule burst against the command service (the per-pool writer with group
//! commit) on a real store — a SQLite file (WAL, `synchronous=FULL`) or a fresh PostgreSQL
//! database — at each client count. Before each run it measures the store's raw durable write
//! rates (one row per transaction, and 50 rows per transaction) at the same concurrency and
//! reports the workload's rate against both. It checks the generator against the checksums of
//! WORKLOADS.md, and ends by re-reading every stored event: no two bookings overlap on a line and
//! the stored bookings are exactly the acknowledged ones (PASS/FAIL; FAIL exits non-zero).
//!
//! `w2` runs the mixed life cycle over 20 tenants, projects the log and checks every read-model
//! row against the fold of its conference's events. `w5` fills one pool's stream with 500,000
//! events and times the first command of a freshly started command service on it, without and
//! with a snapshot, then checks through a fresh store handle that the pool from the snapshot and
//! its tail equals a full replay. `w6` sends creates alternately to two nodes (two command
//! services, each with its own warm pool) on a fresh tenant and after a long history.
//!
//! Every workload ends with `meetline-verify`, the independent checker, on the whole stored log
//! and the refusals the clients saw: `verify (independent checker): PASS`.
//!
//! ```sh
//! cargo run --release -p meetline-bench -- w1                       # SQLite, C = 1, 16, 64
//! cargo run --release -p meetline-bench -- w1 --store postgres      # MEETLINE_TEST_PG or 127.0.0.1
//! cargo run --release -p meetline-bench -- w2
//! cargo run --release -p meetline-bench -- w5
//! cargo run --release -p meetline-bench -- w6                       # PostgreSQL by default
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use meetline_adapters::db::Database;
use meetline_adapters::postgres::PgEventStore;
use meetline_adapters::sqlite::SqliteEventStore;
use meetline_adapters::testing::TestDatabase;
use meetline_api_common::Metrics;
use meetline_command_api::service::CommandError;
use meetline_command_api::{CommandService, ServiceConfig, Submission};
use meetline_domain::command::{ConferenceChanges, EndSpec};
use meetline_domain::ports::{EventStore, pool_stream};
use meetline_domain::*;
use meetline_projections::view::{ConferenceView, LineRef};
use meetline_projections::{Projector, ReadModels};
use meetline_verify::Refusal;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// The allocator `meetline` itself runs with (`src/main.rs`): the engine measured as it is run.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod directory;
mod live;
mod w3;
mod w4;
mod w5;
mod w6;

/// 2026-01-01T00:00:00Z: the workloads' clock.
const T0: i64 = 1_767_225_600;
const W1_LINES: usize = 50;
/// FNV-1a-64 of the generated commands, per client count (WORKLOADS.md).
const W1_CHECKSUMS: [(usize, u64); 3] = [
    (1, 0x0020_dba9_59d3_f68c),
    (16, 0x9795_97ab_c090_ac0e),
    (64, 0x5763_4a1a_3f8b_7c76),
];
/// At C = 1 the outcome is fixed: this many of the 20,000 are accepted.
const W1_ACCEPTED_AT_ONE_CLIENT: usize = 19_945;
const BASELINE_BATCH: usize = 50;

#[derive(Parser)]
#[command(about = "Benchmark workloads of WORKLOADS.md")]
struct Cli {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// W1: a schedule burst on one tenant with 50 lines.
    W1 {
        /// Client counts to run, one after another.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<usize>,
        #[arg(long, value_enum, default_value = "sqlite")]
        store: StoreKind,
        /// How many commands in all (the workload's is 20,000).
        #[arg(long, default_value_t = 20_000)]
        commands: usize,
        /// How long each baseline writes.
        #[arg(long, default_value_t = 5)]
        baseline_seconds: u64,
        /// The writer saves a snapshot each time the stream grows by this many events.
        #[arg(long, default_value_t = ServiceConfig::default().snapshot_every)]
        snapshot_every: u64,
    },
    /// W2: a mixed life cycle over 20 tenants of 20 lines each.
    W2 {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, value_enum, default_value = "sqlite")]
        store: StoreKind,
        /// How many commands in all (the workload's is 50,000).
        #[arg(long, default_value_t = 50_000)]
        commands: usize,
        /// The live variant: the projector runs while the clients write; the largest lag and
        /// the time to catch up after the last command are reported.
        #[arg(long)]
        live: bool,
    },
    /// W3: rebuild the read models of a store of a scaled W2 (a million events), in a process
    /// of its own, and compare them with the ones built live.
    W3 {
        #[arg(long, value_enum, default_value = "sqlite")]
        store: StoreKind,
        /// Commands of the scaled W2 (one event each, nearly; the workload's store holds
        /// 1,000,000 events).
        #[arg(long, default_value_t = 1_000_000)]
        commands: usize,
        #[arg(long, default_value_t = 64)]
        clients: usize,
    },
    /// W3's rebuilding process (run by `w3`).
    #[command(hide = true)]
    W3Rebuild {
        #[arg(long, value_enum)]
        store: StoreKind,
        /// The SQLite file, or the PostgreSQL URL.
        #[arg(long)]
        at: String,
        /// The live read models' checksum, as `w3` printed it.
        #[arg(long)]
        expect: String,
    },
    /// The directory at enterprise size (issue 14): a bulk sync, then search latency over HTTP
    /// against the real binary (build it first).
    Directory {
        /// Users synced (the issue's is 10,000).
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// How long the clients search.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// W4: listing latency over HTTP against `meetline serve --role query` (build it first).
    W4 {
        #[arg(long, value_enum, default_value = "sqlite")]
        store: StoreKind,
        /// Conferences in the read models (the workload's is 1,000,000).
        #[arg(long, default_value_t = 1_000_000)]
        conferences: usize,
        /// Users they are spread among (the workload's is 10,000).
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// How long the clients ask.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// SQLite: the folder a run with `MEETLINE_BENCH_KEEP=1` kept, with the same
        /// `--conferences` and `--users`: no fill, straight to the clients (for profiling).
        #[arg(long)]
        reuse: Option<PathBuf>,
    },
    /// W5: cold start of a pool whose stream holds many events, with and without a snapshot.
    W5 {
        #[arg(long, value_enum, default_value = "sqlite")]
        store: StoreKind,
        /// `history`: two years of a company's pool (the clock moves on, conferences end);
        /// `future`: every event books the future (everything live, the worst case).
        #[arg(long, value_enum, default_value = "history")]
        shape: w5::Shape,
        /// Events in the pool's stream (the workload's is 500,000).
        #[arg(long, default_value_t = 500_000)]
        events: usize,
        /// Lines of the pool.
        #[arg(long, default_value_t = 500)]
        lines: usize,
    },
    /// W5's restarted process (run by `w5`): times the first command on the pool at `at`.
    #[command(hide = true)]
    W5Restart {
        #[arg(long, value_enum)]
        store: StoreKind,
        /// The SQLite file, or the PostgreSQL URL.
        #[arg(long)]
        at: String,
        /// The clock of the first command.
        #[arg(long)]
        now: DateTime<Utc>,
        /// What the run is, for its report line.
        #[arg(long)]
        what: String,
    },
    /// W6: version conflicts across two nodes, on a fresh tenant and after a long history.
    W6 {
        #[arg(long, value_enum, default_value = "postgres")]
        store: StoreKind,
        /// Creates in each alternating phase (the workload's is 300).
        #[arg(long, default_value_t = 300)]
        alternating: usize,
        /// Creates written through one node between the phases (the workload's is 50,000).
        #[arg(long, default_value_t = 50_000)]
        history: usize,
        /// Concurrent clients writing the history.
        #[arg(long, default_value_t = 64)]
        clients: usize,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    /// The value of `--store` that names this kind (for a harness's child process).
    fn arg(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().workload {
        Workload::W1 {
            clients,
            store,
            commands,
            baseline_seconds,
            snapshot_every,
        } => {
            let config = ServiceConfig {
                snapshot_every,
                ..ServiceConfig::default()
            };
            let mut failed = false;
            for count in clients {
                ensure!(count > 0, "--clients takes counts of at least 1");
                failed |= !w1(store, count, commands, baseline_seconds, config).await?;
            }
            if failed {
                bail!("a verification failed");
            }
            Ok(())
        }
        Workload::W2 {
            clients,
            store,
            commands,
            live,
        } => {
            ensure!(
                clients > 0 && commands > 0,
                "--clients and --commands take at least 1"
            );
            if w2(store, clients, commands, live).await? {
                Ok(())
            } else {
                bail!("the verification failed")
            }
        }
        Workload::W3 {
            store,
            commands,
            clients,
        } => {
            ensure!(
                clients > 0 && commands > 0,
                "--clients and --commands take at least 1"
            );
            if w3::w3(store, commands, clients).await? {
                Ok(())
            } else {
                bail!("the verification failed")
            }
        }
        Workload::W3Rebuild { store, at, expect } => w3::rebuilt(store, &at, &expect).await,
        Workload::Directory {
            users,
            clients,
            seconds,
        } => {
            if directory::directory(users, clients, seconds).await? {
                Ok(())
            } else {
                bail!("the verification failed")
            }
        }
        Workload::W4 {
            store,
            conferences,
            users,
            clients,
            seconds,
            reuse,
        } => {
            ensure!(clients > 0, "--clients takes at least 1");
            if w4::w4(store, conferences, users, clients, seconds, reuse).await? {
                Ok(())
            } else {
                bail!("the verification failed")
            }
        }
        Workload::W5 {
            store,
            shape,
            events,
            lines,
        } => {
            if w5::w5(store, events, lines, shape).await? {
                Ok(())
            } else {
                bail!("the verification failed")
            }
        }
        Workload::W5Restart {
            store,
            at,
            now,
            what,
        } => w5::restarted(store, &at, now, &what).await,
        Workload::W6 {
            store,
            alternating,
            history,
            clients,
        } => {
            if w6::w6(store, alternating, history, clients).await? {
                Ok(())
            } else {
                bail!("the verification failed")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stores

/// A fresh store for one run, and what must live as long as it.
struct BenchStore {
    events: Arc<dyn EventStore>,
    /// For the baselines: the same engine and database.
    db: Database,
    _folder: Option<TempFolder>,
    _database: Option<TestDatabase>,
}

struct TempFolder(PathBuf);

impl BenchStore {
    /// Where another process finds this store: the SQLite file, or the PostgreSQL URL.
    fn location(&self) -> String {
        match (&self._folder, &self._database) {
            (Some(TempFolder(folder)), _) => folder.join("meetline.db").display().to_string(),
            (None, Some(database)) => database.url.clone(),
            (None, None) => String::new(),
        }
    }

    /// A second, independent handle on the same store, as a restarted process opens it.
    async fn reopen(&self) -> anyhow::Result<Arc<dyn EventStore>> {
        if let Some(TempFolder(folder)) = &self._folder {
            let db = Database::open_sqlite(&folder.join("meetline.db")).await?;
            return Ok(Arc::new(SqliteEventStore::new(db).await?));
        }
        let database = self._database.as_ref().context("a store to reopen")?;
        let pool = meetline_adapters::postgres::connect(&database.url, 4).await?;
        Ok(Arc::new(PgEventStore::new(pool).await?))
    }
}

/// A client's refusals for want of a line, each with the log window it was decided in: after
/// the client's previous answered command, before its next one (`u64::MAX`: none came).
#[derive(Debug, Default)]
struct RefusalLog {
    last_position: u64,
    open: Vec<usize>,
    refusals: Vec<Refusal>,
}

impl RefusalLog {
    fn answered(&mut self, position: u64) {
        for index in self.open.drain(..) {
            self.refusals[index].after = position;
        }
        self.last_position = self.last_position.max(position);
    }

    fn refused(&mut self, tenant: &TenantId, start: i64, end: i64, ignoring: Option<ConferenceId>) {
        let at = |seconds| DateTime::from_timestamp(seconds, 0).expect("a valid instant");
        self.open.push(self.refusals.len());
        self.refusals.push(Refusal {
            stream: pool_stream(tenant),
            start: at(start),
            end: at(end),
            before: self.last_position,
            after: u64::MAX,
            ignoring,
        });
    }
}

/// The independent checker's verdict on the whole log and the refusals, printed in the harness's
/// stable form; `true` for PASS.
async fn independent_check(store: &dyn EventStore, refusals: &[Refusal]) -> anyhow::Result<bool> {
    let log = meetline_verify::whole_log(store).await?;
    let report = meetline_verify::check(&log, refusals);
    println!("   {}", report.summary());
    Ok(report.passed())
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        if std::env::var_os("MEETLINE_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            // For a look afterwards (`meetline verify --data …`, scripts/test does).
            println!("   kept: {}", self.0.display());
        }
    }
}

async fn open_store(kind: StoreKind, clients: usize) -> anyhow::Result<BenchStore> {
    match kind {
        StoreKind::Sqlite => {
            let folder =
                std::env::temp_dir().join(format!("meetline-bench-{}", Uuid::new_v4().simple()));
            std::fs::create_dir_all(&folder)?;
            open_sqlite_at(folder).await
        }
        StoreKind::Postgres => {
            let database = TestDatabase::create()
                .await
                .context("no PostgreSQL server (set MEETLINE_TEST_PG)")?;
            let connections = u32::try_from(clients + 4).unwrap_or(u32::MAX);
            let pool = meetline_adapters::postgres::connect(&database.url, 8).await?;
            let events = Arc::new(PgEventStore::new(pool).await?);
            let db = Database::connect_postgres(&database.url, connections).await?;
            Ok(BenchStore {
                events,
                db,
                _folder: None,
                _database: Some(database),
            })
        }
    }
}

/// The SQLite store in `folder` (removed afterwards unless `MEETLINE_BENCH_KEEP` is set).
async fn open_sqlite_at(folder: PathBuf) -> anyhow::Result<BenchStore> {
    let db = Database::open_sqlite(&folder.join("meetline.db")).await?;
    let events = Arc::new(SqliteEventStore::new(db.clone()).await?);
    Ok(BenchStore {
        events,
        db,
        _folder: Some(TempFolder(folder)),
        _database: None,
    })
}

// ---------------------------------------------------------------------------------------------
// Baselines: the store's raw durable write rates

/// Rows per second that `clients` concurrent writers insert durably, `batch` rows per
/// transaction (one multi-row insert), for `seconds`.
async fn baseline(
    db: &Database,
    clients: usize,
    batch: usize,
    seconds: u64,
) -> anyhow::Result<f64> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(
        "DROP TABLE IF EXISTS bench_baseline; \
         CREATE TABLE bench_baseline (stream TEXT NOT NULL, version BIGINT NOT NULL, \
         payload TEXT NOT NULL, UNIQUE (stream, version))"
            .to_owned(),
    ))
    .execute(&db.writer)
    .await?;
    // About 300 bytes, shaped like a ConferenceScheduled event.
    let payload = serde_json::json!({
        "type": "ConferenceScheduled", "conference": Uuid::new_v4(), "number": "482913057",
        "mode": "scheduled", "subject": "Weekly sync of the platform team", "line": "line-17",
        "slot": {"start": "2026-01-05T02:00:00Z", "end": "2026-01-05T03:30:00Z"},
        "timezone": "Asia/Shanghai", "host": "client-7", "creator": "client-7", "attendees": [],
        "room": "ml0123456789abcdef0123456789abcdef0", "at": "2026-01-01T00:00:00Z"
    })
    .to_string();
    let values = vec!["(?, ?, ?)"; batch].join(", ");
    let statement = db.sql(&format!(
        "INSERT INTO bench_baseline (stream, version, payload) VALUES {values}"
    ));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for client in 0..clients {
        let db = db.clone();
        let payload = payload.clone();
        let statement = statement.0.clone();
        writers.spawn(async move {
            let stream = format!("baseline-{client}");
            let mut version = 0i64;
            let mut rows = 0usize;
            while Instant::now() < deadline {
                let mut transaction = db.writer.begin().await?;
                let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.clone()));
                for _ in 0..batch {
                    version += 1;
                    query = query
                        .bind(stream.clone())
                        .bind(version)
                        .bind(payload.clone());
                }
                query.execute(&mut *transaction).await?;
                transaction.commit().await?;
                rows += batch;
            }
            anyhow::Ok(rows)
        });
    }
    let mut rows = 0;
    while let Some(written) = writers.join_next().await {
        rows += written??;
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// Shared by the workloads

/// The workloads' fixed clock.
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(T0, 0).expect("T0")
}

/// Adds `count` builtin lines to `tenant`'s pool through the command service.
async fn add_lines(
    service: &CommandService,
    tenant: &TenantId,
    count: usize,
) -> anyhow::Result<()> {
    for n in 1..=count {
        let add = Command::AddLine {
            name: LineName::parse(&format!("Line {n}"))?,
            provider: ProviderKind::Builtin,
        };
        service
            .execute(Submission::new(
                tenant.clone(),
                Actor::admin("admin"),
                add,
                t0(),
            ))
            .await?;
    }
    Ok(())
}

/// The `p` quantile of sorted latencies, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// W1

#[derive(Debug, Clone, Copy)]
struct Planned {
    client: usize,
    index: usize,
    start: i64,
    end: i64,
}

/// The commands of each client, as WORKLOADS.md draws them.
fn plan(clients: usize, total: usize) -> Vec<Vec<Planned>> {
    (0..clients)
        .map(|client| {
            let count = total / clients + usize::from(client < total % clients);
            let mut rng = StdRng::seed_from_u64(42 + client as u64);
            (0..count)
                .map(|index| {
                    let slot = rng.random_range(0..2880u32);
                    let minutes = [30i64, 60, 90, 120][rng.random_range(0..4usize)];
                    let start = T0 + i64::from(slot) * 900;
                    Planned {
                        client,
                        index,
                        start,
                        end: start + minutes * 60,
                    }
                })
                .collect()
        })
        .collect()
}

/// FNV-1a-64 over the little-endian `(client, index, start, end)` of every command.
fn checksum(plan: &[Vec<Planned>]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for planned in plan.iter().flatten() {
        for value in [
            planned.client as i64,
            planned.index as i64,
            planned.start,
            planned.end,
        ] {
            for byte in value.to_le_bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
    hash
}

fn conference_id(planned: &Planned) -> ConferenceId {
    ConferenceId(Uuid::from_u128(
        (planned.client as u128) << 64 | (planned.index as u128 + 1),
    ))
}

fn command(planned: &Planned) -> Command {
    let at = |seconds| DateTime::from_timestamp(seconds, 0).expect("a valid instant");
    Command::ScheduleConference(ScheduleConference {
        conference: conference_id(planned),
        mode: Mode::Scheduled,
        subject: Subject::parse("W1").expect("a subject"),
        start: Some(at(planned.start)),
        end: EndSpec::At(at(planned.end)),
        timezone: TimeZoneName::default(),
        host: None,
        attendees: vec![],
        related_link: None,
        rooms: RoomNonce::fixed(conference_id(planned).0.as_u128()),
        numbers: NumberDraw::fixed(conference_id(planned).0.as_u128()),
    })
}

struct ClientResult {
    latencies: Vec<Duration>,
    accepted: Vec<ConferenceId>,
    rejected: usize,
    refusals: RefusalLog,
}

/// Runs W1 with `clients` clients; `Ok(false)` when the verification failed.
async fn w1(
    kind: StoreKind,
    clients: usize,
    total: usize,
    baseline_seconds: u64,
    config: ServiceConfig,
) -> anyhow::Result<bool> {
    ensure!(total > 0, "--commands takes at least 1");
    let plan = plan(clients, total);
    let sum = checksum(&plan);
    if let Some((_, expected)) = W1_CHECKSUMS.iter().find(|(c, _)| *c == clients)
        && total == 20_000
    {
        ensure!(
            sum == *expected,
            "the generator gives {sum:016x}, WORKLOADS.md says {expected:016x}"
        );
    }
    let first = plan[0][0];
    if total == 20_000 {
        ensure!(
            (first.start, first.end) == (1_767_571_200, 1_767_576_600),
            "client 0's first command differs from WORKLOADS.md"
        );
    }

    let store = open_store(kind, clients).await?;
    let single = baseline(&store.db, clients, 1, baseline_seconds).await?;
    let batched = baseline(&store.db, clients, BASELINE_BATCH, baseline_seconds).await?;

    let t0 = t0();
    let tenant = TenantId::parse("w1").expect("a tenant");
    let metrics = Arc::new(Metrics::default());
    let service = CommandService::new(store.events.clone(), metrics.clone(), config);
    add_lines(&service, &tenant, W1_LINES).await?;

    let started = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for commands in plan {
        let service = service.clone();
        let tenant = tenant.clone();
        runs.spawn(async move {
            let mut result = ClientResult {
                latencies: Vec::with_capacity(commands.len()),
                accepted: Vec::new(),
                rejected: 0,
                refusals: RefusalLog::default(),
            };
            let Some(client) = commands.first().map(|planned| planned.client) else {
                return anyhow::Ok(result);
            };
            let actor = Actor::user(&format!("client-{client}"));
            for planned in &commands {
                let asked = Instant::now();
                let answer = service
                    .execute(Submission::new(
                        tenant.clone(),
                        actor.clone(),
                        command(planned),
                        t0,
                    ))
                    .await;
                result.latencies.push(asked.elapsed());
                match answer {
                    Ok(outcome) => {
                        result.accepted.push(conference_id(planned));
                        result.refusals.answered(outcome.position);
                    }
                    Err(CommandError::Domain(DomainError::NoFreeLine { .. })) => {
                        result.rejected += 1;
                        result
                            .refusals
                            .refused(&tenant, planned.start, planned.end, None);
                    }
                    Err(error) => bail!("client {client}: {error}"),
                }
            }
            anyhow::Ok(result)
        });
    }
    let mut latencies = Vec::with_capacity(total);
    let mut acknowledged = HashSet::new();
    let mut rejected = 0;
    let mut refusals = Vec::new();
    while let Some(result) = runs.join_next().await {
        let result = result??;
        latencies.extend(result.latencies);
        acknowledged.extend(result.accepted);
        rejected += result.rejected;
        refusals.extend(result.refusals.refusals);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let percentile = |p| percentile_ms(&latencies, p);
    let rate = total as f64 / elapsed.as_secs_f64();

    println!(
        "W1 {kind:?} C={clients}: {total} commands in {:.2} s = {rate:.0} commands/s; \
         accepted {}, rejected {rejected}; latency p50 {:.2} ms, p99 {:.2} ms",
        elapsed.as_secs_f64(),
        acknowledged.len(),
        percentile(0.50),
        percentile(0.99),
    );
    println!(
        "   baselines at C={clients}: single-row {single:.0} rows/s ({:.2}x of it), \
         batch of {BASELINE_BATCH} {batched:.0} rows/s ({:.3}x of it)",
        rate / single,
        rate / batched,
    );

    let appends = batch_stats(&metrics);
    println!("   appends: {appends}");

    let verdict = verify(store.events.as_ref(), &tenant, &acknowledged, rejected).await?;
    let expected_count = clients == 1 && total == 20_000;
    let count_ok = !expected_count || acknowledged.len() == W1_ACCEPTED_AT_ONE_CLIENT;
    match (&verdict, count_ok) {
        (Ok(summary), true) => println!("   verify: PASS ({summary})"),
        (Ok(summary), false) => println!(
            "   verify: FAIL ({summary}; but {} accepted at C=1, WORKLOADS.md says {W1_ACCEPTED_AT_ONE_CLIENT})",
            acknowledged.len()
        ),
        (Err(reason), _) => println!("   verify: FAIL ({reason})"),
    }
    let independent = independent_check(store.events.as_ref(), &refusals).await?;
    Ok(verdict.is_ok() && count_ok && independent)
}

/// How many appends the writer made and how many commands each decided, from its metrics.
fn batch_stats(metrics: &Metrics) -> String {
    let text = metrics.encode();
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let count = value("meetline_batch_commands_count");
    let sum = value("meetline_batch_commands_sum");
    let append_count = value("meetline_append_seconds_count");
    let append_sum = value("meetline_append_seconds_sum");
    format!(
        "{count:.0} batches, {:.1} commands each on average; {:.2} ms per append on average",
        sum / count.max(1.0),
        append_sum * 1000.0 / append_count.max(1.0)
    )
}

/// Re-reads the pool's stream: no two bookings overlap on a line, the stored bookings are
/// exactly the acknowledged ones, and a refusal is recorded for each command refused.
async fn verify(
    store: &dyn EventStore,
    tenant: &TenantId,
    acknowledged: &HashSet<ConferenceId>,
    rejected: usize,
) -> anyhow::Result<Result<String, String>> {
    let stream = pool_stream(tenant);
    let mut by_line: BTreeMap<LineId, Vec<(i64, i64)>> = BTreeMap::new();
    let mut stored = HashSet::new();
    let mut refused = 0;
    let mut version = 0;
    loop {
        let page = store.read_stream(&stream, version, 5000).await?;
        let Some(last) = page.last() else { break };
        version = last.version;
        for recorded in &page {
            match &recorded.event {
                Event::ConferenceScheduled {
                    conference,
                    line,
                    slot,
                    ..
                } => {
                    by_line
                        .entry(line.clone())
                        .or_default()
                        .push((slot.start.timestamp(), slot.end.timestamp()));
                    stored.insert(*conference);
                }
                Event::DemandRefused { .. } => refused += 1,
                Event::LineAdded { .. } => {}
                other => return Ok(Err(format!("unexpected event {}", other.type_name()))),
            }
        }
    }
    for (line, bookings) in &mut by_line {
        bookings.sort_unstable();
        if let Some(pair) = bookings.windows(2).find(|pair| pair[0].1 > pair[1].0) {
            return Ok(Err(format!(
                "{line}: bookings {:?} and {:?} overlap",
                pair[0], pair[1]
            )));
        }
    }
    if stored != *acknowledged {
        return Ok(Err(format!(
            "{} stored bookings, {} acknowledged, {} stored but not acknowledged",
            stored.len(),
            acknowledged.len(),
            stored.difference(acknowledged).count()
        )));
    }
    if refused != rejected {
        return Ok(Err(format!(
            "{refused} refusals stored, {rejected} commands refused"
        )));
    }
    Ok(Ok(format!(
        "no overlap on {} lines; {} stored = {} acknowledged; {refused} refusals stored",
        by_line.len(),
        stored.len(),
        acknowledged.len()
    )))
}

// ---------------------------------------------------------------------------------------------
// W2

const W2_TENANTS: usize = 20;
const W2_LINES: usize = 20;

/// What a W2 client remembers of a conference it made.
#[derive(Debug, Clone, Copy)]
struct Mine {
    tenant: usize,
    id: ConferenceId,
    start: i64,
    end: i64,
    quick: bool,
}

/// One W2 command, drawn as WORKLOADS.md says: 70% schedule, 10% edit (move by ±1–3 hours), 10%
/// invite, 5% cancel, 5% end early of an in-progress quick conference (a client without one
/// starts one instead). Edits, invitations and cancellations pick one of the client's own
/// not-started conferences of the tenant; a client without one schedules instead.
fn w2_command(
    rng: &mut StdRng,
    tenants: usize,
    client: usize,
    sequence: usize,
    mine: &[Mine],
) -> (usize, Command, Option<Mine>) {
    let tenant = rng.random_range(0..tenants);
    let roll = rng.random_range(0..100u32);
    let id = ConferenceId(Uuid::from_u128(
        (client as u128) << 64 | (sequence as u128 + 1),
    ));
    let rooms = RoomNonce::fixed(id.0.as_u128());
    let scheduled: Vec<&Mine> = mine
        .iter()
        .filter(|m| m.tenant == tenant && !m.quick)
        .collect();
    let pick = |rng: &mut StdRng| scheduled[rng.random_range(0..scheduled.len())];
    let at = |seconds| DateTime::from_timestamp(seconds, 0).expect("a valid instant");
    match roll {
        70..80 if !scheduled.is_empty() => {
            let target = pick(rng);
            let hours = [-3i64, -2, -1, 1, 2, 3][rng.random_range(0..6usize)];
            let changes = ConferenceChanges {
                start: Some(at(target.start + hours * 3600)),
                ..ConferenceChanges::default()
            };
            let command = Command::EditConference {
                conference: target.id,
                changes,
                expected_version: None,
                rooms,
            };
            (tenant, command, None)
        }
        80..90 if !scheduled.is_empty() => {
            let target = pick(rng);
            let user = format!("user-{}", rng.random_range(0..10u32));
            let command = Command::InviteAttendees {
                conference: target.id,
                attendees: vec![UserId::parse(&user).expect("a user id")],
            };
            (tenant, command, None)
        }
        90..95 if !scheduled.is_empty() => {
            let command = Command::CancelConference {
                conference: pick(rng).id,
                reason: None,
            };
            (tenant, command, None)
        }
        95.. => {
            if let Some(quick) = mine.iter().find(|m| m.tenant == tenant && m.quick) {
                let command = Command::EndConferenceEarly {
                    conference: quick.id,
                };
                return (tenant, command, None);
            }
            let command = Command::ScheduleConference(ScheduleConference {
                conference: id,
                mode: Mode::Quick,
                subject: Subject::parse("W2 quick").expect("a subject"),
                start: None,
                end: EndSpec::After(chrono::Duration::minutes(30)),
                timezone: TimeZoneName::default(),
                host: None,
                attendees: vec![],
                related_link: None,
                rooms,
                numbers: NumberDraw::fixed(id.0.as_u128()),
            });
            let made = Mine {
                tenant,
                id,
                start: T0,
                end: T0 + 1800,
                quick: true,
            };
            (tenant, command, Some(made))
        }
        _ => {
            let slot = i64::from(rng.random_range(0..2880u32));
            let minutes = [30i64, 60, 90, 120][rng.random_range(0..4usize)];
            let start = T0 + slot * 900;
            let planned = Planned {
                client,
                index: sequence,
                start,
                end: start + minutes * 60,
            };
            let made = Mine {
                tenant,
                id,
                start,
                end: planned.end,
                quick: false,
            };
            let Command::ScheduleConference(mut schedule) = command(&planned) else {
                unreachable!("command() schedules")
            };
            schedule.conference = id;
            schedule.rooms = rooms;
            schedule.numbers = NumberDraw::fixed(id.0.as_u128());
            (tenant, Command::ScheduleConference(schedule), Some(made))
        }
    }
}

/// Runs W2; `Ok(false)` when the verification failed.
/// What the clients of a W2 run saw.
struct W2Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
    accepted: usize,
    rejected: usize,
    refusals: Vec<Refusal>,
}

/// W2's tenants: `count` of them.
fn w2_tenants(count: usize) -> Vec<TenantId> {
    (0..count)
        .map(|t| TenantId::parse(&format!("w2-{t}")).expect("a tenant"))
        .collect()
}

/// Runs W2's clients: `total` commands from `clients` clients over `tenants`.
async fn w2_clients(
    service: &CommandService,
    tenants: &[TenantId],
    clients: usize,
    total: usize,
) -> anyhow::Result<W2Run> {
    let t0 = t0();
    let tenants = Arc::new(tenants.to_vec());
    let started = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for client in 0..clients {
        let count = total / clients + usize::from(client < total % clients);
        let service = service.clone();
        let tenants = Arc::clone(&tenants);
        runs.spawn(async move {
            let mut rng = StdRng::seed_from_u64(42 + client as u64);
            let actor = Actor::user(&format!("client-{client}"));
            let mut mine: Vec<Mine> = Vec::new();
            let (mut latencies, mut accepted, mut rejected) = (Vec::with_capacity(count), 0, 0);
            let mut refusals = RefusalLog::default();
            for sequence in 0..count {
                let (tenant, command, made) =
                    w2_command(&mut rng, tenants.len(), client, sequence, &mine);
                let asked_for = asked_slot(&command, &mine, t0);
                let forgets = match &command {
                    Command::CancelConference { conference, .. }
                    | Command::EndConferenceEarly { conference } => Some(*conference),
                    _ => None,
                };
                let asked = Instant::now();
                let answer = service
                    .execute(Submission::new(
                        tenants[tenant].clone(),
                        actor.clone(),
                        command,
                        t0,
                    ))
                    .await;
                latencies.push(asked.elapsed());
                match answer {
                    Ok(outcome) => {
                        accepted += 1;
                        refusals.answered(outcome.position);
                        if let Some(made) = made {
                            mine.push(made);
                        }
                        if let Some(gone) = forgets {
                            mine.retain(|m| m.id != gone);
                        }
                        // An edit moved the conference: remember where it is now.
                        if let Some(view) = outcome.conference
                            && let Some(known) = mine.iter_mut().find(|m| m.id == view.id)
                        {
                            known.start = view.slot.start.timestamp();
                            known.end = view.slot.end.timestamp();
                        }
                    }
                    Err(CommandError::Domain(error)) => {
                        rejected += 1;
                        if matches!(error, DomainError::NoFreeLine { .. })
                            && let Some((start, end, ignoring)) = asked_for
                        {
                            refusals.refused(&tenants[tenant], start, end, ignoring);
                        }
                    }
                    Err(error) => bail!("client {client}: {error}"),
                }
            }
            anyhow::Ok((latencies, accepted, rejected, refusals.refusals))
        });
    }
    let mut latencies = Vec::with_capacity(total);
    let (mut accepted, mut rejected) = (0usize, 0usize);
    let mut refusals = Vec::new();
    while let Some(result) = runs.join_next().await {
        let (mut client_latencies, client_accepted, client_rejected, client_refusals) = result??;
        latencies.append(&mut client_latencies);
        accepted += client_accepted;
        rejected += client_rejected;
        refusals.extend(client_refusals);
    }
    Ok(W2Run {
        elapsed: started.elapsed(),
        latencies,
        accepted,
        rejected,
        refusals,
    })
}

async fn w2(kind: StoreKind, clients: usize, total: usize, live: bool) -> anyhow::Result<bool> {
    let store = open_store(kind, clients).await?;
    let tenants = w2_tenants(W2_TENANTS);
    let metrics = Arc::new(Metrics::default());
    let service = CommandService::new(
        store.events.clone(),
        metrics.clone(),
        ServiceConfig::default(),
    );
    for tenant in &tenants {
        add_lines(&service, tenant, W2_LINES).await?;
    }

    let live = if live {
        Some(live::LiveProjection::start(store.events.clone(), store.db.clone()).await?)
    } else {
        None
    };
    let W2Run {
        elapsed,
        mut latencies,
        accepted,
        rejected,
        refusals,
    } = w2_clients(&service, &tenants, clients, total).await?;
    let live = live.map(|live| (live, Instant::now()));
    latencies.sort_unstable();
    let percentile = |p| percentile_ms(&latencies, p);
    println!(
        "W2 {kind:?} C={clients}: {total} commands over {W2_TENANTS} tenants in {:.2} s = {:.0} commands/s; \
         accepted {accepted}, rejected {rejected}; latency p50 {:.2} ms, p99 {:.2} ms",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        percentile(0.50),
        percentile(0.99),
    );
    println!("   appends: {}", batch_stats(&metrics));

    match live {
        // The live variant: the projector ran while the clients wrote.
        Some((live, ended)) => {
            let (lag, caught_up) = live.finish(ended).await?;
            let applied = store.events.head_position().await?;
            println!(
                "   projected {applied} events in {:.2} s, live (largest lag {} events, {:.2} s; \
                 caught up {:.2} s after the last command)",
                (elapsed + caught_up).as_secs_f64(),
                lag.events,
                lag.seconds,
                caught_up.as_secs_f64(),
            );
        }
        // Project everything, then compare.
        None => {
            let projecting = Instant::now();
            let projector = Projector::new(store.events.clone(), store.db.clone()).await?;
            let applied = projector.catch_up(|_| {}).await?;
            println!(
                "   projected {applied} events in {:.2} s",
                projecting.elapsed().as_secs_f64()
            );
        }
    }
    let verdict = verify_w2(store.events.as_ref(), &store.db, &tenants).await?;
    match &verdict {
        Ok(summary) => println!("   verify: PASS ({summary})"),
        Err(reason) => println!("   verify: FAIL ({reason})"),
    }
    let expected = compare_with_expected(store.events.as_ref(), &store.db).await?;
    match &expected {
        Ok(summary) => println!("   verify (expected read model): PASS ({summary})"),
        Err(reason) => println!("   verify (expected read model): FAIL ({reason})"),
    }
    let independent = independent_check(store.events.as_ref(), &refusals).await?;
    Ok(verdict.is_ok() && expected.is_ok() && independent)
}

/// Every conference row of the read models against the expected read model that
/// `meetline-verify` folds from the raw log apart from the projector, field by field; and no row
/// beyond them.
async fn compare_with_expected(
    store: &dyn EventStore,
    db: &Database,
) -> anyhow::Result<Result<String, String>> {
    let log = meetline_verify::whole_log(store).await?;
    let expected = meetline_verify::expected::expected_conferences(&log);
    let read_models = ReadModels::new(db.clone());
    for ((stream, id), want) in &expected {
        let tenant = meetline_projections::view::tenant_of_stream(stream)
            .with_context(|| format!("a pool stream: {stream}"))?;
        let Some(row) = read_models.conference(&tenant, *id).await? else {
            return Ok(Err(format!("{stream}: no read-model row for {id}")));
        };
        let people = |users: &[UserId]| -> std::collections::BTreeSet<String> {
            users.iter().map(ToString::to_string).collect()
        };
        let got = meetline_verify::expected::ExpectedConference {
            number: row.number.to_string(),
            subject: row.subject.as_str().to_owned(),
            start: row.slot.start,
            end: row.slot.end,
            line: row.line.id.to_string(),
            host: row.host.to_string(),
            creator: row.creator.to_string(),
            attendees: people(&row.attendees),
            joined: people(&row.joined),
            status: row.status.as_str(),
            version: row.version,
            ended_at: row.ended_at,
            cancelled_at: row.cancelled_at,
            stranded: row.stranded,
        };
        if got != *want {
            return Ok(Err(format!(
                "{stream}: the row of {id} is {got:?}, the events say {want:?}"
            )));
        }
    }
    let rows: i64 = sqlx::query_scalar(db.sql("SELECT COUNT(*) FROM rm_conferences"))
        .fetch_one(&db.reader)
        .await?;
    if usize::try_from(rows).unwrap_or(usize::MAX) != expected.len() {
        return Ok(Err(format!(
            "{rows} read-model rows, {} conferences in the log",
            expected.len()
        )));
    }
    Ok(Ok(format!(
        "{} read-model rows = the expected rows, field by field",
        expected.len()
    )))
}

/// The slot a W2 command asks for, if it asks for one (a schedule or a move), and the
/// conference whose own booking does not count (the one moved).
fn asked_slot(
    command: &Command,
    mine: &[Mine],
    now: DateTime<Utc>,
) -> Option<(i64, i64, Option<ConferenceId>)> {
    match command {
        Command::ScheduleConference(schedule) => {
            let start = schedule.start.unwrap_or(now);
            Some((
                start.timestamp(),
                schedule.end.resolve(start).timestamp(),
                None,
            ))
        }
        Command::EditConference {
            conference,
            changes,
            ..
        } => {
            let known = mine.iter().find(|m| m.id == *conference)?;
            let start = changes.start?.timestamp();
            Some((start, start + (known.end - known.start), Some(*conference)))
        }
        _ => None,
    }
}

/// No overlap in any tenant's pool, and every conference's read-model row equals the fold of its
/// own events.
async fn verify_w2(
    store: &dyn EventStore,
    db: &Database,
    tenants: &[TenantId],
) -> anyhow::Result<Result<String, String>> {
    let read_models = ReadModels::new(db.clone());
    let mut conferences = 0;
    for tenant in tenants {
        let stream = pool_stream(tenant);
        let mut events = Vec::new();
        let mut version = 0;
        loop {
            let page = store.read_stream(&stream, version, 5000).await?;
            let Some(last) = page.last() else { break };
            version = last.version;
            events.extend(page.into_iter().map(|recorded| recorded.event));
        }
        let pool = LinePool::from_events(&events);
        if let Some(overlap) = pool.overlapping_bookings().first() {
            return Ok(Err(format!("{tenant}: overlap {overlap:?}")));
        }
        let lines = read_models.lines(tenant).await?;
        // Every conference the log ever had (the pool holds only the live ones).
        let ids: Vec<ConferenceId> = events
            .iter()
            .filter_map(|event| match event {
                Event::ConferenceScheduled { conference, .. } => Some(*conference),
                _ => None,
            })
            .collect();
        for id in &ids {
            let row = read_models.conference(tenant, *id).await?;
            let tagged = store.read_tagged(&stream, *id).await?;
            let folded = ConferenceView::fold(tagged.iter().map(|e| &e.event), |line| {
                lines.iter().find(|l| l.id == line.as_str()).map_or_else(
                    || LineRef::unknown(line),
                    |l| LineRef {
                        id: line.clone(),
                        name: l.name.clone(),
                        provider: l.provider,
                    },
                )
            });
            if row != folded {
                return Ok(Err(format!(
                    "{tenant}: the read model of {id} differs from the fold of its events"
                )));
            }
            conferences += 1;
        }
    }
    Ok(Ok(format!(
        "no overlap in {} tenants; {conferences} read-model rows = the fold of their events",
        tenants.len()
    )))
}

// ---------------------------------------------------------------------------------------------
// W5 (in w5.rs)

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    peak_rss_mib_of("/proc/self/status")
}

/// The peak RSS (`VmHWM`) a `/proc/<pid>/status` file reports, in MiB (0 when unreadable).
fn peak_rss_mib_of(status: &str) -> f64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_matches_the_checksums_of_workloads_md() {
        for (clients, expected) in W1_CHECKSUMS {
            let plan = plan(clients, 20_000);
            assert_eq!(plan.iter().map(Vec::len).sum::<usize>(), 20_000);
            assert_eq!(checksum(&plan), expected, "C={clients}");
        }
        let first = plan(1, 20_000)[0][0];
        assert_eq!((first.start, first.end), (1_767_571_200, 1_767_576_600));
    }
}
