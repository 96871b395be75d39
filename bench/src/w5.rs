//! W5: cold start (`../shared/WORKLOADS.md`).
//!
//! The harness fills one pool's stream with `events` events, decided by the aggregate and
//! appended in batches of 1,000 as the writer would have, then measures a **restarted process**:
//! it runs itself again (`w5-restart`, hidden) on the same store, and that process alone times
//! its first command on the pool and reports its own peak RSS — the fill's memory is not in it.
//! Once with no snapshot (every event replayed), once after the parent saved the snapshot the
//! writer would have saved at the head.
//!
//! Two shapes of history:
//! - `history` (the default): what a company's pool looks like after two years. The clock moves
//!   on as the log grows; conferences are booked up to two weeks ahead, the timer records each
//!   one's start and end, one in twenty is cancelled. At the restart most conferences are long
//!   over: what the pool must hold is the live and future work.
//! - `future`: every event books the future (a year ahead of a clock that never moves) — the
//!   worst case, where everything is live.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command as Process;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use clap::ValueEnum;
use meetline_adapters::db::Database;
use meetline_adapters::postgres::PgEventStore;
use meetline_adapters::sqlite::SqliteEventStore;
use meetline_api_common::Metrics;
use meetline_command_api::service::{SNAPSHOT_SCHEMA, load_pool};
use meetline_command_api::{CommandService, ServiceConfig, Submission};
use meetline_domain::command::EndSpec;
use meetline_domain::ports::{EventMetadata, EventStore, NewEvent, Snapshot, pool_stream};
use meetline_domain::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::{StoreKind, independent_check, open_store, peak_rss_mib, t0};

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Shape {
    History,
    Future,
}

/// How far ahead bookers book in the `history` shape, in 15-minute steps (two weeks).
const HORIZON_QUARTERS: u32 = 14 * 96;

/// A conference of the fill, decided at `now`.
fn booking(id: u128, start: DateTime<Utc>, minutes: i64) -> Command {
    Command::ScheduleConference(ScheduleConference {
        conference: ConferenceId(Uuid::from_u128(id)),
        mode: Mode::Scheduled,
        subject: Subject::parse("W5 weekly sync").expect("a subject"),
        start: Some(start),
        end: EndSpec::At(start + chrono::Duration::minutes(minutes)),
        timezone: TimeZoneName::default(),
        host: None,
        attendees: vec![UserId::parse("user-a").expect("a user")],
        related_link: None,
        rooms: RoomNonce::fixed(id),
        numbers: NumberDraw::fixed(id),
    })
}

/// The pool the fill decides on, and the events still to append.
pub(crate) struct Filler<'a> {
    store: &'a dyn EventStore,
    stream: &'a str,
    pool: LinePool,
    pending: Vec<NewEvent>,
}

impl<'a> Filler<'a> {
    /// A fill of `stream`, which must be empty.
    pub(crate) fn new(store: &'a dyn EventStore, stream: &'a str) -> Self {
        Self {
            store,
            stream,
            pool: LinePool::default(),
            pending: Vec::new(),
        }
    }

    /// Decides `command` at `now`; its events are applied and queued. Refusals are skipped.
    pub(crate) async fn run(
        &mut self,
        actor: &Actor,
        command: &Command,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Event>> {
        let Ok(events) = self.pool.handle(actor, command, now) else {
            return Ok(Vec::new());
        };
        for event in &events {
            self.pool.apply(event);
            self.pending.push(NewEvent {
                metadata: EventMetadata {
                    event_id: Uuid::now_v7(),
                    command_id: Uuid::now_v7(),
                    correlation_id: Uuid::now_v7(),
                    causation_id: None,
                    actor: actor.user.to_string(),
                    recorded_at: now,
                    schema_version: EVENT_SCHEMA_VERSION,
                },
                event: event.clone(),
            });
        }
        if self.pending.len() >= 1000 {
            self.flush().await?;
        }
        Ok(events)
    }

    pub(crate) async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.pending.is_empty() {
            let base = self.pool.version - self.pending.len() as u64;
            self.store.append(self.stream, base, &self.pending).await?;
            self.pending.clear();
        }
        Ok(())
    }
}

