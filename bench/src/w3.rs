//! W3: rebuilding the read models of a store holding a million events (a scaled W2), measured in
//! a process of its own; the rebuilt tables must equal the ones the projector built live.

use std::process::Command as Process;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use futures_util::TryStreamExt;
use meetline_adapters::db::Database;
use meetline_adapters::postgres::PgEventStore;
use meetline_adapters::sqlite::SqliteEventStore;
use meetline_api_common::Metrics;
use meetline_command_api::{CommandService, ServiceConfig};
use meetline_domain::ports::EventStore;
use meetline_projections::Projector;
use sqlx::Row;

use crate::live::LiveProjection;
use crate::{
    StoreKind, W2_LINES, W2_TENANTS, W2Run, add_lines, open_store, peak_rss_mib, w2_clients,
    w2_tenants,
};

/// W2's tenants, scaled so that `commands` keep W2's density (20 tenants per 50,000).
fn tenants_for(commands: usize) -> usize {
    W2_TENANTS * commands.div_ceil(50_000).max(1)
}

/// Runs W3; `Ok(false)` when the rebuilt read models differ from the live ones.
pub async fn w3(kind: StoreKind, commands: usize, clients: usize) -> anyhow::Result<bool> {
    let store = open_store(kind, clients).await?;
    let tenants = w2_tenants(tenants_for(commands));
    let service = CommandService::new(
        store.events.clone(),
        Arc::new(Metrics::default()),
        ServiceConfig::default(),
    );
    for tenant in &tenants {
        add_lines(&service, tenant, W2_LINES).await?;
    }
    let live = LiveProjection::start(store.events.clone(), store.db.clone()).await?;
    let W2Run {
        elapsed,
        accepted,
        rejected,
        ..
    } = w2_clients(&service, &tenants, clients, commands).await?;
    let ended = Instant::now();
    let (lag, caught_up) = live.finish(ended).await?;
    let head = store.events.head_position().await?;
    println!(
        "W3 {kind:?}: a scaled W2 ({commands} commands over {} tenants, C={clients}) wrote {head} events \
         in {:.1} s = {:.0} commands/s; accepted {accepted}, rejected {rejected}",
        tenants.len(),
        elapsed.as_secs_f64(),
        commands as f64 / elapsed.as_secs_f64(),
    );
    println!(
        "   live projection: largest lag {} events, {:.2} s; caught up {:.2} s after the last command",
        lag.events,
        lag.seconds,
        caught_up.as_secs_f64()
    );
    let built_live = checksum(&store.db).await?;
    println!("   read models built live: {built_live}");
    let at = store.location();
    let status = Process::new(std::env::current_exe()?)
        .args([
            "w3-rebuild",
            "--store",
            kind.arg(),
            "--at",
            &at,
            "--expect",
            &built_live.to_string(),
        ])
        .status()
        .context("running the rebuilding process")?;
    Ok(status.success())
}

/// The rebuilding process: opens the store at `at`, rebuilds the read models from position 0,
/// reports events/s and its own peak RSS, and compares the result with `expect`.
pub async fn rebuilt(kind: StoreKind, at: &str, expect: &str) -> anyhow::Result<()> {
    let (store, db): (Arc<dyn EventStore>, Database) = match kind {
        StoreKind::Sqlite => {
            let db = Database::open_sqlite(std::path::Path::new(at)).await?;
            (Arc::new(SqliteEventStore::new(db.clone()).await?), db)
        }
        StoreKind::Postgres => (
            Arc::new(PgEventStore::new(meetline_adapters::postgres::connect(at, 4).await?).await?),
            Database::connect_postgres(at, 4).await?,
        ),
    };
    let projector = Projector::new(store, db.clone()).await?;
    let started = Instant::now();
    let applied = projector.rebuild(|_| {}).await?;
    let took = started.elapsed().as_secs_f64();
    println!(
        "   rebuilt from position 0: {applied} events in {took:.2} s = {:.0} events/s; peak RSS {:.0} MiB (the rebuilding process alone)",
        applied as f64 / took,
        peak_rss_mib()
    );
    let rebuilt = checksum(&db).await?;
    let pass = rebuilt.to_string() == expect;
    println!(
        "   verify: {} (rebuilt {rebuilt}; built live {expect})",
        if pass { "PASS" } else { "FAIL" }
    );
    ensure!(pass, "the rebuilt read models differ from the live ones");
    Ok(())
}

/// Rows and an FNV-1a-64 over every read-model row, in key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum {
    rows: u64,
    hash: u64,
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} rows, checksum {:016x}", self.rows, self.hash)
    }
}

/// The read models' checksum: every column of every row of the five tables the queries read.
pub async fn checksum(db: &Database) -> anyhow::Result<Checksum> {
    const TABLES: [(&str, &str, &str); 5] = [
        (
            "rm_lines",
            "tenant, line_id, ord, name, provider, status, removed",
            "tenant, line_id",
        ),
        (
            "rm_conferences",
            r#"tenant, id, number, subject, start, "end", status, line_id, position, data"#,
            "tenant, id",
        ),
        (
            "rm_participants",
            r#"tenant, user_id, conference_id, start, "end", status, subject"#,
            "tenant, user_id, conference_id",
        ),
        (
            "rm_provider_meetings_by_line",
            "tenant, line_id, meeting_id, conference_id",
            "tenant, line_id, meeting_id",
        ),
        ("rm_refusals", "tenant, hour, count", "tenant, hour"),
    ];
    let mut rows = 0;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes.iter().chain([&0xff]) {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (table, columns, order) in TABLES {
        let count = columns.split(',').count();
        feed(table.as_bytes());
        let query = db.sql(&format!("SELECT {columns} FROM {table} ORDER BY {order}"));
        let mut stream = sqlx::query(query).fetch(&db.reader);
        while let Some(row) = stream.try_next().await? {
            for column in 0..count {
                let text = row
                    .try_get::<String, _>(column)
                    .or_else(|_| row.try_get::<i64, _>(column).map(|n| n.to_string()))
                    .with_context(|| format!("{table}: column {column}"))?;
                feed(text.as_bytes());
            }
            rows += 1;
        }
    }
    Ok(Checksum { rows, hash })
}
