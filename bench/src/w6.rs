//! W6: conflicts across nodes (`../shared/WORKLOADS.md`).
//!
//! Two command services, each with its own store handle (its own connection pool) on one
//! PostgreSQL database, stand for two nodes: each keeps its own warm pool of the tenant, so a
//! create sent to one after the other wrote is a version conflict for it — the very path two
//! `meetline serve` processes take (HTTP adds a constant to both phases, not a term that grows).
//! Creates of 15-minute slots, no two alike, go one after another, alternately to the two
//! nodes: first on a fresh tenant, then again after `history` creates written through one node.
//! The mean latency of both alternating phases and their ratio show whether the cost of a
//! conflict grows with the tenant's history.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use meetline_api_common::Metrics;
use meetline_command_api::{CommandService, ServiceConfig, Submission};
use meetline_domain::command::EndSpec;
use meetline_domain::*;
use uuid::Uuid;

use crate::{StoreKind, add_lines, independent_check, open_store, peak_rss_mib, percentile_ms, t0};

const LINES: usize = 20;

/// The `n`-th create of the run: its own 15-minute slot, an hour after the workload's clock.
fn create(n: usize) -> Command {
    let start = t0() + chrono::Duration::hours(1) + chrono::Duration::minutes(15 * n as i64);
    let id = n as u128 + 1;
    Command::ScheduleConference(ScheduleConference {
        conference: ConferenceId(Uuid::from_u128(id)),
        mode: Mode::Scheduled,
        subject: Subject::parse("W6").expect("a subject"),
        start: Some(start),
        end: EndSpec::After(chrono::Duration::minutes(15)),
        timezone: TimeZoneName::default(),
        host: None,
        attendees: vec![],
        related_link: None,
        rooms: RoomNonce::fixed(id),
        numbers: NumberDraw::fixed(id),
    })
}

fn node(store: Arc<dyn meetline_domain::ports::EventStore>) -> CommandService {
    CommandService::new(
        store,
        Arc::new(Metrics::default()),
        ServiceConfig::default(),
    )
}

/// Sends creates `from..from + count` one after another, alternately to `nodes`; their latencies.
async fn alternate(
    nodes: &[CommandService; 2],
    tenant: &TenantId,
    from: usize,
    count: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(count);
    for n in from..from + count {
        let started = Instant::now();
        nodes[n % 2]
            .execute(Submission::new(
                tenant.clone(),
                Actor::user("user-0"),
                create(n),
                t0(),
            ))
            .await?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

fn report(phase: &str, latencies: &mut [Duration]) -> f64 {
    latencies.sort();
    let mean = latencies.iter().sum::<Duration>().as_secs_f64() * 1000.0 / latencies.len() as f64;
    println!(
        "   {phase}: {} alternating creates, mean {mean:.2} ms, p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        percentile_ms(latencies, 0.5),
        percentile_ms(latencies, 0.99),
    );
    mean
}

/// Runs W6; `Ok(false)` when the verification failed.
pub async fn w6(
    kind: StoreKind,
    alternating: usize,
    history: usize,
    clients: usize,
) -> anyhow::Result<bool> {
    ensure!(
        alternating > 0 && clients > 0,
        "--alternating and --clients take at least 1"
    );
    let store = open_store(kind, clients).await?;
    let nodes = [node(store.events.clone()), node(store.reopen().await?)];
    let tenant = TenantId::parse("w6")?;
    add_lines(&nodes[0], &tenant, LINES).await?;
    println!("W6 {kind:?}: two nodes, one tenant with {LINES} lines");

    let mut fresh = alternate(&nodes, &tenant, 0, alternating).await?;
    let fresh_mean = report("on a fresh tenant", &mut fresh);

    // The history, through node 0 alone, `clients` at a time (its writer groups them).
    let written = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(alternating));
    let end = alternating + history;
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (node, tenant, next) = (nodes[0].clone(), tenant.clone(), next.clone());
        writers.spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= end {
                    return anyhow::Ok(());
                }
                node.execute(Submission::new(
                    tenant.clone(),
                    Actor::user("user-0"),
                    create(n),
                    t0(),
                ))
                .await?;
            }
        });
    }
    while let Some(result) = writers.join_next().await {
        result??;
    }
    println!(
        "   {history} creates written through one node = {:.0} commands/s",
        history as f64 / written.elapsed().as_secs_f64()
    );

    let mut aged = alternate(&nodes, &tenant, end, alternating).await?;
    let aged_mean = report(&format!("after {history} more"), &mut aged);
    println!(
        "   cost of a conflict after the history / on a fresh tenant: {:.2}x; peak RSS {:.0} MiB",
        aged_mean / fresh_mean,
        peak_rss_mib()
    );
    // Every create was accepted (no two alike): the checker sees no refusal to excuse.
    independent_check(store.reopen().await?.as_ref(), &[]).await
}