/// Fills the stream with `total` events (lines first); returns the clock at the end.
async fn fill(
    store: &dyn EventStore,
    stream: &str,
    total: usize,
    lines: usize,
    shape: Shape,
) -> anyhow::Result<DateTime<Utc>> {
    let mut filler = Filler::new(store, stream);
    let admin = Actor::admin("admin");
    let users: Vec<Actor> = (0..100)
        .map(|u| Actor::user(&format!("user-{u}")))
        .collect();
    for n in 1..=lines {
        let add = Command::AddLine {
            name: LineName::parse(&format!("Line {n}"))?,
            provider: ProviderKind::Builtin,
        };
        filler.run(&admin, &add, t0()).await?;
    }
    let mut rng = StdRng::seed_from_u64(5);
    let mut now = t0();
    // Live conferences by end, for the timer; and by id, for cancels (the newest: in the future).
    let mut ends: BTreeSet<(DateTime<Utc>, u128)> = BTreeSet::new();
    let mut live: BTreeMap<u128, DateTime<Utc>> = BTreeMap::new();
    let mut id: u128 = 0;
    while (filler.pool.version as usize) < total {
        id += 1;
        let minutes = [30i64, 60, 90, 120][rng.random_range(0..4usize)];
        let actor = &users[id as usize % users.len()];
        match shape {
            Shape::Future => {
                let start = t0() + chrono::Duration::minutes(15 * rng.random_range(0..35_040i64));
                filler
                    .run(actor, &booking(id, start, minutes), t0())
                    .await?;
            }
            Shape::History => {
                // About 230 conferences a day: 500,000 events are two years.
                now += chrono::Duration::seconds(rng.random_range(300..450i64));
                // The timer records what has ended by now.
                while let Some(&(end, done)) = ends.first()
                    && end <= now
                {
                    ends.pop_first();
                    live.remove(&done);
                    let elapsed = Command::RecordElapsedTime {
                        conference: ConferenceId(Uuid::from_u128(done)),
                    };
                    filler.run(&admin, &elapsed, now).await?;
                }
                if id.is_multiple_of(20)
                    && let Some((&cancelled, &end)) = live.iter().next_back()
                {
                    ends.remove(&(end, cancelled));
                    live.remove(&cancelled);
                    let cancel = Command::CancelConference {
                        conference: ConferenceId(Uuid::from_u128(cancelled)),
                        reason: None,
                    };
                    filler.run(&admin, &cancel, now).await?;
                    continue;
                }
                let quarter = now.timestamp().div_euclid(900) + 1;
                let start = DateTime::from_timestamp(
                    (quarter + i64::from(rng.random_range(4..HORIZON_QUARTERS))) * 900,
                    0,
                )
                .context("a start")?;
                let events = filler.run(actor, &booking(id, start, minutes), now).await?;
                if !events.is_empty() {
                    let end = start + chrono::Duration::minutes(minutes);
                    ends.insert((end, id));
                    live.insert(id, end);
                }
            }
        }
    }
    filler.flush().await?;
    Ok(match shape {
        Shape::Future => t0(),
        Shape::History => now,
    })
}

/// Runs this harness again as a fresh process that times its first command on the pool.
fn restart(kind: StoreKind, at: &str, now: DateTime<Utc>, what: &str) -> anyhow::Result<bool> {
    let store = kind.arg();
    let status = Process::new(std::env::current_exe()?)
        .args([
            "w5-restart",
            "--store",
            store,
            "--at",
            at,
            "--now",
            &now.to_rfc3339(),
            "--what",
            what,
        ])
        .status()
        .context("running the restarted process")?;
    Ok(status.success())
}

