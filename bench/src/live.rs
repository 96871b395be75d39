//! The projector running while a workload writes (W2's live variant, W3's fill): how far the
//! read models fall behind the log, in events and in seconds, and how long they take to catch up
//! once the writing stops.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meetline_adapters::db::Database;
use meetline_domain::ports::{EventStore, Position};
use meetline_projections::Projector;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the lag is sampled.
const SAMPLE: Duration = Duration::from_millis(20);

/// The largest lag seen while sampling.
#[derive(Debug, Default, Clone, Copy)]
pub struct Lag {
    pub events: u64,
    pub seconds: f64,
}

/// A projector following the log, and a sampler watching how far behind it is.
pub struct LiveProjection {
    projector: JoinHandle<()>,
    /// Stops the projector (after the batch under way).
    halt: CancellationToken,
    sampler: JoinHandle<Lag>,
    stop: watch::Sender<bool>,
    applied: watch::Receiver<Position>,
    store: Arc<dyn EventStore>,
}

impl LiveProjection {
    /// Starts the projector (as a server runs it) on `db`, following `store`.
    pub async fn start(store: Arc<dyn EventStore>, db: Database) -> anyhow::Result<Self> {
        let projector = Projector::new(store.clone(), db).await?;
        let applied = projector.applied();
        let (stop, stopped) = watch::channel(false);
        let sampler = tokio::spawn(sample(store.clone(), applied.clone(), stopped));
        let halt = CancellationToken::new();
        Ok(Self {
            projector: tokio::spawn(projector.run(halt.clone())),
            halt,
            sampler,
            stop,
            applied,
            store,
        })
    }

    /// Waits until the read models have applied the whole log; returns the largest lag seen and
    /// the time from `writes_ended` until caught up.
    pub async fn finish(mut self, writes_ended: Instant) -> anyhow::Result<(Lag, Duration)> {
        let head = self.store.head_position().await?;
        self.applied
            .wait_for(|applied| *applied >= head)
            .await
            .map_err(|_| anyhow::anyhow!("the projector stopped"))?;
        let caught_up = writes_ended.elapsed();
        let _ = self.stop.send(true);
        let lag = (&mut self.sampler).await?;
        self.halt.cancel();
        (&mut self.projector).await?;
        Ok((lag, caught_up))
    }
}

/// Samples the head and the applied position until told to stop. An event's lag in seconds is
/// from the first sample that saw it in the log to the first that saw it applied.
async fn sample(
    store: Arc<dyn EventStore>,
    applied: watch::Receiver<Position>,
    mut stop: watch::Receiver<bool>,
) -> Lag {
    let mut largest = Lag::default();
    let mut seen: VecDeque<(Instant, Position)> = VecDeque::new();
    loop {
        let now = Instant::now();
        if let Ok(head) = store.head_position().await {
            let done = *applied.borrow();
            largest.events = largest.events.max(head.saturating_sub(done));
            if seen.back().is_none_or(|(_, last)| *last < head) {
                seen.push_back((now, head));
            }
            while let Some((since, position)) = seen.front().copied() {
                if position > done {
                    largest.seconds = largest.seconds.max(now.duration_since(since).as_secs_f64());
                    break;
                }
                largest.seconds = largest.seconds.max(now.duration_since(since).as_secs_f64());
                seen.pop_front();
            }
        }
        tokio::select! {
            () = tokio::time::sleep(SAMPLE) => {}
            _ = stop.changed() => return largest,
        }
    }
}