/// The restarted process: opens the store at `at`, times its first command on the pool and
/// reports its own peak RSS.
pub async fn restarted(
    kind: StoreKind,
    at: &str,
    now: DateTime<Utc>,
    what: &str,
) -> anyhow::Result<()> {
    let store: Arc<dyn EventStore> = match kind {
        StoreKind::Sqlite => Arc::new(
            SqliteEventStore::new(Database::open_sqlite(std::path::Path::new(at)).await?).await?,
        ),
        StoreKind::Postgres => {
            Arc::new(PgEventStore::new(meetline_adapters::postgres::connect(at, 4).await?).await?)
        }
    };
    let service = CommandService::new(
        store,
        Arc::new(Metrics::default()),
        ServiceConfig {
            snapshot_every: u64::MAX,
            ..ServiceConfig::default()
        },
    );
    // A new conference, a month ahead: one restart's does not collide with the other's.
    let start = now + chrono::Duration::days(30);
    let started = Instant::now();
    let answer = service
        .execute(Submission::new(
            TenantId::parse("w5")?,
            Actor::user("user-0"),
            booking(Uuid::now_v7().as_u128(), start, 60),
            now,
        ))
        .await;
    if let Err(error) = answer {
        anyhow::bail!("the first command failed: {error:?}");
    }
    let took: Duration = started.elapsed();
    println!(
        "   first command after a restart, {what}: {:.0} ms; peak RSS {:.0} MiB (the restarted process alone)",
        took.as_secs_f64() * 1000.0,
        peak_rss_mib()
    );
    Ok(())
}

pub async fn w5(kind: StoreKind, total: usize, lines: usize, shape: Shape) -> anyhow::Result<bool> {
    ensure!(total > lines, "--events must exceed --lines");
    let store = open_store(kind, 1).await?;
    let tenant = TenantId::parse("w5")?;
    let stream = pool_stream(&tenant);
    let filling = Instant::now();
    let now = fill(store.events.as_ref(), &stream, total, lines, shape).await?;
    println!(
        "W5 {kind:?} ({shape:?}): {total} events on {lines} lines written in {:.1} s; the clock at the restart: {now}",
        filling.elapsed().as_secs_f64()
    );
    let at = store.location();
    let mut restarted_fine = restart(kind, &at, now, "no snapshot (replays every event)")?;

    // The snapshot the writer would have saved at the head (as `maybe_snapshot` does).
    let pool = load_pool(store.events.as_ref(), &stream).await?;
    println!(
        "   the pool holds {} conferences and {} bookings",
        pool.conferences.len(),
        pool.lines
            .iter()
            .map(|line| line.bookings.len())
            .sum::<usize>()
    );
    let data = pool.to_snapshot()?;
    let snapshot_bytes = data.len();
    store
        .events
        .save_snapshot(
            &stream,
            &Snapshot {
                version: pool.version,
                schema: SNAPSHOT_SCHEMA,
                data,
            },
        )
        .await?;
    drop(pool);
    restarted_fine &= restart(
        kind,
        &at,
        now,
        &format!(
            "from a snapshot ({:.1} MiB)",
            snapshot_bytes as f64 / 1_048_576.0
        ),
    )?;

    // As a restarted process sees it, through a fresh handle: the pool from the snapshot and
    // the tail after it equals the pool from a full replay, and the log passes the checker.
    let reopened = store.reopen().await?;
    let from_snapshot = load_pool(reopened.as_ref(), &stream).await?;
    let mut events = Vec::new();
    let mut version = 0;
    loop {
        let page = reopened.read_stream(&stream, version, 5000).await?;
        let Some(last) = page.last() else { break };
        version = last.version;
        events.extend(page.into_iter().map(|recorded| recorded.event));
    }
    let replayed = LinePool::from_events(&events);
    let same = from_snapshot == replayed;
    if same {
        println!(
            "   verify: PASS (the pool from the snapshot and its tail equals the full replay of {} events)",
            events.len()
        );
    } else {
        println!(
            "   verify: FAIL (the pool from the snapshot and its tail differs from the full replay)"
        );
    }
    let independent = independent_check(reopened.as_ref(), &[]).await?;
    if std::env::var_os("MEETLINE_BENCH_KEEP").is_some() {
        // For profiling a restart by hand (`w5-restart --at …`): the store outlives the run.
        println!("   kept: {at}");
        std::mem::forget(store);
    }
    Ok(same && independent && restarted_fine)
}
